"""Face networks: the fast PReLU against MXNet's LeakyReLU(act_type='prelu') and float64;
InsightFace's MobileFaceNet (y1) against the names and shapes of a stock y1 checkpoint; the
generic path (a network built from a checkpoint's own graph) against the named builders."""
import json
import os

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from symbols import get_embedding
from symbols.common import PRELU_MARK, batch_norm, prelu
from symbols.graph import constant_inputs, from_checkpoint, stock_prelu
from symbols.heads import inference_symbol
from tests.conftest import assert_close_to_scale

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data')


def _nodes(sym):
    return json.loads(sym.tojson())['nodes']


def _prelu_reference(x, gamma, head):
    """float64 PReLU: value, input gradient and slope gradient for output gradient ``head``
    (channel axis 1; at x = 0 the slope's side, as MXNet's operator)."""
    g = gamma.reshape((1, -1) + (1,) * (x.ndim - 2))
    value = np.where(x > 0, x, g * x)
    dx = head * np.where(x > 0, 1.0, g)
    dgamma = (head * np.where(x > 0, 0.0, x)).sum(axis=tuple(i for i in range(x.ndim) if i != 1))
    return value, dx, dgamma


def _run(sym, x, gamma, head):
    args = {'data': mx.nd.array(x), 'act_gamma': mx.nd.array(gamma)}
    grads = {k: mx.nd.zeros(v.shape) for k, v in args.items()}
    ex = sym.bind(mx.cpu(), args, args_grad=grads)
    out = ex.forward(is_train=True)[0].asnumpy()
    ex.backward(mx.nd.array(head))
    return out, grads['data'].asnumpy(), grads['act_gamma'].asnumpy()


@pytest.mark.parametrize('shape', [(3, 6, 5, 5), (4, 6)])
def test_fast_prelu_equals_the_stock_operator_and_float64(shape):
    rng = np.random.RandomState(0)
    x = rng.randn(*shape)
    x.flat[::7] = 0.0                                  # zero inputs
    gamma = np.array([0.25, -0.5, 0.0, 1.5, -2.0, 0.01])  # slopes of both signs
    head = rng.randn(*shape)
    data = mx.sym.Variable('data')
    fast = prelu(data, 'act', 6, ndim=len(shape))
    stock = mx.sym.LeakyReLU(data, act_type='prelu', name='act')
    assert fast.list_arguments() == stock.list_arguments() == ['data', 'act_gamma']
    reference = _prelu_reference(x, gamma, head)
    for sym in (fast, stock):
        for got, want in zip(_run(sym, x, gamma, head), reference):
            assert_close_to_scale(got, want, 1e-6)


def _small_network_float64(v, adversary):
    """float64: sum(prelu(batch_norm(conv3x3(x)))^2), batch-norm on the batch's statistics or
    (adversary mode) on the moving ones."""
    from scipy.signal import correlate
    x = np.pad(v['data'], ((0, 0), (0, 0), (1, 1), (1, 1)))
    conv = np.stack([np.stack([sum(correlate(x[n, i], v['c_weight'][o, i], mode='valid')
                                   for i in range(x.shape[1])) + v['c_bias'][o]
                               for o in range(v['c_weight'].shape[0])]) for n in range(len(x))])
    if adversary:
        mean, var = v['bn_moving_mean'], v['bn_moving_var']
    else:
        mean, var = conv.mean(axis=(0, 2, 3)), conv.var(axis=(0, 2, 3))
    per_channel = lambda a: a.reshape(1, -1, 1, 1)  # noqa: E731
    y = (conv - per_channel(mean)) / np.sqrt(per_channel(var) + 2e-5) * \
        per_channel(v['bn_gamma']) + per_channel(v['bn_beta'])
    z = np.where(y > 0, y, per_channel(v['act_gamma']) * y)
    return (z * z).sum()


def _small_network(act, adversary, v):
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1), name='c')
    loss = mx.sym.MakeLoss(mx.sym.sum(mx.sym.square(act(batch_norm(conv, 'bn', adversary)))))
    args = {k: mx.nd.array(v[k]) for k in loss.list_arguments()}
    grads = {k: mx.nd.zeros(a.shape) for k, a in args.items()}
    ex = loss.bind(mx.cpu(), args, args_grad=grads, aux_states={
        k: mx.nd.array(v[k]) for k in loss.list_auxiliary_states()})
    value = float(ex.forward(is_train=True)[0].asnumpy())
    ex.backward()
    return value, grads['act_gamma'].asnumpy(), grads['data'].asnumpy()


