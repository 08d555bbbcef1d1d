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
a figure: in the plot each model's ``worst-case`` curve is drawn thick in the model's own colour
with its clean figure beside it (what a reader looks at first); the single attacks are thin,
colour = attack, line style = model/mode. ``clean`` (accuracy on clean inputs, or clean
verification accuracy for hit rates) sits beside every row of the table. A curve may carry
``num_samples`` (images it was computed on; AutoAttack may run on fewer): the table then has an
``images`` column. ``results['autoattack']`` (optional) holds AutoAttack's per-stage records
(``format_stage_table``). The table prints fractions as percentages with ``DIGITS`` decimals
(``percent``).
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


def _markdown(header, rows):
    widths = [max(len(str(r[i])) for r in [header] + rows) for i in range(len(header))]

    def line(cells):
        return '| ' + ' | '.join(str(c).ljust(w) for c, w in zip(cells, widths)) + ' |'
    rule = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([line(header), rule] + [line(r) for r in rows])


def format_table(results):
    """Markdown table: model | mode | attack | [images |] clean | one column per eps."""
    validate(results)
    counts = any('num_samples' in c for c in results['curves'])
    header = (['model', 'mode', 'attack'] + (['images'] if counts else []) + ['clean']
              + ['eps=%s' % format_eps(e) for e in results['eps']])
    rows = [[c['model'], c['mode'], c['attack']]
            + ([c.get('num_samples', results.get('num_samples', ''))] if counts else [])
            + [percent(c['clean'])] + [percent(v) for v in c['values']]
            for c in results['curves']]
    return _markdown(header, rows)


def format_stage_table(records):
    """Markdown table of AutoAttack runs, one row per stage: images attacked, broken,
    surviving (and as robust accuracy), seconds; a 'clean' row starts each run."""
    header = ['model', 'eps', 'attack', 'stage', 'attacked', 'broken', 'robust', 'robust (%)',
              'seconds']
    rows = []
    for r in records:
        n = max(r['num_images'], 1)
        label = r['attack'] + ('' if r['standard_settings'] else '*')
        rows.append([r['model'], format_eps(r['eps']), label, 'clean', r['num_images'], '',
                     r['clean_correct'], percent(r['clean_correct'] / n), ''])
        rows += [[r['model'], format_eps(r['eps']), label, s['stage'], s['attacked'],
                  s['broken'], s['robust'], percent(s['robust'] / n), '%.1f' % s['seconds']]
                 for s in r['stages']]
    table = _markdown(header, rows)
    if any(not r['standard_settings'] for r in records):
        custom = sorted({json.dumps(r['settings'], sort_keys=True) for r in records
                         if not r['standard_settings']})
        table += ('\n\n* not the reference settings (100 iterations, 9 targets, 5000 queries): '
                  + '; '.join(custom))
    return table


def parse_table(text):
    """The rows of the first table in ``text`` (the one ``format_table`` writes; results.md has
    the stage table after it) as dicts of strings (for checks/tests)."""
    def cells(row):
        return [c.strip() for c in row.strip().strip('|').split('|')]
    lines = text.splitlines()
    first = next(i for i, r in enumerate(lines) if r.startswith('|'))
    block = lines[first:]
    block = block[:next((i for i, r in enumerate(block) if not r.startswith('|')), len(block))]
    rows = [r for r in block if not r.startswith('|-')]
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
             format_table(results)]
    if results.get('autoattack'):
        parts += ['', '## AutoAttack stages', '', format_stage_table(results['autoattack'])]
    parts += ['', '## Sanity checks', '', format_checks(results.get('checks'))]
    if results.get('settings'):
        parts += ['', '## Settings', '', '```', json.dumps(results['settings'], indent=1), '```']
    with open(path, 'w') as f:
        f.write('\n'.join(parts) + '\n')


MODEL_COLOURS = ('black', '#b2182b', '#08519c', '#006d2c', '#54278f', '#8c510a')
HEAD_MARKERS = ('o', 's', '^', 'D', 'v', 'P')


def _headline(curves):
    """The curve a reader looks at first in a group: its worst case, else its only curve."""
    worst = [c for c in curves if c['attack'] == 'worst-case']
    return worst[0] if worst else (curves[0] if len(curves) == 1 else None)


def plot_curves(results, path, title=None):
    """PNG: metric vs eps. Each model/mode's worst-case curve is thick in the model's own colour,
    with its clean figure beside it (a dashed line of that colour, the value written at the
    right) and its image count in the legend; the single attacks are thin and faint (colour =
    attack, line style = model/mode)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    validate(results)
    eps, metric = results['eps'], METRICS[results['metric']]['label']
    groups = {}
    for curve in results['curves']:
        groups.setdefault((curve['model'], curve['mode']), []).append(curve)
    models = list(dict.fromkeys(c['model'] for c in results['curves']))
    attacks = list(dict.fromkeys(c['attack'] for c in results['curves']))
    faint = plt.get_cmap('Set2').colors
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for g, ((model, mode), curves) in enumerate(groups.items()):
        style = LINESTYLES[g % len(LINESTYLES)]
        head = _headline(curves)
        for curve in curves:
            if curve is head:
                continue
            label = curve['attack'] if len(groups) == 1 else '%s, %s%s' % (
                model, curve['attack'], '' if mode == 'white-box' else ' (%s)' % mode)
            ax.plot(eps, [100 * v for v in curve['values']], marker='o', markersize=2,
                    linewidth=1.2, linestyle=style, label=label,
                    color=faint[attacks.index(curve['attack']) % len(faint)])
        if head is None:
            continue
        rank = models.index(model)
        colour = MODEL_COLOURS[rank % len(MODEL_COLOURS)]
        n = head.get('num_samples', results.get('num_samples'))
        what = model if mode == 'white-box' else '%s (%s)' % (model, mode)
        # a marker shape per model, and each later model's line thinner and on top, so that
        # models with equal figures stay visible one under the other
        ax.plot(eps, [100 * v for v in head['values']], marker=HEAD_MARKERS[rank % len(
                    HEAD_MARKERS)], markersize=max(4.0, 8.0 - 1.3 * rank),
                linewidth=max(1.6, 4.0 - 0.7 * rank), color=colour,
                linestyle='-' if mode == 'white-box' else style, zorder=5 + rank,
                label='%s %s%s' % (what, head['attack'], '' if n is None else ', n=%d' % n))
        ax.axhline(100 * head['clean'], color=colour, linewidth=1, linestyle='--', alpha=0.8,
                   label='%s clean %s%%' % (what, percent(head['clean'])))
        ax.text(1.01, 100 * head['clean'], 'clean %s%%' % percent(head['clean']), color=colour,
                fontsize=7, va='center', transform=ax.get_yaxis_transform())
    ax.set_xlabel('eps (L-inf)')
    ax.set_ylabel(metric)
    ax.set_ylim(-2, 102)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title('\n'.join(textwrap.wrap(title, 70)), fontsize=9)
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.15, 1.0), borderaxespad=0)
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


def write_report(results, out_dir=None, title='Robustness', plot_name='robust_accuracy.png',
                 stream=None):
    """Prints the table (and checks) to ``stream`` (default: the current sys.stdout); with
    ``out_dir`` also writes results.json, results.md and the PNG there. Returns {'json': path,
    'md': path, 'png': path} (or {})."""
    stream = stream or sys.stdout
    print(format_table(results), file=stream)
    if results.get('autoattack'):
        print('\nAutoAttack stages:\n' + format_stage_table(results['autoattack']), file=stream)
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
