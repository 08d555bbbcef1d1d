"""Scoring the current weights during training, with the same loader the eval tools use."""
import numpy as np

from eval.model import Network


def classification_accuracy(symbol, arg_params, aux_params, images, labels, ctx=None,
                            batch_size=500):
    """Top-1 accuracy of the checkpoint symbol (logits) on (images, labels)."""
    net = Network(symbol, arg_params, aux_params, output='logits', ctx=ctx)
    pred = net.predict(images, batch_size).argmax(axis=1)
    return float(np.mean(pred == np.asarray(labels)))


class TestAccuracy:
    """Trainer evaluator: test-set accuracy of the deploy symbol (a separate inference network,
    so the training module and its metrics are untouched)."""

    def __init__(self, images, labels):
        self.images, self.labels = images, labels

    def __call__(self, symbol, arg_params, aux_params, ctx):
        acc = classification_accuracy(symbol, arg_params, aux_params, self.images, self.labels,
                                      ctx)
        return [acc], 'Val-Accuracy: %.5f (%d test images)' % (acc, len(self.labels))
