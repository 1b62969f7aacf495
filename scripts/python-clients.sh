#!/usr/bin/env bash
# Prepares (or reuses) the Python virtual environment with Triton's and KServe's own
# clients (runtime/src/clients/requirements.txt: tritonclient[all], kserve, pinned) and
# prints the path of its python on stdout, the only thing this script writes there.
#
#   scripts/python-clients.sh            # prepare if needed, print .../bin/python
#
# The environment lives outside the checkout, in a cache directory that survives between
# runs: ${PYTHON_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}/
# python-clients-<hash>, where <hash> covers the requirements file and the Python version,
# so a changed pin or interpreter gets a fresh environment and an unchanged one is reused
# at once (a marker file is written only after a complete install and an import check).
# Concurrent callers (two test files, CI and a developer) wait on a lock instead of
# installing twice. $PYTHON chooses the interpreter (default python3, 3.11 or later).
# Exits non-zero with a message on stderr when the environment cannot be prepared.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
requirements="$root/runtime/src/clients/requirements.txt"
python="${PYTHON:-python3}"

fail() { echo "python-clients: $*" >&2; exit 1; }

command -v "$python" >/dev/null 2>&1 || fail "no '$python' on PATH: install Python 3.11+ (with its venv module) or set PYTHON"
version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" || fail "'$python' does not run"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || fail "Python $version is too old: the pinned clients need 3.11 or later"

hash="$( { cat "$requirements"; echo "python $version"; } | sha256sum | cut -c1-16)"
cache="${PYTHON_CLIENTS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}"
venv="$cache/python-clients-$hash"
mkdir -p "$cache" || fail "cannot create the cache directory $cache"

ready() { [ -f "$venv/.ready" ] && [ -x "$venv/bin/python" ]; }

if ! ready; then
  # One preparation at a time; whoever waited finds it ready.
  exec 9>"$venv.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
  if ! ready; then
    echo "python-clients: creating $venv (Python $version)" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 \
      || fail "'$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2 \
      || { rm -rf "$venv"; fail "pip install -r $requirements failed (is PyPI reachable?)"; }
    # The two SDKs cannot share a process (both register inference.* protobuf messages).
    "$venv/bin/python" -c 'import numpy, tritonclient.http, tritonclient.http.aio, tritonclient.grpc, tritonclient.grpc.aio' >&2 \
      || { rm -rf "$venv"; fail "tritonclient does not import in $venv"; }
    "$venv/bin/python" -c 'import kserve, kserve.protocol.grpc.grpc_predict_v2_pb2_grpc' >&2 \
      || { rm -rf "$venv"; fail "kserve does not import in $venv"; }
    touch "$venv/.ready"
    echo "python-clients: ready" >&2
  fi
fi

echo "$venv/bin/python"
