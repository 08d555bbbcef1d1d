"""White-box L-inf attacks on a classifier or an embedding network, in pixel space.

Every attack has the same call::

    attack = PGD(model, eps=0.3, step=0.01, steps=40, restarts=1, targeted=False, loss='ce',
                 pixel_range=(0, 1))
    x_adv, success = attack(x, y)        # x: (N, C, H, W) NumPy or NDArray; per-sample success

``model`` is an ``eval.model.Network``; its ``output`` decides what the attack means:

* ``'logits'`` (classifier): ``y`` holds labels (untargeted: success = misclassified) or target
  labels (``targeted=True``: success = predicted as the target). Losses: ``'ce'`` (cross-entropy),
  ``'cw'`` (Carlini-Wagner margin max_{j!=y} z_j - z_y, used under the L-inf budget) or ``'dlr'``
  (Croce & Hein's difference of logits ratio; eval.attack_losses). An untargeted objective may
  also be steered toward an auxiliary ``target`` class per sample (APGD-T, FAB-T): success stays
  "misclassified", only the loss changes (``Objective.value_and_grad(x, ref, target)``).
* ``'embedding'`` (feature-level): distances are between L2-normalised embeddings.
  ``targeted=True`` is impersonation: ``y`` is the target (embeddings (N, D), or images that
  are embedded first) and the attack lowers the distance to it; success = squared Euclidean
  distance < ``threshold``. ``targeted=False`` is dodging: the attack raises the distance from
  ``y`` (default: the clean embedding of ``x`` itself); success = distance >= ``threshold``.
  ``threshold`` is on the squared Euclidean distance of normalised embeddings (0..4), the
  verification distance of the InsightFace protocol. Losses: ``'cos'`` (1 - cosine) or
  ``'sqeuclidean'`` (= 2 - 2 cosine; same sign gradient).

Budget: after every step the image is clipped to [x - eps, x + eps] intersected with
``pixel_range``, in float32, with bounds computed once per call and nudged by one ulp where
float32 rounding of x +- eps would leave the ball, so max |x_adv - x| <= eps holds exactly.

Gradients come from ``mx.autograd`` on the model's graph, in inference semantics (batch-norm
on moving statistics, dropout off), so samples never interact and per-sample quantities
(momentum normalisation, restarts' worst case) are exact. MXNet 1.9.1 with MKL-DNN computes
WRONG input gradients through max-pooling recorded with ``train_mode=False`` (the inference
forward keeps no workspace; verified against float64 autograd), so ``gradient_block`` rebuilds
the graph with batch-norm forced to global statistics and dropout removed, and gradients are
recorded with ``train_mode=True`` on that copy: the same function as ``model.block`` in
inference mode, with correct backward passes. Outputs and success are computed on
``model.block`` itself.

AutoAttack's attacks follow the same interface on this module's ``Objective``, ``linf_bounds``
and ``run_attack``: eval/apgd.py (APGD, APGD-T), eval/fab.py (FAB-T), eval/square.py (Square) and
the suite in eval/autoattack.py.

Note on dodging from the clean embedding (``y=None``): the distance has a minimum (zero
gradient) at x itself, so an attack without random start (FGSM, BIM, MI-FGSM) follows the
sign of round-off noise there, or does not move at all (a warning says so). Use PGD's random
start, or a reference embedding of another image (a verification pair's partner).
"""
import json
import warnings
import weakref

import numpy as np
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
from tqdm import tqdm

from eval.attack_losses import (CLASSIFIER_LOSSES, EMBEDDING_LOSSES, classifier_loss,
                                embedding_loss)
from eval.protocol import l2_normalize
from symbols.graph import Transform, rebuild


def _to_numpy(x):
    if isinstance(x, mx.nd.NDArray):
        x = x.asnumpy()
    return np.ascontiguousarray(x, dtype=np.float32)


