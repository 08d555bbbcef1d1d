"""Fine-tuning any InsightFace-style model by its own graph (``--network checkpoint``): the same
first training steps as the named network, from a checkpoint and from an ONNX file; every family
through deploy/export_onnx.py and back through MXNet's ONNX importer; clear errors."""
import os

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import onnx
import pytest
from onnx import helper

import ad_face
from data.synthetic import make_synthetic
from deploy.export_onnx import export_onnx
from eval.model import Network
from src.checkpoint import load_params, save_checkpoint
from src.onnx_import import import_onnx
from symbols import get_embedding
from symbols.graph import stock_prelu
from tests.conftest import assert_close_to_scale
from tests.deploy_helpers import make_checkpoint, random_params


@pytest.fixture(scope='module')
def faces(tmp_path_factory):
    out = tmp_path_factory.mktemp('faces112')
    make_synthetic(str(out), num_ids=6, per_id=4, image_size=(112, 112), num_pairs=8, seed=0)
    return str(out)


@pytest.fixture(scope='module')
def stock_y1(tmp_path_factory):
    """A y1 checkpoint as InsightFace saves one: LeakyReLU PReLUs, embedding fc1_output, no
    classifier; and its ONNX export."""
    folder = tmp_path_factory.mktemp('y1')
    emb, _ = get_embedding('y1', emb_size=128)
    symbol = stock_prelu(emb.get_internals()['fc1_output'])
    arg, aux = random_params(symbol, (3, 112, 112), seed=3)
    prefix = str(folder / 'model')
    save_checkpoint(prefix, 0, symbol, arg, aux)
    path = str(folder / 'model.onnx')
    export_onnx(symbol, arg, aux, path, output='embedding', input_shape=(3, 112, 112))
    return prefix, path


def _finetune(faces, prefix, network, pretrained):
    ad_face.main(['--data-dir', faces, '--target', '', '--network', network,
                  '--emb-size', '128', '--main-per-batch-size', '6',
                  '--adv-per-batch-size', '4', '--adv-round', '2', '--max-steps', '2',
                  '--lr', '0.01', '--verbose', '0', '--prefix', prefix, '--pretrained',
                  pretrained, '--seed', '0'])
    return load_params(prefix, 0)


def test_checkpoint_network_trains_like_the_named_one(tmp_path, faces, stock_y1):
    prefix, onnx_path = stock_y1
    named, _ = _finetune(faces, str(tmp_path / 'named' / 'm'), 'y1', prefix + ',0')
    generic, _ = _finetune(faces, str(tmp_path / 'generic' / 'm'), 'checkpoint', prefix + ',0')
    start, _ = load_params(prefix, 0)
    moved = [n for n in start if np.abs(named[n].asnumpy() - start[n].asnumpy()).max() > 1e-6]
    assert len(moved) > 100                       # two steps (attack included) moved the backbone
    assert set(generic) == set(named)
    for name in named:
        assert_close_to_scale(generic[name].asnumpy(), named[name].asnumpy(), 1e-4, what=name)


def test_an_onnx_model_fine_tunes_with_its_constants_fixed(tmp_path, faces, stock_y1):
    """The same model as an ONNX file: its graph is ONNX's (e.g. every batch-norm has a
    trainable scale there), so the steps are not the named network's; what must hold is that
    it trains, and that the importer's constants (the input's mean and scale) stay fixed."""
    prefix, onnx_path = stock_y1
    start, _ = load_params(prefix, 0)
    from_onnx, _ = _finetune(faces, str(tmp_path / 'onnx' / 'm'), 'checkpoint', onnx_path)
    moved = [n for n in start
             if n in from_onnx and np.abs(from_onnx[n].asnumpy() - start[n].asnumpy()).max() > 1e-6]
    assert len(moved) > 100
    assert all(np.isfinite(v.asnumpy()).all() for v in from_onnx.values())
    consts = sorted(n for n in from_onnx if n.startswith('scalar_op'))
    assert [float(from_onnx[n].asscalar()) for n in consts] == [127.5, 0.0078125]


FAMILIES = [('y1', (3, 112, 112), {}), ('r18', (3, 112, 112), dict(version_output='GDC')),
            ('r18', (3, 112, 112), {}), ('s8', (1, 28, 28), {}), ('tla', (1, 28, 28), {}),
            ('l', (1, 28, 28), {})]


@pytest.mark.parametrize('network,shape,kwargs', FAMILIES)
def test_every_family_goes_to_onnx_and_back(tmp_path, network, shape, kwargs):
    """export_onnx, then MXNet's importer (src.onnx_import): the same embedding as the
    checkpoint, loadable as an evaluation network."""
    symbol, arg, aux = make_checkpoint(network, shape, emb_size=64, **kwargs)
    path = str(tmp_path / 'm.onnx')
    export_onnx(symbol, arg, aux, path, output='embedding', input_shape=shape)
    images = np.random.RandomState(0).rand(3, *shape).astype(np.float32) * \
        (255 if shape[0] == 3 else 1)
    want = Network(symbol, arg, aux).predict(images)
    assert_close_to_scale(Network.load(path).predict(images), want, 1e-4)
    imported, iarg, iaux = import_onnx(path)
    assert set(arg) - set(iarg) <= {n for n in arg if n.startswith('fc7')}


def test_unknown_onnx_operator_is_named(tmp_path):
    node = helper.make_node('GridSample', ['data', 'data'], ['out'])
    graph = helper.make_graph([node], 'g', [helper.make_tensor_value_info('data', 1, [1, 4])],
                              [helper.make_tensor_value_info('out', 1, [1, 4])])
    path = str(tmp_path / 'odd.onnx')
    onnx.save(helper.make_model(graph), path)
    with pytest.raises(ValueError, match=r'odd\.onnx uses ONNX operators .* no translation '
                                         r'for: GridSample'):
        import_onnx(path)
    with open(str(tmp_path / 'junk.onnx'), 'wb') as f:
        f.write(b'not a model')
    with pytest.raises(ValueError, match=r'junk\.onnx is not a readable ONNX model'):
        import_onnx(str(tmp_path / 'junk.onnx'))


def test_checkpoint_network_needs_pretrained(faces, tmp_path):
    with pytest.raises(ValueError, match='--network checkpoint builds the network from'):
        ad_face.main(['--data-dir', faces, '--target', '', '--network', 'checkpoint',
                      '--prefix', str(tmp_path / 'm')])
