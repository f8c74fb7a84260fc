"""The error contract: every user-facing failure is a ``SqzcError``.

This module has no dependencies so that ``sqzc.runtime`` can raise the same errors in a
deployment without onnx, llvmlite or networkx installed.

* ``ModelError``: the input model is malformed or violates an op's rules (CLI exit 2).
* ``UnsupportedError``: a construct sqzc does not compile (CLI exit 2); it may list many.
* ``UsageError``: bad options or arguments from the user (CLI exit 2).
* ``CallError``: a bad call into a compiled library (wrong shape, dtype, names, ...).
* ``LibraryError``: a file that is not a loadable sqzc library or has another ABI.
* ``ToolchainError``: the system linker or another external tool is missing or failed.
* ``InternalError``: a bug in sqzc (CLI exit 1).
"""

from __future__ import annotations


class SqzcError(Exception):
    """Base of every error sqzc raises on purpose; ``exit_code`` is the CLI's exit status."""

    exit_code: int = 2


class ModelError(SqzcError):
    """The model file or graph is malformed (names the file, node and op where known)."""


class UnsupportedError(ModelError):
    """The model uses ops or features sqzc does not compile."""


class UsageError(SqzcError):
    """Invalid command-line options or API arguments."""


class CallError(SqzcError):
    """A compiled model was called with inputs it cannot accept."""


class LibraryError(SqzcError):
    """A shared library is not a sqzc library, or was built for another ABI version."""


class ToolchainError(SqzcError):
    """A required external tool (the C compiler driver used as linker) is missing or failed."""

    exit_code = 1


class InternalError(SqzcError):
    """An unexpected failure inside sqzc: a bug, reported with the pass or node it hit."""

    exit_code = 1
