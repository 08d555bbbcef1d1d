"""Classification data sets by name, for the training scripts and the eval tools.

``load_dataset(name, data_dir)`` returns ``data.mnist.MnistData`` (train_x, train_y, test_x,
test_y, name): MNIST-format sets (``auto``, ``mnist``, ``fashion-mnist``, ``digits``; float32
(N, 1, 28, 28) in [0, 1]) or CIFAR-10 (``cifar10``; the official binary or python files,
uint8 (N, 3, 32, 32) in [0, 255]). ``PIXEL_RANGE[kind]`` and ``IMAGE_SHAPE[kind]`` say what the
images are, ``kind(name)`` which kind a name is.
"""
from .mnist import DATASETS as MNIST_DATASETS
from .mnist import load_mnist

DATASETS = MNIST_DATASETS + ('cifar10',)
PIXEL_RANGE = {'mnist': (0.0, 1.0), 'cifar10': (0.0, 255.0)}
IMAGE_SHAPE = {'mnist': (1, 28, 28), 'cifar10': (3, 32, 32)}


def kind(name):
    """'cifar10' or 'mnist' (every MNIST-format name)."""
    if name not in DATASETS:
        raise ValueError('unknown dataset %r: expected one of %s' % (name, ', '.join(DATASETS)))
    return 'cifar10' if name == 'cifar10' else 'mnist'


def load_dataset(name, data_dir=None, num_classes=10):
    """The data set ``name`` from ``data_dir`` (None: the default places of MNIST-format data);
    labels are checked to lie in 0..num_classes-1."""
    if kind(name) == 'cifar10':
        from .cifar10 import load_cifar10
        if not data_dir:
            raise ValueError('--dataset cifar10 needs --data-dir (the folder of the official '
                             'CIFAR-10 files: data_batch_1..5 and test_batch, binary or python)')
        return load_cifar10(data_dir, num_classes=num_classes)
    return load_mnist(data_dir or None, name, num_classes)
