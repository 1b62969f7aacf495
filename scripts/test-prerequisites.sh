#!/usr/bin/env bash
# What `npm test` needs beside Node, prepared before the suite runs (npm's `pretest`, and .ci/run):
#
#   redis-server          the quota tests start their own on a free port, and restart it
#   initdb + postgres     the request store's tests start their own PostgreSQL the same way
#   kubectl               `kubectl kustomize` renders the manifests in the deployment tests
#   Python 3.11+ clients  Triton's tritonclient and KServe's SDK, in a cached venv (scripts/python-clients.sh),
#                         and scikit-learn + skl2onnx for the own-model guide's test (examples/own-model/python-env.sh)
#
# Debian packages are installed with apt-get when this runs as root on Debian/Ubuntu (CI, a
# container, this project's machines); otherwise nothing is installed and the exact command to
# run is printed. Nothing is started here: the tests start and stop their own servers.
# Exits 0 when everything is there; otherwise says what is missing, which tests will fail
# without it, and how to install it, and exits 1 (npm then does not start the suite).
# TEST_PREREQUISITES=skip skips the check (e.g. to run one test file that needs none of these).
set -uo pipefail
cd "$(dirname "$0")/.."

[ "${TEST_PREREQUISITES:-}" = "skip" ] && exit 0

has_postgres() { command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; }
has_redis() { command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; }
has_kubectl() { command -v kubectl >/dev/null 2>&1; }
has_venv() { command -v python3 >/dev/null 2>&1 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; }

# Debian package → the check that says it is there, and what fails without it.
missing=()
has_redis || missing+=("redis-server")
has_postgres || missing+=("postgresql")
has_kubectl || missing+=("kubernetes-client")
has_venv || missing+=("python3-venv")

if [ "${#missing[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "test prerequisites: installing ${missing[*]} (apt-get)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}") >/dev/null 2>&1 \
      || echo "test prerequisites: apt-get install ${missing[*]} failed" >&2
    still=()
    has_redis || still+=("redis-server")
    has_postgres || still+=("postgresql")
    has_kubectl || still+=("kubernetes-client")
    has_venv || still+=("python3-venv")
    missing=("${still[@]+"${still[@]}"}")
  fi
fi

status=0
if [ "${#missing[@]}" -gt 0 ]; then
  status=1
  {
    echo "test prerequisites missing: ${missing[*]}"
    for p in "${missing[@]}"; do
      case "$p" in
        redis-server) echo "  redis-server: the quota tests (runtime/src/async/quota*) start their own redis-server" ;;
        postgresql) echo "  postgresql: the request store tests (runtime/src/async/*) start their own PostgreSQL (initdb, postgres)" ;;
        kubernetes-client) echo "  kubectl: the manifest tests (knative/, kserve/) render the kustomizations with kubectl kustomize" ;;
        python3-venv) echo "  python3 with venv: the client fidelity tests run Triton's and KServe's own Python clients" ;;
      esac
    done
    echo "install them with: sudo apt-get install ${missing[*]}   (Debian/Ubuntu package names)"
  } >&2
fi

# Triton's and KServe's Python clients (about 30 s the first time, then cached outside the checkout).
if ! bash scripts/python-clients.sh >/dev/null; then
  status=1
  echo "  the client fidelity tests (runtime/src/clients) need Python 3.11+ with venv and PyPI access; see the message above" >&2
fi
# scikit-learn + skl2onnx, for the test that follows docs/own-model.md (about 20 s the first time, then cached).
if ! bash examples/own-model/python-env.sh sklearn >/dev/null; then
  status=1
  echo "  the own-model guide's test (runtime/src/repository/own-model.test.ts) needs the same, for scikit-learn and skl2onnx" >&2
fi

if [ "$status" -ne 0 ]; then
  echo "npm test stopped before the suite: install what is listed above, or run TEST_PREREQUISITES=skip npm test to run it anyway (the tests listed will fail)" >&2
fi
exit "$status"
