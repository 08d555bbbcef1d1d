"""The attacks' objectives as functions of the network output, in float64 NumPy: per-sample value
(higher = closer to success) and its gradient with respect to the output.

``eval.attacks.Objective`` runs the network forward (recorded), evaluates these on the output and
back-propagates the output gradient: the loss adds no operator to the recorded graph. (Each
extra MXNet operator on a recorded head costs far more than its arithmetic: the DLR head written
in MXNet operators made a forward+backward pass of an s8 on CPU markedly slower.)

Classifier losses (``z`` logits (N, C), ``ref`` labels or, targeted, target classes):

* ``ce``: untargeted -log softmax(z)_y; targeted log softmax(z)_t.
* ``cw``: untargeted max_{j!=y} z_j - z_y; targeted z_t - max_{j!=t} z_j.
* ``dlr`` (Croce & Hein 2020), z sorted descending as z_pi1 >= z_pi2 >= ...: untargeted
  -(z_y - max_{i!=y} z_i) / (z_pi1 - z_pi3); targeted (only t known: the strongest other class
  plays z_y) -(max_{i!=t} z_i - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2). Invariant to shifting and
  scaling the logits; 1e-12 in the denominators as the reference.

``target`` (untargeted classifier objectives only: APGD-T, FAB-T) steers the loss toward an
auxiliary class t while success stays "misclassified": ce log softmax(z)_t, cw z_t - z_y, dlr
-(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2).

Embedding losses (``ref`` L2-normalised (N, D)), on f = out / ||out||: ``cos`` 1 - f.r,
``sqeuclidean`` ||f - r||^2; targeted (impersonation) negated.
"""
import numpy as np

CLASSIFIER_LOSSES = ('ce', 'cw', 'dlr')
EMBEDDING_LOSSES = ('cos', 'sqeuclidean')
L2_EPS = 1e-10  # as MXNet's L2Normalization


def _onehot(rows, cols, shape):
    out = np.zeros(shape)
    out[rows, cols] = 1.0
    return out


def _best_other(z, cls):
    """Per row, the class of the largest logit other than ``cls``."""
    masked = z.copy()
    masked[np.arange(len(z)), cls] = -np.inf
    return masked.argmax(axis=1)


def _log_softmax(z):
    shifted = z - z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def classifier_loss(z, ref, loss, targeted=False, target=None):
    """(value (N,), d value / d z (N, C)) for logits ``z``; see the module doc."""
    z = np.asarray(z, np.float64)
    rows, shape = np.arange(len(z)), z.shape
    ref = np.asarray(ref)
    if loss == 'ce':
        logp = _log_softmax(z)
        goal = ref if target is None else target  # the class whose probability moves
        sign = 1.0 if (targeted or target is not None) else -1.0
        grad = _onehot(rows, goal, shape) - np.exp(logp)
        return sign * logp[rows, goal], sign * grad
    if loss == 'cw':
        if target is not None:
            high, low = target, ref
        elif targeted:
            high, low = ref, _best_other(z, ref)
        else:
            high, low = _best_other(z, ref), ref
        return z[rows, high] - z[rows, low], _onehot(rows, high, shape) - _onehot(rows, low, shape)
    if loss == 'dlr':
        return _dlr(z, ref, targeted, target)
    raise ValueError('unknown classifier loss %r: expected one of %s'
                     % (loss, ', '.join(CLASSIFIER_LOSSES)))


def _dlr(z, ref, targeted, target):
    rows, classes = np.arange(len(z)), z.shape[1]
    needed = 4 if (targeted or target is not None) else 3
    if classes < needed:
        raise ValueError('the %sDLR loss needs at least %d classes, the model has %d'
                         % ('targeted ' if needed == 4 else '', needed, classes))
    order = np.argsort(-z, axis=1, kind='stable')[:, :needed]
    top = np.take_along_axis(z, order, axis=1)
    if needed == 3:
        high, low = _best_other(z, ref), ref
        scale = top[:, 0] - top[:, 2] + 1e-12
        d_scale = _onehot(rows, order[:, 0], z.shape) - _onehot(rows, order[:, 2], z.shape)
    else:
        high, low = (target, ref) if target is not None else (ref, _best_other(z, ref))
        scale = top[:, 0] - 0.5 * (top[:, 2] + top[:, 3]) + 1e-12
        d_scale = (_onehot(rows, order[:, 0], z.shape) - 0.5 * _onehot(rows, order[:, 2], z.shape)
                   - 0.5 * _onehot(rows, order[:, 3], z.shape))
    margin = z[rows, high] - z[rows, low]
    d_margin = _onehot(rows, high, z.shape) - _onehot(rows, low, z.shape)
    value = margin / scale
    return value, d_margin / scale[:, None] - (value / scale)[:, None] * d_scale


def embedding_loss(out, ref, loss, targeted=False):
    """(value (N,), d value / d out (N, D)) for raw embeddings ``out`` and normalised ``ref``."""
    out = np.asarray(out, np.float64).reshape(len(out), -1)
    ref = np.asarray(ref, np.float64)
    norm = np.sqrt(np.sum(out * out, axis=1, keepdims=True) + L2_EPS)
    feat = out / norm
    if loss == 'cos':
        dist, d_feat = 1.0 - np.sum(feat * ref, axis=1), -ref
    elif loss == 'sqeuclidean':
        dist, d_feat = np.sum(np.square(feat - ref), axis=1), 2.0 * (feat - ref)
    else:
        raise ValueError('unknown embedding loss %r: expected one of %s'
                         % (loss, ', '.join(EMBEDDING_LOSSES)))
    d_out = (d_feat - np.sum(d_feat * feat, axis=1, keepdims=True) * feat) / norm
    return (-dist, -d_out) if targeted else (dist, d_out)
