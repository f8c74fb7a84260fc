"""The ONNX op -> IR converter table, with opset-versioned handlers.

``CONVERTERS[(domain, op_type)]`` lists ``(since_version, handler)``; the handler used is
the one with the highest ``since_version`` not above the model's opset for that domain.
Each handler reads the current node through the ``ImportContext`` and emits IR ops.
``FOLD_ONLY`` ops (shape arithmetic) exist only as compile-time evaluations. The handlers
live in ``converters`` (compute ops), ``shape_converters`` (structure and data movement)
and ``quant_converters`` (quantized ops); importing ``converters`` registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext

Handler = Callable[["ImportContext"], None]
CONVERTERS: dict[tuple[str, str], list[tuple[int, Handler]]] = {}

#: Ops sqzc only evaluates at compile time (their inputs must be constants).
FOLD_ONLY = frozenset({
    "Shape", "Size", "Gather", "ConstantOfShape", "Range", "Equal", "Where",
    "Expand", "Floor", "Ceil", "Sqrt", "Not", "Less", "Greater", "Min", "Max", "Neg",
    "Abs", "ReduceProd", "ReduceSum", "Tile", "ScatterND", "NonZero", "Pow",
})

def converter(op_type: str, *versions: int, domain: str = "") -> Callable[[Handler], Handler]:
    """Register ``fn`` for ``op_type`` from each opset in ``versions``."""

    def register(fn: Handler) -> Handler:
        for v in versions:
            CONVERTERS.setdefault((domain, op_type), []).append((v, fn))
            CONVERTERS[(domain, op_type)].sort(key=lambda e: e[0])
        return fn

    return register


def select_converter(domain: str, op_type: str, opset: int) -> Handler | None:
    """The handler for ``op_type`` at ``opset``; None if sqzc cannot convert it."""
    if domain == "" and op_type in FOLD_ONLY:
        return _fold_only
    best = None
    for since, fn in CONVERTERS.get((domain, op_type), []):
        if since <= opset:
            best = fn
    return best


def _fold_only(cx: ImportContext) -> None:  # pragma: no cover - convert_node folds first
    raise cx.unsupported("op only supported on compile-time constants")


def supported_ops() -> list[tuple[str, str, int]]:
    """(domain, op_type, lowest opset) for every op sqzc converts (README table)."""
    rows = [(d, op, min(v for v, _ in fns)) for (d, op), fns in CONVERTERS.items()]
    rows += [("", op, 1) for op in FOLD_ONLY]
    return sorted(rows)
