"""The attack round: it lowers the feature distance, stays in the eps ball and pixel range,
stops early at the threshold, and runs on the training network's weights; eps None is no ball,
eps 0 no perturbation at all."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from src.adversary import Adversary, FeatureDistance
from symbols import get_embedding
from symbols.heads import inference_symbol
from eval.model import Network


def _params(network='s5', seed=0):
    mx.random.seed(seed)
    emb, d = get_embedding(network)
    mod = mx.mod.Module(emb, data_names=['data'], label_names=None, context=mx.cpu())
    mod.bind([('data', (8, 1, 28, 28))], for_training=True)
    mod.init_params(mx.init.Xavier(magnitude=2))
    # a few training-mode forwards give the batch-norm moving statistics realistic values
    rng = np.random.RandomState(seed)
    for _ in range(3):
        mod.forward(mx.io.DataBatch([mx.nd.array(rng.rand(8, 1, 28, 28))]), is_train=True)
    arg, aux = mod.get_params()
    return arg, aux, d


def _adversary(contexts, per_ctx, steps, thd, eps, step, network='s5', **kw):
    arg, aux, d = _params(network)
    emb, _ = get_embedding(network, adversary=True)
    adv = Adversary(emb, d, FeatureDistance(thd), contexts, per_ctx, (1, 28, 28), step=step,
                    steps=steps, eps=eps, **kw)
    adv.set_params(arg, aux)
    return adv, arg, aux


def _attack(adv, src, tar):
    return adv.attack(src, target_emb=adv.embed(tar))


def _cos_dist(net, x, t):
    a, b = net.predict(x), net.predict(t)
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    b /= np.linalg.norm(b, axis=1, keepdims=True)
    return 1 - (a * b).sum(1)


@pytest.fixture(scope='module')
def pair():
    rng = np.random.RandomState(1)
    src = rng.rand(8, 1, 28, 28).astype(np.float32)
    tar = rng.rand(8, 1, 28, 28).astype(np.float32)
    return src, tar


def test_one_step_lowers_distance_to_targets(pair):
    src, tar = pair
    adv, arg, aux = _adversary([mx.cpu(0)], 8, steps=1, thd=-1, eps=None, step=0.02)
    x, stats = _attack(adv, src, tar)
    assert stats.rounds == 1
    emb, _ = get_embedding('s5')
    net = Network(emb, arg, aux)  # the training network in inference mode
    before, after = _cos_dist(net, src, tar), _cos_dist(net, x, tar)
    # the adversary's executor and the inference network are two float32 paths: distances
    # (in [0, 2]) agree to round-off
    assert abs(before.mean() - stats.first_mean) < 1e-4
    assert after.mean() < before.mean()
    assert np.abs(x - src).max() == pytest.approx(0.02, abs=1e-6)
    assert x.min() >= 0.0 and x.max() <= 1.0  # no ball: the pixel range still holds


@pytest.mark.parametrize('contexts', [[mx.cpu(0)], [mx.cpu(1), mx.cpu(2)]])
def test_steps_stay_in_eps_ball_and_pixel_range(pair, contexts):
    src, tar = pair
    eps, step, steps = 0.05, 0.02, 6
    adv, arg, aux = _adversary(contexts, 8 // len(contexts), steps=steps, thd=-1, eps=eps,
                               step=step)
    x, stats = _attack(adv, src, tar)
    assert stats.rounds == steps
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert np.abs(x - src).max() <= eps + 1e-6
    # the ball binds: without it, 6 steps of 0.02 would move pixels up to 0.12
    assert np.abs(x - src).max() > eps - 1e-3
    emb, _ = get_embedding('s5')
    net = Network(emb, arg, aux)
    assert _cos_dist(net, x, tar).mean() < _cos_dist(net, src, tar).mean()


def test_early_stop_at_threshold(pair):
    src, tar = pair
    adv, _, _ = _adversary([mx.cpu(0)], 8, steps=10, thd=10.0, eps=None, step=0.01)
    _, stats = _attack(adv, src, tar)
    assert stats.rounds == 1  # the first step is always taken, then max d <= thd stops it
    adv.objective.thd = -1.0
    _, stats = _attack(adv, src, tar)
    assert stats.rounds == 10
    # thd = the max distance after exactly 3 steps, as the adversary itself measures it (the
    # check before a 4th step): the attack must stop right there
    adv.steps, adv.objective.thd = 3, -1.0
    x3, _ = _attack(adv, src, tar)
    adv.steps = 4
    _, stats4 = _attack(adv, src, tar)
    assert stats4.rounds == 4
    adv.steps, adv.objective.thd = 10, stats4.last_max
    x, stats = _attack(adv, src, tar)
    assert stats.rounds == 3 and stats.last_max <= adv.objective.thd
    np.testing.assert_array_equal(x, x3)


def test_sync_from_copies_main_weights():
    """The adversary runs the main module's current weights, batch-norm on moving statistics."""
    emb, d = get_embedding('s5')
    sym = inference_symbol(emb, 10, d, 0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None,
                        context=[mx.cpu(0), mx.cpu(1)])
    mod.bind([('data', (8, 1, 28, 28))], for_training=True)
    mod.init_params(mx.init.Xavier(magnitude=2))
    rng = np.random.RandomState(3)
    mod.forward(mx.io.DataBatch([mx.nd.array(rng.rand(8, 1, 28, 28))]), is_train=True)
    adv_emb, _ = get_embedding('s5', adversary=True)
    adv = Adversary(adv_emb, d, FeatureDistance(0), [mx.cpu(2)], 4, (1, 28, 28), step=0.01,
                    steps=1)
    adv.sync_from(mod)
    x = rng.rand(7, 1, 28, 28).astype(np.float32)   # two chunks, the last one padded
    got = adv.embed(x)
    arg, aux = mod.get_params()
    want = Network(sym, arg, aux).predict(x)
    want /= np.linalg.norm(want, axis=1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_wrong_number_of_images_is_an_error(pair):
    adv, _, _ = _adversary([mx.cpu(0)], 4, steps=1, thd=0, eps=None, step=0.01)
    with pytest.raises(ValueError, match='expects 4 images'):
        _attack(adv, *pair)


def test_eps_zero_is_no_perturbation_and_none_is_no_ball(pair):
    """eps 0 used to read as "no ball": a zero ball now leaves every pixel where it is, random
    start included; eps None is the explicit "no ball, only the pixel range"."""
    src, tar = pair
    still, _, _ = _adversary([mx.cpu(0)], 8, steps=10, thd=-1, eps=0, step=0.05,
                             random_start=True, rng=np.random.RandomState(0))
    x, stats = _attack(still, src, tar)
    np.testing.assert_array_equal(x, src)
    assert stats.rounds == 0
    free, _, _ = _adversary([mx.cpu(0)], 8, steps=10, thd=-1, eps=None, step=0.05)
    x, stats = _attack(free, src, tar)
    assert stats.rounds == 10 and np.abs(x - src).max() > 0.3  # 10 steps of 0.05: no ball
    assert x.min() >= 0.0 and x.max() <= 1.0


@pytest.mark.parametrize('kw, message', [
    (dict(eps=None, random_start=True), 'a random start needs an L-inf ball'),
    (dict(eps=-0.1), 'eps must be >= 0'),
    (dict(eps=0.1, steps=0), 'at least one step'),
])
def test_bad_attack_settings_are_refused(kw, message):
    emb, d = get_embedding('s5', adversary=True)
    settings = dict(step=0.01, steps=1)
    settings.update(kw)
    with pytest.raises(ValueError, match=message):
        Adversary(emb, d, FeatureDistance(0), [mx.cpu(0)], 2, (1, 28, 28), **settings)
