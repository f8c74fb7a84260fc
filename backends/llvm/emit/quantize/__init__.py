"""QuantizeLinear, DequantizeLinear and requantization emitters.

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.quantize import (  # noqa: F401  (imported for registration)
    convert,
)
