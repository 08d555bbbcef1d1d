"""AutoAttack (eval.apgd, eval.fab, eval.square, eval.autoattack) on a LeNet trained here on
scikit-learn's digits, and on the same LeNet behind an input quantisation (zero gradients by
construction). Settings are cut down (few iterations and queries) to stay fast; the reference
settings are exercised by the same code paths."""
import json
import math

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest
from scipy.optimize import linprog

from eval.protocol import l2_normalize
from eval import attack_mnist
from eval import attacks as A
from eval.apgd import APGD, APGDT, checkpoints
from eval.attack_losses import classifier_loss, embedding_loss
from eval.autoattack import AutoAttack
from eval.registry import AttackSettings, Budget, build
from eval.fab import FAB, linf_projection
from eval.model import Network
from eval.square import Square, p_selection, window_side
from src.checkpoint import save_checkpoint
from tests.conftest import assert_close_to_scale, train_lenet_digits

N = 60


@pytest.fixture(scope='module')
def lenet():
    sym, arg, aux, data = train_lenet_digits(epochs=4, seed=0)
    quantised = mx.sym.round(mx.sym.var('data') * 4) / 4  # round(4x)/4: zero input gradient
    return {'sym': sym, 'arg': arg, 'aux': aux,
            'net': Network(sym, arg, aux, output='logits'),
            'masked': Network(sym(data=quantised), arg, aux, output='logits'),
            'embedding': Network(sym, arg, aux, output='embedding'),
            'x': data.test_x[:N], 'y': data.test_y[:N].astype(np.int64),
            'x150': data.test_x[:150], 'y150': data.test_y[:150].astype(np.int64)}


def predicted(net, x):
    return net.predict(x).argmax(axis=1)


# ----------------------------------------------------------------------------- losses, schedules

def dlr_reference(z, y, target=None, targeted=False):
    """DLR as Croce & Hein write it, float64 NumPy."""
    z = np.asarray(z, np.float64)
    s = -np.sort(-z, axis=1)
    rows = np.arange(len(z))
    if targeted:  # y is the target; the strongest other class plays the true class
        other = np.where(np.arange(z.shape[1]) == y[:, None], -np.inf, z).max(axis=1)
        return -(other - z[rows, y]) / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2 + 1e-12)
    if target is not None:
        return -(z[rows, y] - z[rows, target]) / (s[:, 0] - (s[:, 2] + s[:, 3]) / 2 + 1e-12)
    other = np.where(np.arange(z.shape[1]) == y[:, None], -np.inf, z).max(axis=1)
    return -(z[rows, y] - other) / (s[:, 0] - s[:, 2] + 1e-12)


def test_dlr_loss_matches_numpy_reference(lenet):
    net, x, y = lenet['net'], lenet['x'][:32], lenet['y'][:32]
    logits = net.predict(x)
    target = A.random_targets(y, 10, seed=0)
    untargeted = A.Objective(net, loss='dlr')
    for value, expected in [
            (untargeted.evaluate(x, y)[0], dlr_reference(logits, y)),
            (untargeted.evaluate(x, y, target)[0], dlr_reference(logits, y, target)),
            (A.Objective(net, targeted=True, loss='dlr').evaluate(x, target)[0],
             dlr_reference(logits, target, targeted=True))]:
        assert_close_to_scale(value, expected, 1e-4)  # float32 logits, ratios of O(1)
    # shift and scale invariance, on random logits (float64 on both sides)
    z = np.random.default_rng(0).standard_normal((50, 10))
    labels = np.arange(50) % 10
    assert_close_to_scale(classifier_loss(z * 7 + 3, labels, 'dlr')[0], dlr_reference(z, labels),
                          1e-9)  # up to the 1e-12 in the denominator
    # the gradient (sort positions picked without gradient) matches central differences
    value, grad = untargeted.value_and_grad(x, y)
    direction = np.random.default_rng(1).choice(np.float32([-1, 1]), size=x.shape)
    h = np.float32(1e-3)
    numeric = (untargeted.evaluate(x + h * direction, y)[0].astype(np.float64)
               - untargeted.evaluate(x - h * direction, y)[0]) / (2 * h)
    analytic = np.sum((grad * direction).reshape(len(x), -1), axis=1, dtype=np.float64)
    assert np.linalg.norm(analytic - numeric) <= 0.1 * np.linalg.norm(numeric)
    with pytest.raises(ValueError, match='auxiliary target'):
        A.Objective(net, targeted=True, loss='dlr').evaluate(x, y, target)


