"""Command-line flags, defined once and shared by ad_mnist.py and ad_face.py.

Names and defaults are the original's (zhongyy/Adversarial_MTER ad_mnist.py / ad_face.py); each
script passes its own ``defaults`` for the few that differ between the two. Flags the original
had but never used (sphere-loss leftovers) are gone; see README.md, "Flags".
"""
import argparse
import math


def number(kind=float, low=None, high=None, low_open=False, high_open=False):
    """argparse type: a finite ``kind`` (int or float) within [low, high] (``*_open``: the
    bound itself excluded), so that a bad value is refused when the flags are parsed."""
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError('expected %s, got %r' % (
                'an integer' if kind is int else 'a number', text)) from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError('expected a finite number, got %r' % text)
        if low is not None and (value < low or (low_open and value == low)):
            raise argparse.ArgumentTypeError('must be %s %g, got %s'
                                             % ('>' if low_open else '>=', low, text))
        if high is not None and (value > high or (high_open and value == high)):
            raise argparse.ArgumentTypeError('must be %s %g, got %s'
                                             % ('<' if high_open else '<=', high, text))
        return value
    return parse


def steps(text):
    """argparse type: comma-separated, strictly increasing positive batch numbers."""
    try:
        values = [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated integers, got %r'
                                         % text) from None
    if any(v < 1 for v in values) or any(b <= a for a, b in zip(values, values[1:])):
        raise argparse.ArgumentTypeError('expected strictly increasing positive batch numbers, '
                                         'got %r' % text)
    return values


NON_NEGATIVE_INT = number(int, 0)
POSITIVE_INT = number(int, 1)
NON_NEGATIVE = number(float, 0)
KVSTORES = ('local', 'device', 'dist_sync', 'dist_device_sync')


def add_data_args(parser, datasets, data_dir_help, dataset_help):
    """The data flags of the MNIST-format scripts (ad_mnist.py, ad_tla.py)."""
    g = parser.add_argument_group('data')
    g.add_argument('--data-dir', default='', help=data_dir_help)
    g.add_argument('--dataset', default='auto', choices=datasets, help=dataset_help)
    g.add_argument('--num-train', type=NON_NEGATIVE_INT, default=0,
                   help='use only the first N training images (0: all)')
    g.add_argument('--num-test', type=NON_NEGATIVE_INT, default=0,
                   help='evaluate on the first N test images (0: all)')
    g.add_argument('--num-classes', type=number(int, 2), default=10,
                   help='classes of the data: every label must be in 0..N-1')
    return g


def add_train_args(parser, lr_base=None):
    """Training flags. ``lr_base``: the batches (at batch size 512) of the default --lr-steps;
    None: the original ad_mnist.py's (16000,24000, or 16000,24000,28000 for ArcFace)."""
    g = parser.add_argument_group('training', 'optimiser, schedule, checkpoints and logging')
    parser.set_defaults(lr_base=lr_base)
    g.add_argument('--prefix', default='../model/model',
                   help='checkpoint prefix: writes PREFIX-symbol.json and PREFIX-%%04d.params')
    g.add_argument('--pretrained', default='', help='start from the model "prefix,epoch"')
    g.add_argument('--allow-partial-pretrained', action='store_true',
                   help='train even when only part of the network (beyond the classifier) is '
                        'in --pretrained (the rest starts from scratch)')
    g.add_argument('--overwrite', action='store_true',
                   help='let this run number its checkpoints from 1 and replace those already '
                        'at --prefix (default: continue their numbering, or refuse when they '
                        'belong to another network)')
    g.add_argument('--ckpt', type=int, default=1, choices=(0, 1, 2),
                   help='0: never save; 1: save the latest (epoch 0) and every new best; '
                        '2: also keep every --verbose save')
    g.add_argument('--verbose', type=NON_NEGATIVE_INT, default=2000,
                   help='evaluate and save every VERBOSE batches')
    g.add_argument('--max-steps', type=NON_NEGATIVE_INT, default=0,
                   help='stop after exactly this many batches (0: no limit)')
    g.add_argument('--end-epoch', type=POSITIVE_INT, default=100000,
                   help='number of epochs to train')
    g.add_argument('--lr', type=NON_NEGATIVE, default=0.1, help='start learning rate')
    g.add_argument('--lr-steps', type=steps, default=None,
                   help='batches at which lr is multiplied by 0.1, e.g. 8000,16000 (default, '
                        'as the original: %s scaled by 512/batch-size)'
                        % (','.join(map(str, lr_base)) if lr_base else
                           '16000,24000 (--loss-type 0) or 16000,24000,28000 (4)'))
    g.add_argument('--wd', type=NON_NEGATIVE, default=0.0005, help='weight decay')
    g.add_argument('--mom', type=number(float, 0, 1, high_open=True), default=0.9, help='momentum')
    g.add_argument('--fc7-wd-mult', type=NON_NEGATIVE, default=1.0,
                   help='weight decay mult for fc7')
    g.add_argument('--seed', type=int, default=None,
                   help='seed for numpy, random and mxnet (default: not seeded)')
    g.add_argument('--disp-batches', type=POSITIVE_INT, default=1,
                   help='log training metrics every N batches')
    g.add_argument('--kvstore', default='device', choices=KVSTORES,
                   help='MXNet kvstore for the main group; dist_*: one worker of a launch.py '
                        'job (dist_async is not offered: its servers apply each worker\'s '
                        'update alone, which the mean-gradient scaling here does not fit)')
    g.add_argument('--progress', action='store_true',
                   help='show a progress bar with ETA (over --max-steps, else the epochs)')
    return g


