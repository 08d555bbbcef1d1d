"""CIFAR-10 from the official files (https://www.cs.toronto.edu/~kriz/cifar.html), no download.

Two official versions hold the same images in the same layout, one row of 3072 bytes per image:
1024 red, then 1024 green, then 1024 blue bytes, each a row-major 32x32 plane:

- binary (``cifar-10-batches-bin``): ``data_batch_1.bin`` .. ``data_batch_5.bin``,
  ``test_batch.bin``; records of 3073 bytes (a label byte, then the row), 10000 per file;
- python (``cifar-10-batches-py``): ``data_batch_1`` .. ``data_batch_5``, ``test_batch``;
  Python 2 pickles of a dict with ``b'data'`` (uint8 (10000, 3072)) and ``b'labels'`` (a list
  of ints). A pickle can run code, so these are read only through
  ``data.safe_pickle.restricted_loads``, which refuses anything but plain data.

``load_cifar10(data_dir)`` returns ``data.mnist.MnistData`` with images uint8 (N, 3, 32, 32) RGB
in [0, 255] (uint8 keeps the 50000 training images at 150 MB; the consumer converts batches to
float32) and labels int32. Every inconsistency is an error naming the file and what was expected.
``write_cifar10_binary`` / ``write_cifar10_python`` write synthetic data in the official layouts
(for tests). ``python -m data.cifar10 DIR`` prints a summary.
"""
import argparse
import os
import pickle
import sys

import numpy as np

from data.mnist import MnistData, check_labels
from data.safe_pickle import UnsafePickleError, restricted_loads

__all__ = ['RECORDS_PER_FILE', 'TRAIN_STEMS', 'TEST_STEM', 'find_cifar10', 'read_binary_batch',
           'read_python_batch', 'load_cifar10', 'write_cifar10_binary', 'write_cifar10_python',
           'main']

IMAGE_SHAPE = (3, 32, 32)
ROW_BYTES = 3 * 32 * 32
RECORD_BYTES = 1 + ROW_BYTES
RECORDS_PER_FILE = 10000
TRAIN_STEMS = tuple('data_batch_%d' % i for i in range(1, 6))
TEST_STEM = 'test_batch'
# version -> (file name suffix, name of the folder in the official archive)
VERSIONS = {'binary': ('.bin', 'cifar-10-batches-bin'), 'python': ('', 'cifar-10-batches-py')}


def _file_names(version):
    suffix = VERSIONS[version][0]
    return [stem + suffix for stem in TRAIN_STEMS + (TEST_STEM,)]


def find_cifar10(data_dir):
    """(version, folder) of the CIFAR-10 files under ``data_dir``: the folder itself, then its
    ``cifar-10-batches-bin`` and ``cifar-10-batches-py`` subfolders (as the archives unpack);
    the first place holding any file of a version is chosen, binary before python, and must
    then hold all six files (a partial copy is an error, never a silent fallback)."""
    folder = os.path.expanduser(str(data_dir))
    if not os.path.isdir(folder):
        raise FileNotFoundError('CIFAR-10 data directory %s does not exist' % folder)
    places = [(v, folder) for v in VERSIONS] + \
             [(v, os.path.join(folder, VERSIONS[v][1])) for v in VERSIONS]
    for version, place in places:
        names = _file_names(version)
        present = [n for n in names if os.path.isfile(os.path.join(place, n))]
        if not present:
            continue
        missing = [n for n in names if n not in present]
        if missing:
            raise FileNotFoundError(
                '%s: incomplete CIFAR-10 %s version: missing %s (expected %s; the folder holds '
                '%s)' % (place, version, ', '.join(missing), ', '.join(names),
                         _listing(place)))
        return version, place
    raise FileNotFoundError(
        '%s: no CIFAR-10 files: expected data_batch_1..5 and test_batch (binary: with .bin, '
        'or python pickles without) there or in its cifar-10-batches-bin / cifar-10-batches-py '
        'subfolder; the folder holds %s' % (folder, _listing(folder)))


