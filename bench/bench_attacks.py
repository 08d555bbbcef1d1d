#!/usr/bin/env python
"""Speed of the attacks: seconds per iteration of APGD-CE, APGD-T, FAB-T and Square on one batch
against the raw forward+backward (and forward) pass of the same network on the same batch, and
what standard AutoAttack costs per image that survives every stage.

  python bench/bench_attacks.py --network s8 --batch-size 128
  python bench/bench_attacks.py --model results/models/mter/model,0 --batch-size 128

The network (random weights, or --model's checkpoint) sees random images in [0, 1]; eps is tiny
(--eps, default 1e-4) so that no image is broken and every iteration runs on the whole batch:
the cost of an image that stays robust, the one that dominates AutoAttack's time. The raw
passes are the network alone on data already on its context (the graph the attacks
differentiate, eval.attacks.gradient_block), so the overhead shown includes the attacks'
copies of images and gradients to and from NumPy and their NumPy work. One APGD / Square
iteration is one forward(+backward) pass; one FAB iteration is a forward+backward pass (the
linearisation) and a forward pass (is the new point adversarial?), as in the reference.
"""
import argparse
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from bench.timing import timed
from eval import registry
from eval.attacks import gradient_block
from eval.model import Network
from symbols import get_embedding
from symbols.heads import inference_symbol


def member(name, net, eps, **budget):
    """AutoAttack's member ``name`` from the registry, one target class (per-target cost)."""
    settings = registry.AttackSettings(budget=registry.Budget(targets=1, **budget))
    return registry.build(name, net, eps, settings)


def build_network(args, ctx):
    if args.model:
        return Network.load(args.model, output='logits', ctx=ctx)
    emb, size = get_embedding(args.network)
    sym = inference_symbol(emb, args.classes, size, 0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None, context=ctx)
    mod.bind([('data', (2,) + tuple(args.shape))], for_training=False)
    mx.random.seed(0)
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    return Network(sym, arg, aux, output='logits', ctx=ctx)


def raw_passes(net, x, repeats):
    """Seconds of one forward+backward (input gradient) and one forward of the batch."""
    block = gradient_block(net, x.shape[1:])
    data = mx.nd.array(x, ctx=net.ctx)
    data.attach_grad()

    def fwd_bwd():
        with mx.autograd.record(train_mode=True):
            out = block(data)
        out.backward(mx.nd.ones_like(out))
        data.grad.wait_to_read()

    def fwd():
        net.block(data).wait_to_read()
    return timed(fwd_bwd, repeats), timed(fwd, repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], epilog=__doc__.split(
        '\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--network', default='s8', help='random-weights network (default s8)')
    parser.add_argument('--model', default=None, help='checkpoint "prefix,epoch" instead')
    parser.add_argument('--shape', type=int, nargs=3, default=(1, 28, 28), help='C H W')
    parser.add_argument('--classes', type=int, default=10)
    parser.add_argument('--batch-size', type=int, default=128)
    parser.add_argument('--eps', type=float, default=1e-4)
    parser.add_argument('--iterations', type=int, default=20,
                        help='n: APGD / FAB run n and 2n iterations (default 20)')
    parser.add_argument('--queries', type=int, default=100,
                        help='n of Square: n and 2n queries (default 100)')
    parser.add_argument('--repeats', type=int, default=10, help='timed raw passes')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id (-1: CPU)')
    args = parser.parse_args(argv)
    ctx = mx.gpu(args.gpu) if args.gpu >= 0 else mx.cpu()
    net = build_network(args, ctx)
    x = np.random.default_rng(0).random((args.batch_size,) + tuple(args.shape), np.float32)
    y = net.predict(x, args.batch_size).argmax(axis=1)  # "correct" by construction
    fb, f = raw_passes(net, x, args.repeats)
    k, q = args.iterations, args.queries
    runs = [  # name, attack with n iterations, iterations timed, raw seconds per iteration
        ('apgd-ce', lambda n: member('apgd-ce', net, args.eps, iterations=n), k, fb),
        ('apgd-t', lambda n: member('apgd-t', net, args.eps, iterations=n), k, fb),
        ('fab-t', lambda n: member('fab-t', net, args.eps, iterations=n), k, fb + f),
        ('square', lambda n: member('square', net, args.eps, queries=n), q, f)]
    print('batch %d %s on %s; raw forward+backward %.4f s, forward %.4f s'
          % (args.batch_size, args.model or args.network, ctx, fb, f))
    print('iteration = (time of 2n iterations - time of n) / n: fixed costs (clean and final '
          'evaluation, target ranking) excluded and shown apart')
    print('| attack | n | iteration (s) | raw pass(es) (s) | overhead | fixed (s) | broken |')
    print('|---|---|---|---|---|---|---|')
    per_image = {}
    for name, make, n, raw in runs:
        seconds, broken = [], 0.0
        for iterations in (n, 2 * n):  # the raw passes warmed up both graphs at this size
            attack = make(iterations)
            started = time.time()
            broken = max(broken, attack(x, y)[1].mean())
            seconds.append(time.time() - started)
        per_iteration = (seconds[1] - seconds[0]) / n
        per_image[name] = per_iteration / args.batch_size
        print('| %s | %d | %.4f | %.4f | %+.1f%% | %.3f | %.0f%% |' % (
            name, n, per_iteration, raw, 100 * (per_iteration / raw - 1),
            seconds[0] - n * per_iteration, 100 * broken))
    survivor = (100 * per_image['apgd-ce'] + 9 * 100 * per_image['apgd-t']
                + 9 * 100 * per_image['fab-t'] + 5000 * per_image['square'])
    print('\nstandard AutoAttack on an image that survives every stage (APGD-CE 100 + APGD-T '
          '9x100 + FAB-T 9x100 iterations + Square 5000 queries): %.2f s per image at this '
          'batch size' % survivor)


if __name__ == '__main__':
    main()
