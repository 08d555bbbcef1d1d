"""Unpickling data files a user was given (verification ``.bin`` sets, CIFAR-10's python
batches) without running anything they hold.

A pickle is a small program: its GLOBAL/STACK_GLOBAL opcodes import any callable and REDUCE
calls it, so ``pickle.load`` on a downloaded file runs whatever its author wanted. The
unpickler here resolves globals from an allow-list only and refuses every other one when the
opcode is read, before anything is called. Containers, numbers, strings and bytes need no
globals at all; what remains is what real data files hold:

- numpy arrays, through numpy's own reconstruct (protocols 0-4) or frombuffer (protocol 5)
  functions, of the dtypes the caller admits (uint8 and bool by default; only numeric ones,
  never object or any other non-numeric dtype), each no larger than the caller's bound
  (default: the pickle's own size, since numpy's pickles carry their data), checked before
  anything is allocated: ``numpy.ndarray(shape, dtype)`` called by a pickle would otherwise
  allocate whatever its shape asks for;
- numpy scalars of those dtypes (a ``np.bool_`` in an issame list);
- bytes as Python 3 writes them in protocols 0-2 (``_codecs.encode(text, 'latin1')``, and
  ``bytes()`` for the empty string), and ``bytearray`` of such bytes.

Python 2 pickles (``str`` images) are read with ``encoding='bytes'`` by the caller.
"""
import codecs
import io
import pickle

import numpy as np

__all__ = ['UnsafePickleError', 'restricted_loads', 'DEFAULT_DTYPES', 'NUMERIC_KINDS']

DEFAULT_DTYPES = (np.dtype(np.uint8), np.dtype(np.bool_))
NUMERIC_KINDS = 'biufc'  # bool, signed, unsigned, float, complex: the only dtypes ever admitted


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


def _size_text(nbytes):
    for unit, size in (('TiB', 2 ** 40), ('GiB', 2 ** 30), ('MiB', 2 ** 20), ('KiB', 2 ** 10)):
        if nbytes >= size:
            return '%.4g %s' % (nbytes / size, unit)
    return '%d bytes' % nbytes


class _ArrayClass:
    """What the global ``numpy.ndarray`` resolves to: numpy's reconstruct takes it as its
    subtype argument, and a call ``numpy.ndarray(shape, dtype)`` (which numpy's own pickles
    never make) is checked for dtype and size before anything is allocated."""

    def __init__(self, unpickler):
        self.unpickler = unpickler

    def __call__(self, shape, dtype=float, *args, **kwargs):
        u = self.unpickler
        what = 'numpy.ndarray(%r, %r%s)' % (shape, dtype, ', ...' if args or kwargs else '')
        if args or kwargs:  # buffer, offset, strides, order: nothing numpy's pickles use
            u._refuse(what)
        dims = u._shape(shape, what)
        checked = u._checked_dtype(dtype, what)
        u._check_size(dims, checked, what)
        return np.zeros(dims, checked)  # zeros, not uninitialised memory


