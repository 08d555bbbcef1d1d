"""InsightFace-format data: RecordIO reader, .lst/.rec/.bin builders, alignment, synthetic set."""
import os
import re
import struct
import subprocess
import sys

import cv2
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from data import build_bin, build_rec, make_lst
from data.align import align_face, arcface_template, similarity_matrix
from data.bin_format import decode_images, load_bin
from data.face_rec import (FaceDataError, FaceRecordSet, cutoff, identity_streams,
                           random_mirror)
from data.synthetic import make_synthetic

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, OMP_NUM_THREADS='1')


def smooth_image(rng, size=16):
    """A low-frequency RGB image (JPEG keeps it well, so tolerances can be tight)."""
    grid = rng.uniform(0, 255, (3, 3, 3)).astype(np.float32)
    return np.clip(cv2.resize(grid, (size, size), interpolation=cv2.INTER_LINEAR), 0,
                   255).astype(np.uint8)


def write_rgb(path, img):
    assert cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))


def make_folder(root, counts, rng, ext='png', size=16):
    """root/<id>/<k>.<ext> for identities with the given image counts -> {path: (label, rgb)}."""
    truth = {}
    for label, count in enumerate(counts):
        folder = root / ('person_%02d' % label)
        folder.mkdir(parents=True)
        for k in range(count):
            img = smooth_image(rng, size)
            path = folder / ('%d.%s' % (k, ext))
            write_rgb(path, img)
            truth[str(path)] = (label, img)
    return truth


def write_flat_rec(folder, records, num_classes, size=16):
    """A .rec without identity header: records = [(record_id, label, payload)]."""
    writer = mx.recordio.MXIndexedRecordIO(str(folder / 'train.idx'), str(folder / 'train.rec'),
                                           'w')
    for record_id, label, payload in records:
        writer.write_idx(record_id, mx.recordio.pack(
            mx.recordio.IRHeader(0, label, record_id, 0), payload))
    writer.close()
    (folder / 'property').write_text('%d,%d,%d\n' % (num_classes, size, size))


def png_bytes(img):
    return cv2.imencode('.png', cv2.cvtColor(img, cv2.COLOR_RGB2BGR))[1].tobytes()


# --- folder -> .lst -> .rec -> reader ------------------------------------------------------------
def test_folder_to_lst_to_rec_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    truth = make_folder(tmp_path / 'images', [2, 3, 1], rng)
    lst = tmp_path / 'train.lst'
    # once as a script path, once as a module: both ways must work without sys.path edits
    subprocess.run([sys.executable, os.path.join(REPO, 'data', 'make_lst.py'),
                    str(tmp_path / 'images'), str(lst)], check=True, env=ENV, cwd=str(tmp_path))
    lines = [line.split('\t') for line in lst.read_text().splitlines()]
    assert [(int(a), p, int(label)) for a, p, label in lines] == \
        [(1, p, truth[p][0]) for p in sorted(truth)]
    subprocess.run([sys.executable, '-m', 'data.build_rec', str(lst), str(tmp_path / 'rec'),
                    '--image-size', '16,16', '--encoding', '.png'], check=True, env=ENV,
                   cwd=str(tmp_path))

    # InsightFace's reader: record 0 header, identity records, image labels = label[0]
    reader = mx.recordio.MXIndexedRecordIO(str(tmp_path / 'rec' / 'train.idx'),
                                           str(tmp_path / 'rec' / 'train.rec'), 'r')
    header0, _ = mx.recordio.unpack(reader.read_idx(0))
    assert header0.flag > 0 and tuple(header0.label[:2]) == (7, 10)
    ranges = []
    for identity in range(7, 10):
        header, _ = mx.recordio.unpack(reader.read_idx(identity))
        ranges.append(tuple(int(v) for v in header.label[:2]))
    assert ranges == [(1, 3), (3, 6), (6, 7)]
    by_path = sorted(truth)
    for record_id in range(1, 7):
        header, payload = mx.recordio.unpack(reader.read_idx(record_id))
        label, img = truth[by_path[record_id - 1]]
        assert int(header.label[0]) == label
        np.testing.assert_array_equal(mx.image.imdecode(payload).asnumpy(), img)
    reader.close()

    data = FaceRecordSet(str(tmp_path / 'rec'))
    assert data.has_header and data.num_classes == 3 and data.image_size == (16, 16)
    assert [ids.tolist() for ids in data.identities] == [[1, 2], [3, 4, 5], [6]]
    batch, labels = data.read_batch(range(1, 7), return_labels=True)
    for record_id in range(1, 7):
        label, img = truth[by_path[record_id - 1]]
        assert data.label(record_id) == label == labels[record_id - 1]
        np.testing.assert_array_equal(data.read_image(record_id), img)
        np.testing.assert_array_equal(batch[record_id - 1], img)
    data.close()


