"""The layers of the project: data/, symbols/ and src/ are the lower ones and import nothing of
eval/, deploy/, bench/ or the top-level scripts (read from each module's import statements)."""
import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOWER = ('runtime', 'data', 'symbols', 'src')
PROJECT = LOWER + ('eval', 'deploy', 'bench', 'tests')
UPPER = ('eval', 'deploy', 'bench', 'tests', 'ad_mnist', 'ad_face', 'ad_tla', 'demo', 'launch')


def imported_modules(path):
    """Every absolute module name an import statement of ``path`` names (at any depth)."""
    with open(path, encoding='utf-8') as f:
        tree = ast.parse(f.read(), filename=path)
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


def lower_modules():
    for package in LOWER:
        for name in sorted(os.listdir(os.path.join(ROOT, package))):
            if name.endswith('.py'):
                yield os.path.join(package, name)


def test_the_scan_sees_imports():
    names = imported_modules(os.path.join(ROOT, 'ad_mnist.py'))
    assert 'src.fit' in names and 'eval.accuracy' in names


@pytest.mark.parametrize('module', list(lower_modules()))
def test_lower_layers_do_not_import_upper_ones(module):
    upward = [name for name in imported_modules(os.path.join(ROOT, module))
              if name.split('.')[0] in UPPER]
    assert not upward, '%s imports %s' % (module, ', '.join(upward))


@pytest.mark.parametrize('module', [m for m in lower_modules() if m.startswith('runtime')])
def test_runtime_is_the_bottom_floor(module):
    """runtime/ is imported first by every layer: it imports nothing of the project."""
    project = [name for name in imported_modules(os.path.join(ROOT, module))
               if name.split('.')[0] in PROJECT + UPPER and name.split('.')[0] != 'runtime']
    assert not project, '%s imports %s' % (module, ', '.join(project))
