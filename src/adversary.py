"""The vulnerability-exploitation round (MTER's attack), on its own set of contexts.

Per batch: the main group's current weights are copied into the adversary executors
(device to device), the targets' normalised embeddings are computed once, then up to R signed
gradient steps move the sources toward their targets in feature space:

    d(x', t) = 1 - <f^(x'), f^(t)>,   x' <- clip(x' - step * sign(grad_x' d), lo, hi)

where [lo, hi] is the pixel range intersected, when ``sigma > 0``, with the L-inf ball of
radius sigma around the clean source. The first step is always taken; each further step only
while max_i d_i > thd. The network is the training network built in adversary mode (batch-norm
on moving statistics, no dropout), so each sample's gradient is independent of the others.

Differences from the original, on purpose: the sigma ball is around the clean source (the
original projected around an alias of the current iterate, so only the pixel clip acted); the
executors are bound once (the original rebuilt its module at every reset); targets are embedded
once per batch, not in every round; no forward is run after the last step; weights never go
through host memory when both groups are on devices.
"""
import collections

import mxnet as mx

AttackStats = collections.namedtuple('AttackStats', 'rounds first_mean_dist last_max_dist')


def distance_symbol(emb):
    """Group(normalised embedding [blocked], per-sample cosine distance to ``target_emb`` [loss])."""
    nemb = mx.sym.L2Normalization(emb, mode='instance')
    target = mx.sym.Variable('target_emb')
    dist = 1.0 - mx.sym.sum(nemb * target, axis=1)
    return mx.sym.Group([mx.sym.BlockGrad(nemb), mx.sym.MakeLoss(dist)])


class Adversary:
    """Executors of the adversary-mode network, one per adversary context, bound once."""

    def __init__(self, emb, emb_size, contexts, per_ctx, image_shape, step, rounds, thd,
                 sigma=0.0, pixel_range=(0.0, 1.0)):
        self.contexts = list(contexts)
        self.per_ctx = per_ctx
        self.step, self.rounds, self.thd, self.sigma = step, rounds, thd, sigma
        self.pixel_range = pixel_range
        if rounds < 1:
            raise ValueError('--adv-round must be >= 1, got %d' % rounds)
        sym = distance_symbol(emb)
        shapes = {'data': (per_ctx,) + tuple(image_shape), 'target_emb': (per_ctx, emb_size)}
        self.execs = [sym.simple_bind(ctx, grad_req={'data': 'write'}, **shapes)
                      for ctx in self.contexts]
        self.param_names = [n for n in sym.list_arguments() if n not in shapes]
        self.aux_names = sym.list_auxiliary_states()

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

    def set_params(self, arg_params, aux_params):
        """Loads host-side parameters (used by tests and the benchmark)."""
        for ex in self.execs:
            for name in self.param_names:
                arg_params[name].copyto(ex.arg_dict[name])
            for name in self.aux_names:
                aux_params[name].copyto(ex.aux_dict[name])

    # -- the round ----------------------------------------------------------------------------
    def _load(self, images):
        n = self.per_ctx
        if images.shape[0] != n * len(self.execs):
            raise ValueError('adversary expects %d images (%d per context x %d), got %d'
                             % (n * len(self.execs), n, len(self.execs), images.shape[0]))
        for k, ex in enumerate(self.execs):
            ex.arg_dict['data'][:] = images[k * n:(k + 1) * n]

    def embed_targets(self, targets):
        """Computes the targets' normalised embeddings once and keeps them on each device."""
        self._load(targets)
        for ex in self.execs:
            ex.forward(is_train=False)
        for ex in self.execs:
            ex.outputs[0].copyto(ex.arg_dict['target_emb'])

    def attack(self, sources, targets):
        """Adversarials of ``sources`` (NumPy or NDArray, (S, C, H, W)) toward ``targets``.

        Returns (adversarials as a NumPy array, AttackStats)."""
        self.embed_targets(targets)
        self._load(sources)
        lo_px, hi_px = self.pixel_range
        # per-pixel bounds only when there is a ball; otherwise a scalar clip to the pixel range
        bounds = [(mx.nd.maximum(ex.arg_dict['data'] - self.sigma, lo_px),
                   mx.nd.minimum(ex.arg_dict['data'] + self.sigma, hi_px))
                  if self.sigma > 0 else None for ex in self.execs]
        taken, first_mean, last_max = 0, None, None
        for r in range(self.rounds):
            for ex in self.execs:
                ex.forward(is_train=True)
            if r == 0:
                first_mean = sum(ex.outputs[1].sum().asscalar() for ex in self.execs) / (
                    self.per_ctx * len(self.execs))
            else:
                last_max = max(ex.outputs[1].max().asscalar() for ex in self.execs)
                if last_max <= self.thd:
                    break
            for ex in self.execs:
                ex.backward()
            for ex, bound in zip(self.execs, bounds):
                x = ex.arg_dict['data']
                stepped = x - self.step * mx.nd.sign(ex.grad_dict['data'])
                if bound is None:
                    mx.nd.clip(stepped, lo_px, hi_px).copyto(x)
                else:
                    mx.nd.minimum(mx.nd.maximum(stepped, bound[0]), bound[1]).copyto(x)
            taken += 1
        adv = mx.nd.concat(*[ex.arg_dict['data'].as_in_context(mx.cpu()) for ex in self.execs],
                           dim=0)
        return adv.asnumpy(), AttackStats(taken, first_mean, last_max)
