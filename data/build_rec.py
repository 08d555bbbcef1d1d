"""Image folder or ``.lst`` -> InsightFace training set: ``train.rec``, ``train.idx``, ``property``.

The record layout is the one InsightFace's face2rec2.py writes and its image_iter.py reads:
image records 1..N (grouped by identity, label = [class id, aligned flag]), then record 0, the
identity header, label = [N + 1, N + 1 + K], then identity records N + 1 .. N + K, label =
[first image id, end image id).  Payloads are encoded images (JPEG by default).

An image already of ``--image-size`` and in the output encoding is stored byte for byte (no
second JPEG loss) unless ``--reencode``; others are resized (aligned=1) or aligned with their five
landmarks onto the ArcFace template (aligned=0, see data/align.py) and encoded.  ``.lst`` lines
with aligned=0 and no landmarks are skipped, as face2rec2.py does.
"""
import argparse
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import cv2
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from data.align import align_face
from data.make_lst import read_lst, relabel, scan_folder

__all__ = ['encode_image', 'prepare_image', 'write_rec', 'build_rec', 'parse_image_size', 'main']

_SIGNATURES = {'.jpg': (b'\xff\xd8\xff',), '.png': (b'\x89PNG\r\n\x1a\n',)}


def parse_image_size(text):
    """'112,112', '112x112' or '112' -> (112, 112): the project's one image-size parser."""
    try:
        values = [int(v) for v in str(text).lower().replace('x', ',').split(',')]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) <= 0:
        raise argparse.ArgumentTypeError('image size must be "H,W" or "S" (positive integers), '
                                         'got %r' % (text,))
    return tuple(values)


