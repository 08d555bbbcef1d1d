"""Issue 18: what the training scripts, the exporter and the CIFAR-10 reader do with bad input.

Every user error of a script ends as one line ``error: ...`` and exit status 2, before any
long work; the attack's flags are checked against the data's pixel range; hostile pickles are
refused before anything of them is allocated. The scripts are run as ``__main__`` (runpy, in
this process: no new MXNet start-up per case) on tiny data."""
import functools
import logging
import os
import pickle
import re
import runpy
import struct
import sys
import tempfile

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_tla
from data import cifar10
from data.cifar10 import read_python_batch, write_cifar10_binary, write_cifar10_python
from data.safe_pickle import UnsafePickleError, restricted_loads
from deploy import export_onnx as exporter
from src import checkpoint as ckpt
from tests.deploy_helpers import make_checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 4  # records per CIFAR-10 file in the small sets
# a few batches of the small s5 network: seconds on one CPU core
TINY = ['--network', 's5', '--num-steps', '2', '--step-size', '0.05', '--epsilon', '0.1',
        '--num-test', '20', '--seed', '3', '--max-steps', '1', '--verbose', '1',
        '--batch-size', '8', '--pool-size', '20']


def run_script(script, argv, monkeypatch, capsys):
    """Runs ``script`` as ``python script argv...`` would (its ``__main__`` block) and returns
    (exit status, stderr)."""
    monkeypatch.setattr(sys, 'argv', [script] + [str(a) for a in argv])
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        runpy.run_path(os.path.join(ROOT, script), run_name='__main__')
    return stop.value.code, capsys.readouterr().err


def assert_one_line_error(status, err, pattern):
    """Exit 2 and exactly one ``error: ...`` line matching ``pattern``, no traceback."""
    assert status == 2, err[-3000:]
    assert 'Traceback' not in err, err[-3000:]
    errors = [line for line in err.splitlines() if line.startswith('error: ')]
    assert len(errors) == 1, err[-3000:]
    assert re.search(pattern, errors[0]), errors[0]
    return errors[0]


@pytest.fixture
def small_cifar(monkeypatch):
    """(train, test) of N records per file; load_cifar10 reads N-record files."""
    monkeypatch.setattr(cifar10, 'load_cifar10',
                        functools.partial(cifar10.load_cifar10, records=N))
    rng = np.random.RandomState(0)
    train = (rng.randint(0, 256, (5 * N, 3, 32, 32)).astype(np.uint8), np.arange(5 * N) % 10)
    test = (rng.randint(0, 256, (N, 3, 32, 32)).astype(np.uint8), np.arange(N) % 10)
    return train, test


# --- 1. --epsilon 0 ----------------------------------------------------------------------------

def test_tla_epsilon_zero_is_no_perturbation_and_the_log_says_so(tmp_path, caplog,
                                                                  digits_idx_dir):
    caplog.set_level(logging.INFO)
    prefix = str(tmp_path / 'm')
    ad_tla.main(TINY + ['--epsilon', '0', '--method', 'at', '--data-dir', str(digits_idx_dir),
                        '--prefix', prefix])
    assert re.search(r'eps 0, 2 steps of 0\.05.*\(eps 0: no perturbation, PGD skipped: clean '
                     r'images\)', caplog.text)
    assert '--epsilon 0: PGD makes no perturbation' in caplog.text
    assert set(re.findall(r'rounds=([0-9.]+)', caplog.text)) == {'0.0'}  # no step was taken
    # the run recorded the image shape it trained on (what the exporter checks)
    assert ckpt.recorded_image_shape(ckpt.load_checkpoint(prefix, 0)[0]) == (1, 28, 28)


# --- 2. the attack's units against the data's pixel range ---------------------------------------

