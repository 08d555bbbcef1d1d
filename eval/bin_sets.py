"""Verification pair sets: InsightFace ``.bin`` files as decoded images, with the project's one
image-size rule (an explicit --image-size resizes, logged; otherwise DATA_DIR/property's size
must be theirs)."""
import logging
import os
from collections import OrderedDict

import numpy as np

from eval.embedding import as_embed_fn, evaluate_images
from src.errors import one_line

log = logging.getLogger(__name__)


def load_target(bin_path, image_size=None, resize=False, expected_from=None):
    """A ``.bin`` file -> (images uint8 (2N, H, W, 3) RGB, issame bool (N,)).

    ``image_size`` (H, W): the size the model expects (``expected_from`` says where that comes
    from, for the error). Images of another size are an error naming both sizes, unless
    ``resize`` (an explicit --image-size): then they are resized, with a warning in the log.
    """
    from data.bin_format import ImageSizeError, decode_images, load_bin, stored_image_size
    bins, issame = load_bin(bin_path)
    try:
        images = decode_images(bins, image_size, resize=resize)
    except ImageSizeError as err:
        if image_size is None:
            raise ValueError('%s: images of different sizes (%s); pass --image-size H,W to '
                             'resize them' % (bin_path, err)) from None
        raise ValueError('%s holds %dx%d images but %s %dx%d (%s); pass --image-size H,W to '
                         'resize them' % (bin_path, err.found[0], err.found[1],
                                          expected_from or 'the model expects',
                                          err.expected[0], err.expected[1], err)) from None
    except ValueError as err:
        raise ValueError('%s: %s' % (bin_path, err)) from None
    if resize and image_size is not None and bins:
        stored = stored_image_size(bins)
        if stored != tuple(image_size):
            log.warning('%s: resized its %dx%d images to %dx%d (--image-size)', bin_path,
                        stored[0], stored[1], image_size[0], image_size[1])
    return images, np.asarray(issame, dtype=bool)


def load_targets(data_dir, names, image_size=None, resize=False, expected_from=None):
    """OrderedDict name -> (images, issame) from ``data_dir/<name>.bin`` (``load_target``'s
    size rules).

    A missing file raises FileNotFoundError listing the ``.bin`` files that are there.
    """
    if isinstance(names, str):
        names = [n for n in names.split(',') if n]
    paths = [(n, os.path.join(data_dir, n + '.bin')) for n in names]
    missing = [p for _, p in paths if not os.path.isfile(p)]
    if missing:
        found = sorted(f for f in os.listdir(data_dir) if f.endswith('.bin')) \
            if os.path.isdir(data_dir) else []
        raise FileNotFoundError('missing verification set(s) %s; %s has %s' % (
            ', '.join(missing), data_dir,
            ('these .bin files: ' + ', '.join(found)) if found else 'no .bin files'))
    return OrderedDict((n, load_target(p, image_size, resize, expected_from)) for n, p in paths)


def check_input_size(net, targets):
    """Runs the network on one image of each set: a size or channel count it does not take is
    a ValueError naming the set and what differs (instead of a shape error deep in MXNet or
    onnxruntime)."""
    embed = as_embed_fn(net)
    for name, (images, _) in targets.items():
        if not len(images):
            continue
        x = np.ascontiguousarray(images[:1].transpose(0, 3, 1, 2), dtype=np.float32)
        try:
            embed(x)
        except Exception as err:  # MXNet and onnxruntime raise their own error types
            raise ValueError(_mismatch(embed, name, x, err)) from None


def _mismatch(embed, name, x, err):
    """What the model does not take in ``x``: its channel count (when the same image with
    another count runs), else its size."""
    for channels in (1, 3):
        if channels == x.shape[1]:
            continue
        other = np.ascontiguousarray(np.repeat(x.mean(axis=1, keepdims=True), channels, 1))
        try:
            embed(other)
        except Exception:  # pylint: disable=broad-except  (not this channel count either)
            continue
        return ('%s.bin holds %d-channel images but the model takes %d-channel ones: a model '
                'of other data (check --model)' % (name, x.shape[1], channels))
    return ('%s.bin holds %dx%d images, which the model does not take (%s); pass --image-size '
            'H,W to resize them' % (name, x.shape[2], x.shape[3],
                                    one_line(err)[:200]))


def read_image_size(data_dir):
    """(H, W) from an InsightFace ``property`` file (``num_classes,H,W``), or None."""
    from data.face_rec import read_property
    path = os.path.join(data_dir, 'property')
    return read_property(path)[1] if os.path.isfile(path) else None


def image_size_rule(args):
    """(image_size, resize, expected_from) of an eval tool's --image-size and --data-dir:
    an explicit --image-size resizes the .bin images to it (logged); otherwise the size in
    DATA_DIR/property, if there is one, must be theirs; otherwise their stored size is used."""
    if args.image_size:
        return tuple(args.image_size), True, '--image-size'
    size = read_image_size(args.data_dir)
    return size, False, ('%s says' % os.path.join(args.data_dir, 'property')) if size else None


def evaluate(network_or_fn, bin_path, batch_size, nfolds=10, image_size=None, resize=False):
    """``verification_metrics`` of a network on one ``.bin`` file (``load_target``'s size
    rules)."""
    images, issame = load_target(bin_path, image_size, resize)
    return evaluate_images(network_or_fn, images, issame, batch_size, nfolds)