@pytest.mark.parametrize('loss', ['ce', 'cw', 'dlr'])
def test_loss_gradients_match_central_differences(loss):
    """The output gradients back-propagated by Objective, against float64 differences, for
    untargeted, targeted and auxiliary-target objectives (and the embedding distances)."""
    rng = np.random.default_rng(0)
    z = rng.standard_normal((20, 10)) * 3
    labels, targets = rng.integers(0, 10, 20), rng.integers(0, 10, 20)
    targets[targets == labels] = (labels[targets == labels] + 1) % 10
    cases = [dict(), dict(targeted=True), dict(target=targets)]
    for case in cases:
        value, grad = classifier_loss(z, labels, loss, **case)
        numeric = np.zeros_like(z)
        for j in range(z.shape[1]):
            step = np.zeros_like(z)
            step[:, j] = 1e-6
            numeric[:, j] = (classifier_loss(z + step, labels, loss, **case)[0]
                             - classifier_loss(z - step, labels, loss, **case)[0]) / 2e-6
        np.testing.assert_allclose(grad, numeric, atol=1e-6 * max(1, np.abs(numeric).max()))
        assert value.shape == (20,)
    emb = rng.standard_normal((6, 8))
    ref = l2_normalize(rng.standard_normal((6, 8)))
    for name in ('cos', 'sqeuclidean'):
        for targeted in (False, True):
            value, grad = embedding_loss(emb, ref, name, targeted)
            numeric = np.stack([(embedding_loss(emb + 1e-6 * e, ref, name, targeted)[0]
                                 - embedding_loss(emb - 1e-6 * e, ref, name, targeted)[0]) / 2e-6
                                for e in np.eye(8)], axis=1)
            np.testing.assert_allclose(grad, numeric, atol=1e-7)


def test_apgd_checkpoints_follow_the_paper():
    """p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): checks after
    round(p_j * N) iterations."""
    for steps in (100, 200, 1000):
        p = [0.0, 0.22]
        while p[-1] + max(p[-1] - p[-2] - 0.03, 0.06) <= 1:
            p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
        assert checkpoints(steps) == [round(q * steps) for q in p[1:]]
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_square_schedule():
    # the reference: p_init, halved after 10, 50, 200, 500, 1000, 2000, 4000, ... iterations
    assert [p_selection(0.8, i) for i in (0, 10, 11, 50, 51, 3000, 4999)] == [
        0.8, 0.8, 0.4, 0.4, 0.2, 0.8 / 64, 0.8 / 128]
    assert p_selection(0.8, 1500, queries=5000, rescale=True) == 0.8 / 64
    assert window_side(0.8, 28, 28) == round(math.sqrt(0.8 * 784)) == 25
    assert window_side(1e-6, 28, 28) == 1 and window_side(1.0, 28, 20) == 20


def test_linf_projection_is_the_exact_minimum():
    """Against a linear program: min lambda s.t. |d_i| <= lambda, w.(t+d) = b, 0 <= t+d <= 1."""
    rng = np.random.default_rng(0)
    feasible = 0
    for _ in range(40):
        dim = int(rng.integers(2, 10))
        t, w = rng.random((1, dim)), rng.standard_normal((1, dim))
        w[0, rng.random(dim) < 0.2] = 0
        b = np.array([w[0] @ rng.random(dim)])
        d = linf_projection(t, w, b, 0.0, 1.0)[0]
        assert np.all(t[0] + d >= -1e-12) and np.all(t[0] + d <= 1 + 1e-12)
        assert np.all(d[w[0] == 0] == 0)
        lp = linprog(np.r_[np.zeros(dim), 1.0],
                     A_ub=np.block([[np.eye(dim), -np.ones((dim, 1))],
                                    [-np.eye(dim), -np.ones((dim, 1))]]),
                     b_ub=np.zeros(2 * dim), A_eq=np.r_[w[0], 0.0][None],
                     b_eq=[b[0] - w[0] @ t[0]],
                     bounds=[(-t[0, i], 1 - t[0, i]) for i in range(dim)] + [(0, None)])
        if lp.status == 0:
            feasible += 1
            assert w[0] @ (t[0] + d) == pytest.approx(b[0], abs=1e-9)
            assert np.abs(d).max() == pytest.approx(lp.x[-1], abs=1e-9)
        else:  # out of the box's reach: the corner closest to the hyperplane
            gap = b[0] - w[0] @ t[0]
            assert np.all(np.sign(d[w[0] != 0]) == np.sign(gap * w[0][w[0] != 0]))
    assert feasible >= 30


# ----------------------------------------------------------------------------- attacks

def test_apgd_at_least_as_strong_as_pgd_of_the_same_budget(lenet):
    """20 gradient evaluations each (APGD: the start's + 19 iterations)."""
    net, x, y = lenet['net'], lenet['x150'], lenet['y150']
    for eps in (0.08, 0.12):
        _, pgd = A.PGD(net, eps, steps=20, seed=0)(x, y)
        _, apgd = APGD(net, eps, steps=19, seed=0)(x, y)
        assert 0.1 < pgd.mean() < 0.9  # a regime where strength shows
        assert apgd.sum() >= pgd.sum()


