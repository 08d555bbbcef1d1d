"""Command-line flags, defined once and shared by ad_mnist.py and ad_face.py.

Names and defaults are the original's (zhongyy/Adversarial_MTER ad_mnist.py / ad_face.py); each
script passes its own ``defaults`` for the few that differ between the two. Flags the original
had but never used (sphere-loss leftovers) are gone; see README.md, "Flags".
"""
import argparse


def _steps(text):
    try:
        return [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError('expected comma-separated integers, got %r' % text)


def add_train_args(parser):
    g = parser.add_argument_group('training', 'optimiser, schedule, checkpoints and logging')
    g.add_argument('--prefix', default='../model/model',
                   help='checkpoint prefix: writes PREFIX-symbol.json and PREFIX-%%04d.params')
    g.add_argument('--pretrained', default='', help='start from the model "prefix,epoch"')
    g.add_argument('--ckpt', type=int, default=1, choices=(0, 1, 2),
                   help='0: never save; 1: save the latest (epoch 0) and every new best; '
                        '2: also keep every --verbose save')
    g.add_argument('--verbose', type=int, default=2000,
                   help='evaluate and save every VERBOSE batches')
    g.add_argument('--max-steps', type=int, default=0,
                   help='stop after exactly this many batches (0: no limit)')
    g.add_argument('--end-epoch', type=int, default=100000, help='number of epochs to train')
    g.add_argument('--lr', type=float, default=0.1, help='start learning rate')
    g.add_argument('--lr-steps', type=str, default='',
                   help='batches at which lr is multiplied by 0.1, e.g. 8000,16000 '
                        '(default: 16000,24000 scaled by 512/batch-size, as the original)')
    g.add_argument('--wd', type=float, default=0.0005, help='weight decay')
    g.add_argument('--mom', type=float, default=0.9, help='momentum')
    g.add_argument('--fc7-wd-mult', type=float, default=1.0, help='weight decay mult for fc7')
    g.add_argument('--seed', type=int, default=None,
                   help='seed for numpy, random and mxnet (default: not seeded)')
    g.add_argument('--disp-batches', type=int, default=1,
                   help='log training metrics every N batches')
    g.add_argument('--kvstore', default='device', help='MXNet kvstore for the main group')
    g.add_argument('--progress', action='store_true',
                   help='show a progress bar with ETA (over --max-steps, else the epochs)')
    return g


def add_network_args(parser, network='o18', emb_size=512):
    g = parser.add_argument_group('network', 'network and classifier head')
    g.add_argument('--network', default=network,
                   help='o10/o18/o34/o50, s5/s8, l (or l5), rNN (fresnet: r18, r34, r50, r100 ...)')
    g.add_argument('--emb-size', type=int, default=emb_size,
                   help='embedding size of fresnet; MNIST networks have a fixed size')
    g.add_argument('--bn-mom', type=float, default=0.9, help='batch-norm momentum')
    g.add_argument('--workspace', type=int, default=512,
                   help='convolution workspace (MB); smaller if device memory runs out')
    g.add_argument('--loss-type', type=int, default=4, choices=(0, 4),
                   help='0: softmax (FC with bias); 4: ArcFace')
    g.add_argument('--margin-m', type=float, default=0.4, help='ArcFace angular margin')
    g.add_argument('--margin-s', type=float, default=10.0, help='ArcFace feature scale')
    g.add_argument('--easy-margin', type=int, default=0, help='ArcFace easy margin (0/1)')
    return g


def add_mter_args(parser, adv_round=100, adv_sigma=0.35, adv_thd=0.05, weightadv=0.1,
                  adv_step=1 / 255.0, main_per_batch_size=1350, adv_per_batch_size=900,
                  faces=False):
    """MTER flags. ``faces``: the original ad_face.py's meaning of --adv-sigma (the step, in
    0..255 pixel units) with --adv-eps for an optional L-inf ball; otherwise ad_mnist.py's
    (--adv-sigma the ball, --adv-step the step)."""
    g = parser.add_argument_group('MTER', 'the adversary round and the triplet regulariser')
    g.add_argument('--main-per-batch-size', type=int, default=main_per_batch_size,
                   help='main batch per main context: [src | tar | adv] thirds')
    g.add_argument('--adv-per-batch-size', type=int, default=adv_per_batch_size,
                   help='adversary batch per adversary context: [src | tar] halves')
    g.add_argument('--ctx-num', type=int, default=1, help='number of main contexts')
    g.add_argument('--ctx-adv-num', type=int, default=1, help='number of adversary contexts')
    g.add_argument('--device', default='auto', choices=('auto', 'cpu', 'gpu'),
                   help='auto: GPUs when present (main gpu(0..), adversary after them), else '
                        'CPU contexts cpu(0), cpu(1), ...')
    g.add_argument('--adv-round', type=int, default=adv_round,
                   help='maximum attack steps per batch (the first is always taken); 0: no '
                        'attack (with --weightadv 0: vanilla training, same pipeline)')
    g.add_argument('--adv-thd', type=float, default=adv_thd,
                   help='stop the attack once the max cosine distance to the targets <= THD')
    if faces:
        g.add_argument('--adv-sigma', type=float, default=adv_sigma,
                       help='attack step size in 0..255 pixel units (the original face meaning)')
        g.add_argument('--adv-eps', type=float, default=0.0,
                       help='L-inf radius around the clean source (0: none, only [0, 255])')
    else:
        g.add_argument('--adv-sigma', type=float, default=adv_sigma, help=_SIGMA_HELP)
        g.add_argument('--adv-step', type=float, default=adv_step, help='attack step size')
    g.add_argument('--adv-alpha', type=float, default=0.2, help='triplet margin alpha')
    g.add_argument('--weightadv', type=float, default=weightadv, help='weight w of the triplet')
    return g


_SIGMA_HELP = ('L-inf radius of the ball around the clean source that adversarials stay in '
               '(MNIST; 0 or less: no ball, only the pixel range)')


def lr_steps(args, batch_size):
    if args.lr_steps:
        return _steps(args.lr_steps)
    base = [16000, 24000] if args.loss_type == 0 else [16000, 24000, 28000]
    return [int(s * 512.0 / batch_size) for s in base]
