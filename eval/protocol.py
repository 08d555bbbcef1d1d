"""The face verification protocol (InsightFace's MXNet-era ``src/eval/verification.py``, used
by MTER), on NumPy arrays (no MXNet):
- the embedding of an image and that of its horizontal flip are added and L2-normalised;
- the distance of a pair is the squared Euclidean distance of these unit vectors (0..4);
- accuracy: 10 folds in file order (no shuffle); on each fold the threshold (0..4 step 0.01)
  with the best accuracy on the 9 other folds is scored on it; "Accuracy-Flip" = mean +- std
  (population std) of the 10 fold accuracies; a pair is "same" when distance < threshold;
- VAL@FAR=1e-3: on each fold, the threshold (0..4 step 0.001) where the FAR on the 9 other
  folds reaches 1e-3 is found by linear interpolation of the FAR curve and scored on the fold;
- XNorm: the mean L2 norm of the raw embeddings (images and flips).

``l2_normalize`` is the project's one L2 normalisation of embeddings (rows; a floor of 1e-12
on the norm), used by the attacks, the detectors and the face tools too.
"""
import numpy as np

ACC_THRESHOLDS = np.arange(0, 4, 0.01)
VAL_THRESHOLDS = np.arange(0, 4, 0.001)
NORM_FLOOR = 1e-12


def l2_normalize(x, dtype=np.float64):
    """Rows divided by their L2 norm (zero rows stay zero), as ``dtype``."""
    x = np.asarray(x, dtype=dtype)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, NORM_FLOOR)


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
