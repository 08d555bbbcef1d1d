"""Face verification on InsightFace ``.bin`` pair sets (LFW, CFP-FP, AgeDB-30, ...).

Protocol (InsightFace's MXNet-era ``src/eval/verification.py``, used by MTER):
- the embedding of an image and that of its horizontal flip are added and L2-normalised;
- the distance of a pair is the squared Euclidean distance of these unit vectors (0..4);
- accuracy: 10 folds in file order (no shuffle); on each fold the threshold (0..4 step 0.01)
  with the best accuracy on the 9 other folds is scored on it; "Accuracy-Flip" = mean +- std
  (population std) of the 10 fold accuracies; a pair is "same" when distance < threshold;
- VAL@FAR=1e-3: on each fold, the threshold (0..4 step 0.001) where the FAR on the 9 other
  folds reaches 1e-3 is found by linear interpolation of the FAR curve and scored on the fold;
- XNorm: the mean L2 norm of the raw embeddings (images and flips).

The metric functions work on NumPy arrays and need no MXNet.  ``embed_pairs`` and
``verify_targets`` take either an ``eval.model.Network`` or a plain embedding function, so the
trainer can pass its own forward.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import os
import re
import sys
from collections import OrderedDict

import numpy as np

from eval.cli import print_rows

ACC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
DEFAULT_TARGETS = 'lfw,cfp_fp,agedb_30'

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- metrics (NumPy)

def l2_normalize(x):
    """Rows divided by their L2 norm (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def pair_distances(embeddings):
    """Squared Euclidean distance of the L2-normalised rows 2i and 2i+1 -> (N/2,)."""
    emb = l2_normalize(embeddings)
    if len(emb) % 2:
        raise ValueError('expected an even number of embeddings (pairs), got %d' % len(emb))
    return np.sum(np.square(emb[0::2] - emb[1::2]), axis=1)


def _distances(dist_or_emb):
    arr = np.asarray(dist_or_emb, dtype=np.float64)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        return pair_distances(arr)
    raise ValueError('expected pair distances (N,) or interleaved embeddings (2N, D), got shape %s'
                     % (arr.shape,))


def xnorm(*embedding_arrays):
    """Mean L2 norm of every row of every given (raw, unnormalised) embedding array."""
    norms = [np.linalg.norm(np.asarray(e, dtype=np.float64), axis=1) for e in embedding_arrays]
    return float(np.mean(np.concatenate(norms)))


def combine_flip(embeddings, flip_embeddings=None):
    """L2-normalised embedding(image) + embedding(flip) (or of the image alone)."""
    emb = np.asarray(embeddings, dtype=np.float64)
    if flip_embeddings is not None:
        emb = emb + np.asarray(flip_embeddings, dtype=np.float64)
    return l2_normalize(emb)


def _counts(dist, issame, thresholds):
    """Per threshold: tp, fp, tn, fn with "same" predicted for dist < threshold."""
    pos = np.sort(dist[issame])
    neg = np.sort(dist[~issame])
    tp = np.searchsorted(pos, thresholds, side='left')
    fp = np.searchsorted(neg, thresholds, side='left')
    return tp, fp, len(neg) - fp, len(pos) - tp


def accuracy_curve(dist, issame, thresholds):
    """(tpr, fpr, accuracy) arrays over ``thresholds`` (rates are 0 when undefined)."""
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    tp, fp, tn, fn = _counts(dist, issame, np.asarray(thresholds, dtype=np.float64))
    tpr = np.where(tp + fn > 0, tp / np.maximum(tp + fn, 1), 0.0)
    fpr = np.where(fp + tn > 0, fp / np.maximum(fp + tn, 1), 0.0)
    acc = (tp + tn) / max(len(dist), 1)
    return tpr, fpr, acc


def val_far_at(threshold, dist, issame):
    """(VAL, FAR) at one threshold: accepted share of same pairs, of different pairs (0 if none)."""
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    accept = dist < threshold
    n_same, n_diff = int(issame.sum()), int((~issame).sum())
    val = np.sum(accept & issame) / n_same if n_same else 0.0
    far = np.sum(accept & ~issame) / n_diff if n_diff else 0.0
    return float(val), float(far)


def fold_splits(num_pairs, nfolds=10, folds=None):
    """(train indices, test indices) per fold.

    Default: ``nfolds`` contiguous folds in order (sklearn KFold, no shuffle); ``nfolds=1``
    trains and tests on everything (as the original's LFold).  ``folds`` (one fold id per
    pair, e.g. YTF's split column) gives the folds explicitly, in sorted id order.
    """
    indices = np.arange(num_pairs)
    if folds is not None:
        folds = np.asarray(folds)
        if len(folds) != num_pairs:
            raise ValueError('%d fold ids for %d pairs' % (len(folds), num_pairs))
        return [(indices[folds != f], indices[folds == f]) for f in np.unique(folds)]
    if nfolds <= 1:
        return [(indices, indices)]
    if num_pairs < nfolds:
        raise ValueError('%d pairs cannot make %d folds' % (num_pairs, nfolds))
    from sklearn.model_selection import KFold
    return list(KFold(n_splits=nfolds, shuffle=False).split(indices))


def kfold_accuracy(dist_or_emb, issame, nfolds=10, thresholds=ACC_THRESHOLDS, folds=None):
    """10-fold verification accuracy.

    ``dist_or_emb``: pair distances (N,) or interleaved embeddings (2N, D) (normalised here).
    Returns (tpr, fpr, accuracy, best_thresholds): tpr/fpr per threshold averaged over the test
    folds, accuracy per fold at the best threshold of the other folds, and those thresholds.
    """
    dist = _distances(dist_or_emb)
    issame = _check_issame(issame, len(dist))
    thresholds = np.asarray(thresholds, dtype=np.float64)
    splits = fold_splits(len(dist), nfolds, folds)
    tprs = np.zeros((len(splits), len(thresholds)))
    fprs = np.zeros_like(tprs)
    accuracy = np.zeros(len(splits))
    best = np.zeros(len(splits))
    for k, (train, test) in enumerate(splits):
        _, _, acc_train = accuracy_curve(dist[train], issame[train], thresholds)
        best[k] = thresholds[np.argmax(acc_train)]  # first of equally good thresholds
        tprs[k], fprs[k], _ = accuracy_curve(dist[test], issame[test], thresholds)
        accuracy[k] = accuracy_curve(dist[test], issame[test], best[k:k + 1])[2][0]
    return tprs.mean(0), fprs.mean(0), accuracy, best


def interp_threshold(fars, thresholds, far_target):
    """Threshold where the FAR curve reaches ``far_target``, by linear interpolation.

    Same result as the original's ``interp1d(fars, thresholds, kind='slinear')(far_target)``
    in the SciPy versions it ran on, which accepted repeated FAR values (SciPy >= 1.11 refuses
    them): within a run of equal FARs the last threshold counts as the left end of the next
    segment and the first as the right end of the previous one.  A target at (or above) the
    largest FAR gives the first threshold that reaches it (old SciPy gave a meaningless value).
    """
    fars = np.asarray(fars, dtype=np.float64)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    order = np.argsort(fars, kind='mergesort')
    x, y = fars[order], thresholds[order]
    if far_target < x[0]:
        return float(y[0])
    i = np.searchsorted(x, far_target, side='right') - 1  # last point with FAR <= target
    if i >= len(x) - 1:
        return float(y[np.searchsorted(x, x[-1], side='left')])
    j = i + 1
    return float(y[i] + (far_target - x[i]) * (y[j] - y[i]) / (x[j] - x[i]))


def threshold_at_far(dist, issame, far_target=1e-3, thresholds=VAL_THRESHOLDS):
    """The interpolated threshold at FAR ``far_target``; 0.0 if the FAR never reaches it."""
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    _, fp, _, _ = _counts(dist, issame, thresholds)
    n_diff = int((~issame).sum())
    fars = fp / n_diff if n_diff else np.zeros(len(thresholds))
    if fars.max() < far_target:
        return 0.0
    return interp_threshold(fars, thresholds, far_target)


def val_far_folds(dist_or_emb, issame, far_target=1e-3, nfolds=10, thresholds=VAL_THRESHOLDS,
                  folds=None):
    """Per fold: threshold at ``far_target`` on the other folds, and (VAL, FAR) on the fold.

    Returns dict(val, far, thresholds), each an array with one entry per fold.
    """
    dist = _distances(dist_or_emb)
    issame = _check_issame(issame, len(dist))
    splits = fold_splits(len(dist), nfolds, folds)
    val, far, thr = np.zeros(len(splits)), np.zeros(len(splits)), np.zeros(len(splits))
    for k, (train, test) in enumerate(splits):
        thr[k] = threshold_at_far(dist[train], issame[train], far_target, thresholds)
        val[k], far[k] = val_far_at(thr[k], dist[test], issame[test])
    return dict(val=val, far=far, thresholds=thr)


def val_far(dist_or_emb, issame, far_target=1e-3, nfolds=10, thresholds=VAL_THRESHOLDS,
            folds=None):
    """VAL at FAR ``far_target`` -> (val mean, val std, far mean) over the folds."""
    r = val_far_folds(dist_or_emb, issame, far_target, nfolds, thresholds, folds)
    return float(r['val'].mean()), float(r['val'].std()), float(r['far'].mean())


def verification_metrics(embeddings, flip_embeddings, issame, nfolds=10, folds=None):
    """All reported numbers from raw embeddings of the images (2N, D) and of their flips.

    ``flip_embeddings`` may be None (no flip).  Returns a dict of plain Python values.
    """
    issame = _check_issame(issame, len(embeddings) // 2)
    raw = [embeddings] + ([flip_embeddings] if flip_embeddings is not None else [])
    dist = pair_distances(combine_flip(embeddings, flip_embeddings))
    tpr, fpr, accuracy, best = kfold_accuracy(dist, issame, nfolds, folds=folds)
    val, val_std, far = val_far(dist, issame, 1e-3, nfolds, folds=folds)
    return dict(acc_mean=float(accuracy.mean()), acc_std=float(accuracy.std()),
                accuracy=accuracy.tolist(), best_thresholds=best.tolist(),
                xnorm=xnorm(*raw), val=val, val_std=val_std, far=far,
                tpr=tpr.tolist(), fpr=fpr.tolist(), thresholds=ACC_THRESHOLDS.tolist(),
                num_pairs=int(len(issame)), flip=flip_embeddings is not None)


def _check_issame(issame, num_pairs):
    issame = np.asarray(issame, dtype=bool).ravel()
    if len(issame) != num_pairs:
        raise ValueError('%d same/different labels for %d pairs' % (len(issame), num_pairs))
    return issame


# ----------------------------------------------------------------------------- embeddings

def as_embed_fn(network_or_fn):
    """An embedding function: NumPy float32 (B, C, H, W) -> NumPy (B, D).

    Accepts an ``eval.model.Network`` or any callable returning a NumPy array or an NDArray.
    """
    from eval.model import Network
    if isinstance(network_or_fn, Network):
        import mxnet as mx
        net = network_or_fn
        return lambda x: net(mx.nd.array(x, ctx=net.ctx)).asnumpy()
    if not callable(network_or_fn):
        raise TypeError('expected an eval.model.Network or an embedding function, got %s'
                        % type(network_or_fn).__name__)

    def embed(x):
        out = network_or_fn(x)
        return out.asnumpy() if hasattr(out, 'asnumpy') else np.asarray(out)
    return embed


def embed_pairs(network_or_fn, images, batch_size, flip=True, scale=1.0, fixed_batch=False):
    """Raw embeddings of images and of their horizontal flips.

    ``images``: uint8 (N, H, W, C) (as ``data.bin_format.decode_images`` gives).  Each batch is
    fed as float32 (B, C, H, W) times ``scale`` (1.0: faces in 0..255).  ``fixed_batch``: always
    feed exactly ``batch_size`` images (the last batch is padded with copies of its last image
    and the padding dropped), for executors bound to one batch shape.
    Returns (embeddings (N, D), flip embeddings (N, D) or None).
    """
    if batch_size < 1:
        raise ValueError('batch_size must be >= 1, got %d' % batch_size)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError('expected images (N, H, W, C), got shape %s' % (images.shape,))
    embed = as_embed_fn(network_or_fn)
    outs = {False: [], True: []}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        count = len(batch)
        if fixed_batch and count < batch_size:
            pad = np.repeat(batch[-1:], batch_size - count, axis=0)
            batch = np.concatenate([batch, pad])
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        if scale != 1.0:
            x *= scale
        for flipped in ((False, True) if flip else (False,)):
            xin = np.ascontiguousarray(x[:, :, :, ::-1]) if flipped else x
            out = np.asarray(embed(xin), dtype=np.float32)
            outs[flipped].append(out.reshape(len(out), -1)[:count])
    if not outs[False]:
        return np.zeros((0, 0), np.float32), (np.zeros((0, 0), np.float32) if flip else None)
    emb = np.concatenate(outs[False])
    return emb, (np.concatenate(outs[True]) if flip else None)


def evaluate_images(network_or_fn, images, issame, batch_size, nfolds=10, flip=True, scale=1.0,
                    fixed_batch=False, folds=None):
    """Embeds ``images`` (pairs interleaved, uint8 NHWC) and returns ``verification_metrics``."""
    emb, emb_flip = embed_pairs(network_or_fn, images, batch_size, flip=flip, scale=scale,
                                fixed_batch=fixed_batch)
    return verification_metrics(emb, emb_flip, issame, nfolds, folds=folds)


def evaluate(network_or_fn, bin_path, batch_size, nfolds=10, image_size=None, resize=False):
    """``verification_metrics`` of a network on one ``.bin`` file (``load_target``'s size
    rules)."""
    images, issame = load_target(bin_path, image_size, resize)
    return evaluate_images(network_or_fn, images, issame, batch_size, nfolds)


def verify_targets(network_or_fn, targets, batch_size, nfolds=10, scale=1.0, fixed_batch=False,
                   logger=None):
    """Verification on several sets: ``targets`` maps name -> (images uint8 NHWC, issame).

    Returns an OrderedDict name -> ``verification_metrics`` dict, and logs one line per set
    ("[lfw]Accuracy-Flip: 0.99500+-0.00300 XNorm: ... VAL@FAR=1e-3: ...").
    """
    logger = logger or log
    results = OrderedDict()
    for name, (images, issame) in targets.items():
        r = evaluate_images(network_or_fn, images, issame, batch_size, nfolds, scale=scale,
                            fixed_batch=fixed_batch)
        logger.info('[%s]XNorm: %f', name, r['xnorm'])
        logger.info('[%s]Accuracy-Flip: %1.5f+-%1.5f', name, r['acc_mean'], r['acc_std'])
        logger.info('[%s]VAL@FAR=1e-3: %1.5f+-%1.5f (FAR %1.5f)', name, r['val'], r['val_std'],
                    r['far'])
        results[name] = r
    return results


# ----------------------------------------------------------------------------- data sets

def load_target(bin_path, image_size=None, resize=False, expected_from=None):
    """A ``.bin`` file -> (images uint8 (2N, H, W, 3) RGB, issame bool (N,)).

    ``image_size`` (H, W): the size the model expects (``expected_from`` says where that comes
    from, for the error). Images of another size are an error naming both sizes, unless
    ``resize`` (an explicit --image-size): then they are resized, with a warning in the log.
    """
    from data.bin_format import ImageSizeError, decode_images, load_bin, stored_image_size
    bins, issame = load_bin(bin_path)
    try:
        images = decode_images(bins, image_size, resize=resize)
    except ImageSizeError as err:
        if image_size is None:
            raise ValueError('%s: images of different sizes (%s); pass --image-size H,W to '
                             'resize them' % (bin_path, err)) from None
        raise ValueError('%s holds %dx%d images but %s %dx%d (%s); pass --image-size H,W to '
                         'resize them' % (bin_path, err.found[0], err.found[1],
                                          expected_from or 'the model expects',
                                          err.expected[0], err.expected[1], err)) from None
    except ValueError as err:
        raise ValueError('%s: %s' % (bin_path, err)) from None
    if resize and image_size is not None and bins:
        stored = stored_image_size(bins)
        if stored != tuple(image_size):
            log.warning('%s: resized its %dx%d images to %dx%d (--image-size)', bin_path,
                        stored[0], stored[1], image_size[0], image_size[1])
    return images, np.asarray(issame, dtype=bool)


def load_targets(data_dir, names, image_size=None, resize=False, expected_from=None):
    """OrderedDict name -> (images, issame) from ``data_dir/<name>.bin`` (``load_target``'s
    size rules).

    A missing file raises FileNotFoundError listing the ``.bin`` files that are there.
    """
    if isinstance(names, str):
        names = [n for n in names.split(',') if n]
    paths = [(n, os.path.join(data_dir, n + '.bin')) for n in names]
    missing = [p for _, p in paths if not os.path.isfile(p)]
    if missing:
        found = sorted(f for f in os.listdir(data_dir) if f.endswith('.bin')) \
            if os.path.isdir(data_dir) else []
        raise FileNotFoundError('missing verification set(s) %s; %s has %s' % (
            ', '.join(missing), data_dir,
            ('these .bin files: ' + ', '.join(found)) if found else 'no .bin files'))
    return OrderedDict((n, load_target(p, image_size, resize, expected_from)) for n, p in paths)


def check_input_size(net, targets):
    """Runs the network on one image of each set: a size it does not take is a ValueError
    naming the set and the size (instead of a shape error deep in MXNet or onnxruntime)."""
    for name, (images, _) in targets.items():
        if not len(images):
            continue
        try:
            as_embed_fn(net)(np.ascontiguousarray(images[:1].transpose(0, 3, 1, 2),
                                                  dtype=np.float32))
        except Exception as err:  # MXNet and onnxruntime raise their own error types
            raise ValueError('%s.bin holds %dx%d images, which the model does not take (%s); '
                             'pass --image-size H,W to resize them'
                             % (name, images.shape[1], images.shape[2],
                                str(err).strip().splitlines()[-1][:200])) from None


def read_image_size(data_dir):
    """(H, W) from an InsightFace ``property`` file (``num_classes,H,W``), or None."""
    from data.face_rec import read_property
    path = os.path.join(data_dir, 'property')
    return read_property(path)[1] if os.path.isfile(path) else None


def image_size_rule(args):
    """(image_size, resize, expected_from) of an eval tool's --image-size and --data-dir:
    an explicit --image-size resizes the .bin images to it (logged); otherwise the size in
    DATA_DIR/property, if there is one, must be theirs; otherwise their stored size is used."""
    if args.image_size:
        return tuple(args.image_size), True, '--image-size'
    size = read_image_size(args.data_dir)
    return size, False, ('%s says' % os.path.join(args.data_dir, 'property')) if size else None


def parse_image_size(text):
    """'112,112' or '112' -> (H, W)."""
    parts = [int(p) for p in text.replace('x', ',').split(',') if p.strip()]
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise argparse.ArgumentTypeError('expected an image size "H,W", got %r' % text)
    return tuple(parts)


# ----------------------------------------------------------------------------- CLI helpers

def model_epochs(spec):
    """'prefix,epoch[|epoch...]' -> (prefix, [epochs]); 'prefix' -> every prefix-NNNN.params."""
    m = re.match(r'^(.*),(\d+(?:\|\d+)*)$', spec)
    if m:
        return m.group(1), [int(e) for e in m.group(2).split('|')]
    prefix = spec
    folder = os.path.dirname(prefix) or '.'
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4,})\.params$')
    epochs = sorted(int(m.group(1)) for m in
                    (pattern.match(f) for f in (os.listdir(folder) if os.path.isdir(folder)
                                                else [])) if m)
    if not epochs:
        raise FileNotFoundError('no %s-NNNN.params files in %s (expected --model prefix,epoch '
                                'or a prefix with saved epochs)' % (os.path.basename(prefix),
                                                                    folder))
    return prefix, epochs


