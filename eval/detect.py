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
classified ones are attacked (white-box on the logits; every attack is built by name through
eval.registry, which holds the step rules and AutoAttack's budget). Negatives: those clean
images (predicted class = true class); positives: their SUCCESSFUL adversarials (predicted class
!= true class), since an attack that failed left an input the classifier still gets right and
is not a threat to detect (``--all-adversarials`` adds the failed ones). Reported per attack,
eps and method: counts, the attack's success rate, ROC AUC and TPR at ``--fpr`` (5%) FPR (the
fraction of adversarials flagged by the threshold that flags at most 5% of the clean images).
Default budget: eps 0.1, 40 steps on MNIST-format data (TLA's own MNIST evaluation uses eps 0.3,
40 steps of 0.01: ``--eps 0.3`` to compare with the paper), eps 8 (of 255), 20 steps on CIFAR-10.

A checkpoint is checked on a few test images before anything long runs: it must take their
shape (a face network on MNIST-format data does not) and give finite outputs (NaN weights do not);
otherwise one line ``error: ...`` names it and the exit code is 2.

Writes the table to stdout and, with ``--out-dir``, results.json, results.md and roc.png.
From code: ``detection_report(logits_net, embedding_net, (fit_x, fit_y), (x, y),
DetectionSettings(attacks=('pgd',), eps=(0.1,), ...))``. Example::

    python -m eval.detect --model models/mnist-tla/model,20 --dataset mnist \\
        --attacks pgd,cw --methods gaussian,gmm,knn --out-dir results/mnist-tla-detect
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import collections
import dataclasses
import json
import logging
import math
import os
import sys
import textwrap
import time

import numpy as np

from eval import cli, registry
from eval.attacks import run_attack
from eval.cli import choice_list, float_list
from eval.protocol import l2_normalize
from eval.registry import AttackSettings, Budget
from src.args import NON_NEGATIVE_INT, POSITIVE_INT

METHODS = ('gaussian', 'gmm', 'knn')
DEFAULT_METHOD = 'gaussian'
GMM_COVARIANCES = ('diag', 'full', 'tied', 'spherical')
KNN_REDUCE = ('kth', 'mean')
GMM_REG_RELATIVE = 1e-3  # reg_covar = this x mean per-dimension variance of the fit embeddings
ATTACK_NAMES = registry.names('classifier')
DEFAULT_EPS = {'mnist': 0.1, 'cifar10': 8.0}  # per data.datasets.kind, in its pixel range
DEFAULT_STEPS = {'mnist': 40, 'cifar10': 20}


def _as_list(value):
    return [value] if isinstance(value, str) or np.ndim(value) == 0 else list(value)


@dataclasses.dataclass(frozen=True)
class DetectorSettings:
    """EmbeddingDetector's settings (those of other methods are kept and ignored): normalise
    (L2, all methods); gaussian: shrinkage (Ledoit-Wolf); gmm: components, gmm_covariance,
    seed; knn: k, knn_reduce."""
    normalise: bool = True
    shrinkage: bool = True
    components: int = 3
    gmm_covariance: str = 'diag'
    k: int = 10
    knn_reduce: str = 'kth'
    seed: int = 0

    def __post_init__(self):
        if self.gmm_covariance not in GMM_COVARIANCES:
            raise ValueError('gmm_covariance must be one of %s, got %r'
                             % (', '.join(GMM_COVARIANCES), self.gmm_covariance))
        if self.knn_reduce not in KNN_REDUCE:
            raise ValueError('knn_reduce must be one of %s, got %r'
                             % (', '.join(KNN_REDUCE), self.knn_reduce))
        if (int(self.components) != self.components or self.components < 1
                or int(self.k) != self.k or self.k < 1):
            raise ValueError('components and k must be integers >= 1, got %r, %r'
                             % (self.components, self.k))


