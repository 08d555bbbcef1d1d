"""Batches for TLA and adversarial training: B images with their labels, a positive for each
(another image of its class), and a pool of P images to draw negatives from (REFERENCE.md §3).

The anchors run through a shuffled pass over the training set (an epoch); the pool comes from a
second, independent shuffled stream, as TLA's separate "embedding" data iterator. Images may be
stored as uint8 (CIFAR-10) or float32: batches come out float32 in the stored pixel range, with
random 32x32 crops of the image zero-padded by 2 pixels per side (36x36) and horizontal flips
when ``augment`` (Madry's and TLA's CIFAR-10 input: cifar10_input.py pads with
resize_image_with_crop_or_pad to 36x36, then random_crop and random_flip_left_right)."""
import numpy as np


def augment_batch(images, rng, pad=2):
    """Random crop of each (C, H, W) image from its zero-padded copy, then a random
    left-right flip (each with probability 1/2)."""
    n, _, height, width = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    top = rng.randint(0, 2 * pad + 1, n)
    left = rng.randint(0, 2 * pad + 1, n)
    out = np.stack([padded[i, :, top[i]:top[i] + height, left[i]:left[i] + width]
                    for i in range(n)])
    flip = rng.rand(n) < 0.5
    out[flip] = out[flip][..., ::-1]
    return out


class ClassBatchSampler:
    """Yields (x, y, positives, pool, pool_y) until an epoch's anchors run out."""

    def __init__(self, images, labels, batch, pool_size, rng=None, augment=False):
        self.images, self.labels = images, np.asarray(labels).astype(np.int64)
        self.batch, self.pool_size = batch, pool_size
        self.rng = rng or np.random.RandomState()
        self.augment = augment
        if len(self.labels) < batch:
            raise ValueError('a batch needs %d images but the training set holds %d'
                             % (batch, len(self.labels)))
        if len(np.unique(self.labels)) < 2:
            raise ValueError('TLA needs at least 2 classes (negatives are of another class)')
        self.by_class = {c: np.flatnonzero(self.labels == c) for c in np.unique(self.labels)}
        self._pool_order, self._pool_cur = self.rng.permutation(len(self.labels)), 0
        self.reset()

    def reset(self):
        self._order, self._cur = self.rng.permutation(len(self.labels)), 0

    @property
    def batches_per_epoch(self):
        return len(self.labels) // self.batch

    def _images(self, index):
        x = np.asarray(self.images[index], dtype=np.float32)
        return augment_batch(x, self.rng) if self.augment else x

    def _positives(self, index):
        """Another image of each anchor's class (the anchor itself only if it is alone)."""
        out = np.empty_like(index)
        for k, i in enumerate(index):
            same = self.by_class[self.labels[i]]
            pick = same[self.rng.randint(len(same))]
            while pick == i and len(same) > 1:
                pick = same[self.rng.randint(len(same))]
            out[k] = pick
        return out

    def _pool(self):
        if self.pool_size == 0:  # adversarial training draws no negatives
            return np.zeros(0, np.int64)
        picked = []
        need = self.pool_size
        while need > 0:
            if self._pool_cur >= len(self._pool_order):
                self._pool_order, self._pool_cur = self.rng.permutation(len(self.labels)), 0
            take = self._pool_order[self._pool_cur:self._pool_cur + need]
            self._pool_cur += len(take)
            picked.append(take)
            need -= len(take)
        return np.concatenate(picked)

    def __iter__(self):
        return self

    def __next__(self):
        if self._cur + self.batch > len(self._order):
            raise StopIteration
        index = self._order[self._cur:self._cur + self.batch]
        self._cur += self.batch
        positives, pool = self._positives(index), self._pool()
        return (self._images(index), self.labels[index], self._images(positives),
                self._images(pool), self.labels[pool])