def linf_bounds(x, eps, pixel_range):
    """float32 (lo, hi) with lo <= x <= hi, hi - x <= eps, x - lo <= eps (exactly, in float64),
    and both inside ``pixel_range``."""
    x64 = x.astype(np.float64)
    lo = np.maximum(x64 - eps, pixel_range[0]).astype(np.float32)  # rounded to nearest:
    hi = np.minimum(x64 + eps, pixel_range[1]).astype(np.float32)  # at most 1 ulp outside
    over = (x64 - lo) > eps
    lo[over] = np.nextafter(lo[over], np.float32(np.inf))
    over = (hi - x64) > eps
    hi[over] = np.nextafter(hi[over], np.float32(-np.inf))
    return lo, hi


def inference_graph(symbol, image_shape):
    """``symbol`` in adversary mode (``symbols.graph``): batch-norm on global statistics,
    dropout off, PReLU on fast operators; ``image_shape`` (C, H, W) gives the PReLUs' channels.
    Raises on ops it cannot make deterministic."""
    return rebuild(symbol, Transform(symbol, (1,) + tuple(image_shape), adversary=True))


_GRADIENT_BLOCKS = weakref.WeakKeyDictionary()


def gradient_block(model, image_shape):
    """A hybridized SymbolBlock computing ``model.block``'s function (inference semantics) that
    is safe to differentiate under ``autograd.record(train_mode=True)``, for images of
    ``image_shape``; parameters are copied (``model`` is left untouched) and get no gradient
    buffers. Cached per model."""
    image_shape = tuple(image_shape)
    cached = _GRADIENT_BLOCKS.get(model)
    if cached is None or cached[0] != image_shape:
        symbol = inference_graph(model.block(mx.sym.var('data')), image_shape)
        block = mx.gluon.SymbolBlock(symbol, mx.sym.var('data', dtype='float32'))
        source = {name: param.data() for name, param in model.block.collect_params().items()}
        for name, param in block.collect_params().items():
            param.grad_req = 'null'
            param._load_init(source[name], model.ctx)  # pylint: disable=protected-access
        block.hybridize(static_alloc=True)
        cached = _GRADIENT_BLOCKS[model] = (image_shape, block)
    return cached[1]


