"""Per-family kernel emitters; importing this package fills the registry."""

from sqzc.backends.llvm.emit import (  # noqa: F401  (imported for registration)
    blocked,
    concat,
    conv,
    conv_blocked,
    conv_mlas,
    elementwise,
    matmul,
    pool,
    qconv_vnni,
    quant,
    quant_ops,
    reduce,
    softmax,
)
from sqzc.backends.llvm.emit.registry import EMITTERS, emits, lookup

__all__ = ["EMITTERS", "emits", "lookup"]
