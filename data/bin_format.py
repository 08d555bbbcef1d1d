"""InsightFace verification ``.bin`` files: read, write and decode.

A ``.bin`` file is a pickle of the 2-tuple ``(bins, issame_list)``: ``bins[2*i]`` and
``bins[2*i + 1]`` are the two encoded images (JPEG/PNG bytes) of pair ``i`` and
``issame_list[i]`` says whether they show the same identity.  Files written by the original
Python 2 tools hold the images as Python 2 ``str``; Python 3 can only read those with
``encoding='bytes'``.  Some files hold the images as numpy ``uint8`` arrays of the encoded bytes.

``.bin`` files come from model zoos and shared drives, so they are read with the restricted
unpickler of ``data.safe_pickle``: only lists, tuples, bools, bytes/str and numpy uint8 (or
bool) arrays are admitted; a file asking for anything else (a ``__reduce__`` payload) is
refused with an error naming the file and the global, before any of it runs.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import pickle

import numpy as np

from runtime.atomic import atomic_write

from .safe_pickle import UnsafePickleError, restricted_loads

__all__ = ['save_bin', 'load_bin', 'decode_images', 'stored_image_size', 'ImageSizeError']


def save_bin(path, bins, issame_list):
    """Write ``(bins, issame_list)`` as a protocol-2 pickle (readable by Python 2 too).

    The file is written to a temporary file in the same folder and moved into place, so a
    reader never sees a half-written file.
    """
    bins = [_as_bytes(b, path, i) for i, b in enumerate(bins)]
    issame_list = [bool(s) for s in issame_list]
    _check_lengths(path, bins, issame_list)

    def write(tmp_path):
        with open(tmp_path, 'wb') as f:
            pickle.dump((bins, issame_list), f, protocol=2)
    atomic_write(path, write)


def load_bin(path):
    """Read a verification ``.bin`` -> ``(bins: list of bytes, issame: list of bool)``.

    Accepts Python 3 pickles and Python 2 ones; images may be bytes or numpy uint8 arrays.
    Raises ValueError naming ``path`` for anything that is not such a file, and
    ``data.safe_pickle.UnsafePickleError`` (a ValueError) for a pickle that asks for anything
    outside the allow-list (nothing of it is run).
    """
    with open(path, 'rb') as f:
        raw = f.read()
    content = None
    errors = []
    # Python 3 first; a Python 2 pickle holding `str` images fails (UnicodeDecodeError) or
    # yields text, so fall back to encoding='bytes', which keeps every str as bytes.
    for encoding in ('ASCII', 'bytes'):
        try:
            content = restricted_loads(raw, path, encoding=encoding)
        except UnsafePickleError:
            raise
        except Exception as exc:  # pickle raises many kinds of errors on bad input
            errors.append('%s: %s' % (type(exc).__name__, exc))
            continue
        if _looks_valid(content):
            break
    if content is None:
        raise ValueError('%s: not a readable pickle of (bins, issame_list) (%s)'
                         % (path, '; '.join(errors)))
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        raise ValueError('%s: expected a pickled 2-tuple (bins, issame_list), got %s'
                         % (path, _describe(content)))
    bins, issame = content
    if not isinstance(bins, (list, tuple)) or not isinstance(issame, (list, tuple, np.ndarray)):
        raise ValueError('%s: expected (list of encoded images, list of bools), got (%s, %s)'
                         % (path, _describe(bins), _describe(issame)))
    bins = [_as_bytes(b, path, i) for i, b in enumerate(bins)]
    issame = [bool(s) for s in issame]
    _check_lengths(path, bins, issame)
    return bins, issame


def decode_images(bins, image_size=None, resize=False):
    """Decode encoded images -> uint8 array (N, H, W, 3), RGB.

    Decoding is MXNet's ``mx.image.imdecode``, as InsightFace's loader (so JPEG pixels match
    the published numbers).  ``image_size`` = (H, W): every image must have that size (a
    ValueError names the first that does not), or, with ``resize``, images of another size are
    resized (bilinear).  Without ``image_size`` every image must have the size of the first
    one.  An undecodable entry raises ValueError naming its index.
    """
    import cv2
    import mxnet as mx
    out = None
    for i, b in enumerate(bins):
        raw = _as_bytes(b, '<images>', i)
        try:
            img = mx.image.imdecode(raw, flag=1, to_rgb=True).asnumpy() if raw else None
        except mx.base.MXNetError:
            img = None
        if img is None or img.ndim != 3 or img.shape[2] != 3:
            raise ValueError('image %d of %d: cannot decode (%d bytes; expected JPEG/PNG)'
                             % (i, len(bins), len(raw)))
        if out is None:
            size = tuple(image_size) if image_size is not None else img.shape[:2]
            out = np.empty((len(bins), size[0], size[1], 3), dtype=np.uint8)
        if img.shape[:2] != out.shape[1:3]:
            if not resize:
                raise ImageSizeError('image %d is %dx%d, expected %dx%d%s' % (
                    i, img.shape[0], img.shape[1], out.shape[1], out.shape[2],
                    '' if image_size is not None else ' (the size of image 0)'),
                    img.shape[:2], out.shape[1:3])
            img = cv2.resize(img, (out.shape[2], out.shape[1]), interpolation=cv2.INTER_LINEAR)
        out[i] = img
    if out is None:
        h, w = image_size if image_size is not None else (0, 0)
        out = np.empty((0, h, w, 3), dtype=np.uint8)
    return out


class ImageSizeError(ValueError):
    """An image of another size than expected; ``found`` and ``expected`` are (H, W)."""

    def __init__(self, message, found, expected):
        super().__init__(message)
        self.found, self.expected = tuple(found), tuple(expected)


def stored_image_size(bins):
    """(H, W) of the first encoded image (None for an empty list)."""
    return tuple(decode_images(bins[:1]).shape[1:3]) if len(bins) else None


def _looks_valid(content):
    """True if the bins of a loaded tuple are bytes/arrays (not text decoded from Python 2)."""
    if not isinstance(content, (tuple, list)) or len(content) != 2:
        return False
    bins = content[0]
    return isinstance(bins, (list, tuple)) and all(
        isinstance(b, (bytes, bytearray, np.ndarray)) for b in bins)


def _as_bytes(item, path, index):
    if isinstance(item, (bytes, bytearray)):
        return bytes(item)
    if isinstance(item, np.ndarray) and item.dtype == np.uint8:
        return item.tobytes()
    raise ValueError('%s: image %d is %s; expected bytes or a numpy uint8 array of encoded '
                     'image bytes' % (path, index, _describe(item)))


def _check_lengths(path, bins, issame):
    if len(bins) % 2:
        raise ValueError('%s: odd number of images (%d); expected two per pair'
                         % (path, len(bins)))
    if len(bins) != 2 * len(issame):
        raise ValueError('%s: %d images for %d pairs; expected exactly 2 images per pair'
                         % (path, len(bins), len(issame)))


def _describe(obj):
    if isinstance(obj, np.ndarray):
        return 'numpy %s array of shape %s' % (obj.dtype, obj.shape)
    if isinstance(obj, (list, tuple)):
        return '%s of length %d' % (type(obj).__name__, len(obj))
    return type(obj).__name__
