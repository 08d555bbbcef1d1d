"""Sanity checks of a robustness evaluation (Carlini et al. 2019, "On Evaluating Adversarial
Robustness"): signs that an attack, not the model, is what failed.

Every check returns a ``Check(name, passed, detail)`` (a tuple). Table checks read a results
dict in the layout of ``eval.report``; ``check_gradients`` probes a model directly.
``report_checks`` prints every check and a loud banner on stderr for each failure;
``as_dicts`` gives the JSON form recorded in results files.

Direction: for 'robust_accuracy' a stronger attack LOWERS the figure, for 'hit_rate' it RAISES
it; ``_strength`` maps both to "attack strength" so each check is written once.
"""
import collections
import sys

import numpy as np

from eval.attacks import Objective
from eval.protocol import l2_normalize
from eval.report import METRICS, percent

Check = collections.namedtuple('Check', 'name passed detail')

ONE_STEP_ATTACKS = ('fgsm', 'fftgsm')
ITERATIVE_ATTACKS = ('bim', 'pgd', 'mifgsm', 'cw', 'iftgsm', 'miftgsm', 'apgd', 'apgd-ce',
                     'apgd-dlr', 'apgd-t', 'fab-t', 'autoattack', 'autoattack-fast')
MASKING_MARGIN = 0.002  # fraction of images: the reference's check_square_sr (0.2%)


def _strength(metric, value):
    """Attack strength of a figure: 1 - accuracy, or the hit rate itself."""
    return 1.0 - value if METRICS[metric]['attack_lowers'] else value


def _groups(results):
    groups = collections.OrderedDict()
    for curve in results['curves']:
        groups.setdefault((curve['model'], curve['mode']), []).append(curve)
    return groups


def check_monotone(results, tol=0.005):
    """Attack success never drops as eps grows (one check per model/mode); ``tol`` = allowed
    drop (fraction) between consecutive eps, for sampling noise of random starts."""
    metric, eps = results['metric'], results['eps']
    order = np.argsort(eps)
    checks = []
    for (model, mode), curves in _groups(results).items():
        bad = []
        for curve in curves:
            strength = [_strength(metric, curve['values'][i]) for i in order]
            for i in range(1, len(strength)):
                if strength[i] < strength[i - 1] - tol:
                    bad.append('%s: %s at eps=%g after %s at eps=%g' % (
                        curve['attack'], percent(curve['values'][order[i]]), eps[order[i]],
                        percent(curve['values'][order[i - 1]]), eps[order[i - 1]]))
        detail = '; '.join(bad) if bad else '%d curves monotone in eps' % len(curves)
        checks.append(Check('monotone in eps [%s, %s]' % (model, mode), not bad, detail))
    return checks


def check_iterative_vs_one_step(results, tol=0.005):
    """Iterative attacks at least as strong as the one-step attack at every eps (white-box
    only: transferred iterative attacks are often weaker, legitimately)."""
    metric, eps = results['metric'], results['eps']
    checks = []
    for (model, mode), curves in _groups(results).items():
        if mode != 'white-box':
            continue
        one_step = [c for c in curves if c['attack'] in ONE_STEP_ATTACKS]
        iterative = [c for c in curves if c['attack'] in ITERATIVE_ATTACKS]
        if not one_step or not iterative:
            continue
        bad = []
        for base in one_step:
            for curve in iterative:
                if curve.get('num_samples') != base.get('num_samples'):
                    continue  # other images: compared on a common subset by the caller
                for i, e in enumerate(eps):
                    if (_strength(metric, curve['values'][i])
                            < _strength(metric, base['values'][i]) - tol):
                        bad.append('%s %s < %s %s at eps=%g' % (
                            curve['attack'], percent(curve['values'][i]), base['attack'],
                            percent(base['values'][i]), e))
        detail = '; '.join(bad) if bad else '%d iterative attacks >= %s at all eps' % (
            len(iterative), '/'.join(c['attack'] for c in one_step))
        checks.append(Check('iterative >= one-step [%s]' % model, not bad, detail))
    return checks


