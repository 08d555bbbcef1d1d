"""A trained network loaded for evaluation: embeddings or logits, in inference mode.

``Network.block`` is a Gluon SymbolBlock for inference. Input gradients must NOT be recorded on
it with ``autograd.record(train_mode=False)``: with MKL-DNN, MXNet 1.9.1 returns wrong input
gradients through max-pooling in that mode. Use ``eval.attacks.gradient_block`` (the same graph
with batch-norm on moving statistics and no dropout, recorded with ``train_mode=True``), as the
attacks and the MTER adversary do.
Works on this project's checkpoints (``embedding_output`` / ``fc7_output``) and on stock
InsightFace ones (``fc1_output``).
"""
import os

import numpy as np
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

from src.checkpoint import is_onnx, load_model
from symbols import find_embedding
from symbols.common import has_embedding, name_embedding
from symbols.graph import Transform, rebuild

OUTPUTS = ('embedding', 'logits')


def _logits_output(sym):
    internals = sym.get_internals()
    if 'fc7_output' not in internals.list_outputs():
        raise ValueError('the checkpoint symbol has no fc7_output: it has no classifier head')
    return internals['fc7_output']


def output_symbol(symbol, output='embedding'):
    """The part of a checkpoint symbol that ends in ``output`` ('embedding' or 'logits')."""
    if output not in OUTPUTS:
        raise ValueError('output must be one of %s, got %r' % (OUTPUTS, output))
    return find_embedding(symbol) if output == 'embedding' else _logits_output(symbol)


def _inference_options(ctx):
    """hybridize() options for inference: on the CPU, MKL-DNN's graph fusions (convolution +
    batch-norm, as MXNet's executors apply them) and static shapes: 2.2x the speed of a plain
    static_alloc block for MobileFaceNet (17.6 -> 8.0 ms per image here)."""
    if ctx.device_type == 'cpu' and mx.runtime.Features().is_enabled('MKLDNN') and \
            os.environ.get('MXNET_MKLDNN_ENABLED', '1') != '0':
        return dict(backend='MKLDNN', static_alloc=True, static_shape=True)
    return dict(static_alloc=True, static_shape=True)


class Network:
    def __init__(self, symbol, arg_params, aux_params, output='embedding', ctx=None):
        out = output_symbol(symbol, output)
        self.ctx = ctx or mx.cpu()
        self.output = output
        self.block = mx.gluon.SymbolBlock(out, mx.sym.var('data', dtype='float32'))
        params = self.block.collect_params()
        given = dict(arg_params)
        given.update(aux_params)
        missing = [k for k in params.keys() if k not in given]
        if missing:
            raise ValueError('checkpoint lacks parameters %s' % ', '.join(sorted(missing)[:8]))
        for name, param in params.items():
            param._load_init(given[name], self.ctx)  # pylint: disable=protected-access
        self.block.hybridize(static_alloc=True)
        self._fast = None    # (image shape, block): see __call__

    @classmethod
    def load(cls, spec, output='embedding', ctx=None):
        """``spec`` is 'prefix,epoch', or an ONNX file (imported into MXNet, so that attacks
        can differentiate it; its output is the embedding)."""
        symbol, arg, aux = load_model(spec)
        if is_onnx(spec) and not has_embedding(symbol):
            symbol = name_embedding(symbol)
        return cls(symbol, arg, aux, output=output, ctx=ctx)

    def __call__(self, x):
        """NDArray (N, C, H, W) in the network's pixel range -> NDArray output (inference mode).

        Runs the graph rebuilt for the images' shape by ``symbols.graph`` (PReLU on fast
        operators, a Flatten before a FullyConnected fed by convolution + batch-norm), with the
        same parameters as ``self.block``."""
        shape = tuple(x.shape[1:])
        if self._fast is None or self._fast[0] != shape:
            out = self.block(mx.sym.var('data'))
            fast = rebuild(out, Transform(out, (1,) + shape))
            block = mx.gluon.SymbolBlock(fast, mx.sym.var('data', dtype='float32'),
                                         params=self.block.collect_params())
            block.hybridize(**_inference_options(self.ctx))
            self._fast = (shape, block)
        return self._fast[1](x.as_in_context(self.ctx))

    def predict(self, images, batch_size=256):
        """NumPy (N, C, H, W) -> NumPy outputs, batched (the last batch may be partial)."""
        outs = []
        for start in range(0, len(images), batch_size):
            x = mx.nd.array(images[start:start + batch_size], ctx=self.ctx)
            outs.append(self(x).asnumpy())
        return np.concatenate(outs) if outs else np.zeros((0,))
