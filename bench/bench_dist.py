#!/usr/bin/env python
"""Distributed training (MXNet's parameter-server kvstore) on loopback, and on paper.

1. Measured: ad_mnist.py's training samples/s with 1 worker (kvstore device) and with 2 workers
   + 1 server (dist_sync, launch.py --launcher local), the same per-worker batch. On one machine
   the workers share its cores, so this shows the kvstore's overhead, not a speed-up.
2. On paper: the bytes each worker pushes (gradients) and pulls (weights) per batch for r18,
   r50 (112x112 faces) and o18 (MNIST), float32, and the time that takes on a 10/25/100 Gbit/s
   network, next to a step time you give (--step-seconds, e.g. measured on your GPU), giving
   the expected scaling to N machines when communication does not overlap computation.

  python bench/bench_dist.py --network s8 --steps 30
  python bench/bench_dist.py --paper-only --step-seconds 0.5
"""
import argparse
import os
import re
import subprocess
import sys

import ad_mnist
from symbols import get_embedding
from symbols.heads import inference_symbol

ROOT = os.path.dirname(os.path.abspath(ad_mnist.__file__))
PAPER = (('r18', (3, 112, 112), 10575), ('r50', (3, 112, 112), 10575), ('o18', (1, 28, 28), 10))


def parameter_count(network, shape, classes):
    """Trainable parameters of the network with its classifier (fc7 of ``classes``)."""
    emb, size = get_embedding(network, emb_size=512)
    sym = inference_symbol(emb, classes, size, 4 if network.startswith('r') else 0)
    arg_shapes, _, _ = sym.infer_shape(data=(1,) + shape)
    total = 0
    for name, dims in zip(sym.list_arguments(), arg_shapes):
        if name != 'data':
            count = 1
            for d in dims:
                count *= d
            total += count
    return total


def measured(args):
    flags = ['--network', args.network, '--loss-type', '0', '--main-per-batch-size', '96',
             '--adv-per-batch-size', '64', '--adv-round', str(args.adv_round), '--adv-thd', '-1',
             '--max-steps', str(args.steps), '--verbose', '0', '--ckpt', '0',
             '--disp-batches', str(args.steps // 2), '--seed', '0']
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    rows = []
    for workers in (1, 2):
        if workers == 1:
            cmd = [sys.executable, 'ad_mnist.py'] + flags
        else:
            cmd = [sys.executable, 'launch.py', '-n', '2', '-s', '1', '--launcher', 'local',
                   sys.executable, 'ad_mnist.py', '--kvstore', 'dist_sync'] + flags
        out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        if out.returncode:
            raise SystemExit('%s failed:\n%s' % (' '.join(cmd), out.stdout[-3000:] +
                                                 out.stderr[-3000:]))
        text = out.stdout + out.stderr
        local = [float(v) for v in re.findall(r'step %d .* ([0-9.]+) samples/s' % args.steps,
                                              text)]
        if len(local) != workers:
            raise SystemExit('bench_dist: expected a "step %d ... samples/s" line per worker '
                             '; the log ends:\n%s'
                             % (args.steps, text[-2000:]))
        rows.append((workers, sum(local)))
    print('measured on this machine (%s, %d main-batch images per worker per batch, %d '
          'attack rounds, OMP_NUM_THREADS=%d per process):'
          % (args.network, 96, args.adv_round, args.threads))
    for workers, rate in rows:
        print('  %d worker%s: %7.1f samples/s (all workers together)'
              % (workers, ' ' if workers == 1 else 's', rate))
    print('  2 workers / 1 worker: %.2fx' % (rows[1][1] / rows[0][1]))


def paper(step_seconds, machines):
    print('\nper batch, float32: with one server per machine, each machine\'s link carries, '
          'in each direction, its worker\'s push (or pull) of every parameter and its '
          'server\'s share of everyone\'s: 2 x 4 bytes x parameters. Time on a link of the '
          'given speed, and the efficiency at --step-seconds %g of computation when '
          'communication does not overlap it:' % step_seconds)
    print('  %-4s %12s %10s %s' % ('net', 'parameters', 'MB/batch', '  '.join(
        '%4d Gbit/s' % g for g in (10, 25, 100))))
    for network, shape, classes in PAPER:
        params = parameter_count(network, shape, classes)
        megabytes = 2 * 4 * params / 1e6
        times = [megabytes * 8 / (g * 1e3) for g in (10, 25, 100)]
        print('  %-4s %12d %10.1f %s' % (network, params, megabytes, '  '.join(
            '%8.3f s' % t for t in times)))
        print('       efficiency: %s; speed-up on %s machines at 25 Gbit/s: %s' % (
            '  '.join('%.0f%%' % (100 * step_seconds / (step_seconds + t)) for t in times),
            ','.join(map(str, machines)),
            ', '.join('%.1fx' % (n * step_seconds / (step_seconds + times[1]))
                      for n in machines)))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--network', default='s8')
    parser.add_argument('--steps', type=int, default=30, help='timed batches (even)')
    parser.add_argument('--adv-round', type=int, default=5)
    parser.add_argument('--threads', type=int, default=1, help='OMP threads per process')
    parser.add_argument('--paper-only', action='store_true', help='skip the measured runs')
    parser.add_argument('--step-seconds', type=float, default=0.5,
                        help='computation time of one batch on one machine (for the paper '
                             'figures)')
    parser.add_argument('--machines', default='2,4,8,16')
    args = parser.parse_args()
    if args.steps < 2 or args.steps % 2:
        parser.error('--steps must be even and >= 2 (the rate is read at its second display)')
    if not args.paper_only:
        measured(args)
    paper(args.step_seconds, [int(m) for m in args.machines.split(',')])


if __name__ == '__main__':
    main()
