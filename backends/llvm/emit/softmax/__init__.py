"""Softmax emitters: float (onnxruntime's MLAS softmax bit for bit, and log-softmax)
and QLinearSoftmax (``quant``).

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.softmax import (  # noqa: F401  (imported for registration)
    float,
    quant,
)
