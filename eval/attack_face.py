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

Attacks (``--attacks``; feature-level sign-gradient attacks on 1 - cosine, eval.attacks):

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
import json
import logging
import os
import sys
import time
from collections import OrderedDict

import numpy as np
from tqdm import tqdm

from eval.cli import add_autoattack_args, choice_list, float_list

DEFAULT_ATTACKS = ('fftgsm', 'iftgsm', 'miftgsm')
AA_ATTACKS = ('apgd', 'square', 'autoattack')  # feature-level AutoAttack and its stages
ALL_ATTACKS = DEFAULT_ATTACKS + AA_ATTACKS
DEFAULT_EPS = (1, 2, 4, 6, 8, 10)
SCENARIOS = ('impersonation', 'dodging')
PIXEL_RANGE = (0.0, 255.0)

log = logging.getLogger(__name__)


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
    from eval.verification import l2_normalize
    outs = [net.predict(to_nchw(images[s:s + batch_size]), batch_size)
            for s in range(0, len(images), batch_size)]
    emb = np.concatenate(outs) if outs else np.zeros((0, 0), np.float32)
    return l2_normalize(emb.reshape(len(emb), -1))


def distances(emb, ref):
    """Squared Euclidean distance of normalised rows (0..4)."""
    from eval.verification import l2_normalize
    return np.sum(np.square(l2_normalize(emb) - l2_normalize(ref)), axis=1)


def is_hit(dist, threshold, mode):
    """Impersonation hits when the pair matches (dist < threshold); dodging when it does not."""
    dist = np.asarray(dist)
    return dist < threshold if mode == 'impersonation' else dist >= threshold


# ----------------------------------------------------------------------------- attacks

def build_attack(name, net, eps, threshold, mode, steps=10, step=None, step_scale=2.5,
                 mu=1.0, seed=0, aa_iterations=100, aa_queries=5000):
    """The eval.attacks object for attack ``name`` in scenario ``mode`` (see the module doc
    for the step defaults). Impersonation uses FFTGSM/IFTGSM/MIFTGSM; dodging the same
    attacks untargeted (raising the distance from the partner's embedding). apgd, square and
    autoattack (eval.autoattack, feature level) work on 1 - cosine in both scenarios."""
    from eval import attacks as A
    from eval import autoattack
    if mode not in SCENARIOS:
        raise ValueError('mode must be one of %s, got %r' % (', '.join(SCENARIOS), mode))
    common = dict(threshold=threshold, pixel_range=PIXEL_RANGE, seed=seed)
    if name in AA_ATTACKS:
        feature = dict(targeted=mode == 'impersonation', loss='cos', iterations=aa_iterations,
                       queries=aa_queries, **common)
        if name == 'autoattack':
            return autoattack.AutoAttack(net, eps, 'standard', **feature)
        return autoattack.make_member(name, net, eps, **feature)
    iter_step = step if step is not None else step_scale * eps / steps
    mi_step = step if step is not None else eps / steps
    if mode == 'impersonation':
        if name == 'fftgsm':
            return A.FFTGSM(net, eps, **common)
        if name == 'iftgsm':
            return A.IFTGSM(net, eps, step=iter_step, steps=steps, **common)
        if name == 'miftgsm':
            return A.MIFTGSM(net, eps, step=mi_step, steps=steps, mu=mu, **common)
    else:
        if name == 'fftgsm':
            return A.FGSM(net, eps, targeted=False, **common)
        if name == 'iftgsm':
            return A.BIM(net, eps, step=iter_step, steps=steps, targeted=False, **common)
        if name == 'miftgsm':
            return A.MIFGSM(net, eps, step=mi_step, steps=steps, mu=mu, targeted=False,
                            **common)
    raise ValueError('unknown attack %r: expected some of %s' % (name, ','.join(ALL_ATTACKS)))


def attack_pairs(attack, net, first, ref, threshold, mode, batch_size=32, progress=True,
                 desc=None, keep_images=False, bar=None):
    """Runs ``attack`` on the first images of pairs toward/away from ``ref`` (the partners'
    normalised embeddings), batch by batch (memory stays one batch of floats).

    first: uint8 (N, H, W, 3); ref: (N, D). Returns dict(dist: adversarial distances (N,),
    hit: bool (N,) by ``is_hit``, x_adv: float32 (N, 3, H, W) if ``keep_images``).
    ``bar``: an open tqdm to advance instead of opening one."""
    n = len(first)
    dist = np.zeros(n)
    kept = [] if keep_images else None
    own_bar = bar is None
    if own_bar:
        bar = tqdm(total=n, unit='pair', desc=desc, disable=not progress, leave=False)
    try:
        for s in range(0, n, batch_size):
            x = to_nchw(first[s:s + batch_size])
            x_adv, _ = attack(x, ref[s:s + batch_size])
            dist[s:s + len(x)] = distances(net.predict(x_adv, batch_size), ref[s:s + batch_size])
            if keep_images:
                kept.append(x_adv)
            bar.update(len(x))
    finally:
        if own_bar:
            bar.close()
    out = {'dist': dist, 'hit': is_hit(dist, threshold, mode)}
    if keep_images:
        out['x_adv'] = np.concatenate(kept) if kept else np.zeros((0,), np.float32)
    return out


