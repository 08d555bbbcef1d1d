#!/usr/bin/env python
"""The main job: a vanilla model and an MTER model, trained the same way on real data, attacked
the same way, compared in one table and one figure (results/).

  python demo.py               the default budget (about 15 minutes on 2 CPU cores)
  python demo.py --compare     vanilla, MTER, Madry AT and TLA, with detection AUCs too
  python demo.py --full        the paper's MNIST schedule (o18, two stages): for a GPU machine
  python demo.py --tiny        a few batches, to check the pipeline (used by the tests)
  python demo.py --faces ...   the face main job (demo_faces.py: a pretrained InsightFace model
                               on real LFW, fine-tuned vanilla and with MTER, all attacked)

All models use the same network, data, number of batches, optimiser and seed; vanilla and MTER
differ only by the attack round and the MTER triplet (vanilla: --adv-round 0 --weightadv 0);
AT and TLA (ad_tla.py) attack with PGD in the same ball. All are evaluated with
eval.attack_mnist on the same test images: FGSM, PGD, MI-FGSM and APGD-CE + APGD-T
(autoattack-fast) on all of them, the full standard AutoAttack on the first --aa-samples as the
masking check (its cost per image is high: the default preset gives Square fewer queries,
labelled; --aa-standard the reference's); results.json / demo.json say how many images, which
settings and how many seconds each AutoAttack part took.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import json
import logging
import os
import platform
import time

import numpy as np

import ad_mnist
import ad_tla
from data.mnist import DATASETS, load_mnist
from eval import report
from eval.attack_mnist import evaluate_robustness
from eval.model import Network

# Each preset: the training flags shared by both models, the MTER-only flags, the stages (extra
# flags per stage, the later ones continue from the previous stage), and the evaluation.
# AutoAttack in two parts (eval.attack_mnist's aa_subset): APGD-CE + APGD-T (autoattack-fast;
# not AutoAttack, labelled so) on every test image at every eps, and the full suite (+ FAB-T and
# Square, the black-box stage that catches gradient masking) on the first `samples` images as
# the masking check. Both keep APGD's 100 iterations; to fit the job's budget on 2 CPU cores
# APGD-T and FAB-T get 3 target classes (the reference: 9; the 3 runner-up classes by logit) and
# Square 1000 queries (the reference: 5000), labelled in every output (`standard_settings:
# false`, starred rows). An image that survives the standard suite costs about 1900
# forward+backward and 5900 forward passes per eps and model (about 20 s for an s8 on 2 cores in
# small batches). demo.py --aa-standard gives the reference's settings throughout.
AA_SAMPLES_DEFAULT = 10
AA_DEFAULT = dict(samples=AA_SAMPLES_DEFAULT, subset=('autoattack',), targets=3, queries=1000)
AA_ATTACKS = ('fgsm', 'pgd', 'mifgsm', 'autoattack-fast', 'autoattack')

# The models of a comparison: (name, training script, its own flags). Vanilla and MTER go
# through ad_mnist.py (vanilla: no attack, no triplet), AT and TLA through ad_tla.py.
VANILLA = ['--adv-round', '0', '--weightadv', '0']
S8_MTER = ['--adv-round', '5', '--adv-step', '0.03', '--adv-sigma', '0.15', '--adv-thd', '0.05',
           '--adv-alpha', '0.2', '--weightadv', '1']
S8_BATCH = ['--main-per-batch-size', '96', '--adv-per-batch-size', '64']  # 32 sources
# AT and TLA: the same 32 images per batch, the same attack budget as MTER (an L-inf ball of
# 0.15, 5 steps; PGD from a random start, steps of a third of the ball) and optimiser; TLA's
# own terms at its MNIST defaults (lambda 0.5, margin 0.05, norm weight 1e-4), its pool 2x the
# batch; no label smoothing for either (none of the other models has it)
S8_PGD = ['--batch-size', '32', '--epsilon', '0.15', '--num-steps', '5', '--step-size', '0.05',
          '--optimizer', 'sgd', '--label-smoothing', '0']
PRESETS = {
    'default': dict(
        train=['--network', 's8', '--loss-type', '0', '--wd', '0.0005', '--mom', '0.9'],
        models=[('vanilla', 'ad_mnist', S8_BATCH + VANILLA), ('MTER', 'ad_mnist',
                                                             S8_BATCH + S8_MTER)],
        stages=[['--lr', '0.1', '--max-steps', '500', '--lr-steps', '350,450']],
        eval=dict(num_samples=400, attacks=AA_ATTACKS,
                  eps=(0.02, 0.05, 0.1, 0.15), steps=10, restarts=1,
                  autoattack=AA_DEFAULT)),
    'compare': dict(
        train=['--network', 's8', '--loss-type', '0', '--wd', '0.0005', '--mom', '0.9'],
        models=[('vanilla', 'ad_mnist', S8_BATCH + VANILLA),
                ('MTER', 'ad_mnist', S8_BATCH + S8_MTER),
                ('AT', 'ad_tla', ['--method', 'at'] + S8_PGD),
                ('TLA', 'ad_tla', ['--method', 'tla', '--pool-size', '64'] + S8_PGD)],
        stages=[['--lr', '0.1', '--max-steps', '500', '--lr-steps', '350,450']],
        eval=dict(num_samples=400, attacks=AA_ATTACKS,
                  eps=(0.02, 0.05, 0.1, 0.15), steps=10, restarts=1,
                  autoattack=AA_DEFAULT,
                  detection=dict(num_fit=2000, num_samples=400, eps=0.1, steps=10))),
    'full': dict(
        train=['--network', 'o18', '--loss-type', '0', '--end-epoch', '100'],
        models=[('vanilla', 'ad_mnist', ['--main-per-batch-size', '2700', '--adv-per-batch-size',
                                         '1800'] + VANILLA),
                ('MTER', 'ad_mnist', ['--main-per-batch-size', '2700', '--adv-per-batch-size',
                                      '1800', '--adv-alpha', '0.2', '--adv-sigma', '0.35',
                                      '--adv-thd', '0.05', '--weightadv', '1'])],
        stages=[['--lr', '0.1', '--lr-steps', '8000,16000', '--adv-round', '50'],
                ['--lr', '0.01', '--lr-steps', '8000,16000', '--adv-round', '100']],
        eval=dict(num_samples=10000, attacks=('fgsm', 'bim', 'pgd', 'mifgsm', 'cw', 'autoattack'),
                  eps=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3), steps=40, restarts=1,
                  autoattack=dict(samples=1000))),
    'tiny': dict(
        train=['--network', 's5', '--loss-type', '0'],
        models=[('vanilla', 'ad_mnist', ['--main-per-batch-size', '48',
                                         '--adv-per-batch-size', '32'] + VANILLA),
                ('MTER', 'ad_mnist', ['--main-per-batch-size', '48', '--adv-per-batch-size',
                                      '32', '--adv-round', '2', '--adv-step', '0.02',
                                      '--adv-sigma', '0.1', '--adv-thd', '0.05',
                                      '--weightadv', '1'])],
        stages=[['--lr', '0.05', '--max-steps', '3', '--lr-steps', '100']],
        eval=dict(num_samples=60, attacks=AA_ATTACKS,
                  eps=(0.05, 0.3), steps=3, restarts=1,
                  autoattack=dict(samples=30, subset=('autoattack',), iterations=5, targets=3,
                                  queries=40))),
    'tiny-compare': dict(
        train=['--network', 's5', '--loss-type', '0', '--wd', '0.0005'],
        models=[('vanilla', 'ad_mnist', ['--main-per-batch-size', '24',
                                         '--adv-per-batch-size', '16'] + VANILLA),
                ('MTER', 'ad_mnist', ['--main-per-batch-size', '24', '--adv-per-batch-size',
                                      '16', '--adv-round', '2', '--adv-step', '0.05',
                                      '--adv-sigma', '0.1', '--weightadv', '1']),
                ('AT', 'ad_tla', ['--method', 'at', '--batch-size', '8', '--epsilon', '0.1',
                                  '--num-steps', '2', '--step-size', '0.05', '--optimizer',
                                  'sgd']),
                ('TLA', 'ad_tla', ['--method', 'tla', '--batch-size', '8', '--pool-size', '16',
                                   '--epsilon', '0.1', '--num-steps', '2', '--step-size', '0.05',
                                   '--optimizer', 'sgd'])],
        stages=[['--lr', '0.05', '--max-steps', '3', '--lr-steps', '100']],
        eval=dict(num_samples=40, attacks=('fgsm', 'pgd'), eps=(0.05, 0.3), steps=3,
                  restarts=1, detection=dict(num_fit=200, num_samples=40, eps=0.1, steps=3))),
}
SCRIPTS = {'ad_mnist': ad_mnist, 'ad_tla': ad_tla}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    size = parser.add_mutually_exclusive_group()
    size.add_argument('--compare', action='store_true',
                      help='vanilla, MTER, Madry AT and TLA (about 100 minutes on 2 CPU cores)')
    size.add_argument('--full', action='store_true', help="the paper's schedule (GPU)")
    size.add_argument('--tiny', action='store_true', help='a few batches (pipeline check)')
    size.add_argument('--faces', action='store_true',
                      help='the face main job instead (demo_faces.py; python demo_faces.py '
                           '--help for its flags)')
    size.add_argument('--tiny-compare', action='store_true',
                      help='the four-way comparison in a few batches (pipeline check)')
    parser.add_argument('--out-dir', default='results', help='where results and models go')
    parser.add_argument('--data-dir', default='', help='MNIST-format IDX folder (see ad_mnist)')
    parser.add_argument('--dataset', default='auto', choices=DATASETS)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--num-samples', type=int, default=0,
                        help='test images to attack (default: the preset\'s)')
    parser.add_argument('--aa-samples', type=int, default=None,
                        help='test images the full AutoAttack suite attacks, the first of those '
                             '(0: none; default: the preset\'s: %d for the default preset); '
                             'autoattack-fast runs on all of them' % AA_SAMPLES_DEFAULT)
    parser.add_argument('--aa-standard', action='store_true',
                        help='AutoAttack with the reference\'s settings (100 iterations, 9 '
                             'targets, 5000 queries) instead of the preset\'s cheaper ones')
    parser.add_argument('--no-progress', action='store_true', help='no progress bars')
    return parser.parse_args(argv)


def stage_argv(preset, stage, model_flags):
    """Training flags of one model in one stage; the model's own flags come last, so vanilla's
    --adv-round 0 wins over a stage's rounds."""
    return preset['train'] + stage + model_flags


