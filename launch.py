#!/usr/bin/env python
"""Start a distributed MXNet job: a scheduler, servers and workers of MXNet's parameter-server
kvstore, with the flags of MXNet's tools/launch.py (whose copy in the pip wheel does not run: it
imports dmlc_tracker, which the wheel does not ship). The training scripts accept ``--kvstore
dist_sync`` and ``dist_device_sync``; ``dist_async`` is refused (its servers apply each worker's
update alone).

  python launch.py -n 2 -s 1 --launcher local python ad_mnist.py --kvstore dist_sync ...
  python launch.py -n 4 -s 2 --launcher ssh -H hosts python ad_face.py --kvstore dist_sync ...

Every process gets the DMLC_* environment (role, scheduler address and port, numbers of servers
and workers). The scheduler and the servers run ``python -c "import runtime, mxnet"`` (importing
mxnet with DMLC_ROLE=server or scheduler runs that role's loop; runtime first, as everywhere);
the workers run the command. Each output line is prefixed with the process's role and index
("[worker 1]"; a worker's kvstore rank may differ from its index: the training scripts log
their rank). When a process exits
with an error or is killed, or on Ctrl-C, every other process is stopped (SIGTERM, then SIGKILL
after --grace seconds) and the launcher exits with the failing process's code; none is left
behind. If the launcher itself dies without a chance to clean up (kill -9, the OOM killer), the
kernel kills the processes it started (Linux: PR_SET_PDEATHSIG, SIGKILL; a worker command's own
child processes are not covered, the training scripts start none). ssh: hosts from -H (-H
alone means --launcher ssh), one per line, ``host``, ``user@host``, ``host:port`` or
``user@host:port`` (host: a host name, an IPv4 address or an IPv6 one, in brackets with a
port), blank lines and ``#`` comments allowed; anything else is refused, naming the line,
before any process starts. Processes are dealt over the hosts round-robin, the scheduler on the
first; each remote command runs in --sync-dst-dir (default: this directory) under ``ssh -tt``,
so closing the connection stops it. ssh checks host keys as configured (in batch mode a host
not yet in known_hosts is refused: connect once by hand, or ssh-keyscan it);
--ssh-no-host-key-check turns the check off.
"""
import argparse
import ctypes
import ipaddress
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

from src.errors import UserError, run_main

ROLES = ('scheduler', 'server', 'worker')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


_USER = re.compile(r'[A-Za-z0-9_][A-Za-z0-9_.-]*\Z')
_LABEL = r'[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?'
_HOSTNAME = re.compile(r'%s(?:\.%s)*\Z' % (_LABEL, _LABEL))


def parse_host(text):
    """(user or None, host, port or None) of a host-file entry ``[user@]host[:port]``; the host
    is a host name (letters, digits, '-', '_' in dot-separated labels, none starting or ending
    with '-'), an IPv4 address, or an IPv6 one (bare, or in brackets when a port follows).
    ValueError for anything else: nothing that ssh could read as an option or a second
    argument gets through."""
    user, at, rest = text.rpartition('@')
    if at and not _USER.match(user):
        raise ValueError(_not_a_host(repr(text), 'bad user name'))
    port = None
    if rest.startswith('['):
        match = re.match(r'\[([^\]]*)\](?::([^:]*))?\Z', rest)
        if not match:
            raise ValueError(_not_a_host(repr(text), 'bad bracketed address'))
        host, port = match.groups()
        _check_ipv6(text, host)
    elif rest.count(':') > 1:  # a bare IPv6 address (with a port: [address]:port)
        host = rest
        _check_ipv6(text, host)
    else:
        host, colon, port = rest.partition(':')
        if not colon:
            port = None
        if len(host) > 253 or not _HOSTNAME.match(host):
            raise ValueError(_not_a_host(repr(text),
                                         'bad host name: letters, digits, -, _ and dots'))
    if port is not None:
        if not re.match(r'[0-9]{1,5}\Z', port) or not 0 < int(port) < 65536:
            raise ValueError(_not_a_host(repr(text), 'bad port: 1 to 65535'))
        port = int(port)
    return user or None, host, port


def _check_ipv6(text, address):
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        raise ValueError(_not_a_host(repr(text), 'bad IPv6 address')) from None


def _not_a_host(shown, reason):
    return '%s is not [user@]host[:port] (%s)' % (shown, reason)


