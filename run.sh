#!/usr/bin/env bash
# The main job: set up, get the data (Debian's Fashion-MNIST where apt works), train a vanilla
# and an MTER model the same way, attack both, write results/ (table, JSON, PNG).
# Arguments go to demo.py: ./run.sh --compare (vanilla, MTER, AT, TLA), ./run.sh --full
# (paper-scale schedule), ./run.sh --out-dir DIR ...
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "run.sh: installing Debian's dataset-fashion-mnist ..." >&2
    # the package may already be in apt's cache (an offline machine): install before updating
    (apt-get install -y -qq dataset-fashion-mnist ||
      (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist)) >/dev/null 2>&1 || true
  fi
  if [ ! -d /usr/share/datasets/fashion-mnist ]; then
    echo "run.sh: !! Fashion-MNIST is not available (as root: apt-get install" \
         "dataset-fashion-mnist); the demo falls back to scikit-learn's 8x8 digits !!" >&2
  fi
fi
bash setup.sh
exec .venv/bin/python demo.py "$@"
