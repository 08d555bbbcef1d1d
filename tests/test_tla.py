"""TLA and Madry AT (src/tla.py, ad_tla.py): the triplet and its negatives against NumPy, the
training PGD, lambda 0 = plain adversarial cross-entropy, and short runs that reload."""
import logging
import re
import types

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_tla
import json
from data.mnist import load_mnist
from eval.model import Network
from src import args as flags
from src import tla
from src.fit import Trainer
from src.adversary import Adversary, CrossEntropy
from src.class_sampler import ClassBatchSampler
from symbols import get_embedding, heads
from tests.conftest import assert_close_to_scale, train_lenet_digits


def _args(**kw):
    base = dict(loss_type=0, margin_s=8.0, margin_m=0.3, easy_margin=0, fc7_wd_mult=1.0,
                label_smoothing=0.1, tla_lambda=0.7, margin=0.3, regularize_lambda=0.05,
                clean_positive=0, margin_mul=1.5)
    base.update(kw)
    return types.SimpleNamespace(**base)


def _forward(sym, **inputs):
    ex = sym.bind(mx.cpu(), {k: mx.nd.array(v) for k, v in inputs.items()})
    ex.forward(is_train=False)
    return [o.asnumpy() for o in ex.outputs]


def _abs_cos_distance(u, v):
    u = u / np.linalg.norm(u, axis=1, keepdims=True)
    v = v / np.linalg.norm(v, axis=1, keepdims=True)
    return 1 - np.abs((u * v).sum(1))


@pytest.mark.parametrize('clean_positive', [0, 1])
def test_tla_losses_match_numpy(clean_positive):
    rng = np.random.RandomState(clean_positive)
    s, d, k = 5, 6, 4
    parts = 4 if clean_positive else 3
    emb = rng.randn(parts * s, d)
    # row 0: p along a, n orthogonal (relu inactive); row 1: the other way round (active)
    emb[s], emb[2 * s] = 2 * emb[0], np.r_[-emb[0, 1], emb[0, 0], np.zeros(d - 2)]
    emb[s + 1], emb[2 * s + 1] = np.r_[-emb[1, 1], emb[1, 0], np.zeros(d - 2)], -emb[1]
    y = rng.randint(0, k, s)
    label = np.concatenate([y, y, (y + 1) % k] + ([y] if clean_positive else []))
    weight, bias = rng.randn(k, d), rng.randn(k)
    args = _args(clean_positive=clean_positive)
    sym = tla.train_symbol(mx.sym.Variable('data'), d, k, s, args)
    out = dict(zip(tla.OUTPUTS, _forward(sym, data=emb, softmax_label=label, fc7_weight=weight,
                                         fc7_bias=bias)))
    logits = emb[:s] @ weight.T + bias
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    ls = args.label_smoothing
    ce = -((1 - ls) * logp[np.arange(s), y] + ls / k * logp.sum(1)).mean()
    np.testing.assert_allclose(out['ce_loss'], [ce], rtol=1e-5)
    a, p, n = emb[:s], emb[s:2 * s], emb[2 * s:3 * s]
    d_ap, d_an = _abs_cos_distance(a, p), _abs_cos_distance(a, n)
    loss = np.maximum(d_ap - d_an + args.margin, 0).mean() + \
        args.regularize_lambda * np.mean(a ** 2 + p ** 2 + n ** 2)
    if clean_positive:
        c = emb[3 * s:]
        loss += np.maximum(_abs_cos_distance(a, c) - d_an + args.margin * args.margin_mul,
                           0).mean() + args.regularize_lambda * np.mean(a ** 2 + c ** 2 + n ** 2)
    hinge = np.maximum(d_ap - d_an + args.margin, 0)
    assert hinge[0] == 0 and hinge[1] > 1  # both relu regimes
    np.testing.assert_allclose(out['triplet_loss'], [args.tla_lambda * loss], rtol=1e-5)
    np.testing.assert_allclose(out['ap'], [d_ap.mean()], rtol=1e-5)
    np.testing.assert_allclose(out['an'], [d_an.mean()], rtol=1e-5)
    # |cos|: an anchor exactly opposite its positive is at distance 0, not 2
    assert _abs_cos_distance(a[:1], -a[:1])[0] == pytest.approx(0, abs=1e-12)


