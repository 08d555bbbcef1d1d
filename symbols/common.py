"""Layer helpers shared by every network builder.

The only difference between a network in training mode and the same network in adversary mode
is here: batch-norm layers use their moving statistics (``use_global_stats``) and dropout is off,
so the attack sees the deterministic inference network the main group is training.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

EMBEDDING_NAME = 'embedding'  # every builder ends in an identity op of this name (no parameters)


def batch_norm(data, name, adversary=False, fix_gamma=False, bn_mom=0.9, eps=2e-5):
    return mx.sym.BatchNorm(data=data, fix_gamma=fix_gamma, eps=eps, momentum=bn_mom,
                            use_global_stats=adversary, name=name)


def dropout(data, p, adversary=False, name=None):
    """Dropout that the adversary mode removes (p=0), as the original's adversary copy did."""
    if adversary or p <= 0:
        return data
    return mx.sym.Dropout(data=data, p=p, name=name)


def flatten_for_fc(data, name):
    """An explicit Flatten between a convolution + batch-norm and a FullyConnected layer.

    MXNet 1.9.1's oneDNN subgraph backend fuses convolution + batch-norm for inference and
    hands its output, in oneDNN's blocked layout, to FullyConnected, which fails at the second
    forward on AVX-512 CPUs ("Check failed: !IsMKLDNNData()"). A Flatten reorders it first; it
    has no parameters, and the value is the same (FullyConnected flattens its input anyway)."""
    return mx.sym.Flatten(data=data, name=name)


def name_embedding(sym):
    """Marks the embedding: ``<EMBEDDING_NAME>_output`` in the symbol's internals."""
    return mx.sym.identity(sym, name=EMBEDDING_NAME)


def find_embedding(sym):
    """The embedding output of a loaded checkpoint symbol.

    This project's checkpoints carry ``embedding_output``; stock InsightFace ones ``fc1_output``.
    """
    internals = sym.get_internals()
    names = internals.list_outputs()
    for name in (EMBEDDING_NAME + '_output', 'fc1_output'):
        if name in names:
            return internals[name]
    raise ValueError('the symbol has neither %s_output nor fc1_output: not an embedding network'
                     % EMBEDDING_NAME)
