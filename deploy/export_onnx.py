"""Export a checkpoint to ONNX with MXNet's own exporter, fixed so onnxruntime computes the same.

    python deploy/export_onnx.py --model models/r50/model,0 --out r50.onnx --check

The file has one input ``data`` (N, C, H, W) float32 with a dynamic batch axis N, in the pixel
range the network was trained on (faces: RGB 0..255, normalised inside the graph, as
InsightFace's MXNet-era models; MNIST-format networks: grey 0..1), and one output: the embedding
(faces' default: InsightFace's ``fc1``) or the logits (MNIST-format networks' default).
``--check`` compares onnxruntime with this project's MXNet inference (``eval.model.Network``)
on a batch and on its first image alone; above the tolerance the export fails and no file is
written (the file is written atomically: an older one at ``--out`` stays as it was).

The input shape must be the one the network was trained on: the shape a training run recorded
in its checkpoint (``src.checkpoint.recorded_image_shape``; also the default), else, for
checkpoints without the record, 1x28x28 for 1-channel (MNIST-format) networks; a shape the
graph cannot take at all is refused too. ``--out`` (and ``--json``) are checked before anything
is exported: a folder, a path below a regular file or a folder that cannot be written is a
one-line error.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import contextlib
import io
import json
import logging
import os
import sys
import tempfile

from deploy.parity import DEFAULT_TOLERANCE
from runtime.atomic import atomic_write

# MXNet, onnx and onnxruntime are imported where they are used, so that --help is instant


class CheckFailed(ValueError):
    """onnxruntime and MXNet differ by more than the tolerance; ``figures`` holds the numbers."""

    def __init__(self, message, figures):
        super().__init__(message)
        self.figures = figures


def _export_raw(symbol, params, input_shape, path):
    import mxnet as mx
    import mxnet.onnx  # noqa: F401  (registers mx.onnx)
    import numpy as np
    from deploy.onnx_fixes import checks_at_export_opset
    try:
        with checks_at_export_opset():
            mx.onnx.export_model(symbol, params, in_shapes=[(1,) + tuple(input_shape)],
                                 in_types=np.float32, onnx_file_path=path, dynamic=True,
                                 dynamic_input_shapes=[(None,) + tuple(input_shape)])
    except (AttributeError, NotImplementedError, KeyError, mx.base.MXNetError) as err:
        raise ValueError('mx.onnx.export_model cannot translate this network: %s'
                         % str(err).strip().split('\n')[0]) from None


MNIST_INPUT = (1, 28, 28)  # the input of every MNIST-format (1-channel) network here


def check_destination(path, flag='--out'):
    """Raises ValueError (one line) unless a file can be written at ``path``: not an existing
    folder, no regular file on the way, and the nearest existing folder writable (probed by
    creating and removing a temporary file there, which also catches read-only file systems
    and root's way around permissions)."""
    target = os.path.abspath(os.path.expanduser(str(path)))
    if os.path.isdir(target):
        raise ValueError('%s %s is a folder: give a file name, e.g. %s'
                         % (flag, path, os.path.join(str(path), 'model.onnx')))
    folder = os.path.dirname(target)
    existing = folder
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        raise ValueError('%s %s: %s is a file, not a folder, so nothing can be written below it'
                         % (flag, path, existing))
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise ValueError('%s %s: cannot write in %s (%s)'
                         % (flag, path, existing, err.strerror or err)) from None


def check_input_shape(symbol, input_shape, source='the checkpoint'):
    """Raises ValueError when ``input_shape`` (C, H, W) is not what the network was trained on:
    the shape recorded in its checkpoint, else 1x28x28 for a 1-channel (MNIST-format) network
    (the graph alone cannot tell: a fully convolutional network takes even 1x2x2)."""
    from src.checkpoint import recorded_image_shape
    shape = tuple(int(d) for d in input_shape)
    text = 'x'.join(map(str, shape))
    recorded = recorded_image_shape(symbol)
    if recorded is not None:
        if shape != recorded:
            raise ValueError('input shape %s does not fit %s: the network was trained on %s '
                             'images (recorded in its symbol file); pass --input-shape %s or '
                             'leave it out' % (text, source, 'x'.join(map(str, recorded)),
                                               ','.join(map(str, recorded))))
    elif shape[0] == MNIST_INPUT[0] and shape != MNIST_INPUT:
        raise ValueError('input shape %s does not fit %s: a 1-channel network here is an '
                         'MNIST-format one, trained on 1x28x28 images (the checkpoint records no '
                         'other); pass --input-shape 1,28,28 or leave it out' % (text, source))


def export_onnx(symbol, arg_params, aux_params, out, output='auto', input_shape=None,
                check=False, check_images=None, check_batch=4, tolerance=DEFAULT_TOLERANCE,
                seed=0, source='the checkpoint'):
    """Writes ``out``; returns a report dict (output, shapes, fixes applied, check figures).

    ``check_images``: NumPy float32 (B, C, H, W) in the network's pixel range for the check
    (default: ``check_batch`` random images). Raises CheckFailed (``out`` not written) when
    the check's relative error exceeds ``tolerance``."""
    from deploy import graph_prep, onnx_fixes
    from src.checkpoint import recorded_image_shape
    if input_shape is None:
        input_shape = recorded_image_shape(symbol) or \
            graph_prep.default_input_shape(symbol, arg_params)
    input_shape = tuple(int(d) for d in input_shape)
    graph_prep.refuse_untranslatable(symbol)
    out_sym, output = graph_prep.select_output(symbol, output, input_shape)
    params, reset = graph_prep.inference_params(out_sym, arg_params, aux_params, source)
    with contextlib.redirect_stdout(io.StringIO()):  # MXNet prints its arguments on a failure
        out_shape = graph_prep.output_shape(out_sym, params, input_shape, source)
    check_input_shape(symbol, input_shape, source)
    export_sym, l2norms = graph_prep.exportable_symbol(out_sym, input_shape)
    prelu = graph_prep.prelu_ranks(out_sym, input_shape)
    top = graph_prep.pixel_max(input_shape)
    report = dict(source=source, output=output, input_shape=['N'] + list(input_shape),
                  output_shape=['N'] + list(out_shape), pixel_range=[0, top],
                  opset=onnx_fixes.EXPORT_OPSET, fix_gamma_reset=reset,
                  prelu_reshaped=sorted(n for n, r in prelu.items() if r > 2),
                  l2_normalizations=[n for n, _, _ in l2norms], check=None)
    doc = ('input data: float32 (N, %s) in [0, %g]%s; output: %s (N, %s)' % (
        ', '.join(map(str, input_shape)), top,
        ', RGB, normalised inside the graph' if input_shape[0] == 3 else '', output,
        ', '.join(map(str, out_shape))))

    def write(tmp):
        import onnx
        _export_raw(export_sym, params, input_shape, tmp)
        model = onnx.load(tmp)
        try:
            onnx_fixes.finalize(model, input_shape, out_shape, prelu, l2norms, doc=doc,
                                props={'mter.output': output, 'mter.source': source,
                                       'mter.pixel_max': top})
        except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
            raise ValueError('the exported graph is not valid ONNX: %s'
                             % str(err).strip().split('\n')[0]) from None
        onnx.save(model, tmp)
        if check or check_images is not None:
            report['check'] = _check(tmp, symbol, arg_params, aux_params, output, input_shape,
                                     check_images, check_batch, tolerance, seed)

    atomic_write(out, write)
    return report


def _check(path, symbol, arg_params, aux_params, output, input_shape, images, batch, tolerance,
           seed):
    from deploy import graph_prep, parity
    from eval.model import Network
    from eval.onnx_model import OnnxNetwork
    if images is None:
        images = parity.random_images(input_shape, graph_prep.pixel_max(input_shape), batch,
                                      seed)
    reference = Network(symbol, arg_params, aux_params, output=output)
    try:
        figures = parity.compare(OnnxNetwork(path, output=output), reference, images, tolerance)
    except Exception as err:  # onnxruntime raises its own exception types
        raise CheckFailed('onnxruntime cannot run the exported graph: %s'
                          % str(err).splitlines()[0], []) from None
    failed = [f for f in figures if not f['ok']]
    if failed:
        raise CheckFailed('onnxruntime differs from MXNet by more than the tolerance:\n%s'
                          % parity.format_figures(figures), figures)
    return figures


def parse_shape(text):
    """'3,112,112' -> (3, 112, 112)."""
    try:
        dims = tuple(int(d) for d in text.replace('x', ',').split(',') if d.strip())
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError('expected an input shape C,H,W, e.g. 3,112,112; got %r'
                                         % text)
    return dims


def build_parser():
    parser = argparse.ArgumentParser(
        description='Export a checkpoint (prefix,epoch) to ONNX with mx.onnx.export_model, with '
                    'the fixes onnxruntime needs (fix_gamma batch-norm, PReLU slopes, '
                    'L2Normalization, opset label), a dynamic batch axis, and an optional check '
                    'against MXNet.')
    parser.add_argument('--model', required=True, help='checkpoint as prefix,epoch')
    parser.add_argument('--out', required=True, help='ONNX file to write')
    parser.add_argument('--output', choices=('auto', 'embedding', 'logits'), default='auto',
                        help='what the file computes; auto (default): the embedding (fc1) for '
                             '3-channel face networks, the logits for 1-channel MNIST-format ones')
    parser.add_argument('--input-shape', type=parse_shape, default=None,
                        help='C,H,W of the input, which must be what the network was trained '
                             'on (default: the shape the checkpoint records, else channels of '
                             'the first convolution; 112,112 for faces, 28,28 for MNIST-format '
                             'networks)')
    parser.add_argument('--check', action='store_true',
                        help='compare onnxruntime with MXNet on a batch and on one image; fail '
                             '(and write nothing) above --tolerance')
    parser.add_argument('--check-images', nargs='+', default=None, metavar='PATH',
                        help='images for the check (implies --check): image files, folders of '
                             'them (aligned crops for faces) or a .bin set; default: random')
    parser.add_argument('--check-batch', type=int, default=4,
                        help='images in the check batch (default %(default)s)')
    parser.add_argument('--tolerance', type=float, default=DEFAULT_TOLERANCE,
                        help='largest max|onnx-mxnet| / max|mxnet| accepted (default %(default)g)')
    parser.add_argument('--seed', type=int, default=0, help='seed of the random check images')
    parser.add_argument('--json', default=None, help='also write the report (figures) here')
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    runtime.setup_logging(level=logging.WARNING, format='%(message)s', stream=sys.stderr)
    if args.check_batch < 1:
        parser.error('--check-batch must be >= 1')
    from deploy import graph_prep, parity
    from src.checkpoint import load_checkpoint, parse_model_spec, recorded_image_shape
    try:
        check_destination(args.out)  # before anything is loaded or exported
        if args.json:
            check_destination(args.json, '--json')
        prefix, epoch = parse_model_spec(args.model)
        symbol, arg, aux = load_checkpoint(prefix, epoch)
        source = '%s,%d' % (os.path.basename(prefix), epoch)
        shape = args.input_shape or recorded_image_shape(symbol) or \
            graph_prep.default_input_shape(symbol, arg)
        check_input_shape(symbol, shape, source)
        images = None
        if args.check_images:
            images = parity.read_images(args.check_images, shape, graph_prep.pixel_max(shape),
                                        args.check_batch)
        report = export_onnx(symbol, arg, aux, args.out, output=args.output, input_shape=shape,
                             check=args.check, check_images=images,
                             check_batch=args.check_batch, tolerance=args.tolerance,
                             seed=args.seed, source=source)
    except CheckFailed as err:
        parser.exit(1, 'error: %s\n%s was not written%s\n' % (
            err, args.out, ' (the older file there is unchanged)'
            if os.path.exists(args.out) else ''))
    except (OSError, ValueError) as err:
        from src.errors import one_line
        parser.exit(2, 'error: %s\n' % one_line(err))
    print('wrote %s: %s %s -> %s %s (opset %d)' % (
        args.out, 'data', 'x'.join(map(str, report['input_shape'])), report['output'],
        'x'.join(map(str, report['output_shape'])), report['opset']))
    if report['fix_gamma_reset']:
        print('fix_gamma batch-norm gammas exported as 1 (MXNet ignores the stored value): %s'
              % ', '.join(report['fix_gamma_reset']))
    if report['check']:
        print(parity.format_figures(report['check']))
    if args.json:
        def dump(tmp):
            with open(tmp, 'w') as f:
                json.dump(report, f, indent=1)
        atomic_write(args.json, dump)
    return report


if __name__ == '__main__':
    main()
