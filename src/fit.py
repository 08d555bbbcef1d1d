"""The training loop shared by ad_mnist.py, ad_face.py and ad_tla.py.

Each batch: (1) copy the main weights to the adversary contexts; (2) the method's attack there
(MTER: the sources toward their targets' embeddings; TLA / AT: PGD on the cross-entropy) and
its main batch (MTER: [src | tar | adv] per main context; TLA: [anchor | positive | negative]);
(3) one update on the main contexts, after which loss and weights are checked to be finite.
Every ``--verbose`` batches the caller's evaluator scores the current weights (test accuracy
for MNIST-format data, verification for faces) and checkpoints are written (atomically)."""
import hashlib
import logging
import math
import random
import time
import warnings

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from symbols import check_network_input, get_embedding, is_face_network
from symbols.graph import constant_inputs
from symbols.heads import inference_symbol
from .adversary import Adversary
from .args import lr_steps
from .checkpoint import CheckpointWriter, is_onnx, load_model, load_pretrained
from .context import make_contexts
from .metrics import TrainMetrics
from .onnx_import import embedding_layer


def seed_everything(seed):
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        mx.random.seed(seed)


def network_kwargs(args, image_shape=None):
    """get_embedding's keyword arguments from the flags. ``--network checkpoint`` reads the
    graph of ``--pretrained`` (a checkpoint or an ONNX file) and cuts it at ``--emb-layer``."""
    kw = dict(emb_size=args.emb_size, bn_mom=args.bn_mom, workspace=args.workspace)
    for name in ('version_se', 'version_input', 'version_output', 'version_unit', 'version_act'):
        if hasattr(args, name):
            kw[name] = getattr(args, name)
    if args.network == 'checkpoint':
        if not getattr(args, 'pretrained', ''):
            raise ValueError('--network checkpoint builds the network from the graph of '
                             '--pretrained: give --pretrained prefix,epoch (or model.onnx)')
        symbol, _, _ = load_model(args.pretrained)
        layer = getattr(args, 'emb_layer', None)
        if not layer:
            layer = embedding_layer(symbol) if is_onnx(args.pretrained) else 'fc1'
        kw['checkpoint'] = dict(symbol=symbol, emb_layer=layer,
                                image_shape=tuple(image_shape or (3, 112, 112)))
    return kw


def make_optimizer(args, rescale_grad, steps):
    """SGD with momentum (MTER's), or Adam (TLA's MNIST setting) with --optimizer adam; the
    learning rate drops x0.1 after each batch in ``steps``. The schedule lives in the optimizer,
    so it also holds where the optimizer runs on the parameter servers (dist kvstores), counting
    global batches."""
    scheduler = mx.lr_scheduler.MultiFactorScheduler(step=list(steps), factor=0.1,
                                                     base_lr=args.lr) if steps else None
    if getattr(args, 'optimizer', 'sgd') == 'adam':
        opt = mx.optimizer.Adam(learning_rate=args.lr, wd=args.wd, rescale_grad=rescale_grad,
                                beta1=0.9, beta2=0.999, epsilon=1e-8, lr_scheduler=scheduler)
    else:
        opt = mx.optimizer.SGD(learning_rate=args.lr, momentum=args.mom, wd=args.wd,
                               rescale_grad=rescale_grad, lr_scheduler=scheduler)
    # --fc7-wd-mult by name (set before Module names the parameters, so nothing else changes).
    # The symbol's own lr_mult/wd_mult attributes are not read, as in the original, whose
    # optimizer was built without the symbol: fc7_bias keeps lr x1 and weight decay.
    opt.set_wd_mult({'fc7_weight': getattr(args, 'fc7_wd_mult', 1.0)})
    return opt


def default_initializer(network):
    if is_face_network(network):  # InsightFace's choice for its networks
        return mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2)
    return mx.init.Xavier(rnd_type='uniform', factor_type='in', magnitude=2)


def all_finite(arrays):
    """True when no array holds a NaN or an infinity. sum(a * 0) is 0 for a finite ``a`` and NaN
    otherwise (inf * 0 is NaN): one product and one reduction per array, summed per context, one
    wait per context. (MXNet's multi_all_finite runs on one thread on the CPU: 2 s for TLA's
    12.8M-weight FC layer, more than the training step itself.)"""
    by_ctx = {}
    for a in arrays:
        zero = mx.nd.sum(a * 0)
        by_ctx[a.context] = zero if a.context not in by_ctx else by_ctx[a.context] + zero
    return all(math.isfinite(total.asscalar()) for total in by_ctx.values())


