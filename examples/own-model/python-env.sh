#!/usr/bin/env bash
# Prepares (or reuses) a Python virtual environment with one framework and its ONNX converter,
# at the versions pinned in examples/own-model/requirements-<framework>.txt, and prints the path
# of its python on stdout (the only thing written there).
#
#   bash examples/own-model/python-env.sh sklearn             # scikit-learn + skl2onnx (~100 MB)
#   bash examples/own-model/python-env.sh xgboost-lightgbm    # xgboost, lightgbm + onnxmltools
#   bash examples/own-model/python-env.sh tensorflow          # tensorflow + tf2onnx (~2 GB)
#   bash examples/own-model/python-env.sh pytorch             # torch, onnxscript, optimum-onnx (~5 GB)
#
#   py="$(bash examples/own-model/python-env.sh sklearn)" && "$py" examples/own-model/sklearn_iris.py
#
# The environment lives outside the checkout, in a cache directory that survives between runs:
# ${OWN_MODEL_PYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}/own-model-<framework>-<hash>,
# <hash> covering the requirements file and the Python version, so a changed pin or interpreter
# gets a fresh environment and an unchanged one is reused at once (a marker file is written only
# after a complete install and an import check). Concurrent callers wait on a lock instead of
# installing twice. $PYTHON chooses the interpreter (default python3, 3.10 or later).
# Exits non-zero with a message on stderr when the environment cannot be prepared.
# (The same mechanism as scripts/python-clients.sh, which does this for Triton's and KServe's clients.)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
framework="${1:-}"
python="${PYTHON:-python3}"

fail() { echo "own-model python-env: $*" >&2; exit 1; }

case "$framework" in
  sklearn) check='import sklearn, skl2onnx, onnx' ;;
  xgboost-lightgbm) check='import xgboost, lightgbm, onnxmltools, sklearn' ;;
  tensorflow) check='import tensorflow, tf2onnx, sklearn' ;;
  pytorch) check='import torch, onnx, onnxscript, sklearn, optimum.exporters.onnx' ;;
  *) fail "usage: python-env.sh sklearn|xgboost-lightgbm|tensorflow|pytorch" ;;
esac
requirements="$here/requirements-$framework.txt"
[ -f "$requirements" ] || fail "no $requirements"

command -v "$python" >/dev/null 2>&1 || fail "no '$python' on PATH: install Python 3.10+ (with its venv module) or set PYTHON"
version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" || fail "'$python' does not run"
"$python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' || fail "Python $version is too old: the pinned packages need 3.10 or later"

hash="$( { cat "$requirements"; echo "python $version"; } | sha256sum | cut -c1-16)"
cache="${OWN_MODEL_PYTHON_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}"
venv="$cache/own-model-$framework-$hash"
mkdir -p "$cache" || fail "cannot create the cache directory $cache"

ready() { [ -f "$venv/.ready" ] && [ -x "$venv/bin/python" ]; }

if ! ready; then
  # One preparation at a time; whoever waited finds it ready.
  exec 9>"$venv.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
  if ! ready; then
    echo "own-model python-env: creating $venv (Python $version, $(basename "$requirements"))" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 \
      || fail "'$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2 \
      || { rm -rf "$venv"; fail "pip install -r $requirements failed (is PyPI reachable?)"; }
    "$venv/bin/python" -c "$check" >&2 \
      || { rm -rf "$venv"; fail "the packages of $(basename "$requirements") do not import in $venv"; }
    touch "$venv/.ready"
    echo "own-model python-env: ready" >&2
  fi
fi

echo "$venv/bin/python"