def test_hard_negative_is_the_most_similar_of_another_class():
    rng = np.random.RandomState(0)
    anchors, pool = rng.randn(30, 8), rng.randn(40, 8)
    labels, pool_labels = rng.randint(0, 4, 30), rng.randint(0, 4, 40)
    pool[:5] = anchors[:5] * 3.0          # each of the first 5 anchors has a same-class twin...
    pool_labels[:5] = labels[:5]          # ...that must never be picked
    neg = tla.hard_negatives(anchors, labels, pool, pool_labels)
    for i in range(30):
        assert pool_labels[neg[i]] != labels[i]
        others = np.flatnonzero(pool_labels != labels[i])
        sims = [np.dot(anchors[i], pool[j]) / np.linalg.norm(anchors[i]) / np.linalg.norm(pool[j])
                for j in others]
        assert neg[i] == others[int(np.argmax(sims))]
    # every other-class similarity negative: still another class (the original picked a
    # zeroed same-class entry here)
    far = tla.hard_negatives(np.ones((1, 2)), [0], np.array([[1.0, 1.0], [-1.0, -2.0]]), [0, 1])
    assert far.tolist() == [1]
    # --random-negative: a plain random batch of any class, as the original's random_negative
    assert tla.random_negatives(30, 40, np.random.RandomState(1)).tolist() == list(range(30))
    fewer = tla.random_negatives(30, 7, np.random.RandomState(1))
    assert len(fewer) == 30 and fewer.min() >= 0 and fewer.max() < 7
    with pytest.raises(ValueError, match='no image of another class than anchor 0'):
        tla.hard_negatives(anchors[:2], [1, 2], pool[:3], [1, 1, 1])


def _cross_entropy(net, x, y):
    logits = net.predict(x).astype(np.float64)
    logits -= logits.max(1, keepdims=True)
    return np.log(np.exp(logits).sum(1)) - logits[np.arange(len(y)), y]


@pytest.fixture(scope='module')
def lenet():
    return train_lenet_digits(epochs=2, seed=0)


@pytest.mark.parametrize('contexts', [[mx.cpu(0)], [mx.cpu(1), mx.cpu(2)]])
def test_training_pgd_stays_in_the_ball_and_raises_the_cross_entropy(contexts, lenet):
    sym, arg, aux, data = lenet
    emb, d = get_embedding('l', adversary=True)
    objective = CrossEntropy(lambda e: heads.logits(e, 10, d, 0), 10)
    eps = 0.1
    adv = Adversary(emb, d, objective, contexts, 8 // len(contexts), (1, 28, 28), step=0.02,
                    steps=8, eps=eps, random_start=True, rng=np.random.RandomState(0))
    adv.set_params(arg, aux)
    x, y = data.test_x[:8], data.test_y[:8]
    x_adv, stats = adv.attack(x, attack_label=y)
    assert stats.rounds == 8 and stats.last_max is None  # PGD never stops early
    assert np.abs(x_adv - x).max() <= eps + 1e-6 and x_adv.min() >= 0 and x_adv.max() <= 1
    assert np.abs(x_adv - x).max() > eps - 1e-3          # the ball binds
    net = Network(sym, arg, aux, output='logits')
    before, after = _cross_entropy(net, x, y), _cross_entropy(net, x_adv, y)
    assert after.mean() > before.mean() + 0.5 and np.mean(after > before) >= 0.75


def test_lambda_zero_is_exactly_the_gradient_of_the_adversarial_cross_entropy():
    emb, d = get_embedding('s5')
    args = _args(tla_lambda=0.0, label_smoothing=0.1)
    sym = tla.train_symbol(emb, d, 10, 6, args)
    rng = np.random.RandomState(2)
    x, y = rng.rand(6, 1, 28, 28).astype(np.float32), rng.randint(0, 10, 6)
    logits = heads.logits(emb, 10, d, 0, label=mx.sym.Variable('softmax_label'))
    reference = mx.sym.MakeLoss(mx.sym.mean(-(0.9 * mx.sym.pick(mx.sym.log_softmax(logits),
                                                              mx.sym.Variable('softmax_label'),
                                                              axis=1)
                                               + 0.01 * mx.sym.sum(mx.sym.log_softmax(logits),
                                                                   axis=1))))
    grads = []
    for s in (sym, reference):
        mod = mx.mod.Module(s, data_names=['data'], label_names=['softmax_label'])
        mod.bind([('data', x.shape)], [('softmax_label', y.shape)])
        mx.random.seed(7)
        mod.init_params(mx.init.Xavier(magnitude=2))
        mod.forward_backward(mx.io.DataBatch([mx.nd.array(x)], [mx.nd.array(y)]))
        group = mod._exec_group  # pylint: disable=protected-access
        grads.append({n: g[0].asnumpy() for n, g in zip(group.param_names, group.grad_arrays)})
    assert set(grads[0]) == set(grads[1])
    for name in grads[1]:
        assert_close_to_scale(grads[0][name], grads[1][name], 1e-6)


