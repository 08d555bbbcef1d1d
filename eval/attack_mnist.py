"""Robust accuracy of MNIST classifiers (ad_mnist.py checkpoints) under L-inf attacks.

Attacks and their settings (flags in brackets):

* fgsm   one step of size eps.
* bim    ``--steps`` (40) sign steps of ``--step-scale`` * eps / steps (2.5 * eps / steps),
         starting at x (I-FGSM).
* pgd    as bim from a uniform random start in the eps-ball, ``--restarts`` (1) restarts,
         per-sample worst case over restarts.
* mifgsm ``--steps`` steps of eps / steps, momentum ``--momentum`` (1.0) on the per-sample
         L1-normalised gradient, no random start.
* cw     pgd (same steps, step size, random start and restarts) on the Carlini-Wagner margin
         loss (best other logit - true logit).

AutoAttack (eval.autoattack; github.com/fra31/auto-attack's standard L-inf settings; run on the
first ``--aa-samples`` images, default all, a count every row states):

* autoattack       the suite: apgd-ce, apgd-t, fab-t, square, each stage on the images every
                   earlier stage failed on; a per-stage table (images attacked, broken,
                   surviving, seconds) is printed and saved.
* autoattack-fast  apgd-ce + apgd-t only: a cheaper quick look, not AutoAttack.
* apgd-ce, apgd-dlr, apgd-t, fab-t, square: one member alone on all those images.
  APGD: ``--aa-iterations`` (100) iterations, step 2*eps halved at checkpoints, momentum 0.75;
  apgd-t / fab-t: ``--aa-targets`` (9) target classes, 100 iterations each; square:
  ``--aa-queries`` (5000) queries, black-box. Lower values are for smoke tests: results say
  whether the settings were the reference's (``standard_settings``).

Robust accuracy = fraction of test images classified correctly clean AND after the attack
(attacks run only on the clean-correct ones); ``worst-case`` = correct under every attack of
the table at that eps (per-sample worst case). With ``--source-model`` the adversarials are also
crafted on that second model (its own white-box rows) and evaluated on ``--model`` (transfer
rows). Sanity checks (eval.sanity) run on the table and on extra probes: PGD at ``--large-eps``
(1.0: any image reachable) must break (almost) everything; PGD with twice the steps and with 2
more restarts at ``--check-eps`` (default: the middle eps) must change little; input gradients
must be finite, non-zero and match finite differences. With square (alone or in autoattack), the
gradient-masking tell: Square (black-box) must not break more than 1 image and 0.2% of the
images that every white-box attack of the table failed on. When AutoAttack runs on fewer images
than the other attacks, ``worst-case`` covers those images only (all attacks) and
``worst-case non-AA`` all images (the other attacks).

Writes the table to stdout and, with ``--out-dir``, results.json, results.md and
robust_accuracy.png. Example::

    python -m eval.attack_mnist --model models/mnist-o18,20 --dataset mnist \\
        --num-samples 1000 --out-dir results/mnist-o18
    python -m eval.attack_mnist --model models/mnist-o18,20 --attacks autoattack,pgd \\
        --eps 0.1,0.2,0.3 --num-samples 1000 --aa-samples 500 --out-dir results/mnist-o18-aa
"""
import argparse
import logging
import sys
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from eval import autoattack, cli, report, sanity
from eval.attacks import BIM, CWLinf, FGSM, MIFGSM, PGD, run_attack
from eval.cli import choice_list, float_list
from eval.model import Network

DEFAULT_ATTACKS = ('fgsm', 'bim', 'pgd', 'mifgsm', 'cw')
AA_ATTACKS = tuple(autoattack.SUITES) + autoattack.MEMBERS  # run on the first --aa-samples
ALL_ATTACKS = DEFAULT_ATTACKS + AA_ATTACKS
DEFAULT_EPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
PIXEL_RANGE = (0.0, 1.0)
AA_DEFAULTS = {'aa_iterations': 100, 'aa_queries': 5000, 'aa_targets': 9}


