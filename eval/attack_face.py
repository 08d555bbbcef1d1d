"""Hit rate of a face model under feature-level attacks (the MTER paper's robustness figure).

A *hit* is an attacked pair whose verification decision flips in the attacker's favour at the
threshold of FAR = 1e-3 (squared Euclidean distance of L2-normalised single-image embeddings, no
flip; a pair matches when distance < threshold). Hit rate (%) = hits / attacked pairs; LOWER
is more robust. eps is an L-inf budget on the 0-255 pixel scale.

Scenarios (``--mode``), on the pairs of ``DATA_DIR/<target>.bin``:

* impersonation: different-identity pairs; the first image is moved toward the second image's
  (clean) embedding; hit = distance < threshold. Its clean hit rate is the false accept rate
  on those pairs.
* dodging: same-identity pairs; the first image is moved away from the second's embedding;
  hit = distance >= threshold (no longer a match). Its clean hit rate is the false reject rate.

A pair that already hits without attack counts as a hit at every eps (the attacker may leave
the image as it is); every figure of the table has the clean hit rate (eps 0) beside it.

Attacks (``--attacks``; feature-level sign-gradient attacks on 1 - cosine, built by name in
eval.registry like every attack of the project):

* fftgsm   one step of size eps (FFTGSM).
* iftgsm   ``--steps`` (10) sign steps of ``--step`` pixels, default ``--step-scale`` (2.5) *
           eps / steps, from the image itself, projected on the eps-ball and [0, 255] (IFTGSM).
* miftgsm  as iftgsm with momentum ``--mu`` (1.0) on the per-sample L1-normalised gradient;
           default step eps / steps (MI-FGSM).

Feature-level AutoAttack (eval.autoattack, on the same 1 - cosine; not in the default list):

* apgd       Auto-PGD, ``--aa-iterations`` (100) iterations, step 2*eps halved at checkpoints.
* square     Square attack, ``--aa-queries`` (5000) queries, black-box (outputs only).
* autoattack apgd, then square on the pairs apgd did not hit; a per-stage table is printed.
  With square, a sanity check flags gradient masking: square must not hit more than 1 pair
  and 0.2% of the pairs every white-box attack missed.

``worst-case`` = hit by any attack of the table. Adversarial pixels stay floats (not rounded).

Threshold: ``--threshold-json`` (from eval/cal_threshold.py, ideally computed on other pairs),
``--threshold`` (a distance), or else calibrated here on all pairs of the same .bin at
``--far`` (optimistic for the defender's threshold choice: said loudly).

``--min-eps``: per pair, the smallest eps at which ``--min-eps-attack`` (iftgsm) hits, by
bisection over (0, ``--min-eps-max``] in ``--min-eps-steps`` halvings (resolution max / 2^steps;
pairs not hit at the max are "not found"); median, quantiles, histogram and CDF go to the JSON
and min_eps.png.

Sanity checks (eval.sanity; ``--strict`` makes a failure exit with status 3): hit rate never
drops as eps grows; iterative >= one-step; iftgsm at ``--large-eps`` (64) hits >= 95% (an
undefended model must fall: a robust model may legitimately fail this, read it with care);
iftgsm with twice the steps at ``--check-eps`` gains little; input gradients are finite,
non-zero and agree with finite differences.

Example::

    python eval/cal_threshold.py --model models/r50,1 --data-dir faces_webface --target lfw \\
        --out r50-lfw-thr.json
    python eval/attack_face.py --model models/r50,1 --data-dir faces_webface --target lfw \\
        --threshold-json r50-lfw-thr.json --mode impersonation --eps 1,2,4,6,8,10 \\
        --num-pairs 500 --out-dir results/r50-hit-rate
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import collections
import dataclasses
import json
import logging
import os
import sys
import time
from collections import OrderedDict

import numpy as np
from tqdm import tqdm

from eval import cli, registry
from eval.cli import choice_list, float_list
from eval.protocol import l2_normalize
from eval.registry import AttackSettings, Budget

DEFAULT_ATTACKS = ('fftgsm', 'iftgsm', 'miftgsm')
ALL_ATTACKS = registry.names('embedding')
AA_ATTACKS = tuple(n for n in ALL_ATTACKS if n in registry.AUTOATTACK)
DEFAULT_EPS = (1, 2, 4, 6, 8, 10)
SCENARIOS = registry.SCENARIOS
PIXEL_RANGE = (0.0, 255.0)

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- settings

@dataclasses.dataclass(frozen=True)
class SanitySettings:
    enabled: bool = True
    large_eps: float = 64.0   # iftgsm there must hit (almost) every pair; 0: skip
    check_eps: float = None   # the 2x-steps probe's eps (None: the middle eps)


@dataclasses.dataclass(frozen=True)
class MinEpsSettings:
    """The per-pair minimal-eps search: ``attack``'s smallest hitting eps in (0, max_eps], by
    ``steps`` bisection halvings."""
    enabled: bool = False
    attack: str = 'iftgsm'
    max_eps: float = 16.0
    steps: int = 8


@dataclasses.dataclass(frozen=True)
class HitRateSettings:
    """What evaluate_hit_rate runs: ``attacks`` (registry names) at each eps of ``eps`` in the
    scenario(s) ``mode`` ('impersonation', 'dodging' or 'both') on the first ``num_pairs``
    eligible pairs (0: all), with ``attack``'s settings (steps, step or step_scale, mu, seed,
    the AutoAttack budget)."""
    attacks: tuple = DEFAULT_ATTACKS
    eps: tuple = DEFAULT_EPS
    mode: str = 'impersonation'
    num_pairs: int = 0
    attack: AttackSettings = AttackSettings(steps=10, step_scale=2.5, pixel_range=PIXEL_RANGE)
    batch_size: int = 32
    model_name: str = 'model'
    sanity: SanitySettings = SanitySettings()
    min_eps: MinEpsSettings = MinEpsSettings()
    progress: bool = True


# ----------------------------------------------------------------------------- pairs

def select_pairs(issame, mode, num_pairs=0):
    """Indices of the pairs a scenario attacks: the first ``num_pairs`` (0 = all) different-
    identity pairs (impersonation) or same-identity pairs (dodging), in file order."""
    if mode not in SCENARIOS:
        raise ValueError('mode must be one of %s, got %r' % (', '.join(SCENARIOS), mode))
    issame = np.asarray(issame, dtype=bool)
    idx = np.flatnonzero(~issame if mode == 'impersonation' else issame)
    return idx[:num_pairs] if num_pairs else idx


def to_nchw(images):
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) on the 0-255 scale."""
    return np.ascontiguousarray(np.asarray(images).transpose(0, 3, 1, 2), dtype=np.float32)