def _listing(folder, limit=20):
    names = sorted(os.listdir(folder))
    if not names:
        return 'nothing'
    more = ' and %d more' % (len(names) - limit) if len(names) > limit else ''
    return ', '.join(names[:limit]) + more


def read_binary_batch(path, records=RECORDS_PER_FILE):
    """(images uint8 (records, 3, 32, 32), labels int32) of one binary-version file."""
    raw = np.fromfile(path, dtype=np.uint8)
    expected = records * RECORD_BYTES
    if raw.size % RECORD_BYTES:
        raise ValueError('%s: %d bytes is not a whole number of %d-byte CIFAR-10 records '
                         '(expected %d bytes = %d records; truncated?)'
                         % (path, raw.size, RECORD_BYTES, expected, records))
    if raw.size != expected:
        raise ValueError('%s: %d records (%d bytes), expected %d records (%d bytes); truncated '
                         'or not an official batch?' % (path, raw.size // RECORD_BYTES, raw.size,
                                                        records, expected))
    table = raw.reshape(records, RECORD_BYTES)
    return table[:, 1:].reshape((records,) + IMAGE_SHAPE), table[:, 0].astype(np.int32)


def read_python_batch(path, records=RECORDS_PER_FILE):
    """(images uint8 (records, 3, 32, 32), labels int32) of one python-version file; unsafe
    pickles raise data.safe_pickle.UnsafePickleError before anything of them runs."""
    with open(path, 'rb') as f:
        raw = f.read()
    try:  # no array larger than the format's (records, 3072) bytes is ever allocated
        batch = restricted_loads(raw, path, encoding='bytes',
                                 max_array_bytes=records * ROW_BYTES)
    except UnsafePickleError as err:  # names the file and what was refused
        raise UnsafePickleError(str(err)) from None
    except Exception as err:  # pylint: disable=broad-except  (a malformed stream raises many)
        reason = str(err) if isinstance(err, pickle.UnpicklingError) \
            else '%s: %s' % (type(err).__name__, err)
        raise ValueError('%s: not a readable CIFAR-10 python batch (%s)'
                         % (path, reason.replace(str(path) + ': ', ''))) from None
    if not isinstance(batch, dict):
        raise ValueError('%s: holds a %s, expected a dict with b"data" and b"labels"'
                         % (path, type(batch).__name__))
    missing = [k for k in (b'data', b'labels') if k not in batch]
    if missing:
        raise ValueError('%s: the dict lacks %s (its keys: %s); expected b"data" (uint8 '
                         '(%d, %d)) and b"labels"' % (path, ', '.join(map(repr, missing)),
                                                      ', '.join(map(repr, batch)), records,
                                                      ROW_BYTES))
    data = batch[b'data']
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 \
            or data.shape != (records, ROW_BYTES):
        what = '%s %s' % (data.dtype, data.shape) if isinstance(data, np.ndarray) \
            else type(data).__name__
        raise ValueError('%s: b"data" is %s, expected uint8 (%d, %d)'
                         % (path, what, records, ROW_BYTES))
    labels = np.asarray(batch[b'labels'])
    if labels.ndim != 1 or labels.dtype.kind not in 'iu':
        raise ValueError('%s: b"labels" must be a list of ints, got %s of shape %s'
                         % (path, labels.dtype, labels.shape))
    if len(labels) != len(data):
        raise ValueError('%s: %d labels for %d images' % (path, len(labels), len(data)))
    if labels.size and (labels.min() < -2 ** 31 or labels.max() >= 2 ** 31):
        raise ValueError('%s: label %d does not fit int32 (expected class ids)'  # no wrap-around
                         % (path, labels[np.argmax(np.abs(labels))]))
    return data.reshape((records,) + IMAGE_SHAPE), labels.astype(np.int32)


