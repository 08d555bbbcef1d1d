"""The MTER training loop shared by ad_mnist.py and ad_face.py.

Each batch: (1) copy the main weights to the adversary; (2) run the attack round on the
sources toward the targets; (3) one main step on [src | tar | adv] per main context. Every
``--verbose`` batches the caller's evaluator scores the current weights (test accuracy for
MNIST, verification for faces) and checkpoints are written (atomically)."""
import logging
import random
import time
import warnings

import mxnet as mx
import numpy as np

from symbols import get_embedding
from symbols.heads import inference_symbol
from . import mter
from .adversary import Adversary, AttackStats
from .args import lr_steps
from .batch import assemble_main_batch
from .checkpoint import load_pretrained, save_checkpoint
from .context import batch_plan, make_contexts
from .metrics import TrainMetrics, check_finite


def seed_everything(seed):
    if seed is not None:
        random.seed(seed)
        np.random.seed(seed)
        mx.random.seed(seed)


def network_kwargs(args):
    kw = dict(emb_size=args.emb_size, bn_mom=args.bn_mom, workspace=args.workspace)
    for name in ('version_se', 'version_input', 'version_output', 'version_unit', 'version_act'):
        if hasattr(args, name):
            kw[name] = getattr(args, name)
    return kw


def default_initializer(network):
    if network.startswith('r'):  # InsightFace's choice for resnets
        return mx.init.Xavier(rnd_type='gaussian', factor_type='out', magnitude=2)
    return mx.init.Xavier(rnd_type='uniform', factor_type='in', magnitude=2)


def _compatible(params, shapes, kind):
    """Drops loaded parameters whose shape does not fit the network (e.g. fc7 of another class
    count), with a warning, so that they are initialised instead of crashing the bind."""
    kept = {}
    for name, value in params.items():
        if name in shapes and tuple(shapes[name]) != tuple(value.shape):
            logging.warning('pretrained %s %s has shape %s, the network needs %s: re-initialised',
                            kind, name, value.shape, shapes[name])
        elif name in shapes:
            kept[name] = value
    return kept


