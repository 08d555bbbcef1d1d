"""Verification protocol (eval/verification.py, cal_threshold, lfw, ytf) and .bin files."""
import io
import json
import os
import pickle
import struct
import subprocess
import sys

import cv2
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest
from scipy import interpolate

from data.bin_format import decode_images, load_bin, save_bin
from eval import bin_sets, cal_threshold, embedding, lfw, protocol, verification, ytf
from eval.model import Network
from src.checkpoint import save_checkpoint
from symbols.common import name_embedding

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ----------------------------------------------------------------------------- metrics

def test_separable_pairs_give_accuracy_one_in_every_fold():
    rng = np.random.default_rng(0)
    issame = np.arange(200) % 2 == 0
    dist = np.where(issame, rng.uniform(0.0, 0.5, 200), rng.uniform(2.0, 3.9, 200))
    tpr, fpr, acc, best = protocol.kfold_accuracy(dist, issame)
    assert acc.shape == (10,) and np.all(acc == 1.0)
    # the first grid value above every same-pair distance (all below 0.5)
    assert np.all((best > dist[issame].max()) & (best <= dist[issame].max() + 0.01))
    assert tpr.shape == fpr.shape == (400,)


def test_hand_made_kfold_accuracy():
    # 10 folds of 2 pairs (one same at 0.2, one different at 1.0); in fold 3 the same pair is
    # at 1.5. Every training set is best split by any threshold in (0.2, 1.0]: the first
    # such grid value, 0.21, is chosen. Fold 3 then misses its same pair: accuracy 0.5.
    dist = np.tile([0.2, 1.0], 10)
    dist[6] = 1.5
    issame = np.tile([True, False], 10)
    _, _, acc, best = protocol.kfold_accuracy(dist, issame)
    assert acc.tolist() == [1, 1, 1, 0.5, 1, 1, 1, 1, 1, 1]
    assert best == pytest.approx(np.full(10, 0.21))
    assert acc.mean() == pytest.approx(0.95)
    assert acc.std() == pytest.approx(0.15)  # sqrt((9 * 0.05**2 + 0.45**2) / 10)


def test_embeddings_are_normalised_into_squared_distances():
    emb = np.array([[3.0, 0.0], [0.0, 2.0], [1.0, 1.0], [2.0, 2.0]])
    assert protocol.pair_distances(emb) == pytest.approx([2.0, 0.0])
    both = protocol.combine_flip([[1.0, 0.0]], [[0.0, 1.0]])
    assert both == pytest.approx(np.array([[1, 1]]) / np.sqrt(2))


def test_far_at_a_known_threshold():
    # 1000 different pairs, exactly 3 under the threshold 1.0; 50 same pairs, 40 under it
    issame = np.r_[np.zeros(1000, bool), np.ones(50, bool)]
    dist = np.r_[np.full(3, 0.5), np.full(997, 2.0), np.full(40, 0.3), np.full(10, 1.7)]
    val, far = protocol.val_far_at(1.0, dist, issame)
    assert far == 3 / 1000 and val == 40 / 50
    # a pair exactly at the threshold is not accepted (distance < threshold)
    assert protocol.val_far_at(0.5, dist, issame) == (0.8, 0.0)


