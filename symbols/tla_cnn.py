"""The MNIST CNN of TLA (Mao et al., "Metric Learning for Adversarial Robustness", NeurIPS 2019;
columbia/Metric_Learning_Adversarial_Robustness, learning/model_mnist_large.py, ``_encoder``).

Input (N, 1, 28, 28) in [0, 1]. Four 3x3 'SAME' convolutions with bias (32, 64, 128, 256
filters), each followed by batch-norm and ReLU, a 2x2 max-pool after the second and the fourth
(28 -> 14 -> 7), then a 1024-unit fully connected layer, batch-norm and ReLU. That 1024-d output
is TLA's triplet layer (``x4``) and the embedding here; the original's final FC 10 is the
project's classifier head (fc7), not part of this symbol.

Batch-norm as TensorFlow's ``contrib.layers.batch_norm`` of the original: decay 0.9, epsilon
1e-3, scale and centre. Differences that matter only for importing the original's TF weights:
the flatten before the FC is channel-major here (NCHW) and TF's is channel-last.

Parameter names: conv1..conv4 (_weight, _bias), bn1..bn4, fc1, bn_fc1.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from .common import batch_norm, name_embedding

EMBEDDING_SIZE = 1024
CONV_FILTERS = (32, 64, 128, 256)
BN_EPS = 1e-3  # TF's batch_norm default, as the original used


def tla_cnn(adversary=False, bn_mom=0.9, workspace=256, **_):
    """Returns (embedding symbol, 1024). ``adversary=True``: batch-norm on moving statistics."""
    x = mx.sym.Variable('data')
    for i, filters in enumerate(CONV_FILTERS, start=1):
        x = mx.sym.Convolution(data=x, num_filter=filters, kernel=(3, 3), stride=(1, 1),
                               pad=(1, 1), workspace=workspace, name='conv%d' % i)
        x = batch_norm(x, 'bn%d' % i, adversary, bn_mom=bn_mom, eps=BN_EPS)
        x = mx.sym.Activation(data=x, act_type='relu', name='relu%d' % i)
        if i % 2 == 0:
            x = mx.sym.Pooling(data=x, pool_type='max', kernel=(2, 2), stride=(2, 2),
                               name='pool%d' % (i // 2))
    x = mx.sym.flatten(data=x, name='flatten1')
    x = mx.sym.FullyConnected(data=x, num_hidden=EMBEDDING_SIZE, name='fc1')
    x = batch_norm(x, 'bn_fc1', adversary, bn_mom=bn_mom, eps=BN_EPS)
    x = mx.sym.Activation(data=x, act_type='relu', name='relu_fc1')
    return name_embedding(x), EMBEDDING_SIZE
