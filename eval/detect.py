"""Detection of adversarial inputs from a classifier's embedding (TLA's detection experiment).

Idea (Mao et al., "Metric Learning for Adversarial Robustness", NeurIPS 2019): an
adversarial image is classified as some wrong class, but its embedding stays far from the
clean embeddings of that class. A detector is fitted on CLEAN TRAINING embeddings with their
true labels; a test input is scored against the class the model PREDICTS for it (higher score
= more likely adversarial). The paper reports a GMM detector (MNIST AUC 94.94) without code;
these are our detectors:

* gaussian (default)  class means and one shared (tied) covariance, score = squared Mahalanobis
                      distance to the predicted class's mean (Lee et al. 2018's detector). The
                      covariance is Ledoit-Wolf shrunk, so it is well conditioned even with fewer
                      fit images than embedding dimensions (1024-d, a few thousand images).
                      Default: closed form, no iterations or seeds, one covariance estimated from
                      all fit images, hence the most stable with few images per class.
* gmm                 a GaussianMixture per class (``--components`` modes, diagonal covariances
                      by default: full ones are singular in 1024-d with a few hundred images per
                      class), score = negative log-likelihood under the predicted class's mixture.
                      The covariance floor (reg_covar) is relative to the fit embeddings' mean
                      variance, so it does not depend on the embedding's scale.
* knn                 distance to the ``--k``-th nearest clean fit embedding of the predicted
                      class (``--knn-reduce mean``: mean distance to the k nearest; Sun et al.
                      2022 use the k-th on normalised features).

Embeddings are L2-normalised before fitting and scoring by default (``--no-normalise`` keeps the
raw ones): TLA's triplet loss (``triplet_loss_type: cos`` in its configs) and MTER's margin
both act on normalised embeddings (cosine geometry), so the norm is something neither trains;
Euclidean distance on unit vectors is a function of the cosine.

Protocol of the command line: the detector is fitted on ``--num-fit`` training images (a seeded
random subset; 0 = all); the first ``--num-samples`` test images are classified and the correctly
classified ones are attacked (eval.attacks, white-box on the logits). Negatives: those clean
images (predicted class = true class); positives: their SUCCESSFUL adversarials (predicted class
!= true class), since an attack that failed left an input the classifier still gets right and
is not a threat to detect (``--all-adversarials`` adds the failed ones). Reported per attack,
eps and method: counts, the attack's success rate, ROC AUC and TPR at ``--fpr`` (5%) FPR (the
fraction of adversarials flagged by the threshold that flags at most 5% of the clean images).
Default budget: eps 0.1, 40 steps on MNIST-format data (TLA's own MNIST evaluation uses eps 0.3,
40 steps of 0.01: ``--eps 0.3`` to compare with the paper), eps 8 (of 255), 20 steps on CIFAR-10.

Writes the table to stdout and, with ``--out-dir``, results.json, results.md and roc.png.
Example::

    python -m eval.detect --model models/mnist-tla/model,20 --dataset mnist \\
        --attacks pgd,cw --methods gaussian,gmm,knn --out-dir results/mnist-tla-detect
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import json
import logging
import math
import os
import sys
import textwrap
import time

import numpy as np

from eval import autoattack, cli
from eval.attacks import ATTACKS, make_attack, run_attack
from eval.cli import choice_list, float_list

METHODS = ('gaussian', 'gmm', 'knn')
DEFAULT_METHOD = 'gaussian'
GMM_COVARIANCES = ('diag', 'full', 'tied', 'spherical')
KNN_REDUCE = ('kth', 'mean')
GMM_REG_RELATIVE = 1e-3  # reg_covar = this x mean per-dimension variance of the fit embeddings
AA_NAMES = tuple(autoattack.SUITES) + autoattack.MEMBERS
ATTACK_NAMES = tuple(ATTACKS) + tuple(n for n in AA_NAMES if n not in ATTACKS)
AA_DEFAULTS = {'iterations': 100, 'queries': 5000, 'targets': 9}
DEFAULT_EPS = {'mnist': 0.1, 'cifar10': 8.0}  # per data.datasets.kind, in its pixel range
DEFAULT_STEPS = {'mnist': 40, 'cifar10': 20}


class EmbeddingDetector:
    """Scores embeddings against the clean embeddings of a given class (see module docstring).

    ``fit(emb, labels)`` on clean training embeddings (N, D) and their true labels;
    ``score(emb, predicted)`` -> float64 (N,), higher = more likely adversarial."""

    def __init__(self, method=DEFAULT_METHOD, normalise=True, shrinkage=True, components=3,
                 gmm_covariance='diag', k=10, knn_reduce='kth', seed=0):
        if method not in METHODS:
            raise ValueError('unknown detection method %r: expected one of %s'
                             % (method, ', '.join(METHODS)))
        if gmm_covariance not in GMM_COVARIANCES:
            raise ValueError('gmm_covariance must be one of %s, got %r'
                             % (', '.join(GMM_COVARIANCES), gmm_covariance))
        if knn_reduce not in KNN_REDUCE:
            raise ValueError('knn_reduce must be one of %s, got %r'
                             % (', '.join(KNN_REDUCE), knn_reduce))
        if int(components) != components or components < 1 or int(k) != k or k < 1:
            raise ValueError('components and k must be integers >= 1, got %r, %r'
                             % (components, k))
        self.method, self.normalise, self.shrinkage = method, bool(normalise), bool(shrinkage)
        self.components, self.gmm_covariance = int(components), gmm_covariance
        self.k, self.knn_reduce, self.seed = int(k), knn_reduce, seed
        self.classes_ = None

    def params(self):
        """The settings that apply to this method (JSON-able)."""
        out = {'method': self.method, 'normalise': self.normalise}
        out.update({'gaussian': {'shrinkage': 'ledoit-wolf' if self.shrinkage else 'none'},
                    'gmm': {'components': self.components, 'covariance': self.gmm_covariance,
                            'reg_covar_relative': GMM_REG_RELATIVE, 'seed': self.seed},
                    'knn': {'k': self.k, 'reduce': self.knn_reduce}}[self.method])
        return out

    def _prepare(self, emb, what):
        emb = np.asarray(emb, dtype=np.float64)
        if emb.ndim != 2 or not len(emb):
            raise ValueError('%s: expected a non-empty (N, D) array, got shape %s'
                             % (what, emb.shape))
        bad = np.flatnonzero(~np.isfinite(emb).all(axis=1))
        if bad.size:
            raise ValueError('%s: %d rows hold NaN or infinity (first: row %d)'
                             % (what, bad.size, bad[0]))
        if self.normalise:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        return emb

    def fit(self, emb, labels):
        emb = self._prepare(emb, 'fit embeddings')
        labels = np.asarray(labels)
        if labels.shape != (len(emb),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError('fit labels: expected %d integer labels, got %s of shape %s'
                             % (len(emb), labels.dtype, labels.shape))
        self.classes_, counts = np.unique(labels, return_counts=True)
        need = {'gaussian': 1, 'gmm': self.components, 'knn': self.k}[self.method]
        small = [(c, n) for c, n in zip(self.classes_, counts) if n < need]
        if small:
            raise ValueError('class %d has %d fit embeddings, %s needs at least %d per class '
                             '(fit on more images or lower %s)'
                             % (small[0][0], small[0][1], self.method, need,
                                '--k' if self.method == 'knn' else '--components'))
        self.dim_ = emb.shape[1]
        by_class = [emb[labels == c] for c in self.classes_]
        if self.method == 'gaussian':
            from sklearn.covariance import EmpiricalCovariance, LedoitWolf
            self.means_ = np.stack([e.mean(axis=0) for e in by_class])
            centred = emb - self.means_[np.searchsorted(self.classes_, labels)]
            estimator = LedoitWolf if self.shrinkage else EmpiricalCovariance
            self.covariance_ = estimator(assume_centered=True).fit(centred)
        elif self.method == 'gmm':
            from sklearn.mixture import GaussianMixture
            reg = max(GMM_REG_RELATIVE * float(emb.var(axis=0).mean()), 1e-12)
            self.models_ = [GaussianMixture(self.components, covariance_type=self.gmm_covariance,
                                            reg_covar=reg, random_state=self.seed).fit(e)
                            for e in by_class]
        else:
            from sklearn.neighbors import NearestNeighbors
            self.models_ = [NearestNeighbors(n_neighbors=self.k).fit(e) for e in by_class]
        return self

    def score(self, emb, predicted):
        if self.classes_ is None:
            raise RuntimeError('fit the detector before scoring')
        emb = self._prepare(emb, 'embeddings to score')
        predicted = np.asarray(predicted)
        if emb.shape[1] != self.dim_:
            raise ValueError('embeddings to score have %d dimensions, the fit ones %d'
                             % (emb.shape[1], self.dim_))
        if predicted.shape != (len(emb),):
            raise ValueError('expected %d predicted classes, got shape %s'
                             % (len(emb), predicted.shape))
        unknown = np.setdiff1d(predicted, self.classes_)
        if unknown.size:
            raise ValueError('class %s is predicted but has no fit embeddings (fit classes: %s)'
                             % (unknown[0], ', '.join(map(str, self.classes_))))
        index = np.searchsorted(self.classes_, predicted)
        if self.method == 'gaussian':
            return self.covariance_.mahalanobis(emb - self.means_[index])
        scores = np.empty(len(emb))
        for i in np.unique(index):
            rows = index == i
            if self.method == 'gmm':
                scores[rows] = -self.models_[i].score_samples(emb[rows])
            else:
                dist, _ = self.models_[i].kneighbors(emb[rows])
                scores[rows] = dist[:, -1] if self.knn_reduce == 'kth' else dist.mean(axis=1)
        return scores


def detection_metrics(clean_scores, adversarial_scores, fpr=0.05):
    """ROC of clean (negatives) vs adversarial (positives) scores: {'auc', 'tpr_at_fpr' (the
    highest TPR whose FPR <= ``fpr``), 'threshold' (flag scores >= it), 'roc': {'fpr', 'tpr'}};
    the figures are None when either side is empty (no ROC exists)."""
    from sklearn.metrics import roc_auc_score, roc_curve
    clean = np.asarray(clean_scores, np.float64)
    adv = np.asarray(adversarial_scores, np.float64)
    if not len(clean) or not len(adv):
        return {'auc': None, 'tpr_at_fpr': None, 'threshold': None, 'roc': None}
    labels = np.r_[np.zeros(len(clean)), np.ones(len(adv))]
    scores = np.r_[clean, adv]
    f, t, thresholds = roc_curve(labels, scores, drop_intermediate=False)
    at = np.searchsorted(f, fpr, side='right') - 1  # f is non-decreasing, f[0] = 0
    plot_f, plot_t, _ = roc_curve(labels, scores)
    return {'auc': float(roc_auc_score(labels, scores)), 'tpr_at_fpr': float(t[at]),
            'threshold': float(thresholds[at]) if np.isfinite(thresholds[at]) else None,
            'roc': {'fpr': plot_f.round(6).tolist(), 'tpr': plot_t.round(6).tolist()}}


def build_attack(name, model, eps, pixel_range=(0.0, 1.0), steps=40, restarts=1, seed=0,
                 aa_settings=None):
    """``name`` from ATTACK_NAMES: eval.attacks' (steps of 2.5*eps/steps; mifgsm eps/steps),
    or AutoAttack's suites and members (``aa_settings``: iterations, queries, targets)."""
    if name in ATTACKS:
        return make_attack(name, model, eps, steps=steps, restarts=restarts,
                           pixel_range=pixel_range, seed=seed)
    aa = dict(AA_DEFAULTS, **(aa_settings or {}))
    if name in autoattack.SUITES:
        return autoattack.AutoAttack(model, eps, autoattack.SUITES[name], pixel_range=pixel_range,
                                     seed=seed, **aa)
    if name in autoattack.MEMBERS:
        return autoattack.make_member(name, model, eps, pixel_range=pixel_range, seed=seed, **aa)
    raise ValueError('unknown attack %r: expected one of %s' % (name, ', '.join(ATTACK_NAMES)))


