"""The project's bottom floor: what has to hold before MXNet 1.9.1 is imported, for every entry
point (training scripts, eval/, deploy/, bench/ tools, tests), and what every layer may use.

Importing ``runtime`` (before ``mxnet``; every module of the project that imports mxnet imports
this first) does two things, once per process:

1. **numpy names MXNet 1.9.1 reads and newer numpy removed.** MXNet 1.9.1 was built when numpy
   1.23 was current; its Python package reads ``np.bool`` (removed in numpy 1.24, back in 2.0 as
   ``np.bool_``), and on numpy 2 also ``np.PZERO``, ``np.NaN``, ``np.alltrue``, ``np.compat`` ...
   Each name that the running numpy lacks is restored to what it stood for
   (``MXNET_NUMPY_NAMES``); nothing that numpy has is touched. numpy's removed financial
   functions (``pmt``, ``npv`` ...), which MXNet's numpy front end only re-exports, become
   functions that raise a clear error if ever called.
2. **oneDNN capped at AVX2** (``DNNL_MAX_CPU_ISA=AVX2``) unless the user set
   ``DNNL_MAX_CPU_ISA`` or ``MXNET_MKLDNN_ENABLED`` themselves. MXNet 1.9.1's oneDNN has kernels
   that fail on AVX-512 CPUs where the AVX2 ones run (README, "Portability"), and one kernel
   set on every x86-64 CPU also makes float32 results the same across machines. The cost,
   measured on an AVX-512 EPYC: 0-8% of training speed (README). ``DNNL_MAX_CPU_ISA=ALL`` lifts
   the cap; the project's own networks avoid the known AVX-512 failures either way
   (tests/test_kernel_sweep.py runs them under every ISA level the CPU has).

``setup_logging`` configures logging for a command-line tool and logs what was decided, once.
"""
import logging
import math
import os
import sys
import types
import warnings

import numpy as _np

ISA_CAP = 'AVX2'
_FINANCIAL = ('mirr', 'npv', 'pmt', 'ppmt', 'pv', 'rate')   # those MXNet re-exports


def _removed_financial(name):
    def removed(*args, **kwargs):
        raise NotImplementedError(
            'numpy.%s was removed from numpy in 1.20 (NEP 32); MXNet 1.9.1 only re-exports it. '
            'Use the numpy-financial package instead.' % name)
    removed.__name__ = name
    return removed


def mxnet_numpy_names():
    """name -> a function giving what it stood for, for every numpy name MXNet 1.9.1's Python
    package reads that some numpy release since 1.24 removed (tests/test_runtime.py scans its
    source for them). Values are made only for the names the running numpy lacks."""
    names = {
        'bool': lambda: bool, 'int': lambda: int,                  # gone in numpy 1.24
        'NaN': lambda: math.nan, 'NAN': lambda: math.nan,          # gone in numpy 2.0
        'Inf': lambda: math.inf, 'PINF': lambda: math.inf, 'NINF': lambda: -math.inf,
        'PZERO': lambda: 0.0, 'NZERO': lambda: -0.0,
        'compat': lambda: types.SimpleNamespace(basestring=str),
        'alltrue': lambda: _np.all, 'sometrue': lambda: _np.any,
        'msort': lambda: (lambda a: _np.sort(a, axis=0)),
        'in1d': lambda: (lambda ar1, ar2, assume_unique=False, invert=False: _np.isin(
            _np.asarray(ar1).ravel(), ar2, assume_unique=assume_unique, invert=invert)),
        'trapz': lambda: _np.trapezoid,    # made only where trapz is gone (numpy >= 2)
        'product': lambda: _np.prod, 'round_': lambda: _np.round,
    }
    names.update((name, (lambda n=name: _removed_financial(n))) for name in _FINANCIAL)
    return names


def _restore_numpy_names():
    """Adds each missing name; returns the names added."""
    added = []
    for name, make in mxnet_numpy_names().items():
        if name in _np.__dict__:
            continue
        try:                              # numpy's module __getattr__ may still provide it
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                getattr(_np, name)
            continue
        except AttributeError:
            pass
        setattr(_np, name, make())
        added.append(name)
    return added


def _cap_onednn(environ):
    """Sets DNNL_MAX_CPU_ISA unless the user chose; returns the sentence to log."""
    for key in ('DNNL_MAX_CPU_ISA', 'MKLDNN_MAX_CPU_ISA', 'MXNET_MKLDNN_ENABLED'):
        if key in environ:
            return 'oneDNN: %s=%s set by the user; the project leaves the ISA as it is' % (
                key, environ[key])
    environ['DNNL_MAX_CPU_ISA'] = ISA_CAP
    late = ' (mxnet was imported before runtime: kernels already made keep their ISA)' \
        if 'mxnet' in sys.modules else ''
    return ('oneDNN capped at %s (DNNL_MAX_CPU_ISA=%s; set DNNL_MAX_CPU_ISA=ALL to lift it)%s'
            % (ISA_CAP, ISA_CAP, late))


NUMPY_ADDED = _restore_numpy_names()
ONEDNN_NOTE = _cap_onednn(os.environ)
_logged = []


def startup_note():
    """One line saying what this module decided."""
    numpy_part = 'numpy %s%s' % (_np.__version__, ': restored for MXNet 1.9.1: ' +
                                 ', '.join(NUMPY_ADDED) if NUMPY_ADDED else '')
    return '%s; %s' % (ONEDNN_NOTE, numpy_part)


def setup_logging(level=logging.INFO, format='%(asctime)s %(message)s', stream=None):  # noqa: A002
    """logging.basicConfig for a command-line tool, then the start-up note (once per process)."""
    logging.basicConfig(level=level, format=format, stream=stream)
    if not _logged:
        _logged.append(True)
        logging.getLogger('runtime').info('%s', startup_note())
