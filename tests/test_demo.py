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


def _model_args(preset, stage, name):
    for model, script, flags in demo.PRESETS[preset]['models']:
        if model == name:
            return demo.SCRIPTS[script].parse_args(demo.stage_argv(demo.PRESETS[preset], stage,
                                                                   flags))
    raise KeyError(name)


@pytest.mark.parametrize('preset', sorted(demo.PRESETS))
def test_vanilla_and_mter_differ_only_by_the_attack(preset):
    for stage in demo.PRESETS[preset]['stages']:
        vanilla, mter = _model_args(preset, stage, 'vanilla'), _model_args(preset, stage, 'MTER')
        assert vanilla.adv_round == 0 and vanilla.weightadv == 0
        assert mter.adv_round > 0 and mter.weightadv > 0
        same = {k for k in vars(vanilla) if k not in ('adv_round', 'weightadv', 'adv_step',
                                                      'adv_sigma', 'adv_thd', 'adv_alpha')}
        assert {k: getattr(vanilla, k) for k in same} == {k: getattr(mter, k) for k in same}


@pytest.mark.parametrize('preset', ['compare', 'tiny-compare'])
def test_the_four_methods_share_network_data_schedule_and_budget(preset):
    stage = demo.PRESETS[preset]['stages'][0]
    args = {name: _model_args(preset, stage, name) for name in ('vanilla', 'MTER', 'AT', 'TLA')}
    for key in ('network', 'lr', 'lr_steps', 'wd', 'max_steps', 'loss_type'):
        assert len({str(getattr(a, key)) for a in args.values()}) == 1, key
    mter, at, tla = args['MTER'], args['AT'], args['TLA']
    sources = mter.adv_per_batch_size // 2 * mter.ctx_adv_num
    assert at.batch_size == tla.batch_size == sources          # the same images per batch
    assert at.epsilon == tla.epsilon == mter.adv_sigma          # the same L-inf ball
    assert at.num_steps == tla.num_steps == mter.adv_round      # the same attack steps
    assert at.method == 'at' and tla.method == 'tla' and at.optimizer == tla.optimizer == 'sgd'


def test_tiny_comparison_trains_four_models_and_reports_detection(tmp_path, digits_idx_dir):
    results = demo.main(['--tiny-compare', '--out-dir', str(tmp_path), '--no-progress',
                         '--data-dir', str(digits_idx_dir)])
    assert {c['model'] for c in results['curves']} == {'vanilla', 'MTER', 'AT', 'TLA'}
    saved = json.loads((tmp_path / 'results.json').read_text())
    aucs = {name: row['auc'] for name, row in saved['detection']['models'].items()}
    assert set(aucs) == {'vanilla', 'MTER', 'AT', 'TLA'}
    assert all(auc is None or 0 <= auc <= 1 for auc in aucs.values())
    text = (tmp_path / 'results.md').read_text()
    assert '## Detection of PGD adversarials' in text and text.count('| TLA |') == 1
    info = json.loads((tmp_path / 'demo.json').read_text())
    assert set(info['models']) == {'vanilla', 'MTER', 'AT', 'TLA'}
    assert {'train_AT', 'train_TLA', 'detect'} <= set(info['seconds'])


def test_a_rerun_with_another_network_replaces_the_demo_models(tmp_path, digits_idx_dir):
    """./run.sh --tiny then ./run.sh: the second run trains another network at the same
    prefixes; the demo replaces its own earlier models instead of refusing them."""
    import argparse
    from src.checkpoint import load_checkpoint
    args = argparse.Namespace(out_dir=str(tmp_path), seed=0, data_dir=str(digits_idx_dir),
                              dataset='auto', no_progress=True)
    flags = ['--main-per-batch-size', '24', '--adv-per-batch-size', '16'] + demo.VANILLA
    for network in ('s5', 'l'):
        preset = dict(train=['--network', network, '--loss-type', '0', '--num-test', '20'],
                      stages=[['--lr', '0.05', '--max-steps', '1', '--lr-steps', '100']])
        spec, _ = demo.train('vanilla', 'ad_mnist', preset, args, flags)
        prefix, epoch = spec.rsplit(',', 1)
        symbol, arg_params, _ = load_checkpoint(prefix, int(epoch))
        assert ('conv1_weight' in arg_params) == (network == 'l'), network
