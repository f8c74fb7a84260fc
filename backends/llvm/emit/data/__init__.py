"""Data-movement emitters: copies (Identity, Transpose, Reshape), Concat and layout
reorders.

Importing this package registers its emitters."""

from sqzc.backends.llvm.emit.data import (  # noqa: F401  (imported for registration)
    concat,
    copy,
    reorder,
)
