"""Network builders. Every network is built by one function, in training or adversary mode.

``get_embedding(network, adversary=...)`` is the single entry point: ``adversary=True`` gives
the same graph with batch-norm in global-stats mode and dropout off (see ``symbols.common``).
Every returned symbol ends in an identity op named ``embedding``; parameter names follow the
original code (MNIST nets) and InsightFace (fresnet) so their checkpoints load.
"""
from .common import EMBEDDING_NAME, find_embedding

__all__ = ["CIFAR10_NETWORKS", "EMBEDDING_NAME", "MNIST_NETWORKS", "find_embedding",
           "get_embedding"]

MNIST_NETWORKS = ('o10', 'o18', 'o34', 'o50', 's5', 's8', 'l', 'l5', 'tla')
CIFAR10_NETWORKS = ('wrn',)


def get_embedding(network, adversary=False, emb_size=512, bn_mom=0.9, workspace=256,
                  **fresnet_args):
    """Returns (embedding symbol, embedding size) for a network name.

    o10/o18/o34/o50, s5/s8: pre-activation ResNets (embedding size fixed by the network);
    l or l5: LeNet (120); tla: TLA's MNIST CNN (1024, symbols.tla_cnn); wrn: Madry et al.'s
    CIFAR-10 wide ResNet (640, RGB in [0, 255], symbols.wide_resnet);
    r18/r34/r50/r100/...: InsightFace fresnet (``emb_size``), with
    ``fresnet_args`` = version_se, version_input, version_output, version_unit, version_act.
    """
    from . import lenet, resnet_o
    if network == 'tla':
        from .tla_cnn import tla_cnn
        return tla_cnn(adversary=adversary, bn_mom=bn_mom, workspace=workspace)
    if network == 'wrn':
        from .wide_resnet import wide_resnet
        return wide_resnet(adversary=adversary, bn_mom=bn_mom, workspace=workspace)
    if network in resnet_o.SPECS:
        return resnet_o.resnet_o(network, adversary=adversary, bn_mom=bn_mom,
                                 workspace=workspace)
    if network in ('l', 'l5'):
        return lenet.lenet(adversary=adversary)
    if network[:1] == 'r' and network[1:].isdigit():
        from . import fresnet
        return fresnet.get_symbol(int(network[1:]), adversary=adversary, emb_size=emb_size,
                                  bn_mom=bn_mom, workspace=workspace, **fresnet_args)
    raise ValueError('unknown --network %r: expected one of %s, or rNN (fresnet, e.g. r50)'
                     % (network, ', '.join(MNIST_NETWORKS + CIFAR10_NETWORKS)))
