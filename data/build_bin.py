"""LFW-style ``pairs.txt`` + image folder -> verification ``.bin`` (InsightFace format).

``pairs.txt`` (the LFW standard): an optional header line of one or two integers (e.g. ``10 300``:
folds, pairs per fold), then one pair per line, whitespace-separated:
``name n1 n2`` (same person, images n1 and n2) or ``name1 n1 name2 n2`` (different people).
Image n of ``name`` is ``<images>/<name>/<name>_%04d.<ext>``.  The .bin holds the image files'
bytes (so the crops must already be aligned, e.g. 112x112), two per pair in file order, and the
same/different flags; with ``--image-size`` images of another size are resized and re-encoded.
"""
import argparse
import os
import sys

import cv2
import numpy as np

from data.bin_format import save_bin
from data.build_rec import encode_image, parse_image_size

__all__ = ['read_pairs', 'pair_image_paths', 'build_bin', 'main']


def read_pairs(path):
    """List of ``(name1, n1, name2, n2, issame)`` from an LFW-style pairs file."""
    pairs = []
    with open(path) as f:
        lines = [(number, line.split()) for number, line in enumerate(f, 1)]
    lines = [(number, fields) for number, fields in lines if fields]
    if lines and len(lines[0][1]) <= 2 and all(v.isdigit() for v in lines[0][1]):
        lines = lines[1:]  # header: number of folds and pairs per fold
    for number, fields in lines:
        try:
            if len(fields) == 3:
                pairs.append((fields[0], int(fields[1]), fields[0], int(fields[2]), True))
            elif len(fields) == 4:
                pairs.append((fields[0], int(fields[1]), fields[2], int(fields[3]), False))
            else:
                raise ValueError
        except ValueError:
            raise ValueError('%s line %d: expected "name n1 n2" or "name1 n1 name2 n2", got %r'
                             % (path, number, ' '.join(fields)[:120])) from None
    if not pairs:
        raise ValueError('%s: no pairs' % path)
    return pairs


def pair_image_paths(pairs, image_dir, ext='jpg'):
    """``(paths, issame)``: two image paths per pair (``<dir>/<name>/<name>_%04d.<ext>``)."""
    paths, issame = [], []
    for name1, n1, name2, n2, same in pairs:
        for name, n in ((name1, n1), (name2, n2)):
            paths.append(os.path.join(image_dir, name, '%s_%04d.%s' % (name, n, ext)))
        issame.append(same)
    return paths, issame


def build_bin(pairs_path, image_dir, output, ext='jpg', image_size=None, quality=95,
              skip_missing=False, log=None):
    """Write the .bin for ``pairs_path``; returns the number of pairs written.

    ``skip_missing``: leave out pairs with a missing image (as InsightFace's lfw.get_paths does)
    instead of failing.  ``image_size`` (H, W): resize and re-encode (JPEG) images of another size.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    paths, issame = pair_image_paths(read_pairs(pairs_path), image_dir, ext)
    bins, kept, skipped = [], [], 0
    for i, same in enumerate(issame):
        pair_paths = paths[2 * i:2 * i + 2]
        missing = [p for p in pair_paths if not os.path.isfile(p)]
        if missing:
            if skip_missing:
                skipped += 1
                continue
            raise FileNotFoundError('%s: image of pair %d in %s does not exist'
                                    % (missing[0], i + 1, pairs_path))
        bins.extend(_image_bytes(p, image_size, quality) for p in pair_paths)
        kept.append(same)
    if skipped:
        log('skipped %d pairs with missing images' % skipped)
    if not kept:
        raise ValueError('%s: no pair has both images under %s' % (pairs_path, image_dir))
    save_bin(output, bins, kept)
    return len(kept)


def _image_bytes(path, image_size, quality):
    with open(path, 'rb') as f:
        raw = f.read()
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
    if img is None:
        raise ValueError('%s: not a decodable image' % path)
    if image_size is None or img.shape[:2] == tuple(image_size):
        return raw
    img = cv2.resize(img, (image_size[1], image_size[0]), interpolation=cv2.INTER_AREA)
    return encode_image(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), '.jpg', quality)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.build_bin',
        description='Pack the image pairs of an LFW-style pairs.txt into an InsightFace '
                    'verification .bin (pickle of (encoded images, issame list)).')
    parser.add_argument('pairs', help='pairs.txt: optional header, then "name n1 n2" (same) and '
                                      '"name1 n1 name2 n2" (different) lines')
    parser.add_argument('images', help='folder holding <name>/<name>_<%%04d>.<ext> images')
    parser.add_argument('output', help='the .bin file to write (e.g. lfw.bin)')
    parser.add_argument('--ext', default='jpg', help='image file extension (default jpg)')
    parser.add_argument('--image-size', type=parse_image_size, default=None,
                        help='H,W: resize and re-encode images of another size (default: store '
                             'the files as they are)')
    parser.add_argument('--quality', type=int, default=95,
                        help='JPEG quality of re-encoded images (default 95)')
    parser.add_argument('--skip-missing', action='store_true',
                        help='leave out pairs with a missing image instead of failing')
    args = parser.parse_args(argv)
    count = build_bin(args.pairs, args.images, args.output, args.ext.lstrip('.'),
                      args.image_size, args.quality, args.skip_missing)
    print('%s: %d pairs' % (args.output, count))


if __name__ == '__main__':
    main()