@dataclasses.dataclass(frozen=True)
class DetectionSettings:
    """What detection_report runs: ``attacks`` (eval.registry's classifier names) at each
    ``eps`` (in ``attack.pixel_range`` units) with ``attack``'s settings (steps, restarts, seed,
    AutoAttack's budget; the step rules are the attacks' own), scored by the detectors
    ``methods`` built with ``detector``; positives: the successful adversarials, or all of
    them (``all_adversarials``); TPR reported at ``fpr``. A name or a number is taken for a
    one-element tuple."""
    attacks: tuple = ('pgd',)
    eps: tuple = (0.1,)
    methods: tuple = (DEFAULT_METHOD,)
    attack: AttackSettings = AttackSettings(steps=40)
    all_adversarials: bool = False
    fpr: float = 0.05
    batch_size: int = 256
    progress: bool = True
    detector: DetectorSettings = DetectorSettings()

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the fields once, here
        set_(self, 'attacks', tuple(_as_list(self.attacks)))
        set_(self, 'eps', tuple(float(e) for e in _as_list(self.eps)))
        set_(self, 'methods', tuple(_as_list(self.methods)))
        if not all(math.isfinite(e) and e > 0 for e in self.eps):
            raise ValueError('eps must be finite and > 0, got %s' % list(self.eps))
        if not 0 < self.fpr < 1:
            raise ValueError('fpr must lie in (0, 1), got %r' % self.fpr)
        for name in self.attacks:
            if name not in ATTACK_NAMES:
                raise ValueError('unknown attack %r: expected one of %s'
                                 % (name, ', '.join(ATTACK_NAMES)))
        for method in self.methods:
            if method not in METHODS:
                raise ValueError('unknown detection method %r: expected one of %s'
                                 % (method, ', '.join(METHODS)))

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)

    @property
    def uses_autoattack(self):
        """Whether an attack's budget is eval.registry.Budget (AutoAttack and its members)."""
        return any(name in registry.AUTOATTACK for name in self.attacks)


class EmbeddingDetector:
    """Scores embeddings against the clean embeddings of a given class (see module docstring).

    ``fit(emb, labels)`` on clean training embeddings (N, D) and their true labels;
    ``score(emb, predicted)`` -> float64 (N,), higher = more likely adversarial."""

    def __init__(self, method=DEFAULT_METHOD, settings=DetectorSettings(), **changes):
        """``changes``: DetectorSettings fields replacing those of ``settings`` (normalise=False,
        k=2, seed=1, ...)."""
        if method not in METHODS:
            raise ValueError('unknown detection method %r: expected one of %s'
                             % (method, ', '.join(METHODS)))
        s = dataclasses.replace(settings, **changes)
        self.method, self.settings = method, s
        self.normalise, self.shrinkage = bool(s.normalise), bool(s.shrinkage)
        self.components, self.gmm_covariance = int(s.components), s.gmm_covariance
        self.k, self.knn_reduce, self.seed = int(s.k), s.knn_reduce, s.seed
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
            emb = l2_normalize(emb)
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


Clean = collections.namedtuple('Clean', 'x y count scores')
Clean.__doc__ = """The negatives: the test images classified correctly (x, y), how many test
images there were (count), and each detector's scores of them ({method: (N,)})."""


def _embed(model, x, batch_size, what):
    """Embeddings of ``x``; a ValueError when any is NaN or infinite (a detector is never fitted
    on, or scores, such an embedding)."""
    emb = model.predict(x, batch_size)
    bad = np.flatnonzero(~np.isfinite(emb.reshape(len(emb), -1)).all(axis=1))
    if bad.size:
        raise ValueError('the embedding model gives NaN or infinity on %d of the %d %s (first: '
                         'image %d): its weights are broken (a diverged run?)'
                         % (bad.size, len(x), what, bad[0]))
    return emb


def _fit_detectors(model_embedding, fit_x, fit_y, settings):
    """One EmbeddingDetector per method, fitted on the clean fit images' embeddings."""
    detectors = {m: EmbeddingDetector(m, settings.detector) for m in settings.methods}
    fit_emb = _embed(model_embedding, fit_x, settings.batch_size, 'fit images')
    for method, detector in detectors.items():
        t0 = time.time()
        detector.fit(fit_emb, fit_y)
        logging.info('fitted %s on %d clean training embeddings (%d-d) in %.1f s',
                     method, len(fit_emb), fit_emb.shape[1], time.time() - t0)
    return detectors


