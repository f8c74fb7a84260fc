"""Elementwise emitters: activations, binary arithmetic, casts, 8-bit table lookups
and QLinearAdd/Mul.

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.elementwise import (  # noqa: F401  (imported for registration)
    activation,
    binary,
    cast,
    lookup,
    qbinary,
)
