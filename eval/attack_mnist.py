"""Robust accuracy of MNIST classifiers (ad_mnist.py checkpoints) under L-inf attacks.

Attacks and their settings (flags in brackets):

* fgsm   one step of size eps.
* bim    ``--steps`` (40) sign steps of ``--step-scale`` * eps / steps (2.5 * eps / steps),
         starting at x (I-FGSM).
* pgd    as bim from a uniform random start in the eps-ball, ``--restarts`` (1) restarts,
         per-sample worst case over restarts.
* mifgsm ``--steps`` steps of eps / steps, momentum ``--mu`` (1.0) on the per-sample
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
  ``--aa-queries`` (5000) queries, black-box; ``--aa-restarts`` (1). Lower values are for
  smoke tests: results say whether the settings were the reference's (``standard_settings``).
Attacks are built by name through eval.registry (one budget object, eval.registry.Budget).

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
``worst-case all images`` every image (the attacks that ran on all of them). ``--aa-subset``
names the AutoAttack attacks limited to ``--aa-samples`` (default: all of them); e.g. the main
job runs autoattack-fast on every image and the standard suite on a subset as the masking
check.

Writes the table to stdout and, with ``--out-dir``, results.json, results.md and
robust_accuracy.png. Example::

    python -m eval.attack_mnist --model models/mnist-o18,20 --dataset mnist \\
        --num-samples 1000 --out-dir results/mnist-o18
    python -m eval.attack_mnist --model models/mnist-o18,20 --attacks autoattack,pgd \\
        --eps 0.1,0.2,0.3 --num-samples 1000 --aa-samples 500 --out-dir results/mnist-o18-aa
"""
import argparse
import dataclasses
import logging
import sys
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from eval import autoattack, cli, registry, report, sanity
from eval.attacks import run_attack
from eval.cli import choice_list, float_list
from eval.model import Network
from eval.registry import AttackSettings, Budget

DEFAULT_ATTACKS = ('fgsm', 'bim', 'pgd', 'mifgsm', 'cw')
AA_ATTACKS = tuple(n for n in registry.names('classifier') if n in registry.AUTOATTACK)
ALL_ATTACKS = registry.names('classifier')
DEFAULT_EPS = (0.05, 0.1, 0.15, 0.2, 0.25, 0.3)
PIXEL_RANGE = (0.0, 1.0)


@dataclasses.dataclass(frozen=True)
class SanitySettings:
    enabled: bool = True
    large_eps: float = 1.0
    check_eps: float = None


@dataclasses.dataclass(frozen=True)
class Settings:
    """What evaluate_robustness runs: attacks (by registry name) at each eps with ``attack``'s
    settings (steps, step_scale, restarts, mu, seed, the AutoAttack budget); AutoAttack's names
    on the first ``aa_samples`` images (0: all): those of ``aa_subset`` (None: every
    AutoAttack name), the others on all images."""
    attacks: tuple = DEFAULT_ATTACKS
    eps: tuple = DEFAULT_EPS
    attack: AttackSettings = AttackSettings(steps=40, step_scale=2.5, pixel_range=PIXEL_RANGE)
    batch_size: int = 256
    aa_samples: int = 0
    aa_subset: tuple = None
    sanity: SanitySettings = SanitySettings()
    progress: bool = True


def _correct(model, x, y, batch_size):
    if len(x) == 0:
        return np.zeros(0, dtype=bool)
    return model.predict(x, batch_size).argmax(axis=1) == y


def _robust(attack, x, y, clean_correct, settings, desc):
    """Per-sample robust correctness under one white-box attack (attacks clean-correct only).
    Returns (robust, suite record or None); the record's ``broken_by`` covers all of x (-1:
    not attacked)."""
    robust = np.zeros(len(x), dtype=bool)
    idx = np.flatnonzero(clean_correct)
    record = None
    if isinstance(attack, autoattack.AutoAttack):
        broken_by = np.full(len(x), -1)
        started = time.time()
        _, success, record = attack.run(x[idx], y[idx], settings.batch_size, settings.progress,
                                        desc)
        robust[idx] = ~success
        broken_by[idx] = record['broken_by']
        record = dict(record, broken_by=broken_by, seconds=round(time.time() - started, 1),
                      stage_names=[s.name for s in attack.stages])
        logging.info('%s: %d/%d robust (%.1f s; stages: %s)', desc, robust.sum(), len(x),
                     record['seconds'], ', '.join('%s %d' % (st['stage'], st['robust'])
                                                  for st in record['stages']))
    elif len(idx):
        _, success = run_attack(attack, x[idx], y[idx], settings.batch_size, settings.progress,
                                desc)
        robust[idx] = ~success
    return robust, record


