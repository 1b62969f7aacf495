#!/usr/bin/env bash
# Asynchronous inference: submit, get a request id at once, poll for the result.
# Start the server with it on (no database or Redis needed locally: an embedded
# PGlite store, in-process quota counters and an in-process queue):
#
#   ASYNC_INFERENCE=true QUOTA_REQUESTS=100 npm start
#   examples/async.sh
#
# In a cluster the ingress sets the user header (USER_HEADER, default x-user-id).
set -euo pipefail
URL="${INFERENCE_URL:-http://localhost:8080}"
USER_ID="${USER_ID:-alice}"
. "$(dirname "$0")/preflight.sh"
need curl "$CURL_HINT"
server_up "$URL" "ASYNC_INFERENCE=true QUOTA_REQUESTS=100 npm start"
# The asynchronous routes exist only with ASYNC_INFERENCE=true: without them this is a 404 "no route".
if [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/api/v1/users/$USER_ID/usage" -H "x-user-id: $USER_ID")" = 404 ]; then
  echo "$example: the server at $URL has asynchronous inference off; restart it with \`ASYNC_INFERENCE=true QUOTA_REQUESTS=100 npm start\`" >&2
  exit 1
fi

# Submit text to a text model: 202 Accepted, the request id and where to look.
submitted=$(curl -sS --fail-with-body -X POST "$URL/api/v1/inference" -H "x-user-id: $USER_ID" -H 'content-type: application/json' \
  -d '{"model": "sentiment", "text": "The staff were wonderful and the room was spotless."}') || { echo "$example: not accepted: $submitted" >&2; exit 1; }
echo "$submitted"
id=$(printf '%s' "$submitted" | sed -E 's/.*"request_id":"([^"]+)".*/\1/')

# Any V2 request can be queued the same way, with RFC 7240's Prefer header.
curl -sS -i -X POST "$URL/v2/models/simple/infer" -H "x-user-id: $USER_ID" -H 'prefer: respond-async' -H 'content-type: application/json' \
  -d '{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}' \
  | grep -iE '^(HTTP|location|preference-applied)'

# Poll until it is finished (queued -> running -> succeeded | failed).
for _ in $(seq 1 50); do
  status=$(curl -sS --fail-with-body "$URL/api/v1/requests/$id" -H "x-user-id: $USER_ID") || { echo "$example: $status" >&2; exit 1; }
  case "$status" in
    *'"status":"succeeded"'* | *'"status":"failed"'*) break ;;
  esac
  sleep 0.1
done
echo "$status"

# This window's usage: requests and tokens, the quota and what is left.
curl -sS --fail-with-body "$URL/api/v1/users/$USER_ID/usage" -H "x-user-id: $USER_ID"; echo