class _Restricted(pickle.Unpickler):
    def __init__(self, file, what, dtypes, encoding, max_array_bytes):
        super().__init__(file, encoding=encoding)
        self.what = what
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        bad = [str(d) for d in self.dtypes if d.kind not in NUMERIC_KINDS or d.hasobject]
        if bad:
            raise ValueError('restricted_loads admits numeric dtypes only, got %s'
                             % ', '.join(bad))
        self.max_array_bytes = int(max_array_bytes)
        self.array_class = _ArrayClass(self)
        self.allowed = self._allow_list()

    def _shape(self, shape, what):
        """``shape`` as a tuple of non-negative Python ints, or a refusal."""
        dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
        if not isinstance(dims, (tuple, list)) or not all(
                isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 0
                for d in dims) or len(dims) > 32:
            self._refuse('%s: the shape must be non-negative integers' % what)
        return tuple(int(d) for d in dims)

    def _checked_dtype(self, spec, what):
        try:
            dtype = np.dtype(spec)
        except (TypeError, ValueError):
            dtype = None
        if dtype is None:
            self._refuse('%s: not a numpy dtype' % what)
        if dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
            self._refuse('%s: dtype %s is not numeric' % (what, dtype))
        if dtype not in self.dtypes:
            self._refuse('%s: numpy dtype %s' % (what, dtype))
        return dtype

    def _check_size(self, dims, dtype, what):
        count = 1
        for d in dims:  # Python ints: no overflow
            count *= d
        nbytes = count * dtype.itemsize
        if nbytes > self.max_array_bytes:
            raise UnsafePickleError(
                '%s: refused to unpickle %s: an array of %s (%d elements of %s) is more than '
                'the file\'s format allows (at most %s); nothing was allocated'
                % (self.what, what, _size_text(nbytes), count, dtype,
                   _size_text(self.max_array_bytes)))

    def _refuse(self, detail):
        raise UnsafePickleError('%s: refused to unpickle %s: a data file here may only hold '
                                'lists, tuples, dicts, numbers, strings, bytes and numpy arrays '
                                'of dtype %s; nothing of the file was run'
                                % (self.what, detail, '/'.join(str(d) for d in self.dtypes)))

    def _dtype(self, spec, *args):
        try:
            dtype = np.dtype(spec)
        except (TypeError, ValueError):
            dtype = None
        if dtype is None:  # refused outside the except clause: no chained traceback
            self._refuse('numpy dtype %r' % (spec,))
        if dtype not in self.dtypes or dtype.kind not in NUMERIC_KINDS or dtype.hasobject:
            self._refuse('numpy dtype %s' % dtype)
        return np.dtype(spec, *args)

    def _reconstruct(self, subtype, shape, placeholder):
        # numpy pickles an array as _reconstruct(ndarray, (0,), b'b') + __setstate__ with the
        # real dtype (built through the checked numpy.dtype) and data; anything else is not
        # numpy's own pickle
        # (its __setstate__ then checks the data's length against shape and dtype before it
        # allocates: the array is no larger than the bytes the pickle holds)
        if subtype is not self.array_class or not isinstance(shape, tuple) \
                or shape != (0,) or placeholder not in (b'b', 'b'):
            self._refuse('_reconstruct(%r, %r, %r)' % (subtype, shape, placeholder))
        return _numpy_reconstruct()(np.ndarray, (0,), b'b')

    def _frombuffer(self, buf, dtype, shape, order):
        # protocol 5 pickles an array as numpy.core.numeric._frombuffer(data, dtype, shape, order)
        what = '_frombuffer(..., %r, %r, %r)' % (dtype, shape, order)
        if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) \
                or order not in ('C', 'F') or not isinstance(dtype, np.dtype):
            self._refuse(what)
        dims = self._shape(shape, what)
        self._check_size(dims, self._checked_dtype(dtype, what), what)
        # a view of the pickle's own bytes: reshape refuses a shape that does not fit them
        return np.frombuffer(buf, dtype).reshape(dims, order=order)

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
        table[('numpy', 'ndarray')] = self.array_class
        table[('numpy', 'dtype')] = self._dtype
        for module in ('builtins', '__builtin__'):
            table[(module, 'bytes')] = self._bytes
            table[(module, 'bytearray')] = self._bytearray
        return table

    def find_class(self, module, name):
        found = self.allowed.get((module, name))
        if found is None:  # refused outside an except clause: no chained traceback
            self._refuse('the global %s.%s' % (module, name))
        return found

    def persistent_load(self, pid):
        self._refuse('a persistent id')


def restricted_loads(raw, what, encoding='ASCII', dtypes=DEFAULT_DTYPES, max_array_bytes=None):
    """Unpickles ``raw`` (bytes) with the allow-list above; ``what`` names the source (the
    file) in errors. ``encoding='bytes'`` reads Python 2 ``str`` as bytes. ``dtypes``: the
    numeric dtypes arrays may have; ``max_array_bytes``: the largest array the format allows
    (default: ``len(raw)``), checked before it is allocated. Raises UnsafePickleError (a
    ValueError) for anything outside the allow-list or the bound, and the usual pickle errors
    for a malformed stream (pickle.UnpicklingError, naming ``what``, for a length field that
    asks for more memory than there is)."""
    limit = len(raw) if max_array_bytes is None else max_array_bytes
    try:
        return _Restricted(io.BytesIO(raw), what, dtypes, encoding, limit).load()
    except MemoryError:
        # a length field of the stream itself (BINBYTES8 and the like) far beyond the file
        error = pickle.UnpicklingError(
            '%s: the pickle asks for more memory than there is (the file holds %s): truncated, '
            'corrupt or not a data file' % (what, _size_text(len(raw))))
    raise error