def build_attack(name, model, eps, steps=40, step_scale=2.5, restarts=1, momentum=1.0,
                 seed=0, aa_iterations=100, aa_queries=5000, aa_targets=9):
    """The attack ``name`` with this tool's settings (see the module docstring)."""
    common = dict(pixel_range=PIXEL_RANGE, seed=seed)
    step = step_scale * eps / steps
    aa = dict(iterations=aa_iterations, queries=aa_queries, targets=aa_targets, **common)
    if name == 'fgsm':
        return FGSM(model, eps, **common)
    if name == 'bim':
        return BIM(model, eps, step=step, steps=steps, **common)
    if name == 'pgd':
        return PGD(model, eps, step=step, steps=steps, restarts=restarts, **common)
    if name == 'mifgsm':
        return MIFGSM(model, eps, step=eps / steps, steps=steps, mu=momentum, **common)
    if name == 'cw':
        return CWLinf(model, eps, step=step, steps=steps, restarts=restarts, **common)
    if name in autoattack.SUITES:
        return autoattack.AutoAttack(model, eps, autoattack.SUITES[name], **aa)
    if name in autoattack.MEMBERS:
        return autoattack.make_member(name, model, eps, **aa)
    raise ValueError('unknown attack %r: expected some of %s' % (name, ','.join(ALL_ATTACKS)))


def _correct(model, x, y, batch_size):
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    return model.predict(x, batch_size).argmax(axis=1) == y


def _robust(model, attack_kwargs, name, eps, x, y, clean_correct, batch_size, progress,
            desc):
    """Per-sample robust correctness under one white-box attack (attacks clean-correct only).
    Returns (robust, suite record or None); the record's ``broken_by`` covers all of x (-1:
    not attacked)."""
    robust = np.zeros(len(x), dtype=bool)
    idx = np.flatnonzero(clean_correct)
    record = None
    attack = build_attack(name, model, eps, **attack_kwargs)
    if isinstance(attack, autoattack.AutoAttack):
        broken_by = np.full(len(x), -1)
        started = time.time()
        _, success, record = attack.run(x[idx], y[idx], batch_size, progress, desc)
        robust[idx] = ~success
        broken_by[idx] = record['broken_by']
        record = dict(record, broken_by=broken_by, seconds=round(time.time() - started, 1),
                      stage_names=[s.name for s in attack.stages])
        logging.info('%s: %d/%d robust (%.1f s; stages: %s)', desc, robust.sum(), len(x),
                     record['seconds'], ', '.join('%s %d' % (st['stage'], st['robust'])
                                                  for st in record['stages']))
    elif len(idx):
        _, success = run_attack(attack, x[idx], y[idx], batch_size, progress, desc)
        robust[idx] = ~success
    return robust, record


def _worst_cases(per_attack, covered, n_all, n_eps):
    """Worst-case rows: {'worst-case': AND over every attack on the images all of them ran on}
    and, when AutoAttack covered fewer images, 'worst-case non-AA' (the others, all images)."""
    if len(per_attack) < 2:
        return {}, {}
    n_min = min(covered.values())
    rows = {'worst-case': [np.logical_and.reduce([r[i][:n_min] for r in per_attack.values()])
                           for i in range(n_eps)]}
    full = [a for a in per_attack if covered[a] == n_all]
    out = {}
    if n_min < n_all and len(full) > 1:
        out['worst-case non-AA'] = [np.logical_and.reduce([per_attack[a][i] for a in full])
                                    for i in range(n_eps)]
    out.update(rows)
    return out, {k: (n_min if k == 'worst-case' else n_all) for k in out}


def _stage_table_entry(model_name, name, eps, record, clean_correct, attack):
    params = attack.params()
    return {'model': model_name, 'attack': name, 'eps': eps, 'num_images': len(clean_correct),
            'clean_correct': int(clean_correct.sum()), 'stages': record['stages'],
            'robust': int(record['stages'][-1]['robust']) if record['stages'] else 0,
            'seconds': record['seconds'], 'standard_settings': params['standard_settings'],
            'settings': {k: params[k] for k in ('version', 'iterations', 'queries', 'targets')}}


