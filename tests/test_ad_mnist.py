"""ad_mnist.py end to end on tiny data, with 1+1 and 2+2 CPU contexts, and its bad-input errors."""
import logging
import re

import numpy as np
import pytest

import ad_mnist
from data.mnist import load_mnist
from eval.model import Network
from tests.conftest import write_idx

TINY = ['--network', 's5', '--loss-type', '0', '--adv-round', '3', '--lr', '0.05',
        '--num-test', '150', '--seed', '3', '--disp-batches', '1']


def _val_accuracies(caplog):
    return [float(x) for x in re.findall(r'Val-Accuracy: ([0-9.]+)', caplog.text)]


@pytest.mark.parametrize('ctx,adv_ctx,main_bs,adv_bs', [(1, 1, 48, 32), (2, 2, 24, 16)])
def test_short_run_writes_a_checkpoint_that_reloads(tmp_path, caplog, digits_idx_dir, ctx,
                                                    adv_ctx, main_bs, adv_bs):
    prefix = str(tmp_path / 'model')
    caplog.set_level(logging.INFO)
    ad_mnist.main(TINY + ['--data-dir', str(digits_idx_dir), '--prefix', prefix,
                          '--ctx-num', str(ctx), '--ctx-adv-num', str(adv_ctx),
                          '--main-per-batch-size', str(main_bs),
                          '--adv-per-batch-size', str(adv_bs), '--max-steps', '4',
                          '--verbose', '2'])
    steps = re.findall(r'Batch\[\d+\] step (\d+)', caplog.text)
    assert steps == ['1', '2', '3', '4']  # exactly --max-steps batches
    assert 'rounds=' in caplog.text and 'samples/s' in caplog.text
    accs = _val_accuracies(caplog)
    assert len(accs) == 2
    data = load_mnist(str(digits_idx_dir))
    net = Network.load(prefix + ',0', output='logits')
    pred = net.predict(data.test_x[:150]).argmax(1)
    assert np.mean(pred == data.test_y[:150]) == pytest.approx(accs[-1], abs=1e-5)
    # the best-accuracy save is loadable too
    best = 1 + int(np.argmax(accs))
    assert Network.load('%s,%d' % (prefix, best), output='embedding').predict(
        data.test_x[:3]).shape == (3, 128)


def test_pretrained_continues_from_checkpoint(tmp_path, caplog, digits_idx_dir):
    from src.checkpoint import load_params
    common = TINY + ['--data-dir', str(digits_idx_dir), '--main-per-batch-size', '48',
                     '--adv-per-batch-size', '32', '--verbose', '100']
    caplog.set_level(logging.INFO)
    ad_mnist.main(common + ['--prefix', str(tmp_path / 'stage1'), '--max-steps', '2'])
    ad_mnist.main(common + ['--prefix', str(tmp_path / 'stage2'), '--max-steps', '1',
                            '--lr', '0', '--seed', '99',
                            '--pretrained', str(tmp_path / 'stage1') + ',0'])
    loaded = re.search(r"(\d+) of the network's (\d+) parameters and states loaded, 0 "
                       r're-initialised \(shape mismatch\), 0 dropped, 0 missing', caplog.text)
    assert loaded and loaded.group(1) == loaded.group(2)
    # lr 0: the weights (fc7 included: same classes) are exactly the stage-1 ones
    arg1, _ = load_params(str(tmp_path / 'stage1'), 0)
    arg2, _ = load_params(str(tmp_path / 'stage2'), 0)
    assert set(arg1) == set(arg2)
    for name in set(arg1) - {'bn_data_gamma'}:  # fix_gamma: forced to 1, its value is unused
        np.testing.assert_array_equal(arg1[name].asnumpy(), arg2[name].asnumpy(), err_msg=name)


def test_missing_data_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match='nowhere.*does not exist'):
        ad_mnist.main(['--data-dir', str(tmp_path / 'nowhere'), '--network', 's5'])


def test_truncated_idx_file(tmp_path, digits_idx_dir):
    for name in ('train-labels-idx1-ubyte.gz', 't10k-images-idx3-ubyte.gz',
                 't10k-labels-idx1-ubyte.gz'):
        (tmp_path / name).write_bytes((digits_idx_dir / name).read_bytes())
    images = np.zeros((20, 28, 28), np.uint8)
    write_idx(tmp_path / 'train-images-idx3-ubyte', images)  # raw, not gzip
    raw = (tmp_path / 'train-images-idx3-ubyte').read_bytes()
    (tmp_path / 'train-images-idx3-ubyte').write_bytes(raw[:-100])
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte: .*truncated'):
        ad_mnist.main(['--data-dir', str(tmp_path), '--network', 's5'])
    (tmp_path / 'train-images-idx3-ubyte').unlink()
    (tmp_path / 'train-images-idx3-ubyte.gz').write_bytes(
        (digits_idx_dir / 'train-images-idx3-ubyte.gz').read_bytes()[:500])
    with pytest.raises(ValueError, match=r'train-images-idx3-ubyte.gz: cannot read'):
        ad_mnist.main(['--data-dir', str(tmp_path), '--network', 's5'])


def test_indivisible_batch(digits_idx_dir, tmp_path):
    with pytest.raises(ValueError, match='main-per-batch-size'):
        ad_mnist.main(['--data-dir', str(digits_idx_dir), '--network', 's5',
                       '--main-per-batch-size', '50', '--adv-per-batch-size', '32',
                       '--prefix', str(tmp_path / 'm')])
    with pytest.raises(ValueError, match='do not divide across --ctx-num 3'):
        ad_mnist.main(['--data-dir', str(digits_idx_dir), '--network', 's5', '--ctx-num', '3',
                       '--main-per-batch-size', '4', '--adv-per-batch-size', '8',
                       '--prefix', str(tmp_path / 'm')])


def test_vanilla_mode_runs_no_attack(tmp_path, caplog, digits_idx_dir):
    caplog.set_level(logging.INFO)
    ad_mnist.main(TINY + ['--data-dir', str(digits_idx_dir), '--prefix', str(tmp_path / 'v'),
                          '--main-per-batch-size', '48', '--adv-per-batch-size', '32',
                          '--adv-round', '0', '--weightadv', '0', '--max-steps', '2'])
    assert re.findall(r'rounds=([0-9.]+)', caplog.text) == ['0.0', '0.0']
    assert set(re.findall(r'advloss=([0-9.]+)', caplog.text)) == {'0.0000'}
    # adv == src gives AP = 0: its gradient must stay finite, or the network collapses (AN -> 0)
    assert all(float(v) > 0.05 for v in re.findall(r'AN=([0-9.]+)', caplog.text))
    assert len(_val_accuracies(caplog)) == 1
