"""Reader for InsightFace training sets: ``train.rec`` + ``train.idx`` + ``property``.

Layout (written by InsightFace's face2rec2.py and by data/build_rec.py):
- ``property``: one line ``num_classes,H,W``.
- ``train.idx``: text lines ``record_id<TAB>byte_offset`` into ``train.rec``.
- ``train.rec``: MXNet RecordIO; every record is an ``mx.recordio.IRHeader`` + payload.
  Record 0 with flag > 0 is the identity header, label = (first identity record id, end id);
  identity record k has label = (first image id, end image id), end exclusive; image records
  1..N carry the class id as label (a float, or an array whose first element is the class id)
  and an encoded image.  Record 0 with flag 0 means there is no header: every record listed in
  the .idx is an image, and identities are grouped from the image labels.

Records are read with ``os.pread`` on one file descriptor, which is safe from many threads, so
``read_batch`` can decode in a thread pool (OpenCV releases the GIL while decoding).

Also here: ``identity_streams`` (MTER's source/target streams) and the batch augmentations.
"""
import argparse
import os
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
from mxnet import recordio

__all__ = ['FaceRecordSet', 'FaceDataError', 'read_property', 'identity_streams',
           'random_mirror', 'cutoff']

_MAGIC = 0xced7230a           # dmlc RecordIO magic number
_LENGTH_MASK = (1 << 29) - 1  # lower 29 bits of the length word: part length; upper 3: cflag
_IR_HEADER_SIZE = struct.calcsize('IfQQ')  # mx.recordio.IRHeader: flag, label, id, id2
_SAMPLED_CHECKS = 256         # records whose RecordIO header is checked when a set is opened


class FaceDataError(ValueError):
    """A training-set file is malformed; the message names the file."""


def read_property(path):
    """``(num_classes, (H, W))`` from an InsightFace ``property`` file."""
    if not os.path.isfile(path):
        raise FileNotFoundError('%s: missing property file (one line "num_classes,H,W")' % path)
    with open(path) as f:
        text = f.read().strip()
    fields = [v.strip() for v in text.split(',')]
    if len(fields) != 3 or '\n' in text:
        raise FaceDataError('%s: expected one line "num_classes,H,W" (3 comma-separated '
                            'integers), got %r' % (path, text[:80]))
    try:
        num_classes, height, width = (int(v) for v in fields)
    except ValueError:
        raise FaceDataError('%s: expected integers "num_classes,H,W", got %r'
                            % (path, text[:80])) from None
    if num_classes <= 0 or height <= 0 or width <= 0:
        raise FaceDataError('%s: num_classes, H and W must be positive, got %r' % (path, text))
    return num_classes, (height, width)