# ----------------------------------------------------------------------------- minimal eps

def min_eps_search(net, first, ref, threshold, mode, attack='iftgsm', max_eps=16.0,
                   iterations=8, clean_dist=None, batch_size=32, progress=True, **attack_args):
    """Per pair, the smallest eps (0-255 scale) found at which ``attack`` hits.

    0 for pairs that hit clean; otherwise the attack is run at ``max_eps`` and, for the pairs
    it hits there, ``iterations`` bisection halvings of (0, max_eps] follow (pairs sharing the
    same interval are attacked together, in batches). The value is the smallest eps tried at
    which the attack hit (resolution max_eps / 2**iterations; success need not be monotone in
    eps for an iterative attack, so it is an upper bound of the true minimum for this attack).
    Pairs not hit at ``max_eps`` get inf. ``attack_args``: build_attack's steps, step, ...
    Returns float64 (N,)."""
    n = len(first)
    if clean_dist is None:
        clean_dist = distances(embed(net, first, batch_size), ref)
    result = np.full(n, np.inf)
    clean = is_hit(clean_dist, threshold, mode)
    result[clean] = 0.0
    todo = np.flatnonzero(~clean)
    total = len(todo) * (1 + iterations)
    with tqdm(total=total, unit='pair', desc='min-eps %s %s' % (mode, attack),
              disable=not progress, leave=False) as bar:
        def hits(idx, eps):
            att = build_attack(attack, net, eps, threshold, mode, **attack_args)
            return attack_pairs(att, net, first[idx], ref[idx], threshold, mode, batch_size,
                                bar=bar)['hit']

        if not len(todo):
            return result
        at_max = hits(todo, max_eps)
        active = todo[at_max]
        bar.total -= (len(todo) - len(active)) * iterations
        bar.refresh()
        result[active] = max_eps
        lo = np.zeros(n)
        hi = np.full(n, float(max_eps))
        for _ in range(iterations):
            intervals = OrderedDict()
            for i in active:
                intervals.setdefault((lo[i], hi[i]), []).append(i)
            for (low, high), members in intervals.items():
                members = np.asarray(members)
                mid = 0.5 * (low + high)
                ok = hits(members, mid)
                hi[members[ok]] = mid
                result[members[ok]] = mid
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