class Trainer:
    """Holds the main module, the adversary and the schedule. ``evaluate(symbol, arg, aux, ctx)``
    scores the deploy symbol with the current parameters and returns (list of scores, one per evaluation target, text for the log); a new best on any of them
    saves a numbered checkpoint."""

    def __init__(self, args, image_shape, num_classes, pixel_range, adv_step, adv_sigma,
                 evaluate, drop_pretrained=(), normalized_softmax=False):
        self.args = args
        self.evaluate = evaluate
        self.main_ctx, self.adv_ctx = make_contexts(args.ctx_num, args.ctx_adv_num, args.device)
        self.plan = batch_plan(args.main_per_batch_size, args.adv_per_batch_size, args.ctx_num,
                               args.ctx_adv_num)
        self.batch_size = 3 * self.plan.sources
        kw = network_kwargs(args)
        emb, emb_size = get_embedding(args.network, adversary=False, **kw)
        if not args.network.startswith('r') and args.emb_size != emb_size:
            logging.info('network %s has a %d-d embedding (--emb-size %d applies to fresnet only)',
                         args.network, emb_size, args.emb_size)
        self.emb_size = emb_size
        self.deploy_symbol = inference_symbol(emb, num_classes, emb_size, args.loss_type,
                                              args.margin_s, normalized_softmax)
        symbol = mter.train_symbol(emb, emb_size, num_classes, self.plan.main_ctx_sources, args,
                                   normalized_softmax)
        self.module = mx.mod.Module(symbol, data_names=['data'], label_names=['softmax_label'],
                                    context=self.main_ctx)
        self.module.bind(data_shapes=[('data', (self.batch_size,) + tuple(image_shape))],
                         label_shapes=[('softmax_label', (self.batch_size,))])
        arg_params = aux_params = None
        if args.pretrained:
            arg_params, aux_params = load_pretrained(args.pretrained, drop_pretrained)
            arg_shapes, _, aux_shapes = symbol.infer_shape(
                data=(self.plan.main_ctx_sources * 3,) + tuple(image_shape),
                softmax_label=(self.plan.main_ctx_sources * 3,))
            arg_params = _compatible(arg_params, dict(zip(symbol.list_arguments(), arg_shapes)),
                                     'parameter')
            aux_params = _compatible(aux_params, dict(zip(symbol.list_auxiliary_states(),
                                                          aux_shapes)), 'state')
        self.module.init_params(default_initializer(args.network), arg_params=arg_params,
                                aux_params=aux_params, allow_missing=True)
        self.optimizer = mx.optimizer.SGD(learning_rate=args.lr, momentum=args.mom, wd=args.wd,
                                          rescale_grad=1.0 / len(self.main_ctx))
        with warnings.catch_warnings():  # our losses are means: 1/ctx_num is the right rescale
            warnings.filterwarnings('ignore', message='Optimizer created manually')
            self.module.init_optimizer(kvstore=args.kvstore, optimizer=self.optimizer)
        self.adversary = None
        if args.adv_round > 0:
            adv_emb, _ = get_embedding(args.network, adversary=True, **kw)
            self.adversary = Adversary(adv_emb, emb_size, self.adv_ctx,
                                       self.plan.adv_ctx_sources, image_shape, step=adv_step,
                                       rounds=args.adv_round, thd=args.adv_thd, sigma=adv_sigma,
                                       pixel_range=pixel_range)
        else:
            logging.info('--adv-round 0: no attack, the adversarial third repeats the sources '
                         '(vanilla training when --weightadv 0)')
        self.lr_steps = lr_steps(args, self.batch_size)
        self.best = None
        self.saves = 0
        self.last_eval_step = None
        logging.info('main contexts %s, adversary contexts %s; S=%d sources per batch, main '
                     'batch %d; lr steps %s', self.main_ctx, self.adv_ctx, self.plan.sources,
                     self.batch_size, self.lr_steps)

    # -- one batch ----------------------------------------------------------------------------
    def step(self, src, src_y, tar, tar_y, metrics):
        """Attack round + main step; updates ``metrics`` (which waits for the step's outputs).

        Returns (AttackStats, softmax loss, adv loss, seconds in attack, seconds in main step)."""
        t0 = time.time()
        if self.adversary is None:
            adv, stats = src, AttackStats(0, float('nan'), None)
        else:
            self.adversary.sync_from(self.module)
            adv, stats = self.adversary.attack(src, tar)
        t1 = time.time()
        data, label = assemble_main_batch(src, tar, adv, src_y, tar_y, len(self.main_ctx))
        batch = mx.io.DataBatch([mx.nd.array(data)], [mx.nd.array(label)])
        self.module.forward_backward(batch)
        self.module.update()
        ce, triplet = metrics.update(self.module.get_outputs(merge_multi_context=False),
                                     stats.rounds)
        # the outputs only wait for the forward: wait for backward and update as well, so the
        # split below is true (the next attack needs the updated weights anyway)
        mx.nd.waitall()
        return stats, ce, triplet, t1 - t0, time.time() - t1

    # -- checkpoints and evaluation -----------------------------------------------------------
    def checkpoint(self, step):
        """Evaluates the current weights and saves: latest as epoch 0, a new best (or, with
        --ckpt 2, every evaluation) as epoch = number of evaluations so far."""
        arg, aux = self.module.get_params()
        scores, text = self.evaluate(self.deploy_symbol, arg, aux, self.main_ctx[0])
        self.saves += 1
        self.last_eval_step = step
        logging.info('[%d] %s', step, text)
        if self.best is None:
            self.best = [-np.inf] * len(scores)
        is_best = any(s > b for s, b in zip(scores, self.best))
        self.best = [max(s, b) for s, b in zip(scores, self.best)]
        highest = ' '.join('%.5f' % b for b in self.best)
        if self.args.ckpt == 0:
            return scores
        prefix = self.args.prefix
        save_checkpoint(prefix, 0, self.deploy_symbol, arg, aux)
        if is_best or self.args.ckpt == 2:
            save_checkpoint(prefix, self.saves, self.deploy_symbol, arg, aux)
            logging.info('[%d] saved %s,%d%s; latest also as %s,0', step, prefix, self.saves,
                         ' (new best; highest: %s)' % highest if is_best else '', prefix)
        else:
            logging.info('[%d] saved %s,0 (highest stays %s)', step, prefix, highest)
        return scores

    # -- the loop -----------------------------------------------------------------------------
    def fit(self, sampler):
        args = self.args
        metrics = TrainMetrics()
        step, window_start, window_samples = 0, time.time(), 0
        done = False
        bar = None
        if getattr(args, 'progress', False):
            from tqdm import tqdm
            total = args.max_steps or args.end_epoch * sampler.batches_per_epoch
            bar = tqdm(total=total, desc='training %s' % args.network, unit='batch',
                       dynamic_ncols=True)
        for epoch in range(args.end_epoch):
            if epoch > 0:
                sampler.reset()
            for nbatch, (src, src_y, tar, tar_y) in enumerate(sampler):
                step += 1
                if step - 1 in self.lr_steps:
                    self.optimizer.set_learning_rate(self.optimizer.learning_rate * 0.1)
                    logging.info('[%d] lr changed to %g', step, self.optimizer.learning_rate)
                stats, ce, triplet, t_adv, t_main = self.step(src, src_y, tar, tar_y, metrics)
                check_finite(step, ce, triplet)
                if bar is not None:
                    bar.update(1)
                window_samples += self.batch_size
                if step % args.disp_batches == 0:
                    elapsed = time.time() - window_start
                    logging.info('Epoch[%d] Batch[%d] step %d lr %g  %s  %s  %.1f samples/s '
                                 '(attack %.2fs, main %.2fs)', epoch, nbatch, step,
                                 self.optimizer.learning_rate, metrics.format(),
                                 _describe_attack(stats), window_samples / max(elapsed, 1e-9),
                                 t_adv, t_main)
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
        logging.info('finished after %d batches; highest scores %s', step,
                     ' '.join('%.5f' % b for b in self.best or []))
        return self.best


def _describe_attack(stats):
    if stats.rounds == 0:
        return 'no attack'
    last = 'n/a' if stats.last_max_dist is None else '%.4f' % stats.last_max_dist
    return 'cos-dist mean %.4f -> max %s' % (stats.first_mean_dist, last)


def setup_logging():
    logging.basicConfig(level=logging.INFO, format='%(asctime)s %(message)s')
