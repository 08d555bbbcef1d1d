#!/usr/bin/env python
"""Speed of TLA / Madry AT training: one training step split into its parts (PGD on the
adversary contexts, the pool and anchor embeddings, the main step) next to a raw
forward+backward of the same network on the same number of images.

  python bench/bench_tla.py --network s8 --batch-size 32 --num-steps 10
  python bench/bench_tla.py --network tla --batch-size 50 --num-steps 40 --method at
Other flags go to ad_tla.py (MNIST-format shapes; --dataset cifar10 --network wrn for CIFAR-10's).
One PGD step should cost about one raw fwd+bwd of the images it attacks (it needs the input
gradient, not the parameters'): the ratio is printed.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging

import numpy as np

import ad_tla
from bench.bench_mter import raw_fwd_bwd
from bench.timing import timed
from data.datasets import IMAGE_SHAPE, PIXEL_RANGE, kind
from src import args as flags
from src import tla
from src.fit import Trainer
from src.metrics import TrainMetrics


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--repeats', type=int, default=3, help='timed repeats of each part')
    own, rest = parser.parse_known_args()
    runtime.setup_logging(level=logging.WARNING)
    args = ad_tla.parse_args(rest + ['--ckpt', '0', '--verbose', '0'])
    data_kind = kind(args.dataset)
    flags.apply_tla_preset(args, data_kind)
    shape = IMAGE_SHAPE[data_kind]
    top = PIXEL_RANGE[data_kind][1]
    method = tla.Tla(args, np.random.RandomState(0))
    trainer = Trainer(args, method, shape, args.num_classes, PIXEL_RANGE[data_kind],
                      evaluate=None)
    rng = np.random.RandomState(0)
    b, pool = args.batch_size, max(args.pool_size, 1)
    images = lambda n: (top * rng.rand(n, *shape)).astype(np.float32)  # noqa: E731
    sample = (images(b), rng.randint(0, args.num_classes, b), images(b), images(pool),
              rng.randint(0, args.num_classes, pool))
    adversary = trainer.adversary
    adversary.sync_from(trainer.module)
    t_pgd = timed(lambda: adversary.attack(sample[0], attack_label=sample[1]), own.repeats)
    t_embed = timed(lambda: (adversary.embed(sample[0]), adversary.embed(sample[3])),
                    own.repeats)
    metrics = TrainMetrics(method.metric_names)
    t_step = timed(lambda: trainer.step(sample, metrics), own.repeats)
    per_ctx = b // len(trainer.adv_ctx)
    raw_adv = raw_fwd_bwd(args, trainer.adv_ctx[0], per_ctx, shape, own.repeats)
    raw_main = raw_fwd_bwd(args, trainer.main_ctx, trainer.batch_size, shape, own.repeats)
    pgd_step = t_pgd / args.num_steps
    print('network %s, %s; batch %d (%d per adversary context, %d contexts), main batch %d '
          '(%d parts), pool %d, %d PGD steps; %s'
          % (args.network, tla.describe(args).split(':')[0], b, per_ctx, len(trainer.adv_ctx),
             trainer.batch_size, method.parts, args.pool_size, args.num_steps,
             trainer.main_ctx[0].device_type))
    print('training step:         %8.3f s  (%.1f anchors/s)' % (t_step, b / t_step))
    print('  PGD, all steps:      %8.3f s  (%.4f s per step)' % (t_pgd, pgd_step))
    if method.parts > 1:
        print('  anchor + pool embed: %8.3f s' % t_embed)
    print('  main step (rest):    %8.3f s' % (t_step - t_pgd - (t_embed if method.parts > 1
                                                                  else 0)))
    print('raw fwd+bwd, %4d img: %8.4f s  (training mode, one adversary context)'
          % (per_ctx, raw_adv))
    print('raw fwd+bwd, %4d img: %8.4f s  (the main batch)' % (trainer.batch_size, raw_main))
    print('PGD step / raw fwd+bwd of the same images: %.2fx' % (pgd_step / raw_adv))


if __name__ == '__main__':
    main()