def _masking_check(model_name, eps_list, per_attack, records, clean_correct):
    """Gradient-masking tell per model: images Square broke (alone or as AutoAttack's stage)
    although every white-box attack of the table failed on them. None without Square."""
    n = min(len(r[0]) for r in per_attack.values())
    black = [a for a in per_attack if a in autoattack.BLACK_BOX]
    suites = [a for a in per_attack if a in records
              and any(s in autoattack.BLACK_BOX for s in records[a][0]['stage_names'])]
    if not black and not suites:
        return None
    extra = []
    for i in range(len(eps_list)):
        white = clean_correct[:n].copy()
        square = np.zeros(n, bool)
        for name, rows in per_attack.items():
            if name in black:
                square |= clean_correct[:n] & ~rows[i][:n]
            elif name in records:
                record = records[name][i]
                box = [k for k, s in enumerate(record['stage_names']) if s in autoattack.BLACK_BOX]
                broken_by = record['broken_by'][:n]
                white &= (broken_by < 0) | np.isin(broken_by, box) | (
                    broken_by == len(record['stage_names']))
                square |= np.isin(broken_by, box)
            else:
                white &= rows[i][:n]
        extra.append(int((white & square).sum()))
    return sanity.check_gradient_masking(extra, n, eps_list, model_name)