def test_sampler_positives_pool_and_epoch():
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(5), 8)
    images = np.arange(40, dtype=np.uint8)[:, None, None, None] * np.ones((1, 1, 2, 2), np.uint8)
    sampler = ClassBatchSampler(images, labels, batch=10, pool_size=7, rng=rng)
    batches = list(sampler)
    assert len(batches) == sampler.batches_per_epoch == 4
    seen = []
    for x, y, pos, pool, pool_y in batches:
        assert x.dtype == np.float32 and x.shape == (10, 1, 2, 2)
        index = x[:, 0, 0, 0].astype(int)
        assert (labels[index] == y).all()
        pos_index = pos[:, 0, 0, 0].astype(int)
        assert (labels[pos_index] == y).all() and (pos_index != index).all()
        assert pool.shape == (7, 1, 2, 2) and (labels[pool[:, 0, 0, 0].astype(int)] == pool_y).all()
        seen += index.tolist()
    assert sorted(seen) == list(range(40))  # one pass over the set


TINY = ['--network', 's5', '--num-steps', '3', '--step-size', '0.05', '--epsilon', '0.1',
        '--num-test', '120', '--seed', '3', '--lr', '0.001', '--verbose', '2', '--max-steps', '3']


@pytest.mark.parametrize('ctx,adv_ctx,extra', [(1, 1, []), (2, 2, ['--random-negative']),
                                                 (1, 1, ['--method', 'at'])])
def test_short_run_writes_a_checkpoint_that_reloads(tmp_path, caplog, digits_idx_dir, ctx,
                                                    adv_ctx, extra):
    prefix = str(tmp_path / 'model')
    caplog.set_level(logging.INFO)
    ad_tla.main(TINY + extra + ['--data-dir', str(digits_idx_dir), '--prefix', prefix,
                                '--ctx-num', str(ctx), '--ctx-adv-num', str(adv_ctx),
                                '--batch-size', '8', '--pool-size', '20'])
    assert re.findall(r'Batch\[\d+\] step (\d+)', caplog.text) == ['1', '2', '3']
    assert set(re.findall(r'rounds=([0-9.]+)', caplog.text)) == {'3.0'}
    parts = 1 if extra == ['--method', 'at'] else 3
    assert 'main batch %d (%d parts)' % (8 * parts, parts) in caplog.text
    triplet = [float(v) for v in re.findall(r'advloss=([0-9.]+)', caplog.text)]
    assert (max(triplet) == 0) == (parts == 1)  # AT has no triplet
    accs = [float(x) for x in re.findall(r'Val-Accuracy: ([0-9.]+)', caplog.text)]
    assert len(accs) == 2
    data = load_mnist(str(digits_idx_dir))
    pred = Network.load(prefix + ',0', output='logits').predict(data.test_x[:120]).argmax(1)
    assert np.mean(pred == data.test_y[:120]) == pytest.approx(accs[-1], abs=1e-5)


def test_at_contradicting_lambda_is_refused_when_parsed(tmp_path, capsys):
    with pytest.raises(SystemExit):  # before any data is read: the folder does not exist
        ad_tla.main(['--method', 'at', '--lambda', '0.5', '--data-dir', str(tmp_path / 'none'),
                     '--prefix', str(tmp_path / 'm')])
    assert 'contradicts --lambda 0.5' in capsys.readouterr().err