def _as_list(value):
    return [value] if isinstance(value, str) or np.ndim(value) == 0 else list(value)


def detection_report(model_logits, model_embedding, fit_x, fit_y, x, y, attacks=('pgd',),
                     eps=0.1, methods=(DEFAULT_METHOD,), pixel_range=(0.0, 1.0), steps=40,
                     restarts=1, all_adversarials=False, fpr=0.05, batch_size=256, seed=0,
                     progress=True, aa_settings=None, **detector_settings):
    """Detection AUCs of one checkpoint, with no command line.

    model_logits / model_embedding: eval.model.Network of the same checkpoint with
    output='logits' / 'embedding'; fit_x, fit_y: clean training images and true labels the
    detectors are fitted on; x, y: test images (the correctly classified ones are attacked);
    attacks, eps, methods: names / budgets (in ``pixel_range`` units) / METHODS, a name or a
    sequence each; detector_settings: EmbeddingDetector's (normalise, shrinkage, components,
    gmm_covariance, k, knn_reduce). Returns {'rows': one per attack x eps x method with counts,
    'auc', 'tpr_at_fpr', 'threshold', 'roc'; 'attacks': one per attack x eps with its params,
    success rate and seconds; 'num_images', 'clean_correct', 'clean_accuracy', 'num_fit',
    'settings', 'seconds'}."""
    attacks, eps_list, methods = _as_list(attacks), [float(e) for e in _as_list(eps)], \
        _as_list(methods)
    if not all(math.isfinite(e) and e > 0 for e in eps_list):
        raise ValueError('eps must be finite and > 0, got %s' % eps_list)
    if not 0 < fpr < 1:
        raise ValueError('fpr must lie in (0, 1), got %r' % fpr)
    for name in attacks:
        if name not in ATTACK_NAMES:
            raise ValueError('unknown attack %r: expected one of %s'
                             % (name, ', '.join(ATTACK_NAMES)))
    detectors = {m: EmbeddingDetector(m, seed=seed, **detector_settings) for m in methods}
    x, fit_x = np.asarray(x, np.float32), np.asarray(fit_x, np.float32)
    y, fit_y = np.asarray(y).astype(np.int64), np.asarray(fit_y).astype(np.int64)
    started = time.time()
    fit_emb = model_embedding.predict(fit_x, batch_size)
    for method, detector in detectors.items():
        t0 = time.time()
        detector.fit(fit_emb, fit_y)
        logging.info('fitted %s on %d clean training embeddings (%d-d) in %.1f s',
                     method, len(fit_emb), fit_emb.shape[1], time.time() - t0)
    logits = model_logits.predict(x, batch_size)
    if logits.ndim != 2:
        raise ValueError('the logits model gives outputs of shape %s, expected (N, classes)'
                         % (logits.shape,))
    keep = np.flatnonzero(logits.argmax(axis=1) == y)
    xc, yc = x[keep], y[keep]
    logging.info('%d/%d test images classified correctly: the clean negatives', len(keep), len(x))
    clean_emb = model_embedding.predict(xc, batch_size) if len(keep) else None
    clean_scores = {m: d.score(clean_emb, yc) if len(keep) else np.zeros(0)
                    for m, d in detectors.items()}
    rows, attack_records = [], []
    for name in attacks:
        for e in eps_list:
            attack = build_attack(name, model_logits, e, pixel_range, steps, restarts, seed,
                                  aa_settings)
            t0 = time.time()
            x_adv, success = (run_attack(attack, xc, yc, batch_size, progress,
                                         '%s eps=%g' % (name, e)) if len(keep)
                              else (xc, np.zeros(0, bool)))
            seconds = time.time() - t0
            chosen = np.ones(len(xc), bool) if all_adversarials else success
            adv_pred = (model_logits.predict(x_adv[chosen], batch_size).argmax(axis=1)
                        if chosen.any() else np.zeros(0, np.int64))
            adv_emb = model_embedding.predict(x_adv[chosen], batch_size) if chosen.any() else None
            rate = float(success.mean()) if len(xc) else None
            attack_records.append({'attack': name, 'eps': e, 'attacked': int(len(xc)),
                                   'successful': int(success.sum()), 'success_rate': rate,
                                   'seconds': round(seconds, 2), 'params': attack.params()})
            logging.info('%s eps=%g: %d/%d successful (%.1f s)', name, e, success.sum(),
                         len(xc), seconds)
            for method, detector in detectors.items():
                adv_scores = detector.score(adv_emb, adv_pred) if chosen.any() else np.zeros(0)
                metrics = detection_metrics(clean_scores[method], adv_scores, fpr)
                if metrics['auc'] is None:
                    logging.warning('%s eps=%g %s: no ROC (%d clean, %d adversarial images)',
                                    name, e, method, len(xc), len(adv_scores))
                rows.append(dict({'attack': name, 'eps': e, 'method': method,
                                  'num_clean': int(len(xc)), 'num_adversarial': int(chosen.sum()),
                                  'attacked': int(len(xc)), 'successful': int(success.sum()),
                                  'success_rate': rate}, **metrics))
    return {'rows': rows, 'attacks': attack_records, 'num_images': int(len(x)),
            'clean_correct': int(len(keep)),
            'clean_accuracy': float(len(keep) / len(x)) if len(x) else None,
            'num_fit': int(len(fit_x)),
            'settings': {'attacks': attacks, 'eps': eps_list, 'methods': methods,
                         'detectors': {m: d.params() for m, d in detectors.items()},
                         'positives': 'all adversarials' if all_adversarials
                         else 'successful adversarials', 'fpr': fpr,
                         'pixel_range': [float(p) for p in pixel_range], 'steps': steps,
                         'restarts': restarts, 'seed': seed, 'batch_size': batch_size,
                         'aa_settings': dict(AA_DEFAULTS, **(aa_settings or {}))
                         if set(attacks) & set(AA_NAMES) - set(ATTACKS) else None},
            'seconds': round(time.time() - started, 1)}