def test_jpeg_rec_pixels_within_tolerance_and_aligned_files_stored_as_is(tmp_path):
    rng = np.random.default_rng(1)
    truth = make_folder(tmp_path / 'images', [2, 2], rng, ext='jpg')
    items = make_lst.scan_folder(str(tmp_path / 'images'))
    build_rec.build_rec(items, str(tmp_path / 'asis'), (16, 16))
    build_rec.build_rec(items, str(tmp_path / 'q100'), (16, 16), quality=100, reencode=True)
    build_rec.build_rec(items, str(tmp_path / 'big'), (24, 24), quality=100)
    asis, q100, big = (FaceRecordSet(str(tmp_path / d)) for d in ('asis', 'q100', 'big'))
    asis_reader = mx.recordio.MXIndexedRecordIO(asis.idx_path, asis.rec_path, 'r')
    for record_id, path in enumerate(sorted(truth), 1):
        with open(path, 'rb') as f:
            file_bytes = f.read()
        _, payload = mx.recordio.unpack(asis_reader.read_idx(record_id))
        assert payload == file_bytes  # right size and encoding: no second JPEG loss
        original = cv2.imread(path)[:, :, ::-1].astype(np.float64)  # the decoded source file
        err = np.abs(q100.read_image(record_id).astype(np.float64) - original)
        assert err.mean() < 5.0 and err.max() < 32  # JPEG q100 still subsamples chroma
        assert big.read_image(record_id).shape == (24, 24, 3)
        small = cv2.resize(big.read_image(record_id), (16, 16), interpolation=cv2.INTER_AREA)
        assert np.abs(small.astype(np.float64) - original).mean() < 8.0
    assert big.image_size == (24, 24)


def test_lst_with_landmarks_is_aligned_when_building(tmp_path):
    rng = np.random.default_rng(2)
    face = smooth_image(rng, 112)
    # the crop sits scaled by 2 and shifted in a larger picture; its landmarks move with it
    matrix = np.array([[2.0, 0.0, 30.0], [0.0, 2.0, 20.0]])
    big = cv2.warpAffine(face, matrix, (300, 300), flags=cv2.INTER_LINEAR)
    points = arcface_template() * 2.0 + np.array([30.0, 20.0])
    (tmp_path / 'a').mkdir()
    write_rgb(tmp_path / 'a' / 'big.png', big)
    (tmp_path / 'marks.txt').write_text(
        'a/big.png ' + ' '.join('%.4f' % v for v in points.ravel()) + '\n')
    make_lst.main([str(tmp_path), str(tmp_path / 'x.lst'), '--landmarks',
                   str(tmp_path / 'marks.txt')])
    fields = (tmp_path / 'x.lst').read_text().strip().split('\t')
    assert fields[0] == '0' and len(fields) == 17
    build_rec.main([str(tmp_path / 'x.lst'), str(tmp_path / 'rec'), '--encoding', '.png'])
    aligned = FaceRecordSet(str(tmp_path / 'rec')).read_image(1).astype(np.float64)
    inner = (slice(8, -8), slice(8, -8))
    assert np.abs(aligned[inner] - face[inner]).mean() < 2.0


# --- reader: flat files, split records ---------------------------------------------------------
def test_flat_rec_without_header_groups_identities_by_label(tmp_path):
    rng = np.random.default_rng(3)
    images = [smooth_image(rng) for _ in range(6)]
    labels = [2.0, 0.0, [1.0, 1.0], 2.0, [0.0, 1.0], 2.0]  # floats and arrays: label[0] counts
    write_flat_rec(tmp_path, [(i, labels[i], png_bytes(images[i])) for i in range(6)], 4)
    data = FaceRecordSet(str(tmp_path / 'train.rec'))
    assert not data.has_header
    assert [ids.tolist() for ids in data.identities] == [[1, 4], [2], [0, 3, 5], []]
    assert sorted(data.image_ids.tolist()) == list(range(6))
    for i in range(6):
        np.testing.assert_array_equal(data.read_image(i), images[i])


