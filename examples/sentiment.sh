#!/usr/bin/env bash
# Scores sentences with the `sentiment` model over the Open Inference Protocol v2.
# Start the server first: `npm start` (serves models/ on http://localhost:8080).
#
#   examples/sentiment.sh                              # the built-in examples
#   examples/sentiment.sh "Loved it." "Never again."   # your own sentences (needs jq)
#
# The model takes raw text as a BYTES tensor of shape [N] (N sentences) and
# returns `probabilities` FP32 [N,2] = [P(negative), P(positive)] and `label`
# BYTES [N] ("negative" or "positive").
set -euo pipefail
URL="${INFERENCE_URL:-http://localhost:8080}"
. "$(dirname "$0")/preflight.sh"
need curl "$CURL_HINT"
if [ "$#" -gt 0 ]; then need jq "it builds the request from your sentences; $JQ_HINT"; fi
server_up "$URL"

# --fail-with-body: an error status stops the script, showing the server's {"error": ...}.
if [ "$#" -gt 0 ]; then
  body=$(jq -cn '{inputs: [{name: "text", datatype: "BYTES", shape: [$ARGS.positional | length], data: $ARGS.positional}]}' --args "$@")
  curl -sS --fail-with-body -X POST "$URL/v2/models/sentiment/infer" -H 'content-type: application/json' -d "$body"; echo
  exit 0
fi

# The model's inputs and outputs.
curl -sS --fail-with-body "$URL/v2/models/sentiment"; echo

# One sentence.
curl -sS --fail-with-body -X POST "$URL/v2/models/sentiment/infer" -H 'content-type: application/json' -d '{
  "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["This movie was fantastic!"]}]
}'; echo

# A batch of three in one request; the outputs keep the order of the inputs.
curl -sS --fail-with-body -X POST "$URL/v2/models/sentiment/infer" -H 'content-type: application/json' -d '{
  "id": "batch-1",
  "inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": [
    "The battery died after two days.",
    "Great food and friendly staff.",
    "Not good, not terrible either."
  ]}],
  "outputs": [{"name": "label"}]
}'; echo
