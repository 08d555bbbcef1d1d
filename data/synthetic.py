"""Synthetic face-like training set: K identities x M images plus verification ``.bin`` pairs.

Each identity is a fixed, distinct picture: a smooth colour field (a random 4x4 colour grid,
upsampled) with two coloured ellipses.  Every image of it is that picture under a random small
rotation, scale and shift, a brightness/contrast change and Gaussian pixel noise, so a small
network can learn the identities and same/different verification is meaningful but not trivial.
Identity k's picture depends only on (seed, k), not on how many identities are made.

Written: ``train.rec``, ``train.idx``, ``property`` (InsightFace layout, see data/build_rec.py)
and one ``<name>.bin`` per verification set, whose pairs come from held-out images of the
training identities (``heldout_ids=0``) or from extra identities absent from the training set.
Pairs alternate same/different (then the remainder), so 10-fold splits stay balanced.
"""
import argparse
import os

import cv2
import numpy as np

from data.bin_format import save_bin
from data.build_rec import encode_image, parse_image_size, write_rec

__all__ = ['make_synthetic', 'identity_pattern', 'render_image', 'draw_pairs', 'main']


def identity_pattern(rng, image_size):
    """The fixed picture of one identity: uint8 RGB (H, W, 3)."""
    height, width = image_size
    grid = rng.uniform(20, 235, size=(4, 4, 3)).astype(np.float32)
    base = np.clip(cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC), 0, 255)
    base = base.astype(np.uint8)
    for _ in range(2):
        centre = (int(rng.uniform(0.25, 0.75) * width), int(rng.uniform(0.25, 0.75) * height))
        axes = (max(1, int(rng.uniform(0.08, 0.25) * width)),
                max(1, int(rng.uniform(0.08, 0.25) * height)))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        cv2.ellipse(base, centre, axes, float(rng.uniform(0, 180)), 0, 360, colour, -1,
                    cv2.LINE_AA)
    return base


