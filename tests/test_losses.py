"""The main step's losses against NumPy references."""
import math
import types

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from src import mter
from symbols import heads


def _forward(sym, **inputs):
    ex = sym.simple_bind(mx.cpu(), grad_req='null', **{k: v.shape for k, v in inputs.items()})
    for k, v in inputs.items():
        ex.arg_dict[k][:] = v
    return [o.asnumpy() for o in ex.forward(is_train=False)]


def arcface_logits_np(emb, weight, label, s, m, easy):
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ \
        (weight / np.linalg.norm(weight, axis=1, keepdims=True)).T
    out = s * cos
    for i, y in enumerate(label.astype(int)):
        theta = math.acos(np.clip(cos[i, y], -1, 1))
        if easy:
            out[i, y] = s * math.cos(theta + m) if cos[i, y] > 0 else s * cos[i, y]
        elif theta + m <= math.pi:  # cos(theta) > cos(pi - m)
            out[i, y] = s * math.cos(theta + m)
        else:
            out[i, y] = s * cos[i, y] - s * m * math.sin(math.pi - m)
    return out


@pytest.mark.parametrize('easy', [0, 1])
def test_arcface_logits_match_numpy(easy):
    rng = np.random.RandomState(easy)
    n, d, k, s, m = 12, 6, 5, 10.0, 0.5
    emb = rng.randn(n, d).astype(np.float32)
    weight = rng.randn(k, d).astype(np.float32)
    label = rng.randint(0, k, n).astype(np.float32)
    # make some target logits very negative so both branches of the margin are used
    weight[label[:4].astype(int)] = -emb[:4] / np.linalg.norm(emb[:4], axis=1, keepdims=True)
    sym = heads.logits(mx.sym.Variable('emb'), k, d, 4, s, m, easy, label=mx.sym.Variable('y'))
    got = _forward(sym, emb=emb, fc7_weight=weight, y=label)[0]
    want = arcface_logits_np(emb, weight, label, s, m, easy)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * s)
    cos_y = want[np.arange(n), label.astype(int)]
    assert (cos_y < 0).any(), 'the test must exercise the fallback branch'


def test_softmax_head_is_fc_with_bias():
    rng = np.random.RandomState(0)
    emb, w, b = rng.randn(4, 3), rng.randn(7, 3), rng.randn(7)
    sym = heads.logits(mx.sym.Variable('emb'), 7, 3, 0)
    got = _forward(sym, emb=emb, fc7_weight=w, fc7_bias=b)[0]
    np.testing.assert_allclose(got, emb @ w.T + b, rtol=1e-5, atol=1e-5)


def _args(loss_type, alpha=0.2, weight=1.0, ce_weight=0.37):
    return types.SimpleNamespace(loss_type=loss_type, margin_s=8.0, margin_m=0.3, easy_margin=0,
                                 fc7_wd_mult=1.0, adv_alpha=alpha, weightadv=weight,
                                 ce_weight=ce_weight)


@pytest.mark.parametrize('loss_type', [0, 4])
def test_train_symbol_losses_match_numpy(loss_type):
    """Cross-entropy = mean over the clean 2s images (logged unweighted: --ce-weight scales only
    its gradient); triplet = w * mean relu(AP - AN + alpha)."""
    rng = np.random.RandomState(loss_type)
    s, d, k = 5, 8, 6
    emb = rng.randn(3 * s, d).astype(np.float32)
    emb[2 * s:] = emb[:s] + 0.3 * rng.randn(s, d)  # adversarials near their sources
    label = np.concatenate([rng.randint(0, 3, s), rng.randint(3, 6, s), np.zeros(s)])
    label[2 * s:] = label[:s]
    weight = rng.randn(k, d).astype(np.float32)
    bias = rng.randn(k).astype(np.float32)
    args = _args(loss_type, alpha=1.2, weight=0.7)
    sym = mter.train_symbol(mx.sym.Variable('data'), d, k, s, args)
    inputs = dict(data=emb, softmax_label=label.astype(np.float32), fc7_weight=weight)
    if loss_type == 0:
        inputs['fc7_bias'] = bias
    out = dict(zip(mter.OUTPUTS, _forward(sym, **inputs)))

    clean_label = label[:2 * s].astype(int)
    if loss_type == 0:
        logits = emb[:2 * s] @ weight.T + bias
    else:
        logits = arcface_logits_np(emb[:2 * s], weight, clean_label, 8.0, 0.3, 0)
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    np.testing.assert_allclose(out['ce_loss'], [-logp[np.arange(2 * s), clean_label].mean()],
                               rtol=1e-5)
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    ap = np.linalg.norm(unit[2 * s:] - unit[:s], axis=1)
    an = np.linalg.norm(unit[2 * s:] - unit[s:2 * s], axis=1)
    np.testing.assert_allclose(out['ap'], [ap.mean()], rtol=1e-5)
    np.testing.assert_allclose(out['an'], [an.mean()], rtol=1e-5)
    want = 0.7 * np.maximum(ap - an + 1.2, 0).mean()
    assert want > 0
    np.testing.assert_allclose(out['triplet_loss'], [want], rtol=1e-5)
    np.testing.assert_array_equal(out['label'], label[:2 * s])


def test_bad_margins_are_rejected():
    with pytest.raises(ValueError, match='margin-m'):
        heads.check_margin(4, 64.0, 2.0)
    with pytest.raises(ValueError, match='loss-type'):
        heads.check_margin(2, 64.0, 0.5)
