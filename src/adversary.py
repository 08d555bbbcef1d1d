"""The training-time attack engine, on its own set of contexts, with pluggable objectives.

Per batch the main group's current weights are copied into the adversary executors (device to
device); then up to ``steps`` signed gradient steps of size ``step`` move the images along the
objective's gradient,

    x' <- clip(x' + direction * step * sign(grad_x' loss(x')), lo, hi)

where [lo, hi] is the pixel range intersected with the L-inf ball of radius ``eps`` around the
clean image. ``eps=None``: no ball, only the pixel range; ``eps=0``: no perturbation at all
(the attack returns the images unchanged, random start included). The first step is always
taken; each further step only while the objective does not say it is done. The network is the
training network built in adversary mode (batch-norm on moving statistics, no dropout), so each
sample's gradient is independent of the others, and it is run with ``is_train=True`` because
MXNet 1.9.1 + MKL-DNN computes wrong input gradients through max-pooling in inference mode.

The training scripts' flags map to eps/step/steps where the methods build their attack
settings (``src.mter``: ad_mnist.py's --adv-sigma/--adv-step/--adv-round, ad_face.py's
--adv-eps/--adv-sigma/--adv-round; ``src.tla``: --epsilon/--step-size/--num-steps).

Objectives (the loss is per sample; its symbol sits on top of the embedding):
- ``FeatureDistance`` (MTER's vulnerability exploitation): cosine distance to the targets'
  normalised embeddings, minimised, stopping once the largest is <= thd;
- ``CrossEntropy`` (PGD, as Madry et al. and TLA train): the classifier's cross-entropy on the
  true labels (optionally label-smoothed), maximised from a random start, all steps run.

Differences from the original MTER code, on purpose: the eps ball is around the clean source
(the original projected around an alias of the current iterate, so only the pixel clip acted);
the executors are bound once (the original rebuilt its module at every reset); targets are
embedded once per batch, not in every round; no forward is run after the last step; weights
never go through host memory when both groups are on devices.
"""
import collections

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

# rounds: the steps taken; first_mean: the objective's mean at the start (NaN when no step was
# taken); last_max: its maximum before the last check (None when never checked)
AttackStats = collections.namedtuple('AttackStats', 'rounds first_mean last_max')


class FeatureDistance:
    """MTER: d(x', t) = 1 - <f^(x'), f^(t)>, minimised toward the targets' normalised
    embeddings (input ``target_emb``); done once max_i d_i <= ``thd``."""
    direction = -1.0
    name = 'cos-dist'
    stops_early = True

    def __init__(self, thd):
        self.thd = thd

    def input_shapes(self, per_ctx, emb_size):
        return {'target_emb': (per_ctx, emb_size)}

    def loss(self, emb, nemb):
        return 1.0 - mx.sym.sum(nemb * mx.sym.Variable('target_emb'), axis=1)

    def done(self, max_loss):
        return max_loss <= self.thd


class CrossEntropy:
    """PGD: the classifier's cross-entropy on the labels (input ``attack_label``), maximised.

    ``logits``: function embedding symbol -> logits symbol (the inference head, so its
    parameters are the main network's fc7). ``label_smoothing`` eps: the target distribution
    is (1 - eps) on the label + eps / classes everywhere (as TensorFlow's)."""
    direction = 1.0
    name = 'CE'
    stops_early = False

    def __init__(self, logits, num_classes, label_smoothing=0.0):
        self.logits, self.num_classes = logits, num_classes
        self.label_smoothing = float(label_smoothing)

    def input_shapes(self, per_ctx, emb_size):
        return {'attack_label': (per_ctx,)}

    def loss(self, emb, nemb):
        return smoothed_cross_entropy(self.logits(emb), mx.sym.Variable('attack_label'),
                                      self.num_classes, self.label_smoothing)

    def done(self, max_loss):
        return False


def smoothed_cross_entropy(logits, label, num_classes, label_smoothing=0.0):
    """Per-sample cross-entropy of ``logits`` against ``label`` smoothed by ``label_smoothing``."""
    logprob = mx.sym.log_softmax(logits, axis=1)
    picked = mx.sym.pick(logprob, label, axis=1)
    if not label_smoothing:
        return -picked
    return -((1.0 - label_smoothing) * picked
             + label_smoothing / num_classes * mx.sym.sum(logprob, axis=1))


