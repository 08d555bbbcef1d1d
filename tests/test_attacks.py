"""Attacks (eval.attacks) and sanity checks (eval.sanity) on a LeNet trained here on
scikit-learn's digits resized to 28x28 (a few seconds)."""
import numpy as np
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import pytest

from eval.protocol import l2_normalize
from eval import attacks as A
from eval import registry, sanity
from eval.registry import AttackSettings
from eval.model import Network
from symbols.common import name_embedding
from symbols.heads import inference_symbol
from tests.conftest import assert_close_to_scale, train_lenet_digits

N_TEST = 150


@pytest.fixture(scope='module')
def trained():
    sym, arg, aux, data = train_lenet_digits(epochs=4, seed=0)
    return {'sym': sym, 'arg': arg, 'aux': aux,
            'logits': Network(sym, arg, aux, output='logits'),
            'embedding': Network(sym, arg, aux, output='embedding'),
            'x': data.test_x[:N_TEST], 'y': data.test_y[:N_TEST].astype(np.int64)}


def accuracy(net, x, y):
    return float(np.mean(net.predict(x).argmax(axis=1) == y))


def sq_distance(net, x, ref):
    return np.sum(np.square(l2_normalize(net.predict(x), np.float32)
                            - l2_normalize(ref, np.float32)), axis=1)


def test_clean_model_is_usable(trained):
    assert accuracy(trained['logits'], trained['x'], trained['y']) > 0.85


def test_linf_bounds_are_exact():
    rng = np.random.default_rng(0)
    x = rng.random((4, 1, 9, 9)).astype(np.float32)
    for eps in (0.1, 1 / 3, 0.3, 1e-4):
        lo, hi = A.linf_bounds(x, eps, (0, 1))
        x64 = x.astype(np.float64)
        assert lo.dtype == hi.dtype == np.float32
        assert np.all(x64 - lo <= eps) and np.all(hi - x64 <= eps)
        assert np.all(lo <= x) and np.all(x <= hi) and lo.min() >= 0 and hi.max() <= 1
        # tight: one float32 ulp further would leave the ball or the range
        assert np.all((x64 - np.nextafter(lo, np.float32(-1)) > eps) | (lo == 0))


@pytest.mark.parametrize('cls', [A.FGSM, A.BIM, A.PGD, A.MIFGSM, A.CWLinf])
def test_budget_and_pixel_range_respected(trained, cls):
    x, y = trained['x'][:60], trained['y'][:60]
    for eps in (0.1, 0.3):
        kwargs = {} if cls is A.FGSM else {'steps': 5}
        x_adv, success = cls(trained['logits'], eps, seed=0, **kwargs)(x, y)
        assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
        assert np.max(np.abs(x_adv.astype(np.float64) - x)) <= eps + 1e-6
        assert np.max(np.abs(x_adv.astype(np.float64) - x)) <= eps  # exact, by construction
        assert x_adv.min() >= 0 and x_adv.max() <= 1
        pred = trained['logits'].predict(x_adv).argmax(axis=1)
        np.testing.assert_array_equal(success, pred != y)


def test_gradient_matches_float64_reference(trained):
    """Guards against MKL-DNN's wrong max-pool backward after an inference-mode forward."""
    x, y = trained['x'][:16], trained['y'][:16]
    _, grad = A.Objective(trained['logits'], loss='ce').value_and_grad(x, y)
    internals = trained['sym'].get_internals()
    block = mx.gluon.SymbolBlock(internals['fc7_output'], mx.sym.var('data'))
    params = dict(trained['arg'], **trained['aux'])
    for name, param in block.collect_params().items():
        param._load_init(params[name], mx.cpu())  # pylint: disable=protected-access
    block.cast('float64')
    x64 = mx.nd.array(x, dtype='float64')
    x64.attach_grad()
    with mx.autograd.record(train_mode=False):
        loss = -mx.nd.pick(mx.nd.log_softmax(block(x64), axis=1),
                           mx.nd.array(y, dtype='float64'), axis=1)
    loss.backward()
    ref = x64.grad.asnumpy()
    # float32 vs float64: ~0.5% of the largest entry; the max-pool bug it guards against is 100%
    assert np.abs(grad - ref).max() <= 2e-2 * np.abs(ref).max()