def evaluate_hit_rate(net, images, issame, threshold, attacks=DEFAULT_ATTACKS,
                      eps_list=DEFAULT_EPS, mode='impersonation', num_pairs=0, steps=10,
                      step=None, step_scale=2.5, mu=1.0, batch_size=32, seed=0,
                      model_name='model', sanity_checks=True, large_eps=64.0, check_eps=None,
                      min_eps=False, min_eps_attack='iftgsm', min_eps_max=16.0,
                      min_eps_steps=8, progress=True, aa_iterations=100, aa_queries=5000):
    """Hit rates of ``net`` (eval.model.Network, output='embedding', input 0-255 RGB NCHW).

    images: uint8 (2P, H, W, 3), pairs interleaved (as eval.verification.load_target gives);
    issame: bool (P,); threshold: squared Euclidean distance; mode: 'impersonation',
    'dodging' or 'both'. Returns a results dict in eval.report's layout (metric 'hit_rate';
    one curve per scenario and attack, model = '<model_name> <scenario>', mode 'white-box',
    clean = clean hit rate, params with the attack settings and mean distances per eps), plus
    'scenarios' (pairs, clean figures), 'min_eps' (with ``min_eps``), 'checks', 'probes',
    'settings', and 'autoattack' (per-stage records, with the autoattack suite).
    ``aa_iterations`` / ``aa_queries``: apgd's iterations and square's queries."""
    from eval import report, sanity
    images = np.asarray(images)
    issame = np.asarray(issame, dtype=bool)
    if images.ndim != 4 or len(images) != 2 * len(issame):
        raise ValueError('expected 2 images per pair (%d pairs), got images of shape %s'
                         % (len(issame), images.shape))
    scenarios = list(SCENARIOS) if mode == 'both' else [mode]
    eps_list = [float(e) for e in eps_list]
    attack_args = dict(steps=steps, step=step, step_scale=step_scale, mu=mu, seed=seed,
                       aa_iterations=aa_iterations, aa_queries=aa_queries)
    started = time.time()
    results = {'metric': 'hit_rate', 'eps': eps_list, 'curves': [], 'threshold': float(threshold),
               'scenarios': OrderedDict(), 'probes': []}
    checks = []
    prepared = OrderedDict()
    for scenario in scenarios:
        pairs = select_pairs(issame, scenario, num_pairs)
        if not len(pairs):
            raise ValueError('no %s pairs (%s-identity) among the %d pairs'
                             % (scenario, 'different' if scenario == 'impersonation' else 'same',
                                len(issame)))
        first = images[2 * pairs]
        ref = embed(net, images[2 * pairs + 1], batch_size)
        clean_dist = distances(embed(net, first, batch_size), ref)
        clean_hit = is_hit(clean_dist, threshold, scenario)
        prepared[scenario] = (pairs, first, ref, clean_dist, clean_hit)
        results['scenarios'][scenario] = {
            'num_pairs': int(len(pairs)), 'pair_indices': pairs.tolist(),
            'clean_hit_rate': float(clean_hit.mean()),
            'clean_mean_distance': float(clean_dist.mean())}
        log.info('%s: %d pairs, clean hit rate %.4f, mean distance %.4f (threshold %.4f)',
                 scenario, len(pairs), clean_hit.mean(), clean_dist.mean(), threshold)

    jobs = len(scenarios) * len(attacks) * len(eps_list)
    with tqdm(total=jobs, unit='run', desc='hit rate', disable=not progress) as outer:
        for scenario, (pairs, first, ref, clean_dist, clean_hit) in prepared.items():
            label = '%s %s' % (model_name, scenario)
            per_attack, suite_runs = OrderedDict(), {}
            for name in attacks:
                values, mean_dist, hits = [], [], []
                for eps in eps_list:
                    att = build_attack(name, net, eps, threshold, scenario, **attack_args)
                    out = attack_pairs(att, net, first, ref, threshold, scenario, batch_size,
                                       progress, '%s %s eps=%g' % (scenario, name, eps))
                    if name == 'autoattack':
                        suite_runs.setdefault(name, []).append(att)
                        results.setdefault('autoattack', []).append(
                            _stage_entry(label, name, eps, att))
                    hit = clean_hit | out['hit']
                    hits.append(hit)
                    values.append(float(hit.mean()))
                    mean_dist.append(float(out['dist'].mean()))
                    outer.update(1)
                per_attack[name] = hits
                params = build_attack(name, net, 1.0, threshold, scenario,
                                      **attack_args).params()
                params.pop('eps', None)
                params['implementation'] = params.pop('attack')  # eval.attacks class name
                params.update(scenario=scenario, num_pairs=int(len(pairs)),
                              mean_distance=mean_dist,
                              clean_mean_distance=float(clean_dist.mean()))
                if params.get('step') is not None and step is None:
                    params['step'] = ('%g * eps / steps' % (step_scale if name == 'iftgsm'
                                                            else 1.0))
                results['curves'].append(report.make_curve(label, name, values,
                                                           clean_hit.mean(), 'white-box',
                                                           params))
                log.info('%s %s: hit rate %s; mean distance %s', scenario, name,
                         ' '.join('%.4f' % v for v in values),
                         ' '.join('%.4f' % d for d in mean_dist))
            if sanity_checks and ('square' in per_attack or suite_runs):
                checks.append(_masking_check(label, eps_list, per_attack, suite_runs,
                                             clean_hit))
            if len(per_attack) > 1:
                worst = [np.logical_or.reduce([h[i] for h in per_attack.values()])
                         for i in range(len(eps_list))]
                results['curves'].append(report.make_curve(
                    label, 'worst-case', [w.mean() for w in worst], clean_hit.mean(),
                    'white-box', {'scenario': scenario, 'of': list(per_attack)}))

    if min_eps:
        results['min_eps'] = OrderedDict()
        for scenario, (pairs, first, ref, clean_dist, _) in prepared.items():
            values = min_eps_search(net, first, ref, threshold, scenario, min_eps_attack,
                                    min_eps_max, min_eps_steps, clean_dist, batch_size,
                                    progress, **attack_args)
            summary = summarize_min_eps(values, min_eps_max, min_eps_steps, grid=eps_list)
            summary['attack'] = min_eps_attack
            results['min_eps'][scenario] = summary
            log.info('%s: minimal eps median %s (found for %.1f%% of pairs within %g)',
                     scenario, summary['median'], 100 * summary['found_fraction'], min_eps_max)

    if sanity_checks:
        checks += sanity.run_table_checks(results)
        for scenario, data in prepared.items():
            checks += _probe_checks(net, model_name, scenario, data, threshold, eps_list,
                                    attacks, results, attack_args, large_eps, check_eps,
                                    batch_size, progress)
    results['checks'] = sanity.as_dicts(checks)
    results['settings'] = dict(
        attacks=list(attacks), mode=mode, num_pairs=num_pairs, steps=steps, step=step,
        step_scale=step_scale, mu=mu, batch_size=batch_size, seed=seed,
        pixel_range=list(PIXEL_RANGE), threshold=float(threshold), large_eps=large_eps,
        check_eps=check_eps, min_eps=bool(min_eps), min_eps_attack=min_eps_attack,
        min_eps_max=min_eps_max, min_eps_steps=min_eps_steps,
        distance='squared Euclidean of L2-normalised single-image embeddings (no flip)',
        loss='cos (1 - cosine similarity)')
    results['seconds'] = round(time.time() - started, 1)
    return results


