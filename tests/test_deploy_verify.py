"""Verifying the file one ships: eval/verification.py, eval/cal_threshold.py and eval/lfw.py take
``--model model.onnx`` (run by onnxruntime) and give what they give for the checkpoint it was
exported from, on the same synthetic .bin set / LFW folder, with the same protocol."""
import json
import os

import cv2
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from data.bin_format import save_bin
from deploy.export_onnx import export_onnx
from deploy.parity import relative_error
from eval import bin_sets, cal_threshold, embedding, lfw, verification
from eval.model import Network
from eval.onnx_model import OnnxNetwork
from src.checkpoint import save_checkpoint
from tests.deploy_helpers import face_images, make_checkpoint

SIZE = (32, 32)
NUM_PAIRS = 40


@pytest.fixture(scope='module')
def models(tmp_path_factory):
    """(folder, 'prefix,0' of a 3-channel s8 face model, its exported .onnx), with faces.bin:
    pairs of renders of one synthetic identity (same) or of two (different)."""
    root = tmp_path_factory.mktemp('verify')
    symbol, arg, aux = make_checkpoint('s8', (3,) + SIZE, num_classes=5, seed=2)
    aux['bn_data_moving_mean'] = mx.nd.full(aux['bn_data_moving_mean'].shape, 127.5)
    aux['bn_data_moving_var'] = mx.nd.full(aux['bn_data_moving_var'].shape, 75.0 ** 2)
    prefix = str(root / 's8face')
    save_checkpoint(prefix, 0, symbol, arg, aux)
    path = str(root / 's8face.onnx')
    export_onnx(symbol, arg, aux, path, output='embedding', input_shape=(3,) + SIZE)

    from data.synthetic import identity_pattern, render_image
    rng = np.random.default_rng(11)
    ids = [identity_pattern(rng, SIZE) for _ in range(8)]
    bins, issame = [], []
    for i in range(NUM_PAIRS):
        a = int(rng.integers(len(ids)))
        same = i % 2 == 0
        b = a if same else int((a + rng.integers(1, len(ids))) % len(ids))
        for k in (a, b):
            bins.append(cv2.imencode('.png', render_image(ids[k], rng)[:, :, ::-1])[1].tobytes())
        issame.append(same)
    save_bin(str(root / 'faces.bin'), bins, issame)
    return root, prefix + ',0', path


def test_onnx_embeddings_of_the_bin_match_the_checkpoint(models):
    root, spec, path = models
    images, _ = bin_sets.load_target(str(root / 'faces.bin'))
    onnx_emb, onnx_flip = embedding.embed_pairs(OnnxNetwork(path), images, 7)
    mx_emb, mx_flip = embedding.embed_pairs(Network.load(spec), images, 7)
    assert onnx_emb.shape == mx_emb.shape == (2 * NUM_PAIRS, 128)
    assert relative_error(onnx_emb, mx_emb) <= 1e-4
    assert relative_error(onnx_flip, mx_flip) <= 1e-4


def test_verification_cli_on_an_onnx_model(models, capsys):
    root, spec, path = models
    args = ['--data-dir', str(root), '--target', 'faces', '--batch-size', '7']
    onnx_rows = verification.run(verification.parse_args(['--model', path] + args))
    table = capsys.readouterr().out
    mx_rows = verification.run(verification.parse_args(['--model', spec] + args))
    assert len(onnx_rows) == len(mx_rows) == 1
    got, want = onnx_rows[0], mx_rows[0]
    assert (got['model'], got['epoch'], want['epoch']) == (path, None, 0)
    assert path in table and 'Accuracy-Flip' in table
    assert got['num_pairs'] == NUM_PAIRS and 0.5 < want['acc_mean'] <= 1.0
    for key in ('accuracy', 'best_thresholds', 'val', 'far', 'tpr', 'fpr'):
        assert got[key] == want[key], key
    assert got['xnorm'] == pytest.approx(want['xnorm'], rel=1e-4)


def test_cal_threshold_on_an_onnx_model(models, capsys):
    root, spec, path = models
    args = ['--data-dir', str(root), '--target', 'faces', '--far', '0.1', '--nfolds', '4']
    record = cal_threshold.run(cal_threshold.parse_args(['--model', path] + args))
    out = os.path.splitext(path)[0] + '-faces-threshold.json'   # beside the .onnx file
    with open(out) as f:
        assert json.load(f)['threshold'] == record['threshold']
    reference = cal_threshold.run(cal_threshold.parse_args(
        ['--model', spec, '--out', str(root / 'ref.json')] + args))
    assert record['model'] == path and 0 < reference['threshold'] < 4
    # the same pairs fall on the same side of the 0.001-step threshold grid
    assert record['per_fold'] == pytest.approx(reference['per_fold'], abs=1e-9)
    assert record['val'] == reference['val']


def test_lfw_on_an_onnx_model(models, tmp_path):
    _, spec, path = models
    faces = face_images(8, SIZE, seed=5)
    lines = ['2\t5']
    for p in range(4):
        name = 'Person_%d' % p
        os.makedirs(str(tmp_path / name))
        for k in (1, 2):
            cv2.imwrite(str(tmp_path / name / ('%s_%04d.jpg' % (name, k))),
                        faces[2 * p + k - 1][:, :, ::-1])
    for s in range(5):
        a, b = 'Person_%d' % (s % 4), 'Person_%d' % ((s + 1) % 4)
        lines += ['%s\t1\t2' % a, '%s\t1\t%s\t2' % (a, b)]
    (tmp_path / 'pairs.txt').write_text('\n'.join(lines) + '\n')
    args = ['--lfw-dir', str(tmp_path), '--image-size', '32,32', '--nfolds', '2']
    row = lfw.run(lfw.parse_args(['--model', path] + args))
    reference = lfw.run(lfw.parse_args(['--model', spec] + args))
    assert (row['model'], row['epoch'], row['num_pairs']) == (path, None, 10)
    assert row['accuracy'] == reference['accuracy']
    assert row['xnorm'] == pytest.approx(reference['xnorm'], rel=1e-4)


def test_a_missing_onnx_file_is_a_clean_error(models, capsys):
    root, _, _ = models
    missing = str(root / 'nothing.onnx')
    assert verification.main(['--model', missing, '--data-dir', str(root), '--target',
                              'faces']) == 2
    assert 'no ONNX model %s' % missing in capsys.readouterr().err