def clipped_ok(x, x_adv, eps, pixel_range=(0, 1)):
    return (x_adv.dtype == np.float32 and x_adv.shape == x.shape
            and np.max(np.abs(x_adv.astype(np.float64) - x)) <= eps
            and x_adv.min() >= pixel_range[0] and x_adv.max() <= pixel_range[1])


@pytest.mark.parametrize('name', ['apgd-ce', 'apgd-dlr', 'apgd-t', 'fab-t', 'square',
                                  'autoattack'])
def test_every_attack_respects_eps_and_pixel_range_exactly(lenet, name):
    net, x, y = lenet['net'], lenet['x'][:24], lenet['y'][:24]
    for eps in (1 / 30, 0.3):
        budget = Budget(iterations=4, queries=100, targets=2)
        attack = build(name, net, eps, AttackSettings(budget=budget))
        assert isinstance(attack, AutoAttack) == (name == 'autoattack')
        x_adv, success = attack(x, y)
        assert clipped_ok(x, x_adv, eps)
        np.testing.assert_array_equal(success, predicted(net, x_adv) != y)
    assert success.mean() > 0.5  # eps 0.3 breaks most images, even at these settings


def test_fab_adversarials_are_misclassified_and_inside_eps(lenet):
    net, x, y = lenet['net'], lenet['x'][:40], lenet['y'][:40]
    eps = 0.1
    x_adv, success = FAB(net, eps, steps=10, num_targets=2)(x, y)
    assert clipped_ok(x, x_adv, eps)  # unbroken images come back inside the ball as well
    assert 0.3 < success.mean()
    np.testing.assert_array_equal(success, predicted(net, x_adv) != y)
    # explicit targets: success = classified as the target
    target = A.random_targets(y, 10, seed=1)
    x_t, hit = FAB(net, 0.2, steps=10, targeted=True)(x, target)
    assert clipped_ok(x, x_t, 0.2) and hit.mean() > 0.2
    np.testing.assert_array_equal(hit, predicted(net, x_t) == target)
    # a restart from a random start can only add successes (FAB is deterministic without)
    _, more = FAB(net, eps, steps=10, num_targets=2, restarts=2, seed=0)(x, y)
    assert np.all(more >= success)


def test_square_succeeds_where_gradients_are_masked(lenet):
    masked, x, y = lenet['masked'], lenet['x'][:40], lenet['y'][:40]
    clean = predicted(masked, x) == y
    assert clean.mean() > 0.9
    _, grad = A.Objective(masked).value_and_grad(x, y)
    assert not grad.any()  # masked by construction
    eps = 0.2
    _, pgd = A.PGD(masked, eps, steps=10, seed=0)(x, y)
    _, apgd = APGD(masked, eps, steps=10, seed=0)(x, y)
    x_sq, square = Square(masked, eps, queries=150, seed=0)(x, y)
    assert clipped_ok(x, x_sq, eps)
    np.testing.assert_array_equal(square, predicted(masked, x_sq) != y)
    assert pgd.mean() <= 0.2 and apgd.mean() <= 0.2
    assert square.mean() >= 0.6 and square.mean() >= max(pgd.mean(), apgd.mean()) + 0.4


def test_suite_result_is_the_and_over_stages(lenet):
    net, x, y = lenet['net'], lenet['x'][:40], lenet['y'][:40]
    eps, budget = 0.08, Budget(iterations=5, queries=15, targets=2)
    suite = AutoAttack(net, eps, budget, seed=0)
    x_adv, success, record = suite.run(x, y, batch_size=16, progress=False)
    names = [s['stage'] for s in record['stages']]
    assert names == ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    # the same stages, composed by hand: each on the images all earlier ones failed on
    robust = predicted(net, x) == y
    for k, name in enumerate(names):
        todo = np.flatnonzero(robust)
        assert record['stages'][k]['attacked'] == len(todo)
        stage = build(name, net, eps, AttackSettings(seed=0, budget=budget))
        _, broken = A.run_attack(stage, x[todo], y[todo], 16, progress=False)
        robust[todo[broken]] = False
        assert record['stages'][k]['broken'] == broken.sum()
        assert record['stages'][k]['robust'] == robust.sum()
    np.testing.assert_array_equal(~success, robust)
    np.testing.assert_array_equal(record['broken_by'] == len(names), robust)
    assert clipped_ok(x, x_adv, eps)
    np.testing.assert_array_equal(success, predicted(net, x_adv) != y)
    assert record['stages'][0]['broken'] > 0 and robust.any()  # stages had work to do


