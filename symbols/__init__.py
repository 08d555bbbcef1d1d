"""Network builders. Every network is built by one function, in training or adversary mode.

``get_embedding(network, adversary=...)`` is the single entry point: ``adversary=True`` gives
the same graph with batch-norm in global-stats mode and dropout off (see ``symbols.common``).
Every returned symbol ends in an identity op named ``embedding``; parameter names follow the
original code (MNIST nets) and InsightFace (fresnet) so their checkpoints load.
"""
from .common import EMBEDDING_NAME, find_embedding

__all__ = ["CIFAR10_NETWORKS", "EMBEDDING_NAME", "FACE_NETWORKS", "FIXED_INPUTS",
           "MNIST_NETWORKS", "check_network_input", "find_embedding", "get_embedding",
           "is_face_network"]


def is_face_network(network):
    """InsightFace-style networks (RGB 0..255 in, normalised inside the graph)."""
    return network in ('y1', 'checkpoint') or (network[:1] == 'r' and network[1:].isdigit())

MNIST_NETWORKS = ('o10', 'o18', 'o34', 'o50', 's5', 's8', 'l', 'l5', 'tla')
CIFAR10_NETWORKS = ('wrn',)
FACE_NETWORKS = ('rNN', 'y1', 'checkpoint')
# networks whose graph is built for one input only: (C, H, W), what it is
FIXED_INPUTS = {'wrn': ((3, 32, 32), "Madry's CIFAR-10 wide ResNet: RGB 3x32x32 in [0, 255] "
                                     "(its per-image standardisation counts 3x32x32 values); "
                                     "train it with --dataset cifar10")}


def check_network_input(network, image_shape):
    """Raises ValueError, before anything is built, when ``network`` takes one input only
    (``FIXED_INPUTS``) and ``image_shape`` (C, H, W) is not it."""
    if network not in FIXED_INPUTS:
        return
    need, what = FIXED_INPUTS[network]
    if tuple(int(d) for d in image_shape) != need:
        raise ValueError('--network %s takes %sx%sx%s images, not the %s images of this data: '
                         '%s' % (network, need[0], need[1], need[2],
                                 'x'.join(str(int(d)) for d in image_shape), what))


def get_embedding(network, adversary=False, emb_size=512, bn_mom=0.9, workspace=256,
                  checkpoint=None, **fresnet_args):
    """Returns (embedding symbol, embedding size) for a network name.

    o10/o18/o34/o50, s5/s8: pre-activation ResNets (embedding size fixed by the network);
    l or l5: LeNet (120); tla: TLA's MNIST CNN (1024, symbols.tla_cnn); wrn: Madry et al.'s
    CIFAR-10 wide ResNet (640, RGB in [0, 255], symbols.wide_resnet);
    r18/r34/r50/r100/...: InsightFace fresnet (``emb_size``), with
    ``fresnet_args`` = version_se, version_input, version_output, version_unit, version_act;
    y1: InsightFace's MobileFaceNet (``emb_size``, version_output);
    checkpoint: the graph of a trained model, cut at its embedding layer (``checkpoint`` =
    dict(symbol=..., emb_layer=..., image_shape=...), see ``symbols.graph.from_checkpoint``).
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
    if network == 'y1':
        from . import mobilefacenet
        return mobilefacenet.get_symbol(adversary=adversary, emb_size=emb_size, bn_mom=bn_mom,
                                        workspace=workspace, **fresnet_args)
    if network == 'checkpoint':
        if not checkpoint:
            raise ValueError('--network checkpoint builds the network from --pretrained\'s own '
                             'graph: give --pretrained')
        from .graph import from_checkpoint
        return from_checkpoint(checkpoint['symbol'], checkpoint.get('emb_layer', 'fc1'),
                               checkpoint.get('image_shape', (3, 112, 112)), adversary)
    if network in ('l', 'l5'):
        return lenet.lenet(adversary=adversary)
    if network[:1] == 'r' and network[1:].isdigit():
        from . import fresnet
        return fresnet.get_symbol(int(network[1:]), adversary=adversary, emb_size=emb_size,
                                  bn_mom=bn_mom, workspace=workspace, **fresnet_args)
    raise ValueError('unknown --network %r: expected one of %s, rNN (fresnet, e.g. r50), y1 '
                     '(MobileFaceNet) or checkpoint (the --pretrained model\'s own graph)'
                     % (network, ', '.join(MNIST_NETWORKS + CIFAR10_NETWORKS)))
