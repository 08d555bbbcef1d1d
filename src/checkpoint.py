"""Checkpoints in MXNet's format (``prefix-symbol.json`` + ``prefix-%04d.params``).

A checkpoint on disk is always a good one:
- each file is written atomically (runtime.atomic), so a crash never leaves a half-written one;
- ``save_checkpoint`` refuses parameters with a non-finite value (nothing is written);
- ``CheckpointWriter`` (the training runs') never replaces another run's checkpoint: a run whose
  prefix already holds checkpoints of the same network continues their numbering (and keeps the
  earlier run's latest ``-0000`` as a numbered one before replacing it); a different network at
  that prefix is refused unless ``--overwrite`` says otherwise;
- a training run's symbol records the image shape it was trained on (``IMAGE_SHAPE_ATTR``, an
  attribute of its ``data`` variable, which MXNet ignores), so that tools like the ONNX
  exporter can refuse an input the network was not trained on.
"""
import filecmp
import json
import logging
import os
import re
import shutil

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from runtime.atomic import atomic_write, remove_stale_temporaries
from .errors import one_line

CLASSIFIER_PREFIXES = ('fc7',)  # the classification head: re-initialised when fine-tuning
IMAGE_SHAPE_ATTR = 'mter_image_shape'  # on the data variable: 'C,H,W' of the training images


class NonFiniteError(FloatingPointError):
    """Parameters hold NaN or infinity; nothing was written."""


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def symbol_path(prefix):
    return '%s-symbol.json' % prefix


def non_finite_names(arg_params, aux_params):
    """Names ('arg:NAME' / 'aux:NAME') of the arrays holding a NaN or an infinity."""
    bad = []
    for kind, params in (('arg', arg_params), ('aux', aux_params)):
        for name, value in params.items():
            array = value.asnumpy() if hasattr(value, 'asnumpy') else np.asarray(value)
            if not np.isfinite(array).all():
                bad.append('%s:%s' % (kind, name))
    return bad


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params):
    """Writes prefix-symbol.json and prefix-%04d.params (both atomically); returns the params
    path. Raises NonFiniteError, writing nothing, when any value is NaN or infinite."""
    bad = non_finite_names(arg_params, aux_params)
    if bad:
        raise NonFiniteError('refusing to write %s: non-finite values in %s'
                             % (params_path(prefix, epoch), ', '.join(bad[:8])
                                + (' and %d more' % (len(bad) - 8) if len(bad) > 8 else '')))
    if symbol is not None:
        atomic_write(symbol_path(prefix), symbol.save)
    blob = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    blob.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    path = params_path(prefix, epoch)
    atomic_write(path, lambda tmp: mx.nd.save(tmp, blob))
    return path


def tag_image_shape(symbol, image_shape):
    """``symbol`` with its ``data`` variable recording ``image_shape`` (C, H, W) as the
    attribute IMAGE_SHAPE_ATTR (unchanged when it has no ``data`` variable)."""
    doc = json.loads(symbol.tojson())
    value = ','.join(str(int(d)) for d in image_shape)
    found = False
    for node in doc['nodes']:
        if node['op'] == 'null' and node['name'] == 'data':
            node.setdefault('attrs', {})[IMAGE_SHAPE_ATTR] = value
            found = True
    return mx.sym.load_json(json.dumps(doc)) if found else symbol


def recorded_image_shape(symbol):
    """The (C, H, W) a training run recorded in ``symbol`` (``tag_image_shape``), or None
    (checkpoints from before the record, or made elsewhere)."""
    for node in json.loads(symbol.tojson())['nodes']:
        if node['op'] == 'null' and node['name'] == 'data':
            value = (node.get('attrs') or {}).get(IMAGE_SHAPE_ATTR)
            try:
                shape = tuple(int(d) for d in str(value).split(','))
            except ValueError:
                return None
            return shape if len(shape) == 3 and min(shape) > 0 else None
    return None


def parse_model_spec(spec):
    """'prefix,epoch' -> (prefix, epoch), with an error that says what was expected."""
    prefix, sep, epoch = spec.rpartition(',')
    if not sep or not prefix or not epoch.strip().isdigit():
        raise ValueError('expected a model as "prefix,epoch" (e.g. models/model,0), got %r' % spec)
    return prefix, int(epoch)


def load_params(prefix, epoch):
    """(arg_params, aux_params) of prefix-%04d.params, with a clear error on a bad file."""
    path = params_path(prefix, epoch)
    if not os.path.isfile(path):
        there = saved_epochs(prefix)
        raise FileNotFoundError('no parameter file %s (model "%s,%d"); %s' % (
            path, prefix, epoch, 'the prefix holds epochs %s' % ', '.join(map(str, there))
            if there else 'no epoch of that prefix is there'))
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError as err:  # its message starts with a C++ trace: show the reason
        raise ValueError('%s is not a readable MXNet parameter file (truncated or another '
                         'format?): %s' % (path, one_line(err))) from None
    if not isinstance(saved, dict):
        raise ValueError('%s holds an unnamed list of arrays, not arg:NAME/aux:NAME parameters'
                         % path)
    arg, aux = {}, {}
    for key, value in saved.items():
        kind, _, name = key.partition(':')
        if kind == 'arg':
            arg[name] = value
        elif kind == 'aux':
            aux[name] = value
        else:
            raise ValueError('%s: key %r is neither arg:NAME nor aux:NAME' % (path, key))
    return arg, aux