def _clean_negatives(models, x, y, detectors, settings):
    """The correctly classified test images and their detector scores (a Clean)."""
    model_logits, model_embedding = models
    logits = model_logits.predict(x, settings.batch_size)
    if logits.ndim != 2:
        raise ValueError('the logits model gives outputs of shape %s, expected (N, classes)'
                         % (logits.shape,))
    keep = np.flatnonzero(logits.argmax(axis=1) == y)
    logging.info('%d/%d test images classified correctly: the clean negatives', len(keep), len(x))
    xc, yc = x[keep], y[keep]
    if not len(keep):
        return Clean(xc, yc, len(x), {m: np.zeros(0) for m in detectors})
    emb = _embed(model_embedding, xc, settings.batch_size, 'clean test images')
    return Clean(xc, yc, len(x), {m: d.score(emb, yc) for m, d in detectors.items()})


def _attack(model_logits, clean, name, eps, settings):
    """Runs the attack ``name`` (eval.registry) at ``eps`` on the negatives: (x_adv, success,
    its record for results['attacks'])."""
    attack = registry.build(name, model_logits, eps, settings.attack)
    t0 = time.time()
    if len(clean.x):
        x_adv, success = run_attack(attack, clean.x, clean.y, settings.batch_size,
                                    settings.progress, '%s eps=%g' % (name, eps))
    else:
        x_adv, success = clean.x, np.zeros(0, bool)
    seconds = time.time() - t0
    logging.info('%s eps=%g: %d/%d successful (%.1f s)', name, eps, success.sum(),
                 len(clean.x), seconds)
    rate = float(success.mean()) if len(clean.x) else None
    return x_adv, success, {'attack': name, 'eps': eps, 'attacked': int(len(clean.x)),
                            'successful': int(success.sum()), 'success_rate': rate,
                            'seconds': round(seconds, 2), 'params': attack.params()}


def _attack_rows(models, clean, detectors, name, eps, settings):
    """One attack at one eps: (a row per method, the attack's record)."""
    model_logits, model_embedding = models
    x_adv, success, record = _attack(model_logits, clean, name, eps, settings)
    chosen = np.ones(len(clean.x), bool) if settings.all_adversarials else success
    if chosen.any():
        adv_pred = model_logits.predict(x_adv[chosen], settings.batch_size).argmax(axis=1)
        adv_emb = _embed(model_embedding, x_adv[chosen], settings.batch_size, 'adversarials')
    rows = []
    for method, detector in detectors.items():
        adv_scores = detector.score(adv_emb, adv_pred) if chosen.any() else np.zeros(0)
        metrics = detection_metrics(clean.scores[method], adv_scores, settings.fpr)
        if metrics['auc'] is None:
            logging.warning('%s eps=%g %s: no ROC (%d clean, %d adversarial images)',
                            name, eps, method, len(clean.x), len(adv_scores))
        rows.append(dict({'attack': name, 'eps': eps, 'method': method,
                          'num_clean': int(len(clean.x)), 'num_adversarial': int(chosen.sum()),
                          'attacked': record['attacked'], 'successful': record['successful'],
                          'success_rate': record['success_rate']}, **metrics))
    return rows, record


def _settings_record(settings, detectors):
    """results['settings'] of detection_report (JSON-able)."""
    s = settings
    return {'attacks': list(s.attacks), 'eps': list(s.eps), 'methods': list(s.methods),
            'detectors': {m: d.params() for m, d in detectors.items()},
            'positives': 'all adversarials' if s.all_adversarials else 'successful adversarials',
            'fpr': s.fpr, 'pixel_range': [float(p) for p in s.attack.pixel_range],
            'steps': s.attack.steps, 'restarts': s.attack.restarts, 'seed': s.attack.seed,
            'batch_size': s.batch_size,
            'budget': s.attack.budget.as_dict() if s.uses_autoattack else None}


