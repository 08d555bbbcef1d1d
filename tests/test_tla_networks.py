"""TLA's MNIST CNN (``tla``) and Madry et al.'s CIFAR-10 wide ResNet (``wrn``): shapes, the
layers against float64 NumPy references written from the originals' TensorFlow semantics,
adversary mode = the inference network, the in-graph per-image standardisation, and training.
WRN is heavy on a CPU (46 M parameters): its tests use batches of 2 and few forwards."""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from symbols import get_embedding
from symbols.heads import inference_symbol
from symbols.wide_resnet import _unit, standardize
from tests.conftest import assert_close_to_scale

SHAPES = {'tla': (1, 28, 28), 'wrn': (3, 32, 32)}
SIZES = {'tla': 1024, 'wrn': 640}


def _random_params(sym, data_shape, seed):
    """He-scaled weights, small biases, and batch-norm parameters and moving statistics away
    from their identity values, so that inference mode differs visibly from training mode."""
    rng = np.random.default_rng(seed)
    normal = lambda shape, std: std * rng.standard_normal(shape, np.float32)  # noqa: E731
    uniform = lambda shape, low, high: rng.uniform(low, high, shape).astype(np.float32)  # noqa
    arg_shapes, _, aux_shapes = sym.infer_shape(data=data_shape)
    arg, aux = {}, {}
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name.endswith('_gamma'):
            arg[name] = uniform(shape, 0.5, 1.5)
        elif name.endswith(('_beta', '_bias')):
            arg[name] = normal(shape, 0.1)
        elif name != 'data':
            arg[name] = normal(shape, np.sqrt(2.0 / np.prod(shape[1:])))
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        aux[name] = normal(shape, 0.2) if name.endswith('_moving_mean') \
            else uniform(shape, 0.5, 2.0)
    return arg, aux


def _forward(sym, arg, aux, x, is_train, outputs=None):
    """Outputs of ``sym`` (or of the named internals) for x; is_train picks batch statistics
    (a tuple of modes: one list of outputs per mode, from one executor)."""
    if outputs:
        internals = sym.get_internals()
        sym = mx.sym.Group([internals[n] for n in outputs])
    args = {k: mx.nd.array(v) for k, v in arg.items() if k in sym.list_arguments()}
    args['data'] = mx.nd.array(x)
    auxs = {k: mx.nd.array(v) for k, v in aux.items() if k in sym.list_auxiliary_states()}
    exe = sym.bind(mx.cpu(), args, aux_states=auxs, grad_req='null')
    if isinstance(is_train, tuple):
        return [[o.asnumpy() for o in exe.forward(is_train=mode)] for mode in is_train]
    return [o.asnumpy() for o in exe.forward(is_train=is_train)]


def _images(network, n, seed):
    x = np.random.RandomState(seed).rand(n, *SHAPES[network])
    return (x * 255 if network == 'wrn' else x).astype(np.float32)


@pytest.fixture(scope='module')
def params():
    """(arg, aux) per network, built once: WRN's 46 M parameters take a while."""
    return {net: _random_params(get_embedding(net)[0], (2,) + SHAPES[net], seed=i)
            for i, net in enumerate(SHAPES)}


def _batch_norms(sym):
    return [n for n in json.loads(sym.tojson())['nodes'] if n['op'] == 'BatchNorm']


