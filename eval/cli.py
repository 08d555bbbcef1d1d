"""Small pieces shared by the eval/ command-line tools."""
import argparse
import json
import math
import os

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
