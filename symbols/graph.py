"""Networks from a checkpoint's own graph: any InsightFace-style model can be fine-tuned,
attacked and exported here even when the project has no builder for its family.

``rebuild`` re-creates a loaded symbol node by node (the same operators, names and
attributes), letting a transform replace nodes on the way. The transforms:
- ``adversary``: batch-norm on moving statistics and dropout off, nothing else changed (the
  adversary mode every builder of ``symbols`` has);
- fast PReLU: ``LeakyReLU(act_type='prelu')`` becomes ``symbols.common.prelu`` (same function,
  same parameter), and ``stock_prelu`` turns it back (ONNX export, stock tools);
- a Flatten between a convolution + batch-norm and a FullyConnected
  (``symbols.common.flatten_for_fc``: MXNet 1.9.1's oneDNN fails there on AVX-512 CPUs).

``from_checkpoint`` cuts a checkpoint's symbol at an embedding layer (``fc1`` for InsightFace)
and applies them; ``get_embedding('checkpoint', ...)`` builds networks this way.
"""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import PRELU_MARK, flatten_for_fc, name_embedding, prelu


_PREFIXED = (('_linalg_', 'linalg'), ('_contrib_', 'contrib'), ('_image_', 'image'),
             ('_random_', 'random'), ('_sparse_', 'sparse'))


def _operator(op):
    """The symbol function of a registered operator name (as the JSON of a graph spells it)."""
    for namespace in (mx.sym, mx.sym._internal):   # pylint: disable=protected-access
        if hasattr(namespace, op):
            return getattr(namespace, op)
    for prefix, module in _PREFIXED:
        if op.startswith(prefix) and hasattr(getattr(mx.sym, module), op[len(prefix):]):
            return getattr(getattr(mx.sym, module), op[len(prefix):])
    raise ValueError('the graph uses operator %r, which this MXNet does not have' % op)


def _pick(sym, index):
    return sym[index] if len(sym.list_outputs()) > 1 else sym


def _attrs(node):
    return dict(node.get('attrs', node.get('param', {})) or {})


def rebuild(symbol, transform=None):
    """A new symbol equal to ``symbol``, node by node. ``transform(node, inputs, nodes, built)``
    may return a replacement for an operator node (``node``: its JSON dict; ``inputs``: the
    rebuilt input symbols; ``nodes``: every JSON node; ``built``: the rebuilt symbol of every
    node so far, by index) or None to keep it."""
    doc = json.loads(symbol.tojson())
    nodes, built = doc['nodes'], []
    for node in nodes:
        attrs = _attrs(node)
        if node['op'] == 'null':
            built.append(mx.sym.Variable(node['name'], attr=attrs or None))
            continue
        inputs = [_pick(built[ref[0]], ref[1]) for ref in node['inputs']]
        out = transform(node, inputs, nodes, built) if transform else None
        if out is None:
            out = _operator(node['op'])(*inputs, name=node['name'], **attrs)
        built.append(out)
    heads = [_pick(built[ref[0]], ref[1]) for ref in doc['heads']]
    return heads[0] if len(heads) == 1 else mx.sym.Group(heads)


def _is_true(value, default=False):
    return default if value is None else str(value).strip().lower() in ('true', '1')


def output_shapes(symbol, data_shape):
    """{node name: output shape} of every internal output at input ``data_shape``."""
    internals = symbol.get_internals()
    _, shapes, _ = internals.infer_shape(data=tuple(data_shape))
    return {name[:-len('_output')]: tuple(shape)
            for name, shape in zip(internals.list_outputs(), shapes)
            if name.endswith('_output')}


class Transform:
    """The node replacements of ``from_checkpoint`` (see the module docstring); ``data_shape``
    (N, C, H, W) gives PReLU's channel counts."""

    def __init__(self, symbol, data_shape, adversary=False, fast_prelu=True):
        self.adversary, self.fast_prelu = adversary, fast_prelu
        self.shapes = output_shapes(symbol, data_shape) if fast_prelu else {}

    def __call__(self, node, inputs, nodes, built):
        op, attrs, name = node['op'], _attrs(node), node['name']
        if op == 'LeakyReLU' and attrs.get('act_type') == 'prelu' and self.fast_prelu:
            shape = self.shapes[name]
            if len(shape) in (2, 4):
                return prelu(inputs[0], name, shape[1], gamma=inputs[1], ndim=len(shape))
        if self.adversary:
            if op == 'Dropout':
                return mx.sym.identity(inputs[0], name=name)
            if op in ('BatchNorm', '_contrib_SyncBatchNorm'):
                attrs['use_global_stats'] = 'True'
                return _operator(op)(*inputs, name=name, **attrs)
            if op == 'LeakyReLU' and attrs.get('act_type') == 'rrelu':
                raise ValueError('node %s: rrelu is random in training mode; the adversary '
                                 'mode (and attacks) need a deterministic graph' % name)
        if op == 'FullyConnected' and _is_true(attrs.get('flatten'), True) and \
                nodes[node['inputs'][0][0]]['op'] in ('BatchNorm', 'Convolution'):
            flat = flatten_for_fc(inputs[0], name + '_flatten_in')
            return mx.sym.FullyConnected(flat, *inputs[1:], name=name, **attrs)
        return None