def test_record_containing_the_magic_number_reads_like_mxnet(tmp_path):
    rng = np.random.default_rng(4)
    img = smooth_image(rng)
    magic = struct.pack('<I', 0xced7230a)
    # RecordIO stores a record in parts where its data holds the magic number at a 4-byte-aligned
    # place: here in the label array (right after the 24-byte IRHeader) and after the PNG end
    # (trailing bytes that decoders ignore)
    label = [1.0, struct.unpack('<f', magic)[0], 7.0]
    payload = png_bytes(img)
    payload += b'\0' * ((-len(payload)) % 4) + magic + b'abcd' + magic + b'xy'
    # record 0 must be a plain image: a label array there would make it an identity header
    write_flat_rec(tmp_path, [(0, 0.0, png_bytes(img[::-1])), (1, label, payload)], 2)
    assert (tmp_path / 'train.rec').read_bytes().count(magic) > 3  # record 1 really is split
    data = FaceRecordSet(str(tmp_path), check_all_records=True)
    np.testing.assert_array_equal(data.read_image(0), img[::-1])
    np.testing.assert_array_equal(data.read_image(1), img)
    assert data.labels([0, 1]).tolist() == [0, 1]
    assert [ids.tolist() for ids in data.identities] == [[0], [1]]
    mx_reader = mx.recordio.MXIndexedRecordIO(data.idx_path, data.rec_path, 'r')
    header, mx_payload = mx.recordio.unpack(mx_reader.read_idx(1))
    assert mx_payload == payload and header.label.tolist() == np.float32(label).tolist()


# --- MTER streams and augmentations ---------------------------------------------------------------
def test_identity_streams_are_disjoint_and_cover_every_image_once():
    sizes = [3, 1, 4, 2, 5, 2, 0, 3]
    identities, start = [], 1
    for size in sizes:
        identities.append(np.arange(start, start + size))
        start += size
    owner = {int(i): k for k, ids in enumerate(identities) for i in ids}
    rng = np.random.default_rng(5)
    epochs = []
    for _ in range(3):
        a, b = identity_streams(identities, rng)
        ids_a, ids_b = {owner[int(i)] for i in a}, {owner[int(i)] for i in b}
        assert not ids_a & ids_b
        assert len(ids_a) == 4 and len(ids_b) == 3  # 7 non-empty identities dealt alternately
        assert sorted(np.concatenate([a, b]).tolist()) == list(range(1, start))
        epochs.append((tuple(a), tuple(b)))
    assert len(set(epochs)) == 3  # reshuffled every epoch
    a, b = identity_streams(identities, rng, shuffle_identities=False)
    assert {owner[int(i)] for i in a} == {0, 2, 4, 7}
    assert {owner[int(i)] for i in b} == {1, 3, 5}


def test_random_mirror_and_cutoff():
    rng = np.random.default_rng(6)
    batch = rng.integers(0, 256, (5, 10, 12, 3), dtype=np.uint8)
    original = batch.copy()
    np.testing.assert_array_equal(random_mirror(batch, rng, prob=1.0), batch[:, :, ::-1])
    np.testing.assert_array_equal(random_mirror(batch, rng, prob=0.0), batch)
    mixed = random_mirror(batch, np.random.default_rng(7), prob=0.5)
    flipped = [np.array_equal(m, b[:, ::-1]) for m, b in zip(mixed, batch)]
    kept = [np.array_equal(m, b) for m, b in zip(mixed, batch)]
    assert all(f or k for f, k in zip(flipped, kept))

    out = cutoff(batch, 4, rng, prob=1.0, fill=127.5)
    assert out.dtype == np.float32
    for img, src in zip(out, batch):
        rows, cols = np.nonzero((img != src).any(axis=2))
        grey = img == 127.5
        assert grey.all(axis=2).any()  # a square was greyed
        ys, xs = np.nonzero(grey.all(axis=2))
        assert ys.max() - ys.min() < 4 and xs.max() - xs.min() < 4  # side at most 2 * (4 // 2)
        assert set(zip(rows, cols)) <= set(zip(ys, xs))
    same_dtype = cutoff(batch, 6, rng, prob=1.0, fill=128)
    assert same_dtype.dtype == np.uint8 and (same_dtype == 128).any()
    np.testing.assert_array_equal(batch, original)  # inputs untouched


