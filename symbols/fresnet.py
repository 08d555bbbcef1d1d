"""InsightFace's face ResNets ("fresnet", r18 ... r269) with the embedding heads of its get_fc1.

The graph and every parameter name follow the last MXNet-era InsightFace version
(deepinsight/insightface ``src/symbols/fresnet.py`` and ``symbol_utils.get_fc1``), so a stock
InsightFace checkpoint (e.g. LResNet50E-IR, LResNet100E-IR) loads with nothing missing or extra
apart from the classifier ``fc7``. The default configuration (unit 3, input 1, output 'E',
prelu, no SE) is the "IR" network of ArcFace and the one MTER fine-tunes:

    data -> id -> (x - 127.5) * 0.0078125 -> conv0 3x3 -> bn0 -> relu0
         -> 4 stages; the first unit of each halves the resolution (112 -> 56 -> 28 -> 14 -> 7)
         -> bn1 -> Dropout(0.4) -> FullyConnected pre_fc1 -> BatchNorm(fix_gamma) fc1

Adversary mode (``adversary=True``) builds the same graph with every BatchNorm in global-stats
mode and every Dropout removed: the attack of MTER targets the deterministic inference network
the main group is training (the original's adversary copy, fresnet_adv.py, likewise used global
statistics and Dropout p=0). Parameter names and shapes do not change.

Depths (``DEPTHS``): the unit table of InsightFace's src/ tree, where depths >= 101 use bottleneck
units (filters 64,256,512,1024,2048), plus 98, 99, 134, 136, 140, 160, which only its later
recognition/arcface_mxnet tree defines (with basic units: that tree's bottleneck rule is >= 500).

Where this port deliberately differs from the original:
- ``bn_mom`` applies to the head's BatchNorms too (the original's get_fc1 hard-codes 0.9; equal
  at the default).
- ``version_unit=4`` is refused: the last original dispatches to a unit it no longer defines.
- An unknown ``version_output`` is refused (the original silently builds head 'B').
- ``memonger`` (a memory-planning attribute) is left out; it does not change the graph.
- ``version_se`` defaults to 0 (the original builder defaults to 1; its training scripts pass 0).
- MTER's own copy of fresnet differs only outside the defaults: its ``version_input=0`` adds a
  3x3/2 max-pool after the stem and keeps stage 1 at stride 1 (same parameters, other graph),
  and its ``version_input=2`` uses grouped ResNeXt units instead of bn_data. This module
  follows InsightFace.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import batch_norm, dropout, flatten_for_fc, name_embedding, prelu

# depth -> (units per stage, bottleneck)
DEPTHS = {
    18: ((2, 2, 2, 2), False),
    34: ((3, 4, 6, 3), False),
    49: ((3, 4, 14, 3), False),
    50: ((3, 4, 14, 3), False),
    74: ((3, 6, 24, 3), False),
    90: ((3, 8, 30, 3), False),
    98: ((3, 4, 38, 3), False),
    99: ((3, 8, 35, 3), False),
    100: ((3, 13, 30, 3), False),
    101: ((3, 4, 23, 3), True),
    124: ((3, 13, 40, 5), True),
    134: ((3, 10, 50, 3), False),
    136: ((3, 13, 48, 3), False),
    140: ((3, 15, 48, 3), False),
    152: ((3, 8, 36, 3), True),
    160: ((3, 24, 49, 3), False),
    200: ((3, 24, 36, 3), True),
    269: ((3, 30, 48, 8), True),
}
FILTERS = {False: (64, 64, 128, 256, 512), True: (64, 256, 512, 1024, 2048)}

VERSION_INPUTS = (0, 1, 2)   # 0: 7x7/2 stem; 1: 3x3 stem; 2: bn_data on raw pixels + 3x3 stem
VERSION_UNITS = (1, 2, 3)    # 1: post-activation; 2: pre-activation; 3: IR, BN-conv-BN-act-conv-BN
VERSION_ACTS = ('prelu', 'relu', 'sigmoid', 'tanh', 'softrelu', 'softsign')
VERSION_OUTPUTS = ('E', 'Z', 'F', 'G', 'H', 'I', 'J', 'GAP', 'GNAP', 'GDC',
                   'A', 'B', 'C', 'D', 'AX', 'BX', 'CX', 'DX')


class Layers:
    """Layer factory holding what every layer of one network shares."""

    def __init__(self, adversary, bn_mom, workspace, act_type):
        self.adversary, self.bn_mom = adversary, bn_mom
        self.workspace, self.act_type = workspace, act_type

    def bn(self, x, name, fix_gamma=False, eps=2e-5):
        return batch_norm(x, name, self.adversary, fix_gamma=fix_gamma, bn_mom=self.bn_mom,
                          eps=eps)

    def conv(self, x, name, filters, kernel, stride=1, no_bias=True, num_group=1, pad=None):
        pad = kernel // 2 if pad is None else pad
        return mx.sym.Convolution(data=x, num_filter=filters, kernel=(kernel, kernel),
                                  stride=(stride, stride), pad=(pad, pad),
                                  num_group=num_group, no_bias=no_bias,
                                  workspace=self.workspace, name=name)

    def act(self, x, name, channels, act_type=None, ndim=4):
        """The activation; PReLU (InsightFace's LeakyReLU(act_type='prelu'), ``channels``
        slopes) through ``symbols.common.prelu``, the same function on fast operators."""
        act_type = act_type or self.act_type
        if act_type == 'prelu':
            return prelu(x, name, channels, ndim=ndim)
        return mx.sym.Activation(data=x, act_type=act_type, name=name)

    def dropout(self, x, p):
        return dropout(x, p, self.adversary)


def _squeeze_excite(L, x, filters, name):
    w = mx.sym.Pooling(data=x, global_pool=True, kernel=(7, 7), pool_type='avg',
                       name=name + '_se_pool1')
    w = L.conv(w, name + '_se_conv1', filters // 16, 1, no_bias=False)
    w = L.act(w, name + '_se_relu1', filters // 16)
    w = L.conv(w, name + '_se_conv2', filters, 1, no_bias=False)
    w = mx.sym.Activation(data=w, act_type='sigmoid', name=name + '_se_sigmoid')
    return mx.sym.broadcast_mul(x, w)


def _residual_unit(L, x, filters, stride, dim_match, name, bottleneck, use_se, version_unit,
                   version_input, in_filters):
    """One residual unit; layer k of the body is conv{k} (k = 1, 2[, 3])."""
    if bottleneck:
        convs = [(filters // 4, 1), (filters // 4, 3), (filters, 1)]
    else:
        convs = [(filters, 3), (filters, 3)]
    last = len(convs) - 1
    # which conv of the body carries the stride
    if version_unit == 1:
        strided = 0 if version_input == 0 else last   # v1 / v1_L of the original
    elif version_unit == 2:
        strided = 1 if bottleneck else 0              # the first 3x3 conv
    else:
        strided = last

    def conv(body, k):
        n, kernel = convs[k]
        return L.conv(body, '%s_conv%d' % (name, k + 1), n, kernel,
                      stride if k == strided else 1)

    def projection(source):
        sc = L.conv(source, name + '_conv1sc', filters, 1, stride)
        return L.bn(sc, name + '_sc')

    if version_unit == 1:    # conv-BN-act ..., conv-BN (+SE), add, act
        body = x
        for k in range(len(convs)):
            body = L.bn(conv(body, k), '%s_bn%d' % (name, k + 1))
            if k < last:
                body = L.act(body, '%s_relu%d' % (name, k + 1), convs[k][0])
        if use_se:
            body = _squeeze_excite(L, body, filters, name)
        shortcut = x if dim_match else projection(x)
        return L.act(body + shortcut, name + '_relu3', filters)

    if version_unit == 2:    # (BN-act-conv) x n (+SE), add; projection from the first act
        body, act1 = x, None
        for k in range(len(convs)):
            body = L.act(L.bn(body, '%s_bn%d' % (name, k + 1)), '%s_relu%d' % (name, k + 1),
                         in_filters if k == 0 else convs[k - 1][0])
            act1 = body if k == 0 else act1
            body = conv(body, k)
        if use_se:
            body = _squeeze_excite(L, body, filters, name)
        shortcut = x if dim_match else L.conv(act1, name + '_sc', filters, 1, stride)
        return body + shortcut

    body = L.bn(x, name + '_bn1')    # version 3: BN, (conv-BN-act) ..., conv-BN (+SE), add
    for k in range(len(convs)):
        body = L.bn(conv(body, k), '%s_bn%d' % (name, k + 2))
        if k < last:
            body = L.act(body, '%s_relu%d' % (name, k + 1), convs[k][0])
    if use_se:
        body = _squeeze_excite(L, body, filters, name)
    shortcut = x if dim_match else projection(x)
    return body + shortcut


def _stem(L, data, version_input, filters):
    if version_input == 2:
        body = L.bn(data, 'bn_data', fix_gamma=True)
        kernel, stride = 3, 1
    else:
        body = mx.sym.identity(data=data, name='id')
        body = (body - 127.5) * 0.0078125
        kernel, stride = (7, 2) if version_input == 0 else (3, 1)
    body = L.conv(body, 'conv0', filters, kernel, stride)
    return L.act(L.bn(body, 'bn0'), 'relu0', filters)


def _gnap(L, body, emb_size):
    """Global norm-aware pooling (MobileFaceNet++ head): features reweighted by mean/own norm."""
    channels = 512    # fixed in the original
    if emb_size > channels:
        body = L.conv(body, 'convx', emb_size, 1)
        body = L.act(L.bn(body, 'convx_bn'), 'convx_relu', emb_size, 'prelu')
        channels = emb_size
    body = L.bn(body, 'bn6f', fix_gamma=True)
    norm = mx.sym.sqrt(mx.sym.sum(body * body, axis=1, keepdims=True))
    # the mean is over the whole batch, as in the original
    weight = mx.sym.broadcast_div(mx.sym.mean(norm), norm)
    body = body * mx.sym.tile(weight, reps=(1, channels, 1, 1))
    out = mx.sym.Pooling(body, kernel=(7, 7), global_pool=True, pool_type='avg')
    if emb_size < channels:
        out = L.bn(out, 'bn6w', fix_gamma=True)
        out = mx.sym.FullyConnected(data=out, num_hidden=emb_size, name='pre_fc1')
    else:
        out = mx.sym.Flatten(data=out)
    return L.bn(out, 'fc1', fix_gamma=True)


def embedding_head(L, body, emb_size, version_output, channels):
    """get_fc1 of the original: the layers from the last residual unit to the embedding.

    Its activations are prelu whatever ``version_act`` says, as in the original.
    """
    def fc(x, name):
        return mx.sym.FullyConnected(data=x, num_hidden=emb_size, name=name)

    def fc_bn(x):
        return L.bn(fc(x, 'pre_fc1'), 'fc1', fix_gamma=True)

    head = version_output
    if head in ('Z', 'E', 'F'):
        body = L.dropout(L.bn(body, 'bn1'), 0.4)
        if head == 'Z':
            return body
        return fc_bn(body) if head == 'E' else fc(body, 'fc1')
    if head in ('G', 'I'):
        body = L.bn(body, 'bn1')
        return fc(body, 'fc1') if head == 'G' else fc_bn(body)
    if head == 'H':
        return fc(body, 'fc1')
    if head == 'J':
        return fc_bn(body)
    if head == 'GNAP':
        return _gnap(L, body, emb_size)
    if head == 'GDC':    # MobileFaceNet's global depthwise 7x7 conv; its BN keeps MXNet's eps
        body = L.conv(body, 'conv_6dw7_7_conv2d', 512, 7, num_group=512, pad=0)
        body = L.bn(body, 'conv_6dw7_7_batchnorm', eps=1e-3)
        # InsightFace names this FullyConnected's weight fc1_weight (its bias pre_fc1_bias)
        weight = mx.sym.Variable('fc1_weight', shape=(emb_size, channels))
        out = mx.sym.FullyConnected(data=flatten_for_fc(body, 'conv_6dw7_7_flatten'),
                                    weight=weight, num_hidden=emb_size, name='pre_fc1')
        return L.bn(out, 'fc1', fix_gamma=True)
    # GAP and A-D: BN-act-global average pool
    body = L.act(L.bn(body, 'bn1'), 'relu1', channels, 'prelu')
    body = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type='avg',
                          name='pool1')
    flat = mx.sym.Flatten(data=body)
    if head == 'GAP':
        return fc_bn(flat)
    if head.endswith('X'):
        flat = L.dropout(flat, 0.2)
    kind = head[0]
    if kind == 'A':
        return flat
    if kind == 'B':
        return fc(flat, 'pre_fc1')
    out = fc_bn(flat)
    return out if kind == 'C' else L.act(out, 'fc1_relu', emb_size, 'prelu', ndim=2)


def _check(num_layers, version_input, version_output, version_unit, version_act):
    checks = (('num_layers', num_layers, tuple(sorted(DEPTHS))),
              ('version_input', version_input, VERSION_INPUTS),
              ('version_output', version_output, VERSION_OUTPUTS),
              ('version_unit', version_unit, VERSION_UNITS),
              ('version_act', version_act, VERSION_ACTS))
    for what, value, allowed in checks:
        if value not in allowed:
            raise ValueError('fresnet: %s=%r is not supported; expected one of %s'
                             % (what, value, ', '.join(str(a) for a in allowed)))


def get_symbol(num_layers, adversary=False, emb_size=512, version_se=0, version_input=1,
               version_output='E', version_unit=3, version_act='prelu', bn_mom=0.9,
               workspace=256):
    """Returns (embedding symbol, embedding size) of fresnet r<num_layers>.

    Input ``data`` is (N, 3, H, W) in [0, 255] (the network normalises; 112x112 for faces).
    The symbol ends in the identity ``embedding``; its input keeps InsightFace's name ``fc1``
    for heads that have one. The size is ``emb_size`` except for heads 'A'/'AX' (the last
    stage's channels) and 'Z' (the flattened feature map of a 112x112 input).
    """
    _check(num_layers, version_input, version_output, version_unit, version_act)
    units, bottleneck = DEPTHS[num_layers]
    filters = FILTERS[bottleneck]
    L = Layers(adversary, bn_mom, workspace, version_act)
    data = mx.sym.Variable('data')
    body = _stem(L, data, version_input, filters[0])
    for stage, count in enumerate(units):
        for j in range(count):
            body = _residual_unit(L, body, filters[stage + 1], 2 if j == 0 else 1, j > 0,
                                  'stage%d_unit%d' % (stage + 1, j + 1), bottleneck,
                                  bool(version_se), version_unit, version_input,
                                  filters[stage + 1] if j > 0 else filters[stage])
    fc1 = embedding_head(L, body, emb_size, version_output, filters[-1])
    size = emb_size
    if version_output in ('A', 'AX'):
        size = filters[-1]
    elif version_output == 'Z':
        _, out_shapes, _ = fc1.infer_shape(data=(1, 3, 112, 112))
        size = int(out_shapes[0][1] * out_shapes[0][2] * out_shapes[0][3])
    return name_embedding(fc1), size
