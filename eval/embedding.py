"""Embeddings of images by a network (an ``eval.model.Network`` or any embedding function, so
the trainer can pass its own forward), and the verification protocol run on them."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import logging
from collections import OrderedDict

import numpy as np

from eval.protocol import verification_metrics

log = logging.getLogger(__name__)


def as_embed_fn(network_or_fn):
    """An embedding function: NumPy float32 (B, C, H, W) -> NumPy (B, D).

    Accepts an ``eval.model.Network`` or any callable returning a NumPy array or an NDArray.
    """
    from eval.model import Network
    if isinstance(network_or_fn, Network):
        import mxnet as mx
        net = network_or_fn
        return lambda x: net(mx.nd.array(x, ctx=net.ctx)).asnumpy()
    if not callable(network_or_fn):
        raise TypeError('expected an eval.model.Network or an embedding function, got %s'
                        % type(network_or_fn).__name__)

    def embed(x):
        out = network_or_fn(x)
        return out.asnumpy() if hasattr(out, 'asnumpy') else np.asarray(out)
    return embed


def embed_pairs(network_or_fn, images, batch_size, flip=True, scale=1.0, fixed_batch=False):
    """Raw embeddings of images and of their horizontal flips.

    ``images``: uint8 (N, H, W, C) (as ``data.bin_format.decode_images`` gives).  Each batch is
    fed as float32 (B, C, H, W) times ``scale`` (1.0: faces in 0..255).  ``fixed_batch``: always
    feed exactly ``batch_size`` images (the last batch is padded with copies of its last image
    and the padding dropped), for executors bound to one batch shape.
    Returns (embeddings (N, D), flip embeddings (N, D) or None).
    """
    if batch_size < 1:
        raise ValueError('batch_size must be >= 1, got %d' % batch_size)
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError('expected images (N, H, W, C), got shape %s' % (images.shape,))
    embed = as_embed_fn(network_or_fn)
    outs = {False: [], True: []}
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        count = len(batch)
        if fixed_batch and count < batch_size:
            pad = np.repeat(batch[-1:], batch_size - count, axis=0)
            batch = np.concatenate([batch, pad])
        x = np.ascontiguousarray(batch.transpose(0, 3, 1, 2), dtype=np.float32)
        if scale != 1.0:
            x *= scale
        for flipped in ((False, True) if flip else (False,)):
            xin = np.ascontiguousarray(x[:, :, :, ::-1]) if flipped else x
            out = np.asarray(embed(xin), dtype=np.float32)
            outs[flipped].append(out.reshape(len(out), -1)[:count])
    if not outs[False]:
        return np.zeros((0, 0), np.float32), (np.zeros((0, 0), np.float32) if flip else None)
    emb = np.concatenate(outs[False])
    return emb, (np.concatenate(outs[True]) if flip else None)


def evaluate_images(network_or_fn, images, issame, batch_size, nfolds=10, scale=1.0,
                    fixed_batch=False, folds=None):
    """Embeds ``images`` (pairs interleaved, uint8 NHWC) and their flips and returns
    ``verification_metrics``."""
    emb, emb_flip = embed_pairs(network_or_fn, images, batch_size, scale=scale,
                                fixed_batch=fixed_batch)
    return verification_metrics(emb, emb_flip, issame, nfolds, folds=folds)


def verify_targets(network_or_fn, targets, batch_size, nfolds=10, scale=1.0, fixed_batch=False,
                   logger=None):
    """Verification on several sets: ``targets`` maps name -> (images uint8 NHWC, issame).

    Returns an OrderedDict name -> ``verification_metrics`` dict, and logs one line per set
    ("[lfw]Accuracy-Flip: 0.99500+-0.00300 XNorm: ... VAL@FAR=1e-3: ...").
    """
    logger = logger or log
    results = OrderedDict()
    for name, (images, issame) in targets.items():
        r = evaluate_images(network_or_fn, images, issame, batch_size, nfolds, scale=scale,
                            fixed_batch=fixed_batch)
        logger.info('[%s]XNorm: %f', name, r['xnorm'])
        logger.info('[%s]Accuracy-Flip: %1.5f+-%1.5f', name, r['acc_mean'], r['acc_std'])
        logger.info('[%s]VAL@FAR=1e-3: %1.5f+-%1.5f (FAR %1.5f)', name, r['val'], r['val_std'],
                    r['far'])
        results[name] = r
    return results
