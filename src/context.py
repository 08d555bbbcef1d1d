"""Device contexts and the batch plan shared by both training scripts."""
import collections

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx

BatchPlan = collections.namedtuple('BatchPlan', 'sources main_ctx_sources adv_ctx_sources')


def make_contexts(ctx_num, ctx_adv_num, device='auto'):
    """(main contexts, adversary contexts): GPUs when present (main first, adversary after them,
    as the original), else CPU contexts cpu(0), cpu(1), ..."""
    if ctx_num < 1 or ctx_adv_num < 1:
        raise ValueError('--ctx-num and --ctx-adv-num must be >= 1 (got %d, %d)'
                         % (ctx_num, ctx_adv_num))
    gpus = mx.context.num_gpus() if device in ('auto', 'gpu') else 0
    if device == 'gpu' and gpus < ctx_num + ctx_adv_num:
        raise ValueError('--device gpu with --ctx-num %d --ctx-adv-num %d needs %d GPUs, found %d'
                         % (ctx_num, ctx_adv_num, ctx_num + ctx_adv_num, gpus))
    make = mx.gpu if gpus >= ctx_num + ctx_adv_num else mx.cpu
    devices = [make(i) for i in range(ctx_num + ctx_adv_num)]
    return devices[:ctx_num], devices[ctx_num:]


def batch_plan(main_per_batch_size, adv_per_batch_size, ctx_num, ctx_adv_num):
    """Checks that both batches describe the same S sources and divide across their contexts.

    Adversary: each of the K contexts holds [S/K sources | S/K targets] = adv_per_batch_size.
    Main: each of the C contexts holds [S/C src | S/C tar | S/C adv] = main_per_batch_size.
    """
    if adv_per_batch_size <= 0 or adv_per_batch_size % 2:
        raise ValueError('--adv-per-batch-size must be a positive even number ([src | tar] '
                         'halves), got %d' % adv_per_batch_size)
    sources = adv_per_batch_size // 2 * ctx_adv_num
    if main_per_batch_size * ctx_num != 3 * sources:
        raise ValueError(
            'batch sizes disagree: the adversary makes S = adv-per-batch-size/2 * ctx-adv-num = '
            '%d adversarials per batch, so the main batch (main-per-batch-size * ctx-num = %d * %d'
            ' = %d) must be 3*S = %d; use --main-per-batch-size %s'
            % (sources, main_per_batch_size, ctx_num, main_per_batch_size * ctx_num, 3 * sources,
               ('%d' % (3 * sources // ctx_num)) if 3 * sources % ctx_num == 0 else
               '(none: 3*S does not divide across %d contexts)' % ctx_num))
    if sources % ctx_num:
        raise ValueError('S = %d sources per batch do not divide across --ctx-num %d main contexts'
                         % (sources, ctx_num))
    return BatchPlan(sources, sources // ctx_num, sources // ctx_adv_num)