def test_gradient_graph_keeps_inference_semantics():
    """Batch-norm on moving statistics and no dropout in the graph the gradients come from."""
    x = mx.sym.Convolution(mx.sym.var('data'), kernel=(3, 3), num_filter=4, name='conv')
    x = mx.sym.BatchNorm(x, fix_gamma=False, name='bn')
    x = mx.sym.Dropout(mx.sym.Activation(x, act_type='relu'), p=0.5)
    emb = name_embedding(mx.sym.FullyConnected(mx.sym.flatten(x), num_hidden=8, name='fc1'))
    sym = inference_symbol(emb, 3, 8, 0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None)
    mod.bind([('data', (5, 1, 8, 8))], for_training=False)
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    rng = np.random.default_rng(0)
    aux = {'bn_moving_mean': mx.nd.array(rng.random(4)),
           'bn_moving_var': mx.nd.array(rng.random(4) + 0.5)}
    net = Network(sym, arg, aux, output='logits')
    images = rng.random((5, 1, 8, 8)).astype(np.float32)
    labels = np.arange(5) % 3
    objective = A.Objective(net, loss='cw')
    value, grad = objective.value_and_grad(images, labels)
    value_again, grad_again = objective.value_and_grad(images, labels)
    # the gradient graph (global statistics, recorded in training mode) computes the inference
    # function: equal up to float32 round-off relative to the margins' scale
    assert_close_to_scale(value, objective.evaluate(images, labels)[0], 1e-5)
    np.testing.assert_array_equal(grad, grad_again)  # no dropout mask
    for block in (net.block, A.gradient_block(net, images.shape[1:])):
        params = block.collect_params()
        for name in aux:
            np.testing.assert_array_equal(params[name].data().asnumpy(), aux[name].asnumpy())


def test_large_eps_breaks_undefended_model(trained):
    x, y = trained['x'], trained['y']
    for cls in (A.BIM, A.PGD):
        x_adv, success = cls(trained['logits'], 0.5, steps=10, seed=0)(x, y)
        assert accuracy(trained['logits'], x_adv, y) <= 0.05
        assert success.mean() >= 0.95


def test_moderate_eps_lowers_accuracy(trained):
    x, y = trained['x'], trained['y']
    clean = accuracy(trained['logits'], x, y)
    robust = {}
    for cls in (A.FGSM, A.BIM, A.PGD):
        kwargs = {} if cls is A.FGSM else {'steps': 10}
        x_adv, _ = cls(trained['logits'], 0.1, seed=0, **kwargs)(x, y)
        robust[cls.name] = accuracy(trained['logits'], x_adv, y)
        assert robust[cls.name] < clean - 0.15
    assert robust['bim'] <= robust['fgsm'] and robust['pgd'] <= robust['fgsm']


def test_targeted_attacks_reach_the_target(trained):
    x, y = trained['x'], trained['y']
    target = A.random_targets(y, 10, seed=1)
    assert np.all(target != y)
    for cls in (A.FGSM, A.BIM, A.PGD, A.MIFGSM, A.CWLinf):
        kwargs = {} if cls is A.FGSM else {'steps': 10}
        x_adv, success = cls(trained['logits'], 0.2, targeted=True, seed=0, **kwargs)(x, target)
        pred = trained['logits'].predict(x_adv).argmax(axis=1)
        np.testing.assert_array_equal(success, pred == target)
        assert success.mean() > 0.15 if cls is A.FGSM else success.mean() > 0.4


def test_pgd_restarts_keep_per_sample_worst_case(trained):
    x, y = trained['x'], trained['y']
    once = A.PGD(trained['logits'], 0.08, steps=5, restarts=1, seed=3)
    many = A.PGD(trained['logits'], 0.08, steps=5, restarts=4, seed=3)
    _, success_once = once(x, y)
    x_many, success_many = many(x, y)
    assert 0 < success_once.mean() < 1  # a regime where restarts can matter
    assert np.all(success_many >= success_once)
    pred = trained['logits'].predict(x_many).argmax(axis=1)
    np.testing.assert_array_equal(success_many, pred != y)


