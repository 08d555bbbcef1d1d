"""Atomic file writes: write to a temporary file in the target's folder, then rename it over the
target, so a crash never leaves a half-written file where a good one was.

The temporary file is ``.<name>.<host>.<pid>.<random>.tmp`` beside the target: a process killed
mid-write leaves it behind, and ``remove_stale_temporaries`` (called before a run starts
writing) removes those whose writer, on this host, is no longer alive.
"""
import logging
import os
import re
import socket
import tempfile

_HOST = re.sub(r'[^A-Za-z0-9_-]', '_', socket.gethostname())[:40] or 'host'
_TEMPORARY = re.compile(r'^\.(?P<name>.+)\.(?P<host>[A-Za-z0-9_-]+)\.(?P<pid>\d+)\.[^.]+\.tmp$')


def atomic_write(path, write):
    """Calls ``write(tmp_path)`` and moves ``tmp_path`` to ``path``; on error the target is
    untouched and the temporary file removed. The file gets the usual umask permissions."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.%s.%s.%d.' % (os.path.basename(path), _HOST, os.getpid()),
                               suffix='.tmp', dir=directory)
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_temporaries(directory, name_prefix=''):
    """Removes the temporary files of interrupted ``atomic_write`` calls in ``directory`` whose
    target name starts with ``name_prefix`` and whose writer (a process of this host) has
    exited. Files of other hosts or of live processes are left alone. Returns the removed
    paths (and logs them)."""
    removed = []
    if not os.path.isdir(directory):
        return removed
    for entry in sorted(os.listdir(directory)):
        match = _TEMPORARY.match(entry)
        if (not match or not match.group('name').startswith(name_prefix)
                or match.group('host') != _HOST or _alive(int(match.group('pid')))):
            continue
        path = os.path.join(directory, entry)
        try:
            os.remove(path)
        except FileNotFoundError:
            continue
        removed.append(path)
        logging.info('removed %s, left behind by an interrupted write (process %s)', path,
                     match.group('pid'))
    return removed
