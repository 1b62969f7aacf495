#!/usr/bin/env bash
# Runs Triton's stock Python client examples, unmodified, against this server.
#
#   scripts/triton-examples.sh CLIENT_CHECKOUT [EXAMPLE.py ...]
#
# CLIENT_CHECKOUT is a checkout of https://github.com/triton-inference-server/client
# (the examples are read from its src/python/examples/; nothing is fetched or copied
# into this repository). Without EXAMPLE names, the examples that fit this server's
# models run (DEFAULT_EXAMPLES below). The script:
#   1. prepares the pinned Python clients (scripts/python-clients.sh, cached);
#   2. writes the fixture repository (simple, simple_string, simple_int8, ...:
#      models/build/examples-repository.ts) into a temp directory;
#   3. builds dist/ (npm run build) and starts `node bin/inference-server.js` on a free
#      loopback port with PROTOCOL=grpc (REST and gRPC on the same port);
#   4. runs each example with `-u 127.0.0.1:PORT` and reports PASS or FAIL.
# An example passes when it exits 0 and, if its source prints a "PASS" line on success,
# that line was printed (several examples exit 0 without checking what they expected).
# Output of each example: $OUT_DIR/<example>.log (default: a temp directory, printed).
# Exit status: the number of failed examples (0: all passed).
set -euo pipefail

DEFAULT_EXAMPLES=(
  simple_http_infer_client.py
  simple_http_async_infer_client.py
  simple_http_aio_infer_client.py
  simple_http_health_metadata.py
  simple_grpc_infer_client.py
  simple_grpc_async_infer_client.py
  simple_grpc_aio_infer_client.py
  simple_grpc_health_metadata.py
  grpc_explicit_byte_content_client.py
  grpc_explicit_int8_content_client.py
  grpc_explicit_int_content_client.py
)

[ $# -ge 1 ] || { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
checkout="$(cd "$1" && pwd)"
shift
examples_dir="$checkout/src/python/examples"
[ -d "$examples_dir" ] || { echo "triton-examples: no src/python/examples in $checkout" >&2; exit 2; }
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=("${DEFAULT_EXAMPLES[@]}")

root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
python="$(scripts/python-clients.sh)"

work="$(mktemp -d "${TMPDIR:-/tmp}/triton-examples-XXXXXX")"
out_dir="${OUT_DIR:-$work/logs}"
mkdir -p "$out_dir"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work/models"
  rmdir "$work" 2>/dev/null || true
}
trap cleanup EXIT

npx tsx models/build/examples-repository.ts "$work/models" >/dev/null
npm run --silent build >/dev/null
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"

MODEL_REPOSITORY="$work/models" PORT="$port" HOST=127.0.0.1 PROTOCOL=grpc LOG_LEVEL="${LOG_LEVEL:-warn}" \
  node bin/inference-server.js >"$out_dir/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 300); do
  if curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { echo "triton-examples: the server exited; see $out_dir/server.log" >&2; cat "$out_dir/server.log" >&2; exit 1; }
  sleep 0.1
done
curl -fs "http://127.0.0.1:$port/v2/health/ready" >/dev/null || { echo "triton-examples: the server never became ready" >&2; exit 1; }
echo "server: 127.0.0.1:$port (REST and gRPC), models in $work/models, logs in $out_dir"

failed=0
for example in "${examples[@]}"; do
  script="$examples_dir/$example"
  log="$out_dir/${example%.py}.log"
  if [ ! -f "$script" ]; then echo "MISSING $example"; failed=$((failed + 1)); continue; fi
  status=0
  (cd "$examples_dir" && timeout 120 "$python" "$script" -u "127.0.0.1:$port") >"$log" 2>&1 || status=$?
  verdict=PASS
  reason=""
  if [ "$status" -ne 0 ]; then
    # The example's own verdict line if it printed one, else its last line (a traceback's error).
    why="$(grep -m 1 -E '^(FAILED|improper|expected|sync infer error|async infer error|explicit)' "$log" || grep -v '^\s*$' "$log" | tail -n 1)"
    verdict=FAIL; reason="exit $status: $(echo "$why" | cut -c1-300)"
  elif grep -q 'print("PASS' "$script" && ! grep -q '^PASS' "$log"; then
    verdict=FAIL; reason="exit 0 without its PASS line; last output: $(grep -v '^\s*$' "$log" | tail -n 1 | cut -c1-300)"
  fi
  if [ "$verdict" = PASS ]; then echo "PASS    $example"; else echo "FAIL    $example  ($reason)"; failed=$((failed + 1)); fi
done
echo "$(( ${#examples[@]} - failed )) passed, $failed failed"
exit "$failed"
