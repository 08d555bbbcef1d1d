#!/usr/bin/env python
"""MTER fine-tuning of InsightFace ArcFace models on an InsightFace RecordIO set, MXNet 1.9.

Paper (paths changed):
  python ad_face.py --network r50 --loss-type 4 --margin-m 0.5 --data-dir /data/CASIA_rec \
    --lr 0.01 --main-per-batch-size 90 --adv-per-batch-size 120 --ctx-num 4 --ctx-adv-num 2 \
    --prefix models/mter-r50/model --pretrained models/r50_webface_arc/model,100
"""
import argparse
import logging

import numpy as np

from data.face_rec import FaceRecordSet
from eval.model import Network
from eval.verification import load_targets, verify_targets
from src import args as flags
from src.face_sampler import IdentityStreamSampler
from src.fit import Trainer, seed_everything, setup_logging


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MTER fine-tuning of an ArcFace model on an InsightFace .rec set.',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    g = parser.add_argument_group('data')
    g.add_argument('--data-dir', default='',
                   help='training set folder: train.rec, train.idx, property (and the .bin files)')
    g.add_argument('--target', default='lfw,cplfw,agedb_30',
                   help='verification .bin names checked every --verbose batches ("" for none)')
    g.add_argument('--ver-dir', default='',
                   help='folder of the --target .bin files (default: --data-dir)')
    g.add_argument('--ver-batch-size', type=int, default=60, help='verification batch size')
    g.add_argument('--rand-mirror', type=int, default=1, help='random horizontal mirror (0/1)')
    g.add_argument('--cutoff', type=int, default=0, help='cutout square side (0: off)')
    g = flags.add_network_args(parser, network='r50')
    g.set_defaults(margin_m=0.5, margin_s=64.0)
    g.add_argument('--version-se', type=int, default=0, help='squeeze-excitation units (0/1)')
    g.add_argument('--version-input', type=int, default=1, help='fresnet input block')
    g.add_argument('--version-output', default='E', help='fresnet embedding head (E, ...)')
    g.add_argument('--version-unit', type=int, default=3, help='fresnet residual unit')
    g.add_argument('--version-act', default='prelu', help='fresnet activation')
    flags.add_mter_args(parser, adv_round=10, adv_sigma=1, adv_thd=0.1, weightadv=1,
                        main_per_batch_size=90, adv_per_batch_size=60, faces=True)
    flags.add_train_args(parser)
    parser.set_defaults(lr=0.001, verbose=200)
    return parser.parse_args(argv)


class Verification:
    """Trainer evaluator: Accuracy-Flip on every --target .bin; scores in --target order."""

    def __init__(self, targets, batch_size):
        self.targets, self.batch_size = targets, batch_size

    def __call__(self, symbol, arg_params, aux_params, ctx):
        if not self.targets:
            return [], 'no verification targets'
        net = Network(symbol, arg_params, aux_params, output='embedding', ctx=ctx)
        results = verify_targets(net, self.targets, self.batch_size)  # logs each target
        text = 'Accuracy-Flip: ' + ' '.join('%s %.5f' % (name, r['acc_mean'])
                                            for name, r in results.items())
        return [r['acc_mean'] for r in results.values()], text


def main(argv=None):
    setup_logging()
    args = parse_args(argv)
    if not args.data_dir:
        raise SystemExit('ad_face.py: --data-dir is required (a folder with train.rec, '
                         'train.idx and property)')
    logging.info('arguments: %s', vars(args))
    seed_everything(args.seed)
    recordset = FaceRecordSet(args.data_dir)
    height, width = recordset.image_size
    logging.info('data: %s: %d identities, %d images, %dx%d', args.data_dir,
                 recordset.num_classes, recordset.num_images, height, width)
    names = [t for t in args.target.split(',') if t]
    targets = load_targets(args.ver_dir or args.data_dir, names, (height, width)) if names \
        else {}
    trainer = Trainer(args, image_shape=(3, height, width), num_classes=recordset.num_classes,
                      pixel_range=(0.0, 255.0), adv_step=args.adv_sigma, adv_sigma=args.adv_eps,
                      evaluate=Verification(targets, args.ver_batch_size),
                      drop_pretrained=('fc7',), normalized_softmax=True)
    sampler = IdentityStreamSampler(recordset, trainer.plan.sources,
                                    np.random.RandomState(args.seed), bool(args.rand_mirror),
                                    args.cutoff)
    trainer.fit(sampler)


if __name__ == '__main__':
    main()
