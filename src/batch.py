"""The main batch layout: each main context gets its own slice of every part, one part after
the other. MTER: for context c, [src_c | tar_c | adv_c] with labels [src | tar | src]; TLA:
[anchor_c | positive_c | negative_c] with labels [y | y | y_negative]."""
import numpy as np


def assemble_parts(parts, labels, ctx_num):
    """(data float32, label float32) of len(parts) * S images for ``ctx_num`` main contexts:
    ``parts`` (each (S, C, H, W)) and ``labels`` (each (S,)) in the same order."""
    s = len(parts[0])
    if len(parts) != len(labels) or any(len(p) != s for p in parts) or \
            any(len(y) != s for y in labels):
        raise ValueError('every part and label array must hold the same number of images')
    if s % ctx_num:
        raise ValueError('%d images per part do not divide across %d main contexts'
                         % (s, ctx_num))
    n = s // ctx_num
    data, label = [], []
    for c in range(ctx_num):
        part = slice(c * n, (c + 1) * n)
        data += [p[part] for p in parts]
        label += [y[part] for y in labels]
    return np.concatenate(data).astype(np.float32, copy=False), \
        np.concatenate(label).astype(np.float32)


def assemble_main_batch(src, tar, adv, src_label, tar_label, ctx_num):
    """MTER's (data, label) of 3S images (REFERENCE.md §1 "Batch layout")."""
    return assemble_parts([src, tar, adv], [src_label, tar_label, src_label], ctx_num)