class FaceRecordSet(object):
    """An InsightFace training set opened for random access.

    ``path``: the data folder, or the path of its ``.rec`` (then ``.idx`` and ``property`` are
    looked up beside it).  ``check_all_records``: check the RecordIO header of every record at
    open (reads a little of every record; by default only a sample of them and the header and
    identity records are checked, the rest when they are read).  Always checked at open: every
    image's class id is in 0..num_classes-1, and a few images spread over the set decode to
    ``property``'s size (an image of another size is an error when read, never resized);
    ``check_images`` decodes them all.  ``num_threads``: decode threads
    for ``read_batch`` (default: the number of CPUs, at most 8).

    Attributes: ``num_classes``, ``image_size`` (H, W), ``identities`` (list, index = identity,
    of int64 arrays of image record ids), ``image_ids`` (all image record ids), ``has_header``.
    """

    def __init__(self, path, check_all_records=False, num_threads=None):
        if os.path.isdir(path):
            self.rec_path = os.path.join(path, 'train.rec')
        elif not os.path.exists(path) and not path.endswith('.rec'):
            raise FileNotFoundError('%s: no such data folder or .rec file' % path)
        else:
            self.rec_path = path
        folder = os.path.dirname(os.path.abspath(self.rec_path))
        self.idx_path = os.path.splitext(self.rec_path)[0] + '.idx'
        self.property_path = os.path.join(folder, 'property')
        self.num_threads = num_threads or min(8, os.cpu_count() or 1)
        self.num_classes, self.image_size = read_property(self.property_path)
        for p, what in ((self.rec_path, 'record file'), (self.idx_path, 'index file')):
            if not os.path.isfile(p):
                raise FileNotFoundError('%s: missing %s of the training set in %s'
                                        % (p, what, folder))
        self._rec_size = os.path.getsize(self.rec_path)
        self._offsets = _read_index(self.idx_path, self._rec_size, self.rec_path)
        self._fd = None
        self._pool = None
        self._lock = threading.Lock()
        self._open()
        self._check_sample(check_all_records)
        header0 = self._header(0) if self._has_record(0) else None
        self.has_header = header0 is not None and header0.flag > 0
        if self.has_header:
            self.identities = self._identities_from_header(header0)
        else:
            self.identities = self._identities_from_labels()
        self.image_ids = (np.concatenate(self.identities) if self.identities
                          else np.zeros(0, np.int64))
        if self.has_header:  # flat sets were grouped from their (checked) labels already
            self._check_labels(self.image_ids, self._scan_labels(self.image_ids))
        self._check_image_size()

    # --- public API -------------------------------------------------------------------------
    @property
    def num_images(self):
        return int(self.image_ids.size)

    def label(self, record_id):
        """The class id stored in the header of image record ``record_id`` (int)."""
        header = self._header(record_id)
        return _class_id(header, self.rec_path, record_id)

    def labels(self, record_ids):
        return np.array([self.label(int(i)) for i in record_ids], dtype=np.int64)

    def read_image(self, record_id):
        """Decoded image of record ``record_id``: uint8 RGB, shape (H, W, 3) = ``image_size``."""
        out = np.empty(self.image_size + (3,), np.uint8)
        self._decode_into(int(record_id), out)
        return out

    def read_batch(self, record_ids, return_labels=False):
        """Images of ``record_ids`` as uint8 (n, H, W, 3), decoded in the thread pool.

        With ``return_labels``: ``(images, labels)``, the labels (int64) read from the same
        records.
        """
        ids = [int(i) for i in record_ids]
        images = np.empty((len(ids),) + self.image_size + (3,), np.uint8)
        labels = np.empty(len(ids), np.int64)

        def work(chunk):
            for j in chunk:
                labels[j] = self._decode_into(ids[j], images[j])

        chunks = [c for c in np.array_split(np.arange(len(ids)), self.num_threads) if c.size]
        if len(chunks) <= 1:
            for c in chunks:
                work(c)
        else:
            list(self._executor().map(work, chunks))  # list(): re-raises a worker's error
        return (images, labels) if return_labels else images

    def close(self):
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __getstate__(self):  # picklable for worker processes: reopen the file there
        state = dict(self.__dict__)
        state.update(_fd=None, _pool=None, _lock=None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._open()

    def __len__(self):
        return self.num_images

    def __repr__(self):
        if not hasattr(self, 'image_ids'):
            return 'FaceRecordSet(%r, not opened)' % getattr(self, 'rec_path', None)
        return ('FaceRecordSet(%r: %d images, %d identities, num_classes=%d, image_size=%s, '
                'header=%s)' % (self.rec_path, self.num_images, len(self.identities),
                                self.num_classes, self.image_size, self.has_header))

    # --- reading ------------------------------------------------------------------------------
    def _open(self):
        self._fd = os.open(self.rec_path, os.O_RDONLY | getattr(os, 'O_BINARY', 0))

    def _executor(self):
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.num_threads,
                                                thread_name_prefix='face-rec-decode')
            return self._pool

    def _has_record(self, record_id):
        return 0 <= record_id < self._offsets.size and self._offsets[record_id] >= 0

    def _raw(self, record_id, limit=None):
        if not self._has_record(record_id):
            raise KeyError('%s: no record %d in %s' % (self.rec_path, record_id, self.idx_path))
        offset = int(self._offsets[record_id])
        try:
            return _read_record(self._fd, offset, self._rec_size, limit)
        except _BadRecord as err:
            raise FaceDataError('%s: record %d at byte %d (offset from %s): %s; the index does '
                                'not match the record file' % (self.rec_path, record_id, offset,
                                                               self.idx_path, err)) from None

    def _unpack(self, record_id):
        """(IRHeader, payload) of a whole record."""
        raw = self._raw(record_id)
        self._check_header_length(raw, record_id, whole=True)
        return recordio.unpack(raw)

    def _header(self, record_id):
        """IRHeader of a record, reading only the header and its label values."""
        raw = self._raw(record_id, limit=_IR_HEADER_SIZE + 4 * 8)
        flag = self._check_header_length(raw, record_id, whole=False)
        if _IR_HEADER_SIZE + 4 * flag > len(raw):  # more than 8 label values: read them all
            raw = self._raw(record_id, limit=_IR_HEADER_SIZE + 4 * flag)
            self._check_header_length(raw, record_id, whole=True)
        return recordio.unpack(raw)[0]

    def _check_header_length(self, raw, record_id, whole):
        """The header's flag (number of label values) after checking the record holds them."""
        if len(raw) < _IR_HEADER_SIZE:
            raise FaceDataError('%s: record %d is %d bytes, shorter than an IRHeader (%d bytes)'
                                % (self.rec_path, record_id, len(raw), _IR_HEADER_SIZE))
        flag = struct.unpack_from('<I', raw)[0]
        if whole and _IR_HEADER_SIZE + 4 * flag > len(raw):
            raise FaceDataError('%s: record %d announces %d label values but holds only %d bytes'
                                % (self.rec_path, record_id, flag, len(raw)))
        return flag

    def _decode_into(self, record_id, out):
        header, payload = self._unpack(record_id)
        label = _class_id(header, self.rec_path, record_id)
        img = None
        if payload:
            img = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise FaceDataError('%s: record %d is not an image (%d payload bytes that neither '
                                'JPEG nor PNG decoding accepts)'
                                % (self.rec_path, record_id, len(payload)))
        if img.shape[:2] != out.shape[:2]:
            raise self._size_error(record_id, img.shape)
        if not 0 <= label < self.num_classes:
            self._check_labels(np.array([record_id]), np.array([label]))
        cv2.cvtColor(img, cv2.COLOR_BGR2RGB, dst=out)
        return label

    # --- validation at open -------------------------------------------------------------------
    def _check_sample(self, check_all):
        ids = np.flatnonzero(self._offsets >= 0)
        if ids.size == 0:
            raise FaceDataError('%s: the index lists no records' % self.idx_path)
        if not check_all and ids.size > _SAMPLED_CHECKS:
            ids = ids[np.linspace(0, ids.size - 1, _SAMPLED_CHECKS).astype(np.int64)]
        for record_id in ids:
            self._raw(int(record_id), limit=0)

    def _identities_from_header(self, header0):
        where = '%s: identity header (record 0)' % self.rec_path
        label = np.atleast_1d(header0.label)
        if label.size < 2:
            raise FaceDataError('%s has flag %d but %d label values; expected (first identity '
                                'record, end)' % (where, header0.flag, label.size))
        first_identity, end_identity = int(label[0]), int(label[1])
        if not 1 <= first_identity <= end_identity:
            raise FaceDataError('%s: identity range [%d, %d) is invalid'
                                % (where, first_identity, end_identity))
        self._require_ids(range(first_identity, end_identity), 'identity records', where)
        self._require_ids(range(1, first_identity), 'image records', where)
        identities = []
        for record_id in range(first_identity, end_identity):
            header = self._header(record_id)
            span = np.atleast_1d(header.label)
            if header.flag == 0 or span.size < 2:
                raise FaceDataError('%s: identity record %d has no (start, end) label'
                                    % (self.rec_path, record_id))
            start, end = int(span[0]), int(span[1])
            if not 1 <= start <= end <= first_identity:
                raise FaceDataError('%s: identity record %d: image range [%d, %d) is outside '
                                    'the image records 1..%d'
                                    % (self.rec_path, record_id, start, end, first_identity - 1))
            identities.append(np.arange(start, end, dtype=np.int64))
        if len(identities) > self.num_classes:
            raise FaceDataError('%s: %d identities but %s says num_classes=%d'
                                % (self.rec_path, len(identities), self.property_path,
                                   self.num_classes))
        return identities

    def _identities_from_labels(self):
        ids = np.flatnonzero(self._offsets >= 0)
        labels = self._scan_labels(ids)
        self._check_labels(ids, labels)
        order = np.argsort(labels, kind='stable')
        bounds = np.searchsorted(labels[order], np.arange(self.num_classes + 1))
        return [ids[order[bounds[c]:bounds[c + 1]]].astype(np.int64)
                for c in range(self.num_classes)]

    def _check_labels(self, record_ids, labels):
        """Every image's class id must be in 0..num_classes-1 (``property``)."""
        bad = np.flatnonzero((labels < 0) | (labels >= self.num_classes))
        if bad.size:
            raise FaceDataError('%s: record %d has class id %d, outside 0..%d given by %s '
                                '(%d of %d images are outside)'
                                % (self.rec_path, record_ids[bad[0]], labels[bad[0]],
                                   self.num_classes - 1, self.property_path, bad.size,
                                   labels.size))

    def _scan_labels(self, record_ids):
        """Class ids of many records at once, from their headers (one small read each)."""
        record_ids = np.asarray(record_ids, dtype=np.int64)
        want = 8 + _IR_HEADER_SIZE + 4  # RecordIO header, IRHeader, first extra label value
        heads = [os.pread(self._fd, want, int(self._offsets[i])) for i in record_ids]
        labels = np.empty(len(record_ids), np.int64)
        whole = np.array([len(h) == want for h in heads], dtype=bool)
        if whole.any():
            table = np.frombuffer(b''.join(h for h, ok in zip(heads, whole) if ok),
                                  dtype=np.dtype([('magic', '<u4'), ('lrec', '<u4'),
                                                  ('flag', '<u4'), ('label', '<f4'),
                                                  ('id', '<u8'), ('id2', '<u8'),
                                                  ('extra', '<f4')]))
            usable = (table['magic'] == _MAGIC) & \
                ((table['lrec'] & _LENGTH_MASK) >= _IR_HEADER_SIZE + 4)
            value = np.where(table['flag'] > 0, table['extra'], table['label'])
            rows = np.flatnonzero(whole)
            labels[rows[usable]] = value[usable].astype(np.int64)
            whole[rows[~usable]] = False
        for k in np.flatnonzero(~whole):  # short or split records: the careful path
            labels[k] = self.label(int(record_ids[k]))
        return labels

    def _size_error(self, record_id, shape):
        return FaceDataError('%s: record %d is a %dx%d image but %s says %dx%d (num_classes,H,W); '
                             'fix the property file or rebuild the set at that size '
                             '(data/build_rec.py --image-size)'
                             % (self.rec_path, record_id, shape[0], shape[1], self.property_path,
                                self.image_size[0], self.image_size[1]))

    def _check_image_size(self, samples=8):
        """Decodes a few images spread over the set: their size must be ``property``'s."""
        if not self.image_ids.size:
            return
        picks = self.image_ids[np.linspace(0, self.image_ids.size - 1,
                                           min(samples, self.image_ids.size)).astype(np.int64)]
        for record_id in picks:
            self.read_image(record_id)

    def check_images(self, chunk=256, progress=False):
        """Decodes every image (in the thread pool), checking its label and size; raises
        FaceDataError naming the first bad record. Returns the number of images decoded."""
        from tqdm import tqdm
        with tqdm(total=self.num_images, unit='img', desc='decoding', disable=not progress) as bar:
            for start in range(0, self.num_images, chunk):
                ids = self.image_ids[start:start + chunk]
                self.read_batch(ids)
                bar.update(len(ids))
        return self.num_images

    def _require_ids(self, id_range, what, where):
        if len(id_range) == 0:
            return
        lo, hi = id_range.start, id_range.stop
        present = self._offsets[lo:hi] >= 0 if lo < self._offsets.size else np.zeros(0, bool)
        if present.size < hi - lo or not present.all():
            raise FaceDataError('%s: %s %d..%d are not all listed in %s'
                                % (where, what, lo, hi - 1, self.idx_path))


