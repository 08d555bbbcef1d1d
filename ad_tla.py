#!/usr/bin/env python
"""TLA (Mao et al., NeurIPS 2019) and Madry PGD adversarial training, MXNet 1.9, on the shared
training loop of ad_mnist.py (contexts, checkpoints, logs, progress bar).

MNIST-format data with TLA's MNIST settings (TLA's CNN, PGD eps 0.3 / 40 steps of 0.01, Adam
1e-4, margin 0.05, lambda 0.5):
  python ad_tla.py --dataset mnist --data-dir ~/.mxnet/datasets/mnist --prefix models/tla/model
Madry AT, the same otherwise:
  python ad_tla.py --method at --prefix models/at/model
CIFAR-10 with TLA's CIFAR-10 settings (Madry's wide ResNet, eps 8 / 7 steps of 2 in 0-255, SGD
0.1 -> 0.01 -> 0.001, margin 0.03, lambda 2, pool 500, the clean-positive triplet, 80k steps):
  python ad_tla.py --dataset cifar10 --data-dir /data/cifar-10-batches-bin --prefix models/c/m
and Madry AT on CIFAR-10 with Madry's released recipe (batch 128, PGD 10 steps of 2, lr drops
at 40k and 60k, 80k steps), the baseline of the TLA paper:
  python ad_tla.py --method at --dataset cifar10 --data-dir /data/cifar-10-batches-bin ...
Each preset carries the original's step budget (--max-steps; 0 trains until stopped).

The triplet uses the network's embedding (the layer the checkpoint names embedding_output):
TLA's CNN: its FC-1024 after ReLU; Madry's wide ResNet: the 640-d global pool; the o/s ResNets:
their global pool; LeNet: its 120-d tanh layer.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import sys

import numpy as np

from data.datasets import DATASETS, IMAGE_SHAPE, PIXEL_RANGE, kind, load_dataset
from data.mnist import first
from src import args as flags
from src import tla
from src.class_sampler import ClassBatchSampler
from src.errors import run_main
from eval.accuracy import TestAccuracy
from src.fit import Trainer, seed_everything, setup_logging
from symbols import check_network_input


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='TLA / Madry adversarial training on MNIST-format data or CIFAR-10.',
        epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_data_args(
        parser, DATASETS,
        data_dir_help='MNIST IDX folder (default: ~/.mxnet/datasets/mnist, else Debian '
                      'Fashion-MNIST, else sklearn digits), or the CIFAR-10 files\' folder',
        dataset_help='auto/mnist/fashion-mnist/digits (MNIST-format, pixels in [0, 1]) or '
                     'cifar10 (pixels in [0, 255])')
    flags.add_network_args(parser, network=None)
    flags.add_tla_args(parser)
    flags.add_train_args(parser, lr_base=())
    parser.set_defaults(loss_type=0, lr=None, wd=None, max_steps=None)
    preset_help = {'network': 'network: tla (TLA\'s MNIST CNN), wrn (Madry\'s wide ResNet), '
                              'o18, s8, l, ...',
                   'lr': 'start learning rate', 'wd': 'weight decay',
                   'lr_steps': 'batches after which lr drops x0.1',
                   'max_steps': 'stop after this many batches, the original\'s '
                                'max_num_training_steps (0: no limit)'}
    for action in parser._actions:  # pylint: disable=protected-access
        if action.dest in preset_help:
            action.help = flags.preset_help(preset_help[action.dest], action.dest)
    args = parser.parse_args(argv)
    if args.method == 'at' and args.tla_lambda not in (None, 0):
        parser.error('--method at is adversarial training without the triplet: it contradicts '
                     '--lambda %g' % args.tla_lambda)
    return args


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    seed_everything(args.seed)
    data_kind = kind(args.dataset)  # by name: the flags are checked before data is read
    flags.apply_tla_preset(args, data_kind)
    notes = flags.check_attack_units(args, data_kind, PIXEL_RANGE[data_kind], args.dataset)
    check_network_input(args.network, IMAGE_SHAPE[data_kind])
    data = load_dataset(args.dataset, args.data_dir or None, args.num_classes)
    logging.info('arguments: %s', vars(args))
    description = tla.describe(args)
    if args.epsilon == 0:  # the engine's eps 0: nothing moves
        description += ' (eps 0: no perturbation, PGD skipped: clean images)'
    logging.info('%s', description)
    for note in notes:
        logging.warning('%s', note)
    data = first(data, args.num_train, args.num_test)
    train_x, train_y, test_x, test_y = data.train_x, data.train_y, data.test_x, data.test_y
    rng = np.random.RandomState(args.seed)
    trainer = Trainer(args, tla.Tla(args, rng), image_shape=IMAGE_SHAPE[data_kind],
                      num_classes=args.num_classes, pixel_range=PIXEL_RANGE[data_kind],
                      evaluate=TestAccuracy(test_x, test_y))
    shard = trainer.worker_shard()  # everything, unless this is one worker of a dist job
    sampler = ClassBatchSampler(train_x[shard], train_y[shard], args.batch_size,
                                args.pool_size, rng, augment=bool(args.augment))
    trainer.fit(sampler, trainer.epoch_batches(len(train_x), args.batch_size))
    return trainer


if __name__ == '__main__':
    sys.exit(run_main(main))
