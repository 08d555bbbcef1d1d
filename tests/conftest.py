import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import gzip
import os
import struct

import numpy as np
import pytest

os.environ.setdefault('OMP_NUM_THREADS', '1')
os.environ.setdefault('MXNET_SUBGRAPH_VERBOSE', '0')


def write_idx(path, array):
    """Writes a uint8 array in IDX format (gzip when the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack('>%dI' % array.ndim, *array.shape)
    opener = gzip.open if str(path).endswith('.gz') else open
    with opener(path, 'wb') as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope='session')
def digits_idx_dir(tmp_path_factory):
    """A small MNIST-format directory (gzip IDX files) made from scikit-learn's digits."""
    from data.mnist import load_digits_28
    data = load_digits_28()
    out = tmp_path_factory.mktemp('idx')
    to_u8 = lambda x: np.round(x[:, 0] * 255).astype(np.uint8)  # noqa: E731
    write_idx(out / 'train-images-idx3-ubyte.gz', to_u8(data.train_x))
    write_idx(out / 'train-labels-idx1-ubyte.gz', data.train_y)
    write_idx(out / 't10k-images-idx3-ubyte.gz', to_u8(data.test_x))
    write_idx(out / 't10k-labels-idx1-ubyte.gz', data.test_y)
    return out


def train_lenet_digits(epochs, seed):
    """A LeNet classifier trained on scikit-learn's digits (28x28): (symbol, arg, aux, data).

    The symbol is the checkpoint format of ad_mnist.py (inference_symbol: fc7 logits)."""
    import mxnet as mx
    from data.mnist import load_digits_28
    from symbols import get_embedding
    from symbols.heads import inference_symbol
    data = load_digits_28()
    emb, size = get_embedding('l')
    sym = inference_symbol(emb, 10, size, 0)
    mx.random.seed(seed)
    np.random.seed(seed)
    train = mx.io.NDArrayIter(data.train_x, data.train_y.astype(np.float32), batch_size=50,
                              shuffle=True, label_name='softmax_label')
    mod = mx.mod.Module(mx.sym.SoftmaxOutput(sym, name='softmax'), data_names=['data'],
                        label_names=['softmax_label'])
    mod.fit(train, num_epoch=epochs, optimizer='sgd', initializer=mx.init.Xavier(),
            optimizer_params={'learning_rate': 0.1, 'momentum': 0.9})
    arg, aux = mod.get_params()
    return sym, arg, aux, data


def assert_close_to_scale(actual, expected, rel, what=''):
    """max |actual - expected| <= rel * max |expected|: float32 results of different CPUs (their
    MKL-DNN kernels) differ by round-off that grows with the values' scale and the network's
    depth, so comparisons are relative to the scale of the whole output, never per element."""
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape
    scale = np.abs(expected).max()
    diff = np.abs(actual - expected).max()
    assert diff <= rel * scale, '%smax |difference| %g exceeds %g x scale %g' % (
        what + ': ' if what else '', diff, rel, scale)