class _BadRecord(Exception):
    pass


def _read_index(idx_path, rec_size, rec_path):
    """Dense int64 array: offset of record id k at [k], -1 where the .idx lists no record k."""
    with open(idx_path, 'rb') as f:
        tokens = f.read().split()
    try:
        if len(tokens) % 2:
            raise ValueError
        pairs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    except (ValueError, OverflowError):
        raise FaceDataError('%s: %s' % (idx_path, _first_bad_index_line(idx_path))) from None
    keys, offsets = pairs[:, 0], pairs[:, 1]
    if keys.size and keys.min() < 0:
        raise FaceDataError('%s: negative record id %d' % (idx_path, keys.min()))
    bad = np.flatnonzero((offsets < 0) | (offsets + 8 > rec_size))
    if bad.size:
        k = bad[0]
        raise FaceDataError('%s: record %d at byte offset %d, past the end of %s (%d bytes); the '
                            'index does not match the record file'
                            % (idx_path, keys[k], offsets[k], rec_path, rec_size))
    dense = np.full(int(keys.max()) + 1 if keys.size else 0, -1, dtype=np.int64)
    dense[keys] = offsets  # a repeated key keeps its last offset, as MXIndexedRecordIO does
    return dense


def _first_bad_index_line(idx_path):
    with open(idx_path, 'rb') as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                int(fields[0]), int(fields[1])
            except ValueError:
                return ('line %d is %r; expected "record_id<TAB>byte_offset"'
                        % (number, line[:80].decode('latin-1')))
    return 'expected lines "record_id<TAB>byte_offset"'


