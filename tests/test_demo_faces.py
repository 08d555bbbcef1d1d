"""The face main job (demo.py --faces) end to end on a tiny synthetic LFW-style folder and a
randomly initialised InsightFace-style y1 checkpoint: data split, verification, vanilla and
MTER fine-tuning, attacks, and the results it writes."""
import json

import cv2
import numpy as np

import demo
from src.checkpoint import save_checkpoint
from symbols import get_embedding
from symbols.graph import stock_prelu
from data.synthetic import identity_pattern, render_image
from tests.deploy_helpers import random_params


def _folder(tmp_path, people=20, per_person=3, pairs_per_fold=5):
    root = tmp_path / 'lfw'
    rng = np.random.default_rng(0)
    names = ['Person_%02d' % i for i in range(people)]
    for name in names:
        (root / name).mkdir(parents=True)
        pattern = identity_pattern(rng, (112, 112))
        for n in range(1, per_person + 1):
            cv2.imwrite(str(root / name / ('%s_%04d.jpg' % (name, n))),
                        cv2.cvtColor(render_image(pattern, rng), cv2.COLOR_RGB2BGR))
    lines = ['2\t%d' % pairs_per_fold]
    for fold in range(2):       # fold 1: people 0-7, fold 2: people 8-15; 16-19 in no pair
        group = names[8 * fold:8 * fold + 8]
        lines += ['%s\t1\t%d' % (group[i], 2 + i % 2) for i in range(pairs_per_fold)]
        lines += ['%s\t1\t%s\t2' % (group[i], group[(i + 3) % 8]) for i in range(pairs_per_fold)]
    (tmp_path / 'pairs.txt').write_text('\n'.join(lines) + '\n')
    return root, tmp_path / 'pairs.txt'


def test_face_main_job_on_a_tiny_synthetic_set(tmp_path):
    images, pairs = _folder(tmp_path)
    emb, _ = get_embedding('y1', emb_size=128)
    symbol = stock_prelu(emb.get_internals()['fc1_output'])
    arg, aux = random_params(symbol, (3, 112, 112), seed=1)
    save_checkpoint(str(tmp_path / 'y1'), 0, symbol, arg, aux)
    out = tmp_path / 'results'
    record = demo.main(['--faces', '--tiny', '--images', str(images), '--pairs', str(pairs),
                        '--pretrained', str(tmp_path / 'y1') + ',0', '--eval-folds', '2',
                        '--out-dir', str(out), '--batch-size', '8'])
    assert record['split']['train_identities'] == 12 and record['split']['eval_people'] == 8
    assert set(record['verification']) == {'pretrained', 'vanilla', 'mter'}
    assert set(record['verification']['pretrained']) == {'lfw', 'lfw_heldout'}
    for model in ('vanilla', 'mter'):
        assert set(record['verification'][model]) == {'lfw_heldout'}
    saved = json.loads((out / 'results.json').read_text())
    assert saved['models']['mter'].endswith('mter/model,0')
    curves = saved['attacks']['mter']['curves']
    assert {c['attack'] for c in curves} >= {'fftgsm', 'iftgsm', 'apgd', 'worst-case'}
    for run in saved['attacks'].values():
        for curve in run['curves']:
            assert all(0.0 <= v <= 1.0 for v in curve['values'])
    text = (out / 'results.md').read_text()
    assert '## Verification' in text and 'impersonation' in text and 'dodging' in text
    assert (out / 'hit_rate.png').stat().st_size > 1000
    assert saved['checks'] > 0
