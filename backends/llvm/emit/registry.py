"""The emitter registry: (op kind, dtype class, layout, variant) -> the function emitting
that op's kernel.

An emitter has the signature ``emit(ctx: KernelContext) -> None``: it writes the body of
``ctx.fn`` (the builder is positioned at its entry block; the caller adds ``ret``).
Register with ``@emits(OpKind.CONV, "float", variant="direct")``; the dtype class is
``float`` for float ops, ``uint8``/``int8``/``int32`` for integer ones, or ``any`` for data
movement that works on every dtype; ``layout="blocked"`` registers the kernel for nodes
whose output is channel-blocked (NCHW[b]c).

The variant names one of several kernels for the same kind, dtype class and layout, chosen
by attributes a pass set (a Winograd conv, a conv summed in onnxruntime's MLAS order).
``variant_of`` is the one place that derives it from the op, so no emitter dispatches to
another one (which used to need function-level imports that hid import cycles) and a new
variant is a new registration plus one line there.
"""

from __future__ import annotations

from collections.abc import Callable

from sqzc.backends.llvm.kernel import KernelContext
from sqzc.errors import InternalError
from sqzc.ops import FLOAT_DTYPES, ConvAttrs, OpKind, OpNode

Emitter = Callable[[KernelContext], None]
#: The variant of every kind that has only one kernel per dtype class and layout.
DEFAULT = "default"
EMITTERS: dict[tuple[OpKind, str, str, str], Emitter] = {}


def emits(kind: OpKind, dtype_class: str, layout: str = "plain", variant: str = DEFAULT
          ) -> Callable[[Emitter], Emitter]:
    """Register the decorated function as the emitter for ``kind`` on ``dtype_class``
    producing a ``layout`` (``plain`` or ``blocked``) output, for ops of ``variant``
    (``variant_of``)."""

    def register(fn: Emitter) -> Emitter:
        key = (kind, dtype_class, layout, variant)
        if key in EMITTERS:
            raise InternalError(f"two emitters for {kind.value}({dtype_class}, {layout}, "
                                f"{variant})")
        EMITTERS[key] = fn
        return fn

    return register


def dtype_class(dtype: str) -> str:
    """The registry's dtype class of an IR dtype."""
    return "float" if dtype in FLOAT_DTYPES else dtype


def variant_of(op: OpNode) -> str:
    """Which kernel variant ``op`` needs, from the attributes passes set: a convolution is
    ``winograd`` (select-winograd transformed its weights), ``mlas`` (fold-qdq gave it
    onnxruntime's MLAS summation order) or ``direct``; every other kind has one variant,
    ``DEFAULT``. (Issue 20 S5 moves this rule into the op's definition.)"""
    if op.kind is OpKind.CONV:
        a = op.attrs
        assert isinstance(a, ConvAttrs)
        if a.winograd:
            return "winograd"
        if a.mlas_stride_k:
            return "mlas"
        return "direct"
    return DEFAULT


def lookup(op: OpNode, dtype: str, layout: str, where: str) -> Emitter:
    """The emitter for ``op`` on input ``dtype`` and output ``layout`` (and the op's
    ``variant_of``); a missing one names the node."""
    variant = variant_of(op)
    for key in ((op.kind, dtype_class(dtype), layout, variant),
                (op.kind, "any", layout, variant)):
        if key in EMITTERS:
            return EMITTERS[key]
    shown = "" if variant == DEFAULT else f", {variant}"
    raise InternalError(f"no emitter for {op.kind.value}({dtype}, {layout}{shown}) at {where}")
