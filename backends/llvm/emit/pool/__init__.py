"""Pooling emitters: max/average pools (``plain``, ``blocked``), reductions and
global pools (``reduce``), quantized pools (``qpool``); ``mlas`` holds onnxruntime's
pooling-kernel choice and summation orders they share.

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.pool import (  # noqa: F401  (imported for registration)
    blocked,
    plain,
    qpool,
    reduce,
)
