#!/usr/bin/env python
"""The main job: a vanilla model and an MTER model, trained the same way on real data, attacked
the same way, compared in one table and one figure (results/).

  python demo.py               the default budget (about 15 minutes on 2 CPU cores)
  python demo.py --full        the paper's MNIST schedule (o18, two stages): for a GPU machine
  python demo.py --tiny        a few batches, to check the pipeline (used by the tests)

Both models use the same network, data, schedule and seed; the only difference is the attack
round and the MTER triplet (vanilla: --adv-round 0 --weightadv 0). Both are evaluated with
eval.attack_mnist on the same test images: FGSM, PGD and MI-FGSM on all of them, AutoAttack on
the first --aa-samples (its cost per image is high: the default preset runs a cheaper, labelled
version, --aa-standard the reference's); the worst-case row (every attack, AutoAttack included,
on those images) is the headline figure, and results.json / demo.json say how many images,
which settings and how many seconds AutoAttack took.
"""
import argparse
import json
import logging
import os
import platform
import time

import ad_mnist
from data.mnist import DATASETS, load_mnist
from eval import report
from eval.attack_mnist import evaluate_robustness
from eval.model import Network

# Each preset: the training flags shared by both models, the MTER-only flags, the stages (extra
# flags per stage, the later ones continue from the previous stage), and the evaluation.
# AutoAttack runs on the first `samples` test images. Its cost is that of the images that
# survive it: standard AutoAttack spends about 1900 forward+backward and 5900 forward passes on
# each, per eps and model: about 20 s for an s8 on 2 CPU cores (batches of 8-20), and the default
# preset's two models keep ~2.6 such (image, eps) pairs per test image over its 4 eps (the
# README's PGD figures): ~50 s per test image, 4 images for 3 minutes. The default preset
# therefore runs a cheaper AutoAttack, labelled as such in every output (`standard_settings:
# false`, starred rows): all four stages and APGD's 100 iterations, but 3 target classes for
# APGD-T / FAB-T instead of 9 and 1000 Square queries instead of 5000 (about 5.3 s per surviving
# image and eps, ~14 s per test image, more in small batches): AA_SAMPLES_DEFAULT images take
# about 2.5-3 minutes. demo.py --aa-standard, or eval/attack_mnist.py --attacks autoattack on the
# saved checkpoints, gives the reference's settings.
AA_SAMPLES_DEFAULT = 10
AA_DEFAULT = dict(samples=AA_SAMPLES_DEFAULT, targets=3, queries=1000)
PRESETS = {
    'default': dict(
        train=['--network', 's8', '--loss-type', '0', '--main-per-batch-size', '96',
               '--adv-per-batch-size', '64', '--wd', '0.0005', '--mom', '0.9'],
        mter=['--adv-round', '5', '--adv-step', '0.03', '--adv-sigma', '0.15',
              '--adv-thd', '0.05', '--adv-alpha', '0.2', '--weightadv', '1'],
        stages=[['--lr', '0.1', '--max-steps', '500', '--lr-steps', '350,450']],
        eval=dict(num_samples=400, attacks=('fgsm', 'pgd', 'mifgsm', 'autoattack'),
                  eps=(0.02, 0.05, 0.1, 0.15), steps=10, restarts=1,
                  autoattack=AA_DEFAULT)),
    'full': dict(
        train=['--network', 'o18', '--loss-type', '0', '--main-per-batch-size', '2700',
               '--adv-per-batch-size', '1800', '--end-epoch', '100'],
        mter=['--adv-alpha', '0.2', '--adv-sigma', '0.35', '--adv-thd', '0.05',
              '--weightadv', '1'],
        stages=[['--lr', '0.1', '--lr-steps', '8000,16000', '--adv-round', '50'],
                ['--lr', '0.01', '--lr-steps', '8000,16000', '--adv-round', '100']],
        eval=dict(num_samples=10000, attacks=('fgsm', 'bim', 'pgd', 'mifgsm', 'cw', 'autoattack'),
                  eps=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3), steps=40, restarts=1,
                  autoattack=dict(samples=1000))),
    'tiny': dict(
        train=['--network', 's5', '--loss-type', '0', '--main-per-batch-size', '48',
               '--adv-per-batch-size', '32'],
        mter=['--adv-round', '2', '--adv-step', '0.02', '--adv-sigma', '0.1',
              '--adv-thd', '0.05', '--weightadv', '1'],
        stages=[['--lr', '0.05', '--max-steps', '3', '--lr-steps', '100']],
        eval=dict(num_samples=60, attacks=('fgsm', 'pgd', 'mifgsm', 'autoattack'),
                  eps=(0.05, 0.3), steps=3, restarts=1,
                  autoattack=dict(samples=30, iterations=5, targets=3, queries=40))),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--full', action='store_true', help="the paper's schedule (GPU)")
    size.add_argument('--tiny', action='store_true', help='a few batches (pipeline check)')
    parser.add_argument('--out-dir', default='results', help='where results and models go')
    parser.add_argument('--data-dir', default='', help='MNIST-format IDX folder (see ad_mnist)')
    parser.add_argument('--dataset', default='auto', choices=DATASETS)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int, default=0,
                        help='test images to attack (default: the preset\'s)')
    parser.add_argument('--aa-samples', type=int, default=None,
                        help='test images AutoAttack attacks, the first of those (default: the '
                             'preset\'s: %d for the default preset)' % AA_SAMPLES_DEFAULT)
    parser.add_argument('--aa-standard', action='store_true',
                        help='AutoAttack with the reference\'s settings (100 iterations, 9 '
                             'targets, 5000 queries) instead of the preset\'s cheaper ones')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


