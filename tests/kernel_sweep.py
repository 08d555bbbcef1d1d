"""Runs every network family through the kernels a oneDNN ISA level picks, for
tests/test_kernel_sweep.py (run in a subprocess with DNNL_MAX_CPU_ISA set; not collected).

For each family: the training-mode network, forward + backward (parameter and input gradients)
twice; the adversary-mode network, forward in both modes + input gradient twice (what the attack
engine and the attacks do); and an inference Module bound at batch 1 on the embedding taken
from ``get_internals()``, two forwards (the pattern that crashed MXNet 1.9.1 on AVX-512 CPUs).
Writes OUT (JSON): per family the embedding of fixed images and the input gradient's norm, so
that the test can compare ISA levels with each other.

  python tests/kernel_sweep.py OUT.json [family ...]
"""
import json
import sys

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx
import numpy as np

from symbols import get_embedding

# family -> (network, builder keyword arguments, input shape (C, H, W), pixel scale)
FAMILIES = {
    'o18': ('o18', {}, (1, 28, 28), 1.0),
    'o50': ('o50', {}, (1, 28, 28), 1.0),
    's8': ('s8', {}, (1, 28, 28), 1.0),
    'lenet': ('l', {}, (1, 28, 28), 1.0),
    'tla': ('tla', {}, (1, 28, 28), 1.0),
    'wrn': ('wrn', {}, (3, 32, 32), 255.0),
    # the GDC head needs a 7x7 map (112x112 faces); the others run on 48x48 (a 3x3 map)
    'fresnet-r18-E': ('r18', dict(emb_size=64), (3, 48, 48), 255.0),
    'fresnet-r18-GDC': ('r18', dict(emb_size=64, version_output='GDC'), (3, 112, 112), 255.0),
    'fresnet-r18-GNAP': ('r18', dict(emb_size=64, version_output='GNAP', version_unit=1),
                         (3, 48, 48), 255.0),
    'mobilefacenet-y1': ('y1', dict(emb_size=128), (3, 112, 112), 255.0),
    'fresnet-r18-unit2-J': ('r18', dict(emb_size=64, version_output='J', version_unit=2,
                                        version_input=2), (3, 48, 48), 255.0),
}
BATCH = 2


def _params(sym, shape, seed):
    """Weights at He scale and batch-norm statistics away from identity, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    normal = lambda s: rng.standard_normal(s, dtype=np.float32)  # noqa: E731
    arg_shapes, _, aux_shapes = sym.infer_shape(data=shape)
    arg = {}
    for name, s in zip(sym.list_arguments(), arg_shapes):
        if name == 'data':
            continue
        if name.endswith('_gamma'):
            arg[name] = rng.uniform(0.5, 1.5, s)
        elif name.endswith(('_beta', '_bias')):
            arg[name] = 0.1 * normal(s)
        else:
            arg[name] = normal(s) * np.float32(np.sqrt(2.0 / max(1, int(np.prod(s[1:])))))
    aux = {name: (0.1 * normal(s) if name.endswith('mean') else rng.uniform(0.5, 2.0, s))
           for name, s in zip(sym.list_auxiliary_states(), aux_shapes)}
    return ({k: mx.nd.array(v) for k, v in arg.items()},
            {k: mx.nd.array(v) for k, v in aux.items()})


def _bind(sym, arg, aux, data, grad_req):
    args = dict(arg, data=mx.nd.array(data))
    grads = {k: mx.nd.zeros(v.shape) for k, v in args.items()}
    req = {k: ('write' if grad_req == 'all' or k == 'data' else 'null') for k in args}
    return sym.bind(mx.cpu(), args, args_grad=grads, grad_req=req,
                    aux_states={k: v.copy() for k, v in aux.items()})


def run_family(family):
    network, kwargs, shape, scale = FAMILIES[family]
    data = (np.random.RandomState(1).rand(BATCH, *shape) * scale).astype(np.float32)
    train, _ = get_embedding(network, adversary=False, **kwargs)
    adv, _ = get_embedding(network, adversary=True, **kwargs)
    arg, aux = _params(train, (BATCH,) + shape, seed=0)
    loss = lambda emb: mx.sym.MakeLoss(mx.sym.sum(mx.sym.square(emb)))  # noqa: E731
    result = {}
    ex = _bind(loss(train), arg, aux, data, 'all')
    for _ in range(2):
        ex.forward(is_train=True)
        ex.backward()
    result['train_input_grad'] = float(np.linalg.norm(ex.grad_dict['data'].asnumpy()))
    ex = _bind(mx.sym.Group([mx.sym.BlockGrad(adv), loss(adv)]), arg, aux, data, 'data')
    for _ in range(2):
        ex.forward(is_train=False)
        inference = ex.outputs[0].asnumpy()
        ex.forward(is_train=True)
        ex.backward()
    result['adversary_input_grad'] = float(np.linalg.norm(ex.grad_dict['data'].asnumpy()))
    result['embedding'] = inference.tolist()
    mod = mx.mod.Module(train.get_internals()['embedding_output'], data_names=['data'],
                        label_names=None, context=mx.cpu())
    mod.bind(data_shapes=[('data', (1,) + shape)], for_training=False)
    mod.set_params(arg, aux, allow_missing=False, allow_extra=True)
    for _ in range(2):
        mod.forward(mx.io.DataBatch([mx.nd.array(data[:1])]), is_train=False)
        single = mod.get_outputs()[0].asnumpy()
    result['batch1_embedding'] = single.tolist()
    return result


def main():
    out, families = sys.argv[1], sys.argv[2:] or list(FAMILIES)
    results = {family: run_family(family) for family in families}
    with open(out, 'w') as f:
        json.dump(results, f)


if __name__ == '__main__':
    main()