class Objective:
    """What an attack maximises and how its success is decided, for one model.

    ``value_and_grad`` returns the per-sample objective (higher = closer to success) and its
    gradient w.r.t. the input; ``evaluate`` the objective and success without gradients.
    """

    def __init__(self, model, targeted=False, loss=None, threshold=None):
        if model.output not in ('logits', 'embedding'):
            raise ValueError('model.output must be logits or embedding, got %r' % model.output)
        self.model = model
        self.targeted = bool(targeted)
        self.on_embedding = model.output == 'embedding'
        allowed = EMBEDDING_LOSSES if self.on_embedding else CLASSIFIER_LOSSES
        self.loss = loss or allowed[0]
        if self.loss not in allowed:
            raise ValueError('loss %r does not apply to a model with %s output: use one of %s'
                             % (self.loss, model.output, ', '.join(allowed)))
        if self.on_embedding and threshold is None:
            raise ValueError('an attack on an embedding needs threshold= (squared Euclidean '
                             'distance of normalised embeddings that decides a match)')
        self.threshold = threshold

    def reference(self, x, y):
        """Labels (classifier) or normalised reference embeddings (embedding) for a batch."""
        if not self.on_embedding:
            if y is None:
                raise ValueError('an attack on a classifier needs labels (or target labels)')
            y = np.asarray(y.asnumpy() if isinstance(y, mx.nd.NDArray) else y)
            if y.shape != (len(x),):
                raise ValueError('expected %d labels, got shape %s' % (len(x), y.shape))
            return y.astype(np.int64)
        if y is None:
            if self.targeted:
                raise ValueError('impersonation needs target embeddings or target images')
            y = x
        y = _to_numpy(y)
        if y.ndim == 4:
            y = self.model.predict(y, batch_size=max(1, len(y)))
        if y.shape[0] != len(x) or y.ndim != 2:
            raise ValueError('expected %d reference embeddings (N, D) or images (N, C, H, W), '
                             'got shape %s' % (len(x), y.shape))
        return l2_normalize(y, np.float32)

    def head(self, out, ref, target=None):
        """(value, d value / d out) from the NumPy network output (eval.attack_losses)."""
        if target is not None and (self.on_embedding or self.targeted):
            raise ValueError('an auxiliary target class applies to untargeted attacks on a '
                             'classifier only')
        if self.on_embedding:
            return embedding_loss(out, ref, self.loss, self.targeted)
        return classifier_loss(out, ref, self.loss, self.targeted, target)

    def value_grad_output(self, x, ref, target=None):
        """Objective, its input gradient and the network output (NumPy) from ONE forward and
        backward pass: what an iterative attack needs per step. The objective is computed on
        the output in NumPy and its output gradient back-propagated (no loss operators in
        the recorded graph)."""
        x_nd = mx.nd.array(x, ctx=self.model.ctx)
        x_nd.attach_grad()
        with mx.autograd.record(train_mode=True):  # safe on gradient_block: see module doc
            out = gradient_block(self.model, x_nd.shape[1:])(x_nd)
        out_np = out.asnumpy()
        value, d_out = self.head(out_np, ref, target)
        out.backward(mx.nd.array(d_out.reshape(out.shape), ctx=self.model.ctx))
        return value, x_nd.grad.asnumpy(), out_np

    def value_and_grad(self, x, ref, target=None):
        value, grad, _ = self.value_grad_output(x, ref, target)
        return value, grad

    def success_from_output(self, out, ref):
        """Per-sample success (bool NumPy) from NumPy outputs (logits or raw embeddings)."""
        if self.on_embedding:
            dist = np.sum(np.square(l2_normalize(out, np.float32) - ref), axis=1)
            return dist < self.threshold if self.targeted else dist >= self.threshold
        pred = np.argmax(out, axis=1)
        return pred == ref if self.targeted else pred != ref

    def evaluate(self, x, ref, target=None):
        """Objective and success without gradients, on ``model.block`` (forward only)."""
        out = self.model.block(mx.nd.array(x, ctx=self.model.ctx)).asnumpy()
        return self.head(out, ref, target)[0], self.success_from_output(out, ref)


class Attack:
    """Base class: subclasses implement ``_perturb(x, ref, lo, hi) -> (x_adv, success)``."""
    name = 'attack'
    iterative = False

    def __init__(self, model, eps, targeted=False, loss=None, threshold=None,
                 pixel_range=(0, 1), seed=None):
        if eps < 0:
            raise ValueError('eps must be >= 0, got %g' % eps)
        if not pixel_range[0] < pixel_range[1]:
            raise ValueError('pixel_range must be (low, high) with low < high, got %s'
                             % (pixel_range,))
        self.model = model
        self.eps = float(eps)
        self.pixel_range = (float(pixel_range[0]), float(pixel_range[1]))
        self.objective = Objective(model, targeted, loss, threshold)
        self.seed = seed
        self._calls = 0

    @property
    def targeted(self):
        return self.objective.targeted

    def check_images(self, x):
        """x as float32 NumPy (N, C, H, W) inside ``pixel_range``, or a ValueError."""
        x = _to_numpy(x)
        if x.ndim != 4:
            raise ValueError('expected images (N, C, H, W), got shape %s' % (x.shape,))
        if x.size and (x.min() < self.pixel_range[0] or x.max() > self.pixel_range[1]):
            raise ValueError('images span [%g, %g], outside pixel_range %s'
                             % (x.min(), x.max(), self.pixel_range))
        return x

    def __call__(self, x, y=None):
        x = self.check_images(x)
        if (y is None and self.objective.on_embedding and not self.targeted
                and not getattr(self, 'random_start', False)):
            warnings.warn('%s dodging from the clean embedding of x starts at a zero-gradient '
                          'minimum: use a random start (PGD) or a reference of another image'
                          % self.name, stacklevel=2)
        ref = self.objective.reference(x, y)
        lo, hi = linf_bounds(x, self.eps, self.pixel_range)
        self._rng_call = self._calls
        self._calls += 1
        x_adv, success = self._perturb(x, ref, lo, hi)
        return x_adv, success

    def _rng(self, restart):
        """Random stream for one (call, restart): with a seed, restart r of call c draws the
        same noise whatever the number of restarts, so more restarts never change the first."""
        if self.seed is None:
            return np.random.default_rng()
        return np.random.default_rng([self.seed, self._rng_call, restart])

    def params(self):
        """JSON-able description of the attack (for results files)."""
        return {'attack': self.name, 'eps': self.eps, 'targeted': self.targeted,
                'loss': self.objective.loss, 'pixel_range': list(self.pixel_range),
                'threshold': self.objective.threshold}