def worker_shard(rank, num_workers):
    """A worker's share of a sequence, as a slice: item i belongs to worker i mod the number of
    workers, so the shards are disjoint and cover everything (on one machine: all of it, with
    no copy)."""
    return slice(rank, None, num_workers)


class Trainer:
    """Holds the main module, the adversary and the schedule, for any training method (MTER:
    ``src.mter.Mter``; TLA and Madry AT: ``src.tla.Tla``): the method gives the batch plan, the
    main step's symbol, the attack objective and each batch's layout.

    ``evaluate(symbol, arg, aux, ctx)`` scores the deploy symbol with the current parameters and
    returns (list of scores, one per evaluation target, text for the log); a new best on any of
    them saves a numbered checkpoint. ``pixel_range``: the images' (low, high)."""

    def __init__(self, args, method, image_shape, num_classes, pixel_range, evaluate,
                 drop_pretrained=(), normalized_softmax=False):
        self.args, self.method = args, method
        self.evaluate = evaluate
        self.kvstore, self.rank, self.num_workers = args.kvstore, 0, 1
        if args.kvstore.startswith('dist'):  # waits until every worker has joined
            self.kvstore = mx.kv.create(args.kvstore)
            self.rank, self.num_workers = self.kvstore.rank, self.kvstore.num_workers
            tag_logs(self.rank, self.num_workers)
            logging.info('%s: worker %d of %d; each worker trains on its own shard, only rank 0 '
                         'evaluates and saves', args.kvstore, self.rank, self.num_workers)
        check_network_input(args.network, image_shape)  # before anything is built
        self.main_ctx, self.adv_ctx = make_contexts(args.ctx_num, args.ctx_adv_num, args.device)
        self.plan = method.plan()
        self.batch_size = method.parts * self.plan.sources
        per_ctx = method.parts * self.plan.main_ctx_sources
        kw = network_kwargs(args, image_shape)
        emb, emb_size = get_embedding(args.network, adversary=False, **kw)
        if args.emb_size != emb_size:
            logging.info('network %s has a %d-d embedding (--emb-size %d does not apply to it)',
                         args.network, emb_size, args.emb_size)
        self.emb_size = emb_size
        self.deploy_symbol = inference_symbol(emb, num_classes, emb_size, args.loss_type,
                                              args.margin_s, normalized_softmax)
        symbol = method.train_symbol(emb, emb_size, num_classes, self.plan.main_ctx_sources,
                                     normalized_softmax)
        # inputs of an imported ONNX graph that are constants (e.g. its mean and scale) stay fixed
        fixed = constant_inputs(emb)
        if fixed:
            logging.info('fixed (constants of the graph, not trained): %s', ', '.join(fixed))
        self.module = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'],
                                    context=self.main_ctx, fixed_param_names=fixed)
        # checked before anything is bound or trained: the prefix, then the pretrained model
        self.writer = CheckpointWriter(args.prefix, self.deploy_symbol, args.overwrite,
                                       image_shape=image_shape) \
            if args.ckpt > 0 and self.rank == 0 else None
        arg_params = aux_params = None
        if args.pretrained:
            arg_shapes, _, aux_shapes = symbol.infer_shape(
                data=(per_ctx,) + tuple(image_shape), softmax_label=(per_ctx,))
            arg_shapes = {n: s for n, s in zip(symbol.list_arguments(), arg_shapes)
                          if n not in ('data', 'softmax_label')}
            aux_shapes = dict(zip(symbol.list_auxiliary_states(), aux_shapes))
            arg_params, aux_params = load_pretrained(args.pretrained, arg_shapes, aux_shapes,
                                                     drop_pretrained,
                                                     args.allow_partial_pretrained)
        self.module.bind(data_shapes=[('data', (self.batch_size,) + tuple(image_shape))],
                         label_shapes=[('softmax_label', (self.batch_size,))])
        self.module.init_params(default_initializer(args.network), arg_params=arg_params,
                                aux_params=aux_params, allow_missing=True)
        # losses are means per context: the update is the mean over contexts and workers
        self.lr_steps = lr_steps(args, self.batch_size * self.num_workers)
        self.optimizer = make_optimizer(
            args, rescale_grad=1.0 / (len(self.main_ctx) * self.num_workers), steps=self.lr_steps)
        with warnings.catch_warnings():
            warnings.filterwarnings('ignore', message='Optimizer created manually')
            self.module.init_optimizer(kvstore=self.kvstore, optimizer=self.optimizer)
        self.adversary = None
        attack = method.attack_settings(num_classes, emb_size, normalized_softmax)
        if attack is not None:
            adv_emb, _ = get_embedding(args.network, adversary=not attack.get('train_mode'),
                                       **kw)
            self.adversary = Adversary(adv_emb, emb_size, contexts=self.adv_ctx,
                                       per_ctx=self.plan.adv_ctx_sources, image_shape=image_shape,
                                       pixel_range=pixel_range, **attack)
        self.best = None
        self.saves = 0
        self.last_eval_step = None
        logging.info('main contexts %s, adversary contexts %s; %d %s per batch, main batch %d '
                     '(%d parts); lr steps %s', self.main_ctx, self.adv_ctx, self.plan.sources,
                     method.unit, self.batch_size, method.parts, self.lr_steps)

    # -- one batch ----------------------------------------------------------------------------
    def step(self, sample, metrics):
        """Attack + main step on one sample of the sampler; updates ``metrics`` (which waits
        for the step's outputs).

        Returns (AttackStats, (softmax loss, adv loss, weights all finite), seconds in attack,
        seconds in main step)."""
        t0 = time.time()
        if self.adversary is not None:
            self.adversary.sync_from(self.module)
        data, label, stats = self.method.batch(self.adversary, sample, len(self.main_ctx))
        if self.adversary is not None and self.adversary.train_mode:
            self.adversary.write_back(self.module)
        t1 = time.time()
        batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)])
        self.module.forward_backward(batch)
        self.module.update()
        ce, triplet = metrics.update(self.module.get_outputs(merge_multi_context=False),
                                     stats.rounds)
        # the outputs only wait for the forward: the check below waits for backward and update
        # as well, so the split is true (the next attack needs the updated weights anyway)
        weights_finite = all_finite(self._weights())
        return stats, (ce, triplet, weights_finite), t1 - t0, time.time() - t1

    def _describe_attack(self, stats):
        if stats.rounds == 0:
            return 'no attack'
        name = self.adversary.objective.name
        if stats.last_max is None:
            return '%s mean %.4f at the start' % (name, stats.first_mean)
        return '%s mean %.4f -> max %.4f' % (name, stats.first_mean, stats.last_max)

    def _weights(self):
        """The parameters (all contexts hold the same after an update: the first one's) and
        every context's batch-norm statistics."""
        group = self.module._exec_group  # pylint: disable=protected-access
        return [block[0] for block in group.param_arrays] + \
            [a for block in group.aux_arrays for a in block]

    def check_finite(self, step, ce, triplet, weights_finite):
        """Stops the run, naming the batch and the last good checkpoint (left untouched), when
        the loss or the updated weights hold NaN or infinity."""
        if math.isfinite(ce) and math.isfinite(triplet) and weights_finite:
            return
        what = ('non-finite loss (softmax loss %r, adv loss %r)' % (ce, triplet)
                if not (math.isfinite(ce) and math.isfinite(triplet))
                else 'non-finite weights after the update')
        raise FloatingPointError(
            '%s at batch %d: stopping; nothing of this state was saved. The last good '
            'checkpoint is %s. Lower --lr or check the data.'
            % (what, step, self.writer.last_good() if self.writer else '(none: --ckpt 0)'))

    # -- checkpoints and evaluation -----------------------------------------------------------
    def checkpoint(self, step):
        """Evaluates the current weights and saves: latest as epoch 0, a new best (or, with
        --ckpt 2, every evaluation) as the next number (numbers count evaluations, continuing
        after the checkpoints already at the prefix). Only rank 0 of a distributed job."""
        self.last_eval_step = step
        if self.rank != 0:
            return None
        arg, aux = self.module.get_params()
        scores, text = self.evaluate(self.deploy_symbol, arg, aux, self.main_ctx[0])
        self.saves += 1
        logging.info('[%d] %s', step, text)
        if self.best is None:
            self.best = [-np.inf] * len(scores)
        is_best = any(s > b for s, b in zip(scores, self.best))
        self.best = [max(s, b) for s, b in zip(scores, self.best)]
        highest = ' '.join('%.5f' % b for b in self.best)
        if self.writer is None:
            return scores
        prefix = self.args.prefix
        numbered = self.writer.save(step, self.saves, arg, aux,
                                    numbered=is_best or self.args.ckpt == 2)
        if numbered:
            logging.info('[%d] saved %s%s; latest also as %s,0', step, numbered,
                         ' (new best; highest: %s)' % highest if is_best else '', prefix)
        else:
            logging.info('[%d] saved %s,0 (highest stays %s)', step, prefix, highest)
        return scores

    # -- distributed jobs ---------------------------------------------------------------------
    def worker_shard(self):
        """This worker's share of a sequence (``worker_shard``)."""
        return worker_shard(self.rank, self.num_workers)

    def epoch_batches(self, total_images, images_per_batch):
        """Batches per epoch that every worker of a distributed job runs (None on one machine,
        where an epoch is one pass of the sampler): the same number on every worker, or the
        synchronous update would wait forever for a worker whose shard ran out."""
        if self.num_workers == 1:
            return None
        return max(1, total_images // self.num_workers // images_per_batch)

    def lr_at(self, step):
        """The learning rate of batch ``step`` (1-based) under --lr-steps."""
        return self.args.lr * 0.1 ** sum(step > s for s in self.lr_steps)

    def weights_digest(self):
        """SHA-1 of the parameters (sorted by name): equal on every worker of a job."""
        arg, _ = self.module.get_params()
        digest = hashlib.sha1()
        for name in sorted(arg):
            digest.update(name.encode())
            digest.update(arg[name].asnumpy().tobytes())
        return digest.hexdigest()

    # -- the loop -----------------------------------------------------------------------------
    def _batches(self, sampler, epoch_batches):
        """One epoch of the sampler, or exactly ``epoch_batches`` of it (resetting it when its
        shard runs out first)."""
        if epoch_batches is None:
            yield from sampler
            return
        count = 0
        while count < epoch_batches:
            progressed = False
            for sample in sampler:
                progressed = True
                yield sample
                count += 1
                if count == epoch_batches:
                    return
            if not progressed:
                raise RuntimeError('this worker\'s shard yields no batch')
            sampler.reset()

    def fit(self, sampler, epoch_batches=None):
        """Trains for --end-epoch epochs (or --max-steps batches). ``epoch_batches``: see
        ``epoch_batches`` (distributed jobs)."""
        args = self.args
        metrics = TrainMetrics(self.method.metric_names)
        step, window_start, window_samples = 0, time.time(), 0
        done = False
        bar = None
        if getattr(args, 'progress', False):
            from tqdm import tqdm
            total = args.max_steps or args.end_epoch * (epoch_batches or
                                                        sampler.batches_per_epoch)
            bar = tqdm(total=total, desc='training %s' % args.network, unit='batch',
                       dynamic_ncols=True)
        for epoch in range(args.end_epoch):
            if epoch > 0:
                sampler.reset()
            for nbatch, sample in enumerate(self._batches(sampler, epoch_batches)):
                step += 1
                if step - 1 in self.lr_steps:
                    logging.info('[%d] lr changed to %g', step, self.lr_at(step))
                stats, finite, t_adv, t_main = self.step(sample, metrics)
                self.check_finite(step, *finite)
                if bar is not None:
                    bar.update(1)
                window_samples += self.batch_size
                if step % args.disp_batches == 0:
                    rate = window_samples / max(time.time() - window_start, 1e-9)
                    logging.info('Epoch[%d] Batch[%d] step %d lr %g  %s  %s  %.1f samples/s%s '
                                 '(attack %.2fs, main %.2fs)', epoch, nbatch, step,
                                 self.lr_at(step), metrics.format(),
                                 self._describe_attack(stats), rate,
                                 ' (%d workers: %.1f global)' % (self.num_workers,
                                                                 rate * self.num_workers)
                                 if self.num_workers > 1 else '', t_adv, t_main)
                    metrics.reset()
                    window_start, window_samples = time.time(), 0
                if args.verbose > 0 and step % args.verbose == 0:
                    self.checkpoint(step)
                    window_start, window_samples = time.time(), 0
                if args.max_steps > 0 and step >= args.max_steps:
                    done = True
                    break
            if done:
                break
        if bar is not None:
            bar.close()
        if step == 0:
            raise RuntimeError('no batch was trained: the data yields no full batch of %d '
                               'sources and %d targets' % (self.plan.sources, self.plan.sources))
        if self.last_eval_step != step:
            self.checkpoint(step)
        scores = ' '.join('%.5f' % b for b in self.best or []) if self.rank == 0 else \
            '(rank 0 evaluates)'
        logging.info('finished after %d batches; highest scores %s; weights sha1 %s', step,
                     scores or '(none)', self.weights_digest())
        return self.best


def setup_logging():
    runtime.setup_logging(logging.INFO, '%(asctime)s %(message)s')


def tag_logs(rank, num_workers):
    """Every log line of a distributed job's worker names its rank."""
    formatter = logging.Formatter('%%(asctime)s [rank %d/%d] %%(message)s' % (rank, num_workers))
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
