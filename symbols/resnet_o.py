"""Pre-activation ResNets of the original ad_mnist.py (He et al., "Identity Mappings in Deep
Residual Networks"), CIFAR-style: 3x3 stem, no stem pooling, global average pool, no FC.

``o10/o18/o34/o50`` have four stages (filters 64,64,128,256,512; o50 uses bottleneck units with
64,256,512,1024,2048); ``s5`` and ``s8`` are the small two- and three-stage variants. Parameter
names (bn_data, conv0, stageI_unitJ_{bn1,conv1,bn2,conv2,bn3,conv3,sc}, bn1) are the original's,
so its checkpoints load.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import batch_norm, name_embedding

# network name -> (units per stage, filter list, bottleneck)
SPECS = {
    'o10': ([1, 1, 1, 1], [64, 64, 128, 256, 512], False),
    'o18': ([2, 2, 2, 2], [64, 64, 128, 256, 512], False),
    'o34': ([3, 4, 6, 3], [64, 64, 128, 256, 512], False),
    'o50': ([3, 4, 6, 3], [64, 256, 512, 1024, 2048], True),
    's5': ([1, 1], [32, 64, 128], False),
    's8': ([1, 1, 1], [32, 64, 64, 128], False),
}


def _unit(data, num_filter, stride, dim_match, name, bottleneck, adversary, bn_mom, workspace):
    def conv(x, filters, kernel, stride_, suffix):
        pad = (kernel // 2, kernel // 2)
        return mx.sym.Convolution(data=x, num_filter=filters, kernel=(kernel, kernel),
                                  stride=stride_, pad=pad, no_bias=True, workspace=workspace,
                                  name=name + suffix)

    def bn_relu(x, i):
        x = batch_norm(x, name + '_bn%d' % i, adversary, bn_mom=bn_mom)
        return mx.sym.Activation(data=x, act_type='relu', name=name + '_relu%d' % i)

    act1 = bn_relu(data, 1)
    if bottleneck:
        mid = int(num_filter * 0.25)
        body = conv(act1, mid, 1, (1, 1), '_conv1')
        body = conv(bn_relu(body, 2), mid, 3, stride, '_conv2')
        body = conv(bn_relu(body, 3), num_filter, 1, (1, 1), '_conv3')
    else:
        body = conv(act1, num_filter, 3, stride, '_conv1')
        body = conv(bn_relu(body, 2), num_filter, 3, (1, 1), '_conv2')
    if dim_match:
        shortcut = data
    else:
        shortcut = mx.sym.Convolution(data=act1, num_filter=num_filter, kernel=(1, 1),
                                      stride=stride, no_bias=True, workspace=workspace,
                                      name=name + '_sc')
    return body + shortcut


def resnet_o(network, adversary=False, bn_mom=0.9, workspace=256):
    """Returns (embedding symbol, embedding size)."""
    units, filters, bottleneck = SPECS[network]
    data = mx.sym.Variable('data')
    body = batch_norm(data, 'bn_data', adversary, fix_gamma=True, bn_mom=bn_mom)
    body = mx.sym.Convolution(data=body, num_filter=filters[0], kernel=(3, 3), stride=(1, 1),
                              pad=(1, 1), no_bias=True, workspace=workspace, name='conv0')
    for i, n in enumerate(units):
        stride = (1, 1) if i == 0 else (2, 2)
        for j in range(n):
            body = _unit(body, filters[i + 1], stride if j == 0 else (1, 1), j > 0,
                         'stage%d_unit%d' % (i + 1, j + 1), bottleneck, adversary, bn_mom,
                         workspace)
    body = batch_norm(body, 'bn1', adversary, bn_mom=bn_mom)
    body = mx.sym.Activation(data=body, act_type='relu', name='relu1')
    body = mx.sym.Pooling(data=body, global_pool=True, kernel=(7, 7), pool_type='avg',
                          name='pool1')
    body = mx.sym.Flatten(data=body, name='flatten1')
    return name_embedding(body), filters[-1]