def _read_record(fd, offset, file_size, limit=None):
    """One RecordIO record starting at ``offset``; at most ``limit`` bytes of it if given.

    A record whose data contains the magic number is stored in parts (cflag 1 = first, 2 =
    middle, 3 = last; 0 = whole); the magic words between parts are put back.
    """
    parts, size, pos, first = [], 0, offset, True
    while True:
        head = os.pread(fd, 8, pos)
        if len(head) < 8:
            raise _BadRecord('truncated RecordIO header')
        magic, lrec = struct.unpack('<II', head)
        if magic != _MAGIC:
            raise _BadRecord('no RecordIO magic number (0x%08x)' % magic)
        cflag, length = lrec >> 29, lrec & _LENGTH_MASK
        if cflag > 3 or (first and cflag not in (0, 1)) or (not first and cflag not in (2, 3)):
            raise _BadRecord('invalid RecordIO continuation flag %d' % cflag)
        if pos + 8 + length > file_size:
            raise _BadRecord('record of %d bytes runs past the end of the file' % length)
        want = length if limit is None else max(0, min(length, limit - size))
        data = os.pread(fd, want, pos + 8) if want else b''
        if len(data) < want:
            raise _BadRecord('truncated record data')
        parts.append(data)
        size += len(data)
        pos += 8 + ((length + 3) & ~3)
        if cflag in (0, 3) or (limit is not None and size >= limit):
            break
        parts.append(struct.pack('<I', _MAGIC))
        size += 4
        first = False
    raw = b''.join(parts)
    return raw if limit is None else raw[:limit]