class FGSM(Attack):
    """Fast gradient sign method: one step of size eps along the sign of the gradient."""
    name = 'fgsm'

    def _perturb(self, x, ref, lo, hi):
        _, grad = self.objective.value_and_grad(x, ref)
        x_adv = np.clip(x + np.float32(self.eps) * np.sign(grad), lo, hi)
        return x_adv, self.objective.evaluate(x_adv, ref)[1]


class BIM(Attack):
    """Basic iterative method (I-FGSM): ``steps`` sign steps of size ``step`` from x itself,
    projected after each step. ``step`` defaults to ``step_scale`` (2.5) * eps / steps.

    ``random_start`` and ``restarts`` turn it into PGD; the returned image of each sample is
    its worst case over restarts: the first successful one, else the one with the highest
    objective."""
    name = 'bim'
    iterative = True

    def __init__(self, model, eps, step=None, steps=10, step_scale=2.5, random_start=False,
                 restarts=1, targeted=False, loss=None, threshold=None, pixel_range=(0, 1),
                 seed=None):
        super().__init__(model, eps, targeted, loss, threshold, pixel_range, seed)
        if steps < 1 or restarts < 1:
            raise ValueError('steps and restarts must be >= 1, got %d, %d' % (steps, restarts))
        self.steps = int(steps)
        self.step = float(step) if step is not None else step_scale * eps / steps
        self.random_start = bool(random_start)
        self.restarts = int(restarts)

    def params(self):
        out = super().params()
        out.update(step=self.step, steps=self.steps, random_start=self.random_start,
                   restarts=self.restarts)
        return out

    def _direction(self, grad, state):
        return np.sign(grad)

    def _iterate(self, x_adv, ref, lo, hi):
        state = {}
        step = np.float32(self.step)
        for _ in range(self.steps):
            _, grad = self.objective.value_and_grad(x_adv, ref)
            x_adv = np.clip(x_adv + step * self._direction(grad, state), lo, hi)
        return x_adv

    def _perturb(self, x, ref, lo, hi):
        best_x = best_value = best_success = None
        for restart in range(self.restarts):
            start = x
            if self.random_start:
                noise = self._rng(restart).uniform(-self.eps, self.eps, size=x.shape)
                start = np.clip(x + noise.astype(np.float32), lo, hi)
            x_adv = self._iterate(start, ref, lo, hi)
            value, success = self.objective.evaluate(x_adv, ref)
            if best_x is None:
                best_x, best_value, best_success = x_adv, value, success
            else:
                better = (success & ~best_success) | ((success == best_success)
                                                      & (value > best_value))
                best_x = np.where(better[:, None, None, None], x_adv, best_x)
                best_value = np.where(better, value, best_value)
                best_success = best_success | success
            if best_success.all():
                break
        return best_x, best_success


