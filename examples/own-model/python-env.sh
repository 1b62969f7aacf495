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
# (scripts/python-venv.sh does the work, as it does for scripts/python-clients.sh.)
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
framework="${1:-}"

case "$framework" in
  sklearn) check='import sklearn, skl2onnx, onnx' ;;
  xgboost-lightgbm) check='import xgboost, lightgbm, onnxmltools, sklearn' ;;
  tensorflow) check='import tensorflow, tf2onnx, sklearn' ;;
  pytorch) check='import torch, onnx, onnxscript, sklearn, optimum.exporters.onnx' ;;
  *) echo "own-model python-env: usage: python-env.sh sklearn|xgboost-lightgbm|tensorflow|pytorch" >&2; exit 1 ;;
esac
[ -n "${OWN_MODEL_PYTHON_CACHE:-}" ] && export PYTHON_VENV_CACHE="$OWN_MODEL_PYTHON_CACHE"
exec "$here/../../scripts/python-venv.sh" "own-model-$framework" "$here/requirements-$framework.txt" 3.10 "$check"