def _stock_prelu(node, inputs, nodes, built):
    if node['op'] != 'elemwise_add' or PRELU_MARK not in _attrs(node):
        return None
    first, second = (nodes[ref[0]] for ref in node['inputs'])
    data_ref = first['inputs'][0]   # gamma * x + (1 - gamma) * relu(x): first = conv(x, gamma);
    # relu(x) + (conv or broadcast_mul)(min(x, 0), gamma) (2-d data, earlier graphs): relu(x)
    scaled = first if first['op'] == 'Convolution' else second
    gamma_ref = nodes[scaled['inputs'][1][0]]['inputs'][0]              # reshape(gamma)
    return mx.sym.LeakyReLU(_pick(built[data_ref[0]], data_ref[1]),
                            _pick(built[gamma_ref[0]], gamma_ref[1]), act_type='prelu',
                            name=node['name'])


def stock_prelu(symbol):
    """The same graph with every ``symbols.common.prelu`` as ``LeakyReLU(act_type='prelu')``
    (what ONNX exporters and stock InsightFace tools know); the same parameters."""
    return rebuild(symbol, _stock_prelu)


ARITHMETIC_OPS = ('broadcast_add', 'broadcast_sub', 'broadcast_mul', 'broadcast_div',
                  'broadcast_plus', 'broadcast_minus', 'elemwise_add', 'elemwise_sub',
                  'elemwise_mul', 'elemwise_div', '_plus', '_minus', '_mul', '_div', '_sub',
                  '_add')


def constant_inputs(symbol):
    """Names of the arguments that only feed arithmetic (an imported ONNX graph's mean, scale
    and other constants, which MXNet's importer turns into arguments): a training run keeps
    them fixed. Layer parameters (weights, biases, batch-norm and PReLU parameters) are never
    among them."""
    doc = json.loads(symbol.tojson())
    nodes = doc['nodes']
    consumers = {}
    for node in nodes:
        for ref in node.get('inputs', []):
            consumers.setdefault(ref[0], set()).add(node['op'])
    arguments = set(symbol.list_arguments()) - {'data'}
    return sorted(nodes[i]['name'] for i, ops in consumers.items()
                  if nodes[i]['op'] == 'null' and nodes[i]['name'] in arguments
                  and ops <= set(ARITHMETIC_OPS))


def embedding_candidates(symbol, data_shape):
    """Names of the layers whose output is one vector per image: what --emb-layer can name."""
    return [name for name, shape in output_shapes(symbol, data_shape).items()
            if len(shape) == 2 and shape[1] > 1]


def from_checkpoint(symbol, emb_layer='fc1', image_shape=(3, 112, 112), adversary=False,
                    fast_prelu=True):
    """(embedding symbol, size): ``symbol`` cut at ``<emb_layer>_output``, rebuilt with the
    transforms above and ending in the identity ``embedding`` like every builder's network."""
    data_shape = (1,) + tuple(image_shape)
    internals = symbol.get_internals()
    if emb_layer + '_output' not in internals.list_outputs():
        raise ValueError('the checkpoint has no layer %r to take the embedding from; layers '
                         'with one vector per image: %s' % (
                             emb_layer, ', '.join(embedding_candidates(symbol, data_shape))
                             or '(none)'))
    cut = internals[emb_layer + '_output']
    if len(output_shapes(cut, data_shape)[emb_layer]) != 2:
        raise ValueError('layer %r gives %s per image, not a vector; layers with one vector '
                         'per image: %s' % (emb_layer, output_shapes(cut, data_shape)[emb_layer],
                                            ', '.join(embedding_candidates(symbol, data_shape))))
    net = rebuild(cut, Transform(cut, data_shape, adversary, fast_prelu))
    return name_embedding(net), int(output_shapes(cut, data_shape)[emb_layer][1])
