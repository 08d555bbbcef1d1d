"""The CIFAR-10 reader: both official versions read back what the files hold, pixel for pixel
(layout checked against bytes placed by hand, not only against our own writer), the folder
lookup, and an error naming the file for every kind of bad input."""
import os
import pickle
import struct
import subprocess
import sys

import numpy as np
import pytest

from data import cifar10
from data.cifar10 import (load_cifar10, read_binary_batch, read_python_batch,
                          write_cifar10_binary, write_cifar10_python)
from data.safe_pickle import UnsafePickleError

N = 4  # records per file in the small synthetic sets


@pytest.fixture(scope='module')
def small():
    rng = np.random.RandomState(0)
    train = (rng.randint(0, 256, (5 * N, 3, 32, 32)).astype(np.uint8),
             rng.randint(0, 10, 5 * N).astype(np.int32))
    test = (rng.randint(0, 256, (N, 3, 32, 32)).astype(np.uint8),
            rng.randint(0, 10, N).astype(np.int32))
    return train, test


def _assert_same(data, train, test):
    for got, want in ((data.train_x, train[0]), (data.train_y, train[1]),
                      (data.test_x, test[0]), (data.test_y, test[1])):
        np.testing.assert_array_equal(got, want)
    assert data.train_x.dtype == np.uint8 and data.train_y.dtype == np.int32
    assert data.train_x.shape == (5 * N, 3, 32, 32) and data.test_x.shape == (N, 3, 32, 32)


@pytest.mark.parametrize('version, writer', [('binary', write_cifar10_binary),
                                             ('python', write_cifar10_python)])
def test_reads_back_what_the_files_hold(tmp_path, small, version, writer):
    train, test = small
    writer(str(tmp_path), train, test, records=N)
    data = load_cifar10(str(tmp_path), records=N)
    _assert_same(data, train, test)
    assert version in data.name and str(tmp_path) in data.name


def _marked_row():
    """One image row of the official layout with three marked pixels: R at (2, 5), G at
    (31, 0), B at (0, 31); planes are row-major 32x32, R then G then B."""
    row = np.zeros(3072, np.uint8)
    row[0 * 1024 + 2 * 32 + 5] = 200
    row[1 * 1024 + 31 * 32 + 0] = 100
    row[2 * 1024 + 0 * 32 + 31] = 50
    return row


def _check_marked(image):
    assert image.shape == (3, 32, 32) and image.sum(dtype=np.int64) == 350
    assert (image[0, 2, 5], image[1, 31, 0], image[2, 0, 31]) == (200, 100, 50)


def test_binary_layout_from_hand_made_bytes(tmp_path):
    path = str(tmp_path / 'b.bin')
    with open(path, 'wb') as f:
        f.write(bytes([7]) + bytes(3072) + bytes([3]) + _marked_row().tobytes())
    x, y = read_binary_batch(path, records=2)
    assert list(y) == [7, 3] and not x[0].any()
    _check_marked(x[1])


def _py2_pickle(data, labels):
    """A Python 2 protocol-2 pickle as the official files are (str keys/data are
    SHORT_BINSTRING/BINSTRING opcodes, numpy's reconstruct and dtype globals)."""
    def short(b):
        return b'U' + bytes([len(b)]) + b
    parts = [b'\x80\x02}q\x01(', short(b'labels'), b']q\x02(']
    parts += [b'K' + bytes([v]) for v in labels]
    parts += [b'e', short(b'data'),
              b'cnumpy.core.multiarray\n_reconstruct\nq\x03cnumpy\nndarray\nq\x04K\x00\x85',
              short(b'b'), b'\x87Rq\x05(K\x01', b'M' + struct.pack('<H', data.shape[0]),
              b'M' + struct.pack('<H', data.shape[1]), b'\x86cnumpy\ndtype\nq\x06',
              short(b'u1'), b'K\x00K\x01\x87Rq\x07(K\x03', short(b'|'),
              b'NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb\x89',
              b'T' + struct.pack('<I', data.nbytes) + data.tobytes(), b'tb', b'u.']
    return b''.join(parts)


