"""What a user must be able to trust: untrusted files never run code, a diverged run never
writes bad weights, a pretrained model that does not fit is refused, another run's checkpoints
are never replaced, and bad labels, sizes and thresholds are refused before long work starts."""
import json
import logging
import os
import pickle
import re
import subprocess
import sys

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_face
import ad_mnist
from data.bin_format import load_bin, save_bin
from data.safe_pickle import UnsafePickleError, restricted_loads
from data.synthetic import make_synthetic
from runtime.atomic import atomic_write, remove_stale_temporaries
from src.checkpoint import NonFiniteError, load_params, save_checkpoint, saved_epochs
from tests.conftest import write_idx

TINY = ['--network', 's5', '--loss-type', '0', '--adv-round', '2', '--lr', '0.05',
        '--num-test', '60', '--seed', '3', '--main-per-batch-size', '48',
        '--adv-per-batch-size', '32']


# --- 1. untrusted pickles --------------------------------------------------------------------

class _Payload:
    """What a booby-trapped .bin holds: unpickling calls os.mkdir(marker)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (self.marker,)


@pytest.mark.parametrize('protocol', [0, 2, 4, 5])  # 0-2 use Python 2's module names
def test_bin_with_a_payload_is_refused_before_anything_runs(tmp_path, protocol):
    marker = str(tmp_path / 'owned')
    path = tmp_path / 'lfw.bin'
    path.write_bytes(pickle.dumps(([b'a', b'b'], [_Payload(marker)]), protocol=protocol))
    with pytest.raises(UnsafePickleError, match=re.escape(str(path)) + r'.*global (posix|os)\.'
                                                 r'mkdir'):
        load_bin(str(path))
    assert not os.path.exists(marker)


def test_eval_tool_and_training_refuse_the_payload(tmp_path):
    data_dir = tmp_path / 'data'
    make_synthetic(str(data_dir), num_ids=4, per_id=4, image_size=(16, 16), num_pairs=4, seed=0)
    marker = str(tmp_path / 'owned')
    (data_dir / 'lfw.bin').write_bytes(pickle.dumps((_Payload(marker), [True]), protocol=2))
    run = subprocess.run([sys.executable, 'eval/verification.py', '--model', 'none,0',
                          '--data-dir', str(data_dir), '--target', 'lfw'],
                         capture_output=True, text=True, cwd=os.path.dirname(ad_face.__file__))
    assert run.returncode == 2, run.stderr
    assert 'lfw.bin: refused to unpickle the global' in run.stderr
    with pytest.raises(UnsafePickleError, match='lfw.bin'):
        ad_face.main(['--data-dir', str(data_dir), '--target', 'lfw', '--network', 's5',
                      '--prefix', str(tmp_path / 'm')])
    assert not os.path.exists(marker)


def test_what_real_bin_files_hold_still_loads(tmp_path):
    """Python-2 str and numpy uint8 images, bools (also numpy's) in all protocols."""
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        content = ([b'\xff\xd8jpeg', bytearray(b'png'), np.frombuffer(b'\x01\x02', np.uint8),
                    b''], [True, np.bool_(False)])
        out = restricted_loads(pickle.dumps(content, protocol=protocol), 'x.bin')
        assert out[0][:2] == [b'\xff\xd8jpeg', bytearray(b'png')] and out[0][3] == b''
        assert out[0][2].dtype == np.uint8 and out[0][2].tolist() == [1, 2]
        assert [bool(v) for v in out[1]] == [True, False]
    path = str(tmp_path / 'saved.bin')
    save_bin(path, [b'a', b'b'], [True])
    assert load_bin(path) == ([b'a', b'b'], [True])
    with pytest.raises(UnsafePickleError, match='numpy dtype float32'):
        restricted_loads(pickle.dumps(np.zeros(3, np.float32)), 'x.bin')


# --- 2. a diverged run never writes bad weights ----------------------------------------------

def _saved_batches(caplog):
    return [int(b) for b in re.findall(r'\[(\d+)\] saved ', caplog.text)]


@pytest.mark.parametrize('loss_type', ['0', '4'])
def test_diverged_mnist_run_stops_and_leaves_the_last_good_checkpoint(
        tmp_path, caplog, digits_idx_dir, loss_type):
    prefix = str(tmp_path / 'model')
    caplog.set_level(logging.INFO)
    argv = TINY + ['--data-dir', str(digits_idx_dir), '--prefix', prefix, '--lr', '1e6',
                   '--loss-type', loss_type, '--verbose', '1', '--max-steps', '12']
    with pytest.raises(FloatingPointError) as err:
        ad_mnist.main(argv)
    step = int(re.search(r'at batch (\d+)', str(err.value)).group(1))
    saved = _saved_batches(caplog)
    assert saved and max(saved) < step      # nothing of the bad state was saved
    assert 'last good checkpoint is %s-0000.params (saved at batch %d)' % (prefix, max(saved)) \
        in str(err.value)
    for epoch in saved_epochs(prefix):      # every file on disk holds finite weights
        arg, aux = load_params(prefix, epoch)
        assert all(np.isfinite(v.asnumpy()).all() for v in list(arg.values()) + list(aux.values()))


def test_diverged_face_run_stops_without_writing(tmp_path):
    data_dir = tmp_path / 'faces'
    make_synthetic(str(data_dir), num_ids=6, per_id=6, image_size=(16, 16), num_pairs=6, seed=0)
    prefix = str(tmp_path / 'm')
    with pytest.raises(FloatingPointError, match=r'non-finite .* at batch \d+: stopping; nothing '
                                                 r'of this state was saved\. The last good '
                                                 r'checkpoint is none'):
        ad_face.main(['--data-dir', str(data_dir), '--target', 'lfw', '--network', 's5',
                      '--main-per-batch-size', '12', '--adv-per-batch-size', '8',
                      '--adv-round', '1', '--lr', '1e8', '--verbose', '100', '--max-steps', '8',
                      '--prefix', prefix])
    assert saved_epochs(prefix) == []


def test_save_checkpoint_refuses_non_finite_values_and_writes_nothing(tmp_path):
    prefix = str(tmp_path / 'm')
    good = {'w': mx.nd.ones((2, 2))}
    save_checkpoint(prefix, 0, None, good, {})
    before = open(prefix + '-0000.params', 'rb').read()
    bad = {'w': mx.nd.array([[1, np.nan], [0, 1]])}
    with pytest.raises(NonFiniteError, match='arg:w'):
        save_checkpoint(prefix, 0, None, bad, {'m': mx.nd.ones(1)})
    with pytest.raises(NonFiniteError, match='aux:m'):
        save_checkpoint(prefix, 1, None, good, {'m': mx.nd.array([np.inf])})
    assert open(prefix + '-0000.params', 'rb').read() == before
    assert saved_epochs(prefix) == [0]


# --- 3. --pretrained from another network ----------------------------------------------------

@pytest.fixture(scope='module')
def s5_checkpoint(tmp_path_factory, digits_idx_dir):
    prefix = str(tmp_path_factory.mktemp('s5') / 'model')
    ad_mnist.main(TINY + ['--data-dir', str(digits_idx_dir), '--prefix', prefix,
                          '--max-steps', '1', '--verbose', '1'])
    return prefix


def test_pretrained_of_another_network_is_refused(tmp_path, digits_idx_dir, s5_checkpoint):
    common = TINY + ['--data-dir', str(digits_idx_dir), '--max-steps', '1',
                     '--prefix', str(tmp_path / 'x'), '--pretrained', s5_checkpoint + ',0']
    with pytest.raises(ValueError, match=r'does not fit --network: none of the network.s '
                                         r'parameters .* another network'):
        ad_mnist.main(common + ['--network', 'l'])
    with pytest.raises(ValueError, match=r'fits the network only in part: \d+ of its parameters '
                                         r'would start from scratch.*--allow-partial-pretrained'):
        ad_mnist.main(common + ['--network', 's8'])
    assert saved_epochs(str(tmp_path / 'x')) == []  # refused before anything was trained


def test_partial_pretrained_load_when_explicitly_allowed(tmp_path, caplog, digits_idx_dir,
                                                         s5_checkpoint):
    caplog.set_level(logging.INFO)
    ad_mnist.main(TINY + ['--data-dir', str(digits_idx_dir), '--max-steps', '1',
                          '--network', 's8', '--allow-partial-pretrained', '--verbose', '1',
                          '--prefix', str(tmp_path / 'x'), '--pretrained', s5_checkpoint + ',0'])
    counts = re.search(r"(\d+) of the network's (\d+) parameters and states loaded, (\d+) "
                       r"re-initialised \(shape mismatch\), 0 dropped, (\d+) missing from the "
                       r"file; (\d+) of the file's (\d+) unused", caplog.text)
    loaded, total, reinit, missing, unused, stored = map(int, counts.groups())
    assert 0 < loaded < total and loaded + reinit + missing == total
    assert unused == stored - loaded - reinit


# --- 4. another run's checkpoints are never replaced -----------------------------------------

def test_reusing_a_prefix_continues_the_numbering(tmp_path, caplog, digits_idx_dir):
    prefix = str(tmp_path / 'model')
    common = TINY + ['--data-dir', str(digits_idx_dir), '--prefix', prefix, '--verbose', '1',
                     '--ckpt', '2']
    ad_mnist.main(common + ['--max-steps', '2'])                     # writes 0000, 0001, 0002
    first = {e: open('%s-%04d.params' % (prefix, e), 'rb').read() for e in saved_epochs(prefix)}
    assert sorted(first) == [0, 1, 2]
    caplog.set_level(logging.INFO)
    ad_mnist.main(common + ['--max-steps', '2', '--pretrained', prefix + ',0', '--seed', '4'])
    assert 'numbers its checkpoints from 3 on' in caplog.text
    assert saved_epochs(prefix) == [0, 1, 2, 3, 4]
    for epoch in (1, 2):                     # the first run's numbered checkpoints are intact
        assert open('%s-%04d.params' % (prefix, epoch), 'rb').read() == first[epoch]
    # the first run's latest equalled its 0002: nothing to keep; the new run's are 3 and 4
    assert open(prefix + '-0000.params', 'rb').read() == open(prefix + '-0004.params',
                                                              'rb').read()
    # another network at this prefix is refused, naming the flag that allows it
    with pytest.raises(ValueError, match=r'checkpoints of another network .* --overwrite'):
        ad_mnist.main(common + ['--max-steps', '1', '--network', 'l'])
    assert saved_epochs(prefix) == [0, 1, 2, 3, 4]
    ad_mnist.main(common + ['--max-steps', '1', '--network', 'l', '--overwrite'])
    assert open(prefix + '-0001.params', 'rb').read() != first[1]   # the original's behaviour


def test_an_earlier_latest_that_is_not_numbered_is_kept(tmp_path, caplog, digits_idx_dir):
    prefix = str(tmp_path / 'model')
    common = TINY + ['--data-dir', str(digits_idx_dir), '--prefix', prefix, '--verbose', '1']
    save_checkpoint(prefix, 0, None, {'w': mx.nd.ones(1)}, {})  # no symbol: refused
    with pytest.raises(ValueError, match=r'no model-symbol\.json: cannot tell'):
        ad_mnist.main(common + ['--max-steps', '1'])
    os.remove(prefix + '-0000.params')
    ad_mnist.main(common + ['--max-steps', '3', '--lr', '0'])  # lr 0: only the first eval is best
    assert saved_epochs(prefix) == [0, 1]
    latest = open(prefix + '-0000.params', 'rb').read()
    caplog.set_level(logging.INFO)
    ad_mnist.main(common + ['--max-steps', '1'])
    assert saved_epochs(prefix) == [0, 1, 2, 3]
    assert open(prefix + '-0002.params', 'rb').read() == latest
    assert 'kept the earlier run\'s latest' in caplog.text


def test_temporary_files_of_killed_writes_are_removed(tmp_path):
    prefix = str(tmp_path / 'model')
    code = ('import os, sys; from runtime.atomic import atomic_write\n'
            'atomic_write(sys.argv[1], lambda tmp: os._exit(9))')  # dies mid-write
    run = subprocess.run([sys.executable, '-c', code, prefix + '-0003.params'],
                         cwd=os.path.dirname(ad_mnist.__file__))
    assert run.returncode == 9
    left = [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    assert len(left) == 1 and left[0].startswith('.model-0003.params.')
    atomic_write(str(tmp_path / 'other'), lambda tmp: open(tmp, 'w').write('x'))
    removed = remove_stale_temporaries(str(tmp_path), 'model-')
    assert [os.path.basename(p) for p in removed] == left
    assert sorted(os.listdir(tmp_path)) == ['other']


# --- 5. labels and sizes -------------------------------------------------------------------

def _copy_idx(src, dst, **replace):
    dst.mkdir()
    for name in os.listdir(src):
        (dst / name).write_bytes((src / name).read_bytes())
    for name, array in replace.items():
        write_idx(dst / (name.replace('_', '-') + '.gz'), array)


def test_labels_outside_the_class_count_are_refused(tmp_path, digits_idx_dir):
    from data.idx import read_idx
    labels = read_idx(str(digits_idx_dir / 'train-labels-idx1-ubyte.gz')).copy()
    labels[7] = 255
    bad = tmp_path / 'bad'
    _copy_idx(digits_idx_dir, bad, train_labels_idx1_ubyte=labels)
    with pytest.raises(ValueError, match=r'train-labels-idx1-ubyte.gz: label 255 at index 7 is '
                                         r'outside 0\.\.9'):
        ad_mnist.main(['--data-dir', str(bad), '--network', 's5'])
    test_labels = read_idx(str(digits_idx_dir / 't10k-labels-idx1-ubyte.gz')).copy()
    test_labels[3] = 12
    bad12 = tmp_path / 'bad12'
    _copy_idx(digits_idx_dir, bad12, t10k_labels_idx1_ubyte=test_labels)
    with pytest.raises(ValueError, match=r't10k-labels-idx1-ubyte.gz: label 12 at index 3'):
        ad_mnist.main(['--data-dir', str(bad12), '--network', 's5'])
    from data.mnist import load_mnist
    assert load_mnist(str(bad12), num_classes=13).test_y[3] == 12  # --num-classes 13 admits it


def test_bin_of_another_image_size_is_refused_by_every_tool(tmp_path):
    data_dir = tmp_path / 'data'
    make_synthetic(str(data_dir), num_ids=4, per_id=4, image_size=(16, 16), num_pairs=4, seed=0)
    other = tmp_path / 'other'
    make_synthetic(str(other), num_ids=4, per_id=1, image_size=(20, 20), num_pairs=4, seed=1)
    os.replace(other / 'lfw.bin', data_dir / 'lfw.bin')             # 20x20 pairs, 16x16 set
    with pytest.raises(ValueError, match=r'lfw.bin holds 20x20 images but the training set '
                                         r'\(.*property\) is 16x16'):
        ad_face.main(['--data-dir', str(data_dir), '--target', 'lfw', '--network', 's5',
                      '--prefix', str(tmp_path / 'm')])
    for tool in ('eval/verification.py', 'eval/cal_threshold.py'):
        run = subprocess.run([sys.executable, tool, '--model', 'none,0', '--data-dir',
                              str(data_dir), '--target', 'lfw'], capture_output=True, text=True,
                             cwd=os.path.dirname(ad_face.__file__))
        assert run.returncode == 2
        assert re.search(r'lfw.bin holds 20x20 images but .*property says 16x16 .* '
                         r'--image-size', run.stderr), run.stderr
    from eval.bin_sets import load_targets
    images, _ = load_targets(str(data_dir), 'lfw', (16, 16), resize=True)['lfw']
    assert images.shape[1:3] == (16, 16)   # an explicit --image-size resizes (logged)
    # no property file: the model itself says which size it takes
    os.remove(data_dir / 'property')
    from tests.test_verification import _tiny_face_net
    sym, arg, aux = _tiny_face_net(size=16)   # a fully connected layer: 16x16 inputs only
    save_checkpoint(str(tmp_path / 'net'), 1, sym, arg, aux)
    for tool in ('eval/verification.py', 'eval/cal_threshold.py'):
        run = subprocess.run([sys.executable, tool, '--model', str(tmp_path / 'net') + ',1',
                              '--data-dir', str(data_dir), '--target', 'lfw'],
                             capture_output=True, text=True, cwd=os.path.dirname(ad_face.__file__))
        assert run.returncode == 2
        assert 'lfw.bin holds 20x20 images, which the model does not take' in run.stderr


# --- 6. thresholds -------------------------------------------------------------------------

@pytest.mark.parametrize('value', [None, 100, -0.5, 'nan', True])
def test_threshold_json_is_checked_like_the_command_line(tmp_path, value):
    from eval.cal_threshold import load_threshold
    path = tmp_path / 'thr.json'
    path.write_text(json.dumps({'threshold': float(value) if value == 'nan' else value}))
    with pytest.raises(ValueError, match=r'thr.json "threshold": .*expected a number in '
                                         r'\(0, 4\]'):
        load_threshold(str(path))
    path.write_text(json.dumps({'threshold': 1.25}))
    assert load_threshold(str(path)) == 1.25


@pytest.mark.parametrize('value', ['100', 'nan', '0'])
def test_threshold_flag_follows_the_same_rule(value, capsys):
    from eval import attack_face
    with pytest.raises(SystemExit) as exit_info:
        attack_face.parse_args(['--model', 'm,0', '--data-dir', 'd', '--threshold', value])
    assert exit_info.value.code == 2
    assert re.search(r'--threshold: the threshold is a squared Euclidean distance .*expected a '
                     r'number in \(0, 4\]', capsys.readouterr().err)


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_the_weight_check_finds_one_bad_value_on_any_context(bad):
    """The check after every update: one NaN or infinity anywhere, in any array on any context,
    is found; huge finite values are not taken for infinities."""
    from src.fit import all_finite
    rng = np.random.RandomState(0)
    arrays = [mx.nd.array(rng.randn(*shape) * 1e30, ctx=mx.cpu(i % 2))
              for i, shape in enumerate([(300, 200), (7,), (3, 4, 5, 6)])]
    assert all_finite(arrays)
    for index in range(len(arrays)):
        spoilt = [a.copy() for a in arrays]
        values = spoilt[index].asnumpy()
        values.flat[values.size // 2] = bad
        spoilt[index] = mx.nd.array(values, ctx=arrays[index].context)
        assert not all_finite(spoilt), index
