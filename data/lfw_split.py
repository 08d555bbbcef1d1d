"""LFW-style folder + pairs file -> a face experiment's data: a training set of identities
disjoint from the evaluation pairs, and verification ``.bin`` files.

The official LFW View-2 pairs (``pairs.txt``: header ``10 300``, then 10 folds of 300
same-person and 300 different-person pairs) are disjoint in people across folds. Given the
evaluation folds (``--eval-folds``, default 6-10), this writes into OUT:

* ``lfw.bin``: all pairs, in file order (InsightFace's lfw.bin protocol: 10 folds of 600);
* ``lfw_heldout.bin``: the evaluation folds' pairs, each fold as two halves of 150 same + 150
  different pairs, so that the 10-fold protocol sees balanced folds of 300;
* ``train.rec``/``train.idx``/``property``: every person of the image folder who is in no
  evaluation pair and has at least ``--min-images`` images (people of the other folds and
  people in no pair), for fine-tuning;
* ``split.json``: the folds, people and image counts, and which pairs of lfw.bin (0-based, in
  lfw_heldout.bin's order) the held-out file holds.

  python -m data.lfw_split ../shared/realdata/lfw ../shared/realdata/lfw-pairs.txt data/lfw-split
"""
import argparse
import json
import os
import sys

from data.build_bin import pair_image_paths, read_pairs
from data.make_lst import scan_folder

__all__ = ['fold_of_pairs', 'heldout_order', 'split_people', 'build_split', 'main']


def _header(pairs_path):
    with open(pairs_path) as f:
        for line in f:
            fields = line.split()
            if fields:
                if len(fields) == 2 and all(v.isdigit() for v in fields):
                    return int(fields[0]), int(fields[1])
                break
    raise ValueError('%s: no "folds pairs-per-fold" header line (e.g. "10 300"); the split needs '
                     'the folds of the LFW View-2 protocol' % pairs_path)


def fold_of_pairs(pairs_path):
    """(pairs, fold of each pair (1-based), folds): folds of 2 x pairs-per-fold pairs (same
    first, then different), as the header says."""
    folds, per_fold = _header(pairs_path)
    pairs = read_pairs(pairs_path)
    if len(pairs) != folds * 2 * per_fold:
        raise ValueError('%s: the header says %d folds of %d same + %d different pairs (%d), but '
                         'the file has %d pairs' % (pairs_path, folds, per_fold, per_fold,
                                                    folds * 2 * per_fold, len(pairs)))
    return pairs, [i // (2 * per_fold) + 1 for i in range(len(pairs))], folds


def heldout_order(fold_index, eval_folds):
    """Indices of the evaluation folds' pairs: per fold, its first half of same and different
    pairs, then its second half (balanced chunks for the 10-fold protocol)."""
    order = []
    for fold in eval_folds:
        members = [i for i, f in enumerate(fold_index) if f == fold]
        half = len(members) // 2
        same, diff = members[:half], members[half:]
        cut_s, cut_d = len(same) // 2, len(diff) // 2
        order += same[:cut_s] + diff[:cut_d] + same[cut_s:] + diff[cut_d:]
    return order


def split_people(pairs, fold_index, eval_folds):
    """People named in the evaluation folds' pairs (the training set must not hold them)."""
    held = set()
    for pair, fold in zip(pairs, fold_index):
        if fold in eval_folds:
            held.update((pair[0], pair[2]))
    return held


def _write_bin(pairs, image_dir, path, ext):
    from data.bin_format import save_bin
    from data.build_bin import _image_bytes
    paths, issame = pair_image_paths(pairs, image_dir, ext)
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError('%s: image named by the pairs file does not exist (%d missing)'
                                % (missing[0], len(missing)))
    save_bin(path, [_image_bytes(p, None, 95) for p in paths], issame)


def build_split(image_dir, pairs_path, out_dir, eval_folds=(6, 7, 8, 9, 10), min_images=2,
                ext='jpg', threads=2, log=None):
    """Writes the files above; returns the split summary (also in split.json)."""
    from data.build_rec import build_rec
    log = log or (lambda msg: print(msg, file=sys.stderr))
    pairs, fold_index, folds = fold_of_pairs(pairs_path)
    bad = [f for f in eval_folds if not 1 <= f <= folds]
    if bad or not eval_folds:
        raise ValueError('--eval-folds %s: folds run 1..%d' % (list(eval_folds), folds))
    held = split_people(pairs, fold_index, eval_folds)
    items = scan_folder(image_dir, min_images=min_images)
    names = {}
    for item in items:
        names.setdefault(item.label, os.path.basename(os.path.dirname(item.path)))
    train = [it for it in items if names[it.label] not in held]
    if not train:
        raise ValueError('%s: no person outside the evaluation folds has %d images or more'
                         % (image_dir, min_images))
    os.makedirs(out_dir, exist_ok=True)
    order = heldout_order(fold_index, eval_folds)
    log('lfw.bin: %d pairs; lfw_heldout.bin: %d pairs of folds %s'
        % (len(pairs), len(order), ','.join(map(str, eval_folds))))
    _write_bin(pairs, image_dir, os.path.join(out_dir, 'lfw.bin'), ext)
    _write_bin([pairs[i] for i in order], image_dir, os.path.join(out_dir, 'lfw_heldout.bin'),
               ext)
    images, identities = build_rec(train, out_dir, threads=threads, log=log)
    train_people = {names[it.label] for it in train}
    in_pairs = {p[0] for p in pairs} | {p[2] for p in pairs}
    assert not train_people & held
    summary = dict(pairs=pairs_path, images=image_dir, folds=folds, eval_folds=list(eval_folds),
                   eval_pairs=len(order), eval_people=len(held), train_identities=identities,
                   train_images=images, min_images=min_images,
                   train_people_from_other_folds=len(train_people & in_pairs),
                   train_people_in_no_pair=len(train_people - in_pairs),
                   heldout_pairs_in_lfw_bin=order)
    with open(os.path.join(out_dir, 'split.json'), 'w') as f:
        json.dump(summary, f, indent=1)
    log('train.rec: %d identities, %d images (none of the %d people of the evaluation folds)'
        % (identities, images, len(held)))
    return summary


def parse_folds(text):
    """'6-10' or '6,7,8' -> (6, 7, 8, ...)."""
    folds = []
    try:
        for part in text.split(','):
            if '-' in part:
                a, b = part.split('-')
                folds += list(range(int(a), int(b) + 1))
            elif part.strip():
                folds.append(int(part))
    except ValueError:
        raise argparse.ArgumentTypeError('expected folds like 6-10 or 6,7,8, got %r'
                                         % text) from None
    return tuple(folds)


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.lfw_split', description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('images', help='LFW-style folder: <person>/<person>_%%04d.jpg')
    parser.add_argument('pairs', help='pairs file with a "folds pairs-per-fold" header')
    parser.add_argument('out', help='output folder')
    parser.add_argument('--eval-folds', type=parse_folds, default=(6, 7, 8, 9, 10),
                        help='the folds to evaluate on (their people are not trained on)')
    parser.add_argument('--min-images', type=int, default=2,
                        help='training identities need at least this many images')
    parser.add_argument('--ext', default='jpg', help='image file extension')
    parser.add_argument('--threads', type=int, default=2, help='encoding threads')
    args = parser.parse_args(argv)
    try:
        summary = build_split(args.images, args.pairs, args.out, args.eval_folds,
                              args.min_images, args.ext, args.threads)
    except (OSError, ValueError) as err:
        print('error: %s' % err, file=sys.stderr)
        return 2
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == '__main__':
    sys.exit(main())
