"""ONNX face models (the insightface package's model zoo, this project's own exports) as MXNet
symbols and parameters, through MXNet's own importer (``mx.contrib.onnx``), so that they can be
evaluated, attacked, fine-tuned (``--network checkpoint --pretrained model.onnx``) and
exported back.

What the importer needs that current ONNX files do not give it:
- every initializer also listed as a graph input (the pre-IR-4 convention it looks weights up
  by; without it: ``KeyError`` on the first weight, e.g. 'scalar_op1');
- the operators it has translations for: any other is named in the error, with the file;
- PReLU slopes of shape (C,), not the (C, 1, 1) ONNX files use to broadcast over NCHW.
The imported graph's layers keep the ONNX node names; the embedding is the graph's output,
exposed as ``<name>_output`` for ``--emb-layer`` (``embedding_layer``).
"""
import os

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx


def _with_initializer_inputs(model):
    """The model with each initializer that is not a graph input added as one."""
    from onnx import helper
    inputs = {i.name for i in model.graph.input}
    for init in model.graph.initializer:
        if init.name not in inputs:
            model.graph.input.append(helper.make_tensor_value_info(
                init.name, init.data_type, list(init.dims)))
    return model


def _unsupported_ops(model):
    from mxnet.contrib.onnx.onnx2mx._import_helper import _convert_map
    return sorted({node.op_type for node in model.graph.node} - set(_convert_map))


def import_onnx(path):
    """(symbol, arg_params, aux_params) of an ONNX file; ValueError naming the file and what the
    importer cannot take."""
    import onnx
    from mxnet.contrib.onnx.onnx2mx.import_onnx import GraphProto
    if not os.path.isfile(path):
        raise FileNotFoundError('no ONNX file %s' % path)
    try:
        model = onnx.load(path)
    except Exception as err:  # onnx raises DecodeError and others for a damaged file
        raise ValueError('%s is not a readable ONNX model: %s' % (path, err)) from None
    missing = _unsupported_ops(model)
    if missing:
        raise ValueError('%s uses ONNX operators MXNet 1.9.1\'s importer has no translation for: '
                         '%s' % (path, ', '.join(missing)))
    model = _with_initializer_inputs(model)
    graph = GraphProto()
    try:
        opset = max([o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] or [13])
        symbol, arg, aux = graph.from_onnx(model.graph, opset)
    except Exception as err:  # the importer raises bare KeyError/AttributeError/MXNetError
        raise ValueError('MXNet\'s ONNX importer cannot take %s: %s: %s'
                         % (path, type(err).__name__, str(err).splitlines()[0] if str(err)
                            else '')) from None
    symbol, arg = _prelu_slopes_flat(symbol, arg)
    return symbol, arg, aux


def _prelu_slopes_flat(symbol, arg):
    """(symbol, arg) with PReLU slopes as MXNet takes them, (C,): ONNX files carry them as
    (C, 1, 1) so that they broadcast over NCHW (this project's exporter writes them so)."""
    import json
    doc = json.loads(symbol.tojson())
    nodes = doc['nodes']
    for node in nodes:
        if node['op'] == 'LeakyReLU' and node.get('attrs', {}).get('act_type') == 'prelu':
            gamma = nodes[node['inputs'][1][0]]
            if gamma['name'] in arg and arg[gamma['name']].ndim > 1:
                arg[gamma['name']] = arg[gamma['name']].reshape((-1,))
                gamma.setdefault('attrs', {})['__shape__'] = str(arg[gamma['name']].shape)
    return mx.sym.load_json(json.dumps(doc)), arg


def embedding_layer(symbol):
    """The name (without ``_output``) of the imported graph's output layer."""
    name = symbol.list_outputs()[0]
    return name[:-len('_output')] if name.endswith('_output') else name
