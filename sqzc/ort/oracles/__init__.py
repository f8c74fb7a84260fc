"""Bit-exact numpy references of onnxruntime's quantized CPU kernels (see ``sqzc.ort``).

Imports nothing: import ``sqzc.ort.oracles.mlas``, ``onnx_ops`` or ``contrib_ops``.
"""
