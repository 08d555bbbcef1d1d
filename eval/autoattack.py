"""AutoAttack (Croce & Hein, ICML 2020): the field's standard robustness evaluation, as a suite of
eval.attacks-style attacks run stage by stage, each stage attacking only the images every
earlier stage failed on; robust = survives every stage (per sample).

Versions (``VERSIONS``), L-inf, with github.com/fra31/auto-attack's settings
(autoattack/autoattack.py, ``set_version('standard')``):

* ``standard``: APGD-CE (100 iterations, 1 restart), APGD-T (targeted DLR, 9 target classes,
  100 iterations each), FAB-T (9 targets, 100 iterations each), Square (5000 queries). The figure
  a reviewer accepts.
* ``fast``: APGD-CE + APGD-T only, same settings: a cheaper quick look (the paper finds these
  two do nearly all of AutoAttack's work on non-obfuscated models), without the black-box
  stage that catches gradient masking. Not AutoAttack: label it so.

On an embedding network (impersonation / dodging) the classifier stages do not apply: the
feature-level suite is APGD on the embedding distance then Square on it (``fast``: APGD only).

The budget (iterations, queries, targets, restarts, version) is one eval.registry.Budget, shared
by every tool and the main job; it may be lowered (smoke tests, a CPU budget); Square's p
schedule is then rescaled to its query budget (the reference's default for other budgets).
``standard_settings`` says whether a suite is the reference's, and results carry it. Stages
are built by name through eval.registry.
"""
import time

import numpy as np

from eval.attacks import Attack, run_attack

VERSIONS = {'standard': ('apgd-ce', 'apgd-t', 'fab-t', 'square'),
            'fast': ('apgd-ce', 'apgd-t')}
FEATURE_VERSIONS = {'standard': ('apgd', 'square'), 'fast': ('apgd',)}


class AutoAttack(Attack):
    """The suite: ``x_adv, success = AutoAttack(model, eps)(x, y)`` like any attack, or
    ``run(x, y, batch_size, progress)`` for stage-major batching with a progress bar per stage and
    the per-stage record. ``stages`` (names or Attack objects) overrides the version's."""
    name = 'autoattack'
    iterative = True
    random_start = True

    def __init__(self, model, eps, budget=None, targeted=False, loss=None, threshold=None,
                 pixel_range=(0, 1), seed=0, stages=None):
        """``budget``: an eval.registry.Budget (its version, iterations, targets, queries,
        restarts; default the reference's standard one)."""
        from eval.registry import AttackSettings, Budget, build
        super().__init__(model, eps, targeted, loss, threshold, pixel_range, seed)
        if targeted and not self.objective.on_embedding:
            raise ValueError('AutoAttack on a classifier is untargeted (APGD-T and FAB-T pick '
                             'their own target classes): y holds the true labels')
        self.budget = budget or Budget()
        table = FEATURE_VERSIONS if self.objective.on_embedding else VERSIONS
        if stages is None and self.budget.version not in table:
            raise ValueError('version must be one of %s, got %r'
                             % (', '.join(table), self.budget.version))
        self.version = self.budget.version if stages is None else 'custom'
        scenario = None if not self.objective.on_embedding else \
            ('impersonation' if targeted else 'dodging')
        settings = AttackSettings(seed=seed, pixel_range=pixel_range, budget=self.budget,
                                  threshold=threshold, scenario=scenario)
        self.stages = [build(s, model, eps, settings) if isinstance(s, str) else s
                       for s in (stages if stages is not None else table[self.version])]
        self.history = []  # one record per call (see run)

    @property
    def standard_settings(self):
        return self.version == 'standard' and self.budget.standard

    @property
    def settings(self):
        return {k: v for k, v in self.budget.as_dict().items() if k != 'version'}

    def params(self):
        out = super().params()
        out.update(version=self.version, stages=[s.name for s in self.stages],
                   standard_settings=self.standard_settings, **self.settings)
        return out

    def _perturb(self, x, ref, lo, hi):
        x_adv, success, _ = self.run(x, ref, batch_size=max(1, len(x)), progress=False)
        return x_adv, success

    def run(self, x, y=None, batch_size=256, progress=True, desc=None):
        """Stage by stage over all of x. Returns (x_adv, success, record): record = {'stages':
        [{'stage', 'attacked', 'broken', 'robust', 'seconds'}], 'num_images', 'clean_success',
        'broken_by'}; ``broken_by`` per image: -1 successful on the clean input, k broken by
        stage k, len(stages) survived. Survivors keep their highest-objective point."""
        x = self.check_images(x)
        ref = self.objective.reference(x, y)
        n, desc = len(x), desc or self.name
        value, success = self._evaluate(x, ref, batch_size)
        x_adv = x.copy()
        broken_by = np.where(success, -1, len(self.stages))
        record = {'num_images': n, 'clean_success': int(success.sum()), 'stages': [],
                  'broken_by': broken_by}
        for k, stage in enumerate(self.stages):
            started = time.time()
            todo = np.flatnonzero(~success)
            broken = np.zeros(0, bool)
            if len(todo):
                stage_x, broken = run_attack(stage, x[todo], ref[todo], batch_size, progress,
                                             '%s [%d/%d %s]' % (desc, k + 1, len(self.stages),
                                                                stage.name))
                stage_value, _ = self._evaluate(stage_x, ref[todo], batch_size)
                keep = broken | (stage_value > value[todo])
                x_adv[todo[keep]] = stage_x[keep]
                value[todo[keep]] = stage_value[keep]
                success[todo[broken]] = True
                broken_by[todo[broken]] = k
            record['stages'].append({'stage': stage.name, 'attacked': int(len(todo)),
                                     'broken': int(broken.sum()), 'robust': int((~success).sum()),
                                     'seconds': round(time.time() - started, 2)})
        self.history.append(record)
        return x_adv, success, record

    def _evaluate(self, x, ref, batch_size):
        parts = [self.objective.evaluate(x[s:s + batch_size], ref[s:s + batch_size])
                 for s in range(0, len(x), batch_size)]
        if not parts:
            return np.zeros(0, np.float32), np.zeros(0, bool)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def merge_records(records):
    """One record from several ``run`` records of the same suite (e.g. one per batch): counts
    and seconds summed per stage."""
    merged = {'num_images': sum(r['num_images'] for r in records),
              'clean_success': sum(r['clean_success'] for r in records), 'stages': []}
    for k, stage in enumerate(records[0]['stages'] if records else []):
        merged['stages'].append({
            'stage': stage['stage'],
            **{key: sum(r['stages'][k][key] for r in records)
               for key in ('attacked', 'broken', 'robust')},
            'seconds': round(sum(r['stages'][k]['seconds'] for r in records), 2)})
    return merged


def stage_entry(label, name, eps, suite, record, num_images, clean_correct):
    """One row of the per-stage table (eval.report's layout) of a suite run at ``eps``:
    ``record`` (a run's record, or ``merge_records`` of several) and the image counts."""
    params = suite.params()
    return {'model': label, 'attack': name, 'eps': eps, 'num_images': int(num_images),
            'clean_correct': int(clean_correct), 'stages': record['stages'],
            'robust': int(record['stages'][-1]['robust']) if record['stages'] else 0,
            'seconds': round(sum(st['seconds'] for st in record['stages']), 1),
            'standard_settings': params['standard_settings'],
            'settings': {k: params[k] for k in ('version', 'iterations', 'queries', 'targets',
                                                'restarts')}}