@pytest.mark.parametrize('adversary', [False, True])
def test_fast_prelu_in_a_network_in_both_modes(adversary):
    """conv -> batch-norm (batch statistics, or moving ones in adversary mode) -> PReLU, as in
    every face network: loss, slope and input gradients against float64 (finite differences).
    MXNet's own operator gets the slope gradient wrong in this graph (gamma times the true
    one, for PReLU followed by an element-wise op): the fast form is also the correct one."""
    rng = np.random.RandomState(1)
    v = {'data': rng.randn(2, 3, 6, 6), 'c_weight': rng.randn(8, 3, 3, 3) * 0.3,
         'c_bias': rng.randn(8) * 0.1, 'bn_gamma': rng.uniform(0.5, 1.5, 8),
         'bn_beta': rng.randn(8) * 0.1, 'bn_moving_mean': rng.randn(8) * 0.2,
         'bn_moving_var': rng.uniform(0.5, 2, 8),
         'act_gamma': np.array([0.25, -0.3, 0.0, 0.8, 1.2, -1.0, 0.05, 0.3])}
    reference = _small_network_float64(v, adversary)
    h = 1e-6
    slope_grad = []
    for c in range(8):
        bumped = dict(v, act_gamma=v['act_gamma'] + h * np.eye(8)[c])
        slope_grad.append((_small_network_float64(bumped, adversary) - reference) / h)
    input_grad = []
    for index in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 5, 2)]:
        bumped = dict(v, data=v['data'].copy())
        bumped['data'][index] += h
        input_grad.append((_small_network_float64(bumped, adversary) - reference) / h)
    value, slope, data_grad = _small_network(lambda t: prelu(t, 'act', 8), adversary, v)
    assert value == pytest.approx(reference, rel=1e-5)
    assert_close_to_scale(slope, slope_grad, 1e-4)
    assert_close_to_scale([data_grad[i] for i in [(0, 0, 0, 0), (1, 2, 3, 4), (0, 1, 5, 2)]],
                          input_grad, 1e-3)
    _, stock_slope, _ = _small_network(
        lambda t: mx.sym.LeakyReLU(t, act_type='prelu', name='act'), adversary, v)
    assert_close_to_scale(stock_slope, np.array(slope_grad) * v['act_gamma'], 1e-4)