# --- alignment -----------------------------------------------------------------------------
def test_alignment_identity_and_undoing_a_known_similarity():
    template = arcface_template((112, 112))
    np.testing.assert_allclose(similarity_matrix(template), [[1, 0, 0], [0, 1, 0]], atol=1e-6)
    np.testing.assert_allclose(arcface_template((112, 96))[:, 0], template[:, 0] - 8, atol=1e-5)
    face = smooth_image(np.random.default_rng(8), 112)
    np.testing.assert_array_equal(align_face(face, template), face)

    angle, scale, shift = np.deg2rad(25.0), 1.6, np.array([120.0, 15.0])  # face stays inside
    forward = np.array([[scale * np.cos(angle), -scale * np.sin(angle), shift[0]],
                        [scale * np.sin(angle), scale * np.cos(angle), shift[1]]])
    picture = cv2.warpAffine(face, forward, (320, 320), flags=cv2.INTER_LINEAR)
    landmarks = template @ forward[:, :2].T + forward[:, 2]
    inverse = cv2.invertAffineTransform(forward)
    np.testing.assert_allclose(similarity_matrix(landmarks), inverse, atol=1e-4)
    restored = align_face(picture, landmarks).astype(np.float64)
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(restored[inner] - face[inner]).mean() < 2.0

    # noisy landmarks: the fit is the least-squares similarity over all five points
    noisy = landmarks + np.random.default_rng(9).normal(0, 3.0, landmarks.shape)
    rows, rhs = [], []
    for (x, y), (u, v) in zip(noisy, template):
        rows += [[x, -y, 1, 0], [y, x, 0, 1]]
        rhs += [u, v]
    a, b, tx, ty = np.linalg.lstsq(np.array(rows), np.array(rhs), rcond=None)[0]
    np.testing.assert_allclose(similarity_matrix(noisy), [[a, -b, tx], [b, a, ty]], atol=1e-4)


# --- pairs.txt -> .bin -----------------------------------------------------------------------
def test_pairs_txt_to_bin_round_trip(tmp_path):
    rng = np.random.default_rng(10)
    files = {}
    for name, count in (('Ann_Lee', 2), ('Bo', 3)):
        (tmp_path / 'lfw' / name).mkdir(parents=True)
        for n in range(1, count + 1):
            path = tmp_path / 'lfw' / name / ('%s_%04d.jpg' % (name, n))
            write_rgb(path, smooth_image(rng))
            files[(name, n)] = path.read_bytes()
    (tmp_path / 'pairs.txt').write_text('1\t3\nAnn_Lee\t1\t2\nBo\t3\t1\nAnn_Lee 2 Bo 3\n')
    out = tmp_path / 'lfw.bin'
    build_bin.main([str(tmp_path / 'pairs.txt'), str(tmp_path / 'lfw'), str(out)])
    bins, issame = load_bin(str(out))
    order = [('Ann_Lee', 1), ('Ann_Lee', 2), ('Bo', 3), ('Bo', 1), ('Ann_Lee', 2), ('Bo', 3)]
    assert bins == [files[k] for k in order]
    assert issame == [True, True, False]
    decoded = decode_images(bins)
    for img, key in zip(decoded, order):
        expected = cv2.imdecode(np.frombuffer(files[key], np.uint8), cv2.IMREAD_COLOR)
        np.testing.assert_array_equal(img, expected[:, :, ::-1])

    (tmp_path / 'bad.txt').write_text('Ann_Lee 1 9\n')
    with pytest.raises(FileNotFoundError, match='Ann_Lee_0009.jpg'):
        build_bin.build_bin(str(tmp_path / 'bad.txt'), str(tmp_path / 'lfw'),
                            str(tmp_path / 'x.bin'))
    resized = build_bin.build_bin(str(tmp_path / 'pairs.txt'), str(tmp_path / 'lfw'),
                                  str(tmp_path / 'y.bin'), image_size=(8, 8))
    assert resized == 3
    assert decode_images(load_bin(str(tmp_path / 'y.bin'))[0]).shape == (6, 8, 8, 3)


