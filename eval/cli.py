"""Small pieces shared by the eval/ command-line tools."""
import argparse
import json
import math
import os

from src.args import NON_NEGATIVE_INT, POSITIVE_INT
from src.checkpoint import parse_model_spec


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


def model_name(spec):
    """'models/run/model,3' -> 'model,3' (for tables and legends)."""
    prefix, epoch = parse_model_spec(spec)
    return '%s,%d' % (os.path.basename(prefix), epoch)


def print_rows(rows, json_path, format_table):
    """Prints the verification table and writes the rows as JSON when asked."""
    print(format_table(rows))
    if json_path:
        with open(json_path, 'w') as f:
            json.dump(rows, f, indent=1)


def add_autoattack_args(parser, targets=True, samples=False):
    """AutoAttack's budget flags (the reference's standard values by default), one group shared
    by the tools that run its stages."""
    g = parser.add_argument_group('AutoAttack', 'budgets of autoattack and its members; the '
                                  'defaults are the reference\'s standard settings')
    if samples:
        g.add_argument('--aa-samples', type=NON_NEGATIVE_INT, default=0,
                       help='run them on the first N of the images (0 = all; each row states '
                            'its image count)')
    g.add_argument('--aa-iterations', type=POSITIVE_INT, default=100,
                   help='iterations of APGD and FAB per run (reference: 100)')
    if targets:
        g.add_argument('--aa-targets', type=POSITIVE_INT, default=9,
                       help='target classes of apgd-t and fab-t (reference: 9)')
    g.add_argument('--aa-queries', type=NON_NEGATIVE_INT, default=5000,
                   help='queries of square (reference: 5000)')
    return g