def _worst_cases(per_attack, covered, n_all, n_eps):
    """Worst-case rows: {'worst-case': AND over every attack on the images all of them ran on}
    and, when some covered fewer images, 'worst-case all images' (those that ran on all)."""
    if len(per_attack) < 2:
        return {}, {}
    n_min = min(covered.values())
    rows = {'worst-case': [np.logical_and.reduce([r[i][:n_min] for r in per_attack.values()])
                           for i in range(n_eps)]}
    full = [a for a in per_attack if covered[a] == n_all]
    out = {}
    if n_min < n_all and len(full) > 1:
        out['worst-case all images'] = [np.logical_and.reduce([per_attack[a][i] for a in full])
                                    for i in range(n_eps)]
    out.update(rows)
    return out, {k: (n_min if k == 'worst-case' else n_all) for k in out}


def _masking_check(model_name, per_attack, records, clean_correct, eps_list):
    """Gradient-masking tell (eval.sanity.masking_counts) on the images every attack ran on.
    None without a black-box attack."""
    if not any(a in registry.BLACK_BOX or (a in records and any(
            s in registry.BLACK_BOX for s in records[a][0]['stage_names'])) for a in per_attack):
        return None
    n = min(len(r[0]) for r in per_attack.values())
    candidates = clean_correct[:n]
    broken = {a: [candidates & ~r[:n] for r in rows] for a, rows in per_attack.items()}
    suites = {a: [(rec['broken_by'][:n], rec['stage_names']) for rec in recs]
              for a, recs in records.items()}
    extra = sanity.masking_counts(candidates, broken, suites, registry.BLACK_BOX)
    return sanity.check_gradient_masking(extra, n, eps_list, model_name)


