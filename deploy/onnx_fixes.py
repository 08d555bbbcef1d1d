"""Post-processing of the graph ``mx.onnx.export_model`` (MXNet 1.9.1) writes, so that
onnxruntime computes what MXNet computes and reads the file the way InsightFace's tools do.

What each fix is for (each was seen with onnx 1.14.1 and onnxruntime 1.19.2):
- ``label_opset``: the exporter has translations up to opset 13 but labels the file with the
  newest opset the onnx package knows (19 for onnx 1.14), where some ops changed signature
  (ReduceMean, ReduceMax, ReduceSumSquare, ... take their axes as an input from opset 18).
  The exporter also checks its own graph against that newest opset, and so rejects its own
  ReduceMean(axes=...) (e.g. a ``mean`` over axes): ``checks_at_export_opset`` makes that
  check use opset 13 while the exporter runs.
- ``drop_initializer_inputs``: every weight is also listed as a graph input, so onnxruntime
  treats weights as overridable inputs (no constant folding; a warning per weight) and tools
  that take "the first input" must skip them.
- ``reshape_prelu_slopes``: PRelu slopes are written as (C,), which onnxruntime broadcasts
  against the last axis; on NCHW data they must be (C, 1, 1).
- ``replace_l2_normalizations``: see ``deploy.graph_prep.exportable_symbol``.
- ``name_batch_axis``: the dynamic batch axis is written without a name, and with
  ``dynamic=True`` every output dim is written as unknown (the embedding size too); both are
  set from MXNet's shapes.
"""
import contextlib

import numpy as np
import onnx
import onnx.checker
from onnx import helper, numpy_helper

EXPORT_OPSET = 13   # the newest opset MXNet 1.9.1's translations target
BATCH_AXIS = 'N'


@contextlib.contextmanager
def checks_at_export_opset(version=EXPORT_OPSET):
    """While active, ``onnx.checker.check_graph`` (which ``mx.onnx.export_model`` calls with
    the newest opset) checks against ``version`` instead."""
    original = onnx.checker.check_graph
    context = onnx.checker.C.CheckerContext()
    context.opset_imports = {'': version}
    context.ir_version = helper.find_min_ir_version_for([helper.make_opsetid('', version)])

    def check_graph(graph, ctx=context):
        return original(graph, ctx)
    onnx.checker.check_graph = check_graph
    try:
        yield
    finally:
        onnx.checker.check_graph = original


def label_opset(model, version=EXPORT_OPSET):
    """Labels the default domain with ``version`` and the lowest IR version that allows it."""
    for opset in model.opset_import:
        if opset.domain in ('', 'ai.onnx'):
            opset.version = version
    model.ir_version = helper.find_min_ir_version_for(list(model.opset_import))


def drop_initializer_inputs(model):
    weights = {init.name for init in model.graph.initializer}
    keep = [inp for inp in model.graph.input if inp.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(keep)


def _initializers(model):
    return {init.name: init for init in model.graph.initializer}


def _consumers(model, tensor):
    return [node for node in model.graph.node if tensor in node.input]


def reshape_prelu_slopes(model, ranks):
    """``ranks``: {PRelu node name: rank of its input} (``deploy.graph_prep.prelu_ranks``)."""
    inits = _initializers(model)
    done = 0
    for node in model.graph.node:
        if node.op_type != 'PRelu' or ranks.get(node.name, 2) <= 2:
            continue
        slope = inits.get(node.input[1])
        if slope is None:
            raise ValueError('PRelu %s: its slope %s is not a stored weight'
                             % (node.name, node.input[1]))
        value = numpy_helper.to_array(slope)
        shaped = value.reshape((value.size,) + (1,) * (ranks[node.name] - 2))
        if len(_consumers(model, slope.name)) == 1:
            slope.CopyFrom(numpy_helper.from_array(shaped, slope.name))
        else:    # a slope shared with another node: give this one its own copy
            name = '%s_%s' % (slope.name, node.name)
            model.graph.initializer.append(numpy_helper.from_array(shaped, name))
            node.input[1] = name
        done += 1
    return done


def replace_l2_normalizations(model, specs):
    """Rebuilds each exported L2Normalization (``specs``: [(node name, axes, eps)]) as MXNet
    computes it: x / sqrt(sum(x^2 over axes) + eps). Returns how many were replaced."""
    specs = {name: (axes, eps) for name, axes, eps in specs}
    nodes = []
    for node in model.graph.node:
        if node.name not in specs or node.op_type != 'Identity':
            nodes.append(node)
            continue
        axes, eps = specs.pop(node.name)
        x, out, name = node.input[0], node.output[0], node.name
        model.graph.initializer.append(
            numpy_helper.from_array(np.array(eps, dtype=np.float32), name + '_eps'))
        nodes += [
            helper.make_node('ReduceSumSquare', [x], [name + '_sumsq'], axes=axes, keepdims=1,
                             name=name + '_sumsq'),
            helper.make_node('Add', [name + '_sumsq', name + '_eps'], [name + '_sumsq_eps'],
                             name=name + '_add_eps'),
            helper.make_node('Sqrt', [name + '_sumsq_eps'], [name + '_norm'],
                             name=name + '_norm'),
            helper.make_node('Div', [x, name + '_norm'], [out], name=name),
        ]
    if specs:
        raise ValueError('the exporter wrote no placeholder for L2Normalization %s'
                         % ', '.join(specs))
    del model.graph.node[:]
    model.graph.node.extend(nodes)


def _set_dims(value_info, dims):
    shape = value_info.type.tensor_type.shape
    del shape.dim[:]
    for d in dims:
        dim = shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = int(d)


def name_batch_axis(model, input_shape, output_shape):
    """Input (N, C, H, W) and output (N, ...) with the batch axis named ``BATCH_AXIS``."""
    if len(model.graph.input) != 1 or len(model.graph.output) != 1:
        raise ValueError('expected one input and one output, got %d and %d'
                         % (len(model.graph.input), len(model.graph.output)))
    _set_dims(model.graph.input[0], (BATCH_AXIS,) + tuple(input_shape))
    _set_dims(model.graph.output[0], (BATCH_AXIS,) + tuple(output_shape))


def set_metadata(model, doc, props):
    model.producer_name = 'mter-mxnet deploy/export_onnx.py'
    model.doc_string = doc
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def finalize(model, input_shape, output_shape, prelu, l2norms, doc='', props=None):
    """All fixes, then onnx's own full check (graph, opset and shape inference)."""
    label_opset(model)
    drop_initializer_inputs(model)
    reshape_prelu_slopes(model, prelu)
    replace_l2_normalizations(model, l2norms)
    name_batch_axis(model, input_shape, output_shape)
    set_metadata(model, doc, props or {})
    onnx.checker.check_model(model, full_check=True)
    return model
