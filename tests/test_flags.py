"""Flags: the original's names and defaults (read from zhongyy/Adversarial_MTER src/ad_mnist.py and
src/ad_face.py), and bad values refused when the flags are parsed, before any data is read."""
import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import re

import numpy as np
import pytest

import ad_face
import ad_mnist
from eval import attack_mnist

# every flag both the original and the port have, with the original's default
ORIGINAL_MNIST = {
    'prefix': '../model/model', 'pretrained': '', 'ckpt': 1, 'loss_type': 4, 'verbose': 2000,
    'max_steps': 0, 'end_epoch': 100000, 'network': 'o18', 'lr': 0.1, 'lr_steps': '',
    'wd': 0.0005, 'fc7_wd_mult': 1.0, 'bn_mom': 0.9, 'mom': 0.9, 'emb_size': 512,
    'main_per_batch_size': 1350, 'adv_per_batch_size': 900, 'margin_m': 0.4, 'margin_s': 10.0,
    'easy_margin': 0, 'workspace': 512, 'adv_alpha': 0.2, 'ctx_adv_num': 1, 'ctx_num': 1,
    'adv_round': 100, 'adv_sigma': 0.35, 'adv_thd': 0.05, 'weightadv': 0.1,
}
ORIGINAL_FACE = {
    'data_dir': '', 'prefix': '../model/model', 'pretrained': '', 'ckpt': 1, 'loss_type': 4,
    'verbose': 200, 'max_steps': 0, 'end_epoch': 100000, 'network': 'r50', 'version_se': 0,
    'version_input': 1, 'version_output': 'E', 'version_unit': 3, 'version_act': 'prelu',
    'lr': 0.001, 'lr_steps': '', 'wd': 0.0005, 'fc7_wd_mult': 1.0, 'bn_mom': 0.9, 'mom': 0.9,
    'emb_size': 512, 'main_per_batch_size': 90, 'adv_per_batch_size': 90, 'margin_m': 0.5,
    'margin_s': 64.0, 'easy_margin': 0, 'rand_mirror': 1, 'cutoff': 0,
    'target': 'lfw,cplfw,agedb_30', 'adv_alpha': 0.2, 'ctx_adv_num': 1, 'ctx_num': 1,
    'adv_round': 10, 'adv_sigma': 1, 'adv_thd': 0.1, 'weightadv': 1,
}
# where the port's default differs on purpose (README, "Flags")
DELIBERATE = {'face': {'adv_per_batch_size': 60}}


@pytest.mark.parametrize('script,original,deliberate', [
    (ad_mnist, ORIGINAL_MNIST, {}), (ad_face, ORIGINAL_FACE, DELIBERATE['face'])])
def test_defaults_are_the_originals(script, original, deliberate):
    ours = vars(script.parse_args([]))
    for name, value in original.items():
        want = deliberate.get(name, value)
        got = ours[name]
        if name == 'lr_steps':  # '' there, None here: both mean the scaled default schedule
            assert not got and not want
        else:
            assert got == want, name


@pytest.mark.parametrize('argv,message', [
    (['--adv-round', '-5'], r'--adv-round: must be >= 0, got -5'),
    (['--lr-steps', 'a,b'], r'--lr-steps: expected comma-separated integers'),
    (['--lr-steps', '300,200'], r'--lr-steps: expected strictly increasing'),
    (['--lr', 'nan'], r'--lr: expected a finite number'),
    (['--adv-sigma', '-1'], r'--adv-sigma: must be >= 0'),
    (['--adv-step', '0'], r'--adv-step: must be > 0'),
    (['--margin-m', '2'], r'--margin-m: must be < 1.5708'),
    (['--main-per-batch-size', '0'], r'--main-per-batch-size: must be >= 1'),
    (['--num-classes', '1'], r'--num-classes: must be >= 2'),
    (['--ce-weight', 'inf'], r'--ce-weight: expected a finite number'),
])
def test_bad_training_flags_are_refused_when_parsed(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        ad_mnist.parse_args(argv)
    assert exit_info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_face_step_must_be_positive(capsys):
    with pytest.raises(SystemExit):
        ad_face.parse_args(['--adv-sigma', '0'])
    assert '--adv-sigma: must be > 0' in capsys.readouterr().err


@pytest.mark.parametrize('eps', ['nan', 'inf', '0.1,-0.2'])
def test_attack_eps_must_be_finite_and_non_negative(eps, capsys):
    with pytest.raises(SystemExit) as exit_info:
        attack_mnist.parse_args(['--model', 'm,0', '--eps', eps])
    assert exit_info.value.code == 2
    assert 'expected finite non-negative numbers' in capsys.readouterr().err


@pytest.mark.parametrize('tool, eps, limit', [
    ('attack_mnist', '0.1,5', '[0, 1]'), ('attack_face', '4,300', '[0, 255]')])
def test_attack_eps_beyond_the_pixel_range_is_refused(tool, eps, limit, capsys):
    """issue 18.4: nothing is left to attack beyond the pixel range; say so, naming it."""
    from eval import attack_face
    module = attack_mnist if tool == 'attack_mnist' else attack_face
    with pytest.raises(SystemExit) as exit_info:
        module.parse_args(['--model', 'm,0', '--data-dir', 'd', '--eps', eps])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "beyond the data's pixel range %s" % limit in err


@pytest.mark.parametrize('kvstore', ['local', 'device'])
def test_fc7_wd_mult_scales_the_classifier_weight_decay_only(kvstore):
    """One SGD step with a zero gradient is pure weight decay: w <- w - lr * wd * mult * w, with
    mult = --fc7-wd-mult for fc7_weight and 1 for every other parameter (fc7_bias included, as
    the original's optimizer, which never read the symbol's multipliers)."""
    import argparse
    import mxnet as mx
    from src.fit import make_optimizer
    data = mx.sym.Variable('data')
    fc1 = mx.sym.FullyConnected(data, num_hidden=4, name='fc1')
    fc7 = mx.sym.FullyConnected(fc1, weight=mx.sym.Variable('fc7_weight', wd_mult=7.0),
                                bias=mx.sym.Variable('fc7_bias', lr_mult=2.0, wd_mult=0.0),
                                num_hidden=3, name='fc7')
    mod = mx.mod.Module(mx.sym.MakeLoss(mx.sym.sum(fc7) * 0), data_names=['data'],
                        label_names=None)
    mod.bind(data_shapes=[('data', (2, 5))])
    rng = np.random.RandomState(0)
    start = {name: rng.uniform(0.5, 1.5, shape).astype(np.float32) for name, shape in
             zip(mod.symbol.list_arguments(), mod.symbol.infer_shape(data=(2, 5))[0])
             if name != 'data'}
    mod.init_params(arg_params={k: mx.nd.array(v) for k, v in start.items()})
    args = argparse.Namespace(lr=0.5, wd=0.1, mom=0.0, fc7_wd_mult=3.0, optimizer='sgd')
    mod.init_optimizer(kvstore=kvstore, optimizer=make_optimizer(args, 0.5, None))
    mod.forward_backward(mx.io.DataBatch([mx.nd.ones((2, 5))]))
    mod.update()
    params = {k: v.asnumpy() for k, v in mod.get_params()[0].items()}
    assert np.allclose(params['fc7_weight'], start['fc7_weight'] * (1 - 0.5 * 0.1 * 3.0))
    for name in ('fc1_weight', 'fc1_bias', 'fc7_bias'):
        assert np.allclose(params[name], start[name] * (1 - 0.5 * 0.1)), name