def _stage_entry(label, name, eps, suite):
    """AutoAttack's per-stage record of one eps (all batches), in eval.report's layout."""
    from eval.autoattack import merge_records
    record = merge_records(suite.history)
    params = suite.params()
    return {'model': label, 'attack': name, 'eps': eps, 'num_images': record['num_images'],
            'clean_correct': record['num_images'] - record['clean_success'],
            'stages': record['stages'], 'robust': record['stages'][-1]['robust'],
            'seconds': round(sum(st['seconds'] for st in record['stages']), 1),
            'standard_settings': params['standard_settings'],
            'settings': {k: params[k] for k in ('version', 'iterations', 'queries')}}


def _masking_check(label, eps_list, per_attack, suite_runs, clean_hit):
    """Gradient-masking tell: pairs Square hit (alone or as AutoAttack's last stage) that no
    white-box attack of the table hit."""
    from eval import sanity
    extra = []
    for i in range(len(eps_list)):
        white, square = clean_hit.copy(), np.zeros_like(clean_hit)
        for name, hits in per_attack.items():
            if name == 'square':
                square |= hits[i] & ~clean_hit
            elif name in suite_runs:
                suite = suite_runs[name][i]
                broken_by = np.concatenate([r['broken_by'] for r in suite.history])
                last = [s.name for s in suite.stages].index('square')
                square |= broken_by == last
                white |= (broken_by >= 0) & (broken_by < last)
            else:
                white |= hits[i]
        extra.append(int((square & ~white).sum()))
    return sanity.check_gradient_masking(extra, len(clean_hit), eps_list, label)


