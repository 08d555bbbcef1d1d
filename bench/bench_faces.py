#!/usr/bin/env python
"""Speed of face networks on the CPU, with PReLU as MXNet's operator (``stock``) and through
fast operators (``fast``, symbols.common.prelu) and, as the floor no form of PReLU can beat,
with a plain ReLU in its place (``relu``: not the same function), in the same run: forward,
forward + backward to the input, one MTER adversary round (src.adversary), one attack
iteration (eval.attacks on the embedding), and the training step; with --profile, MXNet's
profiler's share of each operator type in the training step, the adversary round and the
attack iteration.

  python bench/bench_faces.py --network y1 --batch-size 16
  python bench/bench_faces.py --network r18 --batch-size 8 --profile
  python bench/bench_faces.py --network y1 --model ../shared/realdata/models/y1-test2/model,0

Random weights (or --model's) and random images in [0, 255], 112x112.
"""
import argparse
import collections
import json
import logging
import os

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from bench.timing import timed
from eval import attacks
from eval.attacks import Objective
from eval.model import Network
from src.adversary import Adversary, FeatureDistance
from src.checkpoint import load_model
from symbols import get_embedding
from symbols.graph import Transform, from_checkpoint, rebuild, stock_prelu
from symbols.heads import inference_symbol

SHAPE = (3, 112, 112)
ROUNDS = 4


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--network', default='y1', help='y1, r18, r50 ... (fresnet)')
    parser.add_argument('--model', default='', help='weights from this prefix,epoch (or .onnx)')
    parser.add_argument('--batch-size', type=int, default=16)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--profile', action='store_true',
                        help='also print the operator shares (MXNet profiler)')
    return parser.parse_args(argv)


def _relu_for_prelu(node, inputs, nodes, built):  # pylint: disable=unused-argument
    attrs = node.get('attrs', {})
    if node['op'] == 'LeakyReLU' and attrs.get('act_type') == 'prelu':
        return mx.sym.Activation(inputs[0], act_type='relu', name=node['name'])
    return None


def build(args):
    """{kind: embedding}, arg, aux: the fast one as the project builds it."""
    if args.model:
        symbol, arg, aux = load_model(args.model)
        fast, _ = from_checkpoint(symbol, 'fc1', SHAPE)
    else:
        fast, _ = get_embedding(args.network, emb_size=128 if args.network == 'y1' else 512)
        mod = mx.mod.Module(fast, data_names=['data'], label_names=None)
        mod.bind([('data', (1,) + SHAPE)], for_training=False)
        mx.random.seed(0)
        mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2))
        arg, aux = mod.get_params()
    stock = stock_prelu(fast)
    return dict(stock=stock, fast=fast, relu=rebuild(stock, _relu_for_prelu)), arg, aux


def _executor(emb, arg, aux, batch, grad):
    """Adversary-mode forward (+ backward to the input only) of the embedding's distance."""
    loss = mx.sym.MakeLoss(mx.sym.sum(mx.sym.square(emb)))
    ex = loss.simple_bind(mx.cpu(), grad_req={'data': 'write'} if grad else 'null',
                          data=(batch,) + SHAPE)
    for name, arr in ex.arg_dict.items():
        if name in arg:
            arg[name].copyto(arr)
    for name, arr in ex.aux_dict.items():
        aux[name].copyto(arr)
    ex.arg_dict['data'][:] = np.random.RandomState(0).rand(batch, *SHAPE) * 255
    return ex


