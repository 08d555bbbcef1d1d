#!/usr/bin/env python
"""MTER training on MNIST-format data (Zhong & Deng, ICCV 2019), MXNet 1.9.

Paper, stage 1 (paths changed):
  python ad_mnist.py --loss-type 0 --verbose 30 --network o18 --lr 0.1 --lr-steps 8000,16000 \
    --end-epoch 100 --main-per-batch-size 2700 --adv-per-batch-size 1800 --adv-round 50 \
    --adv-alpha 0.20 --adv-sigma 0.35 --adv-thd 0.05 --weightadv 1 --prefix models/o18/model
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import sys

import numpy as np

from data.mnist import DATASETS, first, load_mnist
from src import args as flags
from eval.accuracy import TestAccuracy
from src.fit import Trainer, seed_everything, setup_logging
from src.errors import run_main
from src.mter import Mter
from src.mnist_sampler import ClassSplitSampler


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MTER adversarial training on MNIST-format data (IDX files).',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    flags.add_data_args(
        parser, DATASETS,
        data_dir_help='directory with MNIST IDX files (raw or .gz); default: '
                      '~/.mxnet/datasets/mnist, else Debian Fashion-MNIST, else sklearn digits',
        dataset_help='which data to use; auto picks as described for --data-dir')
    flags.add_network_args(parser, network='o18')
    flags.add_mter_args(parser, ce_weight=4 / 9.0, ce_weight_help=CE_WEIGHT_HELP)
    flags.add_train_args(parser)
    return parser.parse_args(argv)


CE_WEIGHT_HELP = ("Default 4/9: the original divided the summed cross-entropy of the 2B/3 clean "
                  "images by 3B/2 (B = main batch) and rescaled by 1/ctx-num, i.e. 4/9 of the "
                  "mean at the paper's single main context.")


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    logging.info('arguments: %s', vars(args))
    seed_everything(args.seed)
    data = load_mnist(args.data_dir or None, args.dataset, args.num_classes)
    data = first(data, args.num_train, args.num_test)
    train_x, train_y, test_x, test_y = data.train_x, data.train_y, data.test_x, data.test_y
    trainer = Trainer(args, Mter(args),
                      image_shape=(1, 28, 28), num_classes=args.num_classes,
                      pixel_range=(0.0, 1.0), evaluate=TestAccuracy(test_x, test_y))
    shard = trainer.worker_shard()  # everything, unless this is one worker of a dist job
    sampler = ClassSplitSampler(train_x[shard], train_y[shard], trainer.plan.sources,
                                np.random.RandomState(args.seed))
    trainer.fit(sampler, trainer.epoch_batches(len(train_x), 2 * trainer.plan.sources))
    return trainer


if __name__ == '__main__':
    sys.exit(run_main(main))
