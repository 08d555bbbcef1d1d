"""Auto-PGD (Croce & Hein, ICML 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks"), L-inf, in eval.attacks' interface.

``APGD`` maximises any ``eval.attacks.Objective`` (cross-entropy, DLR, CW on logits; the
embedding distances for impersonation / dodging), ``APGDT`` is AutoAttack's APGD-T: the
targeted DLR loss toward each of the ``num_targets`` most likely other classes in turn, success
= misclassified. Settings follow github.com/fra31/auto-attack (autoattack/autopgd_base.py):

* start: x + eps * u / max|u|, u uniform in [-1, 1]^d (per sample), clipped to the box;
* step size 2 * eps per sample; update z = P(x_k + eta * sign(grad)),
  x_{k+1} = P(x_k + 0.75 (z - x_k) + 0.25 (x_k - x_{k-1})) (momentum 0.75; the first step
  takes z itself);
* checkpoints after ``checkpoints(steps)`` iterations (0.22, 0.41, 0.57, ... of the budget:
  p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06)); at each one the step size of a sample halves
  and it restarts from its best point when (1) the objective rose in at most rho = 75% of the
  steps since the last checkpoint, or (2) the step was not halved at the last checkpoint and the
  best objective has not improved since. (Condition 1 counts the first step against the
  starting point's objective, as the paper defines it.)

One forward + backward pass per iteration gives the objective, its gradient and the output
that decides success. A sample leaves the batch at its first successful iterate (the remaining
samples' trajectories are unchanged: samples never interact), so the cost falls as the attack
succeeds. Unsuccessful samples return their highest-objective point.
"""
import numpy as np

from eval.attacks import Attack, ranked_classes


def checkpoints(steps):
    """Iterations after which APGD checks its progress (the reference's schedule)."""
    first = max(int(0.22 * steps), 1)
    smallest, decrease = max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    points, length, at = [], first, first
    while at <= steps:
        points.append(at)
        length = max(length - decrease, smallest)
        at += length
    return points


def uniform_linf_start(x, eps, lo, hi, rng, scale=1.0):
    """x + scale * eps * u / max|u| per sample (u uniform in [-1, 1]), clipped to [lo, hi]."""
    u = rng.uniform(-1.0, 1.0, size=x.shape).astype(np.float32)
    peak = np.abs(u.reshape(len(x), -1)).max(axis=1).reshape((-1,) + (1,) * (x.ndim - 1))
    return np.clip(x + np.float32(scale * eps) * u / np.maximum(peak, 1e-12), lo, hi)


