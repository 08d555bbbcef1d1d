"""FAB, the fast adaptive boundary attack (Croce & Hein, ICML 2020, "Minimally distorted
adversarial examples with a fast adaptive boundary attack"), targeted, L-inf, in eval.attacks'
interface. Settings follow github.com/fra31/auto-attack (autoattack/fab_base.py, fab_pt.py).

Each iteration linearises f = z_t - z_y (target logit minus true logit) at the current point
x1, projects both x1 and the original image x0 onto the hyperplane {f = 0} intersected with the
pixel box (``linf_projection``: minimal L-inf step, exact), and moves to the convex combination
(x1 + eta d1)(1 - alpha) + (x0 + eta d2) alpha, alpha = min(|d1| / (|d1| + |d2|), alpha_max):
the bias toward x0 keeps the perturbation small, eta = 1.05 extrapolates past the boundary. When
x1 is adversarial it is recorded (the smallest L-inf norm found so far is kept) and x1 steps back
toward x0 by beta = 0.9. Restarts after the first start from x0 + 0.5 eps u / max|u| (u uniform).

FAB minimises the perturbation: its iterates leave the eps-ball. A sample succeeds when an
adversarial point of norm <= eps was found; it then leaves the batch (its result at eps cannot
change). Images returned are always inside the eps-ball and the pixel range.

Cost per iteration, as the reference: one forward + backward pass (the linearisation) and one
forward pass (is the new point adversarial?). Reusing the gradient pass for that check would cost
more: FAB overshoots the boundary (eta) in most iterations, and the backstepped point then needs
its own gradient pass.
"""
import numpy as np

from eval.apgd import uniform_linf_start
from eval.attacks import Attack, ranked_classes


def linf_projection(t, w, b, lo, hi):
    """Minimal L-inf step onto a hyperplane inside a box, per row.

    t, w: (N, D); b: (N,); lo, hi: (N, D) or scalars. Returns d (N, D) minimising max|d_i|
    subject to w . (t + d) = b and lo <= t + d <= hi. With lambda = max|d_i|, the best move is
    d_i = s_i min(lambda, cap_i) (s_i the sign that moves w . z toward b, cap_i the room to the
    box in that direction), whose progress sum |w_i| min(lambda, cap_i) is piecewise linear and
    increasing in lambda: sorting the caps gives the breakpoints and lambda exactly (float64).
    When even the box corner cannot reach the hyperplane, d goes to that corner (closest in
    w . z). Coordinates with w_i = 0 do not move."""
    t, w, lo, hi = (np.asarray(a, np.float64) for a in (t, w, lo, hi))
    need = np.asarray(b, np.float64) - np.sum(w * t, axis=1)
    move = np.sign(need)[:, None] * np.sign(w)
    cap = np.where(move > 0, hi - t, np.where(move < 0, t - lo, 0.0))
    cap = np.maximum(cap, 0.0)
    weight = np.abs(w) * (move != 0)
    order = np.argsort(cap, axis=1)
    caps = np.take_along_axis(cap, order, axis=1)
    weights = np.take_along_axis(weight, order, axis=1)
    below = np.cumsum(weights * caps, axis=1) - weights * caps  # sum_{j<k} w_j cap_j
    from_k = weights.sum(axis=1, keepdims=True) - np.cumsum(weights, axis=1) + weights
    progress = below + caps * from_k  # progress at lambda = caps[k]
    need = np.abs(need)
    reach = progress >= need[:, None]
    k = np.argmax(reach, axis=1)
    rows = np.arange(len(t))
    lam = (need - below[rows, k]) / np.maximum(from_k[rows, k], 1e-300)
    lam = np.where(reach.any(axis=1), lam, np.inf)
    return move * np.minimum(lam[:, None], cap)


def _linf_norm(d):
    return np.abs(d.reshape(len(d), -1)).max(axis=1)


