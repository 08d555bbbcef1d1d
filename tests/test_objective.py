"""The main step trains the paper's objective by default: its update equals the one the original
code computes at the paper's commands (MNIST: 1 main context; faces: 4), and stays the same for
any number of contexts. The reference below is written from the original's formula: per context,
the SUMMED cross-entropy of its clean images divided by 3B/2 (ad_mnist.py) or B/2 (ad_face.py),
B = main batch over all contexts, plus weightadv * the mean triplet of its slice; the optimiser
rescales the summed gradients by 1/ctx-num."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_face
import ad_mnist
from src import mter
from symbols import get_embedding, heads

S = 8        # sources per batch
SHAPE = (1, 28, 28)
CLASSES = 6


def _original_context_loss(emb, num_classes, emb_size, s, args, denominator, normalized):
    """One context's loss as the original code builds it (written anew from its formula)."""
    label = mx.sym.slice_axis(mx.sym.Variable('softmax_label'), axis=0, begin=0, end=2 * s)
    clean = mx.sym.slice_axis(emb, axis=0, begin=0, end=2 * s)
    fc7 = heads.logits(clean, num_classes, emb_size, args.loss_type, args.margin_s,
                       args.margin_m, args.easy_margin, label=label,
                       normalized_softmax=normalized)
    one_hot = mx.sym.one_hot(label, depth=num_classes)
    ce_sum = -mx.sym.sum(one_hot * mx.sym.log_softmax(fc7), axis=[0, 1])
    unit = [mx.sym.L2Normalization(mx.sym.slice_axis(emb, axis=0, begin=i * s,
                                                     end=(i + 1) * s), mode='instance')
            for i in range(3)]
    src, tar, adv = unit
    ap = mx.sym.sqrt(mx.sym.sum(mx.sym.square(adv - src), axis=1) + 1e-12)
    an = mx.sym.sqrt(mx.sym.sum(mx.sym.square(adv - tar), axis=1) + 1e-12)
    triplet = args.weightadv * mx.sym.mean(mx.sym.relu(ap - an + args.adv_alpha))
    return mx.sym.MakeLoss(ce_sum / denominator + triplet)


def _batch(ctx_num, channels, seed=0):
    """[src_c | tar_c | adv_c] per context with labels [src | tar | src]."""
    rng = np.random.RandomState(seed)
    top = 255.0 if channels == 3 else 1.0
    src = rng.uniform(0, top, (S, channels) + SHAPE[1:]).astype(np.float32)
    tar = rng.uniform(0, top, (S, channels) + SHAPE[1:]).astype(np.float32)
    adv = np.clip(src + rng.uniform(-0.1, 0.1, src.shape) * top, 0, top).astype(np.float32)
    src_y, tar_y = rng.randint(0, 3, S), rng.randint(3, CLASSES, S)
    from src.batch import assemble_main_batch
    return assemble_main_batch(src, tar, adv, src_y, tar_y, ctx_num)


def _params(symbol, data_shape, seed=1):
    shapes, _, _ = symbol.infer_shape(data=data_shape, softmax_label=(data_shape[0],))
    rng = np.random.RandomState(seed)
    return {n: mx.nd.array(rng.normal(0, 0.1, s)) for n, s in zip(symbol.list_arguments(), shapes)
            if n not in ('data', 'softmax_label')}


def _port_update(args, ctx_num, data, label, normalized):
    """Gradient the port's optimiser applies: per-context grads summed, times 1/ctx-num."""
    emb, size = get_embedding('l')
    s = S // ctx_num
    sym = mter.train_symbol(emb, size, CLASSES, s, args, normalized)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'],
                        context=[mx.cpu(i) for i in range(ctx_num)])
    mod.bind([('data', data.shape)], [('softmax_label', label.shape)])
    params = _params(sym, (3 * s,) + data.shape[1:])
    mod.init_params(arg_params=params, aux_params={})
    mod.forward_backward(mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)]))
    group = mod._exec_group  # pylint: disable=protected-access
    return {name: sum(g.asnumpy().astype(np.float64) for g in grads) / ctx_num
            for name, grads in zip(group.param_names, group.grad_arrays)}, params


