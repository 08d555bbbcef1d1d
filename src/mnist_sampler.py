"""Sources and targets for MNIST-format data: at every reset the classes are split at random
into two halves; sources come from one half, targets from the other (REFERENCE.md §1)."""
import numpy as np


class ClassSplitSampler:
    """Yields (src_x, src_y, tar_x, tar_y), S images each, until either half runs out."""

    def __init__(self, images, labels, sources, rng=None):
        self.images, self.labels = images, np.asarray(labels)
        self.sources = sources
        self.rng = rng or np.random.RandomState()
        self.classes = np.unique(self.labels)
        if len(self.classes) < 2:
            raise ValueError('need at least 2 classes to split into sources and targets')
        self.src_classes = self.tar_classes = None
        self.reset()

    def reset(self):
        order = self.rng.permutation(self.classes)
        half = len(order) // 2
        self.src_classes, self.tar_classes = np.sort(order[:half]), np.sort(order[half:])
        pick = lambda classes: self.rng.permutation(  # noqa: E731
            np.flatnonzero(np.isin(self.labels, classes)))
        self._src, self._tar = pick(self.src_classes), pick(self.tar_classes)
        self._cur = 0
        if min(len(self._src), len(self._tar)) < self.sources:
            raise ValueError('a batch needs %d sources and %d targets but the class halves hold '
                             'only %d and %d images' % (self.sources, self.sources,
                                                        len(self._src), len(self._tar)))

    @property
    def batches_per_epoch(self):
        return min(len(self._src), len(self._tar)) // self.sources

    def __iter__(self):
        return self

    def __next__(self):
        start, end = self._cur, self._cur + self.sources
        if end > min(len(self._src), len(self._tar)):
            raise StopIteration
        self._cur = end
        s, t = self._src[start:end], self._tar[start:end]
        return self.images[s], self.labels[s], self.images[t], self.labels[t]