def test_mifgsm_momentum_is_normalised_per_sample():
    rng = np.random.default_rng(0)
    grad = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    previous = rng.standard_normal((2, 1, 4, 4)).astype(np.float32)
    scaled = grad.copy()
    scaled[0] *= 1000.0
    out = A.momentum_update(previous, grad, 1.0)
    out_scaled = A.momentum_update(previous, scaled, 1.0)
    np.testing.assert_allclose(out_scaled[1], out[1], rtol=1e-6)  # other sample unchanged
    np.testing.assert_allclose(out_scaled[0], out[0], rtol=1e-5)  # scale-free per sample
    np.testing.assert_allclose(np.abs(out[1] - previous[1]).sum(), 1.0, rtol=1e-5)


def test_mifgsm_samples_do_not_interact(trained):
    x, y = trained['x'][:8], trained['y'][:8]
    attack = A.MIFGSM(trained['logits'], 0.15, steps=5)
    x_all, _ = attack(x, y)
    x_one, _ = attack(x[3:4], y[3:4])
    np.testing.assert_array_equal(x_all[3:4], x_one)


def test_run_attack_batches_like_one_call(trained):
    x, y = trained['x'][:50], trained['y'][:50]
    attack = A.BIM(trained['logits'], 0.1, steps=3)
    x_batched, s_batched = A.run_attack(attack, x, y, batch_size=16, progress=False)
    x_whole, s_whole = attack(x, y)
    np.testing.assert_array_equal(x_batched, x_whole)
    np.testing.assert_array_equal(s_batched, s_whole)


def test_feature_impersonation_lowers_distance_to_target(trained):
    net, x, y = trained['embedding'], trained['x'][:80], trained['y'][:80]
    order = np.argsort(y, kind='stable')
    partner = np.roll(order, 40)[np.argsort(order)]  # an image of (mostly) another class
    target = net.predict(x[partner])
    clean = sq_distance(net, x, target)
    threshold = 1.0
    settings = AttackSettings(steps=10, threshold=threshold, scenario='impersonation')
    for attack in (registry.build(name, net, 0.1, settings)
                   for name in ('fftgsm', 'iftgsm', 'miftgsm')):
        x_adv, success = attack(x, target)
        after = sq_distance(net, x_adv, target)
        assert after.mean() < clean.mean() - 0.1
        assert np.mean(after < clean) > 0.9
        np.testing.assert_array_equal(success, after < threshold)
    # target given as images gives the same attack as target embeddings
    three = settings.replace(steps=3)
    x_img, _ = registry.build('iftgsm', net, 0.1, three)(x, x[partner])
    x_emb, _ = registry.build('iftgsm', net, 0.1, three)(x, target)
    np.testing.assert_array_equal(x_img, x_emb)


def test_feature_dodging_raises_distance_from_own_embedding(trained):
    net, x, y = trained['embedding'], trained['x'][:80], trained['y'][:80]
    own = net.predict(x)
    threshold = 0.3
    # from the clean embedding itself (a zero-gradient minimum): PGD's random start
    x_adv, success = A.PGD(net, 0.1, steps=10, threshold=threshold, seed=0)(x)
    after = sq_distance(net, x_adv, own)
    assert after.mean() > 0.2 and np.mean(after > 0.05) > 0.95
    np.testing.assert_array_equal(success, after >= threshold)
    # from another image of the same class (a verification pair): BIM needs no random start
    partner = np.arange(len(y))
    for c in np.unique(y):
        partner[y == c] = np.roll(np.flatnonzero(y == c), 1)
    ref = net.predict(x[partner])
    x_adv, success = A.BIM(net, 0.1, steps=10, threshold=threshold)(x, ref)
    before, after = sq_distance(net, x, ref), sq_distance(net, x_adv, ref)
    assert np.mean(after > before) > 0.95 and after.mean() > before.mean() + 0.2
    np.testing.assert_array_equal(success, after >= threshold)


