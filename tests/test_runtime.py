"""The start-up module (runtime/): the numpy names MXNet 1.9.1 reads exist after it on any numpy
(1.23 on Python <= 3.11, 1.26 on 3.12, 2.x on 3.13), it adds exactly those MXNet reads, and
every module of the project that imports mxnet imports runtime first."""
import ast
import importlib.util
import os
import warnings

import numpy
import pytest

import runtime

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _resolves(name):
    obj = numpy
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            for part in name.split('.'):
                obj = getattr(obj, part)
        except AttributeError:
            return False
    return True


def numpy_names_mxnet_reads():
    """Every ``<numpy alias>.NAME`` in MXNet's Python package, plus the numpy function names
    its dispatch protocol looks up by string (name -> a file that reads it)."""
    root = os.path.dirname(importlib.util.find_spec('mxnet').origin)
    found = {}
    for folder, _, files in os.walk(root):
        for fname in files:
            if not fname.endswith('.py'):
                continue
            path = os.path.join(folder, fname)
            with open(path, encoding='utf-8', errors='replace') as f, warnings.catch_warnings():
                warnings.simplefilter('ignore')
                tree = ast.parse(f.read())
            aliases = {a.asname or a.name for node in ast.walk(tree)
                       if isinstance(node, ast.Import) for a in node.names if a.name == 'numpy'}
            for node in ast.walk(tree):
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.value.id in aliases:
                    found.setdefault(node.attr, path)
                elif fname == 'numpy_dispatch_protocol.py' and isinstance(node, ast.Assign) \
                        and isinstance(node.value, ast.List):
                    for elt in node.value.elts:
                        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                            found.setdefault(elt.value, path)
    return found


def test_every_numpy_name_mxnet_reads_exists():
    names = numpy_names_mxnet_reads()
    assert 'float32' in names and 'all' in names      # the scan sees plain and listed names
    missing = sorted(n for n in names if not _resolves(n))
    assert not missing, 'numpy %s lacks %s (read by MXNet)' % (numpy.__version__, missing)


def test_only_names_mxnet_reads_are_restored():
    names = numpy_names_mxnet_reads()
    extra = set(runtime.mxnet_numpy_names()) - set(names)
    assert not extra, 'runtime restores names MXNet never reads: %s' % sorted(extra)
    assert set(runtime.NUMPY_ADDED) <= set(names)


def test_restored_names_mean_what_they_meant():
    table = runtime.mxnet_numpy_names()
    values = {name: make() for name, make in table.items() if name != 'trapz'}
    assert values['bool'] is bool and values['int'] is int
    assert values['NINF'] == -float('inf') and str(values['NZERO']) == '-0.0'
    assert values['compat'].basestring is str
    assert values['alltrue']([True, True]) and not values['sometrue']([False, False])
    assert list(values['msort'](numpy.array([[3, 1], [1, 2]]))[:, 0]) == [1, 3]
    assert list(values['in1d']([[1, 5]], [5])) == [False, True]
    assert values['product']([2, 3]) == 6 and values['round_'](2.567, 1) == pytest.approx(2.6)
    if hasattr(numpy, 'trapezoid'):      # trapz's new name, numpy >= 2
        assert table['trapz']()([1.0, 1.0]) == pytest.approx(1.0)
    with pytest.raises(NotImplementedError, match='numpy-financial'):
        values['pmt'](0.1, 10, 100)


def test_mxnet_numpy_front_end_works():
    import mxnet as mx
    a = mx.np.array([[1.0, 2.0], [3.0, 4.0]])
    assert float(mx.np.sum(a)) == 10.0
    assert numpy.allclose(numpy.round(a, 1).asnumpy(), a.asnumpy())  # dispatch protocol


def _project_modules():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d not in ('build', 'results')]
        for fname in files:
            if fname.endswith('.py'):
                yield os.path.relpath(os.path.join(folder, fname), ROOT)


def _imported(node):
    if isinstance(node, ast.Import):
        return [a.name.split('.')[0] for a in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        return [node.module.split('.')[0]]
    return []


def _mxnet_before_runtime(path):
    """The line of an mxnet import that no module-level ``import runtime`` precedes."""
    with open(os.path.join(ROOT, path), encoding='utf-8') as f:
        tree = ast.parse(f.read())
    runtime_lines = [n.lineno for n in tree.body if 'runtime' in _imported(n)]
    first = min(runtime_lines) if runtime_lines else float('inf')
    for node in ast.walk(tree):
        if 'mxnet' in _imported(node) and node.lineno < first:
            return node.lineno
    return None


@pytest.mark.parametrize('path', [p for p in _project_modules()
                                  if not p.startswith('runtime' + os.sep)])
def test_modules_import_runtime_before_mxnet(path):
    line = _mxnet_before_runtime(path)
    assert line is None, '%s imports mxnet at line %d before runtime' % (path, line)
