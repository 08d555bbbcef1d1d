"""Main batch layout per context, the batch plan, and the MNIST class split."""
import numpy as np
import pytest

from src.batch import assemble_main_batch
from src.context import batch_plan
from src.mnist_sampler import ClassSplitSampler


@pytest.mark.parametrize('ctx_num', [1, 2])
def test_main_batch_layout_per_context(ctx_num):
    s = 6
    src = np.arange(s, dtype=np.float32).reshape(s, 1, 1, 1)  # pixel value = source index
    tar = 100 + src
    adv = 200 + src
    src_y, tar_y = np.arange(s) % 3, 3 + np.arange(s) % 3
    data, label = assemble_main_batch(src, tar, adv, src_y, tar_y, ctx_num)
    assert data.shape == (3 * s, 1, 1, 1) and label.shape == (3 * s,)
    n = s // ctx_num
    for c in range(ctx_num):
        block = data[3 * n * c:3 * n * (c + 1), 0, 0, 0]
        idx = np.arange(c * n, (c + 1) * n)
        np.testing.assert_array_equal(block, np.concatenate([idx, 100 + idx, 200 + idx]))
        lab = label[3 * n * c:3 * n * (c + 1)]
        np.testing.assert_array_equal(lab, np.concatenate([src_y[idx], tar_y[idx], src_y[idx]]))


def test_batch_plan():
    plan = batch_plan(96, 64, 1, 1)
    assert plan == (32, 32, 32)
    plan = batch_plan(48, 32, 2, 2)
    assert plan.sources == 32 and plan.main_ctx_sources == 16 and plan.adv_ctx_sources == 16
    with pytest.raises(ValueError, match='must be 3\\*S = 96; use --main-per-batch-size 96'):
        batch_plan(90, 64, 1, 1)
    with pytest.raises(ValueError, match='even'):
        batch_plan(96, 63, 1, 1)
    with pytest.raises(ValueError, match='do not divide across --ctx-num 3'):
        batch_plan(4, 8, 3, 1)  # S = 4 sources over 3 main contexts


def test_sources_and_targets_never_share_classes():
    rng = np.random.RandomState(0)
    labels = np.repeat(np.arange(10), 30)
    images = np.arange(len(labels), dtype=np.float32)  # image = its own index
    sampler = ClassSplitSampler(images, labels, sources=20, rng=rng)
    splits = set()
    for _ in range(5):
        seen = []
        for src, src_y, tar, tar_y in sampler:
            assert len(src) == len(tar) == 20
            assert not set(src_y) & set(tar_y)
            assert set(src_y) <= set(sampler.src_classes)
            assert set(tar_y) <= set(sampler.tar_classes)
            np.testing.assert_array_equal(labels[src.astype(int)], src_y)
            seen.extend(src.astype(int))
            seen.extend(tar.astype(int))
        assert len(seen) == len(set(seen))  # no image twice in an epoch
        assert len(seen) == 2 * 20 * sampler.batches_per_epoch
        splits.add(tuple(sampler.src_classes))
        sampler.reset()
    assert len(splits) > 1  # a new random split at every reset
