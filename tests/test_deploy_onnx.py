"""deploy/export_onnx.py: onnxruntime computes what MXNet computes, for every network family,
with a dynamic batch axis; the exporter's traps are real and handled; a failed check writes
nothing. "Within 1e-4" is max|onnx - mxnet| / max|mxnet| (relative to the output's scale)."""
import json
import os
import subprocess
import sys

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from deploy import export_onnx as exporter
from deploy import graph_prep, onnx_fixes
from deploy.parity import relative_error
from eval.model import Network, output_symbol
from eval.onnx_model import OnnxNetwork, load_network
from tests.deploy_helpers import (STORED_FIX_GAMMA, assert_parity, face_images,
                                  fix_gamma_names, float64_outputs, make_checkpoint, nchw)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL_FACE = (3, 32, 32)
MNIST = (1, 28, 28)


@pytest.fixture(scope='module')
def digits():
    """Real 28x28 digits in [0, 1] (scikit-learn's, as the MNIST-format tests use)."""
    from data.mnist import load_digits_28
    return load_digits_28().test_x[:4].astype(np.float32)


def export(tmp_path, symbol, arg, aux, name='m.onnx', **kwargs):
    path = str(tmp_path / name)
    report = exporter.export_onnx(symbol, arg, aux, path, **kwargs)
    return path, report


def test_r18_gdc_at_112(tmp_path):
    """MobileFaceNet's GDC head (depthwise 7x7 conv on the 7x7 map: needs 112x112)."""
    shape = (3, 112, 112)
    symbol, arg, aux = make_checkpoint('r18', shape, loss_type=4, version_output='GDC')
    path, report = export(tmp_path, symbol, arg, aux)
    assert report['input_shape'] == ['N', 3, 112, 112]    # the default for 3-channel nets
    assert_parity(OnnxNetwork(path), Network(symbol, arg, aux), nchw(face_images(4)))


@pytest.mark.parametrize('kwargs', [
    # pre-activation units, squeeze-excitation, bn_data (fix_gamma) on raw pixels, PReLU on the
    # 2-D embedding (head D); post-activation units, ReLU and global pooling are plain ops that
    # the MNIST-format networks below cover
    dict(version_unit=2, version_se=1, version_input=2, version_output='D'),
])
def test_fresnet_variants(tmp_path, kwargs):
    """Judged against MXNet in float64: with squeeze-excitation, MXNet's own float32 result is
    up to ~7e-5 (relative) off it here, onnxruntime's ~1.3e-5."""
    symbol, arg, aux = make_checkpoint('r18', SMALL_FACE, loss_type=4, **kwargs)
    path, _ = export(tmp_path, symbol, arg, aux, input_shape=SMALL_FACE)
    onnx_net = OnnxNetwork(path)
    images = nchw(face_images(4, SMALL_FACE[1:]))
    for batch in (images, images[:1]):
        exact = float64_outputs(symbol, arg, aux, 'embedding', batch)
        assert relative_error(onnx_net(batch), exact) <= 1e-4


@pytest.mark.parametrize('network,loss_type,normalized,output', [
    ('s8', 0, False, 'logits'),
    ('s8', 0, False, 'embedding'),
    ('o18', 4, False, 'logits'),     # ArcFace head: L2Normalization of weights and embedding
    ('l', 0, True, 'logits'),        # LeNet, normalised softmax: L2Normalization on the embedding
    ('l', 0, False, 'embedding'),
    ('tla', 0, False, 'logits'),     # TLA's CNN (ad_tla.py); Madry's wrn: checked by hand (slow)
])
def test_mnist_format_networks(tmp_path, digits, network, loss_type, normalized, output):
    symbol, arg, aux = make_checkpoint(network, MNIST, loss_type=loss_type,
                                       normalized_softmax=normalized)
    kwargs = {} if output == 'logits' else {'output': 'embedding'}   # logits: the default
    path, report = export(tmp_path, symbol, arg, aux, **kwargs)
    assert report['output'] == output and report['input_shape'] == ['N', 1, 28, 28]
    assert bool(report['l2_normalizations']) == (output == 'logits' and
                                                 (loss_type == 4 or normalized))
    assert_parity(OnnxNetwork(path, output=output), Network(symbol, arg, aux, output=output),
                  digits)