class APGD(Attack):
    """Auto-PGD with ``steps`` iterations and ``restarts`` random restarts (restarts attack only
    the samples still unbroken). ``loss``: the objective's ('ce' default on logits)."""
    name = 'apgd'
    iterative = True
    random_start = True

    def __init__(self, model, eps, steps=100, restarts=1, rho=0.75, momentum=0.75,
                 targeted=False, loss=None, threshold=None, pixel_range=(0, 1), seed=None):
        super().__init__(model, eps, targeted, loss, threshold, pixel_range, seed)
        if steps < 1 or restarts < 1:
            raise ValueError('steps and restarts must be >= 1, got %d, %d' % (steps, restarts))
        self.steps, self.restarts = int(steps), int(restarts)
        self.rho, self.momentum = float(rho), float(momentum)

    def params(self):
        out = super().params()
        out.update(steps=self.steps, restarts=self.restarts, rho=self.rho,
                   momentum=self.momentum, initial_step='2 * eps')
        return out

    def _perturb(self, x, ref, lo, hi):
        x_adv, success, _ = self._with_restarts(x, ref, lo, hi, None, 0)
        return x_adv, self.objective.evaluate(x_adv, ref)[1]

    def _with_restarts(self, x, ref, lo, hi, target, stream):
        """Restarts on the samples not yet broken; per sample the first success, else the
        highest objective over restarts. ``stream`` offsets the random streams."""
        x_adv = x.copy()
        value, success = self.objective.evaluate(x, ref, target)
        for restart in range(self.restarts):
            todo = np.flatnonzero(~success)
            if not len(todo):
                break
            aux = None if target is None else target[todo]
            run_x, run_success, run_value = self._single_run(
                x[todo], ref[todo], lo[todo], hi[todo], aux, self._rng(stream + restart))
            better = run_success | (run_value > value[todo])
            x_adv[todo[better]] = run_x[better]
            value[todo[better]] = run_value[better]
            success[todo] = run_success
        return x_adv, success, value

    def _single_run(self, x, ref, lo, hi, target, rng):
        """One APGD run from a random start. Returns (points, success, objective)."""
        objective, n = self.objective, len(x)
        x_adv = uniform_linf_start(x, self.eps, lo, hi, rng)
        value, grad, out = objective.value_grad_output(x_adv, ref, target)
        result_x, result_value = x_adv.copy(), value.copy()
        success = objective.success_from_output(out, ref)
        live = np.flatnonzero(~success)  # samples still running; state rows follow `live`
        s = dict(ref=ref, lo=lo, hi=hi, target=target, x_adv=x_adv, x_old=x_adv,
                 grad=grad, x_best=x_adv, grad_best=grad, best=value, prev=value,
                 best_at_check=value, reduced=np.ones(n, bool), ups=np.zeros(n, np.int64),
                 step=np.full((n,) + (1,) * (x.ndim - 1), 2 * self.eps, np.float32))
        s = {k: (None if v is None else v[live]) for k, v in s.items()}
        check_at = set(checkpoints(self.steps))
        since_check = 0
        for i in range(self.steps):
            if not len(live):
                break
            a = np.float32(self.momentum if i > 0 else 1.0)
            x_cur = s['x_adv']
            z = np.clip(x_cur + s['step'] * np.sign(s['grad']), s['lo'], s['hi'])
            x_new = np.clip(x_cur + a * (z - x_cur) + (1 - a) * (x_cur - s['x_old']),
                            s['lo'], s['hi'])
            s['x_old'], s['x_adv'] = x_cur, x_new
            value, grad, out = objective.value_grad_output(x_new, s['ref'], s['target'])
            s['grad'] = grad
            s['ups'] += value > s['prev']
            s['prev'] = value
            up = value > s['best']
            s['x_best'][up], s['grad_best'][up], s['best'][up] = x_new[up], grad[up], value[up]
            since_check += 1
            done = objective.success_from_output(out, s['ref'])
            if done.any():  # leave at the first success; the rest go on unchanged
                result_x[live[done]] = x_new[done]
                success[live[done]] = True
                live = live[~done]
                s = {k: (None if v is None else v[~done]) for k, v in s.items()}
            if i + 1 in check_at:
                halve = (s['ups'] <= self.rho * since_check) | (
                    ~s['reduced'] & (s['best_at_check'] >= s['best']))
                s['reduced'], s['best_at_check'] = halve, s['best'].copy()
                s['step'][halve] /= 2
                s['x_adv'][halve], s['grad'][halve] = s['x_best'][halve], s['grad_best'][halve]
                s['ups'][:] = 0
                since_check = 0
        result_x[live], result_value[live] = s['x_best'], s['best']
        return result_x, success, result_value


class APGDT(APGD):
    """AutoAttack's APGD-T: APGD on the targeted DLR loss toward the 2nd, 3rd, ... most likely
    class (clean logits) in turn, ``num_targets`` targets (9 in the standard version; at most
    classes - 1), ``restarts`` per target, each on the samples still unbroken. Success =
    misclassified (any class). Classifiers only."""
    name = 'apgd-t'

    def __init__(self, model, eps, steps=100, restarts=1, num_targets=9, rho=0.75,
                 momentum=0.75, pixel_range=(0, 1), seed=None):
        if model.output != 'logits':
            raise ValueError("APGD-T attacks a classifier: it needs output='logits'")
        super().__init__(model, eps, steps, restarts, rho, momentum, targeted=False,
                         loss='dlr', pixel_range=pixel_range, seed=seed)
        if num_targets < 1:
            raise ValueError('num_targets must be >= 1, got %d' % num_targets)
        self.num_targets = int(num_targets)

    def params(self):
        out = super().params()
        out['num_targets'] = self.num_targets
        return out

    def _perturb(self, x, ref, lo, hi):
        ranks = ranked_classes(self.model, x, len(x))
        x_adv = x.copy()
        success = self.objective.evaluate(x, ref)[1]
        best = np.full(len(x), -np.inf, np.float32)
        for k in range(1, min(self.num_targets, ranks.shape[1] - 1) + 1):
            todo = np.flatnonzero(~success)
            if not len(todo):
                break
            run_x, run_success, run_value = self._with_restarts(
                x[todo], ref[todo], lo[todo], hi[todo], ranks[todo, k], k * self.restarts)
            keep = run_success | (run_value > best[todo])
            x_adv[todo[keep]] = run_x[keep]
            best[todo[keep]] = run_value[keep]
            success[todo] = run_success
        return x_adv, self.objective.evaluate(x_adv, ref)[1]
