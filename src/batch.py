"""The main batch layout: for each main context c, [src_c | tar_c | adv_c], labels [src|tar|src]."""
import numpy as np


def assemble_main_batch(src, tar, adv, src_label, tar_label, ctx_num):
    """(data, label) of 3S images for ``ctx_num`` main contexts (REFERENCE.md §1 "Batch layout")."""
    s = len(src)
    if not len(tar) == len(adv) == len(src_label) == len(tar_label) == s:
        raise ValueError('sources, targets, adversarials and labels must have the same length')
    if s % ctx_num:
        raise ValueError('%d sources do not divide across %d main contexts' % (s, ctx_num))
    n = s // ctx_num
    data, label = [], []
    for c in range(ctx_num):
        part = slice(c * n, (c + 1) * n)
        data += [src[part], tar[part], adv[part]]
        label += [src_label[part], tar_label[part], src_label[part]]
    return np.concatenate(data).astype(np.float32, copy=False), \
        np.concatenate(label).astype(np.float32)