def evaluate_robustness(models, x, y, attacks=DEFAULT_ATTACKS, eps_list=DEFAULT_EPS,
                        source=None, steps=40, step_scale=2.5, restarts=1, momentum=1.0,
                        batch_size=256, seed=0, sanity_checks=True, large_eps=1.0,
                        check_eps=None, progress=True, aa_samples=0, **aa_settings):
    """Robust accuracy of classifiers on (x, y) under ``attacks`` at each eps.

    models: {name: eval.model.Network (output='logits')} (or one Network, named 'model');
    x: float32 (N, 1, 28, 28) in [0, 1]; y: int labels; source: optional (name, Network) whose
    adversarials are also evaluated on every model (transfer; AutoAttack rows are white-box
    only). AutoAttack attacks (``AA_ATTACKS``) run on the first ``aa_samples`` images (0: all);
    ``aa_settings``: aa_iterations, aa_queries, aa_targets (``AA_DEFAULTS``). Returns a results
    dict in the layout of ``eval.report`` (curves with their image count, checks, probes,
    settings, and 'autoattack': the per-stage record of every suite run)."""
    if isinstance(models, Network):
        models = {'model': models}
    if source is not None and source[0] in models:
        raise ValueError('the source model name %r is also a model name: rename one' % source[0])
    unknown = set(aa_settings) - set(AA_DEFAULTS)
    if unknown:
        raise TypeError('unknown settings %s: AutoAttack takes %s'
                        % (', '.join(sorted(unknown)), ', '.join(AA_DEFAULTS)))
    x = np.asarray(x, dtype=np.float32)
    y = np.asarray(y).astype(np.int64)
    eps_list = [float(e) for e in eps_list]
    kwargs = dict(steps=steps, step_scale=step_scale, restarts=restarts, momentum=momentum,
                  seed=seed, **dict(AA_DEFAULTS, **aa_settings))
    n_aa = min(aa_samples, len(x)) if aa_samples else len(x)
    started = time.time()
    clean = {name: _correct(net, x, y, batch_size) for name, net in models.items()}
    curves, checks, probes, stage_table = [], [], [], []

    def add_curves(model_name, net, mode, per_attack, covered, clean_correct):
        for name, robust in per_attack.items():
            params, n = {}, covered[name]
            if not name.startswith('worst-case'):  # the attack's settings; steps per eps
                per_eps = [build_attack(name, net, e, **kwargs).params() for e in eps_list]
                params = dict(per_eps[0])
                if name not in AA_ATTACKS:
                    params['step'] = [p.get('step', p['eps']) for p in per_eps]
                params.pop('eps')
            curve = report.make_curve(model_name, name, [r[:n].mean() for r in robust],
                                      clean_correct[:n].mean(), mode, params)
            curve['num_samples'] = int(n)
            curves.append(curve)

    def with_worst_case(per_attack, covered):
        rows, n_rows = _worst_cases(per_attack, covered, len(x), len(eps_list))
        return dict(per_attack, **rows), dict(covered, **n_rows)

    subset_views = []
    for model_name, net in models.items():
        per_attack, covered, records = {}, {}, {}
        for name in attacks:
            n = n_aa if name in AA_ATTACKS else len(x)
            covered[name] = n
            runs = [_robust(net, kwargs, name, eps, x[:n], y[:n], clean[model_name][:n],
                            batch_size, progress, '%s %s eps=%g' % (model_name, name, eps))
                    for eps in eps_list]
            per_attack[name] = [r for r, _ in runs]
            if runs and runs[0][1] is not None:
                records[name] = [rec for _, rec in runs]
                stage_table += [_stage_table_entry(model_name, name, eps, rec,
                                                   clean[model_name][:n],
                                                   build_attack(name, net, eps, **kwargs))
                                for eps, (_, rec) in zip(eps_list, runs)]
            logging.info('%s %s: %s (%d images)', model_name, name,
                         ' '.join('%.4f' % r.mean() for r in per_attack[name]), n)
        if sanity_checks:
            masking = _masking_check(model_name, eps_list, per_attack, records,
                                     clean[model_name])
            checks += [masking] if masking else []
            if n_aa < len(x) and any(a in AA_ATTACKS for a in attacks):
                subset_views += [report.make_curve(model_name, a, [r[:n_aa].mean() for r in rows],
                                                   clean[model_name][:n_aa].mean())
                                 for a, rows in per_attack.items()]
        add_curves(model_name, net, 'white-box', *with_worst_case(per_attack, covered),
                   clean[model_name])

    if source is not None:
        source_name, source_net = source
        source_clean = _correct(source_net, x, y, batch_size)
        own, transfer = {}, {m: {} for m in models}
        transferable = [a for a in attacks if a not in AA_ATTACKS]
        if len(transferable) < len(attacks):
            logging.info('transfer rows: AutoAttack attacks are white-box only, not transferred')
        for name in transferable:
            own[name] = []
            for m in models:
                transfer[m][name] = []
            for eps in eps_list:
                attack = build_attack(name, source_net, eps, **kwargs)
                x_adv, success = run_attack(attack, x, y, batch_size, progress,
                                            '%s %s eps=%g (source)' % (source_name, name, eps))
                own[name].append(source_clean & ~success)
                for m, net in models.items():
                    transfer[m][name].append(clean[m] & _correct(net, x_adv, y, batch_size))
        full = {a: len(x) for a in transferable}
        add_curves(source_name, source_net, 'white-box', *with_worst_case(own, full),
                   source_clean)
        for m, net in models.items():
            add_curves(m, source_net, 'transfer from %s' % source_name,
                       *with_worst_case(transfer[m], full), clean[m])

    aa_used = [a for a in attacks if a in AA_ATTACKS]
    results = {'metric': 'robust_accuracy', 'eps': eps_list, 'num_samples': int(len(x)),
               'curves': curves, 'clean': {m: float(c.mean()) for m, c in clean.items()},
               'settings': dict(kwargs, attacks=list(attacks), batch_size=batch_size,
                                pixel_range=list(PIXEL_RANGE), large_eps=large_eps,
                                source=source[0] if source else None,
                                aa_samples=int(n_aa) if aa_used else None,
                                aa_standard_settings=(
                                    {k: kwargs[k] for k in AA_DEFAULTS} == AA_DEFAULTS)
                                if aa_used else None)}
    if stage_table:
        results['autoattack'] = stage_table
    if sanity_checks:
        checks += sanity.run_table_checks(results)
        if subset_views:
            subset = {'metric': 'robust_accuracy', 'eps': eps_list, 'curves': subset_views}
            checks += [sanity.Check('%s on the first %d images' % (c.name, n_aa), c.passed,
                                    c.detail)
                       for c in sanity.check_iterative_vs_one_step(subset)]
        for model_name, net in models.items():
            pgd = [c for c in curves if (c['model'], c['mode'], c['attack'])
                   == (model_name, 'white-box', 'pgd')]
            checks += _probe_checks(model_name, net, x, y, clean[model_name], eps_list,
                                    pgd[0]['values'] if pgd else None, kwargs, large_eps,
                                    check_eps, batch_size, progress, probes)
    results['checks'] = sanity.as_dicts(checks)
    results['probes'] = probes
    results['seconds'] = round(time.time() - started, 1)
    return results


