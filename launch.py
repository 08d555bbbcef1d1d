#!/usr/bin/env python
"""Start a distributed MXNet job: a scheduler, servers and workers of MXNet's parameter-server
kvstore (``--kvstore dist_sync`` / ``dist_device_sync`` / ``dist_async``), with the flags of
MXNet's tools/launch.py (whose copy in the pip wheel does not run: it imports dmlc_tracker,
which the wheel does not ship).

  python launch.py -n 2 -s 1 --launcher local python ad_mnist.py --kvstore dist_sync ...
  python launch.py -n 4 -s 2 --launcher ssh -H hosts python ad_face.py --kvstore dist_sync ...

Every process gets the DMLC_* environment (role, scheduler address and port, numbers of servers
and workers). The scheduler and the servers run ``python -c "import runtime, mxnet"`` (importing
mxnet with DMLC_ROLE=server or scheduler runs that role's loop; runtime first, as everywhere); the workers run the command. Each
output line is prefixed with the process's role and index ("[worker 1]"; a worker's kvstore
rank may differ from its index: the training scripts log their rank). When a process exits
with an error or is killed, or on Ctrl-C, every other process is stopped (SIGTERM, then SIGKILL
after --grace seconds) and the launcher exits with the failing process's code; none is left
behind. ssh: hosts from -H (one per line, ``host`` or ``user@host``), processes dealt over them
round-robin, the scheduler on the first; each remote command runs in --sync-dst-dir (default:
this directory) under ``ssh -tt``, so closing the connection stops it.
"""
import argparse
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time

ROLES = ('scheduler', 'server', 'worker')


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def read_hosts(path):
    with open(path) as f:
        hosts = [line.split('#')[0].strip() for line in f]
    hosts = [h for h in hosts if h]
    if not hosts:
        raise SystemExit('launch.py: %s lists no hosts (one host or user@host per line)' % path)
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


def ssh_command(host, env, command, directory, ssh_port=None):
    """The ssh invocation that runs ``command`` with ``env`` in ``directory`` on ``host``."""
    exports = ' '.join('%s=%s' % (k, shlex.quote(v)) for k, v in sorted(env.items()))
    remote = 'cd %s && env %s %s' % (shlex.quote(directory), exports,
                                     ' '.join(shlex.quote(c) for c in command))
    ssh = ['ssh', '-tt', '-o', 'StrictHostKeyChecking=no', '-o', 'BatchMode=yes']
    if ssh_port:
        ssh += ['-p', str(ssh_port)]
    return ssh + [host, remote]


class Job:
    """The launched processes, their prefixed output and their teardown."""

    def __init__(self, grace=10.0, stream=None):
        self.procs = []  # (name, Popen)
        self.grace = grace
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.threads = []

    def start(self, name, argv, env):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
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
    parser.add_argument('-H', '--hostfile', default=None, help='hosts for --launcher ssh')
    parser.add_argument('--launcher', default='local', choices=('local', 'ssh'),
                        help='local: every process on this machine (loopback); ssh: on the hosts')
    parser.add_argument('--env', action='append', default=[], metavar='NAME:VALUE',
                        help='an environment variable for every process (repeatable)')
    parser.add_argument('--interface', default=None,
                        help='network interface ps-lite binds (DMLC_INTERFACE; local: lo)')
    parser.add_argument('--port', type=int, default=0,
                        help='scheduler port (default: a free one)')
    parser.add_argument('--sync-dst-dir', default=None,
                        help='ssh: the directory the remote commands run in (default: this one)')
    parser.add_argument('--ssh-port', type=int, default=None, help='ssh: port of sshd')
    parser.add_argument('--grace', type=float, default=10.0,
                        help='seconds between SIGTERM and SIGKILL when stopping processes')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the worker command, e.g. python ad_mnist.py --kvstore dist_sync')
    args = parser.parse_args(argv)
    if args.num_workers < 1 or (args.num_servers is not None and args.num_servers < 1):
        parser.error('-n and -s must be >= 1')
    if not args.command:
        parser.error('give the command the workers run')
    if args.launcher == 'ssh' and not args.hostfile:
        parser.error('--launcher ssh needs -H HOSTFILE')
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
    args = parse_args(argv)
    num_servers = args.num_servers or args.num_workers
    extra = dict(args.env)
    hosts = read_hosts(args.hostfile) if args.launcher == 'ssh' else None
    root = hosts[0].split('@')[-1] if hosts else '127.0.0.1'
    port = args.port or (free_port() if not hosts else 9091)
    interface = args.interface or (None if hosts else 'lo')
    directory = args.sync_dst_dir or os.getcwd()
    job = Job(args.grace)
    # the scheduler and servers need mxnet: the worker command's python if it names one
    python = args.command[0] if 'python' in os.path.basename(args.command[0]) else \
        sys.executable

    def interrupt(signum, _frame):
        job.say('%s: stopping every process' % signal.Signals(signum).name)
        job.stop_all()
        sys.exit(128 + signum)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, interrupt)
    for role, index, host in plan(args.num_workers, num_servers, hosts):
        env = dmlc_env(role, root, port, args.num_workers, num_servers, interface, extra)
        name = role if role == 'scheduler' else '%s %d' % (role, index)
        command = role_command(role, args.command, python)
        try:
            if host is None:
                job.start(name, command, dict(os.environ, **env))
            else:
                job.start(name, ssh_command(host, env, command, directory, args.ssh_port),
                          dict(os.environ))
        except OSError as err:  # not found, not executable: stop what already runs
            job.say('cannot start the %s (%s): %s; stopping every process'
                    % (name, ' '.join(command), err))
            job.stop_all()
            return 127 if isinstance(err, FileNotFoundError) else 126
    return job.wait()


if __name__ == '__main__':
    sys.exit(main())
