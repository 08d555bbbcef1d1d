"""Every network family under every oneDNN ISA level this CPU supports (tests/kernel_sweep.py in
a subprocess per level, DNNL_MAX_CPU_ISA set): training and adversary mode forward + backward,
and a batch-1 inference bind through get_internals() run twice. Each level must run, and give
the same embeddings and input gradients as the project's default level (float32 round-off
aside). Also: the default cap is in effect (DNNL_VERBOSE names the ISA) and a user's own
setting is left alone."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import runtime
from tests.conftest import assert_close_to_scale

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# oneDNN's ISA levels (DNNL_MAX_CPU_ISA values) and the /proc/cpuinfo flags each needs
LEVELS = (
    ('SSE41', {'sse4_1'}),
    ('AVX', {'avx'}),
    ('AVX2', {'avx2'}),
    ('AVX512_CORE', {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq'}),
    ('AVX512_CORE_VNNI', {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni'}),
    ('AVX512_CORE_BF16', {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni',
                          'avx512_bf16'}),
    ('AVX512_CORE_AMX', {'avx512f', 'avx512bw', 'avx512vl', 'avx512dq', 'avx512_vnni',
                         'avx512_bf16', 'amx_tile', 'amx_int8', 'amx_bf16'}),
)
# what DNNL_VERBOSE's "isa:" line says for a level (oneDNN 2.x wording, MXNet 1.9.1)
VERBOSE_NAMES = {'SSE41': 'SSE4.1', 'AVX': 'AVX', 'AVX2': 'AVX2', 'AVX512_CORE': 'AVX-512'}


def cpu_flags():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


SUPPORTED = [name for name, needs in LEVELS if needs <= cpu_flags()]


def _env(**settings):
    env = {k: v for k, v in os.environ.items()
           if k not in ('DNNL_MAX_CPU_ISA', 'MKLDNN_MAX_CPU_ISA', 'MXNET_MKLDNN_ENABLED',
                        'DNNL_VERBOSE', 'MKLDNN_VERBOSE')}
    env.update(settings)
    env.setdefault('OMP_NUM_THREADS', '2')
    return env


@pytest.fixture(scope='module')
def sweeps(tmp_path_factory):
    """level -> (return code, output tail, results) of the sweep at that level."""
    out = {}
    for level in SUPPORTED:
        path = tmp_path_factory.mktemp('sweep') / ('%s.json' % level)
        proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'kernel_sweep.py'),
                               str(path)], cwd=ROOT, env=_env(DNNL_MAX_CPU_ISA=level),
                              capture_output=True, text=True, timeout=600)
        results = json.loads(path.read_text()) if proc.returncode == 0 else None
        out[level] = (proc.returncode, (proc.stdout + proc.stderr)[-1500:], results)
    return out


def test_this_cpu_has_levels_to_sweep():
    assert 'SSE41' in SUPPORTED, 'an x86-64 CPU without SSE4.1? flags: %s' % sorted(cpu_flags())


@pytest.mark.parametrize('level', SUPPORTED)
def test_every_family_runs_at_level(sweeps, level):
    code, tail, _ = sweeps[level]
    assert code == 0, 'the sweep failed under DNNL_MAX_CPU_ISA=%s:\n%s' % (level, tail)


@pytest.mark.parametrize('level', SUPPORTED)
def test_levels_agree_with_the_default(sweeps, level):
    reference_level = runtime.ISA_CAP if runtime.ISA_CAP in sweeps else SUPPORTED[-1]
    reference, results = sweeps[reference_level][2], sweeps[level][2]
    assert reference is not None and results is not None, 'a sweep failed (see the other tests)'
    assert set(results) == set(reference)
    for family, values in results.items():
        ref = reference[family]
        for key in ('embedding', 'batch1_embedding'):
            assert_close_to_scale(values[key], ref[key], 2e-3, what='%s %s' % (family, key))
        # batch 1 in inference mode is the first image of the batch-2 inference embedding
        # (except GNAP, whose weights use the batch's mean norm, as InsightFace's)
        if 'GNAP' not in family:
            assert_close_to_scale(values['batch1_embedding'][0], values['embedding'][0], 2e-3,
                                  what=family)
        # training mode normalises by the statistics of a batch of 2: its input gradient is a
        # small difference of large terms (1e-9 of the adversary-mode one for some heads), so
        # round-off weighs 10x more in it
        for key, rel in (('train_input_grad', 2e-2), ('adversary_input_grad', 2e-3)):
            assert np.isfinite(values[key]) and values[key] > 0
            assert abs(values[key] - ref[key]) <= rel * ref[key], (family, key, values[key],
                                                                   ref[key])


def _verbose_isa(env):
    code = ('import runtime, os, mxnet as mx\n'
            'x = mx.nd.ones((1, 8, 8, 8)); w = mx.nd.ones((8, 8, 3, 3))\n'
            'mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=8, no_bias=True).wait_to_read()\n'
            'print("CAP", os.environ.get("DNNL_MAX_CPU_ISA"))\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-1500:]
    isa = [line.split('isa:', 1)[1] for line in proc.stdout.splitlines() if ',isa:' in line]
    cap = [line.split(' ', 1)[1] for line in proc.stdout.splitlines() if line.startswith('CAP ')]
    return (isa[0] if isa else None), cap[0]


def test_the_default_cap_is_in_effect():
    isa, cap = _verbose_isa(_env(DNNL_VERBOSE='1'))
    assert cap == runtime.ISA_CAP
    best = [lvl for lvl in SUPPORTED if lvl in VERBOSE_NAMES][-1]
    expected = VERBOSE_NAMES[runtime.ISA_CAP if runtime.ISA_CAP in SUPPORTED else best]
    assert isa is not None and expected in isa and 'AVX-512' not in isa, isa


def test_a_users_choice_is_left_alone():
    isa, cap = _verbose_isa(_env(DNNL_VERBOSE='1', DNNL_MAX_CPU_ISA='SSE41'))
    assert cap == 'SSE41' and 'SSE4.1' in isa
    _, cap = _verbose_isa(_env(MXNET_MKLDNN_ENABLED='1'))
    assert cap == 'None'    # no cap added where the user decided about MKL-DNN