def embed(net, images, batch_size=32):
    """L2-normalised single-image embeddings (float64) of uint8 NHWC images, batch by batch."""
    outs = [net.predict(to_nchw(images[s:s + batch_size]), batch_size)
            for s in range(0, len(images), batch_size)]
    emb = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    return l2_normalize(emb.reshape(len(emb), -1))


def distances(emb, ref):
    """Squared Euclidean distance of normalised rows (0..4)."""
    return np.sum(np.square(l2_normalize(emb) - l2_normalize(ref)), axis=1)


def is_hit(dist, threshold, mode):
    """Impersonation hits when the pair matches (dist < threshold); dodging when it does not."""
    dist = np.asarray(dist)
    return dist < threshold if mode == 'impersonation' else dist >= threshold


class Scenario(collections.namedtuple('Scenario', 'mode threshold pairs first ref clean_dist')):
    """The pairs one scenario attacks: their indices, first images (uint8 NHWC), the partners'
    normalised embeddings and the clean distances, with the decision at ``threshold``."""

    def hit(self, dist):
        return is_hit(dist, self.threshold, self.mode)

    @property
    def clean_hit(self):
        return self.hit(self.clean_dist)

    def subset(self, idx):
        return self._replace(pairs=self.pairs[idx], first=self.first[idx], ref=self.ref[idx],
                             clean_dist=self.clean_dist[idx])


def scenario(net, images, issame, threshold, mode, num_pairs=0, batch_size=32):
    """The Scenario of ``mode`` on a pair set (images interleaved, as eval.bin_sets gives)."""
    pairs = select_pairs(issame, mode, num_pairs)
    if not len(pairs):
        raise ValueError('no %s pairs (%s-identity) among the %d pairs'
                         % (mode, 'different' if mode == 'impersonation' else 'same',
                            len(issame)))
    first = images[2 * pairs]
    ref = embed(net, images[2 * pairs + 1], batch_size)
    return Scenario(mode, float(threshold), pairs, first, ref,
                    distances(embed(net, first, batch_size), ref))


