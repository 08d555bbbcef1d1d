"""eval/detect.py: the detectors on constructed embeddings with known answers, the ROC figures,
the command line end to end on a tiny LeNet trained on scikit-learn's digits, attacks built
through eval.registry, and broken inputs (NaN weights, a face checkpoint on MNIST-format data)
stopping with one line before any long work."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from eval import detect, registry
from eval.attacks import FGSM
from eval.detect import (DetectionSettings, DetectorSettings, EmbeddingDetector,
                         detection_metrics, detection_report)
from eval.model import Network
from eval.registry import AttackSettings, Budget
from src.checkpoint import save_checkpoint
from tests.conftest import train_lenet_digits

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLASSES, DIM = 3, 16


def make_clusters(rng, n, means, spread=0.3):
    """n embeddings per class around ``means`` (isotropic noise), with their labels."""
    labels = np.repeat(np.arange(len(means)), n)
    return means[labels] + spread * rng.normal(size=(len(labels), means.shape[1])), labels


@pytest.fixture(scope='module')
def fitted():
    """One detector per method fitted on 200 clean embeddings per class (3 classes, 16-d), plus
    the class means and a generator for fresh draws."""
    rng = np.random.default_rng(0)
    means = 3 * rng.normal(size=(CLASSES, DIM))
    emb, labels = make_clusters(rng, 200, means)
    return {'detectors': {m: EmbeddingDetector(m).fit(emb, labels) for m in detect.METHODS},
            'means': means, 'rng': rng}


@pytest.mark.parametrize('method', detect.METHODS)
def test_separated_adversarials_are_detected(fitted, method):
    rng = fitted['rng']
    clean, labels = make_clusters(rng, 300, fitted['means'])
    far = 3 * rng.normal(size=(1, DIM))  # a direction none of the classes has
    adv = far + 0.3 * rng.normal(size=(900, DIM))
    detector = fitted['detectors'][method]
    auc = detection_metrics(detector.score(clean, labels),
                            detector.score(adv, rng.integers(0, CLASSES, 900)))['auc']
    assert auc > 0.99


@pytest.mark.parametrize('method', detect.METHODS)
def test_adversarials_like_clean_ones_give_chance(fitted, method):
    """Both sets are fresh draws of the clean distribution with their true classes, so their
    scores are exchangeable: AUC 0.5 up to sampling noise, whose standard deviation under the
    null is sqrt((n0 + n1 + 1) / (12 n0 n1)) = 0.013 for 1000 + 1000 points (0.06 = 4.6 sd)."""
    rng = fitted['rng']
    detector = fitted['detectors'][method]
    (a, la), (b, lb) = make_clusters(rng, 334, fitted['means']), \
        make_clusters(rng, 334, fitted['means'])
    auc = detection_metrics(detector.score(a[:1000], la[:1000]),
                            detector.score(b[:1000], lb[:1000]))['auc']
    assert abs(auc - 0.5) < 0.06


@pytest.mark.parametrize('method', detect.METHODS)
def test_the_predicted_class_decides(fitted, method):
    """Points at class 0 score low when predicted as 0 and high when predicted as 1: the
    detector measures distance to the PREDICTED class, not to the nearest one."""
    rng = fitted['rng']
    points = fitted['means'][0] + 0.3 * rng.normal(size=(200, DIM))
    detector = fitted['detectors'][method]
    as_a = detector.score(points, np.zeros(200, int))
    as_b = detector.score(points, np.ones(200, int))
    assert (as_b > as_a).all()
    assert detection_metrics(as_a, as_b)['auc'] > 0.99


@pytest.mark.parametrize('shrinkage', [True, False])
def test_gaussian_is_mahalanobis_with_the_tied_covariance(shrinkage):
    """Within-class covariance diag(1, 100) shared by both classes: a step of 2 along the first
    axis and of 20 along the second are both at squared Mahalanobis distance 4 (Euclidean: 4 and
    400). 20000 points per class make the estimate (and Ledoit-Wolf's shrinkage, O(1/n)) exact to
    a few per mille; 5% is the tolerance."""
    rng = np.random.default_rng(1)
    means = np.array([[0.0, 0.0], [100.0, 0.0]])
    labels = np.repeat([0, 1], 20000)
    emb = means[labels] + rng.normal(size=(40000, 2)) * [1.0, 10.0]
    detector = EmbeddingDetector('gaussian', normalise=False, shrinkage=shrinkage).fit(emb, labels)
    queries = np.array([[2.0, 0.0], [0.0, 20.0], [102.0, 0.0]])
    scores = detector.score(queries, [0, 0, 1])
    assert scores == pytest.approx([4.0, 4.0, 4.0], rel=0.05)
    assert detector.score(queries[2:], [0])[0] > 1000  # near class 1, predicted as 0


def test_gaussian_works_with_more_dimensions_than_images():
    """256-d, 20 images per class: the empirical covariance is singular, Ledoit-Wolf's is not."""
    rng = np.random.default_rng(2)
    means = rng.normal(size=(CLASSES, 256))
    emb, labels = make_clusters(rng, 20, means, spread=0.2)
    detector = EmbeddingDetector('gaussian').fit(emb, labels)
    assert np.linalg.matrix_rank(np.cov((emb - means[labels]).T)) < 256
    clean, clean_labels = make_clusters(rng, 100, means, spread=0.2)
    adv = means[0] + 0.2 * rng.normal(size=(300, 256))  # class 0's images predicted as 1 or 2
    scores = detector.score(adv, rng.integers(1, CLASSES, 300))
    assert np.isfinite(scores).all()
    assert detection_metrics(detector.score(clean, clean_labels), scores)['auc'] > 0.99


def test_knn_distances_are_exact():
    emb = np.array([[0.0, 0.0], [1.0, 0.0], [3.0, 0.0], [10.0, 10.0], [11.0, 10.0]])
    labels = np.array([0, 0, 0, 1, 1])
    query, pred = np.array([[0.0, 1.0]]), np.array([0])
    kth = EmbeddingDetector('knn', normalise=False, k=2).fit(emb, labels)
    mean = EmbeddingDetector('knn', normalise=False, k=2, knn_reduce='mean').fit(emb, labels)
    assert kth.score(query, pred)[0] == pytest.approx(np.sqrt(2))
    assert mean.score(query, pred)[0] == pytest.approx((1 + np.sqrt(2)) / 2)
    assert kth.score(query, [1])[0] == pytest.approx(np.hypot(11, 9))


def test_gmm_with_one_component_is_the_class_gaussian():
    """One diagonal component per class is the class's ML Gaussian (mean, variance ddof 0) with
    the relative variance floor added: its negative log-density, computed here by hand."""
    rng = np.random.default_rng(3)
    means = 3 * rng.normal(size=(2, 4))
    emb, labels = make_clusters(rng, 500, means, spread=[0.5, 1.0, 2.0, 0.1])
    detector = EmbeddingDetector('gmm', normalise=False, components=1).fit(emb, labels)
    floor = detect.GMM_REG_RELATIVE * emb.var(axis=0).mean()
    query = means[1] + rng.normal(size=(5, 4))
    own = emb[labels == 1]
    var = own.var(axis=0) + floor
    expected = 0.5 * (np.log(2 * np.pi * var) + (query - own.mean(axis=0)) ** 2 / var).sum(axis=1)
    assert detector.score(query, np.ones(5, int)) == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('method', detect.METHODS)
def test_normalisation_ignores_the_norm(fitted, method):
    rng = fitted['rng']
    points, labels = make_clusters(rng, 20, fitted['means'])
    scale = rng.uniform(0.2, 5.0, size=(len(points), 1))
    detector = fitted['detectors'][method]
    assert detector.score(points * scale, labels) == pytest.approx(
        detector.score(points, labels), rel=1e-6, abs=1e-9)


def test_detection_metrics_known_answer():
    clean, adv = [0.0, 1.0, 2.0, 3.0], [2.5, 10.0]
    out = detection_metrics(clean, adv, fpr=0.05)
    assert out['auc'] == pytest.approx(7 / 8)  # 7 of the 8 (adv, clean) pairs are ordered
    assert out['tpr_at_fpr'] == 0.5 and out['threshold'] == 10.0  # no clean image flagged
    assert detection_metrics(clean, adv, fpr=0.25)['tpr_at_fpr'] == 1.0  # threshold 2.5
    assert detection_metrics(clean, [])['auc'] is None


def test_detector_errors_name_the_problem():
    emb, labels = np.eye(4), np.array([0, 0, 1, 1])
    with pytest.raises(ValueError, match='mahalanobis'):
        EmbeddingDetector('mahalanobis')
    with pytest.raises(ValueError, match='class 0 has 2 fit embeddings'):
        EmbeddingDetector('knn', k=3).fit(emb, labels)
    with pytest.raises(RuntimeError, match='fit'):
        EmbeddingDetector().score(emb, labels)
    detector = EmbeddingDetector().fit(emb, labels)
    with pytest.raises(ValueError, match='class 5 is predicted'):
        detector.score(emb, [0, 1, 5, 1])
    with pytest.raises(ValueError, match='3 dimensions'):
        detector.score(emb[:, :3], labels)
    bad = emb.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match='row 2'):
        detector.score(bad, labels)


