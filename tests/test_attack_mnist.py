"""eval/attack_mnist.py end to end on tiny LeNet checkpoints trained here (ad_mnist.py's
format: inference_symbol saved with save_checkpoint), on scikit-learn's digits."""
import json
import subprocess
import sys

import numpy as np
import pytest

from data.mnist import load_digits_28
from eval import attack_mnist, report
from eval.attacks import FGSM
from eval.model import Network
from src.checkpoint import save_checkpoint
from tests.conftest import train_lenet_digits

N = 120
EPS = [0.1, 0.3]


def train_checkpoint(prefix, seed):
    sym, arg, aux, _ = train_lenet_digits(epochs=3, seed=seed)
    save_checkpoint(str(prefix), 2, sym, arg, aux)
    return '%s,2' % prefix


@pytest.fixture(scope='module')
def run(tmp_path_factory):
    """Trains two checkpoints and runs the CLI once in transfer mode."""
    root = tmp_path_factory.mktemp('attack_mnist')
    data = load_digits_28()
    model = train_checkpoint(root / 'vanilla', 0)
    source = train_checkpoint(root / 'other', 1)
    out = root / 'out'
    status = attack_mnist.main([
        '--model', model, '--source-model', source, '--dataset', 'digits',
        '--num-samples', str(N), '--eps', ','.join(map(str, EPS)), '--steps', '5',
        '--batch-size', '64', '--seed', '0', '--no-progress', '--out-dir', str(out)])
    return {'status': status, 'out': out, 'model': model, 'source': source, 'data': data,
            'results': json.loads((out / 'results.json').read_text())}


def test_outputs_exist(run):
    assert run['status'] == 0
    for name in ('results.json', 'results.md', 'robust_accuracy.png'):
        assert (run['out'] / name).stat().st_size > 0
    assert (run['out'] / 'robust_accuracy.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'


def test_table_numbers_are_the_json_numbers(run):
    results = run['results']
    rows = report.parse_table((run['out'] / 'results.md').read_text())
    assert len(rows) == len(results['curves'])
    for row, curve in zip(rows, results['curves']):
        assert (row['model'], row['mode'], row['attack']) == (
            curve['model'], curve['mode'], curve['attack'])
        assert row['clean'] == report.percent(curve['clean'])
        for eps, value in zip(results['eps'], curve['values']):
            assert row['eps=%g' % eps] == report.percent(value)


def test_clean_accuracy_and_white_box_figures(run):
    results, data = run['results'], run['data']
    assert results['eps'] == EPS and results['num_samples'] == N
    x, y = data.test_x[:N], data.test_y[:N]
    net = Network.load(run['model'], output='logits')
    clean = float(np.mean(net.predict(x).argmax(axis=1) == y))
    white = {c['attack']: c for c in results['curves']
             if c['mode'] == 'white-box' and c['model'] == 'vanilla,2'}
    assert set(white) == set(attack_mnist.DEFAULT_ATTACKS) | {'worst-case'}
    for curve in white.values():
        assert curve['clean'] == pytest.approx(clean)
        assert all(v <= clean + 1e-9 for v in curve['values'])
    # FGSM is deterministic: recompute one figure independently
    x_adv, _ = FGSM(net, EPS[0])(x, y)
    correct = (net.predict(x).argmax(axis=1) == y) & (net.predict(x_adv).argmax(axis=1) == y)
    assert white['fgsm']['values'][0] == pytest.approx(correct.mean())
    for i in range(len(EPS)):
        assert white['worst-case']['values'][i] <= min(
            white[a]['values'][i] for a in attack_mnist.DEFAULT_ATTACKS) + 1e-9
    assert white['pgd']['values'][1] < white['pgd']['values'][0] < clean
    assert white['pgd']['params']['steps'] == 5
    assert white['pgd']['params']['step'] == pytest.approx([2.5 * e / 5 for e in EPS])
    assert white['fgsm']['params']['step'] == EPS


def test_transfer_rows_and_sanity_checks(run):
    results = run['results']
    modes = {(c['model'], c['mode']) for c in results['curves']}
    assert modes == {('vanilla,2', 'white-box'), ('other,2', 'white-box'),
                     ('vanilla,2', 'transfer from other,2')}
    transfer = {c['attack']: c for c in results['curves'] if c['mode'].startswith('transfer')}
    white = {c['attack']: c for c in results['curves']
             if c['mode'] == 'white-box' and c['model'] == 'vanilla,2'}
    assert transfer['pgd']['values'][-1] < transfer['pgd']['clean']
    assert transfer['fgsm']['clean'] == white['fgsm']['clean']
    names = [c['name'] for c in results['checks']]
    for part in ('monotone in eps', 'iterative >= one-step', 'gradients finite',
                 'large eps breaks everything', 'stable under 2x steps', 'stable under +2'):
        assert any(part in n for n in names), part
    assert all(isinstance(c['passed'], bool) for c in results['checks'])
    md = (run['out'] / 'results.md').read_text()
    assert all(c['name'] in md for c in results['checks'])


def test_python_api_compares_two_models(run, tmp_path):
    data = run['data']
    models = {'vanilla': Network.load(run['model'], output='logits'),
              'other': Network.load(run['source'], output='logits')}
    settings = attack_mnist.Settings(
        attacks=('fgsm', 'bim'), eps=(0.2,), progress=False,
        attack=attack_mnist.Settings.attack.replace(steps=3),
        sanity=attack_mnist.SanitySettings(enabled=False))
    results = attack_mnist.evaluate_robustness(models, data.test_x[:40], data.test_y[:40],
                                               settings)
    assert [(c['model'], c['attack']) for c in results['curves']] == [
        ('vanilla', 'fgsm'), ('vanilla', 'bim'), ('vanilla', 'worst-case'),
        ('other', 'fgsm'), ('other', 'bim'), ('other', 'worst-case')]
    paths = report.write_report(results, str(tmp_path), title='two models')
    assert json.loads(open(paths['json']).read())['curves'] == results['curves']


def test_cli_help_and_bad_model():
    out = subprocess.run([sys.executable, '-m', 'eval.attack_mnist', '--help'],
                         capture_output=True, text=True, check=True).stdout
    assert '--source-model' in out and 'step-scale' in out
    with pytest.raises(FileNotFoundError, match='nowhere'):
        attack_mnist.run(attack_mnist.parse_args(['--model', '/nowhere/model,1', '--dataset',
                                                  'digits', '--num-samples', '5',
                                                  '--no-progress']))