def test_cifar_units_on_mnist_data_are_refused_naming_the_pixel_range(
        tmp_path, monkeypatch, capsys, digits_idx_dir):
    argv = TINY + ['--data-dir', digits_idx_dir, '--prefix', tmp_path / 'm']
    status, err = run_script('ad_tla.py', argv + ['--epsilon', '8', '--step-size', '2'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'--epsilon 8 is larger than the whole pixel range of '
                                       r'MNIST-format data \(--dataset auto, pixels in \[0, 1\]'
                                       r'\).*--epsilon 0\.3 --step-size 0\.01')
    status, err = run_script('ad_tla.py', argv + ['--epsilon', '0.3', '--step-size', '2'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'--step-size 2 is larger than the whole pixel range')
    assert not os.listdir(str(tmp_path))  # refused before anything was written


def test_step_larger_than_the_ball_is_a_warning(tmp_path, caplog, digits_idx_dir):
    caplog.set_level(logging.INFO)
    # an indivisible batch stops the run right after the flags are logged, before training
    with pytest.raises(ValueError, match='does not divide'):
        ad_tla.main(TINY + ['--epsilon', '0.1', '--step-size', '0.5', '--batch-size', '15',
                            '--ctx-num', '2', '--data-dir', str(digits_idx_dir),
                            '--prefix', str(tmp_path / 'm')])
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any('--step-size 0.5 is larger than the --epsilon 0.1 ball' in r.getMessage()
               for r in warned), caplog.text


# --- 5. the exporter: input shape and destination -----------------------------------------------

@pytest.fixture
def mnist_checkpoint(tmp_path):
    """A fully convolutional MNIST-format network (it takes any input size), as saved before
    checkpoints recorded their image shape."""
    prefix = str(tmp_path / 'ckpt' / 'model')
    os.makedirs(os.path.dirname(prefix))
    make_checkpoint('s5', (1, 28, 28), prefix=prefix)
    return prefix


def test_export_refuses_an_input_the_network_was_not_trained_on(tmp_path, capsys,
                                                                mnist_checkpoint):
    out = tmp_path / 'm.onnx'
    with pytest.raises(SystemExit) as stop:
        exporter.main(['--model', mnist_checkpoint + ',0', '--out', str(out),
                       '--input-shape', '1,2,2'])
    assert_one_line_error(stop.value.code, capsys.readouterr().err,
                          r'input shape 1x2x2 does not fit model,0: .*trained on 1x28x28')
    assert not out.exists()
    # a checkpoint that records its shape (a training run's): that shape, and the default
    symbol, arg, aux = make_checkpoint('s5', (3, 32, 32))
    prefix = str(tmp_path / 'rgb')
    ckpt.save_checkpoint(prefix, 0, ckpt.tag_image_shape(symbol, (3, 32, 32)), arg, aux)
    with pytest.raises(ValueError, match=r'input shape 3x64x64 does not fit .*trained on '
                                         r'3x32x32 images \(recorded'):
        exporter.export_onnx(*ckpt.load_checkpoint(prefix, 0), str(out),
                             input_shape=(3, 64, 64))
    assert not out.exists()
    exporter.main(['--model', prefix + ',0', '--out', str(out)])
    assert 'data Nx3x32x32' in capsys.readouterr().out


def _unwritable_folder(tmp_path):
    """A folder this process cannot create files in (root ignores permission bits: then a
    read-only system folder), or None."""
    folder = tmp_path / 'readonly'
    folder.mkdir()
    os.chmod(str(folder), 0o555)
    for candidate in (str(folder), '/sys'):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    return None


def test_export_checks_the_destination_before_exporting(tmp_path, monkeypatch, capsys,
                                                       mnist_checkpoint):
    exported = []
    real = exporter._export_raw  # pylint: disable=protected-access
    monkeypatch.setattr(exporter, '_export_raw',
                        lambda *a: exported.append(a) or real(*a))
    (tmp_path / 'a_file').write_text('x')
    (tmp_path / 'folder').mkdir()
    cases = [(tmp_path / 'folder', r'--out .*folder is a folder: give a file name'),
             (tmp_path / 'a_file' / 'sub' / 'm.onnx',
              r'a_file is a file, not a folder, so nothing can be written below it')]
    readonly = _unwritable_folder(tmp_path)
    if readonly is not None:
        cases.append((os.path.join(readonly, 'm.onnx'), r'cannot write in %s \('
                      % re.escape(readonly)))
    for out, pattern in cases:
        with pytest.raises(SystemExit) as stop:
            exporter.main(['--model', mnist_checkpoint + ',0', '--out', str(out)])
        assert_one_line_error(stop.value.code, capsys.readouterr().err, pattern)
    assert not exported
    os.chmod(str(tmp_path / 'readonly'), 0o755)
    if readonly is None:
        pytest.skip('no unwritable folder here: the read-only case was not checked')


# --- 10, 11. hostile arrays in a CIFAR-10 pickle ------------------------------------------------

class _Call:
    """Pickles as ``func(*args)`` without calling it."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile_batch(path, data):
    with open(str(path), 'wb') as f:
        pickle.dump({b'data': data, b'labels': [0] * N}, f, protocol=2)


def test_a_huge_array_is_refused_before_it_is_allocated(tmp_path):
    path = tmp_path / 'data_batch_1'
    _hostile_batch(path, _Call(np.ndarray, (2 ** 45,), 'u1'))
    with pytest.raises(UnsafePickleError, match=r'%s: refused to unpickle numpy\.ndarray\('
                                                r'\(35184372088832,\), .u1.\): an array of 32 TiB'
                                                r'.*nothing was allocated' % re.escape(str(path))):
        read_python_batch(str(path), records=N)
    # the stream's own length fields: a 32 TiB bytes object in a 14-byte file
    with pytest.raises(pickle.UnpicklingError, match=r'x\.bin: the pickle asks for more memory'):
        restricted_loads(b'\x80\x04\x8e' + struct.pack('<Q', 2 ** 45) + b'abc', 'x.bin')


def test_object_and_other_non_numeric_arrays_are_refused(tmp_path):
    path = tmp_path / 'data_batch_1'
    _hostile_batch(path, _Call(np.ndarray, (10000, 3072), 'O'))
    with pytest.raises(UnsafePickleError, match=r'data_batch_1: refused to unpickle numpy\.'
                                                r'ndarray\(\(10000, 3072\), .O.\): dtype object '
                                                r'is not numeric'):
        read_python_batch(str(path), records=N)
    with pytest.raises(UnsafePickleError, match='dtype <U3 is not numeric'):
        restricted_loads(pickle.dumps(_Call(np.ndarray, (2,), 'U3')), 'x.bin')
    with pytest.raises(ValueError, match='numeric dtypes only'):
        restricted_loads(pickle.dumps([1]), 'x.bin', dtypes=(np.dtype(object),))
    # what real files hold still loads
    small = np.arange(6, dtype=np.uint8).reshape(2, 3)
    for protocol in (2, 5):
        np.testing.assert_array_equal(restricted_loads(pickle.dumps(small, protocol), 'x'),
                                      small)


# --- 12. one line and exit 2 from the training scripts ------------------------------------------

def test_indivisible_batch(tmp_path, monkeypatch, capsys, digits_idx_dir):
    status, err = run_script('ad_tla.py', TINY + ['--batch-size', '15', '--ctx-num', '2',
                                                  '--data-dir', digits_idx_dir,
                                                  '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'--batch-size 15 does not divide across --ctx-num 2')


def test_truncated_cifar_batch(tmp_path, monkeypatch, capsys, small_cifar):
    write_cifar10_binary(str(tmp_path / 'c'), *small_cifar, records=N)
    path = tmp_path / 'c' / 'data_batch_2.bin'
    path.write_bytes(path.read_bytes()[:100])
    status, err = run_script('ad_tla.py', ['--dataset', 'cifar10', '--data-dir', tmp_path / 'c',
                                           '--prefix', tmp_path / 'm'], monkeypatch, capsys)
    assert_one_line_error(status, err, r'data_batch_2\.bin: 100 bytes is not a whole number')


def test_cifar_labels_out_of_range(tmp_path, monkeypatch, capsys, small_cifar):
    (train_x, train_y), test = small_cifar
    write_cifar10_binary(str(tmp_path / 'c'), (train_x, 10 + 27 * train_y), test,
                         records=N)  # labels 10..253
    status, err = run_script('ad_tla.py', ['--dataset', 'cifar10', '--data-dir', tmp_path / 'c',
                                           '--prefix', tmp_path / 'm'], monkeypatch, capsys)
    assert_one_line_error(status, err, r'data_batch_1\.bin: label 10 at index 0 is outside '
                                       r'0\.\.9')


@pytest.mark.parametrize('script', ['ad_tla.py', 'ad_mnist.py'])
def test_missing_data_folder(tmp_path, monkeypatch, capsys, script):
    status, err = run_script(script, ['--data-dir', tmp_path / 'nowhere', '--network', 's5',
                                      '--prefix', tmp_path / 'm'], monkeypatch, capsys)
    assert_one_line_error(status, err, r'nowhere does not exist')


def test_face_script_without_data(tmp_path, monkeypatch, capsys):
    status, err = run_script('ad_face.py', ['--network', 's5', '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'--data-dir is required')


def test_unknown_network(tmp_path, monkeypatch, capsys, digits_idx_dir):
    status, err = run_script('ad_tla.py', TINY + ['--network', 'lenet', '--data-dir',
                                                  digits_idx_dir, '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r"unknown --network 'lenet': expected one of .*\bl\b")


def test_prefix_of_another_network(tmp_path, monkeypatch, capsys, digits_idx_dir):
    prefix = str(tmp_path / 'm')
    make_checkpoint('l', (1, 28, 28), prefix=prefix)
    status, err = run_script('ad_tla.py', TINY + ['--data-dir', digits_idx_dir,
                                                  '--prefix', prefix], monkeypatch, capsys)
    assert_one_line_error(status, err, r'holds checkpoints of another network')


def test_malicious_cifar_pickle(tmp_path, monkeypatch, capsys, small_cifar):
    write_cifar10_python(str(tmp_path / 'c'), *small_cifar, records=N)
    marker = str(tmp_path / 'owned')
    _hostile_batch(tmp_path / 'c' / 'test_batch', _Call(os.mkdir, marker))
    status, err = run_script('ad_tla.py', ['--dataset', 'cifar10', '--data-dir', tmp_path / 'c',
                                           '--prefix', tmp_path / 'm'], monkeypatch, capsys)
    assert_one_line_error(status, err, r'test_batch: refused to unpickle the global '
                                       r'(posix|os)\.mkdir')
    assert not os.path.exists(marker)
    # for programmatic callers too: the refusal alone, not chained to a KeyError
    with pytest.raises(UnsafePickleError) as refused:
        read_python_batch(str(tmp_path / 'c' / 'test_batch'), records=N)
    assert refused.value.__context__ is None or refused.value.__suppress_context__


def test_truncated_pretrained_params(tmp_path, monkeypatch, capsys, digits_idx_dir):
    prefix = str(tmp_path / 'pre')
    mx.nd.save(prefix + '-0001.params', {'arg:w': mx.nd.ones((64, 64))})
    raw = open(prefix + '-0001.params', 'rb').read()
    with open(prefix + '-0001.params', 'wb') as f:
        f.write(raw[:len(raw) // 2])
    status, err = run_script('ad_tla.py', TINY + ['--data-dir', digits_idx_dir, '--pretrained',
                                                  prefix + ',1', '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    line = assert_one_line_error(status, err, r'pre-0001\.params is not a readable MXNet '
                                              r'parameter file .*: Check failed: .*Invalid '
                                              r'NDArray file format')
    assert 'Traceback' not in line


def test_missing_pretrained_epoch(tmp_path, monkeypatch, capsys, digits_idx_dir):
    prefix = str(tmp_path / 'pre')
    make_checkpoint('s5', (1, 28, 28), prefix=prefix)
    status, err = run_script('ad_tla.py', TINY + ['--data-dir', digits_idx_dir, '--pretrained',
                                                  prefix + ',7', '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'no parameter file .*pre-0007\.params .*the prefix '
                                       r'holds epochs 0')


def test_wrn_on_mnist_format_data(tmp_path, monkeypatch, capsys, digits_idx_dir):
    import src.fit
    built = []
    real = src.fit.get_embedding
    monkeypatch.setattr(src.fit, 'get_embedding',
                        lambda *a, **k: built.append(a) or real(*a, **k))
    status, err = run_script('ad_tla.py', TINY + ['--network', 'wrn', '--data-dir',
                                                  digits_idx_dir, '--prefix', tmp_path / 'm'],
                             monkeypatch, capsys)
    assert_one_line_error(status, err, r'--network wrn takes 3x32x32 images, not the 1x28x28 '
                                       r'images of this data')
    assert not built
