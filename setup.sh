#!/usr/bin/env bash
# Creates ./.venv with the pinned stack and installs this project into it (editable).
#   bash setup.sh          CPU stack (requirements.txt)
#   bash setup.sh --gpu    CUDA 11.2 stack (requirements-gpu.txt)
# Python 3.8-3.13. Set PYTHON=python3.13 (or a path) to pick the interpreter; a .venv made by
# another Python is replaced. Re-running is cheap: pip skips what is there.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
REQ=requirements.txt
MXNET=mxnet==1.9.1
if [ "${1:-}" = "--gpu" ]; then REQ=requirements-gpu.txt; MXNET=mxnet-cu112==1.9.1; fi

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup.sh: no '$PY' on PATH; install Python 3.8-3.13 or set PYTHON=/path/to/python3.X" >&2
  exit 1
fi
VERSION=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 13) else 1)'; then
  echo "setup.sh: Python $VERSION is not supported: the pinned stacks cover Python 3.8-3.13" >&2
  echo "(mxnet 1.9.1 with numpy 1.23.5 up to 3.11, 1.26.4 on 3.12, 2.2.6 on 3.13). Run e.g." >&2
  echo "  PYTHON=python3.11 bash setup.sh" >&2
  exit 1
fi
if [ -x .venv/bin/python ] && \
   [ "$(.venv/bin/python -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" != "$VERSION" ]; then
  echo "setup.sh: .venv was made by another Python; making it anew with Python $VERSION" >&2
  rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
.venv/bin/python -m pip install -q -r "$REQ"
case "$VERSION" in
  3.13)  # mxnet's metadata says numpy<2; runtime/ makes it work with numpy 2 (README, Portability)
    .venv/bin/python -m pip install -q --no-deps "$MXNET" ;;
esac
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -c 'import runtime, mxnet, numpy, sys
print("setup.sh: ready: Python %d.%d, mxnet %s, numpy %s (%s)" % (sys.version_info[:2] + (
      mxnet.__version__, numpy.__version__, "requirements pinned per Python in '"$REQ"'")))'