def parse_ctx(ctx=None, gpu=None):
    """MXNet context from --ctx ('cpu', 'gpu', 'gpu:1', 'gpu1') or --gpu N (N < 0: CPU)."""
    import mxnet as mx
    if ctx:
        m = re.match(r'^(cpu|gpu)(?::?(\d+))?$', ctx.strip())
        if not m:
            raise ValueError('expected --ctx cpu, gpu or gpu:N, got %r' % ctx)
        return mx.cpu() if m.group(1) == 'cpu' else mx.gpu(int(m.group(2) or 0))
    if gpu is not None and gpu >= 0:
        return mx.gpu(gpu)
    return mx.cpu()


def add_model_args(parser, onnx=False):
    """Arguments shared by the evaluation CLIs (``onnx``: the tool also runs .onnx files)."""
    parser.add_argument('--model', required=True,
                        help='prefix,epoch (also prefix,3|5|7 for several epochs, or just prefix '
                             'for every saved prefix-NNNN.params)' + (
                                 '; or an exported model.onnx (deploy/export_onnx.py), run by '
                                 'onnxruntime' if onnx else ''))
    parser.add_argument('--batch-size', type=int, default=32, help='images per forward pass')
    parser.add_argument('--image-size', type=parse_image_size, default=None,
                        help='H,W the .bin images are resized to (logged); default: they must '
                             'have the size in DATA_DIR/property (if any; an error otherwise), '
                             'else the stored size)')
    parser.add_argument('--gpu', type=int, default=None, help='GPU id (default: CPU)')
    parser.add_argument('--ctx', default=None, help='context: cpu, gpu or gpu:N (overrides --gpu)')