def check_large_eps(metric, value, eps, what, limit=0.05):
    """At a very large eps the attack must (almost) always succeed: accuracy <= ``limit`` or
    hit rate >= 1 - ``limit``."""
    passed = _strength(metric, value) >= 1.0 - limit
    return Check('large eps breaks everything [%s]' % what, passed,
                 '%s %s at eps=%g (needs %s %s)' % (
                     METRICS[metric]['label'], percent(value), eps,
                     '<=' if METRICS[metric]['attack_lowers'] else '>=',
                     percent(limit if METRICS[metric]['attack_lowers'] else 1 - limit)))


def check_stronger_changes_little(metric, base, stronger, what, tol=0.02):
    """A stronger run of the same attack (more steps, more restarts) gains at most ``tol``:
    a larger gain means the reported attack had not converged."""
    gain = _strength(metric, stronger) - _strength(metric, base)
    return Check('stable under %s' % what, gain <= tol,
                 '%s -> %s (gain %s points, allowed %s)' % (
                     percent(base), percent(stronger), percent(gain), percent(tol)))


def check_gradients(model, x, y=None, threshold=1.0, min_nonzero=0.99, fd_tol=0.3, seed=0):
    """Input gradients of ``model`` on a batch are finite, non-zero for (almost) every sample
    (``min_nonzero``), and agree with central differences along random sign directions
    (relative error < ``fd_tol``; the finite differences only CHECK the analytic gradient).

    Classifier: cross-entropy for finiteness/non-zero, Carlini-Wagner margin (well scaled, no
    saturation) for the agreement. Embedding: distance to ``y`` (default: the batch's own
    embeddings rolled by one, so the distance is away from its zero-gradient minimum)."""
    x = np.asarray(x, dtype=np.float32)
    if model.output == 'logits':
        if y is None:
            raise ValueError('check_gradients on a classifier needs labels')
        main, smooth = Objective(model, loss='ce'), Objective(model, loss='cw')
        ref = main.reference(x, y)
    else:
        main = smooth = Objective(model, targeted=False, loss='cos', threshold=threshold)
        ref = l2_normalize(np.roll(model.predict(x), 1, axis=0), np.float32) if y is None \
            else main.reference(x, y)
    _, grad = main.value_and_grad(x, ref)
    flat = grad.reshape(len(x), -1)
    finite = bool(np.isfinite(flat).all())
    nonzero = float(np.mean(np.abs(flat).max(axis=1) > 0))
    # directional derivatives: analytic vs central differences
    _, grad_s = smooth.value_and_grad(x, ref)
    rng = np.random.default_rng(seed)
    span = float(np.max(x) - np.min(x)) or 1.0
    h = np.float32(1e-3 * span)
    analytic, numeric = [], []
    for _ in range(3):
        direction = rng.choice(np.array([-1, 1], dtype=np.float32), size=x.shape)
        plus, _ = smooth.evaluate(x + h * direction, ref)
        minus, _ = smooth.evaluate(x - h * direction, ref)
        numeric.append((plus.astype(np.float64) - minus) / (2 * float(h)))
        analytic.append(np.sum((grad_s * direction).reshape(len(x), -1), axis=1, dtype=np.float64))
    analytic, numeric = np.concatenate(analytic), np.concatenate(numeric)
    scale = max(np.linalg.norm(analytic), np.linalg.norm(numeric), 1e-30)
    rel_err = float(np.linalg.norm(analytic - numeric) / scale)
    passed = finite and nonzero >= min_nonzero and rel_err < fd_tol
    detail = ('finite: %s; samples with a non-zero gradient: %.1f%% (needs %.0f%%); '
              'directional derivative vs finite differences: relative error %.3f (needs < %g)'
              % (finite, 100 * nonzero, 100 * min_nonzero, rel_err, fd_tol))
    return Check('gradients finite, non-zero, correct', passed, detail)


