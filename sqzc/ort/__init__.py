"""onnxruntime compatibility: everything sqzc does *because onnxruntime does it*.

sqzc's int8 results are bit-exact with onnxruntime's CPU execution provider, and its
float results on QDQ models' float paths round as onnxruntime's do. The facts that takes
live here, apart from the compiler proper:

* ``oracles/``: numpy references of onnxruntime's kernels, bit for bit (the x86/MLAS
  primitives in ``mlas.py``, the standard ops in ``onnx_ops.py``, the ``com.microsoft``
  contrib ops in ``contrib_ops.py`` and ``lookup_ops.py``); the quantized ops' semantics and constant folding
  are built on them, and ``tests/unit/test_quant_reference.py`` checks them against
  onnxruntime;
* ``rules.py``: which QDQ groups onnxruntime fuses into integer ops;
* ``orders.py``: which summation order its float kernels use (MLAS sgemm K slices, the
  pooling kernel per shape, the NCHWc transformer's reach);
* ``lookup.py``: the 256-entry tables of its lookup-table ops;
* ``passes/``: the QDQ passes that apply those rules, run as two slices of
  ``sqzc.passes.pipeline.PIPELINE`` (``ORT_QDQ_PASSES`` after canonicalize,
  ``FUSE_CONV_QUANTIZE`` after unsign-activations).

This ``__init__`` (and ``oracles/__init__``) import nothing: ``sqzc.ops`` and
``sqzc.ir`` import the oracles, and the passes import ``sqzc.ir``, so an import here
would re-enter a half-initialised module.
"""