def format_table(rows):
    """rows: dicts with model, epoch, target and metrics -> aligned text table."""
    header = ['model', 'epoch', 'target', 'Accuracy-Flip', 'XNorm', 'VAL@FAR=1e-3']
    lines = [[r['model'], '-' if r['epoch'] is None else str(r['epoch']), r['target'],
              '%1.5f+-%1.5f' % (r['acc_mean'], r['acc_std']), '%.4f' % r['xnorm'],
              '%1.5f+-%1.5f (FAR %1.5f)' % (r['val'], r['val_std'], r['far'])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = '  '.join('%%-%ds' % w for w in widths)
    out = [fmt % tuple(header), fmt % tuple('-' * w for w in widths)]
    out += [fmt % tuple(line) for line in lines]
    return '\n'.join(out)


def plot_roc(rows, path):
    """ROC curves (FPR vs TPR over the accuracy thresholds) of every row, into a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    for r in rows:
        name = os.path.basename(r['model']) + ('' if r['epoch'] is None else ',%d' % r['epoch'])
        ax.plot(r['fpr'], r['tpr'], label='%s %s (%.4f)' % (name, r['target'], r['acc_mean']))
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize='small', loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='Face verification accuracy (InsightFace protocol: image+flip embeddings, '
                    '10-fold Accuracy-Flip, XNorm, VAL@FAR=1e-3) on .bin pair sets.')
    add_model_args(parser, onnx=True)
    parser.add_argument('--data-dir', required=True, help='folder holding the <target>.bin files')
    parser.add_argument('--target', default=DEFAULT_TARGETS,
                        help='comma-separated set names, e.g. lfw,cfp_fp,cfp_ff,agedb_30,calfw,'
                             'cplfw (default %(default)s)')
    parser.add_argument('--nfolds', type=int, default=10, help='cross-validation folds')
    parser.add_argument('--json', default=None, help='write every result (with ROC) here')
    parser.add_argument('--roc', default=None, help='write ROC curves to this PNG')
    args = parser.parse_args(argv)
    runtime.setup_logging(level=logging.INFO, format='%(message)s', stream=sys.stderr)

    from eval.onnx_model import is_onnx_path, load_network
    try:
        # an exported .onnx file is one model without epochs (loaded here: a bad file is an error)
        onnx_net = load_network(args.model) if is_onnx_path(args.model) else None
        prefix, epochs = (args.model, [None]) if onnx_net else model_epochs(args.model)
        targets = load_targets(args.data_dir, args.target, *image_size_rule(args))
        ctx = parse_ctx(args.ctx, args.gpu)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, 'error: %s\n' % err)
    rows = []
    for epoch in epochs:
        net = onnx_net or load_network('%s,%d' % (prefix, epoch), output='embedding', ctx=ctx)
        try:
            check_input_size(net, targets)
        except ValueError as err:
            parser.exit(2, 'error: %s\n' % err)
        results = verify_targets(net, targets, args.batch_size, args.nfolds)
        for name, r in results.items():
            rows.append(dict(model=prefix, epoch=epoch, target=name, **r))
    print_rows(rows, args.json, format_table)
    if args.roc:
        plot_roc(rows, args.roc)
    return rows


if __name__ == '__main__':
    main()