def read_hosts(path):
    """The entries of a host file, checked (``parse_host``): one per line, blank lines and
    ``#`` comments allowed. UserError, naming the file and the line, for a file that cannot be
    read, a line that is not a host (a NUL byte, an ssh option, two words) or no host at all."""
    try:
        with open(path, 'rb') as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise UserError('host file %s (-H): %s' % (path, err.strerror or err)) from None
    hosts = []
    for number, raw in enumerate(lines, 1):
        entry = raw.split(b'#')[0].strip(b' \t\r\n\f\v')
        if not entry:
            continue
        shown = repr(entry)[1:]  # the bytes as written: b'a\x00b' -> 'a\x00b'
        if b'\0' in entry:
            problem = _not_a_host(shown, 'a NUL byte')
        else:
            try:
                parse_host(entry.decode('ascii'))
                hosts.append(entry.decode('ascii'))
                continue
            except UnicodeDecodeError:
                problem = _not_a_host(shown, 'non-ASCII bytes')
            except ValueError as err:
                problem = str(err)
        raise UserError('host file %s, line %d: %s' % (path, number, problem))
    if not hosts:
        raise UserError('host file %s (-H) lists no hosts ([user@]host[:port], one per line)'
                        % path)
    return hosts


def plan(num_workers, num_servers, hosts=None):
    """[(role, index, host)]: the scheduler, then the servers, then the workers; with hosts,
    dealt round-robin (the scheduler on the first)."""
    procs = [('scheduler', 0)] + [('server', i) for i in range(num_servers)] + \
        [('worker', i) for i in range(num_workers)]
    if not hosts:
        return [(role, i, None) for role, i in procs]
    out = [('scheduler', 0, hosts[0])]
    for k, (role, i) in enumerate(procs[1:]):
        out.append((role, i, hosts[k % len(hosts)]))
    return out


def dmlc_env(role, root_uri, root_port, num_workers, num_servers, interface=None, extra=()):
    env = {'DMLC_ROLE': role, 'DMLC_PS_ROOT_URI': root_uri, 'DMLC_PS_ROOT_PORT': str(root_port),
           'DMLC_NUM_WORKER': str(num_workers), 'DMLC_NUM_SERVER': str(num_servers)}
    if interface:
        env['DMLC_INTERFACE'] = interface
    env.update(extra)
    return env


def role_command(role, command, python):
    """What a process runs: the workers the user's command, the others only mxnet's loop."""
    return list(command) if role == 'worker' else [python, '-c', 'import runtime, mxnet']


def ssh_command(host, env, command, directory, ssh_port=None, check_host_key=True):
    """The ssh invocation that runs ``command`` with ``env`` in ``directory`` on ``host`` (a
    host-file entry, checked again here: ValueError if it is not one). ssh's options end with
    ``--``; a port in the entry wins over ``ssh_port``. ``check_host_key=False`` adds
    StrictHostKeyChecking=no (--ssh-no-host-key-check)."""
    user, name, port = parse_host(host)
    exports = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    remote = 'cd %s && env %s %s' % (shlex.quote(directory), exports,
                                     ' '.join(shlex.quote(c) for c in command))
    ssh = ['ssh', '-tt', '-o', 'BatchMode=yes']
    if not check_host_key:
        ssh += ['-o', 'StrictHostKeyChecking=no']
    port = port or ssh_port
    if port:
        ssh += ['-p', str(port)]
    return ssh + ['--', '%s@%s' % (user, name) if user else name, remote]


# Linux: the children die with the launcher even when it cannot stop them (kill -9, the OOM
# killer): PR_SET_PDEATHSIG, set in the child between fork and exec
PR_SET_PDEATHSIG = 1
DEATH_SIGNAL = signal.SIGKILL  # sure: a SIGTERM handler could block on the dead peers forever


def _libc_prctl():
    if not sys.platform.startswith('linux'):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def die_with_parent(sig=DEATH_SIGNAL, parent=None):
    """A Popen preexec_fn that makes the child get ``sig`` when the thread that starts it
    exits (None where prctl is missing). ``parent`` (default: the caller's pid, taken now) is
    the process the child must still be the child of after prctl: if it died between fork and
    prctl (the child already re-parented, no signal will come), the child signals itself. Only
    async-signal-safe work runs in the child (prctl, getppid, kill). PR_SET_PDEATHSIG fires
    when the starting *thread* ends: start children from the main thread."""
    if _PRCTL is None:
        return None
    parent = os.getpid() if parent is None else parent
    option, arg = ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(int(sig))
    zero = ctypes.c_ulong(0)

    def preexec():
        _PRCTL(option, arg, zero, zero, zero)
        if os.getppid() != parent:
            os.kill(os.getpid(), int(sig))
    return preexec