def test_val_far_interpolation_hand_checked():
    # 2000 different pairs: one at 0.5004, one at 0.7006, the rest at 3.9505.
    # FAR is 0 up to threshold 0.500, 5e-4 on 0.501..0.700, 1e-3 on 0.701..3.950, then 1.
    issame = np.r_[np.zeros(2000, bool), np.ones(4, bool)]
    dist = np.r_[0.5004, 0.7006, np.full(1998, 3.9505), 0.3, 0.3, 0.8, 0.8]
    # 7.5e-4 lies halfway between (5e-4, 0.700) and (1e-3, 0.701)
    thr = protocol.threshold_at_far(dist, issame, far_target=7.5e-4)
    assert thr == pytest.approx(0.7005, abs=1e-9)
    # at a FAR value the curve takes on a run of thresholds, the last of the run counts
    assert protocol.threshold_at_far(dist, issame, 1e-3) == pytest.approx(3.950)
    # the FAR never reaches 1e-4 below 0.501: interpolated between 0.500 and 0.501
    assert protocol.threshold_at_far(dist, issame, 1e-4) == pytest.approx(0.5002)
    # nfolds=1 trains and tests on everything: at 0.7005 VAL = the 2 same pairs at 0.3 out
    # of 4, FAR = the one different pair at 0.5004 out of 2000
    val, val_std, far = protocol.val_far(dist, issame, 7.5e-4, nfolds=1)
    assert (val, val_std, far) == (0.5, 0.0, 1 / 2000)
    # a FAR target never reached gives threshold 0 (nothing accepted), as the original
    assert protocol.threshold_at_far(dist[:2000], issame[:2000], 1e-3,
                                         np.arange(0, 0.6, 0.001)) == 0.0


def test_interp_threshold_matches_scipy_slinear():
    rng = np.random.default_rng(1)
    fars = np.sort(rng.uniform(0, 1, 50))
    thresholds = np.linspace(0, 4, 50)
    for target in rng.uniform(fars[0], fars[-1], 20):
        expected = float(interpolate.interp1d(fars, thresholds, kind='slinear')(target))
        assert protocol.interp_threshold(fars, thresholds, target) == pytest.approx(expected)
    # repeated FAR values: the linear B-spline old SciPy's interp1d built on them
    fars = np.repeat(np.sort(rng.choice(np.linspace(0, 0.1, 30), 12, replace=False)), 4)
    thresholds = np.arange(len(fars)) * 0.001
    spline = interpolate.BSpline(np.r_[fars[0], fars, fars[-1]], thresholds, 1)
    for target in np.r_[rng.uniform(fars[0], fars[-1], 20), fars[5]]:
        if target < fars[-1]:
            assert protocol.interp_threshold(fars, thresholds, target) == pytest.approx(
                float(spline(target)))


def test_xnorm_is_the_mean_norm_of_all_raw_embeddings():
    a = np.array([[3.0, 4.0], [6.0, 8.0]])
    b = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert protocol.xnorm(a, b) == pytest.approx((5 + 10 + 1 + 2) / 4)


def test_verification_metrics_uses_the_flip_sum():
    # images alone: every pair at distance 2, so same (even) and different (odd) pairs cannot
    # be told apart; adding the flips brings the same pairs together (distance 0)
    emb = np.array([[1, 0], [0, 1]] * 20, float)
    flip = np.array([[0, 1], [1, 0], [1, 0], [0, 1]] * 10, float)
    issame = np.arange(20) % 2 == 0
    with_flip = protocol.verification_metrics(emb, flip, issame)
    assert with_flip['acc_mean'] == 1.0 and with_flip['flip']
    assert with_flip['xnorm'] == 1.0
    alone = protocol.verification_metrics(emb, None, issame)
    assert alone['acc_mean'] == 0.5 and not alone['flip']


# ----------------------------------------------------------------------------- .bin files

