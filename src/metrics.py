"""Training metrics of the main step, accumulated over a logging window."""
import numpy as np


class TrainMetrics:
    """acc (of the images the cross-entropy sees: MTER's clean sources+targets, TLA's
    adversarial anchors), ce (softmax loss), triplet (adv loss), the triplet's two mean
    distances (``distance_names``: MTER's AP, AN; TLA's d(a,p), d(a,n)), attack rounds."""

    NAMES = ('acc', 'ce', 'triplet', 'AP', 'AN', 'rounds')

    def __init__(self, distance_names=('AP', 'AN')):
        self.distance_names = distance_names
        self.reset()

    def reset(self):
        self.sums = dict.fromkeys(self.NAMES, 0.0)
        self.correct = self.seen = self.batches = 0

    def update(self, outputs, rounds):
        """``outputs``: Module.get_outputs(merge_multi_context=False), in the order of
        src.mter.OUTPUTS (src.tla.OUTPUTS is the same).

        Returns the batch's (ce, triplet) so the caller can stop on a non-finite loss."""
        logprob, label, ce, ap, an, triplet = outputs
        for lp, lab in zip(logprob, label):
            pred = lp.argmax(axis=1).asnumpy().astype(np.int64)
            self.correct += int((pred == lab.asnumpy().astype(np.int64)).sum())
            self.seen += len(pred)
        mean = lambda arrays: float(np.mean([a.asnumpy()[0] for a in arrays]))  # noqa: E731
        batch = {'ce': mean(ce), 'triplet': mean(triplet), 'AP': mean(ap), 'AN': mean(an),
                 'rounds': float(rounds)}
        for k, v in batch.items():
            self.sums[k] += v
        self.batches += 1
        return batch['ce'], batch['triplet']

    def get(self):
        out = {k: self.sums[k] / max(self.batches, 1) for k in self.NAMES if k != 'acc'}
        out['acc'] = self.correct / max(self.seen, 1)
        return out

    def format(self):
        v = self.get()
        return 'acc=%.4f softmaxloss=%.4f advloss=%.4f %s=%.4f %s=%.4f rounds=%.1f' % (
            v['acc'], v['ce'], v['triplet'], self.distance_names[0], v['AP'],
            self.distance_names[1], v['AN'], v['rounds'])
