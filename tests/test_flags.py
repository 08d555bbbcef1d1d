"""Flags: the original's names and defaults (read from zhongyy/Adversarial_MTER src/ad_mnist.py and
src/ad_face.py), and bad values refused when the flags are parsed, before any data is read."""
import re

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