# ---- on a trained network ----

@pytest.fixture(scope='module')
def lenet(tmp_path_factory):
    sym, arg, aux, data = train_lenet_digits(epochs=2, seed=0)
    prefix = tmp_path_factory.mktemp('detect') / 'lenet'
    save_checkpoint(str(prefix), 2, sym, arg, aux)
    return {'spec': '%s,2' % prefix, 'data': data}


def test_report_matches_an_independent_computation(lenet):
    """FGSM is deterministic: redo its adversarials, their predicted classes and the gaussian
    detector by hand; the report's AUC must be that one (successful adversarials only)."""
    data, spec = lenet['data'], lenet['spec']
    logits = Network.load(spec, output='logits')
    embedding = Network.load(spec, output='embedding')
    fit_x, fit_y, x, y = data.train_x[:300], data.train_y[:300], data.test_x[:40], data.test_y[:40]
    settings = DetectionSettings(attacks='fgsm', eps=0.1, progress=False)
    report = detection_report(logits, embedding, (fit_x, fit_y), (x, y), settings)
    correct = logits.predict(x).argmax(axis=1) == y
    xc, yc = x[correct], y[correct]
    x_adv, success = FGSM(logits, 0.1)(xc, yc)
    pred = logits.predict(x_adv).argmax(axis=1)
    assert (pred[success] != yc[success]).all() and success.any()
    detector = EmbeddingDetector('gaussian').fit(embedding.predict(fit_x), fit_y)
    scores = np.r_[detector.score(embedding.predict(xc), yc),
                   detector.score(embedding.predict(x_adv[success]), pred[success])]
    expected = roc_auc_score(np.r_[np.zeros(len(xc)), np.ones(success.sum())], scores)
    (row,) = report['rows']
    assert (row['num_clean'], row['num_adversarial']) == (len(xc), success.sum())
    assert report['clean_correct'] == correct.sum()
    assert row['auc'] == pytest.approx(expected, abs=1e-9)
    everything = detection_report(logits, embedding, (fit_x, fit_y), (x, y),
                                  settings.replace(all_adversarials=True))
    assert everything['rows'][0]['num_adversarial'] == len(xc)
    # the attack is eval.registry's, with the settings' (no AutoAttack name: no budget)
    assert report['attacks'][0]['params'] == registry.build(
        'fgsm', logits, 0.1, settings.attack).params()
    assert report['settings']['budget'] is None and report['settings']['steps'] == 40