def _class_id(header, rec_path, record_id):
    label = header.label
    if not np.isscalar(label):
        label = np.atleast_1d(label)
        if label.size == 0:
            raise FaceDataError('%s: record %d has an empty label' % (rec_path, record_id))
        label = label[0]
    return int(label)


# --- MTER's source / target streams ------------------------------------------------------------
def identity_streams(identities, rng, shuffle_identities=True):
    """One epoch of MTER's two image streams: ``(stream_a, stream_b)`` int64 arrays.

    The identities (taken in a random order if ``shuffle_identities``, as MTER does at every
    reset) are dealt alternately: 1st -> A, 2nd -> B, 3rd -> A, ...; each stream is then the
    shuffled list of its identities' image ids.  Sources are drawn from A and targets from B, so
    a source and its target never share an identity.  Identities without images are skipped.
    ``rng``: numpy Generator or RandomState.
    """
    order = np.arange(len(identities))
    if shuffle_identities:
        order = rng.permutation(order)
    dealt = [[], []]
    turn = 0
    for k in order:
        images = np.asarray(identities[k], dtype=np.int64)
        if images.size == 0:
            continue
        dealt[turn].append(images)
        turn = 1 - turn
    streams = []
    for chunks in dealt:
        stream = np.concatenate(chunks) if chunks else np.zeros(0, np.int64)
        streams.append(rng.permutation(stream))
    return streams[0], streams[1]