class FAB(Attack):
    """FAB-T as AutoAttack runs it: toward the 2nd, 3rd, ... most likely class (clean logits) in
    turn, ``num_targets`` targets (9 in the standard version), ``restarts`` per target (the
    first without random start), ``steps`` iterations each; success = misclassified inside eps.

    With ``targeted=True``, ``y`` holds the target classes instead: f = z_t - max_{i!=t} z_i and
    success = classified as the target. Classifiers only."""
    name = 'fab-t'
    iterative = True

    def __init__(self, model, eps, steps=100, restarts=1, num_targets=9, alpha_max=0.1,
                 eta=1.05, beta=0.9, targeted=False, pixel_range=(0, 1), seed=None):
        if model.output != 'logits':
            raise ValueError("FAB attacks a classifier: it needs output='logits'")
        super().__init__(model, eps, targeted, 'cw', None, pixel_range, seed)
        if steps < 1 or restarts < 1 or num_targets < 1:
            raise ValueError('steps, restarts and num_targets must be >= 1, got %d, %d, %d'
                             % (steps, restarts, num_targets))
        self.steps, self.restarts, self.num_targets = int(steps), int(restarts), int(num_targets)
        self.alpha_max, self.eta, self.beta = float(alpha_max), float(eta), float(beta)

    def params(self):
        out = super().params()
        out.update(steps=self.steps, restarts=self.restarts, alpha_max=self.alpha_max,
                   eta=self.eta, beta=self.beta,
                   num_targets=None if self.targeted else self.num_targets)
        return out

    def _perturb(self, x, ref, lo, hi):
        x_adv = x.copy()
        success = self.objective.evaluate(x, ref)[1]
        if self.targeted:
            targets = [None]
        else:
            ranks = ranked_classes(self.model, x, len(x))
            targets = [ranks[:, k] for k in range(1, min(self.num_targets, ranks.shape[1] - 1) + 1)]
        for k, target in enumerate(targets):
            for restart in range(self.restarts):
                todo = np.flatnonzero(~success)
                if not len(todo):
                    break
                rng = self._rng(k * self.restarts + restart) if restart else None
                run_x, run_success = self._single_run(
                    x[todo], ref[todo], lo[todo], hi[todo],
                    None if target is None else target[todo], rng)
                x_adv[todo[run_success]] = run_x[run_success]
                success[todo] = run_success
        return x_adv, self.objective.evaluate(x_adv, ref)[1]

    def _single_run(self, x0, ref, lo, hi, target, rng):
        """One FAB run (random start when ``rng`` is given). Returns (points clipped to the
        eps-ball, success at eps)."""
        objective, n = self.objective, len(x0)
        x1 = x0 if rng is None else uniform_linf_start(x0, self.eps, *self.pixel_range, rng, 0.5)
        best = x1.copy()
        best_norm = np.full(n, np.inf)
        live = np.arange(n)  # samples still running; rows of x1 follow `live`

        def record(x_new, adv, rows):
            """Keeps the smallest-norm adversarial per row; returns 'adversarial inside eps'."""
            norm = _linf_norm(x_new.astype(np.float64) - x0[rows])
            better = adv & (norm < best_norm[rows])
            best[rows[better]] = x_new[better]
            best_norm[rows[better]] = norm[better]
            return adv & (norm <= self.eps)

        for _ in range(self.steps):
            aux = None if target is None else target[live]
            value, grad, _ = objective.value_grad_output(x1, ref[live], aux)
            x1 = self._step(x1, x0[live], value, grad)
            adv = objective.evaluate(x1, ref[live], aux)[1]
            keep = ~record(x1, adv, live)
            live, x1, adv = live[keep], x1[keep], adv[keep]
            if not len(live):
                break
            back = live[adv]  # step back toward x0
            x1[adv] = x0[back] + np.float32(self.beta) * (x1[adv] - x0[back])
        return np.clip(best, lo, hi), best_norm <= self.eps

    def _step(self, x1, x0, value, grad):
        """FAB's update: projections of x1 and x0 on the linearised boundary {value + grad .
        (z - x1) = 0} within the pixel box, biased toward x0, extrapolated by eta."""
        m = len(x1)
        box_lo, box_hi = self.pixel_range
        w = grad.reshape(m, -1).astype(np.float64)
        b = np.sum(w * x1.reshape(m, -1), axis=1) - value
        points = np.concatenate([x1.reshape(m, -1), x0.reshape(m, -1)])
        d = linf_projection(points, np.concatenate([w, w]), np.concatenate([b, b]), box_lo,
                            box_hi)
        size = np.maximum(np.abs(d).max(axis=1), 1e-8)
        alpha = np.clip(size[:m] / (size[:m] + size[m:]), 0.0, self.alpha_max)[:, None]
        moved = ((points[:m] + self.eta * d[:m]) * (1 - alpha)
                 + (points[m:] + self.eta * d[m:]) * alpha)
        return np.clip(moved, box_lo, box_hi).astype(np.float32).reshape(x1.shape)
