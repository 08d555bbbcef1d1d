"""Checkpoints in MXNet's format (``prefix-symbol.json`` + ``prefix-%04d.params``), each file
written atomically (src.atomic), so a crash never leaves a half-written one in place of a good one."""
import logging
import os

import mxnet as mx

from .atomic import atomic_write


def params_path(prefix, epoch):
    return '%s-%04d.params' % (prefix, epoch)


def save_checkpoint(prefix, epoch, symbol, arg_params, aux_params):
    """Writes prefix-symbol.json and prefix-%04d.params (both atomically); returns the params path."""
    if symbol is not None:
        atomic_write('%s-symbol.json' % prefix, symbol.save)
    blob = {'arg:%s' % k: v.as_in_context(mx.cpu()) for k, v in arg_params.items()}
    blob.update({'aux:%s' % k: v.as_in_context(mx.cpu()) for k, v in aux_params.items()})
    path = params_path(prefix, epoch)
    atomic_write(path, lambda tmp: mx.nd.save(tmp, blob))
    return path


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
        raise FileNotFoundError('no parameter file %s (model "%s,%d")' % (path, prefix, epoch))
    try:
        saved = mx.nd.load(path)
    except mx.base.MXNetError as err:
        raise ValueError('%s is not a readable MXNet parameter file: %s'
                         % (path, str(err).splitlines()[0])) from None
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


def load_checkpoint(prefix, epoch):
    """(symbol, arg_params, aux_params), like mx.model.load_checkpoint but with clear errors."""
    sym_path = '%s-symbol.json' % prefix
    if not os.path.isfile(sym_path):
        raise FileNotFoundError('no symbol file %s (model "%s,%d")' % (sym_path, prefix, epoch))
    symbol = mx.sym.load(sym_path)
    arg, aux = load_params(prefix, epoch)
    return symbol, arg, aux


def load_pretrained(spec, drop_prefixes=()):
    """Parameters of a 'prefix,epoch' model for fine-tuning. ``drop_prefixes=('fc7',)`` drops
    the classifier (face fine-tuning re-initialises it, so a different class count is never a
    crash). Logs what was dropped."""
    prefix, epoch = parse_model_spec(spec)
    arg, aux = load_params(prefix, epoch)
    dropped = sorted(k for k in arg if drop_prefixes and k.startswith(tuple(drop_prefixes)))
    for k in dropped:
        del arg[k]
    logging.info('loaded pretrained %s,%d: %d arg + %d aux params%s', prefix, epoch, len(arg),
                 len(aux), (' (dropped %s)' % ', '.join(dropped)) if dropped else '')
    return arg, aux