def test_command_line_end_to_end(lenet, digits_idx_dir, tmp_path, capsys, monkeypatch):
    out = tmp_path / 'out'
    returned = []
    run = detect.run
    monkeypatch.setattr(detect, 'run', lambda args: returned.append(run(args)) or returned[-1])
    status = detect.main(['--model', lenet['spec'], '--dataset', 'mnist', '--data-dir',
                          str(digits_idx_dir), '--num-samples', '40', '--num-fit', '300',
                          '--steps', '5', '--methods', 'gaussian,gmm,knn', '--no-progress',
                          '--out-dir', str(out)])
    assert status == 0
    printed = capsys.readouterr().out
    results = json.loads((out / 'results.json').read_text())
    assert [r['method'] for r in results['rows']] == ['gaussian', 'gmm', 'knn']
    net = Network.load(lenet['spec'], output='logits')
    x, y = lenet['data'].test_x[:40], lenet['data'].test_y[:40]
    assert results['clean_correct'] == (net.predict(x).argmax(axis=1) == y).sum()
    assert results['num_fit'] == 300 and results['settings']['eps'] == [0.1]
    for row in results['rows']:
        assert row['attack'] == 'pgd' and row['num_clean'] == results['clean_correct']
        assert row['num_adversarial'] == row['successful'] > 0
        assert 0.0 <= row['auc'] <= 1.0
        assert '| %.4f |' % row['auc'] in printed
    assert (out / 'roc.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'AUC' in (out / 'results.md').read_text()
    # run returns the results main wrote (cli convention: main gives the exit code)
    assert json.loads(json.dumps(returned[0])) == results


@pytest.mark.parametrize('bad, flag', [
    (['--eps', 'nan'], '--eps'), (['--eps', '0'], '--eps'), (['--methods', 'lof'], '--methods'),
    (['--attacks', 'pgd,deepfool'], '--attacks'), (['--num-fit', '-1'], '--num-fit'),
    (['--k', '0'], '--k'), (['--fpr', '1.5'], '--fpr'), (['--aa-iterations', '0'],
                                                         '--aa-iterations'),
    (['--eps', '0.1,2'], '--eps'), (['--dataset', 'cifar10', '--eps', '8,300'], '--eps'),
    (['--steps', '0'], '--steps'), (['--batch-size', '0'], '--batch-size')])
def test_bad_arguments_are_refused(bad, flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        detect.parse_args(['--model', 'm,1'] + bad)
    assert exit_info.value.code == 2
    assert flag in capsys.readouterr().err


def test_bad_data_is_an_error_not_a_traceback(tmp_path, capsys):
    assert detect.main(['--model', str(tmp_path / 'm') + ',1', '--dataset', 'cifar10']) == 2
    assert 'error: --dataset cifar10 needs --data-dir' in capsys.readouterr().err
    assert detect.main(['--model', str(tmp_path / 'm') + ',1', '--data-dir',
                        str(tmp_path / 'none')]) == 2
    assert 'does not exist' in capsys.readouterr().err


def test_help_runs_as_script_and_module(tmp_path):
    """From another directory: the script by its path, the module through the installed
    (editable) project; no sys.path edits. Both at once (each mostly waits for imports)."""
    runs = [subprocess.Popen([sys.executable] + args + ['--help'], cwd=str(tmp_path),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for args in ([os.path.join(ROOT, 'eval', 'detect.py')], ['-m', 'eval.detect'])]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err[-2000:]
        assert '--num-fit' in out and 'gaussian (default)' in out


# ---- settings, the registry and its AutoAttack budget ----

def test_settings_refuse_bad_values():
    for bad, match in [(dict(attacks='deepfool'), 'deepfool'), (dict(eps=0), 'eps'),
                       (dict(eps=[0.1, float('nan')]), 'eps'), (dict(fpr=1.5), 'fpr'),
                       (dict(methods=('gaussian', 'lof')), 'lof')]:
        with pytest.raises(ValueError, match=match):
            DetectionSettings(**bad)
    with pytest.raises(ValueError, match='components and k'):
        DetectorSettings(k=0)
    with pytest.raises(TypeError):
        EmbeddingDetector('knn', neighbours=3)
    s = DetectionSettings(attacks='fgsm', eps=0.2, methods='knn')
    assert (s.attacks, s.eps, s.methods) == (('fgsm',), (0.2,), ('knn',))
    assert set(detect.ATTACK_NAMES) == set(registry.names('classifier'))


def test_flags_make_the_settings():
    args = detect.parse_args(['--model', 'm,1', '--attacks', 'apgd-ce,pgd', '--steps', '7',
                              '--aa-iterations', '5', '--seed', '3', '--k', '4',
                              '--no-normalise'])
    s = detect.settings_of(args)
    assert s.attack == AttackSettings(steps=7, restarts=1, seed=3, pixel_range=(0.0, 1.0),
                                      budget=Budget(iterations=5))
    assert (s.attacks, s.eps, s.batch_size) == (('apgd-ce', 'pgd'), (0.1,), 256)
    assert s.detector == DetectorSettings(normalise=False, k=4, seed=3) and s.uses_autoattack
    cifar = detect.settings_of(detect.parse_args(['--model', 'm,1', '--dataset', 'cifar10']))
    assert (cifar.eps, cifar.attack.steps, cifar.attack.pixel_range) == ((8.0,), 20,
                                                                         (0.0, 255.0))
    assert args.gpu is None and str(detect.cli.parse_ctx(args.ctx, args.gpu)) == 'cpu(0)'


def test_autoattack_member_uses_the_registry_budget(lenet):
    data, spec = lenet['data'], lenet['spec']
    logits = Network.load(spec, output='logits')
    embedding = Network.load(spec, output='embedding')
    budget = Budget(iterations=3)
    report = detection_report(
        logits, embedding, (data.train_x[:200], data.train_y[:200]),
        (data.test_x[:12], data.test_y[:12]),
        DetectionSettings(attacks='apgd-ce', eps=0.1, progress=False,
                          attack=AttackSettings(budget=budget)))
    assert report['settings']['budget'] == budget.as_dict()
    params = report['attacks'][0]['params']
    assert params == registry.build('apgd-ce', logits, 0.1, AttackSettings(budget=budget)).params()
    assert params['steps'] == 3 and report['rows'][0]['attack'] == 'apgd-ce'


# ---- broken inputs stop with one line (issue 18) ----

@pytest.fixture(scope='module')
def nan_spec(lenet, tmp_path_factory):
    """The LeNet checkpoint with every weight NaN (what a diverged run leaves)."""
    import mxnet as mx
    prefix, epoch = lenet['spec'].rsplit(',', 1)
    sym, arg, aux = mx.model.load_checkpoint(prefix, int(epoch))
    nan = {k: mx.nd.full(v.shape, np.nan) for k, v in arg.items()}
    out = str(tmp_path_factory.mktemp('nan') / 'diverged')
    mx.model.save_checkpoint(out, 1, sym, nan, aux)  # save_checkpoint refuses NaN
    return out + ',1'


def _no_long_work(monkeypatch):
    def fail(*_, **__):
        raise AssertionError('long work started on a broken model')
    monkeypatch.setattr(detect, 'detection_report', fail)
    monkeypatch.setattr(EmbeddingDetector, 'fit', fail)


def _one_error_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    assert 'Traceback' not in err
    return lines[0]


def test_nan_weights_stop_with_one_line_naming_the_checkpoint(nan_spec, digits_idx_dir, capsys,
                                                              monkeypatch):
    _no_long_work(monkeypatch)
    assert detect.main(['--model', nan_spec, '--dataset', 'mnist', '--data-dir',
                        str(digits_idx_dir), '--num-samples', '20', '--num-fit', '100',
                        '--no-progress']) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert nan_spec in line and 'non-finite' in line


def test_detector_is_never_fitted_on_nan_embeddings(nan_spec, lenet, monkeypatch):
    fitted = []
    monkeypatch.setattr(EmbeddingDetector, 'fit', lambda self, *a: fitted.append(a) or self)
    data = lenet['data']
    with pytest.raises(ValueError, match='NaN or infinity on 100 of the 100 fit images'):
        detection_report(Network.load(nan_spec, output='logits'),
                         Network.load(nan_spec, output='embedding'),
                         (data.train_x[:100], data.train_y[:100]),
                         (data.test_x[:10], data.test_y[:10]),
                         DetectionSettings(attacks='fgsm', progress=False))
    assert not fitted


def test_face_checkpoint_on_mnist_data_is_one_line(digits_idx_dir, tmp_path, capsys,
                                                   monkeypatch):
    """A 3x112x112 face network (MobileFaceNet, symbols' y1) given 1x28x28 images: one line
    naming the checkpoint and the data's image shape, before any fitting or attack."""
    import mxnet as mx
    from symbols import get_embedding
    from symbols.heads import inference_symbol
    emb, size = get_embedding('y1', emb_size=32)
    sym = inference_symbol(emb, 10, size, 0)
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None, context=mx.cpu())
    mod.bind([('data', (1, 3, 112, 112))], for_training=False)
    mx.random.seed(0)
    mod.init_params(mx.init.Xavier())
    arg, aux = mod.get_params()
    prefix = str(tmp_path / 'face-y1')
    save_checkpoint(prefix, 1, sym, arg, aux)
    _no_long_work(monkeypatch)
    assert detect.main(['--model', prefix + ',1', '--dataset', 'mnist', '--data-dir',
                        str(digits_idx_dir), '--num-samples', '20', '--no-progress']) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert prefix + ',1' in line and '1x28x28' in line and 'cannot take' in line