class _Py2Pickler(pickle._Pickler):
    """Writes bytes and str as Python 2 ``str`` (BINSTRING opcodes), as Python 2 pickled."""
    dispatch = dict(pickle._Pickler.dispatch)

    def _save_py2_str(self, obj):
        raw = obj.encode('latin1') if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack('<i', len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_dumps(obj):
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _png(value, size=(10, 8)):
    img = np.zeros(size + (3,), np.uint8)
    img[..., 0] = value          # R
    img[..., 2] = 255 - value    # B
    img[0, 0] = (7, 7, 7)
    ok, buf = cv2.imencode('.png', img[..., ::-1])  # cv2 writes BGR
    assert ok
    return buf.tobytes()


def test_python2_pickle_needs_bytes_encoding_and_loads(tmp_path):
    bins = [_png(v) for v in (10, 60, 110, 160)]
    raw = _py2_dumps((bins, [True, False]))
    with pytest.raises(UnicodeDecodeError):  # the default ASCII decoding cannot read it
        pickle.loads(raw)
    path = tmp_path / 'py2.bin'
    path.write_bytes(raw)
    loaded, issame = load_bin(str(path))
    assert loaded == bins and issame == [True, False]
    images = decode_images(loaded)
    assert images.shape == (4, 10, 8, 3) and images.dtype == np.uint8
    assert images[1, 5, 5].tolist() == [60, 0, 195]  # RGB order


def test_python2_pickle_of_numpy_images(tmp_path):
    bins = [np.frombuffer(_png(v), np.uint8) for v in (20, 40)]
    raw = _py2_dumps((bins, [True]))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(raw)
    path = tmp_path / 'py2np.bin'
    path.write_bytes(raw)
    loaded, issame = load_bin(str(path))
    assert loaded == [b.tobytes() for b in bins] and issame == [True]


def test_python3_pickle_bytes_and_numpy_and_save_roundtrip(tmp_path):
    bins = [_png(v) for v in (1, 2, 3, 4)]
    path = tmp_path / 'py3.bin'
    with open(path, 'wb') as f:
        pickle.dump((bins[:2] + [np.frombuffer(b, np.uint8) for b in bins[2:]],
                     np.array([False, True])), f, protocol=pickle.HIGHEST_PROTOCOL)
    assert load_bin(str(path)) == (bins, [False, True])
    out = tmp_path / 'saved.bin'
    save_bin(str(out), bins, [1, 0])
    assert pickle.loads(out.read_bytes(), encoding='bytes') == (bins, [True, False])
    assert out.read_bytes()[:2] == b'\x80\x02'  # protocol 2
    assert load_bin(str(out)) == (bins, [True, False])
    assert decode_images(bins, image_size=(4, 6), resize=True).shape == (4, 4, 6, 3)
    with pytest.raises(ValueError, match=r'image 0 is 10x8, expected 4x6'):
        decode_images(bins, image_size=(4, 6))  # never resized unless asked


@pytest.mark.parametrize('content', [
    'not a pickle',
    ([b'a', b'b'], [True], 'extra'),
    ([b'a', b'b', b'c'], [True]),
    ([b'a', b'b', b'c', b'd'], [True]),
    ([b'a', 5], [True]),
    ('abcd', [True, False]),
])
def test_bad_bin_files_raise_value_error_naming_the_file(tmp_path, content):
    path = tmp_path / 'bad.bin'
    if content == 'not a pickle':
        path.write_bytes(b'\x00garbage\xff' * 10)
    else:
        path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match='bad.bin'):
        load_bin(str(path))


def test_undecodable_image_names_its_index():
    with pytest.raises(ValueError, match='image 1 '):
        decode_images([_png(5), b'not an image'])


# ----------------------------------------------------------------------------- embeddings

def _tiny_face_net(size=12, seed=0):
    """Random conv net on (N, 3, size, size) in 0..255; checkpoint-style symbol and params."""
    data = mx.sym.var('data')
    x = (data - 127.5) * 0.0078125
    x = mx.sym.Convolution(x, num_filter=4, kernel=(3, 3), pad=(1, 1), name='conv0')
    x = mx.sym.Activation(x, act_type='tanh')
    x = mx.sym.FullyConnected(x, num_hidden=6, name='pre_fc1')
    sym = name_embedding(x)
    arg_shapes, _, _ = sym.infer_shape(data=(1, 3, size, size))
    rng = np.random.default_rng(seed)
    arg = {n: mx.nd.array(rng.normal(0, 0.3, s)) for n, s in zip(sym.list_arguments(), arg_shapes)
           if n != 'data'}
    return sym, arg, {}