class Adversary:
    """Executors of the adversary-mode network, one per adversary context, bound once."""

    def __init__(self, emb, emb_size, objective, contexts, per_ctx, image_shape, step, steps,
                 eps=None, pixel_range=(0.0, 1.0), random_start=False, rng=None,
                 train_mode=False):
        """``step``: the size of each signed step; ``steps``: how many at most (>= 1);
        ``eps``: the L-inf radius around the clean images (None: no ball, only the pixel range;
        0: no perturbation at all); all in the images' pixel units. ``random_start``: start
        from a uniform point of the ball (needs one). ``train_mode``: ``emb`` is the
        training-mode network (batch statistics); every forward updates the moving
        statistics, which ``write_back`` hands to the main module (Madry AT's PGD). Otherwise
        ``emb`` is the adversary-mode network."""
        _check_settings(step, steps, eps, random_start)
        self.train_mode = bool(train_mode)
        self.contexts = list(contexts)
        self.per_ctx = per_ctx
        self.objective = objective
        self.step, self.steps = step, steps
        self.eps = None if eps is None else float(eps)
        self.pixel_range = pixel_range
        self.random_start = random_start
        self.rng = rng or np.random.RandomState()
        nemb = mx.sym.L2Normalization(emb, mode='instance')
        sym = mx.sym.Group([mx.sym.BlockGrad(nemb), mx.sym.MakeLoss(objective.loss(emb, nemb))])
        self.input_shapes = objective.input_shapes(per_ctx, emb_size)
        shapes = dict(self.input_shapes, data=(per_ctx,) + tuple(image_shape))
        self.execs = [sym.simple_bind(ctx, grad_req={'data': 'write'}, **shapes)
                      for ctx in self.contexts]
        self.param_names = [n for n in sym.list_arguments() if n not in shapes]
        self.aux_names = sym.list_auxiliary_states()

    @property
    def batch(self):
        return self.per_ctx * len(self.execs)

    # -- weights ------------------------------------------------------------------------------
    def sync_from(self, module):
        """Copies the main module's current weights and batch-norm statistics, device to device
        (moving statistics are averaged over the main contexts, as Module.get_params does)."""
        group = module._exec_group  # pylint: disable=protected-access
        params = dict(zip(group.param_names, group.param_arrays))
        aux = dict(zip(group.aux_names, group.aux_arrays))
        for name in self.param_names:
            for ex in self.execs:
                params[name][0].copyto(ex.arg_dict[name])
        for name in self.aux_names:
            block = aux[name]
            value = block[0] if len(block) == 1 else \
                sum(a.as_in_context(block[0].context) for a in block) / len(block)
            for ex in self.execs:
                value.copyto(ex.aux_dict[name])

    def write_back(self, module):
        """Copies the moving statistics the attack's forwards updated (train_mode) to every main
        context (averaged over the adversary contexts), so the main step continues from them."""
        group = module._exec_group  # pylint: disable=protected-access
        for name, block in zip(group.aux_names, group.aux_arrays):
            value = self.execs[0].aux_dict[name] if len(self.execs) == 1 else \
                sum(ex.aux_dict[name].as_in_context(self.contexts[0]) for ex in self.execs) / \
                len(self.execs)
            for target in block:
                value.copyto(target)

    def set_params(self, arg_params, aux_params):
        """Loads host-side parameters (used by tests and the benchmark)."""
        for ex in self.execs:
            for name in self.param_names:
                arg_params[name].copyto(ex.arg_dict[name])
            for name in self.aux_names:
                aux_params[name].copyto(ex.aux_dict[name])

    # -- forward passes -----------------------------------------------------------------------
    def _load(self, name, values):
        """Spreads one batch of ``self.batch`` rows of input ``name`` over the contexts."""
        n = self.per_ctx
        if values.shape[0] != self.batch:
            raise ValueError('adversary expects %d images (%d per context x %d), got %d'
                             % (self.batch, n, len(self.execs), values.shape[0]))
        for k, ex in enumerate(self.execs):
            ex.arg_dict[name][:] = values[k * n:(k + 1) * n]

    def embed(self, images):
        """Normalised embeddings (NumPy (N, D)) of any number of images, forward only, in
        chunks of the executors' batch (the last one padded)."""
        images = np.asarray(images, dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch):
            chunk = images[start:start + self.batch]
            count = len(chunk)
            if count < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - count, 0)])
            self._load('data', chunk)
            for ex in self.execs:
                ex.forward(is_train=False)
            out.append(np.concatenate([ex.outputs[0].asnumpy() for ex in self.execs])[:count])
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)

    def attack(self, images, **inputs):
        """Adversarials of ``images`` (NumPy or NDArray, (S, C, H, W), S = the executors' batch)
        under the objective, whose per-sample ``inputs`` (e.g. target_emb, attack_label) are
        given by name. Returns (adversarials as a NumPy array, AttackStats)."""
        missing = set(self.input_shapes) - set(inputs)
        if missing:
            raise ValueError('the %s objective needs %s' % (self.objective.name,
                                                            ', '.join(sorted(missing))))
        for name, values in inputs.items():
            self._load(name, np.asarray(values, dtype=np.float32))
        images = images.asnumpy() if isinstance(images, mx.nd.NDArray) else images
        self._load('data', np.asarray(images, dtype=np.float32))
        if self.eps == 0:  # a zero ball: nothing may move
            return np.array(images, dtype=np.float32), AttackStats(0, float('nan'), None)
        lo_px, hi_px = self.pixel_range
        # per-pixel bounds only when there is a ball; otherwise a scalar clip to the pixel range
        bounds = [(mx.nd.maximum(ex.arg_dict['data'] - self.eps, lo_px),
                   mx.nd.minimum(ex.arg_dict['data'] + self.eps, hi_px))
                  if self.eps is not None else None for ex in self.execs]
        if self.random_start:
            for ex, (lo, hi) in zip(self.execs, bounds):
                noise = self.rng.uniform(-self.eps, self.eps, ex.arg_dict['data'].shape)
                x = ex.arg_dict['data'] + mx.nd.array(noise, ctx=ex.arg_dict['data'].context)
                mx.nd.minimum(mx.nd.maximum(x, lo), hi).copyto(ex.arg_dict['data'])
        step = self.objective.direction * self.step
        taken, first_mean, last_max = 0, None, None
        for r in range(self.steps):
            for ex in self.execs:
                ex.forward(is_train=True)
            if r == 0:
                first_mean = sum(ex.outputs[1].sum().asscalar() for ex in self.execs) / self.batch
            elif self.objective.stops_early:  # the check waits for the forward: only if needed
                last_max = max(ex.outputs[1].max().asscalar() for ex in self.execs)
                if self.objective.done(last_max):
                    break
            for ex in self.execs:
                ex.backward()
            for ex, bound in zip(self.execs, bounds):
                x = ex.arg_dict['data']
                stepped = x + step * mx.nd.sign(ex.grad_dict['data'])
                if bound is None:
                    mx.nd.clip(stepped, lo_px, hi_px).copyto(x)
                else:
                    mx.nd.minimum(mx.nd.maximum(stepped, bound[0]), bound[1]).copyto(x)
            taken += 1
        adv = mx.nd.concat(*[ex.arg_dict['data'].as_in_context(mx.cpu()) for ex in self.execs],
                           dim=0)
        return adv.asnumpy(), AttackStats(taken, first_mean, last_max)


def _check_settings(step, steps, eps, random_start):
    if steps < 1:
        raise ValueError('the attack needs at least one step, got %d' % steps)
    if not step > 0:
        raise ValueError('the attack step must be > 0, got %r' % (step,))
    if eps is not None and not eps >= 0:
        raise ValueError('the L-inf radius eps must be >= 0 (or None: no ball), got %r' % (eps,))
    if random_start and eps is None:
        raise ValueError('a random start needs an L-inf ball (eps > 0), got none (eps None)')
