"""TLA (Mao et al., "Metric Learning for Adversarial Robustness", NeurIPS 2019) and Madry et
al.'s PGD adversarial training (AT), as methods of the shared Trainer (REFERENCE.md §3).

One batch of B images x with labels y:
1. the adversary contexts run PGD on the cross-entropy from a random start in the eps-ball
   (batch-norm on moving statistics): the anchors a = x_adv;
2. (TLA) they embed the anchors and a pool of P clean training images; each anchor's negative
   n is the pool image of ANOTHER class whose embedding is the most similar to the anchor's
   (cosine; ``--random-negative``: a plain random batch, any class); its positive p is another clean
   image of its class (the sampler's);
3. the main step, batch-norm in training mode, on [a | p | n] per context (AT: [a]):

   CE(a) + lambda * [ mean relu(d(a,p) - d(a,n) + m) + reg * mean(a^2 + p^2 + n^2) ]

   with d(u, v) = 1 - |cos(u, v)| on the network's embedding, cross-entropy on the adversarial
   anchors only (label-smoothed by --label-smoothing). ``--clean-positive`` (TLA's CIFAR-10
   setting, its "A_Ap_B" triplet) adds a fourth part, x with uniform noise of eps rounded to
   the pixel grid (``noisy_positive``), and a second triplet with it as the positive and
   margin m * margin_mul.

Madry AT runs its PGD on the network in training mode (batch statistics; the moving averages
are updated by every step and handed back to the main network), as the original; TLA's PGD
runs in inference mode (moving statistics), as TLA's.

Differences from the TensorFlow original, on purpose: a hard negative is never of the anchor's
class (the original zeroes same-class similarities instead of excluding them, so when every
other-class similarity is negative it picks a same-class image); batch-norm statistics in the
main step are those of the whole [a | p | n] slice of a context (the original normalises each
of the three with its own batch statistics); "best" checkpoints are never chosen on test-set
robustness (the original picks its best by PGD accuracy on the test set).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from symbols import heads
from .adversary import CrossEntropy, smoothed_cross_entropy
from .batch import assemble_parts
from .context import BatchPlan

OUTPUTS = ('logprob', 'label', 'ce_loss', 'ap', 'an', 'triplet_loss')


def abs_cos_distance(u, v):
    """Per-row 1 - |cos(u, v)| of two (n, D) symbols."""
    cos = mx.sym.sum(mx.sym.L2Normalization(u, mode='instance') *
                     mx.sym.L2Normalization(v, mode='instance'), axis=1)
    return 1.0 - mx.sym.abs(cos)


def triplet_terms(a, p, n, margin):
    """(mean d(a,p), mean d(a,n), mean relu(d(a,p) - d(a,n) + margin)) with d = 1 - |cos|."""
    d_ap, d_an = abs_cos_distance(a, p), abs_cos_distance(a, n)
    return mx.sym.mean(d_ap), mx.sym.mean(d_an), mx.sym.mean(mx.sym.relu(d_ap - d_an + margin))


def train_symbol(emb, emb_size, num_classes, s, args, normalized_softmax=False):
    """Group of OUTPUTS for one context's slice of ``parts(args) * s`` images: [a | p | n]
    (+ [x] with --clean-positive; AT: [a]) with labels [y | y | y_n (| y)]. args: loss_type,
    margin_s, margin_m, easy_margin, fc7_wd_mult, label_smoothing, tla_lambda, margin,
    regularize_lambda, clean_positive, margin_mul."""
    part = lambda sym, i: mx.sym.slice_axis(sym, axis=0, begin=i * s, end=(i + 1) * s)  # noqa
    label = part(mx.sym.Variable('softmax_label'), 0)
    anchors = part(emb, 0)
    fc7 = heads.logits(anchors, num_classes, emb_size, args.loss_type, args.margin_s,
                       args.margin_m, args.easy_margin, args.fc7_wd_mult, label=label,
                       normalized_softmax=normalized_softmax)
    ce = mx.sym.MakeLoss(mx.sym.mean(smoothed_cross_entropy(fc7, label, num_classes,
                                                            args.label_smoothing)),
                         name='ce_loss')
    block = mx.sym.BlockGrad
    logprob = block(mx.sym.log_softmax(fc7))
    if parts(args) == 1:  # Madry AT: nothing but the adversarial cross-entropy
        zero = block(mx.sym.zeros((1,)))
        return mx.sym.Group([logprob, block(label), ce, zero, zero, block(mx.sym.zeros((1,)))])
    a, p, n = anchors, part(emb, 1), part(emb, 2)
    d_ap, d_an, triplet = triplet_terms(a, p, n, args.margin)
    norm = mx.sym.mean(mx.sym.square(a) + mx.sym.square(p) + mx.sym.square(n))
    loss = triplet + args.regularize_lambda * norm
    if args.clean_positive:
        clean = part(emb, 3)
        _, _, second = triplet_terms(a, clean, n, args.margin * args.margin_mul)
        clean_norm = mx.sym.mean(mx.sym.square(a) + mx.sym.square(clean) + mx.sym.square(n))
        loss = loss + second + args.regularize_lambda * clean_norm
    return mx.sym.Group([logprob, block(label), ce, block(d_ap), block(d_an),
                         mx.sym.MakeLoss(args.tla_lambda * loss, name='triplet_loss')])


def parts(args):
    """Images per anchor in the main batch: 1 (AT), 3 (a, p, n) or 4 (+ the clean x)."""
    if args.tla_lambda == 0:
        return 1
    return 4 if args.clean_positive else 3


def hard_negatives(anchor_emb, anchor_labels, pool_emb, pool_labels):
    """For each anchor, the index of the pool image of another class with the highest cosine
    similarity (embeddings are normalised here). Raises ValueError when the pool holds no image
    of another class than an anchor's."""
    a = anchor_emb / np.maximum(np.linalg.norm(anchor_emb, axis=1, keepdims=True), 1e-12)
    p = pool_emb / np.maximum(np.linalg.norm(pool_emb, axis=1, keepdims=True), 1e-12)
    similarity = a @ p.T
    same = np.asarray(anchor_labels)[:, None] == np.asarray(pool_labels)[None, :]
    _check_other_class(same, anchor_labels)
    similarity[same] = -np.inf
    return np.argmax(similarity, axis=1)