def test_bad_arguments_are_rejected(trained):
    with pytest.raises(ValueError, match='threshold'):
        A.PGD(trained['embedding'], 0.1)
    with pytest.raises(ValueError, match='loss'):
        A.CWLinf(trained['embedding'], 0.1, threshold=1.0)
    with pytest.raises(ValueError, match='fftgsm'):   # an embedding attack on logits
        registry.build('fftgsm', trained['logits'], 0.1, AttackSettings(threshold=1.0))
    with pytest.raises(ValueError, match='scenario'):
        registry.build('iftgsm', trained['embedding'], 0.1, AttackSettings(threshold=1.0))
    attack = registry.build('mifgsm', trained['logits'], 0.1,
                            AttackSettings(steps=3, mu=0.5, restarts=1))
    assert (attack.name, attack.steps, attack.mu, attack.step) == ('mifgsm', 3, 0.5, 0.1 / 3)
    pgd = registry.build('pgd', trained['logits'], 0.1, AttackSettings(steps=4))
    assert pgd.step == pytest.approx(2.5 * 0.1 / 4)       # the class's own step rule
    assert registry.build('fgsm', trained['logits'], 0.1, AttackSettings(steps=3)).name == 'fgsm'
    with pytest.raises(TypeError, match='bogus'):
        AttackSettings(bogus=1)
    with pytest.raises(ValueError, match='pixel_range'):
        A.FGSM(trained['logits'], 0.1)(trained['x'][:2] * 2, trained['y'][:2])


def table(values_by_attack, metric='robust_accuracy'):
    return {'metric': metric, 'eps': [0.1, 0.2, 0.3],
            'curves': [{'model': 'm', 'mode': 'white-box', 'attack': a, 'clean': 0.99,
                        'values': v} for a, v in values_by_attack.items()]}


def test_sanity_table_checks():
    good = table({'fgsm': [0.7, 0.5, 0.3], 'pgd': [0.6, 0.3, 0.1]})
    assert all(c.passed for c in sanity.run_table_checks(good))
    non_monotone = table({'fgsm': [0.7, 0.5, 0.3], 'pgd': [0.6, 0.1, 0.3]})
    failed = [c for c in sanity.run_table_checks(non_monotone) if not c.passed]
    assert [c.name for c in failed] == ['monotone in eps [m, white-box]']
    weak_iterative = table({'fgsm': [0.7, 0.5, 0.3], 'pgd': [0.6, 0.55, 0.1]})
    failed = [c for c in sanity.run_table_checks(weak_iterative) if not c.passed]
    assert [c.name for c in failed] == ['iterative >= one-step [m]']
    # hit rates go the other way: rising with eps is good
    hits = table({'fftgsm': [0.2, 0.5, 0.7], 'iftgsm': [0.4, 0.8, 1.0]}, 'hit_rate')
    assert all(c.passed for c in sanity.run_table_checks(hits))
    assert not sanity.check_large_eps('hit_rate', 0.5, 64, 'x').passed
    assert sanity.check_large_eps('robust_accuracy', 0.01, 1.0, 'x').passed
    assert not sanity.check_stronger_changes_little('robust_accuracy', 0.5, 0.4, 'x').passed
    assert sanity.check_stronger_changes_little('robust_accuracy', 0.5, 0.49, 'x').passed


def test_report_checks_is_loud_on_failure(capsys):
    ok = sanity.report_checks([('a', True, 'fine')])
    assert ok and 'FAILED' not in capsys.readouterr().err
    ok = sanity.report_checks([('a', True, 'fine'), ('b', False, 'broken')])
    err = capsys.readouterr().err
    assert not ok and 'SANITY CHECK FAILED: b' in err and 'broken' in err


def test_gradient_check_passes_and_catches_a_wrong_gradient(trained, monkeypatch):
    x, y = trained['x'][:32], trained['y'][:32]
    assert sanity.check_gradients(trained['logits'], x, y).passed
    assert sanity.check_gradients(trained['embedding'], x).passed
    # gradients of other weights than the ones evaluated: must be flagged
    shuffled = {k: mx.nd.array(np.random.default_rng(0).permutation(v.asnumpy().ravel())
                               .reshape(v.shape)) for k, v in trained['arg'].items()}
    other = Network(trained['sym'], shuffled, trained['aux'], output='logits')
    wrong = A.gradient_block(other, (1, 28, 28))
    monkeypatch.setattr(A, 'gradient_block', lambda model, shape: wrong)
    assert not sanity.check_gradients(trained['logits'], x, y).passed