def test_python_layout_from_a_python2_pickle(tmp_path):
    rows = np.stack([np.zeros(3072, np.uint8), _marked_row()])
    path = tmp_path / 'test_batch'
    path.write_bytes(_py2_pickle(rows, [9, 0]))
    x, y = read_python_batch(str(path), records=2)
    assert list(y) == [9, 0] and y.dtype == np.int32 and not x[0].any()
    _check_marked(x[1])


def test_parent_folder_lookup_prefers_binary(tmp_path, small):
    train, test = small
    write_cifar10_python(str(tmp_path / 'cifar-10-batches-py'), train, test, records=N)
    data = load_cifar10(str(tmp_path), records=N)
    assert 'python' in data.name and 'cifar-10-batches-py' in data.name
    _assert_same(data, train, test)
    flipped = ((255 - train[0]), train[1]), ((255 - test[0]), test[1])
    write_cifar10_binary(str(tmp_path / 'cifar-10-batches-bin'), *flipped, records=N)
    data = load_cifar10(str(tmp_path), records=N)
    assert 'binary' in data.name and 'cifar-10-batches-bin' in data.name
    _assert_same(data, *flipped)


def test_official_count_is_the_default(tmp_path):
    path = str(tmp_path / 'test_batch.bin')
    table = np.zeros((10000, 3073), np.uint8)
    table[:, 0] = np.arange(10000) % 10
    table[:, 1:] = (np.arange(10000) % 256)[:, None]
    table.tofile(path)
    x, y = read_binary_batch(path)
    assert x.shape == (10000, 3, 32, 32) and (x[257] == 1).all() and y[9999] == 9
    table[:100].tofile(path)
    with pytest.raises(ValueError, match=r'test_batch\.bin: 100 records .* expected 10000 '
                                         r'records \(30730000 bytes\)'):
        read_binary_batch(path)


def test_truncated_binary(tmp_path, small):
    train, test = small
    write_cifar10_binary(str(tmp_path), train, test, records=N)
    path = tmp_path / 'data_batch_4.bin'
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ValueError, match=r'data_batch_4\.bin: 12285 bytes is not a whole number '
                                         r'of 3073-byte .*expected 12292 bytes.*truncated\?'):
        load_cifar10(str(tmp_path), records=N)


def test_wrong_record_count_binary(tmp_path, small):
    train, test = small
    write_cifar10_binary(str(tmp_path), train, test, records=N)
    path = tmp_path / 'test_batch.bin'
    path.write_bytes(path.read_bytes() * 2)
    with pytest.raises(ValueError, match=r'test_batch\.bin: 8 records .*expected 4 records'):
        load_cifar10(str(tmp_path), records=N)


def _write_batch(path, batch):
    with open(path, 'wb') as f:
        pickle.dump(batch, f, protocol=2)


@pytest.mark.parametrize('batch, message', [
    ({b'data': np.zeros((N, 3071), np.uint8), b'labels': [0] * N},
     r'b"data" is uint8 \(4, 3071\), expected uint8 \(4, 3072\)'),
    ({b'data': np.zeros((N + 1, 3072), np.uint8), b'labels': [0] * (N + 1)},
     r'b"data" is uint8 \(5, 3072\), expected uint8 \(4, 3072\)'),
    ({b'data': np.zeros((N, 3072), np.bool_), b'labels': [0] * N},
     r'b"data" is bool \(4, 3072\), expected uint8'),
    ({b'data': np.zeros((N, 3072), np.uint8), b'labels': [0] * (N - 1)},
     r'3 labels for 4 images'),
    ({b'data': np.zeros((N, 3072), np.uint8), b'labels': ['cat'] * N},
     r'b"labels" must be a list of ints'),
    ({b'data': np.zeros((N, 3072), np.uint8), b'labels': [0, 0, 2 ** 32, 0]},
     r'label 4294967296 does not fit int32'),
    ({b'data': np.zeros((N, 3072), np.uint8), b'fine_labels': [0] * N},
     r"lacks b'labels'"),
    ([1, 2, 3], r'holds a list, expected a dict'),
])
def test_bad_python_batches(tmp_path, batch, message):
    path = str(tmp_path / 'data_batch_2')
    _write_batch(path, batch)
    with pytest.raises(ValueError, match=r'data_batch_2: .*' + message):
        read_python_batch(path, records=N)


