"""Kernel emitters grouped by op family (``conv``, ``pool``, ``elementwise``, ``matmul``,
``softmax``, ``quantize``, ``data``; shared helpers in ``common``); importing this package
fills the registry."""

from sqzc.backends.llvm.emit import (  # noqa: F401  (imported for registration)
    conv,
    data,
    elementwise,
    matmul,
    pool,
    quantize,
    softmax,
)
from sqzc.backends.llvm.emit.registry import EMITTERS, emits, lookup, sharing_rule

__all__ = ["EMITTERS", "emits", "lookup", "sharing_rule"]
