#!/usr/bin/env python
"""MTER fine-tuning of InsightFace ArcFace models on an InsightFace RecordIO set, MXNet 1.9.

Paper (paths changed):
  python ad_face.py --network r50 --loss-type 4 --margin-m 0.5 --data-dir /data/CASIA_rec \
    --lr 0.01 --main-per-batch-size 90 --adv-per-batch-size 120 --ctx-num 4 --ctx-adv-num 2 \
    --prefix models/mter-r50/model --pretrained models/r50_webface_arc/model,100
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging

import numpy as np

from data.face_rec import FaceRecordSet
from eval.model import Network
from eval.bin_sets import load_targets
from eval.embedding import verify_targets
from src import args as flags
from src.face_sampler import IdentityStreamSampler
from src.fit import Trainer, seed_everything, setup_logging
from src.mter import Mter


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
    g.add_argument('--ver-batch-size', type=flags.POSITIVE_INT, default=60,
                   help='verification batch size')
    g.add_argument('--rand-mirror', type=int, choices=(0, 1), default=1,
                   help='random horizontal mirror (0/1)')
    g.add_argument('--cutoff', type=flags.NON_NEGATIVE_INT, default=0,
                   help='cutout square side (0: off)')
    g = flags.add_network_args(parser, network='r50')
    g.set_defaults(margin_m=0.5, margin_s=64.0, emb_size=None)
    g.add_argument('--version-se', type=int, default=0, help='squeeze-excitation units (0/1)')
    g.add_argument('--version-input', type=int, default=1, help='fresnet input block')
    g.add_argument('--version-output', default=None,
                   help='embedding head (default: E for fresnet, GDC for y1, as InsightFace)')
    g.add_argument('--version-unit', type=int, default=3, help='fresnet residual unit')
    g.add_argument('--version-act', default='prelu', help='fresnet activation')
    flags.add_mter_args(parser, adv_round=10, adv_sigma=1, adv_thd=0.1, weightadv=1,
                        main_per_batch_size=90, adv_per_batch_size=60, faces=True,
                        ce_weight=1 / 3.0, ce_weight_help=CE_WEIGHT_HELP)
    flags.add_train_args(parser, lr_base=(100000, 140000, 160000))
    parser.set_defaults(lr=0.001, verbose=200)
    return flags.apply_face_preset(parser.parse_args(argv))


CE_WEIGHT_HELP = ("Default 1/3: the original divided the summed cross-entropy of the 2B/3 clean "
                  "images by B/2 (B = main batch) and rescaled by 1/ctx-num, i.e. 4/(3 ctx-num) "
                  "of the mean: 1/3 at the paper's 4 main contexts.")


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
        raise ValueError('--data-dir is required (a folder with train.rec, train.idx and '
                         'property)')
    logging.info('arguments: %s', vars(args))
    seed_everything(args.seed)
    recordset = FaceRecordSet(args.data_dir)
    height, width = recordset.image_size
    logging.info('data: %s: %d identities, %d images, %dx%d', args.data_dir,
                 recordset.num_classes, recordset.num_images, height, width)
    names = [t for t in args.target.split(',') if t]
    # checked before anything is built: the .bin images must have the training size
    targets = load_targets(args.ver_dir or args.data_dir, names, (height, width),
                           expected_from='the training set (%s) is' % recordset.property_path) \
        if names else {}
    trainer = Trainer(args, Mter(args, faces=True),
                      image_shape=(3, height, width), num_classes=recordset.num_classes,
                      pixel_range=(0.0, 255.0), evaluate=Verification(targets, args.ver_batch_size),
                      drop_pretrained=('fc7',), normalized_softmax=True)
    # identities, not images, are dealt to the workers of a dist job, so that sources and
    # targets stay disjoint within each worker
    sampler = IdentityStreamSampler(recordset, trainer.plan.sources,
                                    np.random.RandomState(args.seed), bool(args.rand_mirror),
                                    args.cutoff,
                                    identities=recordset.identities[trainer.worker_shard()])
    trainer.fit(sampler, trainer.epoch_batches(recordset.num_images, 2 * trainer.plan.sources))
    return trainer


if __name__ == '__main__':
    import sys
    from src.errors import run_main
    sys.exit(run_main(main))
