"""ad_face.py and its sampler on a synthetic InsightFace set made by data/synthetic.py."""
import logging
import re

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_face
from data.face_rec import FaceRecordSet
from data.synthetic import make_synthetic
from eval.model import Network
from src.batch import assemble_main_batch
from src.checkpoint import load_params, save_checkpoint
from src.face_sampler import IdentityStreamSampler
from symbols import get_embedding
from symbols.heads import inference_symbol

SIZE = (32, 32)


@pytest.fixture(scope='module')
def face_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp('faces')
    make_synthetic(str(out), num_ids=8, per_id=10, image_size=SIZE, num_pairs=40, seed=0)
    return out


def test_sampler_streams_are_disjoint_and_cover_every_image(face_dir):
    recset = FaceRecordSet(str(face_dir))
    sampler = IdentityStreamSampler(recset, sources=4, rng=np.random.RandomState(0),
                                    rand_mirror=False)
    id_of = {int(i): k for k, ids in enumerate(recset.identities) for i in ids}
    stream_ids = [{id_of[int(i)] for i in sampler.stream_a}, {id_of[int(i)] for i in sampler.stream_b}]
    assert not stream_ids[0] & stream_ids[1]
    assert len(sampler.stream_a) + len(sampler.stream_b) == recset.num_images
    batches = list(sampler)
    assert len(batches) == sampler.batches_per_epoch > 0
    for src, src_y, tar, tar_y in batches:
        assert src.shape == (4, 3) + SIZE and src.dtype == np.float32
        assert 0 <= src.min() and src.max() <= 255
        assert set(src_y) <= stream_ids[0] and set(tar_y) <= stream_ids[1]
    # the first batch's pixels are the records' decoded pixels (no mirror), channel first
    first = recset.read_batch(sampler.stream_a[:4]).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(batches[0][0], first.astype(np.float32))


@pytest.mark.parametrize('ctx_num', [1, 2])
def test_face_batch_layout_per_context(face_dir, ctx_num):
    recset = FaceRecordSet(str(face_dir))
    sampler = IdentityStreamSampler(recset, sources=4, rng=np.random.RandomState(1))
    src, src_y, tar, tar_y = next(sampler)
    adv = src + 1
    data, label = assemble_main_batch(src, tar, adv, src_y, tar_y, ctx_num)
    n = 4 // ctx_num
    for c in range(ctx_num):
        part = slice(c * n, (c + 1) * n)
        block = data[3 * n * c:3 * n * (c + 1)]
        np.testing.assert_array_equal(block[:n], src[part])
        np.testing.assert_array_equal(block[n:2 * n], tar[part])
        np.testing.assert_array_equal(block[2 * n:], adv[part])
        np.testing.assert_array_equal(label[3 * n * c:3 * n * (c + 1)],
                                      np.concatenate([src_y[part], tar_y[part], src_y[part]]))


def _stock_checkpoint(prefix, num_classes):
    """An InsightFace-style r18 checkpoint with its own fc7 of ``num_classes`` classes."""
    emb, d = get_embedding('r18', emb_size=64)
    sym = inference_symbol(emb, num_classes, d, 4)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None, context=mx.cpu())
    mod.bind([('data', (2, 3) + SIZE)], for_training=False)
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    save_checkpoint(prefix, 7, sym, arg, aux)
    return arg


def test_finetune_runs_verifies_and_saves(tmp_path, face_dir, caplog):
    pretrained = str(tmp_path / 'arcface')
    arg0 = _stock_checkpoint(pretrained, num_classes=1000)  # not the set's 8 classes
    prefix = str(tmp_path / 'mter')
    caplog.set_level(logging.INFO)
    ad_face.main(['--data-dir', str(face_dir), '--target', 'lfw', '--network', 'r18',
                  '--emb-size', '64', '--main-per-batch-size', '12', '--adv-per-batch-size', '8',
                  '--adv-round', '3', '--max-steps', '3', '--verbose', '2', '--lr', '0.01',
                  '--prefix', prefix, '--pretrained', pretrained + ',7', '--seed', '0'])
    loaded = re.search(r"(\d+) of the network's (\d+) parameters and states loaded, 0 "
                       r're-initialised \(shape mismatch\), 1 dropped, 0 missing', caplog.text)
    assert loaded and int(loaded.group(1)) == int(loaded.group(2)) - 1  # all but fc7
    assert re.search(r'dropped: fc7_weight$', caplog.text, re.M)
    losses = [float(x) for x in re.findall(r'softmaxloss=([-0-9.naninf]+)', caplog.text)]
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    accs = [float(x) for x in re.findall(r'\[lfw\]Accuracy-Flip: ([0-9.]+)', caplog.text)]
    assert len(accs) >= 2
    arg, _ = load_params(prefix, 0)
    assert arg['fc7_weight'].shape == (8, 64)
    assert set(arg) == set(arg0)
    net = Network.load(prefix + ',0')
    assert net.predict(np.zeros((2, 3) + SIZE, np.float32)).shape == (2, 64)


def test_pretrained_loads_everything_but_fc7(tmp_path, face_dir):
    pretrained = str(tmp_path / 'arcface')
    arg0 = _stock_checkpoint(pretrained, num_classes=1000)
    prefix = str(tmp_path / 'mter')
    ad_face.main(['--data-dir', str(face_dir), '--target', '', '--network', 'r18',
                  '--emb-size', '64', '--main-per-batch-size', '12', '--adv-per-batch-size', '8',
                  '--adv-round', '1', '--max-steps', '1', '--lr', '0', '--wd', '0',
                  '--prefix', prefix, '--pretrained', pretrained + ',7'])
    arg, _ = load_params(prefix, 0)
    for name, value in arg0.items():
        if name.startswith('fc7'):
            continue
        np.testing.assert_array_equal(arg[name].asnumpy(), value.asnumpy(), err_msg=name)


def test_missing_data_dir_is_a_clear_error():
    with pytest.raises(ValueError, match='--data-dir is required'):
        ad_face.main(['--network', 'r18'])
