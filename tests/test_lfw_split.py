"""data/lfw_split.py on a synthetic LFW-style folder: people of the evaluation folds never reach
the training set, the .bin files hold the right pairs in the right order, and bad input (a
non-image file, an unreadable JPEG, a pairs line naming a missing image, no header, a training
set too small for the sampler) is a clear error naming the file."""
import json
import os

import cv2
import numpy as np
import pytest

import ad_face
from data.bin_format import load_bin
from data.face_rec import FaceRecordSet
from data.lfw_split import build_split, heldout_order, main, parse_folds
from data.synthetic import identity_pattern, render_image

PEOPLE = ['P%02d' % i for i in range(14)]


def _lfw(tmp_path, images_per_person=3):
    """14 people with 3 images each; pairs: 2 folds of 3 same + 3 different pairs, fold 1 on
    people P00-P05, fold 2 on P06-P11; P12, P13 are in no pair."""
    root = tmp_path / 'lfw'
    rng = np.random.default_rng(0)
    for name in PEOPLE:
        (root / name).mkdir(parents=True)
        pattern = identity_pattern(rng, (112, 112))
        for n in range(1, images_per_person + 1):
            img = render_image(pattern, rng)
            cv2.imwrite(str(root / name / ('%s_%04d.jpg' % (name, n))),
                        cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    lines = ['2\t3']
    for fold in range(2):
        people = PEOPLE[6 * fold:6 * fold + 6]
        lines += ['%s\t1\t2' % p for p in people[:3]]
        lines += ['%s\t1\t%s\t2' % (people[3 + i], people[(4 + i) % 3], ) for i in range(3)]
    pairs = tmp_path / 'pairs.txt'
    pairs.write_text('\n'.join(lines) + '\n')
    return root, pairs


def test_split_keeps_evaluation_people_out_of_training(tmp_path):
    root, pairs = _lfw(tmp_path)
    out = tmp_path / 'split'
    summary = build_split(str(root), str(pairs), str(out), eval_folds=(2,), min_images=2,
                          log=lambda m: None)
    assert summary['eval_pairs'] == 6 and summary['eval_people'] == 6
    # training: fold 1's six people and the two in no pair
    assert summary['train_identities'] == 8 and summary['train_images'] == 24
    assert summary['train_people_from_other_folds'] == 6
    assert summary['train_people_in_no_pair'] == 2
    assert json.loads((out / 'split.json').read_text()) == summary
    assert summary['heldout_pairs_in_lfw_bin'] == [6, 9, 7, 8, 10, 11]
    bins, issame = load_bin(str(out / 'lfw.bin'))
    assert len(bins) == 24 and list(issame) == [True] * 3 + [False] * 3 + [True] * 3 + [False] * 3
    held_bins, held_same = load_bin(str(out / 'lfw_heldout.bin'))
    # fold 2 as two balanced halves: same, different, then the rest of each
    assert list(held_same) == [True, False, True, True, False, False]
    with open(root / 'P06' / 'P06_0001.jpg', 'rb') as f:
        assert bytes(held_bins[0]) == f.read()    # stored byte for byte
    recordset = FaceRecordSet(str(out))
    assert recordset.num_classes == 8 and recordset.num_images == 24


def test_heldout_order_is_balanced_per_half_fold():
    folds = [1] * 8 + [2] * 8
    order = heldout_order(folds, (2,))
    assert order == [8, 9, 12, 13, 10, 11, 14, 15]


def test_bad_inputs_are_named(tmp_path, capsys):
    root, pairs = _lfw(tmp_path)
    (root / 'P00' / 'notes.txt').write_text('not an image')            # ignored: not an image
    (root / 'P01' / 'P01_0009.jpg').write_bytes(b'this is no JPEG')   # named
    assert main([str(root), str(pairs), str(tmp_path / 'a'), '--eval-folds', '2']) == 2
    assert 'P01_0009.jpg: not a decodable image' in capsys.readouterr().err
    os.remove(root / 'P01' / 'P01_0009.jpg')
    with open(root / 'P02' / 'P02_0003.jpg', 'r+b') as f:                # truncated JPEG
        f.truncate(40)
    assert main([str(root), str(pairs), str(tmp_path / 'b'), '--eval-folds', '2']) == 2
    assert 'P02_0003.jpg: not a decodable image' in capsys.readouterr().err
    os.remove(root / 'P02' / 'P02_0003.jpg')
    os.remove(root / 'P07' / 'P07_0002.jpg')                           # named by a pair
    assert main([str(root), str(pairs), str(tmp_path / 'c'), '--eval-folds', '2']) == 2
    assert 'P07_0002.jpg: image named by the pairs file does not exist' in \
        capsys.readouterr().err
    headless = tmp_path / 'headless.txt'
    headless.write_text(''.join(pairs.read_text().splitlines(True)[1:]))
    assert main([str(root), str(headless), str(tmp_path / 'd')]) == 2
    assert 'no "folds pairs-per-fold" header' in capsys.readouterr().err
    assert main([str(root), str(pairs), str(tmp_path / 'e'), '--eval-folds', '3']) == 2
    assert '--eval-folds [3]: folds run 1..2' in capsys.readouterr().err
    assert not os.path.exists(tmp_path / 'a' / 'train.rec')           # nothing half-written


def test_parse_folds():
    assert parse_folds('6-10') == (6, 7, 8, 9, 10) and parse_folds('1,3') == (1, 3)


def test_training_set_too_small_for_the_sampler(tmp_path):
    root, pairs = _lfw(tmp_path)
    out = tmp_path / 'split'
    build_split(str(root), str(pairs), str(out), eval_folds=(2,), log=lambda m: None)
    with pytest.raises(ValueError, match=r'train\.rec: a batch needs 16 source and 16 target '
                                         r'images, but the two identity streams hold 12 and 12'):
        ad_face.main(['--data-dir', str(out), '--target', '', '--network', 'y1',
                      '--main-per-batch-size', '48', '--adv-per-batch-size', '32',
                      '--max-steps', '1', '--prefix', str(tmp_path / 'm')])