def train(name, script, preset, args, model_flags):
    """Trains one model through its stages; returns (checkpoint spec, seconds)."""
    started = time.time()
    prefix = os.path.join(args.out_dir, 'models', name.lower(), 'model')
    previous = None
    for i, stage in enumerate(preset['stages']):
        stage_prefix = prefix if i == len(preset['stages']) - 1 else '%s-stage%d' % (prefix, i + 1)
        argv = stage_argv(preset, stage, model_flags) + [
            '--seed', str(args.seed), '--prefix', stage_prefix, '--disp-batches', '50',
            '--verbose', '1000000', '--ckpt', '1',
            '--overwrite']  # the demo's own output: a rerun (another preset too) replaces it
        argv += ['--data-dir', args.data_dir] if args.data_dir else []
        argv += ['--dataset', args.dataset]
        argv += [] if args.no_progress else ['--progress']
        argv += ['--pretrained', previous] if previous else []
        logging.info('== training %s, stage %d/%d: %s.py %s', name, i + 1,
                     len(preset['stages']), script, ' '.join(argv))
        SCRIPTS[script].main(argv)
        previous = stage_prefix + ',0'
    return previous, time.time() - started


def detection(specs, data, settings, seed, progress):
    """Detection AUC (eval.detect's default Gaussian detector, PGD adversarials) of each model:
    {name: report row}."""
    from eval.detect import DetectionSettings, DetectorSettings, detection_report
    from eval.registry import AttackSettings
    rng = np.random.RandomState(seed)
    fit = rng.choice(len(data.train_x), min(settings['num_fit'], len(data.train_x)),
                     replace=False)
    n = settings['num_samples']
    options = DetectionSettings(attacks='pgd', eps=settings['eps'], progress=progress,
                                attack=AttackSettings(steps=settings['steps'], seed=seed),
                                detector=DetectorSettings(seed=seed))
    out = {}
    for name, spec in specs.items():
        report_ = detection_report(Network.load(spec, output='logits'),
                                   Network.load(spec, output='embedding'),
                                   (data.train_x[fit], data.train_y[fit]),
                                   (data.test_x[:n], data.test_y[:n]), options)
        row = report_['rows'][0]
        out[name] = {k: row[k] for k in row if k != 'roc'}
        out[name]['seconds'] = report_['seconds']
        logging.info('%s: detection AUC %.4f (%d clean, %d adversarials)', name, row['auc'] or
                     float('nan'), row.get('num_clean', 0), row.get('num_adversarial', 0))
    return out


