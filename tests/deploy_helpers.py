"""Checkpoints with non-trivial parameters for the ONNX deployment tests (tests/test_deploy_*).

Parameters are drawn so that activations keep a sane scale (He-scaled weights), batch-norm
statistics and gammas are far from the identity, and every fix_gamma batch-norm's stored gamma
is 2.5: MXNet ignores it (it computes with 1), so an export that kept it would differ.
"""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from deploy.parity import relative_error
from src.checkpoint import save_checkpoint
from symbols import get_embedding
from symbols.heads import inference_symbol

STORED_FIX_GAMMA = 2.5


def fix_gamma_names(symbol):
    """Gamma inputs of the BatchNorms with fix_gamma (MXNet's default when the attribute is
    absent), read from the graph independently of deploy/."""
    nodes = json.loads(symbol.tojson())['nodes']
    names = []
    for node in nodes:
        if node['op'] == 'BatchNorm' and \
                node.get('attrs', {}).get('fix_gamma', 'True') in ('True', 'true', '1'):
            names.append(nodes[node['inputs'][1][0]]['name'])
    return names


def random_params(symbol, input_shape, seed=0):
    rng = np.random.RandomState(seed)
    arg_shapes, _, aux_shapes = symbol.infer_shape(data=(1,) + tuple(input_shape))
    arg = {}
    for name, shape in zip(symbol.list_arguments(), arg_shapes):
        if name == 'data':
            continue
        if name.endswith('_gamma'):
            value = rng.uniform(0.5, 1.5, shape)
        elif name.endswith('_weight') and len(shape) > 1:
            value = rng.normal(0, np.sqrt(2.0 / np.prod(shape[1:])), shape)
        else:
            value = rng.normal(0, 0.1, shape)
        arg[name] = mx.nd.array(value)
    for name in fix_gamma_names(symbol):
        arg[name] = mx.nd.full(arg[name].shape, STORED_FIX_GAMMA)
    aux = {name: mx.nd.array(rng.uniform(0.5, 1.5, shape) if name.endswith('_var')
                             else rng.normal(0, 0.2, shape))
           for name, shape in zip(symbol.list_auxiliary_states(), aux_shapes)}
    return arg, aux


def make_checkpoint(network, input_shape, loss_type=0, num_classes=10, emb_size=32, seed=0,
                    normalized_softmax=False, stock=False, prefix=None, **fresnet_args):
    """(symbol, arg, aux) of a checkpoint as ad_mnist.py / ad_face.py save it; ``stock``: the
    stock InsightFace layout (embedding only as ``fc1_output``); ``prefix``: also saved there
    as epoch 0."""
    emb, size = get_embedding(network, emb_size=emb_size, **fresnet_args)
    if stock:
        emb = emb.get_internals()['fc1_output']
    symbol = inference_symbol(emb, num_classes, size, loss_type,
                              normalized_softmax=normalized_softmax)
    arg, aux = random_params(symbol, input_shape, seed)
    if prefix:
        save_checkpoint(prefix, 0, symbol, arg, aux)
    return symbol, arg, aux


def face_images(count, size=(112, 112), seed=0):
    """uint8 RGB (count, H, W, 3) face-like images (data/synthetic.py's identities)."""
    from data.synthetic import identity_pattern, render_image
    rng = np.random.default_rng(seed)
    return np.stack([render_image(identity_pattern(rng, size), rng) for _ in range(count)])


def nchw(images, scale=1.0):
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) * \
        np.float32(scale)


def assert_parity(onnx_net, mxnet_net, images, tolerance=1e-4):
    """onnxruntime vs MXNet on the batch and on its first image alone (dynamic batch axis):
    max|a - b| / max|b| within ``tolerance``; returns the relative errors."""
    errors = []
    for batch in (images, images[:1]):
        got = onnx_net(batch)
        want = mxnet_net.predict(batch, batch_size=len(batch))
        assert got.shape == want.shape and len(got) == len(batch)
        assert np.abs(want).max() > 0
        errors.append(relative_error(got, want))
    assert max(errors) <= tolerance, errors
    return errors


def float64_outputs(symbol, arg, aux, output, x):
    """MXNet's inference in float64 (``output``: 'embedding' or 'logits'): the reference where
    MXNet's own float32 result is itself too far from the exact one to judge another engine."""
    from eval.model import output_symbol
    out = output_symbol(symbol, output)
    args = {n: arg[n].astype('float64') for n in out.list_arguments() if n != 'data'}
    args['data'] = mx.nd.array(x, dtype='float64')
    states = {n: aux[n].astype('float64') for n in out.list_auxiliary_states()}
    executor = out.bind(mx.cpu(), args, aux_states=states, grad_req='null')
    return executor.forward(is_train=False)[0].asnumpy()