def add_network_args(parser, network='o18', emb_size=512):
    """Network and classifier-head flags (the original's names and defaults)."""
    g = parser.add_argument_group('network', 'network and classifier head')
    g.add_argument('--network', default=network,
                   help='o10/o18/o34/o50, s5/s8, l (or l5), tla, wrn, rNN (fresnet: r18, r34, '
                        'r50, r100 ...), y1 (InsightFace MobileFaceNet), or checkpoint: the '
                        'graph of --pretrained itself (a checkpoint or an .onnx file), cut at '
                        '--emb-layer (any InsightFace-style model)')
    g.add_argument('--emb-layer', default=None,
                   help='with --network checkpoint: the layer whose output is the embedding '
                        '(default: fc1, InsightFace\'s; an ONNX file: its output)')
    g.add_argument('--emb-size', type=POSITIVE_INT, default=emb_size,
                   help='embedding size of fresnet; MNIST networks have a fixed size')
    g.add_argument('--bn-mom', type=number(float, 0, 1), default=0.9, help='batch-norm momentum')
    g.add_argument('--workspace', type=POSITIVE_INT, default=512,
                   help='convolution workspace (MB); smaller if device memory runs out')
    g.add_argument('--loss-type', type=int, default=4, choices=(0, 4),
                   help='0: softmax (FC with bias); 4: ArcFace')
    g.add_argument('--margin-m', type=number(float, 0, math.pi / 2, high_open=True),
                   default=0.4, help='ArcFace angular margin')
    g.add_argument('--margin-s', type=number(float, 0, low_open=True), default=10.0,
                   help='ArcFace feature scale')
    g.add_argument('--easy-margin', type=int, choices=(0, 1), default=0,
                   help='ArcFace easy margin (0/1)')
    return g