def _probe_checks(model_name, net, x, y, clean_correct, eps_list, pgd_values, kwargs,
                  large_eps, check_eps, batch_size, progress, probes):
    """Sanity probes on one model: gradients, PGD at a huge eps, PGD with more steps/restarts
    at ``check_eps`` (default: the eps where the table's PGD accuracy is nearest half the clean
    accuracy, where a stronger attack can show; the table's PGD figure is the baseline)."""
    checks = []
    idx = np.flatnonzero(clean_correct)[:64]
    if len(idx):
        name, passed, detail = sanity.check_gradients(net, x[idx], y[idx])
        checks.append(sanity.Check('%s [%s]' % (name, model_name), passed, detail))

    def pgd_value(eps, **override):
        args = dict(kwargs, **override)
        robust, _ = _robust(net, args, 'pgd', eps, x, y, clean_correct, batch_size, progress,
                            '%s sanity pgd eps=%g steps=%d restarts=%d' % (
                                model_name, eps, args['steps'], args['restarts']))
        value = float(robust.mean())
        probes.append({'model': model_name, 'attack': 'pgd', 'eps': eps,
                       'steps': args['steps'], 'restarts': args['restarts'], 'value': value})
        return value

    if large_eps:
        checks.append(sanity.check_large_eps('robust_accuracy', pgd_value(large_eps), large_eps,
                                             '%s, pgd' % model_name))
    if check_eps is None and pgd_values is not None:
        half = clean_correct.mean() / 2
        i = int(np.argmin([abs(v - half) for v in pgd_values]))
        eps, base = eps_list[i], pgd_values[i]
    else:
        eps = check_eps if check_eps is not None else sorted(eps_list)[len(eps_list) // 2]
        base = pgd_values[eps_list.index(eps)] if pgd_values is not None and eps in eps_list \
            else pgd_value(eps)
    more_steps = pgd_value(eps, steps=2 * kwargs['steps'])
    more_restarts = pgd_value(eps, restarts=kwargs['restarts'] + 2)
    checks.append(sanity.check_stronger_changes_little(
        'robust_accuracy', base, more_steps,
        '2x steps [%s, pgd eps=%g, %d -> %d steps]' % (model_name, eps, kwargs['steps'],
                                                       2 * kwargs['steps'])))
    checks.append(sanity.check_stronger_changes_little(
        'robust_accuracy', base, more_restarts,
        '+2 restarts [%s, pgd eps=%g, %d -> %d restarts]' % (
            model_name, eps, kwargs['restarts'], kwargs['restarts'] + 2)))
    return checks


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model', required=True,
                        help='checkpoint to evaluate, "prefix,epoch" (symbol output fc7_output '
                             '= logits, input (N,1,28,28) in [0,1])')
    parser.add_argument('--source-model', default=None,
                        help='"prefix,epoch" of a second checkpoint: transfer attacks crafted '
                             'on it and evaluated on --model')
    parser.add_argument('--data-dir', default=None, help='MNIST IDX directory (data.mnist)')
    parser.add_argument('--dataset', default='auto',
                        choices=('auto', 'mnist', 'fashion-mnist', 'digits'))
    parser.add_argument('--num-samples', type=int, default=0,
                        help='use the first N test images (0 = all)')
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--attacks', type=choice_list(ALL_ATTACKS), default=list(DEFAULT_ATTACKS),
                        help='comma-separated, from %s (default %s)'
                        % (','.join(ALL_ATTACKS), ','.join(DEFAULT_ATTACKS)))
    parser.add_argument('--eps', type=float_list, default=list(DEFAULT_EPS),
                        help='comma-separated L-inf budgets on the [0,1] scale')
    parser.add_argument('--steps', type=int, default=40,
                        help='iterations of bim/pgd/mifgsm/cw')
    parser.add_argument('--step-scale', type=float, default=2.5,
                        help='bim/pgd/cw step = step-scale * eps / steps (mifgsm: eps / steps)')
    parser.add_argument('--momentum', type=float, default=1.0, help='mifgsm decay mu')
    parser.add_argument('--restarts', type=int, default=1, help='random restarts of pgd and cw')
    parser.add_argument('--seed', type=int, default=0, help='seed of random starts')
    cli.add_autoattack_args(parser, samples=True)
    parser.add_argument('--large-eps', type=float, default=1.0,
                        help='eps of the "large eps breaks everything" sanity probe (0: skip)')
    parser.add_argument('--check-eps', type=float, default=None,
                        help='eps of the more-steps/more-restarts probes (default: where PGD '
                             'accuracy is nearest half the clean accuracy)')
    parser.add_argument('--no-sanity', action='store_true', help='skip the sanity checks')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 3 when a sanity check fails')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id (-1: CPU)')
    parser.add_argument('--no-progress', action='store_true', help='no tqdm progress bars')
    parser.add_argument('--out-dir', default=None,
                        help='write results.json, results.md, robust_accuracy.png here')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.restarts < 1 or args.batch_size < 1 or args.num_samples < 0:
        parser.error('--steps, --restarts, --batch-size must be >= 1 and --num-samples >= 0')
    return args