class PGD(BIM):
    """Projected gradient descent (Madry et al.): BIM from a uniform random start in the
    eps-ball, with restarts (per-sample worst case kept)."""
    name = 'pgd'

    def __init__(self, model, eps, step=None, steps=40, step_scale=2.5, random_start=True,
                 restarts=1, targeted=False, loss=None, threshold=None, pixel_range=(0, 1),
                 seed=None):
        super().__init__(model, eps, step, steps, step_scale, random_start, restarts, targeted,
                         loss, threshold, pixel_range, seed)


class CWLinf(PGD):
    """PGD on the Carlini-Wagner margin loss (logit of the best other class minus the true
    logit; targeted: target logit minus best other) under the L-inf budget."""
    name = 'cw'

    def __init__(self, model, eps, step=None, steps=40, step_scale=2.5, random_start=True,
                 restarts=1, targeted=False, threshold=None, pixel_range=(0, 1), seed=None):
        super().__init__(model, eps, step, steps, step_scale, random_start, restarts, targeted,
                         'cw', threshold, pixel_range, seed)


def momentum_update(momentum, grad, mu):
    """MI-FGSM accumulator: mu * g + grad / ||grad||_1, the L1 norm taken PER SAMPLE (so one
    sample's gradient scale never changes another's update). Returns the new accumulator."""
    l1 = np.sum(np.abs(grad), axis=tuple(range(1, grad.ndim)), keepdims=True)
    return mu * momentum + grad / np.maximum(l1, 1e-30)


class MIFGSM(BIM):
    """Momentum iterative FGSM (Dong et al. 2018): sign of the momentum accumulator
    (``momentum_update``), ``mu`` = 1.0, no random start. ``step`` defaults to eps / steps."""
    name = 'mifgsm'

    def __init__(self, model, eps, step=None, steps=10, mu=1.0, random_start=False,
                 restarts=1, targeted=False, loss=None, threshold=None, pixel_range=(0, 1),
                 seed=None):
        super().__init__(model, eps, step, steps, 1.0, random_start, restarts, targeted, loss,
                         threshold, pixel_range, seed)    # step rule: eps / steps
        self.mu = float(mu)

    def params(self):
        out = super().params()
        out['mu'] = self.mu
        return out

    def _direction(self, grad, state):
        state['g'] = momentum_update(state.get('g', 0.0), grad, self.mu)
        return np.sign(state['g'])


def random_targets(labels, num_classes, seed=None):
    """A target class != label for each label, uniformly among the others."""
    labels = np.asarray(labels, dtype=np.int64)
    shift = np.random.default_rng(seed).integers(1, num_classes, size=len(labels))
    return (labels + shift) % num_classes


def ranked_classes(model, x, batch_size=256):
    """Classes of each image by decreasing clean logit, (N, classes): column 0 is the predicted
    class, column r the (r+1)-th most likely one (APGD-T's and FAB-T's target order)."""
    logits = model.predict(np.asarray(x, dtype=np.float32), max(1, batch_size))
    return np.argsort(-logits, axis=1, kind='stable')


def run_attack(attack, x, y=None, batch_size=128, progress=True, desc=None):
    """Runs ``attack`` over (x, y) in batches with a tqdm bar (rate and ETA on stderr).
    Returns (x_adv float32 (N, C, H, W), success bool (N,))."""
    x = _to_numpy(x)
    if y is not None and not isinstance(y, np.ndarray):
        y = y.asnumpy() if isinstance(y, mx.nd.NDArray) else np.asarray(y)
    x_adv = np.empty_like(x)
    success = np.zeros(len(x), dtype=bool)
    with tqdm(total=len(x), unit='img', desc=desc or attack.name, disable=not progress,
              leave=False) as bar:
        for start in range(0, len(x), batch_size):
            end = min(start + batch_size, len(x))
            batch_y = None if y is None else y[start:end]
            x_adv[start:end], success[start:end] = attack(x[start:end], batch_y)
            bar.update(end - start)
    return x_adv, success
