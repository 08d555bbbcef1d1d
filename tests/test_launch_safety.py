"""launch.py's safety (issue 18): its processes die with it even under kill -9; the host file is
checked line by line before anything starts (nothing reaches ssh as an option); ssh checks host
keys unless told not to; a bad -H is one line and exit code 2. No ssh, no network: the checks
and the ssh command lines are tested as functions, the parent-death signal with local
processes (stand-ins for the scheduler and server: no MXNet)."""
import os
import re
import signal
import subprocess
import sys
import time

import pytest

import launch
from src.args import KVSTORES
from src.errors import UserError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, 'launch.py')
linux_only = pytest.mark.skipif(not sys.platform.startswith('linux'),
                                reason='PR_SET_PDEATHSIG is Linux only')


def _alive(pid):
    """Running (a zombie waiting for a reaper counts as gone)."""
    try:
        with open('/proc/%d/stat' % pid) as f:
            state = f.read().rsplit(')', 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ('Z', 'X')


def _cwd(pid):
    try:
        return os.readlink('/proc/%d/cwd' % pid)
    except OSError:
        return None


@linux_only
def test_a_killed_launcher_takes_its_processes_along(tmp_path):
    """kill -9 of the launcher: its scheduler, server and worker die with it (they used to be
    re-parented to PID 1 and run on). The scheduler and server run ``python -c "import
    runtime, mxnet"`` in the launcher's directory: here a runtime.py that sleeps."""
    (tmp_path / 'runtime.py').write_text('import time\ntime.sleep(60)\n')
    (tmp_path / 'mxnet.py').write_text('')
    log = tmp_path / 'launch.log'
    with open(log, 'w') as out:
        launcher = subprocess.Popen(
            [sys.executable, LAUNCH, '-n', '1', '-s', '1', '--launcher', 'local', '--grace', '1',
             sys.executable, '-c', 'import time; time.sleep(60)'],
            cwd=str(tmp_path), stdout=out, stderr=subprocess.STDOUT)
    pids = []
    try:
        deadline = time.time() + 15
        while len(pids) < 3 and time.time() < deadline and launcher.poll() is None:
            time.sleep(0.05)
            pids = [int(p) for p in re.findall(r'launch.py: started \w+(?: \d+)? \(pid (\d+)\)',
                                               log.read_text())]
        assert len(pids) == 3, log.read_text()  # scheduler, server 0, worker 0
        # each has run its command (exec done, so past the preexec)
        while time.time() < deadline and not all(
                b'time' in open('/proc/%d/cmdline' % p, 'rb').read() or
                b'runtime' in open('/proc/%d/cmdline' % p, 'rb').read() for p in pids):
            time.sleep(0.05)
        assert all(_alive(p) for p in pids)
        launcher.kill()
        launcher.wait(10)
        deadline = time.time() + 5
        while any(_alive(p) for p in pids) and time.time() < deadline:
            time.sleep(0.05)
        left = [p for p in pids if _alive(p)]
        assert not left, 'still running after the launcher was killed: %s' % left
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in pids:  # what an old launcher left behind (each leads its own group)
            if _alive(pid) and _cwd(pid) == str(tmp_path):
                os.killpg(pid, signal.SIGKILL)


@linux_only
def test_a_child_whose_launcher_died_before_prctl_kills_itself():
    """The race: the launcher dies between fork and prctl (the child is already re-parented and
    no death signal will come): the child sees getppid() change and signals itself."""
    preexec = launch.die_with_parent(parent=os.getppid())  # "the launcher": not our pid
    child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(30)'],
                             preexec_fn=preexec, start_new_session=True)
    assert child.wait(10) == -signal.SIGKILL
    ok = subprocess.Popen([sys.executable, '-c', 'pass'], preexec_fn=launch.die_with_parent())
    assert ok.wait(10) == 0


