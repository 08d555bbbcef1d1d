"""The main step's symbol: cross-entropy on clean sources and targets + the MTER triplet.

It is bound on each main context with that context's slice [src | tar | adv] of n = 3s images
(s = S / ctx_num) and labels [src | tar | src].

Normalisation (differs from the original on purpose): each context's cross-entropy is the mean
over its 2s clean images and its triplet the mean over its s triplets; with
``rescale_grad = 1/ctx_num`` the update is the gradient of the mean over the whole batch, for any
number of contexts. The original divided the summed cross-entropy by 3B/2 (MNIST) or B/2
(faces), B = main batch over all contexts, and then also rescaled by 1/ctx_num, i.e. it used
4/(9*ctx_num) (MNIST) of the mean cross-entropy: an effective learning rate for the classifier
that changed with the device count. Our figures are therefore the plain mean cross-entropy.
"""
import mxnet as mx

from symbols import heads

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
    margin_m, easy_margin, fc7_wd_mult, adv_alpha, weightadv. ``normalized_softmax``: the
    softmax head (loss-type 0) sees the L2-normalised embedding (the original's face script)."""
    label = mx.sym.slice_axis(mx.sym.Variable('softmax_label'), axis=0, begin=0, end=2 * s)
    clean = mx.sym.slice_axis(emb, axis=0, begin=0, end=2 * s)
    fc7 = heads.logits(clean, num_classes, emb_size, args.loss_type, args.margin_s,
                       args.margin_m, args.easy_margin, args.fc7_wd_mult, label=label,
                       normalized_softmax=normalized_softmax)
    logprob = mx.sym.log_softmax(fc7)
    picked = mx.sym.pick(logprob, label, axis=1)
    ce = mx.sym.MakeLoss(-mx.sym.mean(picked), name='ce_loss')
    ap, an, triplet = triplet_terms(emb, s, args.adv_alpha, args.weightadv)
    block = mx.sym.BlockGrad
    return mx.sym.Group([block(logprob), block(label), ce, block(ap), block(an),
                         mx.sym.MakeLoss(triplet, name='triplet_loss')])
