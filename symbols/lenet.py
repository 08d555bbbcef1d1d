"""LeNet-5 of the original (tanh, max-pool, 120-d embedding); names conv1, conv2, fc1."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import name_embedding


def lenet(adversary=False, **_):
    """Returns (embedding symbol, 120). No batch-norm, so adversary mode changes nothing."""
    x = mx.sym.Variable('data')
    for i, filters in ((1, 20), (2, 50)):
        x = mx.sym.Convolution(data=x, kernel=(5, 5), num_filter=filters, name='conv%d' % i)
        x = mx.sym.Activation(data=x, act_type='tanh', name='tanh%d' % i)
        x = mx.sym.Pooling(data=x, pool_type='max', kernel=(2, 2), stride=(2, 2),
                           name='pool%d' % i)
    x = mx.sym.flatten(data=x, name='flatten1')
    x = mx.sym.FullyConnected(data=x, num_hidden=120, name='fc1')
    x = mx.sym.Activation(data=x, act_type='tanh', name='tanh3')
    return name_embedding(x), 120