@pytest.mark.parametrize('entry, parsed', [
    ('alpha', (None, 'alpha', None)),
    ('bob@beta.example.org', ('bob', 'beta.example.org', None)),
    ('node_7:2222', (None, 'node_7', 2222)),
    ('carol.x@10.0.0.2:22', ('carol.x', '10.0.0.2', 22)),
    ('fe80::1', (None, 'fe80::1', None)),
    ('dan@[2001:db8::5]:2200', ('dan', '2001:db8::5', 2200)),
])
def test_host_entries_accepted(entry, parsed):
    assert launch.parse_host(entry) == parsed


@pytest.mark.parametrize('entry', [
    '-oProxyCommand=touch /tmp/x', '-p', 'alpha beta', 'alpha\tbeta', 'bob@-oFoo=x',
    '-o@alpha', 'a@b@c', 'alpha:', 'alpha:0', 'alpha:65536', 'alpha:22x', 'alpha:-1',
    '[::1', '[zz::1]:22', '1::2::3', 'al/pha', 'alpha;touch x', '$(touch x)', 'alpha\x00',
    '-alpha', 'alpha-', 'a..b', '.alpha', 'x' * 64, '',
])
def test_host_entries_refused(entry):
    with pytest.raises(ValueError, match=r'is not \[user@\]host\[:port\]'):
        launch.parse_host(entry)


def test_the_host_file_is_checked_line_by_line(tmp_path):
    hosts = tmp_path / 'hosts'
    hosts.write_bytes(b'# cluster\n\nalpha  # the scheduler\r\nbob@beta:2222\n\t[::1]:22\n')
    assert launch.read_hosts(str(hosts)) == ['alpha', 'bob@beta:2222', '[::1]:22']
    for text, line, what in [
            (b'alpha\n-oProxyCommand=touch /tmp/x\n', 2,
             r"'-oProxyCommand=touch /tmp/x' is not \[user@\]host\[:port\] \(bad host name"),
            (b'alpha\nbad\x00host\n', 2, r"'bad\\x00host' is not .* \(a NUL byte\)"),
            (b'\xc3\xa9t\xc3\xa9\n', 1, r"'\\xc3\\xa9t\\xc3\\xa9' is not .* \(non-ASCII bytes\)"),
            (b'# only\n\n', None, r'lists no hosts')]:
        hosts.write_bytes(text)
        where = 'host file %s, line %d: ' % (hosts, line) if line else 'host file %s' % hosts
        with pytest.raises(UserError, match=re.escape(where) + '.*' + what):
            launch.read_hosts(str(hosts))


def _recording_popen(monkeypatch):
    """Popen replaced: records what would start and starts nothing (OSError)."""
    started = []

    def popen(argv, **_):
        started.append(list(argv))
        raise OSError('not started (test)')
    monkeypatch.setattr(launch.subprocess, 'Popen', popen)
    monkeypatch.setattr(launch.signal, 'signal', lambda *a: None)
    return started


@pytest.mark.parametrize('bad', [b'bad\x00host', b'-oProxyCommand=touch /tmp/x'])
def test_a_bad_host_file_starts_nothing(tmp_path, monkeypatch, bad):
    """The bad line is the second: the scheduler and a server (first host) used to start before
    the bad line's process failed with a traceback, and were left running."""
    started = _recording_popen(monkeypatch)
    hosts = tmp_path / 'hosts'
    hosts.write_bytes(b'node1.invalid\n' + bad + b'\n')
    with pytest.raises(UserError, match='line 2'):
        launch.main(['-n', '2', '-s', '2', '--launcher', 'ssh', '-H', str(hosts), 'python',
                     'x.py'])
    assert started == []