def test_a_few_batches_on_cifar10_files(tmp_path, monkeypatch, caplog):
    """--dataset cifar10 end to end on small synthetic files in the official binary layout (20
    records per file instead of 10000; a small network instead of the 46M-parameter wrn): pixels
    in [0, 255], eps 8, TLA's CIFAR-10 settings otherwise (4 parts: the clean positive)."""
    import functools
    from data import cifar10
    rng = np.random.RandomState(0)
    labels = np.arange(120) % 10
    pattern = rng.randint(0, 256, (10, 3, 32, 32))
    images = np.clip(pattern[labels] + rng.randint(-30, 30, (120, 3, 32, 32)), 0, 255)
    cifar10.write_cifar10_binary(str(tmp_path / 'c10'), (images[:100].astype(np.uint8),
                                                         labels[:100]),
                                 (images[100:].astype(np.uint8), labels[100:]), records=20)
    monkeypatch.setattr(cifar10, 'load_cifar10', functools.partial(cifar10.load_cifar10,
                                                                   records=20))
    caplog.set_level(logging.INFO)
    ad_tla.main(['--dataset', 'cifar10', '--data-dir', str(tmp_path / 'c10'), '--network', 's5',
                 '--batch-size', '4', '--pool-size', '8', '--num-steps', '2', '--max-steps', '2',
                 '--verbose', '2', '--seed', '1', '--prefix', str(tmp_path / 'm')])
    assert "'epsilon': 8.0" in caplog.text and "'clean_positive': 1" in caplog.text
    assert 'main batch 16 (4 parts)' in caplog.text and "'augment': 1" in caplog.text
    assert re.findall(r'Batch\[\d+\] step (\d+)', caplog.text) == ['1', '2']
    acc = float(re.findall(r'Val-Accuracy: ([0-9.]+) \(20 test images\)', caplog.text)[-1])
    net = Network.load(str(tmp_path / 'm') + ',0', output='logits')
    pred = net.predict(images[100:].astype(np.float32)).argmax(1)
    assert np.mean(pred == labels[100:]) == pytest.approx(acc, abs=1e-5)


def _preset(kind, method, argv=()):
    args = ad_tla.parse_args(list(argv) + ['--method', method])
    return flags.apply_tla_preset(args, kind)


def test_presets_per_method():
    """TLA's configs per kind of data; Madry AT without label smoothing and, on CIFAR-10, with
    Madry's released recipe; every preset carries its step budget; a flag given wins."""
    tla_mnist, at_mnist = _preset('mnist', 'tla'), _preset('mnist', 'at')
    assert tla_mnist.label_smoothing == 0.1 and at_mnist.label_smoothing == 0.0
    assert tla_mnist.max_steps == at_mnist.max_steps == 600000
    assert tla_mnist.batch_size == at_mnist.batch_size == 50
    tla_c, at_c = _preset('cifar10', 'tla'), _preset('cifar10', 'at')
    assert (tla_c.batch_size, tla_c.num_steps, tla_c.lr_steps) == (50, 7, [50000, 60000])
    assert (at_c.batch_size, at_c.num_steps, at_c.lr_steps) == (128, 10, [40000, 60000])
    assert tla_c.max_steps == at_c.max_steps == 80000 and at_c.label_smoothing == 0.0
    assert at_c.tla_lambda == 0 and at_c.pool_size == 0
    mine = _preset('cifar10', 'at', ['--batch-size', '64', '--max-steps', '0',
                                     '--label-smoothing', '0.2'])
    assert (mine.batch_size, mine.max_steps, mine.label_smoothing) == (64, 0, 0.2)
    assert 'CIFAR-10 50 (--method at: 128)' in ' '.join(
        a.help for a in ad_tla_parser()._actions if a.dest == 'batch_size')


def ad_tla_parser():
    import argparse
    parser = argparse.ArgumentParser()
    flags.add_tla_args(parser)
    return parser


def test_a_default_run_stops_at_the_presets_budget(tmp_path, caplog, digits_idx_dir,
                                                   monkeypatch):
    monkeypatch.setitem(flags.TLA_PRESETS['mnist'], 'max_steps', 2)
    caplog.set_level(logging.INFO)
    argv = TINY[:TINY.index('--max-steps')] + TINY[TINY.index('--max-steps') + 2:]
    ad_tla.main(argv + ['--data-dir', str(digits_idx_dir), '--prefix', str(tmp_path / 'm'),
                        '--batch-size', '8', '--pool-size', '20'])
    assert re.findall(r'Batch\[\d+\] step (\d+)', caplog.text) == ['1', '2']
    assert 'finished after 2 batches' in caplog.text


