"""MatMul emitters: float32 (``float``) and 8-bit (``integer``: QLinearMatMul,
MatMulInteger).

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.matmul import (  # noqa: F401  (imported for registration)
    float,
    integer,
)
