#!/usr/bin/env bash
# Prepares (or reuses) the Python virtual environment with Triton's and KServe's own clients
# (runtime/src/clients/requirements.txt: tritonclient[all], kserve, pinned) and prints the path of
# its python on stdout, the only thing this script writes there.
#
#   scripts/python-clients.sh            # prepare if needed, print .../bin/python
#
# Cached outside the checkout (scripts/python-venv.sh): ${PYTHON_CLIENTS_CACHE:-${XDG_CACHE_HOME:-
# $HOME/.cache}/inference-runtime}/python-clients-<hash of the pins and the Python version>.
# $PYTHON chooses the interpreter (default python3, 3.11 or later).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
[ -n "${PYTHON_CLIENTS_CACHE:-}" ] && export PYTHON_VENV_CACHE="$PYTHON_CLIENTS_CACHE"
# The two SDKs are checked in separate processes: they cannot share one.
exec "$root/scripts/python-venv.sh" python-clients "$root/runtime/src/clients/requirements.txt" 3.11 \
  'import numpy, tritonclient.http, tritonclient.http.aio, tritonclient.grpc, tritonclient.grpc.aio' \
  'import kserve, kserve.protocol.grpc.grpc_predict_v2_pb2_grpc'
