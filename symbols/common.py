"""Layer helpers shared by every network builder.

The only difference between a network in training mode and the same network in adversary mode
is here: batch-norm layers use their moving statistics (``use_global_stats``) and dropout is off,
so the attack sees the deterministic inference network the main group is training.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

EMBEDDING_NAME = 'embedding'  # every builder ends in an identity op of this name (no parameters)


def batch_norm(data, name, adversary=False, fix_gamma=False, bn_mom=0.9, eps=2e-5):
    return mx.sym.BatchNorm(data=data, fix_gamma=fix_gamma, eps=eps, momentum=bn_mom,
                            use_global_stats=adversary, name=name)


def dropout(data, p, adversary=False, name=None):
    """Dropout that the adversary mode removes (p=0), as the original's adversary copy did."""
    if adversary or p <= 0:
        return data
    return mx.sym.Dropout(data=data, p=p, name=name)


PRELU_MARK = '__prelu__'     # node attribute marking the output of ``prelu`` (its channel count)


def prelu(data, name, channels, gamma=None, ndim=4):
    """PReLU, max(x, 0) + gamma_c * min(x, 0), through fast operators.

    The same function, parameter (``<name>_gamma``, shape (C,), initialised to 0.25) and output
    name (``<name>_output``) as ``LeakyReLU(act_type='prelu')``, so InsightFace checkpoints load
    unchanged and checkpoints saved with it load into graphs built with the stock operator. On
    (N, C, H, W) data (``ndim`` 4) it is written gamma_c * x + (1 - gamma_c) * relu(x): two 1x1
    convolutions with one group per channel (weights gamma and 1 - gamma), a ReLU and a sum,
    all oneDNN operators, so the data keeps oneDNN's layout from the convolution before to the
    one after (an element-wise ``min(x, 0)`` in between made MXNet reorder it twice, forward
    and backward). On the CPU, MXNet 1.9.1's PReLU backward (input and slope gradients) takes
    several times as long (README, Benchmark, "Face networks"). On (N, C) data (``ndim`` 2):
    relu(x) + gamma * min(x, 0) through a broadcast product. The output node carries
    ``PRELU_MARK`` so that graph tools can turn it back into the stock operator
    (``symbols.graph.stock_prelu``), e.g. for ONNX export."""
    if gamma is None:
        gamma = mx.sym.Variable(name + '_gamma', shape=(channels,),
                                init=mx.init.Constant(0.25))
    else:     # a checkpoint's own variable: its shape cannot be inferred through the reshape
        gamma._set_attr(__shape__=str((int(channels),)))  # pylint: disable=protected-access
    mark = {PRELU_MARK: str(int(channels))}
    positive = mx.sym.Activation(data=data, act_type='relu', name=name + '_pos')
    if ndim == 4:
        slope = mx.sym.reshape(gamma, shape=(channels, 1, 1, 1), name=name + '_slope')
        keep = mx.sym._internal._rminus_scalar(slope, scalar=1.0, name=name + '_keep')
        linear = _channel_scale(data, slope, channels, name + '_scale')        # gamma * x
        rest = _channel_scale(positive, keep, channels, name + '_rest')  # (1 - gamma) relu(x)
        return mx.sym.elemwise_add(linear, rest, name=name, attr=mark)
    if ndim != 2:
        raise ValueError('prelu %s: %d-d data; the fast form takes 2-d or 4-d' % (name, ndim))
    below = mx.sym._internal._minimum_scalar(data, scalar=0.0, name=name + '_neg')
    slope = mx.sym.reshape(gamma, shape=(1, channels), name=name + '_slope')
    negative = mx.sym.broadcast_mul(below, slope, name=name + '_scale')
    return mx.sym.elemwise_add(positive, negative, name=name, attr=mark)


def _channel_scale(data, weight, channels, name):
    """data * weight_c per channel: a 1x1 convolution with one group per channel."""
    return mx.sym.Convolution(data=data, weight=weight, num_filter=channels, num_group=channels,
                              kernel=(1, 1), no_bias=True, name=name)


def flatten_for_fc(data, name):
    """An explicit Flatten between a convolution + batch-norm and a FullyConnected layer.

    MXNet 1.9.1's oneDNN subgraph backend fuses convolution + batch-norm for inference and
    hands its output, in oneDNN's blocked layout, to FullyConnected, which fails at the second
    forward on AVX-512 CPUs ("Check failed: !IsMKLDNNData()"). A Flatten reorders it first; it
    has no parameters, and the value is the same (FullyConnected flattens its input anyway)."""
    return mx.sym.Flatten(data=data, name=name)


def name_embedding(sym):
    """Marks the embedding: ``<EMBEDDING_NAME>_output`` in the symbol's internals."""
    return mx.sym.identity(sym, name=EMBEDDING_NAME)


def has_embedding(sym):
    outputs = sym.get_internals().list_outputs()
    return EMBEDDING_NAME + '_output' in outputs or 'fc1_output' in outputs


def find_embedding(sym):
    """The embedding output of a loaded checkpoint symbol.

    This project's checkpoints carry ``embedding_output``; stock InsightFace ones ``fc1_output``.
    """
    internals = sym.get_internals()
    names = internals.list_outputs()
    for name in (EMBEDDING_NAME + '_output', 'fc1_output'):
        if name in names:
            return internals[name]
    raise ValueError('the symbol has neither %s_output nor fc1_output: not an embedding network'
                     % EMBEDDING_NAME)
