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
The op's definition derives it (``sqzc.ops.variant_of``, the ``variant`` rule of its
``OpDef``), so no emitter dispatches to another one and a new variant is a new
registration plus its case in that rule. ``OpDef.kernels`` lists the keys each kind must
have; ``tests/unit/test_opdefs.py`` checks they are exactly the registered ones.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.errors import InternalError
from sqzc.memory import View
from sqzc.ops import DEFAULT_VARIANT, FLOAT_DTYPES, OpKind, OpNode, op_name, variant_of

Emitter = Callable[[KernelContext], None]
#: Which layers may share one kernel: ``(op, input views, output view, target) ->
#: (structure, extents)``. Layers of one kind whose dtypes and ``structure`` (every
#: attribute and view property the code depends on, other than the extents) are equal
#: share one function that takes ``extents`` (name -> value) as run-time arguments; the
#: emitter reads them through ``KernelContext.extent`` and must not branch on them.
SharingRule = Callable[[OpNode, Sequence[View], View, Target],
                       tuple[Hashable, dict[str, int]]]
#: The variant of every kind that has only one kernel per dtype class and layout.
DEFAULT = DEFAULT_VARIANT
EMITTERS: dict[tuple[OpKind, str, str, str], Emitter] = {}
SHARING: dict[tuple[OpKind, str, str, str], SharingRule] = {}


def emits(kind: OpKind, dtype_class: str, layout: str = "plain", variant: str = DEFAULT,
          shared: SharingRule | None = None) -> Callable[[Emitter], Emitter]:
    """Register the decorated function as the emitter for ``kind`` on ``dtype_class``
    producing a ``layout`` (``plain`` or ``blocked``) output, for ops of ``variant``
    (``variant_of``); ``shared`` lets layers of one structure share its kernel."""

    def register(fn: Emitter) -> Emitter:
        key = (kind, dtype_class, layout, variant)
        if key in EMITTERS:
            raise InternalError(f"two emitters for {kind.value}({dtype_class}, {layout}, "
                                f"{variant})")
        EMITTERS[key] = fn
        if shared is not None:
            SHARING[key] = shared
        return fn

    return register


def dtype_class(dtype: str) -> str:
    """The registry's dtype class of an IR dtype."""
    return "float" if dtype in FLOAT_DTYPES else dtype


def _registered_key(op: OpNode, dtype: str, layout: str
                    ) -> tuple[OpKind, str, str, str] | None:
    """The registry key serving ``op``: its dtype class first, then ``any``."""
    variant = variant_of(op)
    for key in ((op.kind, dtype_class(dtype), layout, variant),
                (op.kind, "any", layout, variant)):
        if key in EMITTERS:
            return key
    return None


def sharing_rule(op: OpNode, dtype: str, layout: str) -> SharingRule | None:
    """The sharing rule of the emitter ``lookup`` finds, if it has one."""
    key = _registered_key(op, dtype, layout)
    return SHARING.get(key) if key is not None else None


def lookup(op: OpNode, dtype: str, layout: str, where: str) -> Emitter:
    """The emitter for ``op`` on input ``dtype`` and output ``layout`` (and the op's
    ``variant_of``); a missing one names the node."""
    key = _registered_key(op, dtype, layout)
    if key is not None:
        return EMITTERS[key]
    variant = variant_of(op)
    shown = "" if variant == DEFAULT else f", {variant}"
    raise InternalError(f"no emitter for {op_name(op)}({dtype}, {layout}{shown}) at {where}")
