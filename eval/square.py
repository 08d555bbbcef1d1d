"""Square attack (Andriushchenko, Croce, Flammarion & Hein, ECCV 2020), L-inf, score-based
black-box: it only reads the model's outputs (forward passes on ``model.block``, no gradient),
so gradient masking cannot stop it. AutoAttack's last stage; settings follow
github.com/fra31/auto-attack (autoattack/square.py) with AutoAttack's standard values.

* start: x + eps * s, s = +-1 per vertical stripe (one sign per column and channel);
* each query changes one square window of side ``window_side(p, h, w)`` at a random position
  to x +- eps (one random sign per channel), and keeps the change when the objective rises (the
  margin max_{i!=y} z_i - z_y on logits, the reference's 'margin' loss; any eval.attacks
  objective works, e.g. the embedding distance) or the image becomes adversarial;
* p, the fraction of pixels changed, follows ``p_selection``: p_init = 0.8 halved after 10, 50,
  200, 500, 1000, 2000, 4000, 6000, 8000 queries (with ``rescale_schedule`` those iteration
  counts scale with ``queries`` / 10000; AutoAttack's standard 5000 queries do not rescale);
* ``queries`` iterations after the start (as the reference), one forward pass each on the
  samples not yet broken.

Unlike the reference (one window position and sign vector per batch and iteration), every
sample draws its own window position (uniform over all positions inside the image, as the paper
states) and signs, so no sample's search depends on its batch.
"""
import math

import numpy as np

from eval.attacks import Attack

SCHEDULE = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)


def p_selection(p_init, iteration, queries=10000, rescale=False):
    """Fraction of pixels a query changes at ``iteration`` (0-based)."""
    it = int(iteration / queries * 10000) if rescale else iteration
    return p_init / 2 ** sum(it > t for t in SCHEDULE)


def window_side(p, height, width):
    """Side of the square window changing a fraction p of the pixels, in [1, min(h, w)]."""
    return min(max(int(round(math.sqrt(p * height * width))), 1), height, width)


class Square(Attack):
    """Square attack, L-inf, ``queries`` iterations (5000 in AutoAttack), ``restarts`` restarts
    (on the samples not yet broken). Default loss: 'cw' (the margin) on logits, 'cos' on
    embeddings."""
    name = 'square'
    random_start = True

    def __init__(self, model, eps, queries=5000, p_init=0.8, restarts=1, rescale_schedule=False,
                 targeted=False, loss=None, threshold=None, pixel_range=(0, 1), seed=None):
        if loss is None and model.output == 'logits':
            loss = 'cw'
        super().__init__(model, eps, targeted, loss, threshold, pixel_range, seed)
        if queries < 0 or restarts < 1 or not 0 < p_init <= 1:
            raise ValueError('expected queries >= 0, restarts >= 1, 0 < p_init <= 1, got %d, '
                             '%d, %g' % (queries, restarts, p_init))
        self.queries, self.restarts = int(queries), int(restarts)
        self.p_init, self.rescale_schedule = float(p_init), bool(rescale_schedule)

    def params(self):
        out = super().params()
        out.update(queries=self.queries, p_init=self.p_init, restarts=self.restarts,
                   rescale_schedule=self.rescale_schedule, black_box=True)
        return out

    def _perturb(self, x, ref, lo, hi):
        x_adv = x.copy()
        value, success = self.objective.evaluate(x, ref)
        for restart in range(self.restarts):
            todo = np.flatnonzero(~success)
            if not len(todo):
                break
            run_x, run_value, run_success = self._single_run(
                x[todo], ref[todo], lo[todo], hi[todo], self._rng(restart))
            better = run_success | (run_value > value[todo])
            x_adv[todo[better]] = run_x[better]
            value[todo[better]] = run_value[better]
            success[todo] = run_success
        return x_adv, self.objective.evaluate(x_adv, ref)[1]

    def _single_run(self, x, ref, lo, hi, rng):
        n, channels, height, width = x.shape
        eps = np.float32(self.eps)
        stripes = rng.choice(np.array([-1, 1], np.float32), size=(n, channels, 1, width))
        best = np.clip(x + eps * stripes, lo, hi)
        value, success = self.objective.evaluate(best, ref)
        live = np.flatnonzero(~success)
        rows, cols = np.arange(height), np.arange(width)
        for i in range(self.queries):
            if not len(live):
                break
            m = len(live)
            side = window_side(p_selection(self.p_init, i, self.queries, self.rescale_schedule),
                               height, width)
            top = rng.integers(0, height - side + 1, size=m)
            left = rng.integers(0, width - side + 1, size=m)
            inside = (((rows >= top[:, None]) & (rows < top[:, None] + side))[:, None, :, None]
                      & ((cols >= left[:, None]) & (cols < left[:, None] + side))[:, None, None, :])
            signs = rng.choice(np.array([-2, 2], np.float32), size=(m, channels, 1, 1)) * eps
            current = best[live]
            candidate = np.clip(np.where(inside, current + signs, current), lo[live], hi[live])
            cand_value, cand_success = self.objective.evaluate(candidate, ref[live])
            keep = cand_success | (cand_value > value[live])
            best[live[keep]] = candidate[keep]
            value[live[keep]] = cand_value[keep]
            success[live] = cand_success
            live = live[~cand_success]
        return best, value, success