def test_feature_level_apgd_and_square(lenet):
    net, x = lenet['embedding'], lenet['x'][:30]
    partner = np.roll(np.arange(len(x)), 7)
    target = net.predict(x[partner])
    before = np.sum(np.square(l2_normalize(net.predict(x), np.float32) - l2_normalize(target, np.float32)), axis=1)
    threshold = 1.0
    for attack in (APGD(net, 0.1, steps=10, targeted=True, threshold=threshold, seed=0),
                   Square(net, 0.1, queries=30, targeted=True, loss='cos', threshold=threshold,
                          seed=0),
                   AutoAttack(net, 0.1, Budget(iterations=10, queries=30), targeted=True,
                              threshold=threshold)):
        x_adv, success = attack(x, target)
        after = np.sum(np.square(l2_normalize(net.predict(x_adv), np.float32) - l2_normalize(target, np.float32)),
                       axis=1)
        assert clipped_ok(x, x_adv, 0.1)
        np.testing.assert_array_equal(success, after < threshold)
        assert after.mean() < before.mean() - 0.05
    # dodging from the clean embedding itself: APGD's random start leaves the minimum
    x_adv, success = APGD(net, 0.1, steps=10, threshold=0.3, seed=0)(x)
    moved = np.sum(np.square(l2_normalize(net.predict(x_adv), np.float32)
                             - l2_normalize(net.predict(x), np.float32)), axis=1)
    assert moved.mean() > 0.1
    with pytest.raises(ValueError, match='classifier'):
        APGDT(net, 0.1)


# ----------------------------------------------------------------------------- reports

def test_attack_mnist_autoattack_cli(lenet, tmp_path, capfd):
    """The issue's command (eps 0.02, 40 images), with cut-down settings and fewer AutoAttack
    images than the other attacks, plus the masked model's gradient-masking tell."""
    prefix = str(tmp_path / 'lenet')
    save_checkpoint(prefix, 0, lenet['sym'], lenet['arg'], lenet['aux'])
    out = tmp_path / 'out'
    status = attack_mnist.main([
        '--model', prefix + ',0', '--dataset', 'digits', '--attacks', 'autoattack,pgd',
        '--eps', '0.02,0.1', '--num-samples', '40', '--aa-samples', '30', '--out-dir', str(out),
        '--steps', '4', '--aa-iterations', '4', '--aa-queries', '15', '--aa-targets', '2'])
    captured = capfd.readouterr()
    assert status == 0
    assert '[2/4 apgd-t]' in captured.err  # the per-stage progress bars
    assert 'AutoAttack stages' in captured.out
    results = json.loads((out / 'results.json').read_text())
    curves = {c['attack']: c for c in results['curves']}
    assert set(curves) == {'autoattack', 'pgd', 'worst-case'}
    assert curves['autoattack']['num_samples'] == curves['worst-case']['num_samples'] == 30
    assert curves['pgd']['num_samples'] == 40
    assert curves['autoattack']['params']['stages'] == ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    assert not curves['autoattack']['params']['standard_settings']
    assert results['settings']['aa_samples'] == 30
    for i, record in enumerate(results['autoattack']):
        assert [s['stage'] for s in record['stages']] == ['apgd-ce', 'apgd-t', 'fab-t', 'square']
        left = record['clean_correct']
        for stage in record['stages']:
            assert stage['attacked'] == left and stage['robust'] == left - stage['broken']
            left = stage['robust']
        assert curves['autoattack']['values'][i] == pytest.approx(left / 30)
        assert curves['worst-case']['values'][i] <= left / 30 + 1e-12
    assert 'AutoAttack stages' in (out / 'results.md').read_text()
    masking = [c for c in results['checks'] if c['name'].startswith('no gradient masking')]
    assert len(masking) == 1 and masking[0]['passed']
    # the quantised model: PGD and AutoAttack's white-box stages fail, Square does not
    masked = attack_mnist.evaluate_robustness(
        {'masked': lenet['masked']}, lenet['x'][:30], lenet['y'][:30], attack_mnist.Settings(
            attacks=('pgd', 'square'), eps=(0.2,), progress=False,
            attack=attack_mnist.Settings.attack.replace(steps=4, budget=Budget(queries=100)),
            sanity=attack_mnist.SanitySettings(large_eps=0)))
    masking = [c for c in masked['checks'] if c['name'].startswith('no gradient masking')]
    assert len(masking) == 1 and not masking[0]['passed']


def test_bench_runs(capsys):
    from bench import bench_attacks
    bench_attacks.main(['--network', 'l', '--batch-size', '4', '--iterations', '1',
                        '--queries', '2', '--repeats', '1'])
    out = capsys.readouterr().out
    rows = [r for r in out.splitlines() if r.startswith('| ') and not r.startswith('| attack')]
    assert [r.split('|')[1].strip() for r in rows] == ['apgd-ce', 'apgd-t', 'fab-t', 'square']
    assert 'standard AutoAttack on an image that survives every stage' in out
