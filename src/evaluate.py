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
    """Evaluator for Trainer: test-set accuracy of the deploy symbol."""

    def __init__(self, trainer_symbol_getter, images, labels, ctx=None):
        self.symbol = trainer_symbol_getter
        self.images, self.labels, self.ctx = images, labels, ctx

    def __call__(self, arg_params, aux_params):
        acc = classification_accuracy(self.symbol(), arg_params, aux_params, self.images,
                                      self.labels, self.ctx)
        return acc, 'Val-Accuracy: %.5f (%d test images)' % (acc, len(self.labels))