def add_mter_args(parser, adv_round=100, adv_sigma=0.35, adv_thd=0.05, weightadv=0.1,
                  adv_step=1 / 255.0, main_per_batch_size=1350, adv_per_batch_size=900,
                  faces=False, ce_weight=4 / 9.0, ce_weight_help=''):
    """MTER flags. ``faces``: the original ad_face.py's meaning of --adv-sigma (the step, in
    0..255 pixel units) with --adv-eps for an optional L-inf ball; otherwise ad_mnist.py's
    (--adv-sigma the ball, --adv-step the step). ``ce_weight``: the default of --ce-weight, the
    original's effective cross-entropy weight at the paper's command (``ce_weight_help`` says
    how it follows from the original's formula)."""
    g = parser.add_argument_group('MTER', 'the adversary round and the triplet regulariser')
    g.add_argument('--main-per-batch-size', type=POSITIVE_INT, default=main_per_batch_size,
                   help='main batch per main context: [src | tar | adv] thirds')
    g.add_argument('--adv-per-batch-size', type=POSITIVE_INT, default=adv_per_batch_size,
                   help='adversary batch per adversary context: [src | tar] halves')
    g.add_argument('--ctx-num', type=POSITIVE_INT, default=1, help='number of main contexts')
    g.add_argument('--ctx-adv-num', type=POSITIVE_INT, default=1,
                   help='number of adversary contexts')
    g.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'),
                   help='auto: GPUs when present (main gpu(0..), adversary after them), else '
                        'CPU contexts cpu(0), cpu(1), ...')
    g.add_argument('--adv-round', type=NON_NEGATIVE_INT, default=adv_round,
                   help='maximum attack steps per batch (the first is always taken); 0: no '
                        'attack (with --weightadv 0: vanilla training, same pipeline)')
    g.add_argument('--adv-thd', type=number(), default=adv_thd,
                   help='stop the attack once the max cosine distance to the targets <= THD')
    if faces:
        g.add_argument('--adv-sigma', type=number(float, 0, low_open=True), default=adv_sigma,
                       help='attack step size in 0..255 pixel units (the original face meaning)')
        g.add_argument('--adv-eps', type=NON_NEGATIVE, default=0.0,
                       help='L-inf radius around the clean source (0: none, only [0, 255])')
    else:
        g.add_argument('--adv-sigma', type=NON_NEGATIVE, default=adv_sigma, help=_SIGMA_HELP)
        g.add_argument('--adv-step', type=number(float, 0, low_open=True), default=adv_step,
                       help='attack step size')
    g.add_argument('--adv-alpha', type=NON_NEGATIVE, default=0.2, help='triplet margin alpha')
    g.add_argument('--weightadv', type=NON_NEGATIVE, default=weightadv,
                   help='weight w of the triplet')
    g.add_argument('--ce-weight', type=NON_NEGATIVE, default=ce_weight,
                   help='weight of the cross-entropy (the mean over the clean sources and '
                        'targets) beside the triplet; the update is the same for any number of '
                        'contexts. ' + ce_weight_help)
    return g


_SIGMA_HELP = ('L-inf radius of the ball around the clean source that adversarials stay in '
               '(MNIST; 0: no ball, only the pixel range)')


def lr_steps(args, batch_size):
    """The batches after which the learning rate drops x0.1: --lr-steps, else the script's
    default (``lr_base``, at batch size 512) scaled by 512 / batch size, as the original."""
    if args.lr_steps:
        return list(args.lr_steps)
    base = args.lr_base if args.lr_base is not None else \
        ([16000, 24000] if args.loss_type == 0 else [16000, 24000, 28000])
    return [int(s * 512.0 / batch_size) for s in base]


# InsightFace's settings per face network (its config.py: network.y1 is fmobilefacenet with a
# 128-d GDC head; the fresnets have a 512-d 'E' head); a flag given on the command line wins.
FACE_NETWORK_PRESETS = {'y1': dict(emb_size=128, version_output='GDC'),
                        'fresnet': dict(emb_size=512, version_output='E')}


def apply_face_preset(args):
    """Fills --emb-size and --version-output when left unset, by --network."""
    preset = FACE_NETWORK_PRESETS['y1' if args.network == 'y1' else 'fresnet']
    for key, value in preset.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


