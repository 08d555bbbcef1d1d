#!/usr/bin/env python
"""Speed of MTER training: samples/s, seconds per adversary round, and the raw forward+backward
time of the same network, so the adversary's overhead can be read off.

  python bench/bench_mter.py --network s8 --main-per-batch-size 96 --adv-per-batch-size 64 \
      --adv-round 20
  python bench/bench_mter.py --face --image-size 112 --network r18 --main-per-batch-size 12 \
      --adv-per-batch-size 8 --adv-round 5
Every round is run (--adv-thd -1), on random data of the script's input shape. Other flags go to
ad_mnist.py (or ad_face.py with --face). With --face it also measures the decode rate of a
synthetic 112x112 JPEG .rec through the training sampler.
"""
import argparse
import logging
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

import ad_face
import ad_mnist
from src.fit import Trainer, network_kwargs
from src.metrics import TrainMetrics
from src.mter import Mter
from symbols import get_embedding


def raw_fwd_bwd(network_args, ctx, batch, image_shape, repeats):
    """Seconds of one training-mode forward+backward (with parameter gradients) of the network."""
    emb, _ = get_embedding(network_args.network, **network_kwargs(network_args))
    sym = mx.sym.MakeLoss(mx.sym.mean(emb))
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None, context=ctx)
    mod.bind([('data', (batch,) + image_shape)], for_training=True)
    mod.init_params(mx.init.Xavier())
    db = mx.io.DataBatch([mx.nd.array(np.random.rand(batch, *image_shape))])
    for i in range(repeats + 1):
        if i == 1:
            mx.nd.waitall()
            t0 = time.time()
        mod.forward_backward(db)
    mx.nd.waitall()
    return (time.time() - t0) / repeats


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--batches', type=int, default=5, help='timed training batches')
    parser.add_argument('--repeats', type=int, default=5, help='timed raw fwd+bwd repeats')
    parser.add_argument('--face', action='store_true', help='ad_face.py (fresnet, 3xHxW, 0..255)')
    parser.add_argument('--image-size', type=int, default=112, help='face image side (--face)')
    own, rest = parser.parse_known_args()
    fixed = ['--adv-thd', '-1', '--ckpt', '0', '--verbose', '0']
    runtime.setup_logging(level=logging.WARNING)
    if own.face:
        args = ad_face.parse_args(rest + fixed)
        image_shape = (3, own.image_size, own.image_size)
        trainer = Trainer(args, Mter(args, faces=True), image_shape,
                          1000, (0.0, 255.0), evaluate=None, normalized_softmax=True)
    else:
        args = ad_mnist.parse_args(rest + fixed)
        image_shape = (1, 28, 28)
        trainer = Trainer(args, Mter(args), image_shape,
                          10, (0.0, 1.0), evaluate=None)
    s = trainer.plan.sources
    rng = np.random.RandomState(0)
    top = 255.0 if own.face else 1.0
    batch = lambda: ((top * rng.rand(s, *image_shape)).astype(np.float32),  # noqa: E731
                     rng.randint(0, 5, s), (top * rng.rand(s, *image_shape)).astype(np.float32),
                     rng.randint(5, 10, s))
    metrics = TrainMetrics()
    trainer.step(batch(), metrics)  # warm-up (binding, memory)
    t_adv = t_main = rounds = 0
    t0 = time.time()
    for _ in range(own.batches):
        stats, _, ta, tm = trainer.step(batch(), metrics)
        t_adv, t_main, rounds = t_adv + ta, t_main + tm, rounds + stats.rounds
    wall = time.time() - t0
    raw_s = raw_fwd_bwd(args, trainer.adv_ctx[0], s // len(trainer.adv_ctx), image_shape,
                        own.repeats)
    raw_main = raw_fwd_bwd(args, trainer.main_ctx, trainer.batch_size, image_shape, own.repeats)
    print('network %s  S=%d (main batch %d on %d ctx, adversary %d per ctx on %d ctx), '
          '--adv-round %d, %s' % (args.network, s, trainer.batch_size, len(trainer.main_ctx),
                                  s // len(trainer.adv_ctx), len(trainer.adv_ctx),
                                  args.adv_round, trainer.main_ctx[0].device_type))
    print('training:            %8.1f samples/s (main-batch images per wall second)'
          % (own.batches * trainer.batch_size / wall))
    print('per batch:           %8.3f s attack (%d rounds), %.3f s main step'
          % (t_adv / own.batches, rounds // own.batches, t_main / own.batches))
    print('adversary round:     %8.4f s' % (t_adv / max(rounds, 1)))
    print('raw fwd+bwd, S/K=%-4d %8.4f s (training mode, same network, one adversary context)'
          % (s // len(trainer.adv_ctx), raw_s))
    print('raw fwd+bwd, 3S=%-5d %8.4f s (the main step alone)' % (trainer.batch_size, raw_main))
    print('round overhead over raw fwd+bwd: %.2fx' % (t_adv / max(rounds, 1) / raw_s))
    if own.face:
        print('decode (sampler, 112x112 JPEG, src+tar): %8.1f images/s; the training step '
              'consumes %.1f images/s' % (decode_rate(s), 2 * s * own.batches / wall))


def decode_rate(sources, batches=20):
    """Images/s the face sampler delivers (decode + mirror + layout), prefetch off."""
    import tempfile
    from data.face_rec import FaceRecordSet
    from data.synthetic import make_synthetic
    from src.face_sampler import IdentityStreamSampler
    with tempfile.TemporaryDirectory() as tmp:
        make_synthetic(tmp, num_ids=20, per_id=max(4, 2 * sources * batches // 20 + 1),
                       image_size=(112, 112), num_pairs=10, seed=0)
        sampler = IdentityStreamSampler(FaceRecordSet(tmp), sources, prefetch=False)
        t0, n = time.time(), 0
        for _ in range(batches):
            try:
                n += 2 * len(next(sampler)[0])
            except StopIteration:
                break
        return n / (time.time() - t0)


if __name__ == '__main__':
    main()
