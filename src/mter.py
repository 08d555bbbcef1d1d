"""The main step's symbol: cross-entropy on clean sources and targets + the MTER triplet.

It is bound on each main context with that context's slice [src | tar | adv] of n = 3s images
(s = S / ctx_num) and labels [src | tar | src].

Objective: ``ce_weight * CE + weightadv * triplet``, where each context's CE is the mean over
its 2s clean images and its triplet the mean over its s triplets; with ``rescale_grad =
1/ctx_num`` the update is the gradient of that objective over the whole batch, for any number
of contexts. The original divided the summed cross-entropy by a constant instead (3B/2 in
ad_mnist.py, B/2 in ad_face.py; B = main batch over all contexts) and also rescaled by
1/ctx_num, i.e. it trained with ce_weight = 4/(9 C) (MNIST) or 4/(3 C) (faces), C = number of
main contexts: the paper's figures come from C = 1 (MNIST: 4/9) and C = 4 (faces: 1/3), the
scripts' defaults. The logged softmax loss is the plain mean (``grad_scale`` weights only the
gradient).
"""
import logging

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from symbols import heads
from .adversary import AttackStats, FeatureDistance
from .batch import assemble_main_batch
from .context import batch_plan

OUTPUTS = ('logprob', 'label', 'ce_loss', 'ap', 'an', 'triplet_loss')


def triplet_terms(emb, s, alpha, weight):
    """(mean AP, mean AN, w * mean relu(AP - AN + alpha)) of the slice [src | tar | adv], with
    AP = ||f(adv) - f(src)||, AN = ||f(adv) - f(tar)|| on L2-normalised embeddings (plain,
    not squared, distances as the paper)."""
    part = lambda i: mx.sym.L2Normalization(  # noqa: E731
        mx.sym.slice_axis(emb, axis=0, begin=i * s, end=(i + 1) * s), mode='instance')
    src, tar, adv = part(0), part(1), part(2)
    # the 1e-12 keeps the gradient finite where adv == src (sqrt'(0) = inf, and inf * 0 = NaN
    # would poison the whole network even when the relu is inactive)
    dist = lambda a, b: mx.sym.sqrt(mx.sym.sum(mx.sym.square(a - b), axis=1) + 1e-12)  # noqa
    ap, an = dist(adv, src), dist(adv, tar)
    loss = weight * mx.sym.mean(mx.sym.relu(ap - an + alpha))
    return mx.sym.mean(ap), mx.sym.mean(an), loss


def train_symbol(emb, emb_size, num_classes, s, args, normalized_softmax=False):
    """Group of OUTPUTS for one context's slice of 3s images; args: loss_type, margin_s,
    margin_m, easy_margin, fc7_wd_mult, adv_alpha, weightadv, ce_weight. ``normalized_softmax``: the
    softmax head (loss-type 0) sees the L2-normalised embedding (the original's face script)."""
    label = mx.sym.slice_axis(mx.sym.Variable('softmax_label'), axis=0, begin=0, end=2 * s)
    clean = mx.sym.slice_axis(emb, axis=0, begin=0, end=2 * s)
    fc7 = heads.logits(clean, num_classes, emb_size, args.loss_type, args.margin_s,
                       args.margin_m, args.easy_margin, args.fc7_wd_mult, label=label,
                       normalized_softmax=normalized_softmax)
    logprob = mx.sym.log_softmax(fc7)
    picked = mx.sym.pick(logprob, label, axis=1)
    ce = mx.sym.MakeLoss(-mx.sym.mean(picked), grad_scale=args.ce_weight, name='ce_loss')
    ap, an, triplet = triplet_terms(emb, s, args.adv_alpha, args.weightadv)
    block = mx.sym.BlockGrad
    return mx.sym.Group([block(logprob), block(label), ce, block(ap), block(an),
                         mx.sym.MakeLoss(triplet, name='triplet_loss')])


def attack_units(args, faces=False):
    """(step, eps) of the attack from the scripts' original flags, in the engine's vocabulary
    (``src.adversary``; eps None: no ball, only the pixel range). ad_mnist.py: --adv-step is
    the step and --adv-sigma the L-inf radius around the source, 0 meaning no ball; ad_face.py
    (the original face meaning): --adv-sigma is the step in 0..255 pixel units and --adv-eps
    the radius, 0 meaning none."""
    if faces:
        return args.adv_sigma, (args.adv_eps or None)
    return args.adv_step, (args.adv_sigma or None)


class Mter:
    """The MTER method for the shared Trainer: the batch plan, the attack objective (feature
    distance toward the targets) and the main batch [src | tar | adv] per context.

    ``faces``: the flags mean what ad_face.py's do, else ad_mnist.py's (``attack_units``)."""
    parts = 3
    unit = 'sources'
    metric_names = ('AP', 'AN')

    def __init__(self, args, faces=False):
        self.args, self.faces = args, bool(faces)

    def plan(self):
        a = self.args
        return batch_plan(a.main_per_batch_size, a.adv_per_batch_size, a.ctx_num, a.ctx_adv_num)

    def train_symbol(self, emb, emb_size, num_classes, per_ctx, normalized_softmax):
        return train_symbol(emb, emb_size, num_classes, per_ctx, self.args, normalized_softmax)

    def attack_settings(self, num_classes, emb_size, normalized_softmax):
        """Adversary keywords, or None for no attack (--adv-round 0)."""
        if self.args.adv_round < 1:
            logging.info('--adv-round 0: no attack, the adversarial third repeats the sources '
                         '(vanilla training when --weightadv 0)')
            return None
        step, eps = attack_units(self.args, self.faces)
        return dict(objective=FeatureDistance(self.args.adv_thd), step=step,
                    steps=self.args.adv_round, eps=eps)

    def batch(self, adversary, sample, ctx_num):
        """(data, label, AttackStats) of one training batch from the sampler's sample."""
        src, src_y, tar, tar_y = sample
        if adversary is None:
            adv, stats = src, AttackStats(0, float('nan'), None)
        else:
            adv, stats = adversary.attack(src, target_emb=adversary.embed(tar))
        data, label = assemble_main_batch(src, tar, adv, src_y, tar_y, ctx_num)
        return data, label, stats