def detection_table(rows, settings):
    lines = ['## Detection of PGD adversarials (eps %g, %d steps) from the embedding' % (
        settings['eps'], settings['steps']), '',
        'Gaussian (Mahalanobis) detector of eval/detect.py fitted on %d clean training images; '
        'clean: correctly classified test images among the first %d; adversarials: their '
        'successful PGD adversarials.' % (settings['num_fit'], settings['num_samples']), '',
        '| model | clean | adversarials | ROC AUC | TPR at 5% FPR |', '|---|---|---|---|---|']
    for name, row in rows.items():
        auc = row.get('auc')
        tpr = row.get('tpr_at_fpr')
        lines.append('| %s | %s | %s | %s | %s |' % (
            name, row.get('num_clean'), row.get('num_adversarial'),
            'n/a' if auc is None else '%.4f' % auc, 'n/a' if tpr is None else '%.3f' % tpr))
    return '\n'.join(lines)


def autoattack_summary(results):
    """Per AutoAttack attack (autoattack-fast, autoattack): its images, settings and wall time
    (None without)."""
    records = results.get('autoattack')
    if not records:
        return None
    out = {}
    for name in dict.fromkeys(r['attack'] for r in records):
        mine = [r for r in records if r['attack'] == name]
        out[name] = {'images': mine[0]['num_images'],
                     'standard_settings': all(r['standard_settings'] for r in mine),
                     'settings': mine[0]['settings'],
                     'seconds': round(sum(r['seconds'] for r in mine), 1),
                     'seconds_per_model_and_eps': {'%s eps=%g' % (r['model'], r['eps']):
                                                   r['seconds'] for r in mine}}
    return out