def check_gradient_masking(extra_broken, num_images, eps, what, margin=MASKING_MARGIN,
                           min_images=1):
    """The gradient-masking tell (AutoAttack's check_square_sr): ``extra_broken[i]`` images at
    ``eps[i]`` were broken by the black-box Square attack although every white-box attack failed
    on them. Gradient-based attacks that work leave Square nothing: more than ``min_images``
    image(s) and more than ``margin`` of the ``num_images`` images means masked or obfuscated
    gradients, and the white-box figures overstate robustness."""
    allowed = max(min_images, margin * num_images)
    bad = [k > allowed for k in extra_broken]
    detail = ('images Square broke that every white-box attack failed on, of %d: %s (allowed: '
              '%d image(s) or %.1f%%)' % (num_images, ', '.join(
                  '%d at eps=%g%s' % (k, e, ' FAIL' if b else '')
                  for k, e, b in zip(extra_broken, eps, bad)), min_images, 100 * margin))
    return Check('no gradient masking: black-box <= white-box [%s]' % what, not any(bad), detail)


def run_table_checks(results, tol=0.005):
    """The checks that need only the table."""
    return check_monotone(results, tol) + check_iterative_vs_one_step(results, tol)


def as_dicts(checks):
    return [{'name': c[0], 'passed': bool(c[1]), 'detail': c[2]} for c in checks]


def report_checks(checks, stream=None):
    """Prints a one-line summary and, for every failed check, a loud banner (stderr by
    default). Returns True when all passed."""
    stream = stream or sys.stderr
    failed = [c for c in checks if not c[1]]
    print('sanity checks: %d/%d passed' % (len(checks) - len(failed), len(checks)), file=stream)
    for name, _, detail in failed:
        bar = '!' * 78
        print('\n%s\n!!! SANITY CHECK FAILED: %s\n!!! %s\n%s\n' % (bar, name, detail, bar),
              file=stream)
    return not failed


def masking_counts(candidates, broken, suites, black_box=('square',)):
    """Per eps, the candidate images (clean-correct / not hit clean) that a black-box attack
    (alone, or as a suite's stage) broke although every white-box attack of the table failed on
    them: the gradient-masking tell. ``broken``: {attack: [bool (n,) per eps]}, successes on
    candidates; ``suites``: {attack: [(broken_by (n,), stage names) per eps]} (broken_by: -1
    not attacked / clean success, k broken by stage k, len(stages) survived)."""
    n_eps = len(next(iter(broken.values()))) if broken else 0
    extra = []
    for i in range(n_eps):
        white = np.zeros(len(candidates), bool)
        black = np.zeros(len(candidates), bool)
        for name, rows in broken.items():
            if name in suites:
                by, names = suites[name][i]
                box = [k for k, stage in enumerate(names) if stage in black_box]
                black |= np.isin(by, box)
                white |= (by >= 0) & (by < len(names)) & ~np.isin(by, box)
            elif name in black_box:
                black |= rows[i]
            else:
                white |= rows[i]
        extra.append(int((candidates & black & ~white).sum()))
    return extra


Probe = collections.namedtuple('Probe', 'metric label attack value steps restarts large_eps '
                                        'check_eps base')


def run_probes(probe):
    """The stronger-attack sanity probes of one model (and scenario): ``probe.value(eps,
    steps=, restarts=)`` runs ``probe.attack`` and returns the metric. At ``large_eps`` the
    attack must (almost) always win; at ``check_eps``, twice the steps (and, when ``restarts``
    is not None, 2 more restarts) must change the table's figure ``base`` little."""
    p = probe
    checks = []
    if p.large_eps:
        checks.append(check_large_eps(p.metric, p.value(p.large_eps), p.large_eps,
                                      '%s, %s' % (p.label, p.attack)))
    more = p.value(p.check_eps, steps=2 * p.steps)
    checks.append(check_stronger_changes_little(
        p.metric, p.base, more, '2x steps [%s, %s eps=%g, %d -> %d steps]'
        % (p.label, p.attack, p.check_eps, p.steps, 2 * p.steps)))
    if p.restarts is not None:
        more = p.value(p.check_eps, restarts=p.restarts + 2)
        checks.append(check_stronger_changes_little(
            p.metric, p.base, more, '+2 restarts [%s, %s eps=%g, %d -> %d restarts]'
            % (p.label, p.attack, p.check_eps, p.restarts, p.restarts + 2)))
    return checks