# TLA's settings (columbia/Metric_Learning_Adversarial_Robustness config_mnist.json and
# config_cifar.json; REFERENCE.md §3), by kind of data; a flag given on the command line wins.
# max_steps: the configs' max_num_training_steps. Madry AT (AT_PRESETS) differs: no label
# smoothing (the original AT builds its models without it); on CIFAR-10 Madry's released recipe
# (MadryLab/cifar10_challenge config.json), the baseline the TLA paper compares with: batch 128,
# lr 0.1 -> 0.01 at 40k -> 0.001 at 60k, PGD 10 steps of 2 in the ball of 8.
TLA_PRESETS = {
    'mnist': dict(network='tla', epsilon=0.3, num_steps=40, step_size=0.01, tla_lambda=0.5,
                  margin=0.05, regularize_lambda=1e-4, pool_size=50, label_smoothing=0.1,
                  clean_positive=0, optimizer='adam', lr=1e-4, wd=2e-4, lr_steps=None,
                  augment=0, batch_size=50, max_steps=600000),
    'cifar10': dict(network='wrn', epsilon=8.0, num_steps=7, step_size=2.0, tla_lambda=2.0,
                    margin=0.03, regularize_lambda=1e-3, pool_size=500, label_smoothing=0.0,
                    clean_positive=1, optimizer='sgd', lr=0.1, wd=2e-4,
                    lr_steps=[50000, 60000], augment=1, batch_size=50, max_steps=80000),
}
AT_PRESETS = {
    'mnist': dict(label_smoothing=0.0),
    'cifar10': dict(label_smoothing=0.0, batch_size=128, lr_steps=[40000, 60000], num_steps=10,
                    max_steps=80000),
}


def preset_value(kind, method, key):
    overrides = AT_PRESETS[kind] if method == 'at' else {}
    return overrides.get(key, TLA_PRESETS[kind][key])


def preset_help(text, key):
    values = []
    for kind, label in (('mnist', 'MNIST-format'), ('cifar10', 'CIFAR-10')):
        tla_value, at_value = preset_value(kind, 'tla', key), preset_value(kind, 'at', key)
        values.append('%s %s' % (label, tla_value) if tla_value == at_value else
                      '%s %s (--method at: %s)' % (label, tla_value, at_value))
    return '%s (default: %s)' % (text, ', '.join(values))


def add_tla_args(parser):
    """TLA's and Madry AT's flags, named after TLA's config keys; defaults by kind of data
    (TLA_PRESETS), filled in by ``apply_tla_preset`` after parsing."""
    g = parser.add_argument_group('TLA', 'the PGD attack, the triplet and its negatives')
    g.add_argument('--method', default='tla', choices=('tla', 'at'),
                   help='tla: cross-entropy on PGD adversarials + the triplet; at: Madry PGD '
                        'adversarial training (the same as --lambda 0)')
    g.add_argument('--batch-size', type=POSITIVE_INT, default=None,
                   help=preset_help('anchors per batch over all contexts (training_batch_size)',
                                    'batch_size'))
    g.add_argument('--ctx-num', type=POSITIVE_INT, default=1, help='number of main contexts')
    g.add_argument('--ctx-adv-num', type=POSITIVE_INT, default=1,
                   help='number of adversary contexts (PGD and the pool embedding run there)')
    g.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'),
                   help='auto: GPUs when present (main first, adversary after), else CPU')
    g.add_argument('--epsilon', type=NON_NEGATIVE, default=None,
                   help=preset_help('L-inf radius of the training PGD, in pixel units', 'epsilon'))
    g.add_argument('--num-steps', type=POSITIVE_INT, default=None,
                   help=preset_help('PGD steps', 'num_steps'))
    g.add_argument('--step-size', type=number(float, 0, low_open=True), default=None,
                   help=preset_help('PGD step size', 'step_size'))
    g.add_argument('--random-start', type=int, choices=(0, 1), default=1,
                   help='start PGD from a uniform point of the eps-ball')
    g.add_argument('--lambda', dest='tla_lambda', type=NON_NEGATIVE, default=None,
                   help=preset_help('weight of the triplet term (lamda_triplet); 0: Madry AT',
                                     'tla_lambda'))
    g.add_argument('--margin', type=NON_NEGATIVE, default=None,
                   help=preset_help('triplet margin m on d = 1 - |cos|', 'margin'))
    g.add_argument('--regularize-lambda', type=NON_NEGATIVE, default=None,
                   help=preset_help('weight of the norm term mean(a^2 + p^2 + n^2)',
                                     'regularize_lambda'))
    g.add_argument('--pool-size', type=POSITIVE_INT, default=None,
                   help=preset_help('clean images embedded per batch to mine negatives from '
                                     '(batch x mul_num)', 'pool_size'))
    g.add_argument('--random-negative', action='store_true',
                   help='random negatives instead of the hardest: a plain random batch of clean '
                        'training images, of any class, as the original\'s random_negative '
                        '(so a negative may share its anchor\'s class)')
    g.add_argument('--clean-positive', type=int, choices=(0, 1), default=None,
                   help=preset_help('also a triplet whose positive is the clean image with '
                                     'uniform noise of --epsilon, rounded to the 0-255 pixel '
                                     'grid and clipped (TLA\'s A_Ap_B, its x_Anat)',
                                     'clean_positive'))
    g.add_argument('--margin-mul', type=NON_NEGATIVE, default=1.0,
                   help='margin multiplier of the clean-positive triplet (margin_mul)')
    g.add_argument('--label-smoothing', type=number(float, 0, 1, high_open=True), default=None,
                   help=preset_help('label smoothing of the cross-entropy (training and PGD)',
                                     'label_smoothing'))
    g.add_argument('--optimizer', default=None, choices=('adam', 'sgd'),
                   help=preset_help('optimiser (sgd uses --mom)', 'optimizer'))
    g.add_argument('--augment', type=int, choices=(0, 1), default=None,
                   help=preset_help('random 32x32 crops of the image zero-padded to 36x36, and '
                                    'left-right flips (Madry\'s and TLA\'s CIFAR-10 input)',
                                    'augment'))
    return g