def _load_model(spec, ctx):
    net = Network.load(spec, output='logits', ctx=ctx)
    probe = net.predict(np.zeros((1, 1, 28, 28), np.float32))
    if probe.ndim != 2:
        raise ValueError('model %s: logits of shape %s, expected (N, classes)'
                         % (spec, probe.shape))
    return net


def main(argv=None):
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    args = parse_args(argv)
    from data.mnist import load_mnist
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    ctx = mx.gpu(args.gpu) if args.gpu >= 0 else mx.cpu()
    data = load_mnist(args.data_dir, args.dataset)
    x, y = data.test_x, data.test_y
    if args.num_samples:
        x, y = x[:args.num_samples], y[:args.num_samples]
    name = cli.model_name(args.model)
    models = {name: _load_model(args.model, ctx)}
    source = None
    if args.source_model:
        source_name = cli.model_name(args.source_model)
        if source_name == name:
            source_name = 'source ' + source_name
        source = (source_name, _load_model(args.source_model, ctx))
    results = evaluate_robustness(
        models, x, y, args.attacks, args.eps, source=source, steps=args.steps,
        step_scale=args.step_scale, restarts=args.restarts, momentum=args.momentum,
        batch_size=args.batch_size, seed=args.seed, sanity_checks=not args.no_sanity,
        large_eps=args.large_eps, check_eps=args.check_eps, progress=not args.no_progress,
        aa_samples=args.aa_samples, aa_iterations=args.aa_iterations,
        aa_targets=args.aa_targets, aa_queries=args.aa_queries)
    results['settings'].update(model=args.model, source_model=args.source_model,
                               dataset=data.name)
    all_passed = sanity.report_checks([(c['name'], c['passed'], c['detail'])
                                       for c in results['checks']])
    report.write_report(results, args.out_dir, title='Robust accuracy of %s on %s (%d images)'
                        % (name, data.name, len(x)))
    return 3 if args.strict and not all_passed else 0


if __name__ == '__main__':
    sys.exit(main())
