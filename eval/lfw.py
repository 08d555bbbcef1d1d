"""LFW verification from the raw folder and the standard ``pairs.txt``.

Layout: ``LFW_DIR/<Name>/<Name>_<NNNN>.<ext>``.  ``pairs.txt``: a header line (``10 300``),
then ``Name n1 n2`` (same person) or ``Name1 n1 Name2 n2`` (different) lines, 10 sets of 600
pairs in order, which become the 10 folds.  Pairs with a missing image are skipped and
counted, as in the original ``src/eval/lfw.py``.

Assumption (as the original's): the images are already aligned face crops (e.g. the 112x112
ArcFace alignment).  This tool does no detection or alignment: an image whose size differs from
the network input is centre-cropped to the input's aspect ratio and resized, which is only
meaningful for aligned crops.  Metrics: ``eval.verification`` (image+flip, 10 folds).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import os
import sys

import numpy as np

from eval import cli
from eval.embedding import evaluate_images
from eval.verification import format_table


def read_image(path, image_size):
    """RGB uint8 (H, W, 3) of ``path``, centre-cropped to the aspect of and resized to
    ``image_size`` (H, W) when its size differs."""
    import cv2
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError('%s: cannot read the image' % path)
    img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    h, w = img.shape[:2]
    th, tw = image_size
    if (h, w) == (th, tw):
        return img
    # the largest centred window with the target aspect ratio
    if h * tw > w * th:
        ch, cw = max(1, int(round(w * th / tw))), w
    else:
        ch, cw = h, max(1, int(round(h * tw / th)))
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    img = img[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if ch > th else cv2.INTER_LINEAR
    return cv2.resize(img, (tw, th), interpolation=interp)


def read_pairs(pairs_path):
    """Lines of ``pairs.txt`` as lists of fields (the header line dropped)."""
    pairs = []
    with open(pairs_path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) <= 2 and all(x.isdigit() for x in fields):
                continue  # header: number of sets, pairs per set
            if len(fields) not in (3, 4):
                raise ValueError('%s:%d: expected "name n1 n2" or "name1 n1 name2 n2", got %r'
                                 % (pairs_path, lineno, line.strip()))
            pairs.append(fields)
    return pairs


def pair_paths(lfw_dir, pairs, ext='jpg'):
    """-> (paths: 2 per kept pair, issame list, number of pairs skipped for missing files)."""
    def path(name, number):
        return os.path.join(lfw_dir, name, '%s_%04d.%s' % (name, int(number), ext))
    paths, issame, skipped = [], [], 0
    for p in pairs:
        if len(p) == 3:
            a, b, same = path(p[0], p[1]), path(p[0], p[2]), True
        else:
            a, b, same = path(p[0], p[1]), path(p[2], p[3]), False
        if os.path.isfile(a) and os.path.isfile(b):
            paths += [a, b]
            issame.append(same)
        else:
            skipped += 1
    return paths, issame, skipped


def load_lfw(lfw_dir, pairs_path, image_size, ext='jpg'):
    """-> (images uint8 (2N, H, W, 3), issame bool (N,), skipped pair count)."""
    paths, issame, skipped = pair_paths(lfw_dir, read_pairs(pairs_path), ext)
    if not paths:
        raise FileNotFoundError('no pair of %s has both images under %s (expected '
                                '<Name>/<Name>_NNNN.%s)' % (pairs_path, lfw_dir, ext))
    images = np.stack([read_image(p, image_size) for p in paths])
    return images, np.asarray(issame, dtype=bool), skipped


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='LFW verification accuracy from the aligned image folder and pairs.txt '
                    '(images must already be aligned face crops; no detection is done).')
    cli.add_model_args(parser, 'checkpoint "prefix,epoch" or an exported .onnx file',
                       batch_size=32, image_size=True)
    parser.set_defaults(image_size=(112, 112))
    parser.add_argument('--lfw-dir', required=True, help='folder of <Name>/<Name>_NNNN.<ext>')
    parser.add_argument('--pairs', default=None, help='pairs.txt (default: LFW_DIR/pairs.txt)')
    parser.add_argument('--ext', default='jpg', help='image file extension (default jpg)')
    parser.add_argument('--nfolds', type=int, default=10, help='cross-validation folds')
    parser.add_argument('--json', default=None, help='write the results here')
    return parser.parse_args(argv)


def run(args):
    """The LFW row of --model (images read, resized to --image-size, embedded with flips)."""
    runtime.setup_logging(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    from eval.onnx_model import is_onnx_path, load_network
    from src.checkpoint import parse_model_spec
    pairs_path = args.pairs or os.path.join(args.lfw_dir, 'pairs.txt')
    # an exported .onnx model has no epoch
    prefix, epoch = (args.model, None) if is_onnx_path(args.model) else \
        parse_model_spec(args.model)
    images, issame, skipped = load_lfw(args.lfw_dir, pairs_path, args.image_size, args.ext)
    net = load_network(args.model, output='embedding', ctx=cli.parse_ctx(args.ctx, args.gpu))
    if skipped:
        logging.warning('skipped %d pairs with a missing image', skipped)
    result = evaluate_images(net, images, issame, args.batch_size, args.nfolds)
    row = dict(model=prefix, epoch=epoch, target='lfw', skipped_pairs=skipped, **result)
    cli.print_rows([row], args.json, format_table)
    return row


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
