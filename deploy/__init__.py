"""Deployment: checkpoints exported to ONNX (``deploy/export_onnx.py``) for onnxruntime and the
``insightface`` package, checked against this project's MXNet inference.

``graph_prep`` prepares the MXNet side (output, parameters as MXNet computes with them, input
shape), ``onnx_fixes`` post-processes what ``mx.onnx.export_model`` writes, ``parity`` measures
onnxruntime against MXNet. ``eval.onnx_model`` runs the exported file in the evaluation tools.
"""
