"""YouTube Faces (YTF) video verification, as the original ``src/eval/ytf.py`` (mean mode).

Layout: ``IMAGE_DIR/<Name>/<video>/<frames>`` (aligned face crops; the original used an
``images`` folder of 112x112 aligned frames; the official ``aligned_images_DB`` has the same
shape) and the standard split file, comma-separated with a header line::

  split number, pair number, first name, second name, ground truth, is the same
  1, 1, Aaron_Eckhart/0, Aaron_Eckhart/1, 1, 1

The two video fields are the ones holding ``Name/video``; the last field says same (1) or not
(0); the first is the split, used as the fold (10 splits of 500 pairs: 5000 pairs).  A video's
embedding is the mean of its frames' L2-normalised embeddings, normalised again (no flip
unless ``--flip``).  ``--max-frames`` caps the frames per video (evenly spaced over the sorted
names).  Metrics: ``eval.verification`` (squared distance, best threshold on 9 splits).
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import os
import sys

import numpy as np

from eval import cli
from eval.embedding import as_embed_fn, embed_pairs
from eval.lfw import read_image
from eval.protocol import combine_flip, l2_normalize, verification_metrics
from eval.verification import format_table

IMAGE_EXTS = ('.jpg', '.jpeg', '.png', '.bmp')


def read_splits(path):
    """-> list of (split id, video A 'Name/id', video B, is_same bool)."""
    pairs = []
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = [x.strip() for x in line.strip().split(',')]
            if not line.strip() or fields[0].lower().startswith('split'):
                continue
            videos = [x for x in fields if '/' in x]
            if len(videos) != 2 or not fields[0].isdigit() or fields[-1] not in ('0', '1'):
                raise ValueError('%s:%d: expected "split, pair, Name/vid, Name/vid, ground truth, '
                                 'is_same", got %r' % (path, lineno, line.strip()))
            pairs.append((int(fields[0]), videos[0], videos[1], fields[-1] == '1'))
    if not pairs:
        raise ValueError('%s: no pairs found' % path)
    return pairs


def frame_paths(image_dir, video, max_frames=0):
    """Sorted frame files of ``image_dir/video``, evenly thinned to ``max_frames`` (0: all)."""
    folder = os.path.join(image_dir, video)
    if not os.path.isdir(folder):
        raise FileNotFoundError('no frame folder %s for video %s' % (folder, video))
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTS))
    if not names:
        raise FileNotFoundError('%s holds no frames (%s)' % (folder, '/'.join(IMAGE_EXTS)))
    if 0 < max_frames < len(names):
        keep = np.linspace(0, len(names) - 1, max_frames).round().astype(int)
        names = [names[i] for i in keep]
    return [os.path.join(folder, n) for n in names]


def video_embeddings(network_or_fn, image_dir, videos, image_size, batch_size, max_frames=0,
                     flip=False):
    """-> (dict video -> unit mean embedding, XNorm of the raw frame embeddings)."""
    embed = as_embed_fn(network_or_fn)
    result, norms = {}, []
    for video in videos:
        if video in result:
            continue
        frames = np.stack([read_image(p, image_size)
                           for p in frame_paths(image_dir, video, max_frames)])
        emb, emb_flip = embed_pairs(embed, frames, batch_size, flip=flip)
        norms.append(np.linalg.norm(emb, axis=1))
        if emb_flip is not None:
            norms.append(np.linalg.norm(emb_flip, axis=1))
        per_frame = combine_flip(emb, emb_flip)
        result[video] = l2_normalize(per_frame.mean(axis=0, keepdims=True))[0]
    return result, float(np.mean(np.concatenate(norms))) if norms else 0.0


def evaluate_ytf(network_or_fn, image_dir, splits_path, image_size, batch_size, max_frames=0,
                 flip=False):
    """All metrics of ``verification_metrics`` with the split column as folds."""
    pairs = read_splits(splits_path)
    videos = [v for p in pairs for v in p[1:3]]
    emb, frame_xnorm = video_embeddings(network_or_fn, image_dir, videos, image_size,
                                        batch_size, max_frames, flip)
    interleaved = np.stack([emb[v] for v in videos])
    issame = [p[3] for p in pairs]
    result = verification_metrics(interleaved, None, issame, folds=[p[0] for p in pairs])
    result.update(xnorm=frame_xnorm, flip=bool(flip), num_videos=len(emb),
                  max_frames=max_frames)
    return result


def _default_path(data_dir, *names):
    for name in names:
        if os.path.exists(os.path.join(data_dir, name)):
            return os.path.join(data_dir, name)
    return os.path.join(data_dir, names[-1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='YouTube Faces verification: per-video mean embedding over aligned frames, '
                    'the 10 splits of splits.txt as folds.')
    cli.add_model_args(parser, 'checkpoint "prefix,epoch"', batch_size=32, image_size=True)
    parser.set_defaults(image_size=(112, 112))
    parser.add_argument('--data-dir', required=True, help='YTF folder')
    parser.add_argument('--image-dir', default=None,
                        help='frames as <Name>/<video>/*.jpg (default: DATA_DIR/images, else '
                             'DATA_DIR/aligned_images_DB, else DATA_DIR)')
    parser.add_argument('--splits', default=None,
                        help='split file (default: DATA_DIR/splits_corrected.txt, else '
                             'DATA_DIR/splits.txt)')
    parser.add_argument('--max-frames', type=int, default=0,
                        help='at most this many frames per video, evenly spaced (0: all)')
    parser.add_argument('--flip', action='store_true', help='add flipped-frame embeddings')
    parser.add_argument('--json', default=None, help='write the results here')
    return parser.parse_args(argv)


def run(args):
    """The YTF row of --model."""
    runtime.setup_logging(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    from eval.model import Network
    from src.checkpoint import parse_model_spec
    image_dir = args.image_dir or _default_path(args.data_dir, 'images', 'aligned_images_DB', '')
    splits = args.splits or _default_path(args.data_dir, 'splits_corrected.txt', 'splits.txt')
    prefix, epoch = parse_model_spec(args.model)
    if not os.path.isfile(splits):
        raise FileNotFoundError('no split file %s' % splits)
    net = Network.load(args.model, output='embedding', ctx=cli.parse_ctx(args.ctx, args.gpu))
    result = evaluate_ytf(net, image_dir, splits, args.image_size, args.batch_size,
                          args.max_frames, args.flip)
    row = dict(model=prefix, epoch=epoch, target='ytf', **result)
    cli.print_rows([row], args.json, format_table)
    return row


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
