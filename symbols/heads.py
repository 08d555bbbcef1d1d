"""Classifier heads on the embedding: loss-type 0 (FC with bias, softmax) and 4 (ArcFace).

Parameter names are InsightFace's: ``fc7_weight`` (num_classes, emb_size) and, for softmax,
``fc7_bias``. ``logits(..., label=None)`` is the inference head (ArcFace: s*cos, no margin);
with a label symbol it adds the additive angular margin to the target logit (training).
"""
import math

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

LOSS_TYPES = (0, 4)


def check_margin(loss_type, margin_s, margin_m):
    if loss_type not in LOSS_TYPES:
        raise ValueError('--loss-type %d is not supported: 0 (softmax) or 4 (ArcFace)' % loss_type)
    if loss_type == 4:
        if margin_s <= 0:
            raise ValueError('--margin-s must be > 0, got %g' % margin_s)
        if not 0 <= margin_m < math.pi / 2:
            raise ValueError('--margin-m must be in [0, pi/2), got %g' % margin_m)


def logits(emb, num_classes, emb_size, loss_type, margin_s=64.0, margin_m=0.5, easy_margin=0,
           fc7_wd_mult=1.0, label=None, normalized_softmax=False):
    check_margin(loss_type, margin_s, margin_m)
    if loss_type == 0 and normalized_softmax:
        emb = mx.sym.L2Normalization(emb, mode='instance', name='fc1n')
    weight = mx.sym.Variable('fc7_weight', shape=(num_classes, emb_size), lr_mult=1.0,
                             wd_mult=fc7_wd_mult)
    if loss_type == 0:
        bias = mx.sym.Variable('fc7_bias', lr_mult=2.0, wd_mult=0.0)
        return mx.sym.FullyConnected(data=emb, weight=weight, bias=bias, num_hidden=num_classes,
                                     name='fc7')
    nweight = mx.sym.L2Normalization(weight, mode='instance')
    nemb = mx.sym.L2Normalization(emb, mode='instance', name='fc1n') * margin_s
    fc7 = mx.sym.FullyConnected(data=nemb, weight=nweight, no_bias=True, num_hidden=num_classes,
                                name='fc7')
    if label is None:
        return fc7
    return fc7 + _arc_margin_delta(fc7, label, num_classes, margin_s, margin_m, easy_margin)


def _arc_margin_delta(fc7, label, num_classes, s, m, easy_margin):
    """one_hot(y) * (s*cos(theta_y + m) - s*cos(theta_y)), with InsightFace's fallback where
    theta_y + m would pass pi (or where cos(theta_y) < 0 with easy_margin)."""
    zy = mx.sym.pick(fc7, label, axis=1)
    cos_t = zy / s
    sin_t = mx.sym.sqrt(1.0 - cos_t * cos_t)
    with_margin = (cos_t * math.cos(m) - sin_t * math.sin(m)) * s
    if easy_margin:
        cond = mx.sym.Activation(data=cos_t, act_type='relu')
        keep = zy
    else:
        cond = mx.sym.Activation(data=cos_t - math.cos(math.pi - m), act_type='relu')
        keep = zy - s * math.sin(math.pi - m) * m
    new_zy = mx.sym.where(cond, with_margin, keep)
    one_hot = mx.sym.one_hot(label, depth=num_classes, on_value=1.0, off_value=0.0)
    return mx.sym.broadcast_mul(one_hot, mx.sym.expand_dims(new_zy - zy, 1))


def inference_symbol(emb, num_classes, emb_size, loss_type, margin_s=64.0,
                     normalized_softmax=False):
    """The symbol a checkpoint holds: output ``fc7_output`` logits, internals ``embedding_output``."""
    return logits(emb, num_classes, emb_size, loss_type, margin_s=margin_s,
                  normalized_softmax=normalized_softmax)