def _fmt(value, digits=4):
    return 'n/a' if value is None else '%.*f' % (digits, value)


def format_table(results):
    """Markdown table, one row per attack x eps x method."""
    fpr = results['settings']['fpr']
    header = ['attack', 'eps', 'method', 'clean', 'adversarial', 'success rate', 'AUC',
              'TPR@%g%%FPR' % (100 * fpr)]
    rows = [[r['attack'], '%g' % r['eps'], r['method'], str(r['num_clean']),
             str(r['num_adversarial']),
             'n/a' if r['success_rate'] is None else '%.1f%%' % (100 * r['success_rate']),
             _fmt(r['auc']), _fmt(r['tpr_at_fpr'])] for r in results['rows']]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]

    def line(cells):
        return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'
    return '\n'.join([line(header), '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
                     + [line(r) for r in rows])


def plot_roc(results, path, title=None):
    """PNG: one ROC curve per attack x eps x method, AUC in the legend, chance diagonal."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.5, 5))
    ax.plot([0, 1], [0, 1], color='grey', linewidth=0.8, linestyle=':', label='chance')
    for r in results['rows']:
        if r['roc'] is not None:
            ax.plot(r['roc']['fpr'], r['roc']['tpr'], linewidth=1.5,
                    label='%s eps=%g, %s (AUC %.4f)' % (r['attack'], r['eps'], r['method'],
                                                        r['auc']))
    ax.set_xlabel('false positive rate (clean flagged)')
    ax.set_ylabel('true positive rate (adversarials flagged)')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title('\n'.join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, loc='lower right')
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


def write_outputs(results, out_dir, title):
    """results.json, results.md and roc.png in ``out_dir``; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, n) for k, n in
             (('json', 'results.json'), ('md', 'results.md'), ('png', 'roc.png'))}
    with open(paths['json'], 'w') as f:
        json.dump(results, f, indent=1)
        f.write('\n')
    settings = json.dumps(results['settings'], indent=1)
    with open(paths['md'], 'w') as f:
        f.write('# %s\n\nclean = correctly classified test images (negatives); adversarial = '
                'their %s (positives); higher score = flagged.\n\n%s\n\n## Settings\n\n```\n%s'
                '\n```\n' % (title, results['settings']['positives'], format_table(results),
                             settings))
    plot_roc(results, paths['png'], title)
    return paths


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    from data.datasets import DATASETS
    parser.add_argument('--model', required=True,
                        help='checkpoint "prefix,epoch" with logits (fc7_output) and an embedding')
    parser.add_argument('--dataset', default='auto', choices=DATASETS)
    parser.add_argument('--data-dir', default=None,
                        help='data folder (data.datasets.load_dataset; needed for cifar10)')
    parser.add_argument('--num-fit', type=int, default=5000,
                        help='clean training images the detectors are fitted on, a seeded random '
                             'subset (0 = all; default 5000)')
    parser.add_argument('--num-samples', type=int, default=1000,
                        help='use the first N test images (0 = all; default 1000)')
    parser.add_argument('--methods', type=choice_list(METHODS), default=[DEFAULT_METHOD],
                        help='comma-separated, from %s (default %s)'
                        % (','.join(METHODS), DEFAULT_METHOD))
    parser.add_argument('--attacks', type=choice_list(ATTACK_NAMES), default=['pgd'],
                        help='comma-separated, from %s (default pgd)' % ','.join(ATTACK_NAMES))
    parser.add_argument('--eps', type=float_list, default=None,
                        help='comma-separated L-inf budgets in the data\'s pixel range (default '
                             '0.1 for MNIST-format [0,1], 8 for cifar10 [0,255])')
    parser.add_argument('--steps', type=int, default=None,
                        help='iterations of bim/pgd/mifgsm/cw, step 2.5*eps/steps (mifgsm: '
                             'eps/steps) (default 40 MNIST-format, 20 cifar10)')
    parser.add_argument('--restarts', type=int, default=1, help='random restarts of pgd and cw')
    parser.add_argument('--all-adversarials', action='store_true',
                        help='positives: every adversarial, failed ones too (default: the '
                             'successful ones only)')
    parser.add_argument('--fpr', type=float, default=0.05,
                        help='false positive rate of the reported TPR (default 0.05)')
    det = parser.add_argument_group('detectors')
    det.add_argument('--no-normalise', action='store_true',
                     help='use raw embeddings (default: L2-normalised, the cosine geometry TLA '
                          'and MTER train)')
    det.add_argument('--no-shrinkage', action='store_true',
                     help='gaussian: empirical covariance (pseudo-inverse) instead of '
                          'Ledoit-Wolf')
    det.add_argument('--components', type=int, default=3,
                     help='gmm: mixture components per class (default 3)')
    det.add_argument('--gmm-covariance', default='diag', choices=GMM_COVARIANCES,
                     help='gmm: covariance type (default diag)')
    det.add_argument('--k', type=int, default=10, help='knn: neighbours (default 10)')
    det.add_argument('--knn-reduce', default='kth', choices=KNN_REDUCE,
                     help='knn: distance to the k-th neighbour or mean over the k (default kth)')
    cli.add_autoattack_args(parser)
    parser.add_argument('--batch-size', type=int, default=256)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the fit subset, random starts and mixtures')
    parser.add_argument('--gpu', type=int, default=-1, help='GPU id (-1: CPU)')
    parser.add_argument('--no-progress', action='store_true', help='no tqdm progress bars')
    parser.add_argument('--out-dir', default=None,
                        help='write results.json, results.md and roc.png here')
    args = parser.parse_args(argv)
    if args.eps is not None and not all(e > 0 for e in args.eps):
        parser.error('--eps: every budget must be > 0, got %s' % args.eps)
    if args.steps is not None and args.steps < 1:
        parser.error('--steps must be >= 1, got %d' % args.steps)
    if min(args.restarts, args.batch_size, args.components, args.k) < 1:
        parser.error('--restarts, --batch-size, --components and --k must be >= 1')
    if min(args.num_fit, args.num_samples) < 0:
        parser.error('--num-fit and --num-samples must be >= 0')
    if not 0 < args.fpr < 1:
        parser.error('--fpr must lie in (0, 1), got %g' % args.fpr)
    return args