# ----------------------------------------------------------------------------- attacks

def make_attack(name, net, eps, sc, settings=HitRateSettings.attack):
    """The registry's attack ``name`` for scenario ``sc`` (toward the partner in
    impersonation, away from it in dodging; success decided at sc.threshold)."""
    return registry.build(name, net, eps, settings.replace(
        threshold=sc.threshold, scenario=sc.mode, pixel_range=PIXEL_RANGE))


def attack_pairs(attack, net, sc, batch_size=32, bar=None, keep_images=False):
    """Runs ``attack`` on the first images of ``sc``'s pairs toward/away from their partners,
    batch by batch (memory stays one batch of floats); ``bar``: a tqdm to advance.

    Returns dict(dist: adversarial distances (N,), hit: bool (N,), and x_adv: float32
    (N, 3, H, W) with ``keep_images``)."""
    n = len(sc.first)
    dist = np.zeros(n)
    kept = []
    for s in range(0, n, batch_size):
        x = to_nchw(sc.first[s:s + batch_size])
        ref = sc.ref[s:s + batch_size]
        x_adv, _ = attack(x, ref)
        dist[s:s + len(x)] = distances(net.predict(x_adv, batch_size), ref)
        if keep_images:
            kept.append(x_adv)
        if bar is not None:
            bar.update(len(x))
    out = {'dist': dist, 'hit': sc.hit(dist)}
    if keep_images:
        out['x_adv'] = np.concatenate(kept) if kept else np.zeros((0,), np.float32)
    return out


def _bar(total, desc, progress):
    return tqdm(total=total, unit='pair', desc=desc, disable=not progress, leave=False)


# ----------------------------------------------------------------------------- minimal eps

def min_eps_search(net, sc, search=MinEpsSettings(), settings=HitRateSettings.attack,
                   batch_size=32, progress=True):
    """Per pair of ``sc``, the smallest eps (0-255 scale) found at which ``search.attack`` hits.

    0 for pairs that hit clean; otherwise the attack is run at ``search.max_eps`` and, for the
    pairs it hits there, ``search.steps`` bisection halvings of (0, max_eps] follow (pairs
    sharing an interval are attacked together). The value is the smallest eps tried at which
    the attack hit (resolution max_eps / 2**steps; success need not be monotone in eps for an
    iterative attack, so it is an upper bound of the true minimum for this attack). Pairs not
    hit at max_eps get inf. Returns float64 (N,)."""
    n, max_eps = len(sc.first), float(search.max_eps)
    result = np.full(n, np.inf)
    result[sc.clean_hit] = 0.0
    todo = np.flatnonzero(~sc.clean_hit)
    with _bar(len(todo) * (1 + search.steps), 'min-eps %s %s' % (sc.mode, search.attack),
              progress) as bar:
        def hits(idx, eps):
            attack = make_attack(search.attack, net, eps, sc, settings)
            return attack_pairs(attack, net, sc.subset(idx), batch_size, bar)['hit']

        if not len(todo):
            return result
        active = todo[hits(todo, max_eps)]
        bar.total -= (len(todo) - len(active)) * search.steps
        result[active] = max_eps
        lo, hi = np.zeros(n), np.full(n, max_eps)
        for _ in range(search.steps):
            intervals = OrderedDict()
            for i in active:
                intervals.setdefault((lo[i], hi[i]), []).append(i)
            for (low, high), members in intervals.items():
                members, mid = np.asarray(members), 0.5 * (low + high)
                ok = hits(members, mid)
                hi[members[ok]] = result[members[ok]] = mid
                lo[members[~ok]] = mid
    return result


