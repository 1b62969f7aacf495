#!/usr/bin/env bash
# The `kn` commands of knative/README.md, runnable one step at a time:
#
#   examples/kn.sh status                       # revisions, traffic, URL
#   examples/kn.sh infer                        # one inference through the Service's URL
#   examples/kn.sh cold-start                   # time a request after scale to zero
#   examples/kn.sh image REGISTRY/inference-runtime:0.2.0
#   examples/kn.sh env LOG_LEVEL=debug          # KEY- removes it again
#   examples/kn.sh scale 1 20                   # min and max pods
#   examples/kn.sh concurrency 4                # containerConcurrency (hard) and target (soft)
#   examples/kn.sh split CPU_REVISION 90        # tag CPU_REVISION cpu, @latest gpu; cpu=90, gpu=10
#   examples/kn.sh promote gpu|cpu              # 100% to one tag
#   examples/kn.sh rollback REVISION            # 100% to REVISION, pinned
#   examples/kn.sh follow-latest                # 100% to the newest ready revision again
#   examples/kn.sh grpc                         # gRPC (h2c) on the same port: --port h2c:8080, PROTOCOL=grpc
#   examples/kn.sh grpc-infer                   # one gRPC inference through the Service's URL (grpcurl)
#
# SERVICE (default inference-runtime) and NAMESPACE (default: kn's current namespace) select the
# Service. Each command is printed before it runs. Needs kn, curl for infer/cold-start, grpcurl
# for grpc-infer. Run grpc on a Service of its own (SERVICE=inference-runtime-grpc), never on the
# REST one: its URL then speaks gRPC only (see knative/README.md, "gRPC").
set -euo pipefail

SERVICE="${SERVICE:-inference-runtime}"
NS_ARGS=()
if [ -n "${NAMESPACE:-}" ]; then NS_ARGS=(-n "$NAMESPACE"); fi
MODEL="${MODEL:-sentiment}"
BODY='{"inputs":[{"name":"text","datatype":"BYTES","shape":[1],"data":["This movie was fantastic!"]}]}'

run() {
  printf '+ %s\n' "$*" >&2
  "$@"
}

url() {
  kn service describe "$SERVICE" "${NS_ARGS[@]}" -o url
}

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

# need COMMAND HINT: COMMAND is on PATH, or stop saying how to get it.
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "kn.sh: $1 is not installed; $2" >&2
  exit 2
}
KN_HINT="it is the Knative CLI: https://knative.dev/docs/client/install-kn/ (brew install knative/client/kn, or a binary from https://github.com/knative/client/releases)"

cmd="${1:-}"
[ -n "$cmd" ] || usage
shift

case "$cmd" in
  status | infer | cold-start | image | env | scale | concurrency | split | promote | rollback | follow-latest | grpc | grpc-infer) need kn "$KN_HINT" ;;
esac
case "$cmd" in
  infer | cold-start) need curl "install it: apt-get install curl, brew install curl (https://curl.se/download.html)" ;;
esac
case "$cmd" in
  cold-start) need kubectl "https://kubernetes.io/docs/tasks/tools/ (brew install kubectl)" ;;
  grpc-infer) need grpcurl "https://github.com/fullstorydev/grpcurl#installation (brew install grpcurl, or go install github.com/fullstorydev/grpcurl/cmd/grpcurl@latest)" ;;
esac

case "$cmd" in
  status)
    run kn service describe "$SERVICE" "${NS_ARGS[@]}"
    run kn revision list -s "$SERVICE" "${NS_ARGS[@]}"
    ;;
  infer)
    u="$(url)"
    run curl -sS -X POST "$u/v2/models/$MODEL/infer" -H 'content-type: application/json' -d "$BODY"
    echo
    ;;
  cold-start)
    # Wait until the Service has no pods (stable window + retention period), then time one request.
    selector="serving.knative.dev/service=$SERVICE"
    echo "waiting for $SERVICE to scale to zero (can take several minutes)..." >&2
    while [ -n "$(kubectl get pods "${NS_ARGS[@]}" -l "$selector" -o name 2>/dev/null)" ]; do sleep 10; done
    u="$(url)"
    run curl -sS -o /dev/null -w 'cold start: HTTP %{http_code} in %{time_total}s\n' -X POST "$u/v2/models/$MODEL/infer" \
      -H 'content-type: application/json' -d "$BODY"
    run curl -sS -o /dev/null -w 'warm:       HTTP %{http_code} in %{time_total}s\n' -X POST "$u/v2/models/$MODEL/infer" \
      -H 'content-type: application/json' -d "$BODY"
    ;;
  image)
    # spec.template.spec.containers[0].image -> a new revision
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --image "${1:?image reference}"
    ;;
  env)
    # spec.template.spec.containers[0].env (overrides the generated ConfigMap) -> a new revision
    args=()
    for kv in "$@"; do args+=(--env "$kv"); done
    [ "${#args[@]}" -gt 0 ] || { echo "env: give KEY=VALUE or KEY-" >&2; exit 2; }
    run kn service update "$SERVICE" "${NS_ARGS[@]}" "${args[@]}"
    ;;
  scale)
    # autoscaling.knative.dev/min-scale and max-scale on spec.template.metadata -> a new revision
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --scale-min "${1:?min}" --scale-max "${2:?max}"
    ;;
  concurrency)
    # spec.template.spec.containerConcurrency and autoscaling.knative.dev/target -> a new revision
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --concurrency-limit "${1:?limit}" --scale-target "${1}" --scale-utilization 70
    ;;
  split)
    # spec.traffic only (no new revision): the CPU revision tagged cpu, the newest (GPU) tagged gpu
    cpu_revision="${1:?the CPU revision, from: kn revision list}"
    cpu_percent="${2:-90}"
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --tag "$cpu_revision=cpu" --tag "@latest=gpu" \
      --traffic "cpu=$cpu_percent" --traffic "gpu=$((100 - cpu_percent))"
    ;;
  promote)
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --traffic "${1:?tag}=100"
    ;;
  rollback)
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --traffic "${1:?revision, from: kn revision list}=100"
    ;;
  follow-latest)
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --traffic "@latest=100"
    ;;
  grpc)
    # containers[0].ports[0] named h2c (same port) and env PROTOCOL=grpc -> a new revision that
    # serves gRPC beside HTTP/1.1; Knative then carries cleartext HTTP/2 to it end to end
    run kn service update "$SERVICE" "${NS_ARGS[@]}" --port h2c:8080 --env PROTOCOL=grpc
    ;;
  grpc-infer)
    # The Knative route on port 80 (cleartext h2c), or 443 with TLS when the URL is https.
    u="$(url)"
    host="${u#*://}"
    tls=(-plaintext)
    port=80
    case "$u" in https://*) tls=() port=443 ;; esac
    proto="$(dirname "$0")/../runtime/proto"
    text="$(printf '%s' 'This movie was fantastic!' | base64)"
    run grpcurl "${tls[@]}" -import-path "$proto" -proto grpc_predict_v2.proto \
      -d "{\"model_name\":\"$MODEL\",\"inputs\":[{\"name\":\"text\",\"datatype\":\"BYTES\",\"shape\":[1],\"contents\":{\"bytes_contents\":[\"$text\"]}}]}" \
      "$host:$port" inference.GRPCInferenceService/ModelInfer
    ;;
  *)
    usage
    ;;
esac