def main(argv=None):
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    args = parse_args(argv)
    try:
        return run(args)
    except (FileNotFoundError, ValueError) as err:  # bad data, checkpoint or detector settings
        sys.stderr.write('error: %s\n' % err)
        return 2


def run(args):
    """detect.py's work on parsed flags: fit, attack, score, report."""
    import mxnet as mx
    from data.datasets import PIXEL_RANGE, kind, load_dataset
    from eval.model import Network
    started = time.time()
    ctx = mx.gpu(args.gpu) if args.gpu >= 0 else mx.cpu()
    data = load_dataset(args.dataset, args.data_dir)
    data_kind = kind(args.dataset)
    eps = args.eps or [DEFAULT_EPS[data_kind]]
    steps = args.steps or DEFAULT_STEPS[data_kind]
    n_train = len(data.train_x)
    fit_idx = np.arange(n_train)
    if 0 < args.num_fit < n_train:
        fit_idx = np.sort(np.random.default_rng(args.seed).choice(n_train, args.num_fit,
                                                                   replace=False))
    x, y = data.test_x, data.test_y
    if args.num_samples:
        x, y = x[:args.num_samples], y[:args.num_samples]
    logits = Network.load(args.model, output='logits', ctx=ctx)
    embedding = Network.load(args.model, output='embedding', ctx=ctx)
    results = detection_report(
        logits, embedding, data.train_x[fit_idx], data.train_y[fit_idx], x, y,
        attacks=args.attacks, eps=eps, methods=args.methods, pixel_range=PIXEL_RANGE[data_kind],
        steps=steps, restarts=args.restarts, all_adversarials=args.all_adversarials,
        fpr=args.fpr, batch_size=args.batch_size, seed=args.seed,
        progress=not args.no_progress,
        aa_settings={'iterations': args.aa_iterations, 'queries': args.aa_queries,
                     'targets': args.aa_targets},
        normalise=not args.no_normalise, shrinkage=not args.no_shrinkage,
        components=args.components, gmm_covariance=args.gmm_covariance, k=args.k,
        knn_reduce=args.knn_reduce)
    results['settings'].update(model=args.model, dataset=data.name, num_fit=args.num_fit,
                               num_samples=args.num_samples)
    name = cli.model_name(args.model)
    title = 'Adversarial detection from the embedding of %s on %s (%d/%d test images correct)' % (
        name, data.name, results['clean_correct'], results['num_images'])
    print(format_table(results))
    if args.out_dir:
        paths = write_outputs(results, args.out_dir, title)
        print('wrote %s' % ', '.join(paths.values()))
    logging.info('done in %.1f s', time.time() - started)
    return 0


if __name__ == '__main__':
    sys.exit(main())
