"""The main job (demo.py) in its tiny configuration: both models trained, both attacked, and the
table, JSON and PNG written and consistent with each other."""
import json

import matplotlib.image
import pytest

import demo
from eval import report


@pytest.fixture(scope='module')
def run(tmp_path_factory, digits_idx_dir):
    out = tmp_path_factory.mktemp('demo')
    results = demo.main(['--tiny', '--out-dir', str(out), '--no-progress',
                         '--data-dir', str(digits_idx_dir)])
    return out, results


def test_files_written_and_consistent(run):
    out, results = run
    saved = json.loads((out / 'results.json').read_text())
    assert saved['eps'] == list(demo.PRESETS['tiny']['eval']['eps'])
    rows = report.parse_table((out / 'results.md').read_text())
    assert len(rows) == len(saved['curves'])
    for row, curve in zip(rows, saved['curves']):
        assert (row['model'], row['attack']) == (curve['model'], curve['attack'])
        assert row['clean'] == report.percent(curve['clean'])
        for eps, value in zip(saved['eps'], curve['values']):
            assert row['eps=%g' % eps] == report.percent(value)
    image = matplotlib.image.imread(str(out / 'robust_accuracy.png'))
    assert image.ndim == 3 and image.shape[0] > 100


def test_both_models_and_every_attack(run):
    out, results = run
    models = {c['model'] for c in results['curves']}
    assert models == {'vanilla', 'MTER'}
    attacks = {c['attack'] for c in results['curves']}
    assert set(demo.PRESETS['tiny']['eval']['attacks']) <= attacks
    for c in results['curves']:
        assert all(0 <= v <= c['clean'] + 1e-9 for v in c['values'])
    info = json.loads((out / 'demo.json').read_text())
    assert set(info['models']) == {'vanilla', 'MTER'}
    assert info['seconds']['total'] > 0 and info['test_images'] == 60
    for spec in info['models'].values():
        prefix = spec.rsplit(',', 1)[0]
        assert (out / 'models').exists() and prefix.startswith(str(out))


@pytest.mark.parametrize('preset', sorted(demo.PRESETS))
def test_presets_differ_only_by_the_attack(preset):
    import ad_mnist
    for stage in demo.PRESETS[preset]['stages']:
        vanilla = ad_mnist.parse_args(demo.stage_argv(demo.PRESETS[preset], stage, demo.VANILLA))
        mter = ad_mnist.parse_args(demo.stage_argv(demo.PRESETS[preset], stage,
                                                   demo.PRESETS[preset]['mter']))
        assert vanilla.adv_round == 0 and vanilla.weightadv == 0
        assert mter.adv_round > 0 and mter.weightadv > 0
        same = {k for k in vars(vanilla) if k not in ('adv_round', 'weightadv', 'adv_step',
                                                      'adv_sigma', 'adv_thd', 'adv_alpha')}
        assert {k: getattr(vanilla, k) for k in same} == {k: getattr(mter, k) for k in same}