@pytest.mark.parametrize('network', ['tla', 'wrn'])
def test_shapes_and_embedding_size(network):
    emb, size = get_embedding(network)
    assert size == SIZES[network]
    assert emb.list_outputs() == ['embedding_output']
    _, out_shapes, _ = emb.infer_shape(data=(2,) + SHAPES[network])
    assert out_shapes == [(2, size)]
    bns = _batch_norms(emb)
    assert all(float(n['attrs']['eps']) == 1e-3 and float(n['attrs']['momentum']) == 0.9
               and n['attrs']['fix_gamma'] == 'False' for n in bns)
    shapes = dict(zip(emb.list_arguments(), emb.infer_shape(data=(2,) + SHAPES[network])[0]))
    if network == 'tla':
        assert len(bns) == 5
        assert shapes['conv1_weight'] == (32, 1, 3, 3) and shapes['conv1_bias'] == (32,)
        assert shapes['conv4_weight'] == (256, 128, 3, 3)
        assert shapes['fc1_weight'] == (1024, 7 * 7 * 256) and 'bn_fc1_gamma' in shapes
    else:
        assert len(bns) == 1 + 15 * 2  # one per unit per sub-layer, and final_bn
        assert not [n for n in shapes if n.endswith('_bias')]  # convolutions have no bias
        assert shapes['conv0_weight'] == (16, 3, 3, 3)
        assert shapes['stage1_unit1_conv1_weight'] == (160, 16, 3, 3)
        assert shapes['stage2_unit1_conv1_weight'] == (320, 160, 3, 3)
        assert shapes['stage3_unit5_conv2_weight'] == (640, 640, 3, 3)
        assert len([n for n in shapes if n.endswith('conv2_weight')]) == 15
        # conv0, per unit two 3x3 convolutions and two batch-norms (gamma, beta), final_bn
        expected = 3 * 16 * 9 + 2 * 640
        for c_in, c_out in ((16, 160), (160, 320), (320, 640)):
            for c in (c_in, c_out, c_out, c_out, c_out):
                expected += 9 * (c * c_out + c_out * c_out) + 2 * (c + c_out)
        assert sum(np.prod(s) for n, s in shapes.items() if n != 'data') == expected
        inner = emb.get_internals()
        _, (s1, s2, s3), _ = mx.sym.Group([inner['stage%d_unit5_add_output' % i]
                                           for i in (1, 2, 3)]).infer_shape(data=(2, 3, 32, 32))
        assert (s1, s2, s3) == ((2, 160, 32, 32), (2, 320, 16, 16), (2, 640, 8, 8))
        # only the network's first unit activates before the split: its shortcut takes the
        # activated input, the next stages' shortcuts the raw sum of the previous unit
        nodes = json.loads(emb.tojson())['nodes']
        inputs = {n['name']: [nodes[i[0]]['name'] for i in n['inputs']] for n in nodes}
        assert inputs['stage1_unit1_sc_pad_to_last'] == ['stage1_unit1_relu1']  # zero-padded x
        assert inputs['stage2_unit1_sc_pool'] == ['stage1_unit5_add']
        assert inputs['stage3_unit1_sc_pool'] == ['stage2_unit5_add']
        assert inputs['stage1_unit2_add'] == ['stage1_unit2_conv2', 'stage1_unit1_add']


@pytest.mark.parametrize('network', ['tla', 'wrn'])
def test_adversary_mode_is_the_inference_network(network, params):
    train_sym, _ = get_embedding(network)
    adv_sym, _ = get_embedding(network, adversary=True)
    assert adv_sym.list_arguments() == train_sym.list_arguments()
    assert adv_sym.list_auxiliary_states() == train_sym.list_auxiliary_states()
    assert all(n['attrs']['use_global_stats'] == 'True' for n in _batch_norms(adv_sym))
    assert all(n['attrs']['use_global_stats'] == 'False' for n in _batch_norms(train_sym))
    arg, aux = params[network]
    x = _images(network, 2, seed=5)
    (inference,), (training,) = _forward(train_sym, arg, aux, x, is_train=(False, True))
    adversary = _forward(adv_sym, arg, aux, x, is_train=True)[0]
    assert_close_to_scale(adversary, inference, 1e-5)
    # batch statistics (training mode) give another network: the check above can fail
    assert np.abs(training - inference).max() > 0.1 * np.abs(inference).max()


# --- float64 references, written from the originals' TensorFlow code --------------------------

