"""The CIFAR-10 wide ResNet of Madry et al. ("Towards Deep Learning Models Resistant to
Adversarial Attacks", ICLR 2018; MadryLab/cifar10_challenge, model.py), as TLA uses it.

Input RGB (N, 3, 32, 32) in [0, 255], standardised per image inside the graph (so attacks work
in pixel space): (x - mean) / max(std, 1/sqrt(3072)) over all pixels and channels of each image
(TF's ``per_image_standardization``; op ``standardize``). A 3x3 convolution to 16 channels, then
three stages of 5 pre-activation residual units (160, 320, 640 filters; strides 1, 2, 2), then
batch-norm, leaky ReLU 0.1 and a global average pool: the 640-d embedding (the original's
logit layer is the project's classifier head, fc7).

Unit: [batch-norm, leaky ReLU] -> 3x3 conv (stride) -> batch-norm -> leaky ReLU -> 3x3 conv, plus
the shortcut. The first unit of the network activates before the split (its shortcut sees the
activated input); every other unit splits first (the shortcut sees the raw input). Where the
channel count changes, the shortcut is an average pool (kernel = stride) with the new channels
zero-padded half before and half after. Convolutions have no bias and TF's 'SAME' padding: at
stride 2 that pads one row/column after only (bottom/right), done here by an explicit pad.
Batch-norm as TF's ``contrib.layers.batch_norm`` of the original: decay 0.9, epsilon 1e-3.

Parameter names: conv0, stageS_unitU_{bn1,conv1,bn2,conv2} (S, U from 1), final_bn.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import batch_norm, name_embedding

FILTERS = (16, 160, 320, 640)
STRIDES = (1, 2, 2)
UNITS_PER_STAGE = 5
BN_EPS = 1e-3  # TF's batch_norm default, as the original used
LEAKINESS = 0.1
STANDARDIZE_NAME = 'standardize'


def standardize(data, num_elements=3 * 32 * 32, name=STANDARDIZE_NAME):
    """Per-image standardisation of (N, C, H, W): (x - mean) / max(std, 1/sqrt(C*H*W)), with
    ``num_elements`` = C*H*W (a symbol does not know its input's shape).

    Written as sqrt(max(var, 1/(C*H*W))), the same value, so that the gradient stays finite on
    a constant image (sqrt of a zero variance has an infinite derivative)."""
    mean = mx.sym.mean(data, axis=(1, 2, 3), keepdims=True, name=name + '_mean')
    centered = mx.sym.broadcast_sub(data, mean, name=name + '_centered')
    var = mx.sym.mean(mx.sym.square(centered, name=name + '_square'), axis=(1, 2, 3),
                      keepdims=True, name=name + '_var')
    floored = mx.sym.maximum(var, 1.0 / num_elements)  # (with a scalar it takes no name)
    std = mx.sym.sqrt(floored, name=name + '_std')
    return mx.sym.broadcast_div(centered, std, name=name)


def _conv(x, filters, stride, name, workspace):
    """3x3 convolution, no bias, TF 'SAME' padding (output = ceil(input / stride))."""
    if stride == 1:
        pad = (1, 1)
    else:  # stride 2 on an even size: TF pads 0 before and 1 after
        x = mx.sym.pad(x, mode='constant', pad_width=(0, 0, 0, 0, 0, 1, 0, 1),
                       name=name + '_pad')
        pad = (0, 0)
    return mx.sym.Convolution(data=x, num_filter=filters, kernel=(3, 3), stride=(stride, stride),
                              pad=pad, no_bias=True, workspace=workspace, name=name)


def _bn_lrelu(x, name, suffix, adversary, bn_mom):
    x = batch_norm(x, name + '_bn' + suffix, adversary, bn_mom=bn_mom, eps=BN_EPS)
    return mx.sym.LeakyReLU(data=x, act_type='leaky', slope=LEAKINESS,
                            name=name + '_relu' + suffix)


def _pad_channels(x, before, after, name):
    """Zero channels before and after x's (N, C, H, W) channels.

    Done by padding with channels moved to the last axis (``pad`` pads only the last two axes
    of a 4-d array), not by concatenating zeros: MXNet 1.9.1's oneDNN concat fails ("could not
    construct a sub-memory") on AVX-512 CPUs when a part's channel count is not a multiple of
    16, and the first stage's shortcut pads 16 channels by 72 on each side."""
    moved = mx.sym.swapaxes(x, 1, 3, name=name + '_to_last')
    padded = mx.sym.pad(moved, mode='constant', constant_value=0,
                        pad_width=(0, 0, 0, 0, 0, 0, before, after), name=name + '_pad')
    return mx.sym.swapaxes(padded, 1, 3, name=name)


def _unit(x, in_filters, out_filters, stride, activate_before_residual, name, adversary, bn_mom,
          workspace):
    if activate_before_residual:
        x = _bn_lrelu(x, name, '1', adversary, bn_mom)
        shortcut = x
    else:
        shortcut = x
        x = _bn_lrelu(x, name, '1', adversary, bn_mom)
    x = _conv(x, out_filters, stride, name + '_conv1', workspace)
    x = _bn_lrelu(x, name, '2', adversary, bn_mom)
    x = _conv(x, out_filters, 1, name + '_conv2', workspace)
    if in_filters != out_filters:
        if stride > 1:
            shortcut = mx.sym.Pooling(data=shortcut, pool_type='avg', kernel=(stride, stride),
                                      stride=(stride, stride), name=name + '_sc_pool')
        half = (out_filters - in_filters) // 2
        shortcut = _pad_channels(shortcut, half, half, name + '_sc_pad')
    return mx.sym.elemwise_add(x, shortcut, name=name + '_add')


def wide_resnet(adversary=False, bn_mom=0.9, workspace=256, **_):
    """Returns (embedding symbol, 640). ``adversary=True``: batch-norm on moving statistics."""
    x = standardize(mx.sym.Variable('data'))
    x = _conv(x, FILTERS[0], 1, 'conv0', workspace)
    for s, stride in enumerate(STRIDES):
        for u in range(UNITS_PER_STAGE):
            first = u == 0
            x = _unit(x, FILTERS[s] if first else FILTERS[s + 1], FILTERS[s + 1],
                      stride if first else 1, first and s == 0,
                      'stage%d_unit%d' % (s + 1, u + 1), adversary, bn_mom, workspace)
    x = batch_norm(x, 'final_bn', adversary, bn_mom=bn_mom, eps=BN_EPS)
    x = mx.sym.LeakyReLU(data=x, act_type='leaky', slope=LEAKINESS, name='final_relu')
    x = mx.sym.Pooling(data=x, pool_type='avg', global_pool=True, kernel=(1, 1), name='pool1')
    x = mx.sym.flatten(data=x, name='flatten1')
    return name_embedding(x), FILTERS[-1]
