"""Attribute and operand helpers shared by the converter modules: spatial attributes
(strides, pads, auto_pad), float operands, and the dynamic-batch guard."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext


def int_tuple(cx: ImportContext, name: str, default: int, n: int = 2) -> tuple[int, ...]:
    v = cx.ints(name, [default] * n)
    assert v is not None
    if len(v) != n:
        raise cx.error(f"attribute '{name}' must have {n} values, got {list(v)}")
    return v


def require_2d_spatial(cx: ImportContext, x: str) -> None:
    rank = len(cx.type_of(x).shape)
    if rank != 4:
        raise cx.unsupported(f"{rank - 2}-D spatial input (sqzc supports 2-D NCHW)")


def resolve_pads(cx: ImportContext, size: tuple[int, int], kernel: tuple[int, ...],
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Explicit pads (top, left, bottom, right) from ``pads`` or ``auto_pad``."""
    auto = cx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = int_tuple(cx, "pads", 0, 4)
        if any(p < 0 for p in pads):
            raise cx.error(f"negative pads {list(pads)}")
        return (pads[0], pads[1], pads[2], pads[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise cx.error(f"unknown auto_pad '{auto}'")
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def check_positive(cx: ImportContext, name: str, values: tuple[int, ...]) -> None:
    if any(v < 1 for v in values):
        raise cx.error(f"attribute '{name}' must be positive, got {list(values)}")


def float_operand(cx: ImportContext, i: int) -> str:
    """Input ``i`` as float32; a float16 *constant* (weight) is widened here, at import,
    rather than by a runtime Cast node: before fold-constants runs, such a Cast looks like
    a runtime tensor without a batch axis and dynamic-batch models would be refused."""
    nid = cx.input(i)
    if cx.graph.is_const(nid) and cx.type_of(nid).dtype == "float16":
        value = cx.graph.const_value(nid).astype(np.float32)
        return cx.emit_const(value, f"{cx.node.input[i]}_f32")  # type: ignore[union-attr]
    return cx.float_input(i)


def refuse_batch_mixing(cx: ImportContext, x: str, what: str) -> None:
    """Refuse an op that merges the dynamic batch axis into others: the library runs the
    batch-1 program once per sample, which such an op would make wrong (the reshape it
    becomes still has a leading 1, so the importer's separability check cannot see it)."""
    if cx.graph.dynamic_batch and not cx.graph.is_const(x):
        raise cx.unsupported(f"dynamic batch: {what} (fix the batch with --input-shape)")