def test_embed_pairs_any_batch_size_and_a_real_horizontal_flip():
    sym, arg, aux = _tiny_face_net()
    net = Network(sym, arg, aux)
    images = np.random.default_rng(2).integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    ref, ref_flip = embedding.embed_pairs(net, images, batch_size=1)
    for bs, fixed in ((3, False), (3, True), (10, True), (7, False)):
        emb, emb_flip = embedding.embed_pairs(net, images, batch_size=bs, fixed_batch=fixed)
        np.testing.assert_allclose(emb, ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(emb_flip, ref_flip, rtol=1e-5, atol=1e-5)
    # the flip embedding is the embedding of the mirrored image, and differs from the image's
    mirrored, _ = embedding.embed_pairs(net, images[:, :, ::-1], batch_size=4, flip=False)
    np.testing.assert_allclose(ref_flip, mirrored, rtol=1e-5, atol=1e-5)
    assert np.abs(ref_flip - ref).max() > 1e-3


def test_embed_pairs_with_a_plain_function_sees_channel_first_floats():
    images = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)  # N, H, W, C
    shapes = []

    def first_column(x):  # the left-most pixel column, all channels
        shapes.append(x.shape)
        return x[:, :, :, 0].reshape(len(x), -1)
    emb, emb_flip = embedding.embed_pairs(first_column, images, batch_size=5, fixed_batch=True)
    assert shapes == [(5, 3, 3, 4)] * 2
    np.testing.assert_array_equal(emb, images[:, :, 0, :].transpose(0, 2, 1).reshape(2, -1))
    np.testing.assert_array_equal(emb_flip, images[:, :, 3, :].transpose(0, 2, 1).reshape(2, -1))


def test_verify_targets_with_an_embed_function():
    rng = np.random.default_rng(3)
    base = rng.integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    images = np.repeat(base, 2, axis=0)  # pair i: two copies of image i ...
    issame = np.ones(20, bool)
    issame[1::2] = False
    images[3::4] = rng.integers(0, 256, (10, 6, 6, 3), dtype=np.uint8)  # ... odd pairs differ
    res = embedding.verify_targets(lambda x: x.reshape(len(x), -1) - 127.5,
                                      {'toy': (images, issame)}, batch_size=7)
    assert list(res) == ['toy'] and res['toy']['acc_mean'] == 1.0
    assert res['toy']['num_pairs'] == 20


# ----------------------------------------------------------------------------- CLIs

def _write_tiny_bin(path, num_pairs=20, size=12, seed=4):
    rng = np.random.default_rng(seed)
    bins, issame = [], []
    for i in range(num_pairs):
        a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        same = i % 2 == 0
        b = np.clip(a.astype(int) + rng.integers(-10, 11, a.shape), 0, 255).astype(np.uint8) \
            if same else rng.integers(0, 256, a.shape, dtype=np.uint8)
        bins += [cv2.imencode('.png', a)[1].tobytes(), cv2.imencode('.png', b)[1].tobytes()]
        issame.append(same)
    save_bin(str(path), bins, issame)


@pytest.fixture()
def tiny_model(tmp_path):
    sym, arg, aux = _tiny_face_net()
    prefix = str(tmp_path / 'models' / 'tiny')
    os.makedirs(os.path.dirname(prefix))
    save_checkpoint(prefix, 1, sym, arg, aux)
    save_checkpoint(prefix, 2, sym, _tiny_face_net(seed=1)[1], aux)
    _write_tiny_bin(tmp_path / 'tiny.bin')
    return prefix


