"""How the entry points end: exit codes, one-line user errors, tracebacks only for bugs.

Exit codes: 0 ok; 2 bad input (one line ``error: ...`` on stderr naming the flag or file and
what was expected); 3 a failed sanity check under --strict; 1 a bug (the traceback, then a line
saying it is one). ``main(argv)`` functions keep raising for programmatic callers (tests);
``run_main(main)`` is what their ``__main__`` blocks call. This module imports nothing of the
project and no MXNet, so launch.py can use it.
"""
import re
import sys
import traceback

EXIT_OK, EXIT_BUG, EXIT_BAD_INPUT, EXIT_CHECK_FAILED = 0, 1, 2, 3
BUG_LINE = 'this is a bug: please report it with the command above'


class UserError(ValueError):
    """Input the user can fix (a flag, a file); its message is the whole report."""


# what a user can fix: bad values and files, and runs that diverged (FloatingPointError says
# which batch and where the last good checkpoint is)
USER_ERRORS = (ValueError, OSError, FloatingPointError)


def one_line(err):
    """The message of ``err`` on one line (MXNet's own errors: the reason, not its trace)."""
    text = mxnet_reason(str(err)) if 'Traceback (most recent call last)' in str(err) \
        else str(err)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return '; '.join(lines) if lines else type(err).__name__


def mxnet_reason(text):
    """The reason in an MXNet error message, which often starts with a C++ stack trace
    ('Traceback (most recent call last):', 'File "...", line N', then 'MXNetError: Check
    failed: ...'): its last other line, without the 'MXNetError:' tag or a '[time] file:line:'
    stamp."""
    lines = [line.strip() for line in str(text).splitlines() if line.strip()]
    reasons = [line for line in lines
               if not line.startswith(('Traceback (most recent call last)', 'File "'))
               and not re.match(r'\[bt\]|\d+: ', line)]
    reason = reasons[-1] if reasons else (lines[-1] if lines else '')
    reason = re.sub(r'^\w*Error:\s*', '', reason)
    return re.sub(r'\[[\d:]+\] [^ ]+:\d+: ', '', reason)   # '[14:01:34] file.cc:202: ' stamps


def report_user_error(err, stream=None):
    print('error: %s' % one_line(err), file=stream or sys.stderr, flush=True)
    return EXIT_BAD_INPUT


def run_main(main, argv=None):
    """Runs ``main(argv)`` and returns the process's exit code: main's own int, 0 for any other
    result; a user error (``USER_ERRORS``) as one line and 2; Ctrl-C as 130; anything else,
    a bug, as its traceback, a line saying so, and 1. Use as ``sys.exit(run_main(main))``."""
    try:
        result = main(argv)
    except KeyboardInterrupt:
        print('interrupted', file=sys.stderr, flush=True)
        return 130
    except USER_ERRORS as err:
        return report_user_error(err)
    except Exception:  # pylint: disable=broad-except  (a bug: show everything)
        traceback.print_exc()
        print(BUG_LINE, file=sys.stderr, flush=True)
        return EXIT_BUG
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    return EXIT_OK