def summarize_min_eps(values, max_eps, iterations, bins=16, grid=None):
    """JSON-able summary of ``min_eps_search`` values: median and quantiles (empirical, no
    interpolation; None when beyond max_eps), histogram over [0, max_eps] plus the count not
    found, CDF (fraction of pairs hit at eps <= e) on the histogram edges and on ``grid``."""
    values = np.asarray(values, dtype=np.float64)
    found = np.isfinite(values)

    def quantile(q):
        if not len(values):
            return None
        v = float(np.quantile(values, q, method='inverted_cdf'))
        return v if np.isfinite(v) else None

    counts, edges = np.histogram(values[found], bins=bins, range=(0.0, float(max_eps)))
    cdf_eps = sorted(set(float(e) for e in edges) | set(float(e) for e in (grid or [])
                                                         if e <= max_eps))
    frac = [float(np.mean(values <= e)) if len(values) else 0.0 for e in cdf_eps]
    return {'values': [float(v) if np.isfinite(v) else None for v in values],
            'num_pairs': int(len(values)), 'max_eps': float(max_eps),
            'resolution': float(max_eps) / 2 ** iterations,
            'found_fraction': float(found.mean()) if len(values) else 0.0,
            'median': quantile(0.5),
            'quantiles': {'25': quantile(0.25), '50': quantile(0.5), '75': quantile(0.75),
                          '90': quantile(0.9)},
            'mean_found': float(values[found].mean()) if found.any() else None,
            'histogram': {'edges': [float(e) for e in edges], 'counts': counts.tolist(),
                          'not_found': int((~found).sum())},
            'cdf': {'eps': cdf_eps, 'fraction': frac}}


