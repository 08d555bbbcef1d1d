"""Training on many machines (MXNet's parameter-server kvstore), on loopback: launch.py starts
a scheduler, a server and two workers of ad_mnist.py with --kvstore dist_sync."""
import os
import re
import signal
import subprocess
import sys
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np
import pytest

import ad_mnist
import launch
from data.face_rec import identity_streams
from src.fit import Trainer, worker_shard
from src.metrics import TrainMetrics
from src.mter import Mter
from src.checkpoint import save_checkpoint
from tests.conftest import assert_close_to_scale

ROOT = os.path.dirname(os.path.abspath(ad_mnist.__file__))
# LeNet has no batch-norm (whose moving statistics stay per worker), and --adv-thd -1 runs every
# round (an early stop looks at the batch's largest distance, which differs between one worker's
# batch and the whole): the two workers then compute what one process holding both batches does
JOB = ['--network', 'l', '--loss-type', '0', '--main-per-batch-size', '12',
       '--adv-per-batch-size', '8', '--adv-round', '2', '--adv-step', '0.02', '--adv-thd', '-1',
       '--lr', '0.05', '--max-steps', '3', '--num-test', '50', '--seed', '5', '--ckpt', '0',
       '--verbose', '0', '--disp-batches', '1']


def _launch(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, 'launch.py'] + args, cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_shards_are_disjoint_and_cover_the_data():
    items = np.arange(23)
    shards = [items[worker_shard(r, 3)] for r in range(3)]
    assert sorted(np.concatenate(shards).tolist()) == items.tolist()
    assert sum(len(s) for s in shards) == 23 and max(map(len, shards)) - min(map(len, shards)) <= 1
    assert items[worker_shard(0, 1)].tolist() == items.tolist()  # one machine: everything
    # faces: identities are dealt to workers, and each worker's sources and targets come from
    # disjoint identities of its own share
    identities = [np.arange(10 * k, 10 * k + 3) for k in range(9)]
    rng = np.random.RandomState(0)
    for r in range(2):
        own = identities[worker_shard(r, 2)]
        a, b = identity_streams(own, rng)
        owner = {int(i): k for k, ids in enumerate(own) for i in ids}
        assert not {owner[int(i)] for i in a} & {owner[int(i)] for i in b}


def test_two_workers_apply_the_mean_of_their_gradients(tmp_path, digits_idx_dir):
    job = _launch(['-n', '2', '-s', '1', '--launcher', 'local', sys.executable,
                   'tests/dist_job.py', str(tmp_path), '--kvstore', 'dist_sync',
                   '--data-dir', str(digits_idx_dir)] + JOB)
    output, _ = job.communicate(timeout=300)
    assert job.returncode == 0, output
    assert re.search(r'\[worker \d\] .*\[rank 0/2\] .*Val-Accuracy', output)  # rank 0 evaluates
    assert not re.search(r'\[rank 1/2\] .*Val-Accuracy', output)            # rank 1 does not
    assert re.search(r'\(2 workers: [0-9.]+ global\)', output)
    digests = set(re.findall(r'weights sha1 ([0-9a-f]+)', output))
    assert len(digests) == 1
    ranks = [dict(np.load(tmp_path / ('rank-%d.npz' % r))) for r in (0, 1)]
    names = sorted(k[6:] for k in ranks[0] if k.startswith('final:'))
    for name in names:  # both workers end with identical weights
        np.testing.assert_array_equal(ranks[0]['final:' + name], ranks[1]['final:' + name])
    # the shards differ: the workers trained on different images
    assert not np.array_equal(ranks[0]['batch0:src'], ranks[1]['batch0:src'])

    # one process holding both workers' batches (2 main + 2 adversary contexts, the same
    # per-context batch) from the same initial weights computes the same weights
    initial = str(tmp_path / 'initial')
    save_checkpoint(initial, 0, None, {n: mx.nd.array(ranks[0]['initial:' + n]) for n in names},
                    {})
    args = ad_mnist.parse_args(JOB + ['--ctx-num', '2', '--ctx-adv-num', '2',
                                      '--kvstore', 'device', '--pretrained', initial + ',0'])
    trainer = Trainer(args, Mter(args), (1, 28, 28),
                      10, (0.0, 1.0), evaluate=None)
    metrics = TrainMetrics()
    for t in range(3):
        sample = [np.concatenate([rank['batch%d:%s' % (t, key)] for rank in ranks])
                  for key in ('src', 'src_y', 'tar', 'tar_y')]
        trainer.step(sample, metrics)
    arg, _ = trainer.module.get_params()
    for name in names:
        assert_close_to_scale(arg[name].asnumpy(), ranks[0]['final:' + name], 1e-5)
        assert not np.array_equal(ranks[0]['initial:' + name], ranks[0]['final:' + name])