VANILLA = ['--adv-round', '0', '--weightadv', '0']


def stage_argv(preset, stage, extra):
    """ad_mnist.py flags of one stage; the model's own flags come last, so vanilla's
    --adv-round 0 wins over a stage's rounds."""
    return preset['train'] + stage + extra


def train(name, preset, args, extra):
    """Trains one model through its stages; returns (checkpoint spec, seconds)."""
    started = time.time()
    prefix = os.path.join(args.out_dir, 'models', name, 'model')
    previous = None
    for i, stage in enumerate(preset['stages']):
        stage_prefix = prefix if i == len(preset['stages']) - 1 else '%s-stage%d' % (prefix, i + 1)
        argv = stage_argv(preset, stage, extra) + [
            '--seed', str(args.seed), '--prefix', stage_prefix, '--disp-batches', '50',
            '--verbose', '1000000', '--ckpt', '1']
        argv += ['--data-dir', args.data_dir] if args.data_dir else []
        argv += ['--dataset', args.dataset]
        argv += [] if args.no_progress else ['--progress']
        argv += ['--pretrained', previous] if previous else []
        logging.info('== training %s, stage %d/%d: ad_mnist.py %s', name, i + 1,
                     len(preset['stages']), ' '.join(argv))
        ad_mnist.main(argv)
        previous = stage_prefix + ',0'
    return previous, time.time() - started


def autoattack_summary(results):
    """Images, settings and wall time of the evaluation's AutoAttack runs (None without)."""
    records = results.get('autoattack')
    if not records:
        return None
    return {'images': results['settings']['aa_samples'],
            'standard_settings': all(r['standard_settings'] for r in records),
            'settings': records[0]['settings'],
            'seconds': round(sum(r['seconds'] for r in records), 1),
            'seconds_per_model_and_eps': {'%s eps=%g' % (r['model'], r['eps']): r['seconds']
                                          for r in records}}


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
    preset_name = 'full' if args.full else 'tiny' if args.tiny else 'default'
    preset = PRESETS[preset_name]
    os.makedirs(args.out_dir, exist_ok=True)
    started = time.time()
    data = load_mnist(args.data_dir or None, args.dataset)
    if 'digits' in data.name:
        logging.warning('!! Fashion-MNIST / MNIST not found: running on scikit-learn digits '
                        '(1797 8x8 images). Install dataset-fashion-mnist for the real demo. !!')
    vanilla, t_vanilla = train('vanilla', preset, args, VANILLA)
    mter, t_mter = train('mter', preset, args, preset['mter'])

    ev = preset['eval']
    n = args.num_samples or ev['num_samples']
    x, y = data.test_x[:n], data.test_y[:n]
    models = {'vanilla': Network.load(vanilla, output='logits'),
              'MTER': Network.load(mter, output='logits')}
    aa = dict(ev.get('autoattack', {}))
    aa_samples = aa.pop('samples', 0) if args.aa_samples is None else args.aa_samples
    if args.aa_standard:
        aa = {}
    t0 = time.time()
    results = evaluate_robustness(models, x, y, attacks=ev['attacks'], eps_list=ev['eps'],
                                  steps=ev['steps'], restarts=ev['restarts'], seed=args.seed,
                                  progress=not args.no_progress, aa_samples=aa_samples,
                                  **{'aa_' + k: v for k, v in aa.items()})
    t_eval = time.time() - t0
    results['demo'] = {
        'preset': preset_name, 'data': data.name, 'test_images': int(len(x)),
        'models': {'vanilla': vanilla, 'MTER': mter},
        'train_flags': preset['train'], 'mter_flags': preset['mter'],
        'stages': preset['stages'], 'seed': args.seed,
        'seconds': {'train_vanilla': round(t_vanilla, 1), 'train_mter': round(t_mter, 1),
                    'evaluate': round(t_eval, 1), 'total': round(time.time() - started, 1)},
        'autoattack': autoattack_summary(results),
        'machine': '%s, %d cores, %s' % (platform.processor() or platform.machine(),
                                         os.cpu_count() or 0, platform.platform()),
    }
    title = 'Vanilla vs MTER (%s, %s preset): robust accuracy' % (data.name.split(' (')[0],
                                                                  preset_name)
    report.write_report(results, args.out_dir, title=title)
    with open(os.path.join(args.out_dir, 'demo.json'), 'w') as f:
        json.dump(results['demo'], f, indent=1)
    logging.info('done in %.0f s: %s', time.time() - started,
                 ', '.join('%s %.0f s' % kv for kv in results['demo']['seconds'].items()))
    return results


if __name__ == '__main__':
    main()
