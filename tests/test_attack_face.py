"""eval/attack_face.py: hit rates of feature-level attacks on a face model (random-weights r18,
64-d embedding, 32x32 synthetic faces from data/synthetic.py)."""
import json

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from data.synthetic import make_synthetic
from eval import attack_face as AF
from eval import report
from eval.cal_threshold import calibrate, load_threshold
from eval.cal_threshold import main as cal_threshold_main
from eval.model import Network
from eval.bin_sets import load_target
from src.checkpoint import save_checkpoint
from symbols import get_embedding
from symbols.heads import inference_symbol

SIZE = (32, 32)


@pytest.fixture(scope='module')
def face(tmp_path_factory):
    root = tmp_path_factory.mktemp('attack_face')
    data_dir = root / 'data'
    make_synthetic(str(data_dir), num_ids=8, per_id=3, image_size=SIZE, num_pairs=40, seed=0)
    emb, size = get_embedding('r18', emb_size=64)
    sym = inference_symbol(emb, 8, size, 4)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None, context=mx.cpu())
    mod.bind([('data', (2, 3) + SIZE)], for_training=False)
    mx.random.seed(0)
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    prefix = str(root / 'r18')
    save_checkpoint(prefix, 1, sym, arg, aux)
    images, issame = load_target(str(data_dir / 'lfw.bin'))
    return {'root': root, 'data_dir': str(data_dir), 'spec': prefix + ',1',
            'net': Network.load(prefix + ',1', output='embedding'),
            'images': images, 'issame': issame}


@pytest.fixture(scope='module')
def threshold_json(face):
    path = str(face['root'] / 'thr.json')
    cal_threshold_main(['--model', face['spec'], '--data-dir', face['data_dir'], '--target',
                        'lfw', '--out', path])
    return path


def scenario_data(face, mode, num_pairs, threshold=1.0):
    sc = AF.scenario(face['net'], face['images'], face['issame'], threshold, mode, num_pairs)
    pairs = AF.select_pairs(face['issame'], mode, num_pairs)
    np.testing.assert_array_equal(sc.pairs, pairs)
    np.testing.assert_array_equal(sc.first, face['images'][2 * pairs])
    np.testing.assert_allclose(sc.ref, AF.embed(face['net'], face['images'][2 * pairs + 1]))
    np.testing.assert_allclose(sc.clean_dist, AF.distances(AF.embed(face['net'], sc.first),
                                                           sc.ref))
    return sc


def steps(n, **more):
    return AF.HitRateSettings.attack.replace(steps=n, **more)


def test_pairs_of_each_scenario(face):
    issame = face['issame']
    imp = AF.select_pairs(issame, 'impersonation', 5)
    dod = AF.select_pairs(issame, 'dodging', 0)
    assert len(imp) == 5 and not issame[imp].any()
    assert np.all(np.diff(imp) > 0) and imp[0] == np.flatnonzero(~issame)[0]
    assert len(dod) == issame.sum() and issame[dod].all()
    # the clean distances separate the scenarios' pairs on average (the model is usable)
    assert scenario_data(face, 'dodging', 0).clean_dist.mean() < scenario_data(
        face, 'impersonation', 0).clean_dist.mean()


def test_impersonation_respects_eps_and_moves_toward_target(face, threshold_json):
    threshold = load_threshold(threshold_json)
    sc = scenario_data(face, 'impersonation', 6, threshold)
    ref, clean = sc.ref, sc.clean_dist
    x = AF.to_nchw(sc.first).astype(np.float64)
    mean_dist = {}
    for eps in (2.0, 16.0):
        for name in ('fftgsm', 'iftgsm'):
            attack = AF.make_attack(name, face['net'], eps, sc, steps(3))
            out = AF.attack_pairs(attack, face['net'], sc, batch_size=4, keep_images=True)
            x_adv = out['x_adv']
            assert x_adv.shape == x.shape
            assert np.max(np.abs(x_adv - x)) <= eps
            assert x_adv.min() >= 0 and x_adv.max() <= 255
            # the reported distance is the returned image's (distances are in [0, 4]; the
            # embeddings are recomputed through the same batch size)
            np.testing.assert_allclose(
                out['dist'], AF.distances(face['net'].predict(x_adv, batch_size=4), ref),
                atol=1e-4)
            np.testing.assert_array_equal(out['hit'], out['dist'] < threshold)
            mean_dist[name, eps] = out['dist'].mean()
            assert out['dist'].mean() < clean.mean()
    assert mean_dist['iftgsm', 16.0] < mean_dist['iftgsm', 2.0]

    results = AF.evaluate_hit_rate(face['net'], face['images'], face['issame'], threshold,
                                   AF.HitRateSettings(
                                       attacks=('fftgsm', 'iftgsm'), eps=(1, 16), num_pairs=6,
                                       attack=steps(3), progress=False,
                                       sanity=AF.SanitySettings(enabled=False)))
    assert results['metric'] == 'hit_rate' and results['eps'] == [1.0, 16.0]
    clean_rate = np.mean(clean < threshold)
    by_attack = {c['attack']: c for c in results['curves']}
    assert set(by_attack) == {'fftgsm', 'iftgsm', 'worst-case'}
    for curve in by_attack.values():
        assert curve['clean'] == pytest.approx(clean_rate)
        assert curve['values'][1] >= curve['values'][0] >= curve['clean']
    assert by_attack['iftgsm']['values'][1] > clean_rate  # the large eps does hit
    iftgsm = by_attack['iftgsm']['params']
    assert iftgsm['mean_distance'][1] < iftgsm['clean_mean_distance']
    assert iftgsm['steps'] == 3 and iftgsm['targeted'] is True
    worst = by_attack['worst-case']['values']
    assert all(w >= max(by_attack['fftgsm']['values'][i], by_attack['iftgsm']['values'][i])
               for i, w in enumerate(worst))


