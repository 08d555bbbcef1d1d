"""Unpickling data files a user was given (verification ``.bin`` sets, CIFAR-10's python
batches) without running anything they hold.

A pickle is a small program: its GLOBAL/STACK_GLOBAL opcodes import any callable and REDUCE
calls it, so ``pickle.load`` on a downloaded file runs whatever its author wanted. The
unpickler here resolves globals from an allow-list only and refuses every other one when the
opcode is read, before anything is called. Containers, numbers, strings and bytes need no
globals at all; what remains is what real data files hold:

- numpy arrays, through numpy's own reconstruct (protocols 0-4) or frombuffer (protocol 5)
  functions, of the dtypes the caller admits (uint8 and bool by default), never of object
  dtype;
- numpy scalars of those dtypes (a ``np.bool_`` in an issame list);
- bytes as Python 3 writes them in protocols 0-2 (``_codecs.encode(text, 'latin1')``, and
  ``bytes()`` for the empty string), and ``bytearray`` of such bytes.

Python 2 pickles (``str`` images) are read with ``encoding='bytes'`` by the caller.
"""
import codecs
import io
import pickle

import numpy as np

__all__ = ['UnsafePickleError', 'restricted_loads', 'DEFAULT_DTYPES']

DEFAULT_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The pickle asks for a global outside the allow-list; nothing of it was run."""


def _numpy_reconstruct():
    try:
        from numpy.core.multiarray import _reconstruct
    except ImportError:  # numpy >= 2 keeps it in numpy._core
        from numpy._core.multiarray import _reconstruct  # pylint: disable=import-error
    return _reconstruct


def _numpy_scalar():
    try:
        from numpy.core.multiarray import scalar
    except ImportError:
        from numpy._core.multiarray import scalar  # pylint: disable=import-error
    return scalar


class _Restricted(pickle.Unpickler):
    def __init__(self, file, what, dtypes, encoding):
        super().__init__(file, encoding=encoding)
        self.what = what
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        self.allowed = self._allow_list()

    def _refuse(self, detail):
        raise UnsafePickleError('%s: refused to unpickle %s: a data file here may only hold '
                                'lists, tuples, dicts, numbers, strings, bytes and numpy arrays '
                                'of dtype %s; nothing of the file was run'
                                % (self.what, detail, '/'.join(str(d) for d in self.dtypes)))

    def _dtype(self, spec, *args):
        try:
            dtype = np.dtype(spec)
        except TypeError:
            self._refuse('numpy dtype %r' % (spec,))
        if dtype not in self.dtypes:
            self._refuse('numpy dtype %s' % dtype)
        return np.dtype(spec, *args)

    def _reconstruct(self, subtype, shape, placeholder):
        # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + __setstate__ with the
        # real dtype (built through the checked numpy.dtype) and data; anything else is not
        # numpy's own pickle
        if subtype is not np.ndarray or tuple(shape) != (0,) or placeholder not in (b'b', 'b'):
            self._refuse('_reconstruct(%r, %r, %r)' % (subtype, shape, placeholder))
        return _numpy_reconstruct()(np.ndarray, (0,), b'b')

    def _frombuffer(self, buf, dtype, shape, order):
        # protocol 5 pickles an array as numpy.core.numeric._frombuffer(data, dtype, shape, order)
        if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or order not in 'CF' \
                or not isinstance(dtype, np.dtype) or dtype not in self.dtypes:
            self._refuse('_frombuffer(..., %r, %r, %r)' % (dtype, shape, order))
        return np.frombuffer(buf, dtype).reshape(shape, order=order)

    def _scalar(self, dtype, *args):
        if not isinstance(dtype, np.dtype) or dtype not in self.dtypes:
            self._refuse('a numpy scalar of dtype %s' % (dtype,))
        return _numpy_scalar()(dtype, *args)

    def _encode(self, text, encoding='utf-8'):
        if codecs.lookup(encoding).name != 'iso8859-1' or not isinstance(text, str):
            self._refuse('_codecs.encode(..., %r)' % (encoding,))
        return codecs.encode(text, encoding)

    def _bytes(self, *args):
        if args:  # bytes(n) would allocate n bytes: only the empty bytes of protocols 0-2
            self._refuse('bytes%r' % (args,))
        return b''

    def _bytearray(self, *args):
        if len(args) > 2 or (args and not isinstance(args[0], (bytes, str))):
            self._refuse('bytearray of %s' % (type(args[0]).__name__ if args else 'nothing'))
        return bytearray(*args)

    def _allow_list(self):
        table = {('_codecs', 'encode'): self._encode}
        for module in ('numpy.core.multiarray', 'numpy._core.multiarray'):
            table[(module, '_reconstruct')] = self._reconstruct
            table[(module, 'scalar')] = self._scalar
        for module in ('numpy.core.numeric', 'numpy._core.numeric'):
            table[(module, '_frombuffer')] = self._frombuffer
        table[('numpy', 'ndarray')] = np.ndarray
        table[('numpy', 'dtype')] = self._dtype
        for module in ('builtins', '__builtin__'):
            table[(module, 'bytes')] = self._bytes
            table[(module, 'bytearray')] = self._bytearray
        return table

    def find_class(self, module, name):
        try:
            return self.allowed[(module, name)]
        except KeyError:
            self._refuse('the global %s.%s' % (module, name))

    def persistent_load(self, pid):
        self._refuse('a persistent id')


def restricted_loads(raw, what, encoding='ASCII', dtypes=DEFAULT_DTYPES):
    """Unpickles ``raw`` (bytes) with the allow-list above; ``what`` names the source (the
    file) in errors. ``encoding='bytes'`` reads Python 2 ``str`` as bytes. Raises
    UnsafePickleError (a ValueError) for anything outside the allow-list, and the usual
    pickle errors for a malformed stream."""
    return _Restricted(io.BytesIO(raw), what, dtypes, encoding).load()
