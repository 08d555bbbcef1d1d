#!/usr/bin/env python
"""The face main job: a pretrained InsightFace model on real faces, fine-tuned twice (vanilla
and MTER) with the same schedule, all three verified and attacked the same way
(results/faces/: table, JSON, hit-rate plot).

  python demo.py --faces --images LFW_DIR --pairs PAIRS --pretrained PREFIX,EPOCH
  ./run.sh --faces     (the same on ../shared/realdata: InsightFace's y1-test2 and LFW)

1. data (data/lfw_split.py): the evaluation folds' pairs (lfw_heldout.bin) and a training set of
   the people in no evaluation pair; lfw.bin of all pairs;
2. verification (eval/verification.py's protocol: image + flip, 10 folds) of the pretrained
   model on all pairs and on the held-out folds, of the fine-tuned ones on the held-out folds;
   the attack threshold at FAR 1e-3 from each model's own single-image held-out distances
   (eval/cal_threshold.py's rule);
3. fine-tuning (ad_face.py, --network checkpoint: the pretrained model's own graph): vanilla
   (--adv-round 0 --weightadv 0) and MTER (the paper's face settings: 10 rounds of 1 pixel,
   thd 0.1, alpha 0.2, w 1; ArcFace m 0.5, s 64), the same batches, steps, optimiser and seed;
4. attacks (eval/attack_face.py) on the held-out pairs: impersonation and dodging, FFTGSM,
   IFTGSM, MI-FGSM and APGD on the embedding distance, eps on the 0-255 scale, with the sanity
   checks; the paper's vanilla figures (its table 4) beside them.
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import json
import logging
import os
import platform
import time

import numpy as np

import ad_face
from eval import attack_face

REALDATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'shared', 'realdata')
# Shared by vanilla and MTER: ArcFace on the new identities, 16 sources + 16 targets per batch
# (the paper's 90/120 per 4+2 GPUs scaled to 2 CPU cores), SGD as ad_face.py.
TRAIN = ['--loss-type', '4', '--margin-m', '0.5', '--margin-s', '64', '--wd', '0.0005',
         '--mom', '0.9', '--main-per-batch-size', '48', '--adv-per-batch-size', '32']
VANILLA = ['--adv-round', '0', '--weightadv', '0']
MTER = ['--adv-round', '10', '--adv-sigma', '1', '--adv-thd', '0.1', '--adv-alpha', '0.2',
        '--weightadv', '1']
PRESETS = {
    'default': dict(steps=100, lr=0.01, eps=[2, 5, 10], num_pairs=40, aa_iterations=20,
                    attacks='fftgsm,iftgsm,miftgsm,apgd'),
    'tiny': dict(steps=2, lr=0.001, eps=[4], num_pairs=4, aa_iterations=3,
                 attacks='fftgsm,iftgsm,apgd'),
}
# The MTER paper's table 4 (ArcFace trained on CASIA, LFW FAR=1e-3 threshold), hit rate %.
PAPER = {'fftgsm': {10: 99.3}, 'iftgsm': {5: 100.0, 10: 100.0}}
PAPER_MTER = {'fftgsm': {10: 2.0}, 'iftgsm': {5: 3.5, 10: 27.4}}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--images', default=os.path.join(REALDATA, 'lfw'),
                        help='LFW-style folder of aligned 112x112 faces')
    parser.add_argument('--pairs', default=os.path.join(REALDATA, 'lfw-pairs.txt'),
                        help='pairs file with the "10 300" fold header')
    parser.add_argument('--pretrained', default=os.path.join(REALDATA, 'models', 'y1-test2',
                                                             'model') + ',0',
                        help='the model to fine-tune: prefix,epoch or model.onnx')
    parser.add_argument('--network', default='checkpoint',
                        help='ad_face.py --network (checkpoint: the pretrained model\'s graph)')
    parser.add_argument('--eval-folds', default='6-10', help='folds held out for evaluation')
    parser.add_argument('--out-dir', default=os.path.join('results', 'faces'))
    parser.add_argument('--tiny', action='store_true', help='a pipeline check (tests)')
    for key, value in PRESETS['default'].items():
        parser.add_argument('--' + key.replace('_', '-'), default=None,
                            type=type(value) if not isinstance(value, list) else None,
                            help='default %s' % (','.join(map(str, value))
                                                 if isinstance(value, list) else value))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--batch-size', type=int, default=32, help='images per forward pass')
    args = parser.parse_args(argv)
    preset = PRESETS['tiny' if args.tiny else 'default']
    for key, value in preset.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
        elif key == 'eps' and isinstance(args.eps, str):
            args.eps = [float(e) for e in args.eps.split(',')]
    return args


def prepare_data(args):
    from data.lfw_split import build_split, parse_folds
    data_dir = os.path.join(args.out_dir, 'data')
    summary = build_split(args.images, args.pairs, data_dir, parse_folds(args.eval_folds),
                          log=logging.info)
    return data_dir, summary


def finetune(name, flags, args, data_dir):
    prefix = os.path.join(args.out_dir, 'models', name, 'model')
    argv = TRAIN + flags + [
        '--data-dir', data_dir, '--target', '', '--network', args.network,
        '--pretrained', args.pretrained, '--lr', str(args.lr), '--max-steps', str(args.steps),
        '--seed', str(args.seed), '--prefix', prefix, '--verbose', '0', '--disp-batches', '10',
        '--overwrite']
    logging.info('== fine-tuning %s: ad_face.py %s', name, ' '.join(argv))
    ad_face.main(argv)
    return prefix + ',0'


def verify(spec, data_dir, batch_size, heldout_in_all=None):
    """{target: verification metrics and the attack threshold at FAR 1e-3} of a model on the
    held-out folds; with ``heldout_in_all`` (the held-out pairs' indices in lfw.bin) also on
    all pairs, the held-out figures then coming from the same embeddings."""
    from eval.model import Network
    from eval.bin_sets import load_targets
    from eval.embedding import embed_pairs
    net = Network.load(spec, output='embedding')
    name = 'lfw' if heldout_in_all is not None else 'lfw_heldout'
    images, issame = load_targets(data_dir, [name])[name]
    emb, emb_flip = embed_pairs(net, images, batch_size)
    out = {name: _metrics(emb, emb_flip, issame, spec, name)}
    if heldout_in_all is not None:
        rows = np.ravel([[2 * i, 2 * i + 1] for i in heldout_in_all])
        out['lfw_heldout'] = _metrics(emb[rows], emb_flip[rows],
                                      np.asarray(issame)[heldout_in_all], spec, 'lfw_heldout')
    return out


def _metrics(emb, emb_flip, issame, spec, name):
    from eval.cal_threshold import thresholds_from_distances
    from eval.protocol import combine_flip, pair_distances, verification_metrics
    metrics = verification_metrics(emb, emb_flip, issame)
    single = thresholds_from_distances(pair_distances(combine_flip(emb)), issame, 1e-3)
    logging.info('%s on %s: Accuracy-Flip %.5f +- %.5f; attack threshold (FAR 1e-3, single '
                 'images) %.4f', spec, name, metrics['acc_mean'], metrics['acc_std'],
                 single['threshold'])
    return dict(acc_mean=metrics['acc_mean'], acc_std=metrics['acc_std'], val=metrics['val'],
                val_std=metrics['val_std'], xnorm=metrics['xnorm'],
                pairs=metrics['num_pairs'], attack_threshold=single['threshold'])


def attack(name, spec, threshold, args, data_dir):
    argv = ['--model', spec, '--data-dir', data_dir, '--target', 'lfw_heldout',
            '--threshold', '%.6f' % threshold, '--mode', 'both', '--attacks', args.attacks,
            '--eps', ','.join('%g' % e for e in args.eps), '--num-pairs', str(args.num_pairs),
            '--aa-iterations', str(args.aa_iterations), '--batch-size', str(args.batch_size),
            '--seed', str(args.seed), '--no-progress',
            '--out-dir', os.path.join(args.out_dir, 'attacks', name)]
    logging.info('== attacking %s: eval/attack_face.py %s', name, ' '.join(argv))
    return attack_face.run(attack_face.parse_args(argv))


def hit_table(runs, eps):
    """Markdown: per scenario and attack, each model's clean hit rate and hit rate per eps (%),
    the paper's vanilla / MTER figures where it has them."""
    lines = ['| scenario | attack | model | pairs | clean | %s | paper (vanilla / MTER) |'
             % ' | '.join('eps=%g' % e for e in eps),
             '|---|---|---|---|---|%s---|' % ('---|' * len(eps))]
    for scenario in attack_face.SCENARIOS:
        for curve_name in _attacks_of(runs):
            for model, results in runs.items():
                curve = next((c for c in results['curves'] if c['attack'] == curve_name and
                              c['model'].endswith(scenario)), None)
                if curve is None:
                    continue
                pairs = results['scenarios'][scenario]['num_pairs']
                paper = ', '.join('eps %g: %s / %s' % (e, PAPER[curve_name][e],
                                                      PAPER_MTER[curve_name][e])
                                  for e in sorted(PAPER.get(curve_name, {}))) \
                    if scenario == 'impersonation' else ''
                lines.append('| %s | %s | %s | %d | %.1f | %s | %s |' % (
                    scenario, curve_name, model, pairs, 100 * curve['clean'],
                    ' | '.join('%.1f' % (100 * v) for v in curve['values']), paper))
    return '\n'.join(lines)


def _attacks_of(runs):
    names = []
    for results in runs.values():
        for curve in results['curves']:
            if curve['attack'] not in names:
                names.append(curve['attack'])
    return names


def verification_table(ver):
    lines = ['| model | pairs | Accuracy-Flip (%) | VAL@FAR=1e-3 | attack threshold (FAR 1e-3) |',
             '|---|---|---|---|---|']
    for model, targets in ver.items():
        for target, m in targets.items():
            lines.append('| %s | %d (%s) | %.2f +- %.2f | %.4f +- %.4f | %.4f |' % (
                model, m['pairs'], 'all pairs, lfw.bin' if target == 'lfw' else 'held-out folds',
                100 * m['acc_mean'], 100 * m['acc_std'], m['val'], m['val_std'],
                m['attack_threshold']))
    return '\n'.join(lines)


def plot(runs, eps, path):
    """Hit rate against eps: one panel per scenario, one colour per model (worst case solid,
    each attack dotted)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    colours = dict(zip(runs, ('tab:gray', 'tab:blue', 'tab:red', 'tab:green')))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, scenario in zip(axes, attack_face.SCENARIOS):
        for model, results in runs.items():
            for curve in results['curves']:
                if not curve['model'].endswith(scenario):
                    continue
                worst = curve['attack'] == 'worst-case'
                ax.plot([0] + list(eps), [100 * curve['clean']] + [100 * v for v in
                                                                    curve['values']],
                        color=colours[model], linestyle='-' if worst else ':',
                        marker='o' if worst else '.', linewidth=2 if worst else 1,
                        label=model if worst else None)
        ax.set_title('%s (worst case solid, each attack dotted)' % scenario, fontsize=9)
        ax.set_xlabel('eps (0-255 scale)')
        ax.grid(alpha=0.3)
    axes[0].set_ylabel('hit rate (%) at FAR 1e-3; lower is more robust')
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_results(out_dir, record, runs):
    md = ['# Faces: %s, vanilla and MTER fine-tuning, on real LFW' % record['pretrained'], '',
          '## Verification', '', verification_table(record['verification']), '',
          '## Hit rate (%) on the held-out folds: impersonation and dodging', '',
          hit_table(runs, record['settings']['eps']), '',
          'Sanity checks: %d of %d passed.' % (record['checks_passed'], record['checks']),
          '', 'Wall time %.0f s: %s.' % (record['seconds']['total'], ', '.join(
              '%s %.0f s' % kv for kv in record['seconds'].items() if kv[0] != 'total'))]
    with open(os.path.join(out_dir, 'results.md'), 'w') as f:
        f.write('\n'.join(md) + '\n')
    with open(os.path.join(out_dir, 'results.json'), 'w') as f:
        json.dump(dict(record, attacks={k: _compact(v) for k, v in runs.items()}), f, indent=1)
    plot(runs, record['settings']['eps'], os.path.join(out_dir, 'hit_rate.png'))
    print('\n'.join(md))


def _compact(results):
    return {k: results[k] for k in ('curves', 'scenarios', 'checks', 'threshold', 'seconds',
                                    'settings') if k in results}


def main(argv=None):
    args = parse_args(argv)
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    os.makedirs(args.out_dir, exist_ok=True)
    started, seconds = time.time(), {}
    data_dir, split = prepare_data(args)
    seconds['data'] = time.time() - started
    specs = {'pretrained': args.pretrained}
    for name, flags in (('vanilla', VANILLA), ('mter', MTER)):
        t0 = time.time()
        specs[name] = finetune(name, flags, args, data_dir)
        seconds['train_' + name] = time.time() - t0
    verification, runs = {}, {}
    for name, spec in specs.items():
        t0 = time.time()
        verification[name] = verify(spec, data_dir, args.batch_size,
                                    split['heldout_pairs_in_lfw_bin'] if name == 'pretrained'
                                    else None)
        seconds['verify_' + name] = time.time() - t0
        t0 = time.time()
        runs[name] = attack(name, spec, verification[name]['lfw_heldout']['attack_threshold'],
                            args, data_dir)
        seconds['attack_' + name] = time.time() - t0
    seconds['total'] = time.time() - started
    checks = [c for r in runs.values() for c in r.get('checks', [])]
    split = {k: v for k, v in split.items() if k != 'heldout_pairs_in_lfw_bin'}
    record = dict(pretrained=args.pretrained, models=specs, split=split,
                  verification=verification, settings=dict(
                      steps=args.steps, lr=args.lr, eps=[float(e) for e in args.eps],
                      pairs=args.num_pairs, attacks=args.attacks, aa_iterations=args.aa_iterations,
                      train=TRAIN, vanilla=VANILLA, mter=MTER, network=args.network,
                      seed=args.seed),
                  checks=len(checks), checks_passed=sum(bool(c['passed']) for c in checks),
                  seconds={k: round(v, 1) for k, v in seconds.items()},
                  machine='%s, %d cores, %s; %s' % (platform.processor() or platform.machine(),
                                                    os.cpu_count() or 0, platform.platform(),
                                                    runtime.ONEDNN_NOTE),
                  paper=dict(vanilla=PAPER, mter=PAPER_MTER))
    write_results(args.out_dir, record, runs)
    return record


if __name__ == '__main__':
    main()
