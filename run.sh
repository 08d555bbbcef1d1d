#!/usr/bin/env bash
# The main job: set up, get the data (Debian's Fashion-MNIST where apt works), train with MTER.
# Extra arguments go to ad_mnist.py (e.g. ./run.sh --max-steps 50).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -d /usr/share/datasets/fashion-mnist ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) >/dev/null 2>&1 || true
  fi
  [ -d /usr/share/datasets/fashion-mnist ] || \
    echo "run.sh: Fashion-MNIST not available (apt-get install dataset-fashion-mnist as root);" \
         "ad_mnist.py will fall back to scikit-learn's 8x8 digits" >&2
fi
bash setup.sh
exec .venv/bin/python ad_mnist.py --network s8 --loss-type 0 --lr 0.1 --lr-steps 300,450 \
  --main-per-batch-size 96 --adv-per-batch-size 64 --adv-round 10 --adv-alpha 0.2 \
  --adv-sigma 0.35 --adv-thd 0.05 --weightadv 1 --verbose 100 --max-steps 500 --seed 0 \
  --disp-batches 20 --prefix models/mnist-s8/model "$@"
