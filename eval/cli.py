"""What every eval/ command-line tool shares: model, context and data flags, the AutoAttack
budget flags, loading a model with a check that it computes, error reporting and exit codes.

Exit codes (every tool): 0 ok; 2 bad input (one line ``error: ...`` naming the flag or file
and what was expected); 3 a sanity check failed under ``--strict``. A traceback only for a
bug, followed by a line saying so. Each tool is ``parse_args(argv)`` + ``run(args)`` (which
returns the tool's results, for programs and tests) + ``main(argv) = cli.main(parse_args, run,
argv)`` (which returns the exit code).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import json
import math
import os
import re
import sys

import numpy as np

from data.build_rec import parse_image_size
from eval.registry import Budget
from src.args import NON_NEGATIVE_INT, POSITIVE_INT
from src import errors
from src.checkpoint import is_onnx, parse_model_spec

class SanityFailed(Exception):
    """A sanity check failed and ``--strict`` was given (exit code 3); the report is out."""


def main(parse_args, run, argv=None):
    """Exit code of one tool run (src.errors' convention): parse (argparse exits 2 itself),
    run, map errors: a user error one line and 2, a failed check under --strict 3, a bug its
    traceback, a line saying so, and 1."""
    args = parse_args(argv)

    def call(_):
        try:
            run(args)
        except SanityFailed as err:
            sys.stderr.write('sanity checks failed (--strict): %s\n' % err)
            return errors.EXIT_CHECK_FAILED
        return errors.EXIT_OK
    return errors.run_main(call)


# ----------------------------------------------------------------------------- flag types

def float_list(text):
    """argparse type: comma-separated finite non-negative numbers."""
    try:
        values = [float(v) for v in text.split(',') if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated numbers, got %r' % text)
    if not values or not all(math.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError('expected finite non-negative numbers, got %r' % text)
    return values


def choice_list(choices):
    """argparse type: comma-separated names from ``choices`` (case-insensitive, no repeats)."""
    def parse(text):
        names = [a.strip().lower() for a in text.split(',') if a.strip()]
        unknown = [a for a in names if a not in choices]
        if unknown or not names:
            raise argparse.ArgumentTypeError('unknown names %s: choose from %s'
                                             % (unknown, ','.join(choices)))
        return list(dict.fromkeys(names))
    return parse


def check_eps(parser, eps_list, pixel_range, flag='--eps'):
    """parser.error for a budget beyond the data's pixel range (nothing is left to attack)."""
    top = pixel_range[1] - pixel_range[0]
    beyond = [e for e in eps_list if e > top]
    if beyond:
        parser.error('%s %s: beyond the data\'s pixel range [%g, %g] (an eps of %g already '
                     'allows any image)' % (flag, ','.join('%g' % e for e in beyond),
                                            pixel_range[0], pixel_range[1], top))


# ----------------------------------------------------------------------------- flag groups

def add_model_args(parser, model_help, batch_size=32, image_size=False):
    """--model, --batch-size, --gpu/--ctx (and --image-size for .bin pair sets)."""
    parser.add_argument('--model', required=True, help=model_help)
    parser.add_argument('--batch-size', type=POSITIVE_INT, default=batch_size,
                        help='images per forward pass')
    if image_size:
        parser.add_argument('--image-size', type=parse_image_size, default=None,
                            help='H,W the .bin images are resized to (logged); default: they '
                                 'must have the size in DATA_DIR/property (if any; an error '
                                 'otherwise), else the stored size')
    parser.add_argument('--gpu', type=int, default=None, help='GPU id (default, or < 0: CPU)')
    parser.add_argument('--ctx', default=None,
                        help='context: cpu, gpu or gpu:N (overrides --gpu)')


def add_autoattack_args(parser, samples=False):
    """AutoAttack's budget flags (the reference's standard values by default), one group for
    every tool that runs its stages; ``budget(args)`` reads them."""
    g = parser.add_argument_group('AutoAttack', 'budgets of autoattack and its members; the '
                                  'defaults are the reference\'s standard settings')
    if samples:
        g.add_argument('--aa-samples', type=NON_NEGATIVE_INT, default=0,
                       help='run them on the first N of the images (0 = all; each row states '
                            'its image count)')
    reference = Budget()
    g.add_argument('--aa-iterations', type=POSITIVE_INT, default=reference.iterations,
                   help='iterations of APGD and FAB per run (reference: 100)')
    g.add_argument('--aa-targets', type=POSITIVE_INT, default=reference.targets,
                   help='target classes of apgd-t and fab-t (reference: 9)')
    g.add_argument('--aa-queries', type=NON_NEGATIVE_INT, default=reference.queries,
                   help='queries of square (reference: 5000)')
    g.add_argument('--aa-restarts', type=POSITIVE_INT, default=reference.restarts,
                   help='restarts of apgd (reference: 1)')
    return g


def budget(args):
    return Budget.from_args(args)


def parse_ctx(ctx=None, gpu=None):
    """MXNet context from --ctx ('cpu', 'gpu', 'gpu:1', 'gpu1') or --gpu N (N < 0: CPU)."""
    import mxnet as mx
    if ctx:
        m = re.match(r'^(cpu|gpu)(?::?(\d+))?$', ctx.strip())
        if not m:
            raise ValueError('expected --ctx cpu, gpu or gpu:N, got %r' % ctx)
        return mx.cpu() if m.group(1) == 'cpu' else mx.gpu(int(m.group(2) or 0))
    if gpu is not None and gpu >= 0:
        return mx.gpu(gpu)
    return mx.cpu()


# ----------------------------------------------------------------------------- models

def model_name(spec):
    """'models/run/model,3' -> 'model,3'; 'x/model.onnx' -> 'model.onnx' (tables, legends)."""
    if is_onnx(spec):
        return os.path.basename(spec)
    prefix, epoch = parse_model_spec(spec)
    return '%s,%d' % (os.path.basename(prefix), epoch)


def load_model(spec, output, ctx, probe):
    """An eval.model.Network of ``spec`` (prefix,epoch or .onnx), checked on ``probe`` (a few
    images of the data it will see): it must take their shape and give finite outputs, else
    a ValueError naming the checkpoint (a broken model must never pass a sanity check).
    ``probe`` None: the caller checks (after its own input-size check)."""
    from eval.model import Network
    net = Network.load(spec, output=output, ctx=ctx)
    if probe is not None:
        check_outputs(net, probe, spec)
    return net


def check_outputs(net, probe, spec):
    """ValueError naming ``spec`` when the network cannot take ``probe`` (N, C, H, W) or gives
    NaN or infinity on it."""
    probe = np.asarray(probe, dtype=np.float32)
    try:
        out = net.predict(probe, max(1, len(probe)))
    except Exception as err:  # MXNet raises its own error types for a shape it cannot take
        raise ValueError('%s cannot take the data\'s images (%s): %s' % (
            spec, 'x'.join(map(str, probe.shape[1:])),
            errors.mxnet_reason(str(err))[:300])) from None
    if not np.all(np.isfinite(out)):
        raise ValueError('%s gives non-finite outputs (NaN or infinity) on the first images: '
                         'its weights are broken (a diverged run?)' % spec)
    return out


def finish_checks(results, strict):
    """Prints the sanity checks' report (a loud banner per failure); under ``--strict`` a
    failed check raises SanityFailed (exit code 3), after the results were written."""
    from eval import sanity
    checks = results.get('checks', [])
    passed = sanity.report_checks([(c['name'], c['passed'], c['detail']) for c in checks])
    if strict and not passed:
        raise SanityFailed('%d of %d checks failed'
                           % (sum(not c['passed'] for c in checks), len(checks)))


def print_rows(rows, json_path, format_table):
    """Prints a table and writes the rows as JSON when asked."""
    print(format_table(rows))
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(rows, f, indent=1)