def test_verification_cli_table_json_and_roc(tmp_path, tiny_model):
    out_json, out_png = tmp_path / 'res.json', tmp_path / 'roc.png'
    proc = subprocess.run(
        [sys.executable, os.path.join(REPO, 'eval', 'verification.py'), '--model', tiny_model,
         '--data-dir', str(tmp_path), '--target', 'tiny', '--batch-size', '3',
         '--json', str(out_json), '--roc', str(out_png)],
        capture_output=True, text=True, timeout=120,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert 'Accuracy-Flip' in lines[0] and 'VAL@FAR=1e-3' in lines[0]
    rows = json.loads(out_json.read_text())
    assert [(r['epoch'], r['target']) for r in rows] == [(1, 'tiny'), (2, 'tiny')]
    assert len(lines) == 4 and '%1.5f+-%1.5f' % (rows[0]['acc_mean'], rows[0]['acc_std']) \
        in lines[2]
    # near-duplicate pairs vs random pairs: even random weights separate them
    assert rows[0]['acc_mean'] > 0.8 and rows[0]['num_pairs'] == 20
    assert out_png.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    # the same numbers in-process from the library call
    net = Network.load(tiny_model + ',1')
    direct = bin_sets.evaluate(net, str(tmp_path / 'tiny.bin'), batch_size=20)
    assert direct['acc_mean'] == pytest.approx(rows[0]['acc_mean'])
    assert direct['xnorm'] == pytest.approx(rows[0]['xnorm'], rel=1e-5)


def test_verification_cli_missing_target_lists_found_files(tmp_path, tiny_model, capsys):
    assert verification.main(['--model', tiny_model + ',1', '--data-dir', str(tmp_path),
                              '--target', 'tiny,lfw']) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    assert 'lfw.bin' in err and 'tiny.bin' in err


def test_cal_threshold_cli_and_load_threshold(tmp_path, tiny_model, capsys):
    out = tmp_path / 'thr.json'
    record = cal_threshold.run(cal_threshold.parse_args(['--model', tiny_model + ',1', '--data-dir', str(tmp_path),
                                 '--target', 'tiny', '--far', '0.1', '--nfolds', '2',
                                 '--best-acc', '--out', str(out)]))
    saved = json.loads(out.read_text())
    assert saved['model'] == tiny_model + ',1' and saved['far'] == 0.1
    assert len(saved['per_fold']) == 2
    assert saved['threshold'] == pytest.approx(np.mean(saved['per_fold']))
    assert cal_threshold.load_threshold(str(out)) == record['threshold']
    assert cal_threshold.load_threshold(str(out), 'best_acc_threshold') == \
        saved['best_acc_threshold']
    assert 'threshold at FAR=0.1' in capsys.readouterr().out
    # the threshold is what val_far_folds finds on the same distances
    net = Network.load(tiny_model + ',1')
    images, issame = bin_sets.load_target(str(tmp_path / 'tiny.bin'))
    emb, _ = embedding.embed_pairs(net, images, 8, flip=False)
    folds = protocol.val_far_folds(emb, issame, 0.1, nfolds=2)
    assert saved['per_fold'] == pytest.approx(folds['thresholds'].tolist())
    bad = tmp_path / 'bad.json'
    bad.write_text('{"far": 0.001}')
    with pytest.raises(ValueError, match='bad.json'):
        cal_threshold.load_threshold(str(bad))


def test_lfw_folder_and_pairs(tmp_path, tiny_model):
    rng = np.random.default_rng(5)
    root = tmp_path / 'lfw'
    people = {}
    for p in range(4):
        name = 'Person_%d' % p
        os.makedirs(root / name)
        base = rng.integers(0, 256, (16, 20, 3), dtype=np.uint8)  # not the input size: cropped
        people[name] = base
        for k in (1, 2):
            img = np.clip(base.astype(int) + rng.integers(-8, 9, base.shape), 0, 255)
            cv2.imwrite(str(root / name / ('%s_%04d.jpg' % (name, k))), img.astype(np.uint8))
    lines = ['10\t2']
    for s in range(10):
        a, b = 'Person_%d' % (s % 4), 'Person_%d' % ((s + 1) % 4)
        lines += ['%s\t1\t2' % a, '%s\t1\t%s\t2' % (a, b)]
    lines.append('Nobody\t1\t2')  # missing: skipped
    (root / 'pairs.txt').write_text('\n'.join(lines) + '\n')
    images, issame, skipped = lfw.load_lfw(str(root), str(root / 'pairs.txt'), (12, 12))
    assert images.shape == (40, 12, 12, 3) and skipped == 1
    assert issame.tolist() == [True, False] * 10
    row = lfw.run(lfw.parse_args(['--model', tiny_model + ',1', '--lfw-dir', str(root),
                                  '--image-size', '12,12', '--batch-size', '16']))
    assert row['skipped_pairs'] == 1 and row['num_pairs'] == 20 and row['acc_mean'] > 0.8


def test_ytf_splits_and_mean_video_embedding(tmp_path):
    rng = np.random.default_rng(6)
    root = tmp_path / 'ytf' / 'images'
    colours = {}
    for p in range(3):
        for v in range(2):
            folder = root / ('P%d' % p) / str(v)
            os.makedirs(folder)
            colours[(p, v)] = []
            for f in range(5):
                img = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
                cv2.imwrite(str(folder / ('frame.%d.png' % f)), img)
                colours[(p, v)].append(img[..., ::-1].reshape(-1).astype(float))
    lines = ['split number, pair number, first name, second name, ground truth, is the same']
    for s in range(1, 3):
        for q in range(5):
            p = (s + q) % 3
            if q % 2 == 0:
                lines.append('%d, %d, P%d/0, P%d/1, 1, 1' % (s, q, p, p))
            else:
                lines.append('%d, %d, P%d/0, P%d/1, 0, 0' % (s, q, p, (p + 1) % 3))
    splits = tmp_path / 'ytf' / 'splits.txt'
    splits.write_text('\n'.join(lines) + '\n')
    pairs = ytf.read_splits(str(splits))
    assert len(pairs) == 10 and pairs[1] == (1, 'P2/0', 'P0/1', False)
    assert ytf.frame_paths(str(root), 'P0/0', max_frames=3)[-1].endswith('frame.4.png')

    def embed(x):  # flattened HWC pixels: the video embedding is computable by hand
        return x.transpose(0, 2, 3, 1).reshape(len(x), -1)
    emb, frame_xnorm = ytf.video_embeddings(embed, str(root), ['P1/1'], (8, 8), 2)
    frames = np.array(colours[(1, 1)])
    expected = (frames / np.linalg.norm(frames, axis=1, keepdims=True)).mean(0)
    np.testing.assert_allclose(emb['P1/1'], expected / np.linalg.norm(expected), rtol=1e-5)
    assert frame_xnorm == pytest.approx(np.linalg.norm(frames, axis=1).mean(), rel=1e-5)
    res = ytf.evaluate_ytf(embed, str(root), str(splits), (8, 8), 4, max_frames=2)
    assert res['num_pairs'] == 10 and len(res['accuracy']) == 2  # the two splits are folds


@pytest.mark.parametrize('module', ['verification', 'cal_threshold', 'lfw', 'ytf'])
def test_help(module, capsys):
    with pytest.raises(SystemExit) as exc:
        getattr(sys.modules['eval.' + module], 'main')(['--help'])
    assert exc.value.code == 0 and '--model' in capsys.readouterr().out


def test_an_output_the_size_of_logits_is_warned(tmp_path, tiny_model, caplog):
    """issue 18.6: a model whose output looks like class logits (here 6-d, as an ONNX classifier
    stripped of its metadata would be) is not verified silently as if it were an embedding."""
    import logging
    with caplog.at_level(logging.WARNING):
        verification.run(verification.parse_args(['--model', tiny_model + ',1', '--data-dir',
                                                   str(tmp_path), '--target', 'tiny']))
    assert 'gives 6-d outputs: that looks like class logits' in caplog.text