def test_cifar_crops_pad_two_pixels_per_side():
    """Madry's and TLA's input: pad to 36x36, random 32x32 crop, random flip. Every crop is a
    window of the padded image at offsets 0..4, and all of them occur."""
    from src.class_sampler import augment_batch
    image = np.arange(3 * 32 * 32, dtype=np.float32).reshape(1, 3, 32, 32) + 1
    padded = np.pad(image[0], ((0, 0), (2, 2), (2, 2)))
    rng = np.random.RandomState(0)
    offsets = set()
    for _ in range(300):
        out = augment_batch(image, rng)[0]
        found = [(t, l) for t in range(5) for l in range(5)
                 if np.array_equal(out, padded[:, t:t + 32, l:l + 32]) or
                 np.array_equal(out, padded[:, t:t + 32, l:l + 32][..., ::-1])]
        assert len(found) == 1
        offsets.add(found[0])
    assert offsets == {(t, l) for t in range(5) for l in range(5)}


@pytest.mark.parametrize('pixel_max,eps', [(255.0, 8.0), (1.0, 0.3)])
def test_clean_positive_noise_is_within_eps_on_the_pixel_grid(pixel_max, eps):
    rng = np.random.RandomState(0)
    x = np.round(rng.rand(20, 3, 8, 8) * 255) / 255 * pixel_max
    noisy = tla.noisy_positive(x.astype(np.float32), eps, pixel_max, np.random.RandomState(1))
    grid = noisy * 255.0 / pixel_max
    np.testing.assert_allclose(grid, np.round(grid), atol=1e-3)     # the 0-255 integer grid
    assert noisy.min() >= 0 and noisy.max() <= pixel_max
    assert np.abs(noisy - x).max() <= eps + 0.5 * pixel_max / 255 + 1e-6
    assert np.abs(noisy - x).max() > 0.5 * eps                          # noise was added


def test_at_attacks_in_training_mode_and_tla_in_inference_mode(tmp_path, digits_idx_dir):
    """On the same batch: AT's PGD runs on batch statistics and updates the moving averages,
    which the main network takes over; TLA's runs on the moving statistics and leaves them."""
    moved = {}
    for method in ('at', 'tla'):
        args = ad_tla.parse_args(TINY + ['--method', method, '--data-dir', str(digits_idx_dir),
                                         '--prefix', str(tmp_path / method),
                                         '--batch-size', '8', '--pool-size', '20'])
        flags.apply_tla_preset(args, 'mnist')
        trainer = Trainer(args, tla.Tla(args, np.random.RandomState(0)), (1, 28, 28), 10,
                          (0.0, 1.0), evaluate=None)
        adversary = trainer.adversary
        bn_nodes = [n for n in json.loads(adversary.execs[0]._symbol.tojson())['nodes']
                    if n['op'] == 'BatchNorm']
        assert bn_nodes and all(n['attrs'].get('use_global_stats', 'False') ==
                                ('False' if method == 'at' else 'True') for n in bn_nodes)
        adversary.sync_from(trainer.module)
        before = {k: v.asnumpy().copy() for k, v in adversary.execs[0].aux_dict.items()}
        rng = np.random.RandomState(5)
        x, y = rng.rand(8, 1, 28, 28).astype(np.float32), rng.randint(0, 10, 8)
        adversary.attack(x, attack_label=y)
        after = {k: v.asnumpy() for k, v in adversary.execs[0].aux_dict.items()}
        moved[method] = max(np.abs(after[k] - before[k]).max() for k in before)
        if method == 'at':
            adversary.write_back(trainer.module)
            group = trainer.module._exec_group  # pylint: disable=protected-access
            main_aux = dict(zip(group.aux_names, group.aux_arrays))
            for name, value in after.items():
                np.testing.assert_allclose(main_aux[name][0].asnumpy(), value, rtol=1e-6)
    assert moved['at'] > 1e-3 and moved['tla'] == 0