def test_a_killed_worker_stops_the_job(tmp_path, digits_idx_dir):
    job = _launch(['-n', '2', '-s', '1', '--launcher', 'local', '--grace', '3', sys.executable,
                   'ad_mnist.py', '--kvstore', 'dist_sync', '--data-dir', str(digits_idx_dir),
                   '--prefix', str(tmp_path / 'm')] + JOB[:-8] + ['--max-steps', '1000',
                                                                   '--verbose', '0'])
    pids, lines = {}, []
    for line in job.stdout:
        lines.append(line)
        started = re.match(r'launch.py: started (\w+(?: \d)?) \(pid (\d+)\)', line)
        if started:
            pids[started.group(1)] = int(started.group(2))
        if re.search(r'step 2 ', line):
            break
    victim = pids['worker 1']
    killed_at = time.time()
    os.kill(victim, signal.SIGKILL)
    rest, _ = job.communicate(timeout=60)
    stopped_in = time.time() - killed_at
    output = ''.join(lines) + rest
    assert job.returncode == 128 + signal.SIGKILL
    assert 'worker 1 (pid %d) was killed by SIGKILL; stopping the other processes' % victim \
        in output
    assert stopped_in < 30
    for name, pid in pids.items():  # nothing left behind
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_launcher_plans_and_ssh_commands(tmp_path):
    hosts = tmp_path / 'hosts'
    hosts.write_text('alpha\n# a comment\nbob@beta\n\n')
    assert launch.read_hosts(str(hosts)) == ['alpha', 'bob@beta']
    planned = launch.plan(3, 2, ['alpha', 'bob@beta'])
    assert planned[0] == ('scheduler', 0, 'alpha')
    assert [p[2] for p in planned[1:]] == ['alpha', 'bob@beta', 'alpha', 'bob@beta', 'alpha']
    assert [p[:2] for p in planned[1:]] == [('server', 0), ('server', 1), ('worker', 0),
                                            ('worker', 1), ('worker', 2)]
    env = launch.dmlc_env('worker', 'alpha', 9091, 3, 2, extra={'OMP_NUM_THREADS': '4'})
    ssh = launch.ssh_command('bob@beta', env, ['python', 'ad_face.py', '--prefix', 'a b'],
                             '/work/x y')
    assert ssh[:2] == ['ssh', '-tt'] and ssh[-2] == 'bob@beta'
    assert ssh[-1] == ("cd '/work/x y' && env DMLC_NUM_SERVER=2 DMLC_NUM_WORKER=3 "
                       "DMLC_PS_ROOT_PORT=9091 DMLC_PS_ROOT_URI=alpha DMLC_ROLE=worker "
                       "OMP_NUM_THREADS=4 python ad_face.py --prefix 'a b'")
    assert launch.role_command('server', ['python', 'x.py'], 'py') == [
        'py', '-c', 'import runtime, mxnet']
    with pytest.raises(SystemExit):
        launch.parse_args(['-n', '2', '--launcher', 'ssh', 'python', 'x.py'])  # no -H


def test_env_values_may_hold_colons_and_names_are_checked():
    args = launch.parse_args(['-n', '1', '--env', 'LD_LIBRARY_PATH=/a:/b', '--env',
                              'OMP_NUM_THREADS:2', 'python', 'x.py'])
    assert args.env == [('LD_LIBRARY_PATH', '/a:/b'), ('OMP_NUM_THREADS', '2')]
    for bad in ('NOVALUE', 'A B=1', '1X=2'):
        with pytest.raises(SystemExit):
            launch.parse_args(['-n', '1', '--env', bad, 'python', 'x.py'])


def test_a_worker_that_cannot_start_stops_the_job(tmp_path):
    """The scheduler and server already run when the worker's command is not found: they are
    stopped, and the launcher exits with the shell's 'not found' code."""
    job = _launch(['-n', '1', '-s', '1', '--launcher', 'local', '--grace', '3',
                   str(tmp_path / 'no-such-command'), '--flag'])
    output, _ = job.communicate(timeout=60)
    assert job.returncode == 127, output
    assert 'cannot start the worker 0' in output and 'no-such-command' in output
    pids = [int(p) for p in re.findall(r'launch.py: started \w+(?: \d+)? \(pid (\d+)\)', output)]
    assert len(pids) == 2  # scheduler, server
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
