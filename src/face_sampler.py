"""Sources and targets for face training from an InsightFace .rec set (REFERENCE.md §1 "Faces"):
identities are dealt alternately into two streams at every epoch, sources come from stream A and
targets from stream B, so a source and its target never share an identity.

Decoding runs one batch ahead in a background thread (JPEG decoding releases the GIL), so it
overlaps the attack round and the main step instead of adding to them."""
import concurrent.futures

import numpy as np

from data.face_rec import cutoff, identity_streams, random_mirror


class IdentityStreamSampler:
    """Yields (src_x, src_y, tar_x, tar_y): float32 (S, 3, H, W) in [0, 255], int labels."""

    def __init__(self, recordset, sources, rng=None, rand_mirror=True, cutoff_size=0,
                 prefetch=True, identities=None):
        """``identities``: the identities to sample (default: all of the record set's)."""
        self.recordset = recordset
        self.identities = recordset.identities if identities is None else identities
        self.sources = sources
        self.rng = rng or np.random.RandomState()
        self.rand_mirror, self.cutoff_size = rand_mirror, cutoff_size
        self._pool = concurrent.futures.ThreadPoolExecutor(1) if prefetch else None
        self._next = None
        self.reset()

    def reset(self):
        pending, self._next = self._next, None
        if pending is not None and self._pool is not None and not pending.cancel():
            # a batch still being prefetched draws from self.rng: let it finish first, so that
            # a seeded run draws in the same order every time (its batch is discarded)
            concurrent.futures.wait([pending])
        self.stream_a, self.stream_b = identity_streams(self.identities, self.rng)
        if min(len(self.stream_a), len(self.stream_b)) < self.sources:
            raise ValueError('%s: a batch needs %d source and %d target images, but the two '
                             'identity streams hold %d and %d'
                             % (self.recordset.rec_path, self.sources, self.sources,
                                len(self.stream_a), len(self.stream_b)))
        self._cur = 0
        self._next = None

    @property
    def batches_per_epoch(self):
        return min(len(self.stream_a), len(self.stream_b)) // self.sources

    def _load(self, ids):
        images, labels = self.recordset.read_batch(ids, return_labels=True)
        if self.rand_mirror:
            images = random_mirror(images, self.rng)
        if self.cutoff_size > 0:
            images = cutoff(images, self.cutoff_size, self.rng)
        return np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32), labels

    def _make(self, start):
        end = start + self.sources
        src = self._load(self.stream_a[start:end])
        tar = self._load(self.stream_b[start:end])
        return src[0], src[1], tar[0], tar[1]

    def _submit(self, start):
        if start + self.sources > min(len(self.stream_a), len(self.stream_b)):
            return None
        if self._pool is None:
            return _Done(self._make(start))
        return self._pool.submit(self._make, start)

    def __iter__(self):
        return self

    def __next__(self):
        current = self._next if self._next is not None else self._submit(self._cur)
        if current is None:
            raise StopIteration
        self._cur += self.sources
        self._next = self._submit(self._cur)
        return current.result()


class _Done:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value