def test_labels_out_of_range(tmp_path, small):
    train, test = small
    labels = train[1].copy()
    labels[N + 3] = 10  # index 3 of data_batch_2
    write_cifar10_binary(str(tmp_path / 'bin'), (train[0], labels), test, records=N)
    with pytest.raises(ValueError, match=r'data_batch_2\.bin: label 10 at index 3 is outside '
                                         r'0\.\.9'):
        load_cifar10(str(tmp_path / 'bin'), records=N)
    # fewer classes: the same files fail where a label passes the new last class
    write_cifar10_python(str(tmp_path / 'py'), train, test, records=N)
    first = int(np.flatnonzero(train[1][:N] >= 5)[0])
    with pytest.raises(ValueError, match=r'data_batch_1: label %d at index %d is outside 0\.\.4'
                                         % (train[1][first], first)):
        load_cifar10(str(tmp_path / 'py'), num_classes=5, records=N)


def test_missing_files(tmp_path, small):
    train, test = small
    write_cifar10_binary(str(tmp_path), train, test, records=N)
    os.remove(str(tmp_path / 'data_batch_3.bin'))
    with pytest.raises(FileNotFoundError, match=r'missing data_batch_3\.bin .*the folder holds '
                                                r'data_batch_1\.bin, data_batch_2\.bin, '
                                                r'data_batch_4\.bin'):
        load_cifar10(str(tmp_path), records=N)
    (tmp_path / 'empty').mkdir()
    (tmp_path / 'empty' / 'readme.txt').write_text('x')
    with pytest.raises(FileNotFoundError, match=r'empty: no CIFAR-10 files.*holds readme\.txt'):
        load_cifar10(str(tmp_path / 'empty'))
    with pytest.raises(FileNotFoundError, match='does not exist'):
        load_cifar10(str(tmp_path / 'nowhere'))


class _Payload:
    """Unpickling this would create ``self.marker``: the reader must refuse it first."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


def test_unsafe_pickle_is_refused_without_running(tmp_path, small):
    train, test = small
    write_cifar10_python(str(tmp_path), train, test, records=N)
    marker = str(tmp_path / 'pwned')
    _write_batch(str(tmp_path / 'test_batch'), {b'data': _Payload(marker), b'labels': [0] * N})
    with pytest.raises(UnsafePickleError, match=r'test_batch: refused to unpickle the global '
                                                r'\w+\.mkdir'):
        load_cifar10(str(tmp_path), records=N)
    assert not os.path.exists(marker)


def test_cli_summary_and_errors(tmp_path, small, monkeypatch, capsys):
    train, test = small
    write_cifar10_binary(str(tmp_path), train, test, records=N)
    monkeypatch.setattr(cifar10, 'RECORDS_PER_FILE', N)
    assert cifar10.main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert 'binary version' in out
    counts = ' '.join(map(str, np.bincount(train[1], minlength=10)))
    assert 'train: %d images' % (5 * N) in out and 'per class %s,' % counts in out
    os.remove(str(tmp_path / 'test_batch.bin'))
    assert cifar10.main([str(tmp_path)]) == 1
    assert 'missing test_batch.bin' in capsys.readouterr().err


def test_cli_help_runs_as_a_module(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'data.cifar10', '--help'], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'usage:' in done.stdout and 'cifar-10-batches-bin' in done.stdout
