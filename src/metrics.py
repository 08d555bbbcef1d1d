"""Training metrics of the main step, accumulated over a logging window."""
import math

import numpy as np


class TrainMetrics:
    """acc (clean sources+targets), ce (softmax loss), triplet (adv loss), AP, AN, attack rounds."""

    NAMES = ('acc', 'ce', 'triplet', 'AP', 'AN', 'rounds')

    def __init__(self):
        self.reset()

    def reset(self):
        self.sums = dict.fromkeys(self.NAMES, 0.0)
        self.correct = self.seen = self.batches = 0

    def update(self, outputs, rounds):
        """``outputs``: Module.get_outputs(merge_multi_context=False), the order of src.mter.OUTPUTS.

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
        return 'acc=%.4f softmaxloss=%.4f advloss=%.4f AP=%.4f AN=%.4f rounds=%.1f' % (
            v['acc'], v['ce'], v['triplet'], v['AP'], v['AN'], v['rounds'])


def check_finite(step, ce, triplet):
    if not (math.isfinite(ce) and math.isfinite(triplet)):
        raise FloatingPointError(
            'non-finite loss at batch %d (softmax loss %r, adv loss %r): stopping without saving; '
            'the last checkpoint on disk is the last good one. Lower --lr or check the data.'
            % (step, ce, triplet))
