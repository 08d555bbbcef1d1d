"""An exported face model (fresnet r18, head E, 112x112) as InsightFace users run it: the
``insightface`` package loads it as a recognition model (ArcFaceONNX) and gives this project's
embeddings on the same aligned images. requirements.txt installs insightface 2.1 (Python >= 3.10)
or 0.7.3 (3.8, 3.9); InsightFace's input convention is also checked with onnxruntime alone."""
import onnx
import pytest

from eval.model import Network
from eval.onnx_model import OnnxNetwork
from deploy.export_onnx import export_onnx
from deploy.parity import relative_error
from tests.deploy_helpers import assert_parity, face_images, make_checkpoint, nchw

FACE = (3, 112, 112)


@pytest.fixture(scope='module')
def face_model(tmp_path_factory):
    """(path of the exported r18 E model, its MXNet Network, aligned RGB uint8 faces). The
    checkpoint has the stock InsightFace layout: the embedding is only ``fc1_output``."""
    symbol, arg, aux = make_checkpoint('r18', FACE, loss_type=4, emb_size=64, seed=3, stock=True)
    assert 'embedding_output' not in symbol.get_internals().list_outputs()
    path = str(tmp_path_factory.mktemp('face') / 'r18.onnx')
    report = export_onnx(symbol, arg, aux, path)
    assert report['output'] == 'embedding' and report['output_shape'] == ['N', 64]
    assert report['fix_gamma_reset'] == ['fc1_gamma']
    return path, Network(symbol, arg, aux), face_images(4, seed=7)


def test_onnxruntime_matches_mxnet_on_batches_of_4_and_1(face_model):
    path, net, faces = face_model
    assert_parity(OnnxNetwork(path), net, nchw(faces))
    model = onnx.load(path)
    assert [(o.domain, o.version) for o in model.opset_import] == [('', 13)]
    dims = [[d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (model.graph.input[0], model.graph.output[0])]
    assert dims == [['N', 3, 112, 112], ['N', 64]]
    assert [i.name for i in model.graph.input] == ['data']    # weights are not inputs


def test_insightface_input_convention_with_onnxruntime_alone(face_model):
    """InsightFace feeds recognition models (image - mean) / std, with mean 0 and std 1 when
    one of the first 8 nodes is named Sub*/_minus* and one Mul*/_mul* (the MXNet-era models,
    which normalise inside the graph), else mean = std = 127.5. The exported graph must be
    read as normalising itself: otherwise faces would be normalised twice."""
    path, net, faces = face_model
    first = [n.name for n in onnx.load(path).graph.node[:8]]
    assert any(n.startswith(('Sub', '_minus')) for n in first), first
    assert any(n.startswith(('Mul', '_mul')) for n in first), first

    onnx_net = OnnxNetwork(path)
    x = nchw(faces)                        # RGB, 0..255, NCHW: InsightFace's blob with mean 0
    want = net.predict(x)
    assert relative_error(onnx_net(x), want) <= 1e-4
    # normalising outside as well would be a different function (so the check above can fail)
    assert relative_error(onnx_net((x - 127.5) / 127.5), want) > 1e-2


def test_insightface_package_loads_it_as_a_recognition_model(face_model):
    insightface = pytest.importorskip('insightface')
    from insightface.model_zoo import get_model
    from insightface.model_zoo.arcface_onnx import ArcFaceONNX
    path, net, faces = face_model
    model = get_model(path, providers=['CPUExecutionProvider'])
    assert isinstance(model, ArcFaceONNX) and model.taskname == 'recognition'
    assert (model.input_mean, model.input_std, model.input_size) == (0.0, 1.0, (112, 112))
    model.prepare(ctx_id=-1)

    want = net.predict(nchw(faces))
    bgr = [face[:, :, ::-1].copy() for face in faces]     # insightface takes OpenCV (BGR) images
    got = model.get_feat(bgr)
    assert got.shape == want.shape
    assert relative_error(got, want) <= 1e-4, insightface.__version__
    assert relative_error(model.get_feat(bgr[0]), want[:1]) <= 1e-4
