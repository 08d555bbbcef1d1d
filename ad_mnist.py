#!/usr/bin/env python
"""MTER training on MNIST-format data (Zhong & Deng, ICCV 2019), MXNet 1.9.

Paper, stage 1 (paths changed):
  python ad_mnist.py --loss-type 0 --verbose 30 --network o18 --lr 0.1 --lr-steps 8000,16000 \
    --end-epoch 100 --main-per-batch-size 2700 --adv-per-batch-size 1800 --adv-round 50 \
    --adv-alpha 0.20 --adv-sigma 0.35 --adv-thd 0.05 --weightadv 1 --prefix models/o18/model
"""
import argparse
import logging

import numpy as np

from data.mnist import DATASETS, load_mnist
from src import args as flags
from src.evaluate import TestAccuracy
from src.fit import Trainer, seed_everything, setup_logging
from src.mnist_sampler import ClassSplitSampler


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MTER adversarial training on MNIST-format data (IDX files).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = parser.add_argument_group('data')
    g.add_argument('--data-dir', default='',
                   help='directory with MNIST IDX files (raw or .gz); default: '
                        '~/.mxnet/datasets/mnist, else Debian Fashion-MNIST, else sklearn digits')
    g.add_argument('--dataset', default='auto', choices=DATASETS,
                   help='which data to use; auto picks as described for --data-dir')
    g.add_argument('--num-train', type=int, default=0,
                   help='use only the first N training images (0: all)')
    g.add_argument('--num-test', type=int, default=0,
                   help='evaluate on the first N test images (0: all)')
    flags.add_network_args(parser, network='o18')
    flags.add_mter_args(parser)
    flags.add_train_args(parser)
    return parser.parse_args(argv)


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    logging.info('arguments: %s', vars(args))
    seed_everything(args.seed)
    data = load_mnist(args.data_dir or None, args.dataset)
    train_x, train_y = data.train_x, data.train_y
    test_x, test_y = data.test_x, data.test_y
    if args.num_train:
        train_x, train_y = train_x[:args.num_train], train_y[:args.num_train]
    if args.num_test:
        test_x, test_y = test_x[:args.num_test], test_y[:args.num_test]
    num_classes = int(max(train_y.max(), test_y.max())) + 1
    trainer = Trainer(args, image_shape=(1, 28, 28), num_classes=num_classes,
                      pixel_range=(0.0, 1.0), adv_step=args.adv_step, adv_sigma=args.adv_sigma,
                      evaluate=TestAccuracy(test_x, test_y))
    sampler = ClassSplitSampler(train_x, train_y, trainer.plan.sources,
                                np.random.RandomState(args.seed))
    trainer.fit(sampler)


if __name__ == '__main__':
    main()