def test_fix_gamma_trap(tmp_path, digits):
    """MXNet computes a fix_gamma BatchNorm with gamma = 1 whatever is stored; the exporter
    exports the stored value. s8's bn_data stores 2.5 here."""
    symbol, arg, aux = make_checkpoint('s8', MNIST)
    assert fix_gamma_names(symbol) == ['bn_data_gamma']
    assert arg['bn_data_gamma'].asnumpy().min() == STORED_FIX_GAMMA
    net = Network(symbol, arg, aux, output='embedding')
    with_one = dict(arg, bn_data_gamma=mx.nd.ones_like(arg['bn_data_gamma']))
    unit_gamma = Network(symbol, with_one, aux, output='embedding')
    np.testing.assert_array_equal(net.predict(digits), unit_gamma.predict(digits))

    # the exporter as it is: the stored gamma goes into the file, onnxruntime differs
    out = output_symbol(symbol, 'embedding')
    params = {k: v for k, v in dict(arg, **aux).items()
              if k in out.list_arguments() + out.list_auxiliary_states()}
    raw = str(tmp_path / 'raw.onnx')
    mx.onnx.export_model(out, params, [(1,) + MNIST], np.float32, raw)
    # only the opset label fixed (newer onnx packages label opsets newer onnxruntime knows)
    model = onnx.load(raw)
    onnx_fixes.label_opset(model)
    onnx.save(model, raw)
    session = ort.InferenceSession(raw, providers=['CPUExecutionProvider'])
    raw_out = session.run(None, {'data': digits[:1]})[0]
    assert relative_error(raw_out, net.predict(digits[:1])) > 1e-2

    path, report = export(tmp_path, symbol, arg, aux, output='embedding')
    assert report['fix_gamma_reset'] == ['bn_data_gamma']
    stored = {i.name: numpy_helper.to_array(i) for i in onnx.load(path).graph.initializer}
    assert np.all(stored['bn_data_gamma'] == 1)
    assert_parity(OnnxNetwork(path), net, digits)


def test_failed_check_writes_nothing(tmp_path, monkeypatch):
    """With the fix_gamma fix disabled the check sees the difference, and the file at --out
    (an older one here) is left as it was; no temporary file stays behind."""
    symbol, arg, aux = make_checkpoint('s8', MNIST)
    out = tmp_path / 'm.onnx'
    out.write_bytes(b'older file')

    def stored_params(sym, arg_params, aux_params, source):
        given = dict(arg_params, **aux_params)
        return {n: given[n] for n in sym.list_arguments() + sym.list_auxiliary_states()
                if n != 'data'}, []
    monkeypatch.setattr(graph_prep, 'inference_params', stored_params)
    with pytest.raises(exporter.CheckFailed) as failure:
        exporter.export_onnx(symbol, arg, aux, str(out), check=True)
    assert all(f['relative'] > f['tolerance'] == 1e-4 for f in failure.value.figures)
    assert [f['batch'] for f in failure.value.figures] == [4, 1]
    assert out.read_bytes() == b'older file'
    assert sorted(os.listdir(tmp_path)) == ['m.onnx']


def test_check_figures(tmp_path):
    symbol, arg, aux = make_checkpoint('l', MNIST)
    _, report = export(tmp_path, symbol, arg, aux, check=True, check_batch=3)
    figures = report['check']
    assert [f['batch'] for f in figures] == [3, 1]
    for f in figures:
        assert f['ok'] and f['relative'] <= f['tolerance'] == 1e-4
        assert f['relative'] == pytest.approx(f['max_abs_diff'] / f['max_abs_reference'])
        assert f['max_abs_reference'] > 1


def test_onnx_network_refuses_the_other_output(tmp_path):
    symbol, arg, aux = make_checkpoint('l', MNIST)
    path, _ = export(tmp_path, symbol, arg, aux)    # MNIST-format: logits
    assert OnnxNetwork(path, output='logits').metadata['mter.output'] == 'logits'
    with pytest.raises(ValueError, match='holds the logits, not the embedding'):
        load_network(path, output='embedding')


def test_input_shape_that_does_not_fit_is_refused(tmp_path):
    symbol, arg, aux = make_checkpoint('l', MNIST)
    with pytest.raises(ValueError, match='fc1_weight has shape'):
        exporter.export_onnx(symbol, arg, aux, str(tmp_path / 'm.onnx'), input_shape=(1, 32, 32))
    assert not os.listdir(tmp_path)


