#!/usr/bin/env bash
# Sends inference requests as CloudEvents, the way a Knative Trigger delivers
# them, and prints each reply with its headers: a successful inference is
# answered 200 with a CloudEvent (type io.kserve.inference.response) in the
# mode the request used. Start the server first: `npm start` (serves models/ on
# http://localhost:8080). See runtime/src/cloudevents/README.md.
#
#   examples/cloudevents.sh
#   INFERENCE_URL=http://sentiment.default.example.com examples/cloudevents.sh
set -euo pipefail
URL="${INFERENCE_URL:-http://localhost:8080}"
. "$(dirname "$0")/preflight.sh"
need curl "$CURL_HINT"
server_up "$URL"

# Binary mode: the event's attributes are ce-* headers, its data is the body.
# POST / picks the model from the `model` extension (ce-model), else the
# subject, else the only model loaded. A plain {"text": ...} works for a model
# with one BYTES input; its reply data is V1-style {"predictions": [...]}.
echo "--- binary mode"
curl -sS -i -X POST "$URL/" \
  -H 'ce-specversion: 1.0' \
  -H 'ce-id: example-binary-1' \
  -H 'ce-source: /examples/cloudevents.sh' \
  -H 'ce-type: io.kserve.inference.request' \
  -H 'ce-model: sentiment' \
  -H 'content-type: application/json' \
  -d '{"text": "This movie was fantastic!"}'
echo

# Structured mode: the whole event is the JSON body. Here the subject names
# the model and the data is an Open Inference Protocol v2 request, so the
# reply's data is the V2 response (its "id" echoed).
echo "--- structured mode"
curl -sS -i -X POST "$URL/" \
  -H 'content-type: application/cloudevents+json' \
  -d '{
  "specversion": "1.0",
  "id": "example-structured-1",
  "source": "/examples/cloudevents.sh",
  "type": "io.kserve.inference.request",
  "subject": "sentiment",
  "datacontenttype": "application/json",
  "data": {
    "id": "batch-1",
    "inputs": [{"name": "text", "datatype": "BYTES", "shape": [2],
                "data": ["Great food and friendly staff.", "The battery died after two days."]}]
  }
}'
echo

# An event sent to a model's own endpoint may have any type.
echo "--- binary mode on /v2/models/sentiment/infer"
curl -sS -i -X POST "$URL/v2/models/sentiment/infer" \
  -H 'ce-specversion: 1.0' \
  -H 'ce-id: example-binary-2' \
  -H 'ce-source: /examples/cloudevents.sh' \
  -H 'ce-type: com.example.review.submitted' \
  -H 'content-type: application/json' \
  -d '{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["Not worth the ticket."]}]}'
echo

# Failures are plain JSON errors, never a 200: here a 400 naming the missing attribute.
echo "--- an invalid event"
curl -sS -i -X POST "$URL/" \
  -H 'ce-specversion: 1.0' \
  -H 'ce-id: example-invalid-1' \
  -H 'ce-type: io.kserve.inference.request' \
  -H 'content-type: application/json' \
  -d '{"text": "No source attribute."}'
echo