def encode_image(img_rgb, encoding='.jpg', quality=95):
    """Encode a uint8 RGB (H, W, 3) image as JPEG (``quality`` 1-100) or PNG (lossless)."""
    if encoding not in _SIGNATURES:
        raise ValueError('encoding must be .jpg or .png, got %r' % (encoding,))
    params = ([cv2.IMWRITE_JPEG_QUALITY, int(quality)] if encoding == '.jpg'
              else [cv2.IMWRITE_PNG_COMPRESSION, 3])
    ok, buf = cv2.imencode(encoding, cv2.cvtColor(np.ascontiguousarray(img_rgb),
                                                  cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError('OpenCV could not encode an image of shape %s as %s'
                         % (np.shape(img_rgb), encoding))
    return buf.tobytes()


def prepare_image(item, image_size=(112, 112), encoding='.jpg', quality=95, reencode=False):
    """Encoded payload for one LstItem: the file's bytes, or a resized / aligned re-encoding."""
    try:
        with open(item.path, 'rb') as f:
            raw = f.read()
    except OSError as err:
        raise FileNotFoundError('%s: cannot read image (%s)' % (item.path, err.strerror)) from None
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
    if img is None:
        raise ValueError('%s: not a decodable image' % item.path)
    height, width = image_size
    if not item.aligned:
        if item.landmarks is None:
            raise ValueError('%s: aligned=0 but no landmarks to align with' % item.path)
        img = align_face(img, item.landmarks, image_size)
    elif img.shape[:2] != (height, width):
        shrink = img.shape[0] > height or img.shape[1] > width
        img = cv2.resize(img, (width, height),
                         interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    elif not reencode and raw.startswith(_SIGNATURES[encoding]):
        return raw
    return encode_image(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), encoding, quality)


def write_rec(out_dir, samples, image_size, num_classes=None, prefix='train'):
    """Write ``prefix.rec``/``prefix.idx`` and ``property`` in ``out_dir``.

    ``samples``: iterable of ``(label, payload)`` or ``(label, payload, aligned)`` whose labels
    run 0, 0, ..., 1, 1, ..., K-1 (grouped, consecutive, from 0).  ``num_classes`` defaults to K.
    Files are written under temporary names and moved into place at the end.
    Returns ``(num_images, num_identities)``.
    """
    os.makedirs(out_dir, exist_ok=True)
    rec_path = os.path.join(out_dir, prefix + '.rec')
    idx_path = os.path.join(out_dir, prefix + '.idx')
    prop_path = os.path.join(out_dir, 'property')
    tmp = {p: p + '.tmp' for p in (rec_path, idx_path, prop_path)}
    writer = mx.recordio.MXIndexedRecordIO(tmp[idx_path], tmp[rec_path], 'w')
    try:
        starts, record_id, last_label = [], 1, -1
        for sample in samples:
            label, payload = int(sample[0]), sample[1]
            aligned = int(sample[2]) if len(sample) > 2 else 1
            if label != last_label:
                if label != last_label + 1:
                    raise ValueError('write_rec: labels must be grouped and run 0, 1, 2, ...; '
                                     'got %d after %d' % (label, last_label))
                starts.append(record_id)
                last_label = label
            header = mx.recordio.IRHeader(0, [float(label), float(aligned)], record_id, 0)
            writer.write_idx(record_id, mx.recordio.pack(header, payload))
            record_id += 1
        num_images, num_ids = record_id - 1, len(starts)
        if num_images == 0:
            raise ValueError('write_rec: no images to write')
        first_identity = num_images + 1
        header0 = mx.recordio.IRHeader(0, [float(first_identity),
                                           float(first_identity + num_ids)], 0, 0)
        writer.write_idx(0, mx.recordio.pack(header0, b''))
        ends = starts[1:] + [first_identity]
        for k, (start, end) in enumerate(zip(starts, ends)):
            header = mx.recordio.IRHeader(0, [float(start), float(end)], first_identity + k, 0)
            writer.write_idx(first_identity + k, mx.recordio.pack(header, b''))
        writer.close()
        num_classes = num_ids if num_classes is None else int(num_classes)
        if num_classes < num_ids:
            raise ValueError('write_rec: num_classes=%d < %d identities' % (num_classes, num_ids))
        with open(tmp[prop_path], 'w') as f:
            f.write('%d,%d,%d\n' % (num_classes, image_size[0], image_size[1]))
    except BaseException:
        writer.close()
        for p in tmp.values():
            if os.path.exists(p):
                os.remove(p)
        raise
    for final, temporary in tmp.items():
        os.replace(temporary, final)
    return num_images, num_ids


def build_rec(items, out_dir, image_size=(112, 112), encoding='.jpg', quality=95,
              reencode=False, threads=1, prefix='train', log=None):
    """Encode LstItems and write an InsightFace training set; returns (num_images, num_ids).

    Items are grouped by label (stable order within an identity); labels with gaps are
    renumbered 0..K-1.  Items with aligned=0 and no landmarks are skipped.
    """
    log = log or (lambda msg: print(msg, file=sys.stderr))
    usable = [it for it in items if it.aligned or it.landmarks is not None]
    if len(usable) < len(items):
        log('skipped %d unaligned images without landmarks' % (len(items) - len(usable)))
    usable.sort(key=lambda it: it.label)
    renumbered = relabel(usable)
    if any(a.label != b.label for a, b in zip(usable, renumbered)):
        log('labels had gaps: renumbered %d identities as 0..%d'
            % (len(set(it.label for it in usable)), len(set(it.label for it in usable)) - 1))
    usable = renumbered

    def encode(item):
        return item.label, prepare_image(item, image_size, encoding, quality, reencode), \
            item.aligned

    if threads > 1:
        with ThreadPoolExecutor(threads) as pool:
            return write_rec(out_dir, pool.map(encode, usable), image_size, prefix=prefix)
    return write_rec(out_dir, map(encode, usable), image_size, prefix=prefix)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.build_rec',
        description='Build an InsightFace training set (train.rec, train.idx, property) from an '
                    'image folder (one sub-folder per identity) or a .lst file.')
    parser.add_argument('input', help='image folder, or .lst file ("aligned path label [box '
                                      'landmarks]"; relative paths are relative to the .lst)')
    parser.add_argument('output', help='output folder')
    parser.add_argument('--image-size', type=parse_image_size, default=(112, 112),
                        help='H,W of the stored images (default 112,112)')
    parser.add_argument('--encoding', choices=['.jpg', '.png'], default='.jpg',
                        help='image encoding in the records (default .jpg)')
    parser.add_argument('--quality', type=int, default=95,
                        help='JPEG quality 1-100 for images that are (re-)encoded (default 95)')
    parser.add_argument('--reencode', action='store_true',
                        help='re-encode every image, also those already of the right size and '
                             'encoding')
    parser.add_argument('--min-images', type=int, default=1,
                        help='folder input: leave out identities with fewer images')
    parser.add_argument('--lst-root', default=None,
                        help='.lst input: folder that relative image paths are relative to')
    parser.add_argument('--threads', type=int, default=min(4, os.cpu_count() or 1),
                        help='encoding threads')
    parser.add_argument('--prefix', default='train', help='record file name stem (train)')
    args = parser.parse_args(argv)
    if not 1 <= args.quality <= 100:
        parser.error('--quality must be in 1..100')
    if os.path.isdir(args.input):
        items = scan_folder(args.input, args.min_images)
    elif os.path.isfile(args.input):
        items = read_lst(args.input, args.lst_root)
    else:
        parser.error('%s: no such image folder or .lst file' % args.input)
    if not items:
        parser.error('%s: no images' % args.input)
    num_images, num_ids = build_rec(items, args.output, args.image_size, args.encoding,
                                    args.quality, args.reencode, args.threads, args.prefix)
    print('%s: %d images of %d identities, %dx%d'
          % (args.output, num_images, num_ids, args.image_size[0], args.image_size[1]))


if __name__ == '__main__':
    main()