def _probe_checks(net, model_name, scenario, data, threshold, eps_list, attacks, results,
                  attack_args, large_eps, check_eps, batch_size, progress):
    """Gradient check, iftgsm at a huge eps, iftgsm with twice the steps (one scenario)."""
    from eval import sanity
    pairs, first, ref, _, clean_hit = data
    what = '%s %s' % (model_name, scenario)
    checks = []
    k = min(16, len(first))
    name, passed, detail = sanity.check_gradients(net, to_nchw(first[:k]), ref[:k],
                                                  threshold=threshold)
    checks.append(sanity.Check('%s [%s]' % (name, what), passed, detail))

    def iftgsm_rate(eps, **override):
        args = dict(attack_args, **override)
        att = build_attack('iftgsm', net, eps, threshold, scenario, **args)
        out = attack_pairs(att, net, first, ref, threshold, scenario, batch_size, progress,
                           'sanity %s iftgsm eps=%g steps=%d' % (scenario, eps, args['steps']))
        value = float((clean_hit | out['hit']).mean())
        results['probes'].append({'scenario': scenario, 'attack': 'iftgsm', 'eps': eps,
                                  'steps': args['steps'], 'value': value})
        return value

    if large_eps:
        checks.append(sanity.check_large_eps('hit_rate', iftgsm_rate(large_eps), large_eps,
                                             '%s, iftgsm' % what))
    eps = check_eps if check_eps is not None else sorted(eps_list)[len(eps_list) // 2]
    base = None
    if 'iftgsm' in attacks and eps in eps_list:
        curve = [c for c in results['curves']
                 if c['model'] == what and c['attack'] == 'iftgsm'][0]
        base = curve['values'][eps_list.index(eps)]
    if base is None:
        base = iftgsm_rate(eps)
    steps = attack_args['steps']
    more = iftgsm_rate(eps, steps=2 * steps)
    checks.append(sanity.check_stronger_changes_little(
        'hit_rate', base, more, '2x steps [%s, iftgsm eps=%g, %d -> %d steps]'
        % (what, eps, steps, 2 * steps)))
    return checks


# ----------------------------------------------------------------------------- CLI

def parse_args(argv=None):
    from eval.verification import add_model_args
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_args(parser)
    for action in parser._actions:  # pylint: disable=protected-access
        if action.dest == 'model':
            action.help = 'checkpoint "prefix,epoch" (embedding input 0-255 RGB NCHW)'
        elif action.dest == 'batch_size':
            action.help = 'images per forward pass and per attack batch (default 32)'
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
    parser.add_argument('--mode', default='impersonation',
                        choices=('impersonation', 'dodging', 'both'))
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
    parser.add_argument('--mu', type=float, default=1.0, help='miftgsm momentum decay')
    parser.add_argument('--num-pairs', type=int, default=0,
                        help='attack the first N eligible pairs of each scenario (0 = all)')
    parser.add_argument('--seed', type=int, default=0, help='random seed')
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
    add_autoattack_args(parser, targets=False)
    args = parser.parse_args(argv)
    if (args.steps < 1 or args.batch_size < 1 or args.num_pairs < 0 or args.min_eps_steps < 0
            or args.min_eps_max <= 0 or args.large_eps < 0):
        parser.error('--steps and --batch-size must be >= 1, --num-pairs and --min-eps-steps '
                     '>= 0, --min-eps-max > 0, --large-eps >= 0')
    if args.threshold is not None:
        from eval.cal_threshold import check_threshold  # the same rule as a threshold JSON's
        try:
            check_threshold(args.threshold, '--threshold')
        except ValueError as err:
            parser.error(str(err))
    return parser, args


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


def main(argv=None):
    parser, args = parse_args(argv)
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s', stream=sys.stderr)
    import mxnet as mx
    from eval import report, sanity
    from eval.model import Network
    from eval.verification import check_input_size, image_size_rule, load_targets, parse_ctx
    from src.checkpoint import parse_model_spec
    try:
        prefix, epoch = parse_model_spec(args.model)
        images, issame = load_targets(args.data_dir, [args.target],
                                      *image_size_rule(args))[args.target]
        ctx = parse_ctx(args.ctx, args.gpu)
        net = Network.load(args.model, output='embedding', ctx=ctx)
        check_input_size(net, {args.target: (images, issame)})
        np.random.seed(args.seed)
        mx.random.seed(args.seed)
        threshold, threshold_info = resolve_threshold(args, net, images, issame)
    except (FileNotFoundError, ValueError) as err:
        parser.exit(2, 'error: %s\n' % err)
    if threshold <= 0:
        _loud('threshold %g: no pair can match (too few different pairs to reach FAR=%g?)'
              % (threshold, args.far))
    name = '%s,%d' % (os.path.basename(prefix), epoch)
    results = evaluate_hit_rate(
        net, images, issame, threshold, args.attacks, args.eps, args.mode, args.num_pairs,
        args.steps, args.step, args.step_scale, args.mu, args.batch_size, args.seed, name,
        not args.no_sanity, args.large_eps, args.check_eps, args.min_eps, args.min_eps_attack,
        args.min_eps_max, args.min_eps_steps, not args.no_progress, args.aa_iterations,
        args.aa_queries)
    results['settings'].update(model=args.model, data_dir=args.data_dir, target=args.target,
                               image_size=list(images.shape[1:3]), threshold_info=threshold_info)
    all_passed = not results['checks'] or sanity.report_checks(
        [(c['name'], c['passed'], c['detail']) for c in results['checks']])
    title = 'Hit rate of %s on %s (threshold %.4f, %s)' % (
        name, args.target, threshold, ', '.join('%d %s pairs' % (s['num_pairs'], k)
                                                 for k, s in results['scenarios'].items()))
    report.write_report(results, args.out_dir, title=title, plot_name='hit_rate.png')
    for scenario, summary in results.get('min_eps', {}).items():
        print('minimal eps [%s, %s]: median %s, quartiles %s / %s, found for %.1f%% within %g'
              % (scenario, summary['attack'], summary['median'], summary['quantiles']['25'],
                 summary['quantiles']['75'], 100 * summary['found_fraction'],
                 summary['max_eps']))
    if args.out_dir and results.get('min_eps'):
        plot_min_eps(results['min_eps'], os.path.join(args.out_dir, 'min_eps.png'),
                     'minimal eps of %s on %s' % (name, args.target))
    if args.strict and not all_passed:
        sys.exit(3)
    return results


if __name__ == '__main__':
    main()