def is_onnx(spec):
    return str(spec).lower().endswith('.onnx')


def load_model(spec):
    """(symbol, arg_params, aux_params) of a model given as 'prefix,epoch' or as an ONNX file
    (``model.onnx``, imported by MXNet's importer: ``src.onnx_import``)."""
    if is_onnx(spec):
        from .onnx_import import import_onnx
        return import_onnx(spec)
    return load_checkpoint(*parse_model_spec(spec))


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params), like mx.model.load_checkpoint but with clear errors."""
    path = symbol_path(prefix)
    if not os.path.isfile(path):
        raise FileNotFoundError('no symbol file %s (model "%s,%d")' % (path, prefix, epoch))
    try:
        symbol = mx.sym.load(path)
    except mx.base.MXNetError as err:
        raise ValueError('%s is not a readable MXNet symbol file: %s'
                         % (path, one_line(err))) from None
    arg, aux = load_params(prefix, epoch)
    return symbol, arg, aux


# -- fine-tuning from a pretrained model -----------------------------------------------------

def load_pretrained(spec, arg_shapes, aux_shapes, drop_prefixes=(), allow_partial=False):
    """The parameters of the 'prefix,epoch' (or ONNX) model that fit a network with these shapes
    ({name: shape} of its parameters and auxiliary states).

    Logs how many of the network's parameters were loaded, re-initialised (shape mismatch, e.g.
    fc7 of another class count), dropped (``drop_prefixes``: face fine-tuning re-initialises the
    classifier), missing from the file, and how many of the file's were unused. Raises
    ValueError when anything but the classifier (fc7) of the network would start from scratch
    (nothing at all fits: another network), unless ``allow_partial``
    (``--allow-partial-pretrained``). Returns (arg, aux)."""
    if is_onnx(spec):
        _, stored_arg, stored_aux = load_model(spec)
        label, source = spec, spec
    else:
        prefix, epoch = parse_model_spec(spec)
        stored_arg, stored_aux = load_params(prefix, epoch)
        label, source = '%s,%d' % (prefix, epoch), params_path(prefix, epoch)
    bad = non_finite_names(stored_arg, stored_aux)
    if bad:
        raise ValueError('pretrained %s holds non-finite values in %s'
                         % (source, ', '.join(bad[:8])))
    loaded, report = {}, {'loaded': [], 'reinitialised': [], 'dropped': [], 'missing': [],
                          'unused': []}
    for kind, stored, shapes in (('arg', stored_arg, arg_shapes), ('aux', stored_aux, aux_shapes)):
        kept = loaded.setdefault(kind, {})
        for name, shape in shapes.items():
            if name not in stored:
                report['missing'].append(name)
            elif drop_prefixes and name.startswith(tuple(drop_prefixes)):
                report['dropped'].append(name)
            elif tuple(stored[name].shape) != tuple(shape):
                report['reinitialised'].append('%s (file %s, network %s)' % (
                    name, tuple(stored[name].shape), tuple(shape)))
            else:
                kept[name] = stored[name]
                report['loaded'].append(name)
        report['unused'] += sorted(set(stored) - set(shapes))
    total = len(arg_shapes) + len(aux_shapes)
    logging.info('pretrained %s: %d of the network\'s %d parameters and states loaded, %d '
                 're-initialised (shape mismatch), %d dropped, %d missing from the file; %d of '
                 'the file\'s %d unused', label, len(report['loaded']), total,
                 len(report['reinitialised']), len(report['dropped']), len(report['missing']),
                 len(report['unused']), len(stored_arg) + len(stored_aux))
    for key in ('reinitialised', 'dropped', 'missing', 'unused'):
        if report[key]:
            logging.info('  %s: %s', key, _abbreviate(report[key]))
    is_head = lambda n: n.split(' ')[0].startswith(CLASSIFIER_PREFIXES)  # noqa: E731
    body_lost = [n for n in report['reinitialised'] + report['missing'] if not is_head(n)]
    body_loaded = [n for n in report['loaded'] if not is_head(n)]
    if not body_loaded and not allow_partial:
        raise ValueError('pretrained %s does not fit --network: none of the network\'s '
                         'parameters (other than the classifier) is in it with the right shape '
                         '(missing: %s; shape mismatch: %s); was it trained with another '
                         'network? (--allow-partial-pretrained trains anyway)'
                         % (label, _abbreviate(report['missing']),
                            _abbreviate(report['reinitialised'])))
    if body_lost and not allow_partial:
        raise ValueError('pretrained %s fits the network only in part: %d of its parameters '
                         'would start from scratch (%s); pass --allow-partial-pretrained to '
                         'train anyway' % (label, len(body_lost), _abbreviate(body_lost)))
    if body_lost:
        logging.warning('--allow-partial-pretrained: %d network parameters start from scratch',
                        len(body_lost))
    return loaded['arg'], loaded['aux']


def _abbreviate(names, limit=6):
    if not names:
        return 'none'
    shown = ', '.join(names[:limit])
    return shown + (' and %d more' % (len(names) - limit) if len(names) > limit else '')


# -- the training runs' writer ---------------------------------------------------------------

def saved_epochs(prefix):
    """Epoch numbers of the ``prefix-NNNN.params`` files on disk, sorted."""
    folder = os.path.dirname(os.path.abspath(prefix))
    pattern = re.compile(re.escape(os.path.basename(prefix)) + r'-(\d{4,})\.params$')
    if not os.path.isdir(folder):
        return []
    return sorted(int(m.group(1)) for m in map(pattern.match, os.listdir(folder)) if m)


def _graph(symbol_json):
    """What defines a network in a symbol's JSON: each node's op, attributes and inputs, and the
    names of its variables (parameters), but not the generated names of other nodes (they
    depend on how many symbols the process built before) or the MXNet version tag."""
    graph = json.loads(symbol_json)
    nodes = [(n['op'], n['name'] if n['op'] == 'null' else None,
              sorted((k, v) for k, v in n.get('attrs', {}).items() if k != IMAGE_SHAPE_ATTR),
              n['inputs']) for n in graph['nodes']]
    return [nodes, graph.get('arg_nodes'), graph.get('heads')]


class CheckpointWriter:
    """Writes a training run's checkpoints: ``save(arg, aux, numbered)`` writes the latest as
    epoch 0 and, when ``numbered``, also as the next number.

    Checked when the run starts (before any training): temporary files of interrupted writes at
    the prefix are removed; if the prefix already holds checkpoints, either (same network) this
    run's numbers continue after the highest one there and the earlier latest ``-0000`` is kept
    as the next number before this run replaces it, or (another network) the run is refused.
    ``overwrite`` (``--overwrite``) restores the original's behaviour: numbering from 1,
    replacing what is there. ``image_shape``: (C, H, W) of the training images, recorded in
    the saved symbol (``tag_image_shape``; not part of what makes two networks the same)."""

    def __init__(self, prefix, symbol, overwrite=False, image_shape=None):
        if image_shape is not None:
            symbol = tag_image_shape(symbol, image_shape)
        self.prefix, self.symbol = prefix, symbol
        self.last_saved = None  # (path, step) of this run's last write
        folder = os.path.dirname(os.path.abspath(prefix))
        remove_stale_temporaries(folder, os.path.basename(prefix) + '-')
        existing = saved_epochs(prefix)
        self.offset = 0
        if not existing:
            return
        listing = '%s-{%s}.params' % (prefix, ','.join('%04d' % e for e in existing[:10]))
        if overwrite:
            logging.warning('--overwrite: %s already holds %s; this run numbers from 1 and '
                            'replaces them as it saves', prefix, listing)
            return
        path = symbol_path(prefix)
        if not os.path.isfile(path):
            raise ValueError('%s holds %s but no %s: cannot tell which network they belong to; '
                             'choose another --prefix, or pass --overwrite to replace them'
                             % (os.path.dirname(path) or '.', listing, os.path.basename(path)))
        with open(path) as f:
            same = _graph(f.read()) == _graph(symbol.tojson())
        if not same:
            raise ValueError('%s holds checkpoints of another network (%s differs from this '
                             'run\'s network); choose another --prefix, or pass --overwrite to '
                             'replace them' % (listing, path))
        self.offset = max(existing)
        if 0 in existing and not (self.offset > 0 and filecmp.cmp(
                params_path(prefix, 0), params_path(prefix, self.offset), shallow=False)):
            self.offset += 1
            keep = params_path(prefix, self.offset)
            atomic_write(keep, lambda tmp: shutil.copyfile(params_path(prefix, 0), tmp))
            logging.info('kept the earlier run\'s latest %s as %s before this run replaces it',
                         params_path(prefix, 0), keep)
        logging.info('%s already holds %s of the same network: this run numbers its '
                     'checkpoints from %d on', prefix, listing, self.offset + 1)

    def last_good(self):
        """Where the last good weights are, for error messages."""
        if self.last_saved:
            return '%s (saved at batch %d)' % self.last_saved
        existing = saved_epochs(self.prefix)
        if existing:
            return '%s (from before this run; this run saved nothing)' % \
                params_path(self.prefix, existing[0] if 0 in existing else existing[-1])
        return 'none: nothing was saved at %s' % self.prefix

    def save(self, step, number, arg_params, aux_params, numbered):
        """Writes the latest as epoch 0 and, if ``numbered``, as epoch ``offset + number``.
        Returns the numbered spec 'prefix,N' (or None). Raises NonFiniteError (nothing written)
        on a non-finite value."""
        save_checkpoint(self.prefix, 0, self.symbol, arg_params, aux_params)
        self.last_saved = (params_path(self.prefix, 0), step)
        if not numbered:
            return None
        epoch = self.offset + number
        save_checkpoint(self.prefix, epoch, None, arg_params, aux_params)
        return '%s,%d' % (self.prefix, epoch)
