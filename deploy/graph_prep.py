"""The MXNet side of an ONNX export: the output symbol, the parameters as MXNet computes with
them, the input shape, and the facts about the graph that ``deploy.onnx_fixes`` needs.

Why the parameters are not exported as stored: a BatchNorm with ``fix_gamma=True`` (MXNet's
default, used by InsightFace's ``fc1`` and the MNIST nets' ``bn_data``) computes with gamma = 1
whatever the checkpoint holds, and weight decay moves the stored value away from 1 during
training; ``mx.onnx.export_model`` exports the stored value. ``inference_params`` sets those
gammas to 1.
"""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from eval.model import output_symbol
from symbols.graph import stock_prelu

FACE_PIXEL_MAX = 255.0    # fresnet: RGB 0..255, normalised inside the graph
MNIST_PIXEL_MAX = 1.0     # MNIST-format networks: grey 0..1
DEFAULT_SIZE = {3: (112, 112), 1: (28, 28)}


def _flag(attrs, key, default):
    value = attrs.get(key)
    return default if value is None else str(value).strip().lower() in ('true', '1')


def graph_nodes(symbol):
    return json.loads(symbol.tojson())['nodes']


def select_output(symbol, output, input_shape):
    """(output symbol, output name): 'auto' is the embedding for 3-channel (face) networks, as
    InsightFace ships its models, and the logits for the others (MNIST-format classifiers).
    PReLUs built from fast operators are turned back into LeakyReLU(act_type='prelu')."""
    if output == 'auto':
        output = 'embedding' if input_shape[0] == 3 else 'logits'
    # the project's fast PReLU (symbols.common.prelu) goes out as ONNX's PRelu
    return stock_prelu(output_symbol(symbol, output)), output


def default_input_shape(symbol, params):
    """(C, H, W): C from the first convolution's stored weight; 112x112 for 3-channel (face)
    networks, 28x28 for 1-channel (MNIST-format) ones."""
    nodes = graph_nodes(symbol)
    for node in nodes:
        if node['op'] == 'Convolution':
            weight = nodes[node['inputs'][1][0]]['name']
            if weight in params:
                groups = int(node.get('attrs', {}).get('num_group', 1))
                channels = int(params[weight].shape[1]) * groups
                if channels not in DEFAULT_SIZE:
                    break
                return (channels,) + DEFAULT_SIZE[channels]
            break
    raise ValueError('cannot tell the input shape of this network; pass --input-shape C,H,W')


def pixel_max(input_shape):
    """The top of the pixel range the network was trained on: 255 for 3-channel (faces), 1 for
    1-channel (MNIST-format) networks."""
    return FACE_PIXEL_MAX if input_shape[0] == 3 else MNIST_PIXEL_MAX


def inference_params(symbol, arg_params, aux_params, source='the checkpoint'):
    """({name: NDArray} of the parameters ``symbol`` needs, with every fix_gamma BatchNorm's
    gamma set to 1, [names of the gammas that were not 1])."""
    needed = [n for n in symbol.list_arguments() if n != 'data'] + \
        symbol.list_auxiliary_states()
    given = dict(arg_params)
    given.update(aux_params)
    missing = [n for n in needed if n not in given]
    if missing:
        raise ValueError('%s lacks parameters %s' % (source, ', '.join(sorted(missing)[:8])))
    params = {n: given[n].copy() for n in needed}
    reset = []
    nodes = graph_nodes(symbol)
    for node in nodes:
        if node['op'] == 'BatchNorm' and _flag(node.get('attrs', {}), 'fix_gamma', True):
            gamma = nodes[node['inputs'][1][0]]['name']
            if gamma in params:
                if (params[gamma] != 1).sum().asscalar() > 0:
                    reset.append(gamma)
                params[gamma] = mx.nd.ones_like(params[gamma])
    return params, reset