def measure(kind, emb, adv_emb, arg, aux, args):
    b = args.batch_size
    fwd_ex = _executor(adv_emb, arg, aux, b, False)
    bwd_ex = _executor(adv_emb, arg, aux, b, True)
    assert sorted(bwd_ex.grad_dict) == ['data'] or all(
        bwd_ex.grad_dict[k] is None for k in bwd_ex.grad_dict if k != 'data')
    results = collections.OrderedDict()
    results['forward'] = timed(lambda: fwd_ex.forward(is_train=False), args.repeats)

    def fwd_bwd():
        bwd_ex.forward(is_train=True)
        bwd_ex.backward()
    results['forward+backward'] = timed(fwd_bwd, args.repeats)
    images = (np.random.RandomState(1).rand(b, *SHAPE) * 255).astype(np.float32)
    per_round = []
    for rounds in (1, 1 + ROUNDS):    # a round's cost: the difference over ROUNDS rounds
        adversary = Adversary(adv_emb, int(emb.infer_shape(data=(1,) + SHAPE)[1][0][1]),
                              FeatureDistance(-1.0), [mx.cpu()], b, SHAPE, step=1.0,
                              steps=rounds, pixel_range=(0.0, 255.0))
        adversary.set_params(arg, aux)
        targets = adversary.embed(images[::-1].copy())
        per_round.append(timed(lambda: adversary.attack(images, target_emb=targets),
                               max(1, args.repeats // 2)))
    results['adversary round'] = (per_round[1] - per_round[0]) / ROUNDS
    net = Network(emb, arg, aux, output='embedding')
    # the attacks' graph (eval.attacks.inference_graph) takes the fast PReLU; 'stock' measures
    # what it cost before
    attacks.inference_graph = lambda symbol, shape: rebuild(symbol, Transform(
        symbol, (1,) + tuple(shape), adversary=True, fast_prelu=(kind == 'fast')))
    objective = Objective(net, targeted=True, threshold=1.0)
    reference = net.predict(images[::-1].copy())
    results['attack iteration'] = timed(
        lambda: objective.value_and_grad(images, reference), args.repeats)
    train = _train_step(emb, arg, aux, b)
    results['training step'] = timed(train, args.repeats)
    return results, (fwd_ex, fwd_bwd, adversary, images, targets, objective, reference, train)


def _train_step(emb, arg, aux, batch):
    """Forward + backward with every parameter's gradient (batch statistics) and a classifier,
    as the main step of ad_face.py."""
    sym = mx.sym.SoftmaxOutput(inference_symbol(emb, 100, int(emb.infer_shape(
        data=(1,) + SHAPE)[1][0][1]), 0), name='softmax')
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'])
    mod.bind([('data', (batch,) + SHAPE)], [('softmax_label', (batch,))])
    mod.init_params(mx.init.Xavier(), arg_params=arg, aux_params=aux, allow_missing=True,
                    allow_extra=True)
    rng = np.random.RandomState(2)
    data = mx.io.DataBatch([mx.nd.array(rng.rand(batch, *SHAPE) * 255)],
                           [mx.nd.array(rng.randint(0, 100, batch))])
    return lambda: mod.forward_backward(data)


def profile(step, label):
    """{operator: share of the time} of one call of ``step`` under MXNet's profiler."""
    step()
    mx.nd.waitall()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename='/tmp/bench_faces_profile.json')
    mx.profiler.set_state('run')
    step()
    mx.nd.waitall()
    mx.profiler.set_state('stop')
    stats = json.loads(mx.profiler.dumps(reset=True, format='json'))
    times = collections.Counter()
    for domain, ops in stats.get('Time', {}).items():
        if domain.startswith('MXNET_C_API') or not isinstance(ops, dict):
            continue
        for op, entry in ops.items():
            if op and not op.startswith('MX'):
                times[op.split('[')[0]] += entry.get('Total', 0)
    total = sum(times.values()) or 1.0
    shares = ', '.join('%s %.0f%%' % (op, 100 * t / total) for op, t in times.most_common(6))
    print('  profile %-16s %s' % (label + ':', shares))


def main(argv=None):
    args = parse_args(argv)
    runtime.setup_logging(level=logging.WARNING)
    if args.profile:    # one profiler entry per operator, not per bulked segment
        os.environ['MXNET_EXEC_BULK_EXEC_TRAIN'] = '0'
        os.environ['MXNET_EXEC_BULK_EXEC_INFERENCE'] = '0'
    graphs, arg, aux = build(args)
    print('network %s%s, batch %d, %dx%d, %s' % (args.network, ' (%s)' % args.model
                                                  if args.model else '', args.batch_size,
                                                  SHAPE[1], SHAPE[2], runtime.ONEDNN_NOTE))
    table = {}
    for kind, emb in graphs.items():
        adv_emb = from_checkpoint(emb, 'embedding', SHAPE, adversary=True,
                                  fast_prelu=(kind == 'fast'))[0]
        table[kind], steps = measure(kind, emb, adv_emb, arg, aux, args)
        if args.profile:
            fwd_ex, fwd_bwd, adversary, images, targets, objective, reference, train = steps
            print('%s PReLU:' % kind)
            profile(train, 'training step')
            profile(lambda: adversary.attack(images, target_emb=targets), 'adversary round')
            profile(lambda: objective.value_and_grad(images, reference), 'attack iteration')
    print_table(table, args.batch_size)


def print_table(table, batch_size):
    print('| seconds per batch of %d | stock PReLU | fast PReLU | speed-up | ReLU (floor) |'
          % batch_size)
    print('|---|---|---|---|---|')
    for key in table['fast']:
        print('| %s | %.3f | %.3f | %.2fx | %.3f |' % (
            key, table['stock'][key], table['fast'][key],
            table['stock'][key] / table['fast'][key], table['relu'][key]))
    for kind in table:
        t = table[kind]
        print('%s: forward+backward / forward %.2fx; adversary round / raw forward+backward '
              '%.2fx; attack iteration / raw forward+backward %.2fx'
              % (kind, t['forward+backward'] / t['forward'],
                 t['adversary round'] / t['forward+backward'],
                 t['attack iteration'] / t['forward+backward']))

if __name__ == '__main__':
    main()