def test_dodging_moves_away_from_partner(face, threshold_json):
    threshold = load_threshold(threshold_json)
    sc = scenario_data(face, 'dodging', 6, threshold)
    clean = sc.clean_dist
    attack = AF.make_attack('iftgsm', face['net'], 8.0, sc, steps(3))
    assert attack.targeted is False
    out = AF.attack_pairs(attack, face['net'], sc, batch_size=8)
    assert out['dist'].mean() > clean.mean()
    assert np.mean(out['dist'] > clean) > 0.8
    np.testing.assert_array_equal(out['hit'], out['dist'] >= threshold)


def test_min_eps_search_finds_the_smallest_hitting_eps(face, threshold_json):
    threshold = load_threshold(threshold_json)
    sc = scenario_data(face, 'impersonation', 4, threshold)
    clean = sc.clean_dist
    max_eps, iterations = 16.0, 3
    values = AF.min_eps_search(face['net'], sc, AF.MinEpsSettings(True, 'iftgsm', max_eps,
                                                                  iterations),
                               steps(3), batch_size=4, progress=False)
    resolution = max_eps / 2 ** iterations
    assert np.all(values[clean < threshold] == 0)
    found = np.isfinite(values) & (values > 0)
    assert found.any()
    for i in np.flatnonzero(found):
        assert values[i] % resolution == 0 and values[i] <= max_eps
        # the final bisection interval is (values[i] - resolution, values[i]]: its upper end
        # hit, its lower end (if > 0) was tried and missed; the attack is deterministic
        for eps, expected in ((values[i], True), (values[i] - resolution, False)):
            if eps <= 0:
                continue
            attack = AF.make_attack('iftgsm', face['net'], eps, sc, steps(3))
            hit = AF.attack_pairs(attack, face['net'], sc.subset([i]))['hit'][0]
            assert hit == expected, (i, eps)
    summary = AF.summarize_min_eps(values, max_eps, iterations, grid=[2.0, 8.0])
    assert summary['resolution'] == resolution
    assert sum(summary['histogram']['counts']) + summary['histogram']['not_found'] == len(values)
    cdf = dict(zip(summary['cdf']['eps'], summary['cdf']['fraction']))
    assert cdf[8.0] == pytest.approx(np.mean(values <= 8.0))
    second = np.sort(values)[1]  # 4 values: the median is the 2nd smallest (no interpolation)
    assert summary['median'] == (float(second) if np.isfinite(second) else None)