def plot_min_eps(summaries, path, title=None):
    """PNG: the CDF of the minimal eps per scenario (fraction of pairs hit at eps <= e)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, summary in summaries.items():
        values = np.sort([v for v in summary['values'] if v is not None])
        n = max(summary['num_pairs'], 1)
        xs = np.concatenate([[0.0], values, [summary['max_eps']]])
        ys = np.concatenate([[np.sum(values <= 0) / n], np.arange(1, len(values) + 1) / n,
                             [len(values) / n]])
        ax.step(xs, 100 * ys, where='post', label='%s (median %s)' % (
            name, 'n/a' if summary['median'] is None else '%.3g' % summary['median']))
    ax.set_xlabel('minimal eps (L-inf, 0-255)')
    ax.set_ylabel('pairs hit at eps <= x (%)')
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc='lower right')
    if title:
        ax.set_title(title, fontsize=9)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


# ----------------------------------------------------------------------------- evaluation

class _Run:
    """One evaluate_hit_rate call: per scenario the curves, stage rows, checks and probes."""

    def __init__(self, net, settings):
        self.net, self.s = net, settings
        self.eps = [float(e) for e in settings.eps]
        self.curves, self.checks, self.probes, self.stage_table = [], [], [], []

    def attack(self, name, eps, sc, **override):
        return make_attack(name, self.net, eps, sc, self.s.attack.replace(**override))

    def run_attack(self, name, eps, sc, desc, **override):
        """(hit incl. clean hits, mean distance, suite or None) of one attack at one eps."""
        attack = self.attack(name, eps, sc, **override)
        with _bar(len(sc.first), desc, self.s.progress) as bar:
            out = attack_pairs(attack, self.net, sc, self.s.batch_size, bar)
        suite = attack if name in registry.SUITES else None
        return sc.clean_hit | out['hit'], float(out['dist'].mean()), suite

    def evaluate(self, sc, outer):
        label = '%s %s' % (self.s.model_name, sc.mode)
        per_attack, suites = OrderedDict(), {}
        for name in self.s.attacks:
            hits, mean_dist = [], []
            for eps in self.eps:
                hit, dist, suite = self.run_attack(name, eps, sc,
                                                   '%s %s eps=%g' % (sc.mode, name, eps))
                hits.append(hit)
                mean_dist.append(dist)
                if suite is not None:
                    record = _merged(suite)
                    suites.setdefault(name, []).append((record['broken_by'],
                                                        [st.name for st in suite.stages]))
                    self.stage_table.append(_stage_entry(label, name, eps, suite, record))
                outer.update(1)
            per_attack[name] = hits
            self.add_curve(label, name, sc, hits, mean_dist)
        if self.s.sanity.enabled:
            self.masking_check(label, sc, per_attack, suites)
        if len(per_attack) > 1:
            from eval import report
            worst = [np.logical_or.reduce([h[i] for h in per_attack.values()]).mean()
                     for i in range(len(self.eps))]
            self.curves.append(report.make_curve(label, 'worst-case', worst,
                                                 sc.clean_hit.mean(), 'white-box',
                                                 {'scenario': sc.mode, 'of': list(per_attack)}))

    def add_curve(self, label, name, sc, hits, mean_dist):
        from eval import report
        per_eps = [self.attack(name, eps, sc).params() for eps in self.eps]
        params = dict(per_eps[0])
        params.pop('eps', None)
        params['implementation'] = params.pop('attack')  # eval.attacks class name
        if name not in AA_ATTACKS:
            params['step'] = [p.get('step', p['eps']) for p in per_eps]
        params.update(scenario=sc.mode, num_pairs=int(len(sc.pairs)), mean_distance=mean_dist,
                      clean_mean_distance=float(sc.clean_dist.mean()))
        values = [float(h.mean()) for h in hits]
        self.curves.append(report.make_curve(label, name, values, sc.clean_hit.mean(),
                                             'white-box', params))
        log.info('%s %s: hit rate %s; mean distance %s', sc.mode, name,
                 ' '.join('%.4f' % v for v in values), ' '.join('%.4f' % d for d in mean_dist))

    def masking_check(self, label, sc, per_attack, suites):
        """Gradient-masking tell (eval.sanity.masking_counts): pairs a black-box attack (alone
        or as a suite's stage) hit that every white-box attack of the table missed."""
        from eval import sanity
        if not any(a in registry.BLACK_BOX or a in suites for a in per_attack):
            return
        candidates = ~sc.clean_hit
        broken = {a: [h & candidates for h in hits] for a, hits in per_attack.items()}
        extra = sanity.masking_counts(candidates, broken, suites, registry.BLACK_BOX)
        self.checks.append(sanity.check_gradient_masking(extra, len(candidates), self.eps,
                                                         label))

    def min_eps(self, sc):
        search = self.s.min_eps
        values = min_eps_search(self.net, sc, search, self.s.attack, self.s.batch_size,
                                self.s.progress)
        summary = summarize_min_eps(values, search.max_eps, search.steps, grid=self.eps)
        summary['attack'] = search.attack
        log.info('%s: minimal eps median %s (found for %.1f%% of pairs within %g)', sc.mode,
                 summary['median'], 100 * summary['found_fraction'], search.max_eps)
        return summary

    def probe_checks(self, sc):
        """Gradient check; then eval.sanity.run_probes with iftgsm: at a huge eps, and with
        twice the steps at ``check_eps`` (default the middle eps)."""
        from eval import sanity
        what = '%s %s' % (self.s.model_name, sc.mode)
        k = min(16, len(sc.first))
        name, passed, detail = sanity.check_gradients(self.net, to_nchw(sc.first[:k]),
                                                      sc.ref[:k], threshold=sc.threshold)
        checks = [sanity.Check('%s [%s]' % (name, what), passed, detail)]

        def iftgsm_rate(eps, steps=None, restarts=None):
            steps = steps or self.s.attack.steps
            hit, _, _ = self.run_attack('iftgsm', eps, sc, 'sanity %s iftgsm eps=%g steps=%d'
                                        % (sc.mode, eps, steps), steps=steps)
            self.probes.append({'scenario': sc.mode, 'attack': 'iftgsm', 'eps': eps,
                                'steps': steps, 'value': float(hit.mean())})
            return float(hit.mean())

        eps = self.s.sanity.check_eps
        eps = eps if eps is not None else sorted(self.eps)[len(self.eps) // 2]
        curve = [c for c in self.curves if c['model'] == what and c['attack'] == 'iftgsm']
        base = curve[0]['values'][self.eps.index(eps)] if curve and eps in self.eps \
            else iftgsm_rate(eps)
        return checks + sanity.run_probes(sanity.Probe(
            'hit_rate', what, 'iftgsm', iftgsm_rate, self.s.attack.steps, None,
            self.s.sanity.large_eps, eps, base))


def _merged(suite):
    """The suite's record over every batch of one attack_pairs call (broken_by over all
    pairs)."""
    from eval.autoattack import merge_records
    record = merge_records(suite.history)
    record['broken_by'] = np.concatenate([r['broken_by'] for r in suite.history])
    return record


def _stage_entry(label, name, eps, suite, record):
    from eval.autoattack import stage_entry
    return stage_entry(label, name, eps, suite, record, record['num_images'],
                       record['num_images'] - record['clean_success'])


def evaluate_hit_rate(net, images, issame, threshold, settings=HitRateSettings()):
    """Hit rates of ``net`` (eval.model.Network, output='embedding', input 0-255 RGB NCHW).

    images: uint8 (2P, H, W, 3), pairs interleaved (as eval.bin_sets.load_target gives);
    issame: bool (P,); threshold: squared Euclidean distance. Returns a results dict in
    eval.report's layout (metric 'hit_rate'; one curve per scenario and attack, model =
    '<model_name> <scenario>', mode 'white-box', clean = clean hit rate, params with the
    attack settings and mean distances per eps), plus 'scenarios' (pairs, clean figures),
    'min_eps' (when enabled), 'checks', 'probes', 'settings', and 'autoattack' (per-stage
    records of every suite run)."""
    from eval import sanity
    s = settings
    images, issame = np.asarray(images), np.asarray(issame, dtype=bool)
    if images.ndim != 4 or len(images) != 2 * len(issame):
        raise ValueError('expected 2 images per pair (%d pairs), got images of shape %s'
                         % (len(issame), images.shape))
    started = time.time()
    modes = list(SCENARIOS) if s.mode == 'both' else [s.mode]
    prepared = [scenario(net, images, issame, threshold, m, s.num_pairs, s.batch_size)
                for m in modes]
    run_ = _Run(net, s)
    results = {'metric': 'hit_rate', 'eps': run_.eps, 'curves': run_.curves,
               'threshold': float(threshold), 'scenarios': OrderedDict(), 'probes': run_.probes}
    for sc in prepared:
        results['scenarios'][sc.mode] = {
            'num_pairs': int(len(sc.pairs)), 'pair_indices': sc.pairs.tolist(),
            'clean_hit_rate': float(sc.clean_hit.mean()),
            'clean_mean_distance': float(sc.clean_dist.mean())}
        log.info('%s: %d pairs, clean hit rate %.4f, mean distance %.4f (threshold %.4f)',
                 sc.mode, len(sc.pairs), sc.clean_hit.mean(), sc.clean_dist.mean(), threshold)
    with tqdm(total=len(prepared) * len(s.attacks) * len(run_.eps), unit='run',
              desc='hit rate', disable=not s.progress) as outer:
        for sc in prepared:
            run_.evaluate(sc, outer)
    if run_.stage_table:
        results['autoattack'] = run_.stage_table
    if s.min_eps.enabled:
        results['min_eps'] = OrderedDict((sc.mode, run_.min_eps(sc)) for sc in prepared)
    if s.sanity.enabled:
        run_.checks += sanity.run_table_checks(results)
        for sc in prepared:
            run_.checks += run_.probe_checks(sc)
    results['checks'] = sanity.as_dicts(run_.checks)
    results['settings'] = _settings_record(s, threshold)
    results['seconds'] = round(time.time() - started, 1)
    return results


def _settings_record(s, threshold):
    return dict(attacks=list(s.attacks), mode=s.mode, num_pairs=s.num_pairs,
                steps=s.attack.steps, step=s.attack.step, step_scale=s.attack.step_scale,
                mu=s.attack.mu, seed=s.attack.seed, budget=s.attack.budget.as_dict(),
                batch_size=s.batch_size, pixel_range=list(PIXEL_RANGE),
                threshold=float(threshold), large_eps=s.sanity.large_eps,
                check_eps=s.sanity.check_eps, min_eps=dataclasses.asdict(s.min_eps),
                distance='squared Euclidean of L2-normalised single-image embeddings (no flip)',
                loss='cos (1 - cosine similarity)')


# ----------------------------------------------------------------------------- CLI

def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser, 'checkpoint "prefix,epoch" or an .onnx file (embedding, input '
                       '0-255 RGB NCHW)', batch_size=32, image_size=True)
    parser.add_argument('--data-dir', required=True, help='folder holding <target>.bin '
                        '(and an InsightFace property file giving the image size)')
    parser.add_argument('--target', default='lfw', help='pair set name (default %(default)s)')
    thr = parser.add_mutually_exclusive_group()
    thr.add_argument('--threshold-json', default=None,
                     help='threshold file written by eval/cal_threshold.py')
    thr.add_argument('--threshold', type=float, default=None,
                     help='squared Euclidean distance threshold (0..4) of a match')
    parser.add_argument('--threshold-key', default='threshold',
                        choices=('threshold', 'best_acc_threshold'),
                        help='which threshold of --threshold-json (default %(default)s)')
    parser.add_argument('--far', type=float, default=1e-3,
                        help='FAR of the threshold calibrated on the fly (no threshold given)')
    parser.add_argument('--nfolds', type=int, default=10, help='folds of that calibration')
    parser.add_argument('--mode', default='impersonation', choices=SCENARIOS + ('both',))
    parser.add_argument('--attacks', type=choice_list(ALL_ATTACKS), default=list(DEFAULT_ATTACKS),
                        help='comma-separated, from %s (default %s)'
                        % (','.join(ALL_ATTACKS), ','.join(DEFAULT_ATTACKS)))
    parser.add_argument('--eps', type=float_list, default=list(map(float, DEFAULT_EPS)),
                        help='comma-separated L-inf budgets on the 0-255 scale '
                             '(default %s)' % ','.join(map(str, DEFAULT_EPS)))
    parser.add_argument('--steps', type=int, default=10, help='iterations of iftgsm/miftgsm')
    parser.add_argument('--step', type=float, default=None,
                        help='fixed step in pixels of iftgsm/miftgsm (default: iftgsm '
                             '--step-scale * eps / steps, miftgsm eps / steps)')
    parser.add_argument('--step-scale', type=float, default=2.5,
                        help='iftgsm step = step-scale * eps / steps when --step is not given')
    parser.add_argument('--mu', '--momentum', dest='mu', type=float, default=1.0,
                        help='miftgsm momentum decay')
    parser.add_argument('--num-pairs', type=int, default=0,
                        help='attack the first N eligible pairs of each scenario (0 = all)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
    _add_check_args(parser)
    cli.add_autoattack_args(parser)
    return parser


def _add_check_args(parser):
    parser.add_argument('--min-eps', action='store_true',
                        help='also search each pair\'s minimal eps (bisection)')
    parser.add_argument('--min-eps-attack', default='iftgsm', choices=DEFAULT_ATTACKS)
    parser.add_argument('--min-eps-max', type=float, default=16.0,
                        help='upper end of the minimal-eps search (default %(default)s)')
    parser.add_argument('--min-eps-steps', type=int, default=8,
                        help='bisection halvings (resolution max / 2^steps; default %(default)s)')
    parser.add_argument('--large-eps', type=float, default=64.0,
                        help='eps of the "large eps hits ~everything" probe (0: skip)')
    parser.add_argument('--check-eps', type=float, default=None,
                        help='eps of the 2x-steps probe (default: the middle eps)')
    parser.add_argument('--no-sanity', action='store_true', help='skip the sanity checks')
    parser.add_argument('--strict', action='store_true',
                        help='exit with status 3 when a sanity check fails')
    parser.add_argument('--no-progress', action='store_true', help='no tqdm progress bars')
    parser.add_argument('--out-dir', default=None,
                        help='write results.json, results.md, hit_rate.png (and min_eps.png)')


def parse_args(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.steps < 1 or args.batch_size < 1 or args.num_pairs < 0 or args.min_eps_steps < 0
            or args.min_eps_max <= 0 or args.large_eps < 0):
        parser.error('--steps and --batch-size must be >= 1, --num-pairs and --min-eps-steps '
                     '>= 0, --min-eps-max > 0, --large-eps >= 0')
    cli.check_eps(parser, args.eps, PIXEL_RANGE)
    if args.threshold is not None:
        from eval.cal_threshold import check_threshold  # the same rule as a threshold JSON's
        try:
            check_threshold(args.threshold, '--threshold')
        except ValueError as err:
            parser.error(str(err))
    return args


def settings_of(args, model_name):
    """The HitRateSettings of attack_face.py's flags (its vocabulary: eps, step, steps)."""
    attack = AttackSettings(steps=args.steps, step=args.step, step_scale=args.step_scale,
                            mu=args.mu, seed=args.seed, pixel_range=PIXEL_RANGE,
                            budget=Budget.from_args(args))
    return HitRateSettings(
        attacks=tuple(args.attacks), eps=tuple(args.eps), mode=args.mode,
        num_pairs=args.num_pairs, attack=attack, batch_size=args.batch_size,
        model_name=model_name, progress=not args.no_progress,
        sanity=SanitySettings(not args.no_sanity, args.large_eps, args.check_eps),
        min_eps=MinEpsSettings(args.min_eps, args.min_eps_attack, args.min_eps_max,
                               args.min_eps_steps))


def _loud(message):
    bar = '!' * 78
    print('\n%s\n!!! %s\n%s\n' % (bar, message, bar), file=sys.stderr)


def resolve_threshold(args, net, images, issame):
    """(threshold, description dict) from --threshold-json, --threshold or a calibration on
    the same pairs (with a loud note)."""
    if args.threshold_json:
        from eval.cal_threshold import load_threshold
        value = load_threshold(args.threshold_json, args.threshold_key)
        with open(args.threshold_json) as f:
            record = json.load(f)
        info = {'source': args.threshold_json, 'key': args.threshold_key,
                'far': record.get('far'), 'model': record.get('model'),
                'target': record.get('target'), 'flip': record.get('flip')}
        if record.get('flip'):
            log.warning('%s was calibrated with flip embeddings; the attacks compare single '
                        'images', args.threshold_json)
        if record.get('model') and record['model'] != args.model:
            log.warning('%s was calibrated on model %s, not %s', args.threshold_json,
                        record['model'], args.model)
        return value, info
    if args.threshold is not None:
        return args.threshold, {'source': '--threshold'}
    from eval.cal_threshold import thresholds_from_distances
    dist = distances(embed(net, images[0::2], args.batch_size),
                     embed(net, images[1::2], args.batch_size))
    record = thresholds_from_distances(dist, issame, args.far, args.nfolds)
    _loud('no --threshold-json/--threshold: threshold %.5f calibrated at FAR=%g on the SAME '
          '%d pairs that are attacked (optimistic; calibrate on other pairs with '
          'eval/cal_threshold.py for a clean protocol)' % (record['threshold'], args.far,
                                                          len(issame)))
    return record['threshold'], {'source': 'calibrated on the attacked set', 'far': args.far,
                                 'val': record['val'], 'per_fold': record['per_fold']}


def load_inputs(args):
    """(net, images, issame, threshold, threshold_info): the pair set, the model checked on
    it (size, channels, finite outputs) and the threshold; every bad input a ValueError."""
    import mxnet as mx
    from eval.bin_sets import check_input_size, image_size_rule, load_targets
    targets = load_targets(args.data_dir, [args.target], *image_size_rule(args))
    images, issame = targets[args.target]
    net = cli.load_model(args.model, 'embedding', cli.parse_ctx(args.ctx, args.gpu), None)
    check_input_size(net, targets)
    cli.check_outputs(net, to_nchw(images[:2]), args.model)
    np.random.seed(args.seed)
    mx.random.seed(args.seed)
    threshold, info = resolve_threshold(args, net, images, issame)
    if threshold <= 0:
        _loud('threshold %g: no pair can match (too few different pairs to reach FAR=%g?)'
              % (threshold, args.far))
    return net, images, issame, threshold, info


def run(args):
    """Hit rates of --model on --target's pairs; returns the results dict (raises
    cli.SanityFailed after reporting when --strict and a check failed)."""
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stderr)
    from eval import report
    net, images, issame, threshold, threshold_info = load_inputs(args)
    name = cli.model_name(args.model)
    results = evaluate_hit_rate(net, images, issame, threshold, settings_of(args, name))
    results['settings'].update(model=args.model, data_dir=args.data_dir, target=args.target,
                               image_size=list(images.shape[1:3]), threshold_info=threshold_info)
    title = 'Hit rate of %s on %s (threshold %.4f, %s)' % (
        name, args.target, threshold, ', '.join('%d %s pairs' % (s['num_pairs'], k)
                                                 for k, s in results['scenarios'].items()))
    report.write_report(results, args.out_dir, title=title, plot_name='hit_rate.png')
    for scenario_name, summary in results.get('min_eps', {}).items():
        print('minimal eps [%s, %s]: median %s, quartiles %s / %s, found for %.1f%% within %g'
              % (scenario_name, summary['attack'], summary['median'],
                 summary['quantiles']['25'], summary['quantiles']['75'],
                 100 * summary['found_fraction'], summary['max_eps']))
    if args.out_dir and results.get('min_eps'):
        plot_min_eps(results['min_eps'], os.path.join(args.out_dir, 'min_eps.png'),
                     'minimal eps of %s on %s' % (name, args.target))
    cli.finish_checks(results, args.strict)
    return results


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