def _random_params(sym, data_shape, seed=0):
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = sym.infer_shape(data=data_shape)
    arg = {n: mx.nd.array(rng.uniform(-0.5, 0.5, s) if n.endswith('_gamma')
                          else rng.randn(*s) * 0.05)
           for n, s in zip(sym.list_arguments(), arg_shapes) if n != 'data'}
    aux = {n: mx.nd.array(rng.uniform(0.5, 1.5, s) if n.endswith('var') else rng.randn(*s) * 0.1)
           for n, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return arg, aux


def _forward(sym, arg, aux, x, is_train=False):
    ex = sym.bind(mx.cpu(), dict({k: v for k, v in arg.items() if k in sym.list_arguments()},
                                 data=mx.nd.array(x)),
                  aux_states={k: v.copy() for k, v in aux.items()
                              if k in sym.list_auxiliary_states()}, grad_req='null')
    return ex.forward(is_train=is_train)[0].asnumpy()


def test_checkpoint_saved_with_fast_prelu_loads_into_the_stock_graph(tmp_path):
    emb, _ = get_embedding('y1', emb_size=128)
    arg, aux = _random_params(emb, (2, 3, 112, 112))
    mx.model.save_checkpoint(str(tmp_path / 'y1'), 0, emb, arg, aux)
    sym, arg2, aux2 = mx.model.load_checkpoint(str(tmp_path / 'y1'), 0)
    stock = stock_prelu(sym)
    ops = [n['op'] for n in _nodes(stock)]
    assert ops.count('LeakyReLU') == 33 and not any(PRELU_MARK in n.get('attrs', {})
                                                    for n in _nodes(stock))
    assert stock.list_arguments() == sym.list_arguments()
    x = np.random.RandomState(2).rand(2, 3, 112, 112) * 255
    assert_close_to_scale(_forward(stock, arg2, aux2, x), _forward(emb, arg, aux, x), 1e-5)


def test_y1_has_the_names_and_shapes_of_a_stock_y1_checkpoint():
    with open(os.path.join(DATA, 'y1_param_shapes.json')) as f:
        stock = json.load(f)
    for adversary in (False, True):
        emb, size = get_embedding('y1', adversary=adversary, emb_size=128)
        assert size == 128
        arg_shapes, out_shapes, aux_shapes = emb.infer_shape(data=(1, 3, 112, 112))
        assert out_shapes == [(1, 128)]
        args = {n: list(s) for n, s in zip(emb.list_arguments(), arg_shapes) if n != 'data'}
        assert args == stock['arg']
        assert dict(zip(emb.list_auxiliary_states(), map(list, aux_shapes))) == stock['aux']
    internals = get_embedding('y1', emb_size=128)[0].get_internals().list_outputs()
    assert 'fc1_output' in internals and 'conv_6sep_relu_output' in internals


def test_y1_adversary_mode_is_the_inference_network():
    train, _ = get_embedding('y1', emb_size=128)
    adversary, _ = get_embedding('y1', adversary=True, emb_size=128)
    arg, aux = _random_params(train, (2, 3, 112, 112))
    x = np.random.RandomState(3).rand(2, 3, 112, 112) * 255
    inference = _forward(train, arg, aux, x, is_train=False)
    assert_close_to_scale(_forward(adversary, arg, aux, x, is_train=True), inference, 1e-5)
    assert np.abs(_forward(train, arg, aux, x, is_train=True) - inference).max() > 1e-3


FAMILIES = [('y1', 'fc1', (3, 112, 112), {}), ('r18', 'fc1', (3, 40, 40), {}),
            ('r18', 'fc1', (3, 112, 112), dict(version_output='GDC')),
            ('s8', 'embedding', (1, 28, 28), {}), ('tla', 'embedding', (1, 28, 28), {}),
            ('l', 'embedding', (1, 28, 28), {}), ('wrn', 'embedding', (3, 32, 32), {})]


@pytest.mark.parametrize('network,layer,shape,kwargs', FAMILIES)
def test_the_generic_path_builds_the_named_network(network, layer, shape, kwargs):
    """A checkpoint of each family, cut at its embedding layer and rebuilt from its own graph:
    the same parameters and, in training and adversary mode, the same outputs."""
    kwargs = dict(kwargs, emb_size=64) if network[0] == 'r' else kwargs
    named, size = get_embedding(network, **kwargs)
    checkpoint = inference_symbol(named, 5, size, 0)
    arg, aux = _random_params(checkpoint, (2,) + shape)
    x = np.random.RandomState(4).rand(2, *shape) * (255 if shape[0] == 3 else 1)
    for adversary in (False, True):
        generic, generic_size = from_checkpoint(checkpoint, layer, shape, adversary=adversary)
        built, _ = get_embedding(network, adversary=adversary, **kwargs)
        assert generic_size == size
        assert sorted(generic.list_arguments()) == sorted(built.list_arguments())
        assert sorted(generic.list_auxiliary_states()) == sorted(built.list_auxiliary_states())
        assert not constant_inputs(generic)
        for is_train in ((True,) if adversary else (True, False)):
            assert_close_to_scale(_forward(generic, arg, aux, x, is_train),
                                  _forward(built, arg, aux, x, is_train), 1e-4)


def test_the_generic_path_names_the_layers_it_can_cut_at():
    named, size = get_embedding('y1', emb_size=128)
    with pytest.raises(ValueError, match=r"no layer 'fc9'.*pre_fc1, fc1"):
        from_checkpoint(named, 'fc9')
    with pytest.raises(ValueError, match=r"layer 'conv_6sep_relu' gives \(1, 512, 7, 7\)"):
        from_checkpoint(named, 'conv_6sep_relu')


def _earlier_fast_prelu(data, name, channels):
    """The fast form of earlier checkpoints: relu(x) + conv1x1_depthwise(min(x, 0), gamma)."""
    gamma = mx.sym.Variable(name + '_gamma', shape=(channels,))
    below = mx.sym._internal._minimum_scalar(data, scalar=0.0, name=name + '_neg')
    weight = mx.sym.reshape(gamma, shape=(channels, 1, 1, 1), name=name + '_slope')
    negative = mx.sym.Convolution(data=below, weight=weight, num_filter=channels,
                                  num_group=channels, kernel=(1, 1), no_bias=True,
                                  name=name + '_scale')
    positive = mx.sym.Activation(data=data, act_type='relu', name=name + '_pos')
    return mx.sym.elemwise_add(positive, negative, name=name,
                               attr={PRELU_MARK: str(channels)})


def test_checkpoints_of_the_earlier_fast_form_still_turn_into_the_stock_operator():
    """Checkpoints written before the fast PReLU became gamma * x + (1 - gamma) * relu(x) (the
    face job's models, for one) export and load as stock PReLU with the same outputs."""
    data = mx.sym.Variable('data')
    conv = mx.sym.Convolution(data, num_filter=8, kernel=(3, 3), pad=(1, 1), name='conv')
    earlier = mx.sym.FullyConnected(_earlier_fast_prelu(batch_norm(conv, 'bn'), 'act', 8),
                                    num_hidden=4, name='out')
    stock = stock_prelu(earlier)
    assert [n['op'] for n in _nodes(stock)].count('LeakyReLU') == 1
    assert stock.list_arguments() == earlier.list_arguments()
    arg, aux = _random_params(earlier, (2, 3, 9, 9))
    x = np.random.RandomState(3).randn(2, 3, 9, 9)
    want = _forward(earlier, arg, aux, x)
    assert_close_to_scale(_forward(stock, arg, aux, x), want, 1e-5)
    fast, _ = from_checkpoint(stock, 'out', (3, 9, 9))     # and back to today's fast form
    assert_close_to_scale(_forward(fast, arg, aux, x), want, 1e-5)
