#!/usr/bin/env bash
# Creates ./.venv with the pinned stack and installs this project into it (editable).
#   bash setup.sh          CPU stack (requirements.txt)
#   bash setup.sh --gpu    CUDA 11.2 stack (requirements-gpu.txt)
# Set PYTHON=/path/to/python3.X to pick the interpreter. Re-running is cheap: pip skips what is there.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
REQ=requirements.txt
[ "${1:-}" = "--gpu" ] && REQ=requirements-gpu.txt

if ! command -v "$PY" >/dev/null 2>&1; then
  echo "setup.sh: no '$PY' on PATH; install Python 3.8-3.11 or set PYTHON=/path/to/python3.X" >&2
  exit 1
fi
if ! "$PY" -c 'import sys; sys.exit(0 if (3, 8) <= sys.version_info[:2] <= (3, 11) else 1)'; then
  echo "setup.sh: $("$PY" --version 2>&1) is not supported: mxnet 1.9.1 needs numpy<1.24 (1.23.5)," >&2
  echo "which has wheels for Python 3.8-3.11 only. Install one of those and run" >&2
  echo "  PYTHON=python3.11 bash setup.sh" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade "pip>=23" "setuptools>=64" wheel
.venv/bin/python -m pip install -q -r "$REQ"
.venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
.venv/bin/python -c 'import mxnet, numpy; print("setup.sh: ready: mxnet", mxnet.__version__, "numpy", numpy.__version__)'
