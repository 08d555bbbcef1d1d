"""Timing shared by the benchmarks."""
import time

import runtime  # noqa: F401  (before mxnet: numpy names, oneDNN cap)
import mxnet as mx


def timed(fn, repeats):
    """Mean seconds of ``fn()`` over ``repeats`` calls, after one warm-up call (graph binding,
    memory); MXNet's asynchronous work is waited for at both ends."""
    fn()
    mx.nd.waitall()
    started = time.time()
    for _ in range(repeats):
        fn()
    mx.nd.waitall()
    return (time.time() - started) / repeats
