"""MNIST-format data for ad_mnist.py, with no download.

``dataset='auto'`` picks, in order: MNIST IDX files in ``data_dir`` (default
``~/.mxnet/datasets/mnist``); Debian's Fashion-MNIST (``apt-get install dataset-fashion-mnist``,
files in /usr/share/datasets/fashion-mnist); scikit-learn's bundled 8x8 digits resized to 28x28.
Images come out float32 (N, 1, 28, 28) in [0, 1], labels int32.
"""
import collections
import logging
import os

import numpy as np

from .idx import find_idx, read_idx

DEFAULT_MNIST_DIR = os.path.join('~', '.mxnet', 'datasets', 'mnist')
FASHION_DIR = '/usr/share/datasets/fashion-mnist'
DATASETS = ('auto', 'mnist', 'fashion-mnist', 'digits')
IDX_STEMS = ('train-images-idx3-ubyte', 'train-labels-idx1-ubyte',
             't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte')

MnistData = collections.namedtuple('MnistData', 'train_x train_y test_x test_y name')


def check_labels(labels, num_classes, path):
    """Every label must be a class id 0..num_classes-1; else a ValueError naming the file and
    the first offending index (the class count never silently follows the largest label)."""
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise ValueError('%s: label %d at index %d is outside 0..%d (%d classes; --num-classes '
                         'sets another count); %d labels are outside'
                         % (path, labels[bad[0]], bad[0], num_classes - 1, num_classes, bad.size))


def first(data, num_train=0, num_test=0):
    """``data`` with only its first ``num_train`` training and ``num_test`` test images
    (0: all of them)."""
    train, test = slice(num_train or None), slice(num_test or None)
    return data._replace(train_x=data.train_x[train], train_y=data.train_y[train],
                         test_x=data.test_x[test], test_y=data.test_y[test])


def has_idx_files(directory):
    return bool(directory) and all(find_idx(directory, s) for s in IDX_STEMS)


def load_idx_dir(directory, name, num_classes=10):
    if not os.path.isdir(directory):
        raise FileNotFoundError('data directory %s does not exist' % directory)
    paths = [find_idx(directory, s) for s in IDX_STEMS]
    missing = [s for s, p in zip(IDX_STEMS, paths) if p is None]
    if missing:
        raise FileNotFoundError('%s: missing IDX files %s (raw or .gz)'
                                % (directory, ', '.join(missing)))
    arrays = [read_idx(p) for p in paths]
    for (images, labels), (_, label_path), split in zip((arrays[:2], arrays[2:]),
                                                        (paths[:2], paths[2:]),
                                                        ('train', 't10k')):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ValueError('%s: %s images have shape %s, expected (N, 28, 28)'
                             % (directory, split, images.shape))
        if labels.shape != (len(images),):
            raise ValueError('%s: %s has %d images but %d labels'
                             % (directory, split, len(images), labels.size))
        check_labels(labels, num_classes, label_path)
    to_x = lambda a: (a.astype(np.float32) / 255.0)[:, None]  # noqa: E731
    return MnistData(to_x(arrays[0]), arrays[1].astype(np.int32), to_x(arrays[2]),
                     arrays[3].astype(np.int32), '%s (%s)' % (name, directory))


def load_digits_28(test_fraction=1 / 6, seed=0):
    """scikit-learn's 1797 8x8 digits, resized to 28x28, split train/test reproducibly."""
    import cv2
    from sklearn.datasets import load_digits
    digits = load_digits()
    images = np.stack([cv2.resize(im.astype(np.float32) / 16.0, (28, 28),
                                  interpolation=cv2.INTER_LINEAR) for im in digits.images])
    images = np.clip(images, 0, 1)[:, None]
    order = np.random.RandomState(seed).permutation(len(images))
    n_test = int(round(len(images) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    labels = digits.target.astype(np.int32)
    return MnistData(images[train], labels[train], images[test], labels[test],
                     'scikit-learn digits 8x8 resized to 28x28')


def load_mnist(data_dir=None, dataset='auto', num_classes=10):
    """Loads MNIST-format data; ``data_dir=None`` means the default locations. Logs what was used.
    Labels must lie in 0..num_classes-1 (checked, naming the file)."""
    if dataset not in DATASETS:
        raise ValueError('--dataset must be one of %s, got %r' % (', '.join(DATASETS), dataset))
    explicit = bool(data_dir)
    directory = os.path.expanduser(data_dir or DEFAULT_MNIST_DIR)
    if explicit and not os.path.isdir(directory):
        raise FileNotFoundError('data directory %s does not exist' % directory)
    if dataset == 'mnist' or (dataset == 'auto' and (explicit or has_idx_files(directory))):
        data = load_idx_dir(directory, 'MNIST-format IDX', num_classes)
    elif dataset == 'fashion-mnist' or (dataset == 'auto' and has_idx_files(FASHION_DIR)):
        fashion_dir = directory if explicit else FASHION_DIR
        if not os.path.isdir(fashion_dir):
            raise FileNotFoundError('Fashion-MNIST not found in %s: apt-get install '
                                    'dataset-fashion-mnist, or give --data-dir' % fashion_dir)
        data = load_idx_dir(fashion_dir, 'Fashion-MNIST', num_classes)
    else:
        if dataset == 'auto':
            logging.warning('no MNIST IDX files in %s and no Fashion-MNIST in %s: falling back to '
                            "scikit-learn's 8x8 digits (1797 images)", directory, FASHION_DIR)
        data = load_digits_28()
        check_labels(data.train_y, num_classes, data.name)
    logging.info('data: %s: %d train, %d test images', data.name, len(data.train_x),
                 len(data.test_x))
    return data