def load_cifar10(data_dir, num_classes=10, records=RECORDS_PER_FILE):
    """CIFAR-10 as ``MnistData`` (train 5 x ``records`` images, test ``records``); labels must
    lie in 0..num_classes-1. ``records`` is the official 10000 except for small test data."""
    version, folder = find_cifar10(data_dir)
    read = read_binary_batch if version == 'binary' else read_python_batch
    splits = []
    for names in (_file_names(version)[:5], _file_names(version)[5:]):
        images, labels = [], []
        for name in names:
            path = os.path.join(folder, name)
            x, y = read(path, records)
            check_labels(y, num_classes, path)
            images.append(x)
            labels.append(y)
        splits.append((np.concatenate(images), np.concatenate(labels)))
    (train_x, train_y), (test_x, test_y) = splits
    return MnistData(train_x, train_y, test_x, test_y,
                     'CIFAR-10 %s version (%s)' % (version, folder))


def _check_split(split, what, records):
    images, labels = split
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError('%s images: expected uint8 (N, 3, 32, 32), got %s %s'
                         % (what, images.dtype, images.shape))
    if len(images) != len(labels) or len(images) % records:
        raise ValueError('%s: %d images and %d labels, expected one label per image and a '
                         'multiple of %d images' % (what, len(images), len(labels), records))
    return images, np.asarray(labels)


def _batches(train, test, records):
    """(stem, images, labels) per official file: train split into 5 files, test in one."""
    train_x, train_y = _check_split(train, 'train', records)
    test_x, test_y = _check_split(test, 'test', records)
    if len(train_x) != 5 * records or len(test_x) != records:
        raise ValueError('expected %d train and %d test images, got %d and %d'
                         % (5 * records, records, len(train_x), len(test_x)))
    for i, stem in enumerate(TRAIN_STEMS):
        part = slice(i * records, (i + 1) * records)
        yield stem, train_x[part], train_y[part]
    yield TEST_STEM, test_x, test_y


def write_cifar10_binary(folder, train, test, records=RECORDS_PER_FILE):
    """For tests and synthetic data: writes ``train`` = (images uint8 (5*records, 3, 32, 32),
    labels) and ``test`` = (records images, labels) as the six binary-version files."""
    os.makedirs(folder, exist_ok=True)
    for stem, x, y in _batches(train, test, records):
        table = np.empty((len(x), RECORD_BYTES), np.uint8)
        table[:, 0] = y
        table[:, 1:] = x.reshape(len(x), ROW_BYTES)
        table.tofile(os.path.join(folder, stem + '.bin'))


def write_cifar10_python(folder, train, test, records=RECORDS_PER_FILE, protocol=2):
    """For tests and synthetic data: the six python-version files (dicts with bytes keys, as
    the official Python 2 pickles read with encoding='bytes')."""
    os.makedirs(folder, exist_ok=True)
    for stem, x, y in _batches(train, test, records):
        batch = {b'batch_label': stem.encode(), b'labels': [int(v) for v in y],
                 b'data': np.ascontiguousarray(x.reshape(len(x), ROW_BYTES)),
                 b'filenames': [b'%s_%05d.png' % (stem.encode(), i) for i in range(len(x))]}
        with open(os.path.join(folder, stem), 'wb') as f:
            pickle.dump(batch, f, protocol=protocol)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.cifar10',
        description='Checks the official CIFAR-10 files (binary or python version) in DIR or '
                    'its cifar-10-batches-bin / cifar-10-batches-py subfolder, and prints '
                    'the image count per class.')
    parser.add_argument('data_dir', metavar='DIR', help='folder of the CIFAR-10 files')
    parser.add_argument('--num-classes', type=int, default=10,
                        help='labels must lie in 0..NUM_CLASSES-1 (default 10)')
    args = parser.parse_args(argv)
    try:
        # the module constant, read now: tests shrink it to check the summary on small files
        data = load_cifar10(args.data_dir, num_classes=args.num_classes,
                            records=RECORDS_PER_FILE)
    except (OSError, ValueError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 1
    print(data.name)
    for split, x, y in (('train', data.train_x, data.train_y), ('test', data.test_x, data.test_y)):
        counts = np.bincount(y, minlength=args.num_classes)
        means = x.reshape(len(x), 3, -1).mean(axis=(0, 2))
        print('%s: %d images %s uint8, per class %s, mean R/G/B %.1f/%.1f/%.1f'
              % (split, len(x), x.shape[1:], ' '.join(map(str, counts)), *means))
    return 0


if __name__ == '__main__':
    sys.exit(main())