def test_cli_writes_consistent_report(face, threshold_json, tmp_path):
    out = tmp_path / 'out'
    results = AF.run(AF.parse_args(['--model', face['spec'], '--data-dir', face['data_dir'], '--target',
                       'lfw', '--threshold-json', threshold_json, '--mode', 'both',
                       '--attacks', 'fftgsm,iftgsm', '--eps', '2,8', '--steps', '2',
                       '--num-pairs', '4', '--batch-size', '8', '--min-eps',
                       '--min-eps-steps', '2', '--no-progress', '--out-dir', str(out)]))
    saved = json.loads((out / 'results.json').read_text())
    assert saved['threshold'] == load_threshold(threshold_json) == results['threshold']
    assert saved['settings']['threshold_info']['source'] == threshold_json
    assert saved['settings']['image_size'] == list(SIZE)
    assert set(saved['scenarios']) == {'impersonation', 'dodging'}
    assert all(s['num_pairs'] == 4 for s in saved['scenarios'].values())
    assert set(saved['min_eps']) == {'impersonation', 'dodging'}
    rows = report.parse_table((out / 'results.md').read_text())
    assert len(rows) == len(saved['curves']) == 6  # 2 scenarios x (2 attacks + worst case)
    for row, curve in zip(rows, saved['curves']):
        assert row['model'].endswith(curve['params']['scenario'])
        assert row['attack'] == curve['attack']
        assert row['clean'] == report.percent(curve['clean'])
        assert [row['eps=2'], row['eps=8']] == [report.percent(v) for v in curve['values']]
        scenario = saved['scenarios'][curve['params']['scenario']]
        assert curve['clean'] == scenario['clean_hit_rate']
    names = [c['name'] for c in saved['checks']]
    assert any(n.startswith('monotone in eps') for n in names)
    assert any(n.startswith('iterative >= one-step') for n in names)
    assert any(n.startswith('gradients finite') for n in names)
    large = [c for c in saved['checks'] if c['name'].startswith('large eps')]
    assert len(large) == 2 and all(c['passed'] for c in large)  # an undefended model falls
    markdown = (out / 'results.md').read_text()
    assert all(c['name'] in markdown for c in saved['checks'])
    for png in ('hit_rate.png', 'min_eps.png'):
        assert (out / png).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_threshold_calibrated_on_the_fly_matches_cal_threshold(face, capsys):
    args = AF.parse_args(['--model', face['spec'], '--data-dir', face['data_dir']])
    threshold, info = AF.resolve_threshold(args, face['net'], face['images'], face['issame'])
    record = calibrate(face['net'], face['images'], face['issame'], 16, far_target=1e-3)
    assert threshold == pytest.approx(record['threshold'], abs=1e-6)
    assert 'SAME' in capsys.readouterr().err and info['far'] == 1e-3


def test_bad_inputs_are_clear_errors(face, tmp_path, capsys):
    assert AF.main(['--model', face['spec'], '--data-dir', str(tmp_path), '--threshold',
                    '1']) == 2
    err = capsys.readouterr().err
    assert 'lfw.bin' in err and 'Traceback' not in err
    bad = tmp_path / 'thr.json'
    bad.write_text('{"far": 0.001}')
    assert AF.main(['--model', face['spec'], '--data-dir', face['data_dir'],
                    '--threshold-json', str(bad)]) == 2
    assert 'thr.json' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        AF.parse_args(['--model', face['spec'], '--data-dir', '.', '--attacks', 'pgd'])
    with pytest.raises(ValueError, match='no dodging pairs'):
        AF.evaluate_hit_rate(face['net'], face['images'][:4], np.zeros(2, bool), 1.0,
                             AF.HitRateSettings(mode='dodging', progress=False))


def test_a_one_channel_model_on_rgb_pairs_names_the_channels(face, tmp_path, capsys):
    """issue 18.13: the mismatch is named (not advice to resize, repeated when followed)."""
    from symbols.common import name_embedding
    x = mx.sym.Convolution(mx.sym.var('data'), num_filter=4, kernel=(3, 3), pad=(1, 1),
                           name='conv0')
    sym = name_embedding(mx.sym.FullyConnected(x, num_hidden=8, name='pre_fc1'))
    shapes, _, _ = sym.infer_shape(data=(1, 1) + SIZE)
    rng = np.random.default_rng(0)
    arg = {n: mx.nd.array(rng.normal(0, 0.1, s)) for n, s in zip(sym.list_arguments(), shapes)
           if n != 'data'}
    save_checkpoint(str(tmp_path / 'gray'), 1, sym, arg, {})
    for extra in ([], ['--image-size', '%d,%d' % SIZE]):
        code = AF.main(['--model', str(tmp_path / 'gray') + ',1', '--data-dir',
                        face['data_dir'], '--threshold', '1', '--no-progress'] + extra)
        err = capsys.readouterr().err
        assert code == 2 and 'Traceback' not in err
        assert 'lfw.bin holds 3-channel images but the model takes 1-channel ones' in err
        assert 'pass --image-size' not in err


def test_a_model_with_nan_weights_stops_before_attacking(face, tmp_path, capsys):
    """issue 18.3: a broken model is an error naming it, never a report."""
    from src.checkpoint import load_checkpoint
    prefix = face['spec'].rsplit(',', 1)[0]
    sym, arg, aux = load_checkpoint(prefix, 1)
    arg = {k: mx.nd.full(v.shape, np.nan) for k, v in arg.items()}
    mx.model.save_checkpoint(str(tmp_path / 'broken'), 1, sym, arg, aux)  # ours refuses NaN
    code = AF.main(['--model', str(tmp_path / 'broken') + ',1', '--data-dir', face['data_dir'],
                    '--threshold', '1', '--no-progress', '--out-dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 2 and 'broken,1 gives non-finite outputs' in err
    assert not (tmp_path / 'out').exists()