def _original_update(args, ctx_num, data, label, params, denominator, normalized):
    emb, size = get_embedding('l')
    s = S // ctx_num
    sym = _original_context_loss(emb, CLASSES, size, s, args, denominator, normalized)
    total = {}
    for c in range(ctx_num):
        part = slice(3 * s * c, 3 * s * (c + 1))
        inputs = dict(params, data=mx.nd.array(data[part]), softmax_label=mx.nd.array(label[part]))
        grads = {n: mx.nd.zeros(v.shape) for n, v in params.items()}
        ex = sym.bind(mx.cpu(), inputs, args_grad=grads,
                      grad_req={n: ('write' if n in params else 'null') for n in inputs})
        ex.forward(is_train=True)
        ex.backward()
        for n, g in grads.items():
            total[n] = total.get(n, 0) + g.asnumpy().astype(np.float64) / ctx_num
    return total


def _max_relative_difference(ours, ref):
    """Largest |difference| of any parameter's gradient relative to that gradient's scale."""
    return max(np.abs(ours[n] - ref[n]).max() / np.abs(ref[n]).max() for n in ref)


@pytest.mark.parametrize('script,ctx_num,loss_type,denominator_of_batch', [
    (ad_mnist, 1, 0, lambda b: 3 * b // 2),   # the paper's MNIST command: one main context
    (ad_face, 4, 4, lambda b: b // 2),        # the paper's face command: --ctx-num 4, ArcFace
])
def test_default_update_equals_the_originals_at_the_papers_context_count(
        script, ctx_num, loss_type, denominator_of_batch):
    faces = script is ad_face
    args = script.parse_args(['--loss-type', str(loss_type), '--margin-s', '8',
                              '--adv-alpha', '0.9', '--weightadv', '1'])
    channels = 3 if faces else 1
    data, label = _batch(ctx_num, channels)
    ours, params = _port_update(args, ctx_num, data, label, faces)
    reference = _original_update(args, ctx_num, data, label, params,
                                 denominator_of_batch(3 * S), faces)
    assert set(ours) == set(reference)
    # float32 gradients of a small network vs the same formula: agree to round-off
    assert _max_relative_difference(ours, reference) < 1e-4
    # the port's former default (--ce-weight 1) trained another objective: the test can tell
    args.ce_weight = 1.0
    former, _ = _port_update(args, ctx_num, data, label, faces)
    assert _max_relative_difference(former, reference) > 0.1


def test_update_does_not_depend_on_the_context_count():
    args = ad_mnist.parse_args(['--loss-type', '0', '--adv-alpha', '0.9'])
    updates = {}
    for ctx_num in (1, 2):
        data, label = _batch(ctx_num, 1)
        updates[ctx_num], _ = _port_update(args, ctx_num, data, label, False)
    assert _max_relative_difference(updates[2], updates[1]) < 1e-4


def test_default_learning_rate_steps_are_the_originals():
    from src.args import lr_steps
    face = ad_face.parse_args([])      # B = 90 per context x 1 context
    assert lr_steps(face, 90) == [int(s * 512 / 90) for s in (100000, 140000, 160000)]
    assert lr_steps(face, 360) == [142222, 199111, 227555]  # the paper's B (4 x 90)
    mnist = ad_mnist.parse_args(['--loss-type', '0'])
    assert lr_steps(mnist, 512) == [16000, 24000]
    assert lr_steps(ad_mnist.parse_args([]), 512) == [16000, 24000, 28000]  # ArcFace default
    assert lr_steps(ad_mnist.parse_args(['--lr-steps', '8000,16000']), 2700) == [8000, 16000]