def detection_report(model_logits, model_embedding, fit, test, settings=DetectionSettings()):
    """Detection AUCs of one checkpoint, with no command line.

    model_logits / model_embedding: eval.model.Network of the same checkpoint with
    output='logits' / 'embedding'; fit: (images, true labels), clean training images the
    detectors are fitted on; test: (images, labels), the correctly classified ones are the
    negatives and are attacked; settings: a DetectionSettings. Returns {'rows': one per attack
    x eps x method with counts, 'auc', 'tpr_at_fpr', 'threshold', 'roc'; 'attacks': one per
    attack x eps with its params, success rate and seconds; 'num_images', 'clean_correct',
    'clean_accuracy', 'num_fit', 'settings' (with 'budget', AutoAttack's, when one of its names
    runs), 'seconds'}."""
    fit_x, fit_y = np.asarray(fit[0], np.float32), np.asarray(fit[1]).astype(np.int64)
    x, y = np.asarray(test[0], np.float32), np.asarray(test[1]).astype(np.int64)
    models = (model_logits, model_embedding)
    started = time.time()
    detectors = _fit_detectors(model_embedding, fit_x, fit_y, settings)
    clean = _clean_negatives(models, x, y, detectors, settings)
    rows, records = [], []
    for name in settings.attacks:
        for eps in settings.eps:
            attack_rows, record = _attack_rows(models, clean, detectors, name, eps, settings)
            rows += attack_rows
            records.append(record)
    return {'rows': rows, 'attacks': records, 'num_images': int(len(x)),
            'clean_correct': int(len(clean.x)),
            'clean_accuracy': float(len(clean.x) / len(x)) if len(x) else None,
            'num_fit': int(len(fit_x)), 'settings': _settings_record(settings, detectors),
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
    from data.datasets import DATASETS, PIXEL_RANGE, kind
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0], epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_model_args(parser, 'checkpoint "prefix,epoch" with logits (fc7_output) and an '
                       'embedding', batch_size=256)
    parser.add_argument('--dataset', default='auto', choices=DATASETS)
    parser.add_argument('--data-dir', default=None,
                        help='data folder (data.datasets.load_dataset; needed for cifar10)')
    parser.add_argument('--num-fit', type=NON_NEGATIVE_INT, default=5000,
                        help='clean training images the detectors are fitted on, a seeded random '
                             'subset (0 = all; default 5000)')
    parser.add_argument('--num-samples', type=NON_NEGATIVE_INT, default=1000,
                        help='use the first N test images (0 = all; default 1000)')
    parser.add_argument('--methods', type=choice_list(METHODS), default=[DEFAULT_METHOD],
                        help='comma-separated, from %s (default %s)'
                        % (','.join(METHODS), DEFAULT_METHOD))
    parser.add_argument('--attacks', type=choice_list(ATTACK_NAMES), default=['pgd'],
                        help='comma-separated, from %s (default pgd)' % ','.join(ATTACK_NAMES))
    parser.add_argument('--eps', type=float_list, default=None,
                        help='comma-separated L-inf budgets in the data\'s pixel range (default '
                             '0.1 for MNIST-format [0,1], 8 for cifar10 [0,255])')
    parser.add_argument('--steps', type=POSITIVE_INT, default=None,
                        help='iterations of bim/pgd/mifgsm/cw, step 2.5*eps/steps (mifgsm: '
                             'eps/steps) (default 40 MNIST-format, 20 cifar10)')
    parser.add_argument('--restarts', type=POSITIVE_INT, default=1,
                        help='random restarts of pgd and cw')
    parser.add_argument('--all-adversarials', action='store_true',
                        help='positives: every adversarial, failed ones too (default: the '
                             'successful ones only)')
    parser.add_argument('--fpr', type=float, default=0.05,
                        help='false positive rate of the reported TPR (default 0.05)')
    _add_detector_args(parser)
    cli.add_autoattack_args(parser)
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the fit subset, random starts and mixtures')
    parser.add_argument('--no-progress', action='store_true', help='no tqdm progress bars')
    parser.add_argument('--out-dir', default=None,
                        help='write results.json, results.md and roc.png here')
    args = parser.parse_args(argv)
    if args.eps is not None:
        if not all(e > 0 for e in args.eps):
            parser.error('--eps: every budget must be > 0, got %s' % args.eps)
        cli.check_eps(parser, args.eps, PIXEL_RANGE[kind(args.dataset)])
    if not 0 < args.fpr < 1:
        parser.error('--fpr must lie in (0, 1), got %g' % args.fpr)
    return args


