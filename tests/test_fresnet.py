"""InsightFace fresnet: parameter names as InsightFace writes them, adversary mode, forward.

The expected names and shapes come from an independent generator written from InsightFace's
naming rules (not from the builder), so a checkpoint of the builder loads a stock InsightFace
model's parameters and the other way round.
"""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import symbols
from src.checkpoint import load_checkpoint, save_checkpoint
from symbols import fresnet
from symbols.heads import inference_symbol
from tests.conftest import assert_close_to_scale

SMALL = (3, 32, 32)

# InsightFace's table: depth -> units per stage; bottleneck units from 101 up (src/ tree)
INSIGHTFACE_UNITS = {18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 14, 3],
                     100: [3, 13, 30, 3], 101: [3, 4, 23, 3], 152: [3, 8, 36, 3]}


def insightface_params(depth, emb_size=512, se=False, hw=32):
    """(args, aux): name -> shape of InsightFace's r<depth> with unit 3, input 1, output 'E'."""
    units = INSIGHTFACE_UNITS[depth]
    bottleneck = depth >= 101
    widths = [256, 512, 1024, 2048] if bottleneck else [64, 128, 256, 512]
    args, aux = {}, {}

    def bn(name, channels):
        args[name + '_gamma'] = args[name + '_beta'] = (channels,)
        aux[name + '_moving_mean'] = aux[name + '_moving_var'] = (channels,)

    def prelu(name, channels):
        args[name + '_gamma'] = (channels,)

    args['conv0_weight'] = (64, 3, 3, 3)
    bn('bn0', 64)
    prelu('relu0', 64)
    channels = 64
    for stage, (count, width) in enumerate(zip(units, widths), start=1):
        for unit in range(1, count + 1):
            name = 'stage%d_unit%d' % (stage, unit)
            bn(name + '_bn1', channels)
            if bottleneck:
                mid = width // 4
                args[name + '_conv1_weight'] = (mid, channels, 1, 1)
                bn(name + '_bn2', mid)
                prelu(name + '_relu1', mid)
                args[name + '_conv2_weight'] = (mid, mid, 3, 3)
                bn(name + '_bn3', mid)
                prelu(name + '_relu2', mid)
                args[name + '_conv3_weight'] = (width, mid, 1, 1)
                bn(name + '_bn4', width)
            else:
                args[name + '_conv1_weight'] = (width, channels, 3, 3)
                bn(name + '_bn2', width)
                prelu(name + '_relu1', width)
                args[name + '_conv2_weight'] = (width, width, 3, 3)
                bn(name + '_bn3', width)
            if se:
                args[name + '_se_conv1_weight'] = (width // 16, width, 1, 1)
                args[name + '_se_conv1_bias'] = (width // 16,)
                prelu(name + '_se_relu1', width // 16)
                args[name + '_se_conv2_weight'] = (width, width // 16, 1, 1)
                args[name + '_se_conv2_bias'] = (width,)
            if unit == 1:
                args[name + '_conv1sc_weight'] = (width, channels, 1, 1)
                bn(name + '_sc', width)
            channels = width
        hw = (hw + 1) // 2   # each stage's first unit has stride 2
    bn('bn1', channels)
    args['pre_fc1_weight'] = (emb_size, channels * hw * hw)
    args['pre_fc1_bias'] = (emb_size,)
    bn('fc1', emb_size)
    return args, aux


def shapes_of(sym, data_shape):
    arg_shapes, _, aux_shapes = sym.infer_shape(data=data_shape)
    args = dict(zip(sym.list_arguments(), arg_shapes))
    args.pop('data')
    return args, dict(zip(sym.list_auxiliary_states(), aux_shapes))


def random_params(sym, data_shape, seed=0):
    rng = np.random.RandomState(seed)
    args, aux = shapes_of(sym, data_shape)
    arg = {k: mx.nd.array(rng.normal(1.0 if k.endswith('_gamma') else 0.0, 0.05, s))
           for k, s in args.items()}
    aux = {k: mx.nd.array(rng.uniform(0.5, 1.5, s) if k.endswith('_var')
                          else rng.normal(0, 0.1, s)) for k, s in aux.items()}
    return arg, aux


def forward(sym, arg, aux, x, is_train):
    inputs = dict(arg, data=x)
    ex = sym.bind(mx.cpu(), inputs, aux_states={k: v.copy() for k, v in aux.items()},
                  grad_req='null')
    return ex.forward(is_train=is_train)[0].asnumpy()


def ops_of(sym):
    return [node for node in json.loads(sym.tojson())['nodes'] if node['op'] != 'null']


@pytest.mark.parametrize('depth', [18, 50])
def test_checkpoint_has_insightface_names(tmp_path, depth):
    emb, size = fresnet.get_symbol(depth, emb_size=512)
    assert size == 512
    sym = inference_symbol(emb, 10, 512, 0)
    arg, aux = random_params(sym, (1,) + SMALL)
    prefix = str(tmp_path / ('r%d' % depth))
    save_checkpoint(prefix, 1, sym, arg, aux)
    loaded_sym, loaded_arg, loaded_aux = load_checkpoint(prefix, 1)

    expected_args, expected_aux = insightface_params(depth, hw=SMALL[1])
    assert set(loaded_arg) - set(expected_args) == {'fc7_weight', 'fc7_bias'}
    assert {k: v.shape for k, v in loaded_arg.items() if not k.startswith('fc7')} == expected_args
    assert {k: v.shape for k, v in loaded_aux.items()} == expected_aux
    internals = loaded_sym.get_internals().list_outputs()
    assert 'fc1_output' in internals and 'embedding_output' in internals


@pytest.mark.parametrize('depth,se', [(18, True), (100, False), (101, False), (152, True)])
def test_names_and_shapes_at_112(depth, se):
    emb, _ = fresnet.get_symbol(depth, emb_size=256, version_se=int(se))
    expected_args, expected_aux = insightface_params(depth, emb_size=256, se=se, hw=112)
    args, aux = shapes_of(emb, (1, 3, 112, 112))
    assert args == expected_args
    assert aux == expected_aux


@pytest.mark.parametrize('kwargs', [{}, {'version_se': 1, 'version_output': 'AX'},
                                    {'version_unit': 1, 'version_input': 0},
                                    {'version_unit': 2, 'version_act': 'relu'}])
def test_adversary_mode_is_the_inference_network(kwargs):
    train, train_size = fresnet.get_symbol(18, emb_size=128, **kwargs)
    adv, adv_size = fresnet.get_symbol(18, adversary=True, emb_size=128, **kwargs)
    assert adv_size == train_size
    assert adv.list_arguments() == train.list_arguments()
    assert adv.list_auxiliary_states() == train.list_auxiliary_states()
    assert shapes_of(adv, (2,) + SMALL) == shapes_of(train, (2,) + SMALL)

    train_bns = [n for n in ops_of(train) if n['op'] == 'BatchNorm']
    adv_bns = [n for n in ops_of(adv) if n['op'] == 'BatchNorm']
    assert len(adv_bns) == len(train_bns) > 0
    assert all(n['attrs'].get('use_global_stats') == 'True' for n in adv_bns)
    assert not any(n['attrs'].get('use_global_stats') == 'True' for n in train_bns)
    assert not [n for n in ops_of(adv) if n['op'] == 'Dropout']
    if kwargs.get('version_output', 'E') in ('E', 'AX'):
        assert [n for n in ops_of(train) if n['op'] == 'Dropout']


def test_forward_adversary_equals_inference():
    train, size = fresnet.get_symbol(18, emb_size=128, version_se=1)
    adv, _ = fresnet.get_symbol(18, adversary=True, emb_size=128, version_se=1)
    arg, aux = random_params(train, (4,) + SMALL, seed=1)
    x = mx.nd.array(np.random.RandomState(2).uniform(0, 255, (4,) + SMALL))

    inference = forward(train, arg, aux, x, is_train=False)
    assert inference.shape == (4, size) == (4, 128)
    assert np.isfinite(inference).all() and np.abs(inference).max() > 0
    first = forward(adv, arg, aux, x, is_train=True)
    second = forward(adv, arg, aux, x, is_train=True)
    np.testing.assert_array_equal(first, second)
    # two float32 paths through 18 layers (inference-mode batch-norm vs global statistics in
    # training mode) agree to round-off relative to the output's scale (~1e3 here)...
    assert_close_to_scale(first, inference, 1e-3)
    # ... while the training network in training mode is a different function (batch
    # statistics, dropout): its difference is of the order of the scale itself
    train_mode = forward(train, arg, aux, x, is_train=True)
    assert np.abs(train_mode - inference).max() > 0.1 * np.abs(inference).max()


def test_graph_layout_of_the_default_network():
    """What names and shapes cannot show: where the stride sits and how pixels are scaled."""
    emb, _ = fresnet.get_symbol(18)
    nodes = json.loads(emb.tojson())['nodes']
    convs = {n['name']: n['attrs'] for n in nodes if n['op'] == 'Convolution'}
    strided = {name for name, attrs in convs.items() if attrs.get('stride') == '(2, 2)'}
    assert strided == {'stage%d_unit1_%s' % (i, c)
                       for i in range(1, 5) for c in ('conv2', 'conv1sc')}
    assert convs['conv0']['kernel'] == '(3, 3)' and convs['conv0']['stride'] == '(1, 1)'

    conv0 = next(n for n in nodes if n['name'] == 'conv0')
    conv0_input = nodes[conv0['inputs'][0][0]]['name'] + '_output'
    scaled = emb.get_internals()[conv0_input]
    x = np.array([0.0, 127.5, 255.0, 64.0], dtype=np.float32).reshape(1, 1, 2, 2)
    out = scaled.bind(mx.cpu(), {'data': mx.nd.array(x)}).forward()[0].asnumpy()
    np.testing.assert_allclose(out, (x - 127.5) * 0.0078125, rtol=1e-6)


def test_get_embedding_dispatch():
    emb, size = symbols.get_embedding('r50', emb_size=512)
    direct, _ = fresnet.get_symbol(50, emb_size=512)
    assert size == 512
    assert emb.list_arguments() == direct.list_arguments()
    se, _ = symbols.get_embedding('r50', emb_size=512, version_se=1)
    assert 'stage3_unit14_se_conv2_weight' in se.list_arguments()
    head, head_size = symbols.get_embedding('r18', emb_size=64, version_output='A')
    assert head_size == 512 and 'pre_fc1_weight' not in head.list_arguments()


@pytest.mark.parametrize('kwargs,word', [({'num_layers': 51}, 'num_layers'),
                                         ({'num_layers': 50, 'version_unit': 4}, 'version_unit'),
                                         ({'num_layers': 50, 'version_output': 'Q'},
                                          'version_output'),
                                         ({'num_layers': 50, 'version_act': 'gelu'},
                                          'version_act')])
def test_unsupported_configurations_are_refused(kwargs, word):
    with pytest.raises(ValueError, match=word):
        fresnet.get_symbol(**kwargs)
