#!/usr/bin/env bash
# Calls the `simple` model with curl over the Open Inference Protocol v2.
# Start the server first: `npm start` (serves models/ on http://localhost:8080).
set -euo pipefail
URL="${INFERENCE_URL:-http://localhost:8080}"
. "$(dirname "$0")/preflight.sh"
need curl "$CURL_HINT"
server_up "$URL"

# --fail-with-body: an error status stops the script, showing the server's {"error": ...}.
curl -sS --fail-with-body "$URL/v2/health/ready"; echo
curl -sS --fail-with-body "$URL/v2/models/simple"; echo
curl -sS --fail-with-body -X POST "$URL/v2/models/simple/infer" -d '{
  "id": "example-1",
  "inputs": [
    {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32", "data": [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},
    {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32", "data": [1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}
  ]
}'; echo
