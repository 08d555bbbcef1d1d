"""Face verification on InsightFace ``.bin`` pair sets (LFW, CFP-FP, AgeDB-30, ...): the command
line. The protocol is eval/protocol.py's, embeddings eval/embedding.py's, the pair sets
eval/bin_sets.py's.

  python eval/verification.py --model models/r50/model,1 --data-dir faces_emore \
      --target lfw,cfp_fp,agedb_30
"""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import argparse
import logging
import os
import re
import sys

from eval import cli
from eval.bin_sets import check_input_size, image_size_rule, load_targets
from eval.embedding import verify_targets

DEFAULT_TARGETS = 'lfw,cfp_fp,agedb_30'
log = logging.getLogger(__name__)
LOGIT_LIKE_DIM = 32   # an "embedding" this small is more likely a classifier's logits


def model_epochs(spec):
    """'prefix,epoch[|epoch...]' -> (prefix, [epochs]); 'prefix' -> every prefix-NNNN.params."""
    m = re.match(r'^(.*),(\d+(?:\|\d+)*)$', spec)
    if m:
        return m.group(1), [int(e) for e in m.group(2).split('|')]
    prefix = spec
    folder = os.path.dirname(prefix) or '.'
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4,})\.params$')
    epochs = sorted(int(m.group(1)) for m in
                    (pattern.match(f) for f in (os.listdir(folder) if os.path.isdir(folder)
                                                else [])) if m)
    if not epochs:
        raise FileNotFoundError('no %s-NNNN.params files in %s (expected --model prefix,epoch '
                                'or a prefix with saved epochs)' % (os.path.basename(prefix),
                                                                    folder))
    return prefix, epochs


def format_table(rows):
    """rows: dicts with model, epoch, target and metrics -> aligned text table."""
    header = ['model', 'epoch', 'target', 'Accuracy-Flip', 'XNorm', 'VAL@FAR=1e-3']
    lines = [[r['model'], '-' if r['epoch'] is None else str(r['epoch']), r['target'],
              '%1.5f+-%1.5f' % (r['acc_mean'], r['acc_std']), '%.4f' % r['xnorm'],
              '%1.5f+-%1.5f (FAR %1.5f)' % (r['val'], r['val_std'], r['far'])] for r in rows]
    widths = [max(len(x) for x in col) for col in zip(header, *lines)]
    fmt = '  '.join('%%-%ds' % w for w in widths)
    out = [fmt % tuple(header), fmt % tuple('-' * w for w in widths)]
    out += [fmt % tuple(line) for line in lines]
    return '\n'.join(out)


def plot_roc(rows, path):
    """ROC curves (FPR vs TPR over the accuracy thresholds) of every row, into a PNG."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 5))
    for r in rows:
        name = os.path.basename(r['model']) + ('' if r['epoch'] is None else ',%d' % r['epoch'])
        ax.plot(r['fpr'], r['tpr'], label='%s %s (%.4f)' % (name, r['target'], r['acc_mean']))
    ax.set_xlabel('false positive rate')
    ax.set_ylabel('true positive rate')
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize='small', loc='lower right')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='Face verification accuracy (InsightFace protocol: image+flip embeddings, '
                    '10-fold Accuracy-Flip, XNorm, VAL@FAR=1e-3) on .bin pair sets.')
    cli.add_model_args(parser, MODEL_HELP, image_size=True)
    parser.add_argument('--data-dir', required=True, help='folder holding the <target>.bin files')
    parser.add_argument('--target', default=DEFAULT_TARGETS,
                        help='comma-separated set names, e.g. lfw,cfp_fp,cfp_ff,agedb_30,calfw,'
                             'cplfw (default %(default)s)')
    parser.add_argument('--nfolds', type=int, default=10, help='cross-validation folds')
    parser.add_argument('--json', default=None, help='write every result (with ROC) here')
    parser.add_argument('--roc', default=None, help='write ROC curves to this PNG')
    return parser.parse_args(argv)


MODEL_HELP = ('prefix,epoch (also prefix,3|5|7 for several epochs, or just prefix for every '
              'saved prefix-NNNN.params); or an exported model.onnx (deploy/export_onnx.py), run '
              'by onnxruntime')


def warn_if_logits(net, targets, spec):
    """A warning when the model's output is small enough to be a classifier's logits."""
    for images, _ in targets.values():
        if len(images):
            import numpy as np
            out = cli.check_outputs(net, np.ascontiguousarray(
                images[:2].transpose(0, 3, 1, 2), dtype=np.float32), spec)
            if out.reshape(len(out), -1).shape[1] <= LOGIT_LIKE_DIM:
                log.warning('%s gives %d-d outputs: that looks like class logits, not a face '
                            'embedding; verification of logits means little',
                            spec, out.reshape(len(out), -1).shape[1])
            return


def run(args):
    """The verification rows of every epoch of --model on every --target."""
    runtime.setup_logging(level=logging.INFO, format='%(message)s', stream=sys.stderr)
    from eval.onnx_model import is_onnx_path, load_network
    # an exported .onnx file is one model without epochs (loaded here: a bad file is an error)
    onnx_net = load_network(args.model) if is_onnx_path(args.model) else None
    prefix, epochs = (args.model, [None]) if onnx_net else model_epochs(args.model)
    targets = load_targets(args.data_dir, args.target, *image_size_rule(args))
    ctx = cli.parse_ctx(args.ctx, args.gpu)
    rows = []
    for epoch in epochs:
        spec = args.model if onnx_net else '%s,%d' % (prefix, epoch)
        net = onnx_net or load_network(spec, output='embedding', ctx=ctx)
        check_input_size(net, targets)
        warn_if_logits(net, targets, spec)
        results = verify_targets(net, targets, args.batch_size, args.nfolds)
        for name, r in results.items():
            rows.append(dict(model=prefix, epoch=epoch, target=name, **r))
    cli.print_rows(rows, args.json, format_table)
    if args.roc:
        plot_roc(rows, args.roc)
    return rows


def main(argv=None):
    return cli.main(parse_args, run, argv)


if __name__ == '__main__':
    sys.exit(main())