def test_cli_as_script_and_module(tmp_path, digits):
    """python deploy/export_onnx.py from another folder exports and checks; -m works too."""
    prefix = str(tmp_path / 's8' / 'model')
    os.makedirs(os.path.dirname(prefix))
    make_checkpoint('s8', MNIST, prefix=prefix)
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'deploy', 'export_onnx.py'),
                           '--model', prefix + ',0', '--out', 'm.onnx', '--check',
                           '--json', 'report.json'], cwd=str(tmp_path), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'wrote m.onnx: data Nx1x28x28 -> logits Nx10 (opset 13)' in done.stdout
    assert 'check batch 4: ' in done.stdout and 'check batch 1: ' in done.stdout
    assert 'bn_data_gamma' in done.stdout
    with open(str(tmp_path / 'report.json')) as f:
        report = json.load(f)
    assert [c['ok'] for c in report['check']] == [True, True]
    assert OnnxNetwork(str(tmp_path / 'm.onnx'), output='logits')(digits).shape == (4, 10)

    as_module = subprocess.run([sys.executable, '-m', 'deploy.export_onnx', '--help'],
                               cwd=str(tmp_path), capture_output=True, text=True, timeout=300)
    assert as_module.returncode == 0 and '--check-images' in as_module.stdout


def test_cli_errors_name_the_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        exporter.main(['--model', str(tmp_path / 'nowhere' / 'model') + ',3', '--out',
                       str(tmp_path / 'x.onnx')])
    assert stop.value.code == 2
    assert str(tmp_path / 'nowhere' / 'model-symbol.json') in capsys.readouterr().err
    assert not os.listdir(str(tmp_path))


def test_boolean_attributes_in_other_spellings(tmp_path, digits):
    """MXNet reads global_pool='1' as true; the exporter compares with the string 'True'."""
    symbol, arg, aux = make_checkpoint('s8', MNIST)
    doc = json.loads(symbol.tojson())
    pools = [n for n in doc['nodes'] if n['op'] == 'Pooling']
    assert [p['attrs']['global_pool'] for p in pools] == ['True']
    pools[0]['attrs']['global_pool'] = '1'
    respelled = mx.sym.load_json(json.dumps(doc))
    path, _ = export(tmp_path, respelled, arg, aux)
    assert_parity(OnnxNetwork(path, output='logits'),
                  Network(respelled, arg, aux, output='logits'), digits)


def test_dropout_applied_at_inference_is_refused(tmp_path):
    data = mx.sym.var('data')
    body = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), name='conv0')
    body = mx.sym.Dropout(mx.sym.flatten(body), p=0.5, mode='always', name='drop')
    symbol = mx.sym.identity(body, name='embedding')
    arg = {'conv0_weight': mx.nd.ones((4, 1, 3, 3)), 'conv0_bias': mx.nd.zeros((4,))}
    with pytest.raises(ValueError, match='Dropout drop has mode=always'):
        exporter.export_onnx(symbol, arg, {}, str(tmp_path / 'm.onnx'), output='embedding')
    assert not os.listdir(str(tmp_path))


def test_mean_over_axes_exports(tmp_path):
    """The exporter checks its own graph against the newest opset onnx knows, where ReduceMean
    takes its axes as an input, and so rejected its own opset-13 ReduceMean(axes=...) (a per-image
    standardisation, as the CIFAR-10 wide ResNet's, is such a mean)."""
    data = mx.sym.var('data')
    body = mx.sym.Convolution(data, num_filter=4, kernel=(3, 3), name='conv0')
    mean = mx.sym.mean(body, axis=(1, 2, 3), keepdims=True)
    body = mx.sym.broadcast_sub(body, mean)
    symbol = mx.sym.identity(mx.sym.flatten(body), name='embedding')
    rng = np.random.RandomState(0)
    arg = {'conv0_weight': mx.nd.array(rng.normal(0, 0.3, (4, 3, 3, 3))),
           'conv0_bias': mx.nd.array(rng.normal(0, 0.3, (4,)))}
    path, _ = export(tmp_path, symbol, arg, {}, input_shape=(3, 8, 8))
    assert 'ReduceMean' in [n.op_type for n in onnx.load(path).graph.node]
    images = rng.uniform(0, 255, (4, 3, 8, 8)).astype(np.float32)
    assert_parity(OnnxNetwork(path), Network(symbol, arg, {}), images)