def random_negatives(batch, pool_size, rng):
    """TLA's --random_negative: a plain random batch of clean images, of any class (the
    original takes the next batch of an independently shuffled copy of the training set; the
    pool is such a batch): the first ``batch`` pool images, or random ones when the pool is
    smaller."""
    if pool_size >= batch:
        return np.arange(batch)
    return rng.randint(0, pool_size, batch)


def noisy_positive(x, eps, pixel_max, rng):
    """TLA's x_Anat, the clean-positive triplet's positive: x + U(-eps, eps), rounded to the
    integer grid of the 0-255 scale, clipped to the pixel range (the original rounds with
    np.rint in the data's own units, 0-255 on CIFAR-10, the only data it uses this on)."""
    noisy = x + rng.uniform(-eps, eps, x.shape).astype(np.float32)
    scale = 255.0 / pixel_max
    return np.clip(np.rint(noisy * scale) / scale, 0.0, pixel_max).astype(np.float32)


def _check_other_class(same, anchor_labels):
    lonely = np.flatnonzero(same.all(axis=1))
    if lonely.size:
        raise ValueError('the negative pool holds no image of another class than anchor %d '
                         '(class %d): use a larger --pool-size'
                         % (lonely[0], np.asarray(anchor_labels)[lonely[0]]))


class Tla:
    """TLA (``--lambda`` > 0) or Madry AT (``--lambda 0``) for the shared Trainer."""
    unit = 'anchors'
    metric_names = ('d(a,p)', 'd(a,n)')

    def __init__(self, args, rng=None):
        self.args = args
        self.parts = parts(args)
        self.rng = rng or np.random.RandomState()

    def plan(self):
        a = self.args
        for name, count in (('--ctx-num', a.ctx_num), ('--ctx-adv-num', a.ctx_adv_num)):
            if a.batch_size % count:
                raise ValueError('--batch-size %d does not divide across %s %d contexts'
                                 % (a.batch_size, name, count))
        return BatchPlan(a.batch_size, a.batch_size // a.ctx_num, a.batch_size // a.ctx_adv_num)

    def train_symbol(self, emb, emb_size, num_classes, per_ctx, normalized_softmax):
        return train_symbol(emb, emb_size, num_classes, per_ctx, self.args, normalized_softmax)

    def attack_settings(self, num_classes, emb_size, normalized_softmax):
        a = self.args

        def logits(emb):  # the inference head (no margin): the logits the model is tested on
            return heads.logits(emb, num_classes, emb_size, a.loss_type, a.margin_s,
                                normalized_softmax=normalized_softmax)
        # Madry AT attacks the network in training mode (batch statistics, moving averages
        # updated by every PGD step: train_at_madry.py); TLA in inference mode (its
        # train_update_fast_triplet.py feeds is_training False to the attack)
        return dict(objective=CrossEntropy(logits, num_classes, a.label_smoothing),
                    step=a.step_size, steps=a.num_steps, eps=a.epsilon,
                    random_start=bool(a.random_start), rng=self.rng,
                    train_mode=self.parts == 1)

    def batch(self, adversary, sample, ctx_num):
        """(data, label, AttackStats) from the sampler's (x, y, positives, pool, pool labels)."""
        x, y, positives, pool, pool_y = sample
        adv, stats = adversary.attack(x, attack_label=y)
        if self.parts == 1:
            data, label = assemble_parts([adv], [y], ctx_num)
            return data, label, stats
        if self.args.random_negative:
            neg = random_negatives(len(x), len(pool), self.rng)
        else:
            neg = hard_negatives(adversary.embed(adv), y, adversary.embed(pool), pool_y)
        images, labels = [adv, positives, pool[neg]], [y, y, pool_y[neg]]
        if self.parts == 4:
            images.append(noisy_positive(x, self.args.epsilon, adversary.pixel_range[1],
                                         self.rng))
            labels.append(y)
        data, label = assemble_parts(images, labels, ctx_num)
        return data, label, stats


def describe(args):
    """One log line naming the method and its settings."""
    if parts(args) == 1:
        return ('Madry PGD adversarial training: eps %g, %d steps of %g%s' % (
            args.epsilon, args.num_steps, args.step_size,
            ', random start' if args.random_start else ''))
    return ('TLA: lambda %g, margin %g, norm weight %g, pool %d, %s negatives%s; PGD eps %g, %d '
            'steps of %g' % (args.tla_lambda, args.margin, args.regularize_lambda,
                             args.pool_size, 'random' if args.random_negative else 'hard',
                             ', clean positive (margin x%g)' % args.margin_mul
                             if args.clean_positive else '', args.epsilon, args.num_steps,
                             args.step_size))

