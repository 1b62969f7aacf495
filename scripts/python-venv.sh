#!/usr/bin/env bash
# Prepares (or reuses) a Python virtual environment for one pinned requirements file and prints the
# path of its python on stdout, the only thing written there. Shared by scripts/python-clients.sh
# (Triton's and KServe's clients) and examples/own-model/python-env.sh (one framework + its converter).
#
#   scripts/python-venv.sh NAME REQUIREMENTS MIN_PYTHON 'import a, b' ['import c' ...]
#
# The environment lives outside the checkout, in a cache directory that survives between runs:
# ${PYTHON_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}/NAME-<hash>, where <hash>
# covers the requirements file and the Python version, so a changed pin or interpreter gets a fresh
# environment and an unchanged one is reused at once. A marker file is written only after a complete
# install and every import check passed; each check runs in its own process (Triton's and KServe's
# SDKs cannot share one: both register inference.* protobuf messages). Concurrent callers wait on
# a lock instead of installing twice. $PYTHON chooses the interpreter (default python3), at least
# MIN_PYTHON (e.g. 3.11). Exits non-zero with a message on stderr when it cannot be prepared.
set -euo pipefail

[ "$#" -ge 4 ] || { echo "usage: python-venv.sh NAME REQUIREMENTS MIN_PYTHON CHECK..." >&2; exit 2; }
name="$1" requirements="$2" min="$3"
shift 3
python="${PYTHON:-python3}"

fail() { echo "$name: $*" >&2; exit 1; }

[ -f "$requirements" ] || fail "no $requirements"
command -v "$python" >/dev/null 2>&1 || fail "no '$python' on PATH: install Python $min+ (with its venv module) or set PYTHON"
version="$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" || fail "'$python' does not run"
"$python" -c "import sys; sys.exit(0 if sys.version_info >= tuple(int(p) for p in '$min'.split('.')) else 1)" \
  || fail "Python $version is too old: the pinned packages need $min or later"

hash="$( { cat "$requirements"; echo "python $version"; } | sha256sum | cut -c1-16)"
cache="${PYTHON_VENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/inference-runtime}"
venv="$cache/$name-$hash"
mkdir -p "$cache" || fail "cannot create the cache directory $cache"

ready() { [ -f "$venv/.ready" ] && [ -x "$venv/bin/python" ]; }

if ! ready; then
  # One preparation at a time; whoever waited finds it ready.
  exec 9>"$venv.lock"
  if command -v flock >/dev/null 2>&1; then
    flock 9
  fi
  if ! ready; then
    echo "$name: creating $venv (Python $version, $(basename "$requirements"))" >&2
    rm -rf "$venv"
    "$python" -m venv "$venv" >&2 \
      || fail "'$python -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input -r "$requirements" >&2 \
      || { rm -rf "$venv"; fail "pip install -r $requirements failed (is PyPI reachable?)"; }
    for check in "$@"; do
      "$venv/bin/python" -c "$check" >&2 \
        || { rm -rf "$venv"; fail "'$check' fails in $venv"; }
    done
    touch "$venv/.ready"
    echo "$name: ready" >&2
  fi
fi

echo "$venv/bin/python"