def _conv_same(x, w, stride=1):
    """tf.nn.conv2d(padding='SAME') in NCHW: output ceil(size / stride); TF pads
    floor(total / 2) before and the rest after."""
    k = w.shape[-1]
    out = -(-x.shape[2] // stride)
    total = max((out - 1) * stride + k - x.shape[2], 0)
    x = np.pad(x, ((0, 0), (0, 0), (total // 2, total - total // 2),
                   (total // 2, total - total // 2)))
    windows = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))
    return np.einsum('nchwij,ocij->nohw', windows[:, :, ::stride, ::stride], w, optimize=True)


def _bn(x, arg, aux, name, eps=1e-3):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    get = lambda d, s: d[name + s].astype(np.float64).reshape(shape)  # noqa: E731
    return (x - get(aux, '_moving_mean')) / np.sqrt(get(aux, '_moving_var') + eps) \
        * get(arg, '_gamma') + get(arg, '_beta')


def _pool(x, k, kind):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // k, k, w // k, k)
    return blocks.max(axis=(3, 5)) if kind == 'max' else blocks.mean(axis=(3, 5))


def _lrelu(x):
    return np.where(x < 0, 0.1 * x, x)


def _tla_reference(x, arg, aux):
    a = {k: v.astype(np.float64) for k, v in arg.items()}
    x = x.astype(np.float64)
    for i in range(1, 5):
        x = _conv_same(x, a['conv%d_weight' % i]) + a['conv%d_bias' % i].reshape(1, -1, 1, 1)
        x = np.maximum(_bn(x, arg, aux, 'bn%d' % i), 0)
        if i % 2 == 0:
            x = _pool(x, 2, 'max')
    x = x.reshape(len(x), -1) @ a['fc1_weight'].T + a['fc1_bias']
    return np.maximum(_bn(x, arg, aux, 'bn_fc1'), 0)


def test_tla_matches_reference(params):
    arg, aux = params['tla']
    emb, _ = get_embedding('tla', adversary=True)
    x = _images('tla', 2, seed=7)
    got = _forward(emb, arg, aux, x, is_train=False)[0]
    assert_close_to_scale(got, _tla_reference(x, arg, aux), 1e-4)


def _unit_reference(x, arg, aux, in_f, out_f, stride, activate_before):
    """model.py's _residual in inference mode."""
    w = {k: v.astype(np.float64) for k, v in arg.items()}
    if activate_before:
        x = _lrelu(_bn(x, arg, aux, 'u_bn1'))
        shortcut = x
    else:
        shortcut = x
        x = _lrelu(_bn(x, arg, aux, 'u_bn1'))
    x = _conv_same(x, w['u_conv1_weight'], stride)
    x = _conv_same(_lrelu(_bn(x, arg, aux, 'u_bn2')), w['u_conv2_weight'])
    if in_f != out_f:
        shortcut = _pool(shortcut, stride, 'avg')
        half = (out_f - in_f) // 2
        shortcut = np.pad(shortcut, ((0, 0), (half, half), (0, 0), (0, 0)))
    return x + shortcut


@pytest.mark.parametrize('in_f, out_f, stride, activate_before', [
    (4, 8, 2, False),   # a stage's first unit: stride 2 ('SAME' pads after), channel padding
    (2, 8, 1, True),    # the network's first unit: activated input on both paths
    (8, 8, 1, False),   # identity shortcut
])
def test_wrn_unit_matches_reference(in_f, out_f, stride, activate_before):
    sym = _unit(mx.sym.Variable('data'), in_f, out_f, stride, activate_before, 'u',
                adversary=True, bn_mom=0.9, workspace=256)
    shape = (2, in_f, 8, 8)
    arg, aux = _random_params(sym, shape, seed=3)
    x = np.random.RandomState(4).normal(size=shape).astype(np.float32)
    got = _forward(sym, arg, aux, x, is_train=False)[0]
    want = _unit_reference(x.astype(np.float64), arg, aux, in_f, out_f, stride, activate_before)
    assert got.shape == want.shape == (2, out_f, 8 // stride, 8 // stride)
    assert_close_to_scale(got, want, 1e-5)


def test_standardize_is_tf_per_image_standardization():
    rng = np.random.RandomState(0)
    # a natural image, and one of tiny variance where 1/sqrt(3072) replaces its std
    x = np.stack([rng.uniform(0, 255, (3, 32, 32)), 1e-3 * rng.normal(size=(3, 32, 32))])
    flat = x.reshape(2, -1)
    std = np.maximum(flat.std(axis=1), 1 / np.sqrt(3072)).reshape(2, 1, 1, 1)
    want = (x - flat.mean(axis=1).reshape(2, 1, 1, 1)) / std
    exe = standardize(mx.sym.Variable('data')).simple_bind(mx.cpu(), data=x.shape)
    exe.arg_dict['data'][:] = x
    got = exe.forward(is_train=True)[0].asnumpy()
    assert_close_to_scale(got[0], want[0], 1e-5)
    assert_close_to_scale(got[1], want[1], 1e-3)  # float32 input of scale 1e-3
    # a constant image: zero output and a finite gradient (sqrt of a zero variance would not be)
    exe.arg_dict['data'][:] = np.full(x.shape, 7.0)
    assert not exe.forward(is_train=True)[0].asnumpy().any()
    exe.backward(mx.nd.ones(x.shape))
    assert np.isfinite(exe.grad_dict['data'].asnumpy()).all()


def test_wrn_is_invariant_to_affine_pixel_changes(params):
    """The first convolution sees the standardised image: 2x + 10 gives x's embedding."""
    arg, aux = params['wrn']
    emb, _ = get_embedding('wrn', adversary=True)
    x, other = _images('wrn', 2, seed=9) / 2
    batch = np.stack([x, 2 * x + 10, other])  # inference mode: each image on its own
    standardized, out = _forward(emb, arg, aux, batch, is_train=False,
                                 outputs=['standardize_output', 'embedding_output'])
    assert_close_to_scale(standardized[1], standardized[0], 1e-5)
    assert_close_to_scale(out[1], out[0], 1e-4)
    assert np.abs(out[2] - out[0]).max() > 1e-2 * np.abs(out[0]).max()


@pytest.mark.parametrize('network, batch, steps, lr', [('tla', 8, 4, 0.01),
                                                       ('wrn', 2, 1, 0.01)])
def test_network_trains(network, batch, steps, lr, params):
    """A few SGD steps on one tiny batch lower its cross-entropy (fc7 classifier on top)."""
    emb, size = get_embedding(network)
    sym = mx.sym.SoftmaxOutput(inference_symbol(emb, 10, size, 0), name='softmax')
    mx.random.seed(0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=['softmax_label'],
                        context=mx.cpu())
    mod.bind([('data', (batch,) + SHAPES[network])], [('softmax_label', (batch,))])
    arg, aux = params[network]  # the He-scaled weights (mx's own init of WRN takes seconds)
    mod.init_params(mx.init.Xavier(rnd_type='gaussian', factor_type='in', magnitude=2),
                    arg_params={k: mx.nd.array(v) for k, v in arg.items()},
                    aux_params={k: mx.nd.array(v) for k, v in aux.items()}, allow_missing=True)
    mod.init_optimizer(optimizer='sgd', optimizer_params={'learning_rate': lr,
                                                          'momentum': 0.9})
    labels = np.arange(batch) % 10
    data = mx.io.DataBatch([mx.nd.array(_images(network, batch, seed=11))],
                           [mx.nd.array(labels)])
    losses = []
    for step in range(steps + 1):
        mod.forward(data, is_train=True)
        prob = mod.get_outputs()[0].asnumpy()
        losses.append(-np.log(prob[np.arange(batch), labels] + 1e-12).mean())
        if step < steps:
            mod.backward()
            mod.update()
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.5 * losses[0], losses