def _add_detector_args(parser):
    det = parser.add_argument_group('detectors')
    det.add_argument('--no-normalise', action='store_true',
                     help='use raw embeddings (default: L2-normalised, the cosine geometry TLA '
                          'and MTER train)')
    det.add_argument('--no-shrinkage', action='store_true',
                     help='gaussian: empirical covariance (pseudo-inverse) instead of '
                          'Ledoit-Wolf')
    det.add_argument('--components', type=POSITIVE_INT, default=3,
                     help='gmm: mixture components per class (default 3)')
    det.add_argument('--gmm-covariance', default='diag', choices=GMM_COVARIANCES,
                     help='gmm: covariance type (default diag)')
    det.add_argument('--k', type=POSITIVE_INT, default=10, help='knn: neighbours (default 10)')
    det.add_argument('--knn-reduce', default='kth', choices=KNN_REDUCE,
                     help='knn: distance to the k-th neighbour or mean over the k (default kth)')


def settings_of(args):
    """The DetectionSettings of detect.py's flags (eps and steps by default per data kind)."""
    from data.datasets import PIXEL_RANGE, kind
    data_kind = kind(args.dataset)
    attack = AttackSettings(steps=args.steps or DEFAULT_STEPS[data_kind], restarts=args.restarts,
                            seed=args.seed, pixel_range=PIXEL_RANGE[data_kind],
                            budget=Budget.from_args(args))
    detector = DetectorSettings(
        normalise=not args.no_normalise, shrinkage=not args.no_shrinkage,
        components=args.components, gmm_covariance=args.gmm_covariance, k=args.k,
        knn_reduce=args.knn_reduce, seed=args.seed)
    return DetectionSettings(
        attacks=tuple(args.attacks), eps=tuple(args.eps or [DEFAULT_EPS[data_kind]]),
        methods=tuple(args.methods), attack=attack, all_adversarials=args.all_adversarials,
        fpr=args.fpr, batch_size=args.batch_size, progress=not args.no_progress,
        detector=detector)


def load_models(spec, ctx, probe):
    """(logits, embedding) eval.model.Network of ``spec``, each checked on ``probe`` (a few of
    the data's images): a ValueError naming the checkpoint when it cannot take their shape or
    gives NaN or infinity (before anything long runs)."""
    logits = cli.load_model(spec, 'logits', ctx, probe)
    out = logits.predict(probe[:1])
    if out.ndim != 2:
        raise ValueError('model %s: logits of shape %s, expected (N, classes)' % (spec, out.shape))
    return logits, cli.load_model(spec, 'embedding', ctx, probe)


def _fit_and_test(data, args):
    """(fit images, labels): a seeded random subset of --num-fit training images; (test
    images, labels): the first --num-samples."""
    n_train = len(data.train_x)
    fit_idx = np.arange(n_train)
    if 0 < args.num_fit < n_train:
        fit_idx = np.sort(np.random.default_rng(args.seed).choice(n_train, args.num_fit,
                                                                   replace=False))
    x, y = data.test_x, data.test_y
    if args.num_samples:
        x, y = x[:args.num_samples], y[:args.num_samples]
    return (data.train_x[fit_idx], data.train_y[fit_idx]), (x, y)


def run(args):
    """detect.py's work on parsed flags: check the model, fit, attack, score, report; returns
    the results dict."""
    runtime.setup_logging(level=logging.INFO, format='%(asctime)s %(message)s')
    from data.datasets import load_dataset
    started = time.time()
    settings = settings_of(args)
    ctx = cli.parse_ctx(args.ctx, args.gpu)
    data = load_dataset(args.dataset, args.data_dir)
    fit, test = _fit_and_test(data, args)
    model_logits, model_embedding = load_models(args.model, ctx, test[0][:8])
    results = detection_report(model_logits, model_embedding, fit, test, settings)
    results['settings'].update(model=args.model, dataset=data.name, num_fit=args.num_fit,
                               num_samples=args.num_samples)
    title = 'Adversarial detection from the embedding of %s on %s (%d/%d test images correct)' % (
        cli.model_name(args.model), data.name, results['clean_correct'], results['num_images'])
    print(format_table(results))
    if args.out_dir:
        paths = write_outputs(results, args.out_dir, title)
        print('wrote %s' % ', '.join(paths.values()))
    logging.info('done in %.1f s', time.time() - started)
    return results


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