class _Run:
    """One evaluate_robustness call: the models' curves, stage rows, checks and probes."""

    def __init__(self, models, x, y, settings):
        self.models, self.x, self.y, self.s = models, x, y, settings
        self.eps = [float(e) for e in settings.eps]
        n = len(x)
        self.n_aa = min(settings.aa_samples, n) if settings.aa_samples else n
        self.clean = {name: _correct(net, x, y, settings.batch_size)
                      for name, net in models.items()}
        self.curves, self.checks, self.probes, self.stage_table = [], [], [], []
        self.subset_views = []

    def on_subset(self, name):
        """Whether attack ``name`` runs on the first aa_samples images only."""
        subset = self.s.aa_subset if self.s.aa_subset is not None else AA_ATTACKS
        return name in subset

    def attack(self, name, net, eps, **override):
        return registry.build(name, net, eps, self.s.attack.replace(**override))

    def add_curves(self, model_name, net, mode, per_attack, covered, clean_correct):
        per_attack, covered = _with_worst_case(per_attack, covered, len(self.x), len(self.eps))
        for name, robust in per_attack.items():
            params, n = {}, covered[name]
            if not name.startswith('worst-case'):  # the attack's settings; steps per eps
                per_eps = [self.attack(name, net, e).params() for e in self.eps]
                params = dict(per_eps[0])
                if name not in AA_ATTACKS:
                    params['step'] = [p.get('step', p['eps']) for p in per_eps]
                params.pop('eps')
            curve = report.make_curve(model_name, name, [r[:n].mean() for r in robust],
                                      clean_correct[:n].mean(), mode, params)
            curve['num_samples'] = int(n)
            self.curves.append(curve)

    def evaluate_model(self, model_name, net):
        per_attack, covered, records = {}, {}, {}
        clean = self.clean[model_name]
        for name in self.s.attacks:
            n = self.n_aa if self.on_subset(name) else len(self.x)
            covered[name] = n
            runs = []
            for eps in self.eps:
                attack = self.attack(name, net, eps)
                robust, record = _robust(attack, self.x[:n], self.y[:n], clean[:n], self.s,
                                         '%s %s eps=%g' % (model_name, name, eps))
                runs.append((robust, record))
                if record is not None:
                    self.stage_table.append(autoattack.stage_entry(
                        model_name, name, eps, attack, record, n, clean[:n].sum()))
            per_attack[name] = [r for r, _ in runs]
            if runs and runs[0][1] is not None:
                records[name] = [rec for _, rec in runs]
            logging.info('%s %s: %s (%d images)', model_name, name,
                         ' '.join('%.4f' % r.mean() for r in per_attack[name]), n)
        self.model_checks(model_name, per_attack, records)
        self.add_curves(model_name, net, 'white-box', per_attack, covered, clean)

    def model_checks(self, model_name, per_attack, records):
        if not self.s.sanity.enabled:
            return
        masking = _masking_check(model_name, per_attack, records, self.clean[model_name],
                                 self.eps)
        self.checks += [masking] if masking else []
        if self.n_aa < len(self.x) and any(self.on_subset(a) for a in self.s.attacks):
            clean = self.clean[model_name][:self.n_aa].mean()
            self.subset_views += [report.make_curve(model_name, a, [r[:self.n_aa].mean()
                                                                    for r in rows], clean)
                                  for a, rows in per_attack.items()]

    def transfer(self, source):
        source_name, source_net = source
        x, y, s = self.x, self.y, self.s
        source_clean = _correct(source_net, x, y, s.batch_size)
        own, transfer = {}, {m: {} for m in self.models}
        transferable = [a for a in s.attacks if a not in AA_ATTACKS]
        if len(transferable) < len(s.attacks):
            logging.info('transfer rows: AutoAttack attacks are white-box only, not transferred')
        for name in transferable:
            own[name] = []
            for m in self.models:
                transfer[m][name] = []
            for eps in self.eps:
                x_adv, success = run_attack(self.attack(name, source_net, eps), x, y,
                                            s.batch_size, s.progress,
                                            '%s %s eps=%g (source)' % (source_name, name, eps))
                own[name].append(source_clean & ~success)
                for m, net in self.models.items():
                    transfer[m][name].append(self.clean[m] & _correct(net, x_adv, y,
                                                                      s.batch_size))
        full = {a: len(x) for a in transferable}
        self.add_curves(source_name, source_net, 'white-box', own, full, source_clean)
        for m in self.models:
            self.add_curves(m, source_net, 'transfer from %s' % source_name, transfer[m], full,
                            self.clean[m])

    def results(self, source):
        s = self.s
        aa_used = [a for a in s.attacks if a in AA_ATTACKS]
        settings = dict(s.attack.__dict__, budget=s.attack.budget.as_dict(),
                        attacks=list(s.attacks), batch_size=s.batch_size,
                        pixel_range=list(PIXEL_RANGE), large_eps=s.sanity.large_eps,
                        source=source[0] if source else None,
                        aa_samples=int(self.n_aa) if aa_used else None,
                        aa_subset=[a for a in s.attacks if self.on_subset(a)] if aa_used
                        else None,
                        aa_standard_settings=s.attack.budget.standard if aa_used else None)
        results = {'metric': 'robust_accuracy', 'eps': self.eps, 'num_samples': int(len(self.x)),
                   'curves': self.curves, 'settings': settings,
                   'clean': {m: float(c.mean()) for m, c in self.clean.items()}}
        if self.stage_table:
            results['autoattack'] = self.stage_table
        return results

    def sanity(self, results):
        if not self.s.sanity.enabled:
            return
        self.checks += sanity.run_table_checks(results)
        if self.subset_views:
            subset = {'metric': 'robust_accuracy', 'eps': self.eps, 'curves': self.subset_views}
            self.checks += [sanity.Check('%s on the first %d images' % (c.name, self.n_aa),
                                         c.passed, c.detail)
                            for c in sanity.check_iterative_vs_one_step(subset)]
        for model_name, net in self.models.items():
            pgd = [c for c in self.curves if (c['model'], c['mode'], c['attack'])
                   == (model_name, 'white-box', 'pgd')]
            self.checks += self.probe_checks(model_name, net, pgd[0]['values'] if pgd else None)

    def probe_checks(self, model_name, net, pgd_values):
        """Sanity probes on one model: gradients, then eval.sanity.run_probes with PGD (at a huge
        eps; with more steps and restarts at ``check_eps``, by default the eps where the table's
        PGD accuracy is nearest half the clean accuracy, where a stronger attack can show)."""
        x, y, s = self.x, self.y, self.s
        clean = self.clean[model_name]
        checks = []
        idx = np.flatnonzero(clean)[:64]
        if len(idx):
            name, passed, detail = sanity.check_gradients(net, x[idx], y[idx])
            checks.append(sanity.Check('%s [%s]' % (name, model_name), passed, detail))
        steps, restarts = s.attack.steps, s.attack.restarts

        def pgd_value(eps, **override):
            args = dict(dict(steps=steps, restarts=restarts), **override)
            robust, _ = _robust(self.attack('pgd', net, eps, **args), x, y, clean, s,
                                '%s sanity pgd eps=%g steps=%d restarts=%d' % (
                                    model_name, eps, args['steps'], args['restarts']))
            value = float(robust.mean())
            self.probes.append({'model': model_name, 'attack': 'pgd', 'eps': eps,
                                'steps': args['steps'], 'restarts': args['restarts'], 'value': value})
            return value

        check_eps = s.sanity.check_eps
        if check_eps is None and pgd_values is not None:
            i = int(np.argmin([abs(v - clean.mean() / 2) for v in pgd_values]))
            check_eps, base = self.eps[i], pgd_values[i]
        else:
            check_eps = check_eps if check_eps is not None else \
                sorted(self.eps)[len(self.eps) // 2]
            base = pgd_values[self.eps.index(check_eps)] \
                if pgd_values is not None and check_eps in self.eps else pgd_value(check_eps)
        return checks + sanity.run_probes(sanity.Probe(
            'robust_accuracy', model_name, 'pgd', pgd_value, steps, restarts,
            s.sanity.large_eps, check_eps, base))


def _with_worst_case(per_attack, covered, n_all, n_eps):
    rows, n_rows = _worst_cases(per_attack, covered, n_all, n_eps)
    return dict(per_attack, **rows), dict(covered, **n_rows)


def evaluate_robustness(models, x, y, settings=Settings(), source=None):
    """Robust accuracy of classifiers on (x, y) under ``settings.attacks`` at each eps.

    models: {name: eval.model.Network (output='logits')} (or one Network, named 'model');
    x: float32 (N, 1, 28, 28) in [0, 1]; y: int labels; source: optional (name, Network) whose
    adversarials are also evaluated on every model (transfer; AutoAttack rows are white-box
    only). Returns a results dict in the layout of ``eval.report`` (curves with their image
    count, checks, probes, settings, and 'autoattack': the per-stage record of every suite
    run)."""
    if isinstance(models, Network):
        models = {'model': models}
    if source is not None and source[0] in models:
        raise ValueError('the source model name %r is also a model name: rename one' % source[0])
    run_ = _Run(models, np.asarray(x, dtype=np.float32), np.asarray(y).astype(np.int64),
                settings)
    started = time.time()
    for model_name, net in models.items():
        run_.evaluate_model(model_name, net)
    if source is not None:
        run_.transfer(source)
    results = run_.results(source)
    run_.sanity(results)
    results['checks'] = sanity.as_dicts(run_.checks)
    results['probes'] = run_.probes
    results['seconds'] = round(time.time() - started, 1)
    return results


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser, 'checkpoint to evaluate, "prefix,epoch" (symbol output '
                       'fc7_output = logits, input (N,1,28,28) in [0,1])', batch_size=256)
    parser.add_argument('--source-model', default=None,
                        help='"prefix,epoch" of a second checkpoint: transfer attacks crafted '
                             'on it and evaluated on --model')
    parser.add_argument('--data-dir', default=None, help='MNIST IDX directory (data.mnist)')
    parser.add_argument('--dataset', default='auto',
                        choices=('auto', 'mnist', 'fashion-mnist', 'digits'))
    parser.add_argument('--num-samples', type=int, default=0,
                        help='use the first N test images (0 = all)')
    parser.add_argument('--attacks', type=choice_list(ALL_ATTACKS), default=list(DEFAULT_ATTACKS),
                        help='comma-separated, from %s (default %s)'
                        % (','.join(ALL_ATTACKS), ','.join(DEFAULT_ATTACKS)))
    parser.add_argument('--eps', type=float_list, default=list(DEFAULT_EPS),
                        help='comma-separated L-inf budgets on the [0,1] scale')
    parser.add_argument('--steps', type=int, default=40,
                        help='iterations of bim/pgd/mifgsm/cw')
    parser.add_argument('--step-scale', type=float, default=2.5,
                        help='bim/pgd/cw step = step-scale * eps / steps (mifgsm: eps / steps)')
    parser.add_argument('--mu', '--momentum', dest='mu', type=float, default=1.0,
                        help='mifgsm momentum decay mu')
    parser.add_argument('--restarts', type=int, default=1, help='random restarts of pgd and cw')
    parser.add_argument('--seed', type=int, default=0, help='seed of random starts')
    group = cli.add_autoattack_args(parser, samples=True)
    group.add_argument('--aa-subset', type=choice_list(AA_ATTACKS), default=None,
                       help='the AutoAttack attacks --aa-samples limits (default: all of them; '
                            'e.g. autoattack: the standard suite on the subset, autoattack-fast '
                            'on every image)')
    parser.add_argument('--large-eps', type=float, default=1.0,
                        help='eps of the "large eps breaks everything" sanity probe (0: skip)')
    parser.add_argument('--check-eps', type=float, default=None,
                        help='eps of the more-steps/more-restarts probes (default: where PGD '
                             'accuracy is nearest half the clean accuracy)')
    parser.add_argument('--no-sanity', action='store_true', help='skip the sanity checks')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 3 when a sanity check fails')
    parser.add_argument('--no-progress', action='store_true', help='no tqdm progress bars')
    parser.add_argument('--out-dir', default=None,
                        help='write results.json, results.md, robust_accuracy.png here')
    args = parser.parse_args(argv)
    if args.steps < 1 or args.restarts < 1 or args.num_samples < 0:
        parser.error('--steps, --restarts must be >= 1 and --num-samples >= 0')
    cli.check_eps(parser, args.eps, PIXEL_RANGE)
    return args