def evaluation_settings(ev, args):
    """eval.attack_mnist.Settings of a preset's evaluation and the flags."""
    from eval.attack_mnist import AA_ATTACKS as AUTOATTACK_NAMES, Settings
    from eval.registry import AttackSettings, Budget
    aa = dict(ev.get('autoattack', {}))
    samples = aa.pop('samples', 0) if args.aa_samples is None else args.aa_samples
    subset = aa.pop('subset', None)
    budget = Budget() if args.aa_standard else Budget(**aa)
    limited = subset if subset is not None else AUTOATTACK_NAMES   # attack_mnist's default rule
    attacks = tuple(a for a in ev['attacks'] if samples or a not in limited)  # 0: none of them
    return Settings(attacks=attacks, eps=tuple(ev['eps']), batch_size=256,
                    attack=AttackSettings(steps=ev['steps'], restarts=ev['restarts'],
                                          step_scale=2.5, seed=args.seed, pixel_range=(0.0, 1.0),
                                          budget=budget),
                    aa_samples=samples, aa_subset=tuple(subset) if subset else None,
                    progress=not args.no_progress)


def main(argv=None):
    import sys
    argv = list(sys.argv[1:] if argv is None else argv)
    if '--faces' in argv:
        import demo_faces
        argv.remove('--faces')
        return demo_faces.main(argv)
    args = parse_args(argv)
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    preset_name = next((name for name in ('compare', 'full', 'tiny', 'tiny_compare')
                        if getattr(args, name)), 'default').replace('_', '-')
    preset = PRESETS[preset_name]
    os.makedirs(args.out_dir, exist_ok=True)
    started = time.time()
    data = load_mnist(args.data_dir or None, args.dataset)
    if 'digits' in data.name:
        logging.warning('!! Fashion-MNIST / MNIST not found: running on scikit-learn digits '
                        '(1797 8x8 images). Install dataset-fashion-mnist for the real demo. !!')
    specs, seconds = {}, {}
    for name, script, flags in preset['models']:
        specs[name], seconds['train_' + name] = train(name, script, preset, args, flags)

    ev = preset['eval']
    n = args.num_samples or ev['num_samples']
    x, y = data.test_x[:n], data.test_y[:n]
    models = {name: Network.load(spec, output='logits') for name, spec in specs.items()}
    t0 = time.time()
    results = evaluate_robustness(models, x, y, evaluation_settings(ev, args))
    seconds['evaluate'] = time.time() - t0
    if ev.get('detection'):
        t0 = time.time()
        results['detection'] = dict(settings=ev['detection'], models=detection(
            specs, data, ev['detection'], args.seed, not args.no_progress))
        seconds['detect'] = time.time() - t0
    seconds['total'] = time.time() - started
    results['demo'] = {
        'preset': preset_name, 'data': data.name, 'test_images': int(len(x)),
        'models': specs, 'train_flags': preset['train'],
        'model_flags': {name: flags for name, _, flags in preset['models']},
        'stages': preset['stages'], 'seed': args.seed,
        'seconds': {k: round(v, 1) for k, v in seconds.items()},
        'autoattack': autoattack_summary(results),
        'machine': '%s, %d cores, %s' % (platform.processor() or platform.machine(),
                                         os.cpu_count() or 0, platform.platform()),
    }
    title = '%s (%s, %s preset): robust accuracy' % (' vs '.join(specs), data.name.split(' (')[0],
                                                      preset_name)
    report.write_report(results, args.out_dir, title=title)
    if results.get('detection'):
        table = detection_table(results['detection']['models'], ev['detection'])
        print('\n' + table)
        with open(os.path.join(args.out_dir, 'results.md'), 'a') as f:
            f.write('\n' + table + '\n')
    with open(os.path.join(args.out_dir, 'demo.json'), 'w') as f:
        json.dump(results['demo'], f, indent=1)
    logging.info('done in %.0f s: %s', seconds['total'],
                 ', '.join('%s %.0f s' % kv for kv in results['demo']['seconds'].items()))
    return results


if __name__ == '__main__':
    main()
