"""InsightFace's MobileFaceNet, network ``y1`` (``fmobilefacenet`` of InsightFace's MXNet-era
``src/symbols``), with its exact parameter and output names, so that InsightFace's y1 models
(e.g. the model zoo's MobileFaceNet ``model-y1-test2``) load with nothing missing or extra.

    data -> (x - 127.5) * 0.0078125 -> conv_1 (3x3/2, 64) -> conv_2_dw (3x3 depthwise, 64)
         -> dconv_23 -> res_3 (4 blocks) -> dconv_34 -> res_4 (6) -> dconv_45 -> res_5 (2)
         -> conv_6sep (1x1, 512) -> head (GDC: conv_6dw7_7 7x7 depthwise, pre_fc1, fc1)

A "Conv" is Convolution (no bias) ``<name>_conv2d``, BatchNorm (fix_gamma=False, MXNet's
default eps 1e-3) ``<name>_batchnorm`` and PReLU ``<name>_relu``; a "Linear" (the projections
``*_conv_proj``) has no activation. A DResidual block is a 1x1 Conv ``_conv_sep`` to the group
width, a 3x3 depthwise Conv ``_conv_dw`` (the stride), a 1x1 Linear ``_conv_proj``; a Residual
stage adds each block's input to its output (blocks named ``<stage>_block<i>``).
The head is InsightFace's get_fc1 (``symbols.fresnet.embedding_head``); y1-test2 has 'GDC' and a
128-d embedding. Adversary mode: batch-norm on moving statistics (there is no dropout).

Not built by name: y2 (later InsightFace trees give it other block counts and a residual
stem, which no checkpoint here could confirm); ``--network checkpoint`` fine-tunes any such
model from its own graph (``symbols.graph``).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import name_embedding
from .fresnet import Layers, embedding_head

# (stage name, blocks, output channels, group width, stride of its first block)
Y1_STAGES = (('dconv_23', 0, 64, 128, 2), ('res_3', 4, 64, 128, 1),
             ('dconv_34', 0, 128, 256, 2), ('res_4', 6, 128, 256, 1),
             ('dconv_45', 0, 128, 512, 2), ('res_5', 2, 128, 256, 1))
HEADS = ('GDC', 'GNAP', 'E', 'J')


def _conv(L, x, name, filters, kernel=1, stride=1, groups=1, act=True):
    x = L.conv(x, name + '_conv2d', filters, kernel, stride, num_group=groups)
    x = L.bn(x, name + '_batchnorm', eps=1e-3)
    return L.act(x, name + '_relu', filters) if act else x


def _dresidual(L, x, name, out, groups, stride):
    x = _conv(L, x, name + '_conv_sep', groups)
    x = _conv(L, x, name + '_conv_dw', groups, kernel=3, stride=stride, groups=groups)
    return _conv(L, x, name + '_conv_proj', out, act=False)


def get_symbol(adversary=False, emb_size=128, version_output='GDC', bn_mom=0.9, workspace=256,
               **_):
    """Returns (embedding symbol, ``emb_size``) of y1. Input ``data`` (N, 3, 112, 112) RGB in
    [0, 255]; the symbol ends in the identity ``embedding`` over InsightFace's ``fc1``."""
    if version_output not in HEADS:
        raise ValueError('mobilefacenet: version_output=%r is not supported; expected one of %s'
                         % (version_output, ', '.join(HEADS)))
    L = Layers(adversary, bn_mom, workspace, 'prelu')
    x = (mx.sym.Variable('data') - 127.5) * 0.0078125
    x = _conv(L, x, 'conv_1', 64, kernel=3, stride=2)
    x = _conv(L, x, 'conv_2_dw', 64, kernel=3, groups=64)
    for name, blocks, out, groups, stride in Y1_STAGES:
        if blocks == 0:
            x = _dresidual(L, x, name, out, groups, stride)
            continue
        for i in range(blocks):
            x = _dresidual(L, x, '%s_block%d' % (name, i), out, groups, stride) + x
    x = _conv(L, x, 'conv_6sep', 512)
    return name_embedding(embedding_head(L, x, emb_size, version_output, 512)), emb_size