def settings_of(args):
    """The Settings of attack_mnist.py's flags (its vocabulary: eps, step, steps)."""
    attack = AttackSettings(steps=args.steps, step_scale=args.step_scale, mu=args.mu,
                            restarts=args.restarts, seed=args.seed, pixel_range=PIXEL_RANGE,
                            budget=Budget.from_args(args))
    return Settings(attacks=tuple(args.attacks), eps=tuple(args.eps), attack=attack,
                    batch_size=args.batch_size, aa_samples=args.aa_samples,
                    aa_subset=tuple(args.aa_subset) if args.aa_subset else None,
                    sanity=SanitySettings(not args.no_sanity, args.large_eps, args.check_eps),
                    progress=not args.no_progress)


def _load_model(spec, ctx, probe):
    net = cli.load_model(spec, 'logits', ctx, probe)
    out = net.predict(probe[:1])
    if out.ndim != 2:
        raise ValueError('model %s: logits of shape %s, expected (N, classes)'
                         % (spec, out.shape))
    return net


def run(args):
    """Evaluates --model (and --source-model) on the data; returns the results dict (raises
    cli.SanityFailed after reporting when --strict and a check failed)."""
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    from data.mnist import load_mnist
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    ctx = cli.parse_ctx(args.ctx, args.gpu)
    data = load_mnist(args.data_dir, args.dataset)
    x, y = data.test_x, data.test_y
    if args.num_samples:
        x, y = x[:args.num_samples], y[:args.num_samples]
    name = cli.model_name(args.model)
    models = {name: _load_model(args.model, ctx, x[:8])}
    source = None
    if args.source_model:
        source_name = cli.model_name(args.source_model)
        source_name = 'source ' + source_name if source_name == name else source_name
        source = (source_name, _load_model(args.source_model, ctx, x[:8]))
    results = evaluate_robustness(models, x, y, settings_of(args), source=source)
    results['settings'].update(model=args.model, source_model=args.source_model,
                               dataset=data.name)
    report.write_report(results, args.out_dir, title='Robust accuracy of %s on %s (%d images)'
                        % (name, data.name, len(x)))
    cli.finish_checks(results, args.strict)
    return results


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