# --- synthetic set ---------------------------------------------------------------------------
def test_synthetic_set_loads_with_balanced_learnable_pairs(tmp_path):
    info = make_synthetic(str(tmp_path / 's'), num_ids=5, per_id=4, image_size=(16, 20),
                          num_pairs=24, seed=3, bin_names=('lfw', 'cfp_fp'), heldout_per_id=3)
    data = FaceRecordSet(info['data_dir'])
    assert data.num_classes == 5 and data.image_size == (16, 20) and data.num_images == 20
    assert [len(ids) for ids in data.identities] == [4] * 5
    assert all(data.label(i) == k for k, ids in enumerate(data.identities) for i in ids)
    images = data.read_batch(data.image_ids).astype(np.float64)
    reader = mx.recordio.MXIndexedRecordIO(data.idx_path, data.rec_path, 'r')
    for i in data.image_ids[::7]:  # JPEG decoding as InsightFace's reader does it
        payload = mx.recordio.unpack(reader.read_idx(int(i)))[1]
        np.testing.assert_array_equal(data.read_image(i), mx.image.imdecode(payload).asnumpy())
    assert images.shape == (20, 16, 20, 3)
    # identities are distinct: every image is closer to its own identity's mean than to others'
    means = images.reshape(5, 4, -1).mean(axis=1)
    dists = ((images.reshape(20, 1, -1) - means[None]) ** 2).sum(axis=2)
    assert (dists.argmin(axis=1) == np.repeat(np.arange(5), 4)).all()
    assert sorted(info['bins']) == ['cfp_fp', 'lfw']
    for name, path in info['bins'].items():
        bins, issame = load_bin(path)
        assert len(issame) == 24 and sum(issame) == 12 and len(bins) == 48
        pairs = decode_images(bins).astype(np.float64).reshape(24, 2, -1)
        gaps = ((pairs[:, 0] - pairs[:, 1]) ** 2).mean(axis=1)
        same = np.array(issame)
        assert gaps[same].max() < gaps[~same].min()
    make_synthetic(str(tmp_path / 't'), num_ids=5, per_id=4, image_size=(16, 20),
                           num_pairs=24, seed=3, bin_names=('lfw', 'cfp_fp'), heldout_per_id=3)
    other = make_synthetic(str(tmp_path / 'u'), num_ids=5, per_id=4, image_size=(16, 20),
                           num_pairs=24, seed=4, heldout_ids=3)
    read = lambda d, f: (tmp_path / d / f).read_bytes()  # noqa: E731
    assert read('s', 'train.rec') == read('t', 'train.rec')
    assert read('s', 'lfw.bin') == read('t', 'lfw.bin')
    assert read('s', 'train.rec') != read('u', 'train.rec')
    assert len(load_bin(other['bins']['lfw'])[1]) == 24


# --- bad input: clear errors naming the file -----------------------------------------------------
@pytest.fixture
def small_set(tmp_path):
    make_synthetic(str(tmp_path), num_ids=2, per_id=2, image_size=(16, 16), num_pairs=2,
                   bin_names=())
    return tmp_path


def test_missing_or_malformed_property(small_set):
    prop = small_set / 'property'
    prop.write_text('2,16\n')
    with pytest.raises(FaceDataError, match='property.*num_classes,H,W'):
        FaceRecordSet(str(small_set))
    prop.write_text('two,16,16\n')
    with pytest.raises(FaceDataError, match=re.escape(str(prop))):
        FaceRecordSet(str(small_set))
    prop.unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(prop))):
        FaceRecordSet(str(small_set))


def test_missing_index_or_records(small_set):
    (small_set / 'train.idx').rename(small_set / 'kept.idx')
    with pytest.raises(FileNotFoundError, match=re.escape(str(small_set / 'train.idx'))):
        FaceRecordSet(str(small_set))
    (small_set / 'kept.idx').rename(small_set / 'train.idx')
    (small_set / 'train.rec').unlink()
    with pytest.raises(FileNotFoundError, match=re.escape(str(small_set / 'train.rec'))):
        FaceRecordSet(str(small_set))


