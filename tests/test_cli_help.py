"""Every command-line tool runs as a script from any directory (python path/to/tool.py --help),
as the README shows: no relative imports, no sys.path edits."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOLS = ['ad_mnist.py', 'ad_face.py', 'ad_tla.py', 'launch.py', 'demo.py',
         'bench/bench_mter.py', 'bench/bench_tla.py', 'bench/bench_dist.py',
         'eval/attack_mnist.py', 'eval/attack_face.py', 'eval/verification.py',
         'eval/cal_threshold.py', 'eval/lfw.py', 'eval/ytf.py', 'eval/detect.py',
         'data/make_lst.py', 'data/build_rec.py', 'data/build_bin.py', 'data/synthetic.py',
         'data/face_rec.py', 'data/cifar10.py']


@pytest.mark.parametrize('tool', TOOLS)
def test_help_runs_as_a_script(tool, tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, tool), '--help'], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert 'usage:' in done.stdout