def render_image(pattern, rng, max_shift=0.06, max_rotation=10.0, max_scale=0.1, noise=8.0):
    """One image of an identity: ``pattern`` under random geometric and photometric jitter."""
    height, width = pattern.shape[:2]
    matrix = cv2.getRotationMatrix2D((width / 2.0, height / 2.0),
                                     rng.uniform(-max_rotation, max_rotation),
                                     1.0 + rng.uniform(-max_scale, max_scale))
    matrix[:, 2] += rng.uniform(-max_shift, max_shift, 2) * (width, height)
    img = cv2.warpAffine(pattern, matrix, (width, height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_REFLECT)
    img = img.astype(np.float32) * rng.uniform(0.85, 1.15) + rng.uniform(-12, 12)
    img += rng.normal(0, noise, img.shape)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def draw_pairs(pool, num_pairs, rng, same_fraction=0.5):
    """``[(image_a, image_b, issame)]`` from ``pool`` (list, per identity, of images).

    Same pairs: two different images of one identity; different pairs: images of two identities.
    Same and different pairs alternate while both remain.
    """
    num_same = int(round(num_pairs * same_fraction))
    num_diff = num_pairs - num_same
    multi = [k for k, images in enumerate(pool) if len(images) >= 2]
    if num_same and not multi:
        raise ValueError('same pairs need an identity with at least 2 held-out images')
    if num_diff and len(pool) < 2:
        raise ValueError('different pairs need at least 2 identities')
    kinds = []
    for i in range(max(num_same, num_diff)):
        kinds += [True] * (i < num_same) + [False] * (i < num_diff)
    pairs = []
    for same in kinds:
        if same:
            k = multi[rng.integers(len(multi))]
            a, b = rng.choice(len(pool[k]), 2, replace=False)
            pairs.append((pool[k][a], pool[k][b], True))
        else:
            k1, k2 = rng.choice(len(pool), 2, replace=False)
            pairs.append((pool[k1][rng.integers(len(pool[k1]))],
                          pool[k2][rng.integers(len(pool[k2]))], False))
    return pairs


def make_synthetic(out_dir, num_ids=10, per_id=20, image_size=(112, 112), num_pairs=100, seed=0,
                   bin_names=('lfw',), heldout_per_id=4, heldout_ids=0, same_fraction=0.5,
                   encoding='.jpg', quality=95):
    """Write the synthetic training set and verification .bin files in ``out_dir``.

    Returns a dict: ``data_dir``, ``bins`` ({name: path}), ``num_images``, ``num_ids``,
    ``num_pairs``.
    """
    image_size = tuple(int(v) for v in image_size)
    if num_ids < 1 or per_id < 1:
        raise ValueError('need num_ids >= 1 and per_id >= 1')
    held_out = []  # per identity: encoded images for the verification pairs

    def training_samples():
        for k in range(num_ids):
            rng = np.random.default_rng([seed, k])
            pattern = identity_pattern(rng, image_size)
            for _ in range(per_id):
                yield k, encode_image(render_image(pattern, rng), encoding, quality)
            if heldout_ids == 0:
                held_out.append([encode_image(render_image(pattern, rng), encoding, quality)
                                 for _ in range(heldout_per_id)])

    num_images, _ = write_rec(out_dir, training_samples(), image_size)
    for k in range(num_ids, num_ids + heldout_ids):
        rng = np.random.default_rng([seed, k])
        pattern = identity_pattern(rng, image_size)
        held_out.append([encode_image(render_image(pattern, rng), encoding, quality)
                         for _ in range(heldout_per_id)])
    bins = {}
    for b, name in enumerate(bin_names):
        rng = np.random.default_rng([seed, 1000003, b])
        pairs = draw_pairs(held_out, num_pairs, rng, same_fraction)
        path = os.path.join(out_dir, name + '.bin')
        save_bin(path, [img for a, c, _ in pairs for img in (a, c)], [s for _, _, s in pairs])
        bins[name] = path
    return dict(data_dir=out_dir, bins=bins, num_images=num_images, num_ids=num_ids,
                num_pairs=num_pairs)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.synthetic',
        description='Write a synthetic InsightFace-format training set (train.rec, train.idx, '
                    'property) of learnable identity patterns, with verification .bin pairs.')
    parser.add_argument('output', help='output folder')
    parser.add_argument('--num-ids', type=int, default=10, help='training identities (10)')
    parser.add_argument('--per-id', type=int, default=20, help='training images per identity (20)')
    parser.add_argument('--image-size', type=parse_image_size, default=(112, 112),
                        help='H,W (default 112,112)')
    parser.add_argument('--num-pairs', type=int, default=100, help='pairs per .bin (100)')
    parser.add_argument('--same-fraction', type=float, default=0.5,
                        help='fraction of same-identity pairs (0.5)')
    parser.add_argument('--bins', default='lfw',
                        help='comma-separated names of the .bin files to write (lfw)')
    parser.add_argument('--heldout-per-id', type=int, default=4,
                        help='images per identity kept out of training, for the pairs (4)')
    parser.add_argument('--heldout-ids', type=int, default=0,
                        help='if > 0: draw pairs from this many extra identities that are not '
                             'in the training set')
    parser.add_argument('--encoding', choices=['.jpg', '.png'], default='.jpg')
    parser.add_argument('--quality', type=int, default=95, help='JPEG quality (95)')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.bins.split(',') if n.strip()]
    info = make_synthetic(args.output, args.num_ids, args.per_id, args.image_size, args.num_pairs,
                          args.seed, names, args.heldout_per_id, args.heldout_ids,
                          args.same_fraction, args.encoding, args.quality)
    print('%s: %d images of %d identities; %s with %d pairs each'
          % (info['data_dir'], info['num_images'], info['num_ids'],
             ', '.join(sorted(info['bins'])), info['num_pairs']))


if __name__ == '__main__':
    main()
