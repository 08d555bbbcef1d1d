"""Reader for the IDX format of MNIST / Fashion-MNIST (``*-idx3-ubyte`` images, ``*-idx1-ubyte``
labels), raw or gzip-compressed. Format: 2 zero bytes, a type byte (0x08 = uint8), the number of
dimensions, one big-endian uint32 per dimension, then the data."""
import gzip
import os
import struct

import numpy as np


def read_idx(path):
    """The array stored in an IDX file, with an error naming the file on any inconsistency."""
    opener = gzip.open if path.endswith('.gz') else open
    try:
        with opener(path, 'rb') as f:
            raw = f.read()
    except (OSError, EOFError) as err:  # gzip raises these on a truncated or corrupt stream
        raise ValueError('%s: cannot read IDX file (%s)' % (path, err)) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError('%s: not an IDX file (expected magic 0x0000 followed by type and rank)'
                         % path)
    if raw[2] != 0x08:
        raise ValueError('%s: IDX type 0x%02x is not supported (expected 0x08, unsigned byte)'
                         % (path, raw[2]))
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError('%s: truncated IDX header (%d dimensions announced)' % (path, ndim))
    shape = struct.unpack('>%dI' % ndim, raw[4:header])
    expected = int(np.prod(shape))
    found = len(raw) - header
    if found != expected:
        raise ValueError('%s: IDX header announces shape %s = %d bytes of data, the file has %d%s'
                         % (path, shape, expected, found,
                            ' (truncated?)' if found < expected else ''))
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def find_idx(directory, stem):
    """Path of ``stem`` or ``stem.gz`` in directory, or None."""
    for name in (stem, stem + '.gz'):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None
