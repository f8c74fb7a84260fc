"""Per-op tests: poison the buffers the runtime hands to the native code.

``CompiledModel.run`` allocates outputs (and the workspace) with ``np.empty``; numpy
often recycles a just-freed block, which may already hold the expected values (e.g. the
compiler's own copy of a constant), so an output element the library never writes can
pass by luck. Here float outputs start as NaN and other buffers as 0xA5 bytes: an
unwritten element (or an uninitialized arena read) fails the comparison deterministically.
"""

from __future__ import annotations

import types
from collections.abc import Iterator

import numpy as np
import pytest


class _PoisonedNumpy(types.ModuleType):
    """numpy, except that ``empty`` returns poisoned arrays."""

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str) -> object:
        return getattr(np, name)

    @staticmethod
    def empty(shape: object, dtype: object = float, **kw: object) -> np.ndarray:
        arr = np.empty(shape, dtype=dtype, **kw)  # type: ignore[call-overload]
        if arr.dtype.kind == "f":
            arr.fill(np.nan)
        else:
            arr.view(np.uint8).fill(0xA5)
        return arr


@pytest.fixture(autouse=True)
def poison_runtime_buffers(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make ``sqzc.runtime.loader`` allocate poisoned outputs and workspaces."""
    from sqzc.runtime import loader

    monkeypatch.setattr(loader, "np", _PoisonedNumpy())
    yield