def output_shape(symbol, params, input_shape, source='the checkpoint'):
    """The output shape (without the batch axis) for ``input_shape``; a ValueError that names
    the first parameter whose stored shape does not fit that input."""
    shapes = {n: v.shape for n, v in params.items()}
    try:
        arg_shapes, out_shapes, aux_shapes = symbol.infer_shape(data=(1,) + tuple(input_shape))
    except mx.base.MXNetError as err:
        raise ValueError('%s: the network cannot take input %s: %s' % (
            source, 'x'.join(map(str, input_shape)), str(err).splitlines()[0])) from None
    inferred = dict(zip(symbol.list_arguments(), arg_shapes))
    inferred.update(zip(symbol.list_auxiliary_states(), aux_shapes))
    for name, shape in inferred.items():
        if name in shapes and tuple(shapes[name]) != tuple(shape):
            raise ValueError('%s: %s has shape %s but input %s needs %s; pass the input the '
                             'network was trained on with --input-shape C,H,W' % (
                                 source, name, tuple(shapes[name]),
                                 'x'.join(map(str, input_shape)), tuple(shape)))
    return tuple(out_shapes[0][1:])


def _internal_shapes(symbol, input_shape):
    internals = symbol.get_internals()
    _, shapes, _ = internals.infer_shape(data=(1,) + tuple(input_shape))
    return dict(zip(internals.list_outputs(), shapes))


def prelu_ranks(symbol, input_shape):
    """{PReLU node name: rank of its input}: the exporter writes the slope as (C,), which
    onnxruntime broadcasts against the last axis, not the channel axis of NCHW."""
    shapes = _internal_shapes(symbol, input_shape)
    return {node['name']: len(shapes[node['name'] + '_output'])
            for node in graph_nodes(symbol)
            if node['op'] == 'LeakyReLU' and node.get('attrs', {}).get('act_type') == 'prelu'}


# boolean attributes the exporter reads by comparing with the strings 'True'/'1' or 'False'
BOOL_ATTRS = ('flatten', 'no_bias', 'global_pool', 'keepdims', 'count_include_pad',
              'transpose_a', 'transpose_b')
MXNET_TRUE_DEFAULTS = {('FullyConnected', 'flatten')}


def exportable_symbol(symbol, input_shape):
    """(the same graph in the form the exporter translates faithfully,
    [(L2Normalization node name, reduced axes, eps)]).

    - FullyConnected: MXNet's default is flatten=True, but the exporter reads a missing
      ``flatten`` as False and flattens only the last axis (wrong on NCHW input): it is written
      out. Boolean attributes get the spelling the exporter compares with ('True'/'False').
    - L2Normalization: the exporter only has a translation for mode='channel' (LpNormalization,
      without eps), and MXNet's shape inference refuses that mode on 2-D input; 'instance' (the
      default, used by ArcFace heads and normalised softmax) raises. Each is exported as an
      identity placeholder of the same name and rebuilt by
      ``deploy.onnx_fixes.replace_l2_normalizations`` as MXNet computes it,
      x / sqrt(sum(x^2 over the mode's axes) + eps).
    """
    shapes = _internal_shapes(symbol, input_shape)
    doc = json.loads(symbol.tojson())
    l2norms = []
    for node in doc['nodes']:
        attrs = node.setdefault('attrs', {})
        for key in BOOL_ATTRS:
            if key in attrs:
                attrs[key] = 'True' if _flag(attrs, key, False) else 'False'
            elif (node['op'], key) in MXNET_TRUE_DEFAULTS:
                attrs[key] = 'True'
        if node['op'] == 'L2Normalization':
            rank = len(shapes[node['name'] + '_output'])
            mode = attrs.get('mode', 'instance')
            axes = {'instance': list(range(1, rank)), 'channel': [1],
                    'spatial': list(range(2, rank))}[mode]
            l2norms.append((node['name'], axes, float(attrs.get('eps', 1e-10))))
            node['op'], node['attrs'] = 'identity', {}
    return mx.sym.load_json(json.dumps(doc)), l2norms


def refuse_untranslatable(symbol):
    """A ValueError for graphs whose inference output MXNet itself computes at random."""
    for node in graph_nodes(symbol):
        if node['op'] == 'Dropout' and node.get('attrs', {}).get('mode') == 'always':
            raise ValueError('Dropout %s has mode=always: MXNet applies it at inference too, so '
                             'no deterministic ONNX model computes the same' % node['name'])