def test_index_that_does_not_match_the_records(small_set):
    idx = small_set / 'train.idx'
    lines = [line.split('\t') for line in idx.read_text().splitlines()]
    size = (small_set / 'train.rec').stat().st_size
    past_end = ['%s\t%d' % (k, size + 100 if k == '2' else int(v)) for k, v in lines]
    idx.write_text('\n'.join(past_end) + '\n')
    with pytest.raises(FaceDataError, match=re.escape(str(idx)) + '.*past the end'):
        FaceRecordSet(str(small_set))
    shifted = ['%s\t%d' % (k, int(v) + 4 if k == '3' else int(v)) for k, v in lines]
    idx.write_text('\n'.join(shifted) + '\n')
    with pytest.raises(FaceDataError, match='record 3 .*' + re.escape(str(idx))):
        FaceRecordSet(str(small_set))
    idx.write_text('1\t0\nnonsense\n')
    with pytest.raises(FaceDataError, match=re.escape(str(idx)) + '.*line 2'):
        FaceRecordSet(str(small_set))


def test_record_that_is_not_an_image(tmp_path):
    good = png_bytes(smooth_image(np.random.default_rng(11)))
    # the few images decoded at open (spread over the set) miss record 1: found when read
    write_flat_rec(tmp_path, [(0, 0.0, good), (1, 0.0, b'this is not an image')]
                   + [(i, float(i == 30), good) for i in range(2, 31)], 2)
    data = FaceRecordSet(str(tmp_path))
    assert data.read_image(0).shape == (16, 16, 3)
    rec = re.escape(str(tmp_path / 'train.rec'))
    with pytest.raises(FaceDataError, match=rec + ': record 1 is not an image'):
        data.read_image(1)
    with pytest.raises(FaceDataError, match='record 1 is not an image'):
        data.read_batch([0, 1, 0, 0])
    # ... and by the full check before any training: the API and `--check-all`
    with pytest.raises(FaceDataError, match='record 1 is not an image'):
        data.check_images()
    run = subprocess.run([sys.executable, '-m', 'data.face_rec', str(tmp_path), '--check-all'],
                         capture_output=True, text=True)
    assert run.returncode != 0 and 'record 1 is not an image' in run.stderr
    # a set whose sampled images include the bad one is refused at open
    small = tmp_path / 'small'
    small.mkdir()
    write_flat_rec(small, [(0, 0.0, good), (1, 1.0, b'this is not an image')], 2)
    with pytest.raises(FaceDataError, match='record 1 is not an image'):
        FaceRecordSet(str(small))


def test_labels_outside_property_and_images_of_another_size_are_refused(tmp_path):
    img = smooth_image(np.random.default_rng(5))           # 16x16
    good = png_bytes(img)
    # identity header set whose last image carries class 7 while property says 2 classes
    header = tmp_path / 'header'
    header.mkdir()
    records = [(1, 0.0, good), (2, 0.0, good), (3, 1.0, good), (4, 7.0, good)]
    writer = mx.recordio.MXIndexedRecordIO(str(header / 'train.idx'),
                                           str(header / 'train.rec'), 'w')
    writer.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(2, [5.0, 7.0], 0, 0), b''))
    for record_id, label, payload in records:
        writer.write_idx(record_id, mx.recordio.pack(
            mx.recordio.IRHeader(0, label, record_id, 0), payload))
    writer.write_idx(5, mx.recordio.pack(mx.recordio.IRHeader(2, [1.0, 3.0], 5, 0), b''))
    writer.write_idx(6, mx.recordio.pack(mx.recordio.IRHeader(2, [3.0, 5.0], 6, 0), b''))
    writer.close()
    (header / 'property').write_text('2,16,16\n')
    with pytest.raises(FaceDataError, match=r'record 4 has class id 7, outside 0\.\.1 given by '
                                            + re.escape(str(header / 'property'))):
        FaceRecordSet(str(header))
    (header / 'property').write_text('8,16,16\n')
    assert FaceRecordSet(str(header)).labels([1, 3, 4]).tolist() == [0, 1, 7]
    # property says 12x12 but the images are 16x16: refused at open, naming both sizes
    (header / 'property').write_text('8,12,12\n')
    with pytest.raises(FaceDataError, match=r'is a 16x16 image but .*property says 12x12'):
        FaceRecordSet(str(header))