class Job:
    """The launched processes, their prefixed output and their teardown."""

    def __init__(self, grace=10.0, stream=None):
        self.procs = []  # (name, Popen)
        self.grace = grace
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.threads = []

    def start(self, name, argv, env):
        """Starts one process in its own session and process group (stopped as a group), killed
        by the kernel if the launcher dies (``die_with_parent``: call from the main thread)."""
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                preexec_fn=die_with_parent())
        self.procs.append((name, proc))
        thread = threading.Thread(target=self._relay, args=(name, proc), daemon=True)
        thread.start()
        self.threads.append(thread)
        self.say('started %s (pid %d): %s' % (name, proc.pid, ' '.join(argv)))
        return proc

    def say(self, text):
        with self.lock:
            print('launch.py: %s' % text, file=self.stream, flush=True)

    def _relay(self, name, proc):
        for raw in iter(proc.stdout.readline, b''):
            line = raw.decode('utf-8', 'replace').rstrip('\r\n')
            with self.lock:
                print('[%s] %s' % (name, line), file=self.stream, flush=True)

    def stop_all(self):
        """SIGTERM to every live process group, SIGKILL to what is left after the grace time."""
        live = [(n, p) for n, p in self.procs if p.poll() is None]
        for _, proc in live:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.time() + self.grace
        for name, proc in live:
            try:
                proc.wait(max(0.0, deadline - time.time()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait()
                self.say('%s (pid %d) did not stop in %gs: killed' % (name, proc.pid,
                                                                      self.grace))
        for thread in self.threads:
            thread.join(timeout=2)

    def wait(self, poll=0.2):
        """Waits until every worker has exited 0 (then for the rest to finish) or one process
        fails (then stops the others). Returns the exit code for the launcher."""
        workers = [(n, p) for n, p in self.procs if n.startswith('worker')]
        while True:
            for name, proc in self.procs:
                code = proc.poll()
                if code not in (None, 0):
                    self.say('%s (pid %d) %s; stopping the other processes'
                             % (name, proc.pid, _describe_exit(code)))
                    self.stop_all()
                    return code if code > 0 else 128 - code
            if all(p.poll() == 0 for _, p in workers):
                others = [(n, p) for n, p in self.procs if not n.startswith('worker')]
                deadline = time.time() + self.grace
                while any(p.poll() is None for _, p in others) and time.time() < deadline:
                    time.sleep(poll)
                left = [n for n, p in others if p.poll() is None]
                if left:
                    self.say('every worker finished; %s still running: stopped'
                             % ', '.join(left))
                self.stop_all()
                failed = [(n, p.returncode) for n, p in others if p.returncode not in (0, None)
                          and n not in left]
                if failed:
                    self.say('%s %s' % (failed[0][0], _describe_exit(failed[0][1])))
                    return failed[0][1] if failed[0][1] > 0 else 128 - failed[0][1]
                self.say('every worker finished')
                return 0
            time.sleep(poll)


def _signal_group(proc, sig):
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        pass


def _describe_exit(code):
    if code < 0:
        try:
            return 'was killed by %s' % signal.Signals(-code).name
        except ValueError:
            return 'was killed by signal %d' % -code
    return 'exited with code %d' % code


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     epilog=__doc__.split('\n\n', 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-n', '--num-workers', required=True, type=int,
                        help='number of worker processes')
    parser.add_argument('-s', '--num-servers', type=int, default=None,
                        help='number of server processes (default: as many as workers)')
    parser.add_argument('-H', '--hostfile', default=None,
                        help='hosts for --launcher ssh, one [user@]host[:port] per line (checked '
                        'before anything starts); -H alone means --launcher ssh')
    parser.add_argument('--launcher', default=None, choices=('local', 'ssh'),
                        help='local: every process on this machine (loopback); ssh: on the '
                        'hosts (default: ssh with -H, else local)')
    parser.add_argument('--env', action='append', default=[], metavar='NAME:VALUE',
                        help='an environment variable for every process (repeatable)')
    parser.add_argument('--interface', default=None,
                        help='network interface ps-lite binds (DMLC_INTERFACE; local: lo)')
    parser.add_argument('--port', type=int, default=0,
                        help='scheduler port (default: a free one)')
    parser.add_argument('--sync-dst-dir', default=None,
                        help='ssh: the directory the remote commands run in (default: this one)')
    parser.add_argument('--ssh-port', type=int, default=None,
                        help='ssh: port of sshd (a host line\'s :port wins)')
    parser.add_argument('--ssh-no-host-key-check', action='store_true',
                        help='ssh: do not check host keys (StrictHostKeyChecking=no: a host '
                        'impersonating one of yours goes unnoticed). Default: ssh checks them '
                        'as configured, and in batch mode refuses a host not yet in '
                        'known_hosts (connect once by hand, or ssh-keyscan it)')
    parser.add_argument('--grace', type=float, default=10.0,
                        help='seconds between SIGTERM and SIGKILL when stopping processes')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the worker command, e.g. python ad_mnist.py --kvstore dist_sync')
    args = parser.parse_args(argv)
    if args.num_workers < 1 or (args.num_servers is not None and args.num_servers < 1):
        parser.error('-n and -s must be >= 1')
    if not args.command:
        parser.error('give the command the workers run')
    if args.launcher is None:
        args.launcher = 'ssh' if args.hostfile else 'local'
    if args.launcher == 'ssh' and not args.hostfile:
        parser.error('--launcher ssh needs -H HOSTFILE')
    if args.launcher == 'local' and args.hostfile:
        parser.error('-H is for --launcher ssh (local runs every process on this machine)')
    if args.ssh_port is not None and not 0 < args.ssh_port < 65536:
        parser.error('--ssh-port must lie in 1..65535, got %d' % args.ssh_port)
    try:
        args.env = [env_pair(text) for text in args.env]
    except ValueError as err:
        parser.error(str(err))
    return args


def env_pair(text):
    """(NAME, VALUE) of an --env NAME:VALUE or NAME=VALUE; the name ends at the first ':' or
    '=', so a value may hold either (LD_LIBRARY_PATH=/a:/b)."""
    match = re.match(r'([A-Za-z_][A-Za-z0-9_]*)[:=](.*)$', text, re.S)
    if not match:
        raise ValueError('--env takes NAME:VALUE or NAME=VALUE with NAME a variable name, got %r'
                         % text)
    return match.group(1), match.group(2)


def main(argv=None):
    """Runs the job; returns the launcher's exit code. Everything is checked (the host file, the
    ssh command lines) before the first process starts."""
    args = parse_args(argv)
    num_servers = args.num_servers or args.num_workers
    extra = dict(args.env)
    hosts = read_hosts(args.hostfile) if args.launcher == 'ssh' else None
    root = parse_host(hosts[0])[1] if hosts else '127.0.0.1'
    port = args.port or (free_port() if not hosts else 9091)
    interface = args.interface or (None if hosts else 'lo')
    directory = args.sync_dst_dir or os.getcwd()
    # the scheduler and servers need mxnet: the worker command's python if it names one
    python = args.command[0] if 'python' in os.path.basename(args.command[0]) else \
        sys.executable
    starts = []  # (name, what it runs, argv, env): all built before any starts
    for role, index, host in plan(args.num_workers, num_servers, hosts):
        env = dmlc_env(role, root, port, args.num_workers, num_servers, interface, extra)
        name = role if role == 'scheduler' else '%s %d' % (role, index)
        command = role_command(role, args.command, python)
        if host is None:
            starts.append((name, command, command, dict(os.environ, **env)))
        else:
            starts.append((name, command, ssh_command(host, env, command, directory,
                                                      args.ssh_port,
                                                      not args.ssh_no_host_key_check),
                           dict(os.environ)))
    job = Job(args.grace)

    def interrupt(signum, _frame):
        job.say('%s: stopping every process' % signal.Signals(signum).name)
        job.stop_all()
        sys.exit(128 + signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    for name, command, argv, env in starts:
        try:
            job.start(name, argv, env)
        except OSError as err:  # not found, not executable: stop what already runs
            job.say('cannot start the %s (%s): %s; stopping every process'
                    % (name, ' '.join(command), err))
            job.stop_all()
            return 127 if isinstance(err, FileNotFoundError) else 126
    return job.wait()


if __name__ == '__main__':
    sys.exit(run_main(main))
