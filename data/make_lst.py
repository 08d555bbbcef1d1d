"""Image folder (one sub-folder per identity) -> InsightFace ``.lst`` file.

A ``.lst`` line is tab-separated: ``aligned  path  label`` and optionally a face box and five
landmarks: ``x1 y1 x2 y2  lx1 .. lx5  ly1 .. ly5`` (all five x, then all five y).  ``aligned`` 1
means the image is already a crop to use as is; 0 means it is aligned with its landmarks when the
record file is built.  Identities get labels 0, 1, ... in the sorted order of the sub-folder
names; images are listed in sorted file-name order.

Landmarks (optional, ``--landmarks FILE``): one line per image, ``relative/path x1 y1 ... x5 y5``
(five (x, y) points: eyes, nose tip, mouth corners), whitespace- or comma-separated, the path
relative to the image folder.  Images with landmarks are written with aligned=0; the box written
is the landmarks' bounding box (it is not used for alignment).
"""
import argparse
import collections
import os
import sys

import numpy as np

__all__ = ['LstItem', 'IMAGE_EXTENSIONS', 'scan_folder', 'read_lst', 'write_lst', 'parse_lst_line',
           'format_lst_line', 'read_landmarks', 'relabel', 'main']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')

# landmarks: (5, 2) float array of (x, y) or None; bbox: 4 ints or None.
LstItem = collections.namedtuple('LstItem', 'aligned path label bbox landmarks')


def scan_folder(root, min_images=1, extensions=IMAGE_EXTENSIONS, landmarks=None):
    """LstItems for ``root/<identity>/<image>``; identities with fewer than ``min_images``
    images are left out (and take no label).  ``landmarks``: {relative path: (5, 2) array}."""
    if not os.path.isdir(root):
        raise FileNotFoundError('%s: image folder does not exist' % root)
    root = os.path.abspath(root)
    items, label = [], 0
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        files = sorted(f for f in os.listdir(folder)
                       if f.lower().endswith(tuple(extensions))
                       and os.path.isfile(os.path.join(folder, f)))
        if len(files) < max(1, min_images):
            continue
        for f in files:
            points = None if landmarks is None else landmarks.get(name + '/' + f)
            if points is None:
                items.append(LstItem(1, os.path.join(folder, f), label, None, None))
            else:
                box = [int(np.floor(points[:, 0].min())), int(np.floor(points[:, 1].min())),
                       int(np.ceil(points[:, 0].max())), int(np.ceil(points[:, 1].max()))]
                items.append(LstItem(0, os.path.join(folder, f), label, box, points))
        label += 1
    return items


def read_landmarks(path):
    """{relative image path (with '/'): (5, 2) float32 array} from a landmarks text file."""
    table = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.replace(',', ' ').split()
            if not fields or fields[0].startswith('#'):
                continue
            try:
                if len(fields) != 11:
                    raise ValueError
                points = np.array([float(v) for v in fields[1:]], np.float32).reshape(5, 2)
            except ValueError:
                raise ValueError('%s line %d: expected "relative/path x1 y1 x2 y2 x3 y3 x4 y4 x5 '
                                 'y5", got %r' % (path, number, line.strip()[:120])) from None
            table[fields[0].replace(os.sep, '/')] = points
    return table


def format_lst_line(item):
    fields = [str(int(item.aligned)), item.path, str(int(item.label))]
    if item.bbox is not None or item.landmarks is not None:
        box = item.bbox if item.bbox is not None else (0, 0, 0, 0)
        fields += [str(int(v)) for v in box]
    if item.landmarks is not None:
        points = np.asarray(item.landmarks, np.float64).reshape(5, 2)
        fields += ['%g' % v for v in points[:, 0]] + ['%g' % v for v in points[:, 1]]
    return '\t'.join(fields)


def parse_lst_line(line, where='.lst'):
    """LstItem from one .lst line; ``where`` (e.g. 'file.lst line 3') goes in error messages."""
    fields = line.rstrip('\r\n').split('\t')
    if len(fields) not in (3, 7, 17):
        raise ValueError('%s: expected 3, 7 or 17 tab-separated fields "aligned path label '
                         '[x1 y1 x2 y2 [5 x, 5 y]]", got %d in %r'
                         % (where, len(fields), line.strip()[:120]))
    try:
        aligned, label = int(fields[0]), int(float(fields[2]))
        bbox = [int(float(v)) for v in fields[3:7]] if len(fields) > 3 else None
        landmarks = None
        if len(fields) == 17:
            values = np.array([float(v) for v in fields[7:17]], np.float32)
            landmarks = np.stack([values[:5], values[5:]], axis=1)
    except ValueError:
        raise ValueError('%s: non-numeric field in %r' % (where, line.strip()[:120])) from None
    if aligned not in (0, 1) or label < 0:
        raise ValueError('%s: aligned must be 0 or 1 and label >= 0, got %r'
                         % (where, line.strip()[:120]))
    return LstItem(aligned, fields[1], label, bbox, landmarks)


def read_lst(path, root=None):
    """LstItems of a .lst file; relative image paths are taken relative to ``root`` (default: the
    .lst file's folder)."""
    root = os.path.dirname(os.path.abspath(path)) if root is None else root
    items = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            item = parse_lst_line(line, '%s line %d' % (path, number))
            if not os.path.isabs(item.path):
                item = item._replace(path=os.path.join(root, item.path))
            items.append(item)
    return items


def write_lst(path, items):
    with open(path, 'w') as f:
        for item in items:
            f.write(format_lst_line(item) + '\n')


def relabel(items):
    """Items with labels renumbered 0, 1, ... in order of the old labels (closes gaps)."""
    new_label = {old: i for i, old in enumerate(sorted(set(it.label for it in items)))}
    return [it._replace(label=new_label[it.label]) for it in items]


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.make_lst',
        description='Write an InsightFace .lst (tab-separated "aligned path label [box '
                    'landmarks]") for an image folder with one sub-folder per identity. Labels '
                    'follow the sorted sub-folder names; image paths are absolute.')
    parser.add_argument('images', help='folder with one sub-folder of images per identity')
    parser.add_argument('output', help='the .lst file to write')
    parser.add_argument('--min-images', type=int, default=1,
                        help='leave out identities with fewer images (default 1)')
    parser.add_argument('--landmarks', default=None,
                        help='text file "relative/path x1 y1 ... x5 y5" per image; those images '
                             'are listed with aligned=0 and their landmarks')
    parser.add_argument('--require-landmarks', action='store_true',
                        help='with --landmarks: leave out images that have none (otherwise they '
                             'are listed as already aligned)')
    args = parser.parse_args(argv)
    table = read_landmarks(args.landmarks) if args.landmarks else None
    items = scan_folder(args.images, args.min_images, landmarks=table)
    if table is not None and args.require_landmarks:
        dropped = sum(1 for it in items if it.landmarks is None)
        items = relabel([it for it in items if it.landmarks is not None])
        if dropped:
            print('left out %d images without landmarks' % dropped, file=sys.stderr)
    if not items:
        parser.error('%s: no images found in identity sub-folders (extensions %s)'
                     % (args.images, ', '.join(IMAGE_EXTENSIONS)))
    write_lst(args.output, items)
    num_ids = len(set(it.label for it in items))
    print('%s: %d images of %d identities' % (args.output, len(items), num_ids))


if __name__ == '__main__':
    main()