def check_attack_units(args, kind, pixel_range, dataset=None):
    """Checks --epsilon and --step-size (after ``apply_tla_preset``) against the pixel range
    (low, high) of the data (``data.datasets.PIXEL_RANGE[kind]``). Raises ValueError for a value
    larger than the whole range (CIFAR-10's 0-255 units given for data in [0, 1]); returns the
    warnings to log: a step larger than the ball (every step overshoots and is clipped back),
    an eps below one grey level on 0-255 data (a value in [0, 1] units?), eps 0 (no
    perturbation: PGD leaves the images as they are)."""
    low, high = (float(v) for v in pixel_range)
    span = high - low
    label = '%s data (%spixels in [%g, %g])' % (
        'CIFAR-10' if kind == 'cifar10' else 'MNIST-format',
        '--dataset %s, ' % dataset if dataset else '', low, high)
    preset = TLA_PRESETS[kind]
    for flag, value in (('--epsilon', args.epsilon), ('--step-size', args.step_size)):
        if value > span:
            raise ValueError(
                '%s %g is larger than the whole pixel range of %s: the attack\'s flags are in '
                'the data\'s own pixel units (0-255 only for CIFAR-10); for this data TLA uses '
                '--epsilon %g --step-size %g' % (flag, value, label, preset['epsilon'],
                                                 preset['step_size']))
    warnings = []
    if args.epsilon == 0:
        warnings.append('--epsilon 0: PGD makes no perturbation (a ball of radius 0): the '
                        'adversarial images are the clean ones and %d attack steps are skipped, '
                        'so this trains on clean data' % args.num_steps)
    elif args.step_size > args.epsilon:
        warnings.append('--step-size %g is larger than the --epsilon %g ball: every PGD step '
                        'overshoots and is clipped back to the ball\'s edge (a step below eps, '
                        'e.g. 2.5 * eps / --num-steps = %g, explores the ball)'
                        % (args.step_size, args.epsilon, 2.5 * args.epsilon / args.num_steps))
    if span >= 255 and 0 < args.epsilon < 1:
        warnings.append('--epsilon %g on %s is less than one grey level: a value in [0, 1] '
                        'units? (TLA\'s CIFAR-10 setting is --epsilon 8 --step-size 2)'
                        % (args.epsilon, label))
    return warnings


def apply_tla_preset(args, kind):
    """Fills every TLA flag left at None with the preset of ``kind`` ('mnist' or 'cifar10') and
    method (TLA_PRESETS, AT_PRESETS); ``--method at`` means lambda 0."""
    if args.method == 'at':
        if args.tla_lambda not in (None, 0):
            raise ValueError('--method at is adversarial training without the triplet: it '
                             'contradicts --lambda %g' % args.tla_lambda)
        args.tla_lambda = 0.0
    for key in TLA_PRESETS[kind]:
        if getattr(args, key, None) is None:
            setattr(args, key, preset_value(kind, args.method, key))
    if args.tla_lambda == 0:
        args.pool_size = 0
    return args
