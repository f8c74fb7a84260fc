"""The emitter registry: (op kind, dtype class) -> function emitting that op's kernel.

An emitter has the signature ``emit(ctx: KernelContext) -> None``: it writes the body of
``ctx.fn`` (the builder is positioned at its entry block; the caller adds ``ret``).
Register with ``@emits(OpKind.CONV, "float")``; the dtype class is ``float`` for float
ops, or ``any`` for data movement that works on every dtype; ``layout="blocked"``
registers the variant for nodes whose output is channel-blocked (NCHW[b]c).
"""

from __future__ import annotations

from collections.abc import Callable

from sqzc.backends.llvm.kernel import KernelContext
from sqzc.errors import InternalError
from sqzc.ops import FLOAT_DTYPES, OpKind

Emitter = Callable[[KernelContext], None]
EMITTERS: dict[tuple[OpKind, str, str], Emitter] = {}


def emits(kind: OpKind, dtype_class: str, layout: str = "plain"
          ) -> Callable[[Emitter], Emitter]:
    """Register the decorated function as the emitter for ``kind`` on ``dtype_class``
    producing a ``layout`` (``plain`` or ``blocked``) output."""

    def register(fn: Emitter) -> Emitter:
        key = (kind, dtype_class, layout)
        if key in EMITTERS:
            raise InternalError(f"two emitters for {kind.value}({dtype_class})")
        EMITTERS[key] = fn
        return fn

    return register


def dtype_class(dtype: str) -> str:
    """The registry's dtype class of an IR dtype."""
    return "float" if dtype in FLOAT_DTYPES else dtype


def lookup(kind: OpKind, dtype: str, layout: str, where: str) -> Emitter:
    """The emitter for ``kind`` on ``dtype`` and output ``layout``; a missing one names
    the node."""
    for key in ((kind, dtype_class(dtype), layout), (kind, "any", layout)):
        if key in EMITTERS:
            return EMITTERS[key]
    raise InternalError(f"no emitter for {kind.value}({dtype}, {layout}) at {where}")