def test_ssh_command_lines(tmp_path, monkeypatch):
    env = {'DMLC_ROLE': 'worker'}
    ssh = launch.ssh_command('bob@beta', env, ['python', 'x.py'], '/w')
    assert ssh == ['ssh', '-tt', '-o', 'BatchMode=yes', '--', 'bob@beta',
                   'cd /w && env DMLC_ROLE=worker python x.py']
    assert not any('StrictHostKeyChecking' in a for a in ssh)  # ssh's own checking
    ssh = launch.ssh_command('bob@[2001:db8::5]:2200', env, ['x'], '/w', ssh_port=22,
                             check_host_key=False)
    assert ssh[:-1] == ['ssh', '-tt', '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=no',
                        '-p', '2200', '--', 'bob@2001:db8::5']
    assert launch.ssh_command('alpha', env, ['x'], '/w', ssh_port=2022)[4:7] == [
        '-p', '2022', '--']
    with pytest.raises(ValueError):
        launch.ssh_command('-oProxyCommand=touch /tmp/x', env, ['x'], '/w')
    # main: the flag reaches ssh; the scheduler address is the first host's name
    hosts = tmp_path / 'hosts'
    hosts.write_text('carol@alpha:2222\n')
    for flags, checking in (([], True), (['--ssh-no-host-key-check'], False)):
        started = _recording_popen(monkeypatch)
        assert launch.main(['-n', '1', '-H', str(hosts)] + flags + ['python', 'x.py']) == 126
        assert started[0][:-1] == ['ssh', '-tt', '-o', 'BatchMode=yes'] + (
            [] if checking else ['-o', 'StrictHostKeyChecking=no']) + [
                '-p', '2222', '--', 'carol@alpha']
        assert 'DMLC_PS_ROOT_URI=alpha ' in started[0][-1]


def test_host_key_checking_is_a_flag_named_in_the_help(capsys):
    with pytest.raises(SystemExit) as done:
        launch.parse_args(['--help'])
    assert done.value.code == 0
    text = ' '.join(capsys.readouterr().out.split())
    assert '--ssh-no-host-key-check ssh: do not check host keys (StrictHostKeyChecking=no' in text
    assert launch.parse_args(['-n', '1', '-H', 'h', 'x']).ssh_no_host_key_check is False


def test_hostfile_means_ssh_and_local_refuses_it():
    assert launch.parse_args(['-n', '1', '-H', 'h', 'x']).launcher == 'ssh'
    assert launch.parse_args(['-n', '1', 'x']).launcher == 'local'
    with pytest.raises(SystemExit):
        launch.parse_args(['-n', '1', '--launcher', 'local', '-H', 'h', 'x'])


@pytest.mark.parametrize('content, message', [
    (None, 'error: host file {path} (-H): No such file or directory'),
    (b'node1.invalid\nbad\x00host\n',
     "error: host file {path}, line 2: 'bad\\x00host' is not [user@]host[:port] (a NUL byte)"),
    (b'-oProxyCommand=touch {tmp}/pwned\n',
     "error: host file {path}, line 1: '-oProxyCommand=touch {tmp}/pwned' is not "
     "[user@]host[:port] (bad host name: letters, digits, -, _ and dots)"),
])
def test_a_bad_hostfile_is_one_line_and_exit_code_2(tmp_path, content, message):
    """(--launcher ssh given: on the old code, -H alone ran everything locally.)"""
    path = tmp_path / 'hosts'
    if content is not None:
        path.write_bytes(content.replace(b'{tmp}', str(tmp_path).encode()))
    done = subprocess.run([sys.executable, LAUNCH, '-n', '1', '-s', '1', '--launcher', 'ssh',
                           '-H', str(path), '--grace', '1', 'sleep', '30'],
                          cwd=str(tmp_path), capture_output=True, text=True, timeout=30)
    assert (done.returncode, done.stdout, done.stderr) == (
        2, '', message.format(path=path, tmp=tmp_path) + '\n')
    assert not (tmp_path / 'pwned').exists()  # ssh never saw the line as an option


def test_the_docstring_names_only_accepted_kvstores():
    """Every dist_* kvstore the docstring names is one the training scripts accept, or is said
    to be refused."""
    doc = launch.__doc__
    for name in set(re.findall(r'dist_\w+', doc)):
        assert name in KVSTORES or re.search(r'%s`*\s+is\s+refused' % name, doc), name
    assert 'dist_sync' in doc and 'dist_device_sync' in doc
