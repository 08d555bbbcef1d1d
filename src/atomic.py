"""Atomic file writes: write to a temporary file in the target's folder, then rename it over the
target, so a crash never leaves a half-written file where a good one was."""
import os
import tempfile


def atomic_write(path, write):
    """Calls ``write(tmp_path)`` and moves ``tmp_path`` to ``path``; on error the target is
    untouched and the temporary file removed. The file gets the usual umask permissions."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.' + os.path.basename(path) + '.', suffix='.tmp',
                               dir=directory)
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
