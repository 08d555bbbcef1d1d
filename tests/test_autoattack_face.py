"""Feature-level AutoAttack in eval/attack_face.py (apgd, square, autoattack on 1 - cosine), on a
random-weights LeNet embedding of 0-255 RGB images and random pairs: hit rates, the per-stage
records and the gradient-masking check."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

from eval import attack_face as AF
from eval.model import Network
from symbols import get_embedding


@pytest.fixture(scope='module')
def faces():
    emb, _ = get_embedding('l')
    sym = emb(data=mx.sym.var('data') / 255.0)  # LeNet's tanh wants inputs of order 1
    mod = mx.mod.Module(sym, data_names=['data'], label_names=None)
    mod.bind([('data', (2, 3, 28, 28))], for_training=False)
    mx.random.seed(0)
    mod.init_params(mx.init.Xavier())
    net = Network(sym, *mod.get_params(), output='embedding')
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(24, 28, 28, 3), dtype=np.uint8)
    issame = np.arange(12) % 2 == 0
    dist = AF.distances(AF.embed(net, images[0::2]), AF.embed(net, images[1::2]))
    return net, images, issame, float(np.median(dist))


def test_feature_autoattack_hit_rates_and_stages(faces):
    net, images, issame, threshold = faces
    budget = AF.Budget(iterations=4, queries=10)
    results = AF.evaluate_hit_rate(net, images, issame, threshold, AF.HitRateSettings(
        attacks=('iftgsm', 'apgd', 'autoattack'), eps=(2.0, 24.0), mode='both',
        attack=AF.HitRateSettings.attack.replace(steps=3, budget=budget), progress=False,
        sanity=AF.SanitySettings(large_eps=0)))
    curves = {(c['model'], c['attack']): c for c in results['curves']}
    for scenario in ('impersonation', 'dodging'):
        label = 'model %s' % scenario
        suite, apgd = curves[(label, 'autoattack')], curves[(label, 'apgd')]
        assert suite['params']['stages'] == ['apgd', 'square']
        assert suite['params']['targeted'] == (scenario == 'impersonation')
        # the suite's first stage is the same APGD run: it can only add hits
        assert all(s >= a for s, a in zip(suite['values'], apgd['values']))
        assert suite['values'][1] > suite['clean']  # eps 24 of 255 moves random pairs
        records = [r for r in results['autoattack'] if r['model'] == label]
        assert [r['eps'] for r in records] == [2.0, 24.0]
        for record, value in zip(records, suite['values']):
            assert [s['stage'] for s in record['stages']] == ['apgd', 'square']
            hit = record['num_images'] - record['robust']
            assert value == pytest.approx(hit / record['num_images'])
    masking = [c for c in results['checks'] if c['name'].startswith('no gradient masking')]
    assert len(masking) == 2 and all(isinstance(c['passed'], bool) for c in masking)


def test_face_cli_lists_the_autoattack_attacks():
    args = AF.parse_args(['--model', 'm,1', '--data-dir', '.', '--threshold', '1',
                          '--attacks', 'apgd,square,autoattack', '--aa-queries', '50'])
    assert args.attacks == ['apgd', 'square', 'autoattack'] and args.aa_queries == 50
    assert AF.settings_of(args, 'm').attack.budget.queries == 50
    assert 'autoattack' in AF.build_parser().format_help()
