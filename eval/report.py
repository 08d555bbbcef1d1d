"""Writers for attack results: a Markdown table (stdout and file), JSON, and a PNG curve.

A results dict (what ``eval.attack_mnist.evaluate_robustness`` returns, and what
``eval/attack_face.py`` builds) holds::

    {'metric': 'robust_accuracy' | 'hit_rate',
     'eps': [e1, e2, ...],                       # one column per eps
     'curves': [{'model': name, 'mode': 'white-box' | 'transfer from <source>',
                 'attack': 'pgd', 'clean': 0.99, 'values': [v1, v2, ...], 'params': {...}},
                ...],                            # fractions in [0, 1], values aligned with eps
     'checks': [{'name': ..., 'passed': bool, 'detail': ...}, ...],   # eval.sanity
     ...}                                        # anything else (settings, probes) is kept

One curve per (model, mode, attack), so several models (e.g. vanilla and MTER) share a table and
a figure: in the plot colour = attack, line style = model/mode. ``clean`` (accuracy on clean
inputs, or clean verification accuracy for hit rates) sits beside every row of the table.
The table prints fractions as percentages with ``DIGITS`` decimals (``percent``).
"""
import json
import os
import sys
import textwrap

METRICS = {
    'robust_accuracy': {'label': 'robust accuracy (%)', 'attack_lowers': True},
    'hit_rate': {'label': 'hit rate (%)', 'attack_lowers': False},
}
DIGITS = 2
LINESTYLES = ('-', '--', ':', '-.')


def percent(value):
    """A fraction as the table prints it (e.g. 0.98765 -> '98.77')."""
    return '%.*f' % (DIGITS, 100.0 * value)


def format_eps(eps):
    return '%g' % eps


def make_curve(model, attack, values, clean, mode='white-box', params=None):
    return {'model': model, 'mode': mode, 'attack': attack, 'clean': float(clean),
            'values': [float(v) for v in values], 'params': dict(params or {})}


def validate(results):
    """Raises ValueError when the dict does not have the layout above."""
    if results.get('metric') not in METRICS:
        raise ValueError('results metric must be one of %s, got %r'
                         % (', '.join(METRICS), results.get('metric')))
    n_eps = len(results['eps'])
    for curve in results['curves']:
        if len(curve['values']) != n_eps:
            raise ValueError('curve %s/%s/%s has %d values for %d eps'
                             % (curve['model'], curve['mode'], curve['attack'],
                                len(curve['values']), n_eps))


def format_table(results):
    """Markdown table: model | mode | attack | clean | one column per eps (percentages)."""
    validate(results)
    header = ['model', 'mode', 'attack', 'clean'] + ['eps=%s' % format_eps(e)
                                                      for e in results['eps']]
    rows = [[c['model'], c['mode'], c['attack'], percent(c['clean'])]
            + [percent(v) for v in c['values']] for c in results['curves']]
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'
    rule = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def parse_table(text):
    """The rows of a table written by ``format_table`` as dicts of strings (for checks/tests)."""
    def cells(row):
        return [c.strip() for c in row.strip().strip('|').split('|')]
    rows = [r for r in text.splitlines() if r.startswith('|') and not r.startswith('|-')]
    header = cells(rows[0])
    return [dict(zip(header, cells(r))) for r in rows[1:]]


def format_checks(checks):
    if not checks:
        return 'no sanity checks were run'
    return '\n'.join('- [%s] %s: %s' % ('pass' if c['passed'] else 'FAIL', c['name'], c['detail'])
                     for c in checks)


def write_json(results, path):
    with open(path, 'w') as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write('\n')


def write_markdown(results, path, title):
    metric = METRICS[results['metric']]['label']
    parts = ['# %s' % title, '', '%s; clean = on unperturbed inputs.' % metric, '',
             format_table(results), '', '## Sanity checks', '',
             format_checks(results.get('checks'))]
    if results.get('settings'):
        parts += ['', '## Settings', '', '```', json.dumps(results['settings'], indent=1), '```']
    with open(path, 'w') as f:
        f.write('\n'.join(parts) + '\n')


def plot_curves(results, path, title=None):
    """PNG: metric vs eps, one line per curve (colour = attack, style = model/mode), each
    model's clean figure as a thin horizontal line of its style."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    validate(results)
    attacks = list(dict.fromkeys(c['attack'] for c in results['curves']))
    groups = list(dict.fromkeys((c['model'], c['mode']) for c in results['curves']))
    colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
    fig, ax = plt.subplots(figsize=(7, 4.5))
    eps = results['eps']
    for curve in results['curves']:
        group = groups.index((curve['model'], curve['mode']))
        label = curve['attack'] if len(groups) == 1 else '%s, %s (%s)' % (
            curve['model'], curve['attack'], curve['mode'])
        ax.plot(eps, [100 * v for v in curve['values']], marker='o', markersize=3,
                color=colours[attacks.index(curve['attack']) % len(colours)],
                linestyle=LINESTYLES[group % len(LINESTYLES)], label=label)
    clean_seen = set()
    for curve in results['curves']:
        if curve['model'] in clean_seen:
            continue
        clean_seen.add(curve['model'])
        group = groups.index((curve['model'], curve['mode']))
        ax.axhline(100 * curve['clean'], color='grey', linewidth=0.8,
                   linestyle=LINESTYLES[group % len(LINESTYLES)],
                   label='clean (%s)' % curve['model'])
    ax.set_xlabel('eps (L-inf)')
    ax.set_ylabel(METRICS[results['metric']]['label'])
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title('\n'.join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


def write_report(results, out_dir=None, title='Robustness', plot_name='robust_accuracy.png',
                 stream=sys.stdout):
    """Prints the table (and checks) to ``stream``; with ``out_dir`` also writes results.json,
    results.md and the PNG there. Returns {'json': path, 'md': path, 'png': path} (or {})."""
    print(format_table(results), file=stream)
    if results.get('checks'):
        print('\nsanity checks:\n' + format_checks(results['checks']), file=stream)
    if not out_dir:
        return {}
    os.makedirs(out_dir, exist_ok=True)
    paths = {'json': os.path.join(out_dir, 'results.json'),
             'md': os.path.join(out_dir, 'results.md'),
             'png': os.path.join(out_dir, plot_name)}
    write_json(results, paths['json'])
    write_markdown(results, paths['md'], title)
    plot_curves(results, paths['png'], title)
    print('wrote %s' % ', '.join(paths.values()), file=stream)
    return paths
