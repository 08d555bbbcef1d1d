"""Distance threshold of a face model at a target FAR (default 1e-3), for the attack tools.

As the original ``src/eval/cal_threshold.py``: squared Euclidean distance of L2-normalised
embeddings of single images (no flip unless ``--flip``; attacks compare single images), 10
folds, on each fold the threshold where the FAR of the 9 other folds reaches the target
(linear interpolation over thresholds 0..4 step 0.001), averaged over the folds.  A pair
"matches" when distance < threshold.  ``--best-acc`` adds the threshold with the best accuracy
on all pairs (thresholds 0..4 step 0.01), the choice of RobFR-style evaluations.

The JSON written (read it with ``load_threshold``)::

  {"model": "prefix,epoch", "target": "lfw", "far": 0.001, "threshold": 1.23,
   "per_fold": [...], "distance": "squared_euclidean_normalized", "flip": false,
   "cosine_similarity": 0.385, "val": ..., "best_acc_threshold": ..., "best_acc": ...}

``cosine_similarity`` = 1 - threshold / 2 is the same threshold on cosine similarity (a
pair matches when cos > it).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import json
import logging
import math
import os
import sys

import numpy as np

from runtime.atomic import atomic_write

from eval import cli
from eval.bin_sets import check_input_size, image_size_rule, load_targets
from eval.embedding import embed_pairs
from eval.protocol import (ACC_THRESHOLDS, accuracy_curve, combine_flip, pair_distances,
                           val_far_folds)

DISTANCE = 'squared_euclidean_normalized'


def thresholds_from_distances(dist, issame, far_target=1e-3, nfolds=10, best_acc=False):
    """The threshold record (a dict, as saved) from pair distances."""
    folds = val_far_folds(dist, issame, far_target, nfolds)
    threshold = float(np.mean(folds['thresholds']))
    record = dict(far=far_target, threshold=threshold,
                  per_fold=[float(t) for t in folds['thresholds']], distance=DISTANCE,
                  cosine_similarity=1.0 - threshold / 2.0, val=float(folds['val'].mean()),
                  far_measured=float(folds['far'].mean()), nfolds=nfolds,
                  num_pairs=int(len(issame)))
    if best_acc:
        _, _, acc = accuracy_curve(dist, issame, ACC_THRESHOLDS)
        best = int(np.argmax(acc))
        record.update(best_acc_threshold=float(ACC_THRESHOLDS[best]), best_acc=float(acc[best]))
    return record


def calibrate(network_or_fn, images, issame, batch_size, far_target=1e-3, nfolds=10, flip=False,
              best_acc=False):
    """Embeds a verification set (faces in 0..255) and returns ``thresholds_from_distances``'s
    record."""
    emb, emb_flip = embed_pairs(network_or_fn, images, batch_size, flip=flip)
    dist = pair_distances(combine_flip(emb, emb_flip))
    record = thresholds_from_distances(dist, issame, far_target, nfolds, best_acc)
    record['flip'] = bool(flip)
    return record


def save_threshold(path, record):
    def write(tmp):
        with open(tmp, 'w') as f:
            json.dump(record, f, indent=1)
    atomic_write(path, write)


def check_threshold(value, where):
    """A match threshold must be a finite squared distance of unit vectors in (0, 4]; returns it
    as a float, else raises ValueError naming ``where`` (the flag or the file)."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value) and 0 < value <= 4
    if not ok:
        raise ValueError('%s: the threshold is a squared Euclidean distance of normalised '
                         'embeddings: expected a number in (0, 4], got %r' % (where, value))
    return float(value)


def load_threshold(path, key='threshold'):
    """The threshold (squared Euclidean distance of normalised embeddings) saved in ``path``.

    ``key``: 'threshold' (at the saved FAR) or 'best_acc_threshold' (if it was computed).
    The value is checked as on the command line (``check_threshold``).
    """
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError) as err:
        raise ValueError('%s: not a readable threshold JSON (%s)' % (path, err)) from None
    if not isinstance(record, dict) or key not in record:
        raise ValueError('%s: expected a JSON object with "%s" (written by eval/cal_threshold.py%s)'
                         % (path, key, ' --best-acc' if key == 'best_acc_threshold' else ''))
    if record.get('distance', DISTANCE) != DISTANCE:
        raise ValueError('%s: threshold is on distance %r, expected %r'
                         % (path, record['distance'], DISTANCE))
    return check_threshold(record[key], '%s "%s"' % (path, key))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Distance threshold at a target FAR (10-fold, interpolated, averaged) of a '
                    'face model on a .bin verification set; saved as JSON for the attack tools.')
    cli.add_model_args(parser, 'checkpoint "prefix,epoch" or an exported .onnx file',
                       batch_size=32, image_size=True)
    parser.add_argument('--data-dir', required=True, help='folder holding <target>.bin')
    parser.add_argument('--target', default='lfw', help='one set name (default %(default)s)')
    parser.add_argument('--far', type=float, default=1e-3, help='target false accept rate')
    parser.add_argument('--nfolds', type=int, default=10, help='cross-validation folds')
    parser.add_argument('--flip', action='store_true',
                        help='add the flip embedding (the original threshold tool did not)')
    parser.add_argument('--best-acc', action='store_true',
                        help='also the best-accuracy threshold on all pairs')
    parser.add_argument('--out', default=None,
                        help='JSON to write (default: <prefix>-<epoch>-<target>-threshold.json, '
                             'or <model>-<target>-threshold.json beside a .onnx model)')
    args = parser.parse_args(argv)
    if ',' in args.target:
        parser.error('--target takes one set, got %r' % args.target)
    if not 0 < args.far < 1:
        parser.error('--far must lie in (0, 1), got %g' % args.far)
    return args


def run(args):
    """Calibrates, saves and prints the threshold; returns the saved record."""
    runtime.setup_logging(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    from eval.onnx_model import is_onnx_path, load_network
    from src.checkpoint import parse_model_spec
    if is_onnx_path(args.model):    # an exported model: the JSON goes beside the file
        stem = '%s-%s' % (os.path.splitext(args.model)[0], args.target)
    else:
        prefix, epoch = parse_model_spec(args.model)
        stem = '%s-%04d-%s' % (prefix, epoch, args.target)
    targets = load_targets(args.data_dir, [args.target], *image_size_rule(args))
    images, issame = targets[args.target]
    net = load_network(args.model, output='embedding', ctx=cli.parse_ctx(args.ctx, args.gpu))
    check_input_size(net, targets)
    record = dict(model=args.model, target=args.target)
    record.update(calibrate(net, images, issame, args.batch_size, args.far, args.nfolds,
                            args.flip, args.best_acc))
    out = args.out or stem + '-threshold.json'
    save_threshold(out, record)
    print('[%s] threshold at FAR=%g: %.5f (per fold %s; VAL %.5f)' % (
        args.target, args.far, record['threshold'],
        ' '.join('%.4f' % t for t in record['per_fold']), record['val']))
    if args.best_acc:
        print('[%s] best-accuracy threshold: %.5f (accuracy %.5f)'
              % (args.target, record['best_acc_threshold'], record['best_acc']))
    print('saved %s' % out)
    return record


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
