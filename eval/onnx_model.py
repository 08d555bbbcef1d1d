"""An exported ONNX model run by onnxruntime, loaded for evaluation like ``eval.model.Network``.

``load_network(spec)`` is what the evaluation tools call: a path ending in ``.onnx`` gives an
``OnnxNetwork``, anything else ("prefix,epoch") an ``eval.model.Network``. Both take float32
(N, C, H, W) batches in the network's pixel range (faces: RGB 0..255, the normalisation is inside
the graph) and give embeddings or logits; ``predict`` batches NumPy arrays. ``OnnxNetwork``
returns NumPy arrays (``eval.embedding.as_embed_fn`` accepts both), and it has no gradients:
the attacks need an MXNet ``Network``.

Files written by ``deploy/export_onnx.py`` say in their metadata (``mter.output``) whether they
hold the embedding or the logits; asking for the other one is an error. Other ONNX files (e.g.
InsightFace's) are taken as holding what is asked for.
"""
import os

import numpy as np

ONNX_SUFFIX = '.onnx'
OUTPUT_KEY = 'mter.output'    # metadata written by deploy/export_onnx.py


def is_onnx_path(spec):
    """True when a --model value names an ONNX file rather than a 'prefix,epoch' checkpoint."""
    return str(spec).lower().endswith(ONNX_SUFFIX)


def session_options():
    """onnxruntime options: as many intra-op threads as OMP_NUM_THREADS says (when set), so
    that onnxruntime shares the machine like MXNet does."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    threads = os.environ.get('OMP_NUM_THREADS', '').strip()
    if threads.isdigit() and int(threads) > 0:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    return options


def _import_onnxruntime(path):
    try:
        import onnxruntime
    except ImportError:
        raise ImportError('running %s needs onnxruntime: pip install -r requirements.txt' % path)
    return onnxruntime


class OnnxNetwork:
    """One-input, one-output ONNX network on onnxruntime's CPU provider."""

    def __init__(self, path, output='embedding'):
        from eval.model import OUTPUTS
        if output not in OUTPUTS:
            raise ValueError('output must be one of %s, got %r' % (OUTPUTS, output))
        if not os.path.isfile(path):
            raise FileNotFoundError('no ONNX model %s' % path)
        ort = _import_onnxruntime(path)
        try:
            self.session = ort.InferenceSession(path, sess_options=session_options(),
                                                providers=['CPUExecutionProvider'])
        except Exception as err:  # onnxruntime raises its own exception types
            raise ValueError('%s is not a model onnxruntime can load: %s'
                             % (path, str(err).splitlines()[0])) from None
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 1:
            raise ValueError('%s: expected one NCHW input and one output, got inputs %s and '
                             'outputs %s' % (path, [(i.name, i.shape) for i in inputs],
                                             [o.name for o in outputs]))
        meta = self.session.get_modelmeta().custom_metadata_map
        exported = meta.get(OUTPUT_KEY)
        if exported and exported != output:
            raise ValueError('%s holds the %s, not the %s (export it with --output %s)'
                             % (path, exported, output, output))
        self.path, self.output, self.metadata = path, output, dict(meta)
        self.input_name, self.output_name = inputs[0].name, outputs[0].name
        shape = inputs[0].shape
        self.batch = shape[0] if isinstance(shape[0], int) else None   # None: any batch size
        self.input_shape = tuple(d if isinstance(d, int) else None for d in shape[1:])

    def _run(self, x):
        return self.session.run([self.output_name], {self.input_name: x})[0]

    def __call__(self, x):
        """NumPy or NDArray (N, C, H, W) -> NumPy output. A model with a fixed batch size gets
        the images in chunks of that size (the last one padded, the padding dropped)."""
        x = x.asnumpy() if hasattr(x, 'asnumpy') else x
        x = np.ascontiguousarray(x, dtype=np.float32)
        expected = self.input_shape
        if x.ndim != 4 or any(e is not None and e != d for e, d in zip(expected, x.shape[1:])):
            raise ValueError('%s expects input (N, %s), got %s' % (
                self.path, ', '.join('?' if d is None else str(d) for d in expected),
                (x.shape,)))
        if self.batch is None or len(x) == self.batch:
            return self._run(x)
        outs = []
        for start in range(0, len(x), self.batch):
            chunk = x[start:start + self.batch]
            count = len(chunk)
            if count < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - count, 0)])
            outs.append(self._run(chunk)[:count])
        return np.concatenate(outs)

    def predict(self, images, batch_size=256):
        """NumPy (N, C, H, W) -> NumPy outputs, batched (the last batch may be partial)."""
        outs = [self(images[start:start + batch_size])
                for start in range(0, len(images), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0,))


def load_network(spec, output='embedding', ctx=None):
    """An ``OnnxNetwork`` for 'model.onnx', else ``eval.model.Network.load(spec)`` for
    'prefix,epoch' (``ctx`` is MXNet's; onnxruntime runs on the CPU)."""
    if is_onnx_path(spec):
        return OnnxNetwork(spec, output=output)
    from eval.model import Network
    return Network.load(spec, output=output, ctx=ctx)
