"""User tools built on the compiler: the ``sqzc`` command line (``cli``, ``cli_files``),
``sqzc bench`` (``bench``), ``sqzc verify`` against onnxruntime (``verify``), ``sqzc demo``
(``demo``, ``imageio``), the SqueezeNet model zoo (``zoo``), ``sqzc dump --format onnx``
(``onnx_export``) and the ``onnx.backend`` adapter the conformance tests drive
(``onnx_backend``).

Nothing is imported here: each tool imports the compiler stages it needs, lazily where
they are heavy, so ``sqzc --help`` stays fast.
"""