# --- augmentations (pure: return new arrays) ----------------------------------------------------
def random_mirror(batch, rng, prob=0.5):
    """Flip each image of an (n, H, W, C) batch left-right with probability ``prob``."""
    batch = np.asarray(batch)
    flip = rng.random(batch.shape[0]) < prob
    out = batch.copy()
    out[flip] = batch[flip, :, ::-1]
    return out


def cutoff(batch, size, rng, prob=1.0, fill=127.5):
    """Grey out a random square in each image of an (n, H, W, C) batch (InsightFace's cutoff).

    As in MTER's ad_data.py: a centre (ch, cw) uniform over all pixels, rows
    max(0, ch - size//2) .. min(H, ch + size//2) - 1 and likewise columns set to ``fill`` (127.5
    there; InsightFace's image_iter uses 128 and applies it with ``prob`` 0.5).  The result is
    float32 unless ``fill`` is exactly representable in the batch's dtype (e.g. 128 for uint8),
    which keeps the dtype.  ``size`` <= 0 returns a copy.
    """
    batch = np.asarray(batch)
    exact = np.issubdtype(batch.dtype, np.integer) and float(fill).is_integer() and \
        np.iinfo(batch.dtype).min <= fill <= np.iinfo(batch.dtype).max
    out = batch.copy() if exact or np.issubdtype(batch.dtype, np.floating) \
        else batch.astype(np.float32)
    if size <= 0:
        return out
    n, height, width = batch.shape[:3]
    half = int(size) // 2
    apply = rng.random(n) < prob
    centre_h = rng.integers(0, height, n) if hasattr(rng, 'integers') else rng.randint(0, height, n)
    centre_w = rng.integers(0, width, n) if hasattr(rng, 'integers') else rng.randint(0, width, n)
    for i in np.flatnonzero(apply):
        top, bottom = max(0, centre_h[i] - half), min(height, centre_h[i] + half)
        left, right = max(0, centre_w[i] - half), min(width, centre_w[i] + half)
        out[i, top:bottom, left:right] = fill
    return out


# --- command line: summary and decode rate ------------------------------------------------------
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog='python -m data.face_rec',
        description='Open an InsightFace training set (train.rec/.idx/property), print a summary '
                    'and optionally measure the image decode rate.')
    parser.add_argument('data', help='data folder, or path of its train.rec')
    parser.add_argument('--check-all', action='store_true',
                        help='check the RecordIO header of every record, not only a sample, and '
                             'decode every image (size and label checked)')
    parser.add_argument('--bench', type=int, default=0, metavar='N',
                        help='decode N images (random ids, repeated if needed) single-threaded '
                             'and with the thread pool, and print images/s')
    parser.add_argument('--threads', type=int, default=None, help='thread pool size')
    args = parser.parse_args(argv)
    with FaceRecordSet(args.data, check_all_records=args.check_all,
                       num_threads=args.threads) as data:
        sizes = np.array([len(v) for v in data.identities])
        print(data)
        if sizes.size:
            print('images per identity: min %d, median %d, max %d'
                  % (sizes.min(), np.median(sizes), sizes.max()))
        if args.check_all:
            start = time.perf_counter()
            count = data.check_images(progress=True)
            print('decoded all %d images in %.1f s: every one is a %dx%d image with a class id '
                  'in 0..%d' % ((count, time.perf_counter() - start) + data.image_size
                                + (data.num_classes - 1,)))
        if args.bench > 0 and data.num_images:
            ids = np.random.default_rng(0).choice(data.image_ids, args.bench)
            data.read_batch(ids[:min(64, ids.size)])  # warm the page cache and the pool
            start = time.perf_counter()
            for i in ids:
                data.read_image(i)
            single = args.bench / (time.perf_counter() - start)
            start = time.perf_counter()
            for chunk in np.array_split(ids, max(1, ids.size // 256)):
                data.read_batch(chunk)
            pooled = args.bench / (time.perf_counter() - start)
            print('decode %dx%d: %.0f images/s single thread, %.0f images/s read_batch with %d '
                  'threads' % (data.image_size + (single, pooled, data.num_threads)))


if __name__ == '__main__':
    main()
