"""Converters for structure and data-movement ops: Concat, Dropout/Identity,
Flatten/Reshape/Squeeze/Unsqueeze, Transpose, Slice and Split, Constant and Cast. None of
them computes; most become reshapes or copies that later passes remove."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sqzc.frontends.onnx.attr_helpers import float_operand, refuse_batch_mixing
from sqzc.frontends.onnx.registry import converter
from sqzc.ops.defs.data import ref_slice
from sqzc.ops import (
    INT_DTYPES,
    AxisAttrs,
    CastAttrs,
    NoAttrs,
    OpKind,
    ReshapeAttrs,
    SliceAttrs,
    TransposeAttrs,
)

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext

#: ONNX TensorProto dtype codes that Cast may target.
_CAST_TO = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 3: "int8", 2: "uint8",
            11: "float64", 9: "bool"}


# ------------------------------------------------------------------ structure


@converter("Concat", 1, 4, 11, 13)
def concat(cx: ImportContext) -> None:
    """Concat of float tensors (integer shape concats are folded before this)."""
    assert cx.node is not None
    raw = [cx.input(i) for i in range(len(cx.node.input))]
    dtypes = {cx.type_of(r).dtype for r in raw}
    if len(dtypes) == 1 and dtypes <= INT_DTYPES:
        ins = raw  # concatenating 8-bit tensors of one quantization is a copy
    else:
        ins = [float_operand(cx, i) for i in range(len(raw))]
    rank = len(cx.type_of(ins[0]).shape)
    axis = cx.rank_axis(cx.int_attr("axis", 1), rank)
    cx.bind(0, cx.emit(OpKind.CONCAT, AxisAttrs(axis), ins))


@converter("Dropout", 1, 6, 7, 10, 12, 13, 22)
def dropout(cx: ImportContext) -> None:
    """Dropout in inference mode is the identity (the mask output is unsupported)."""
    assert cx.node is not None
    if cx.output_used(1):
        raise cx.unsupported("Dropout's mask output")
    if cx.has_input(2) and bool(np.asarray(cx.const(2)).reshape(-1)[0]):
        raise cx.unsupported("Dropout in training mode")
    if cx.int_attr("is_test", 1) == 0 and cx.opsets.get("", 1) < 7:
        raise cx.unsupported("Dropout with is_test=0")
    cx.bind(0, cx.emit(OpKind.IDENTITY, NoAttrs(), [cx.float_input(0)]))


@converter("Identity", 1, 13, 14, 16, 19, 21)
def identity(cx: ImportContext) -> None:
    """Identity."""
    x = cx.input(0)
    if cx.graph.is_const(x):
        cx.bind(0, x)
        return
    cx.bind(0, cx.emit(OpKind.IDENTITY, NoAttrs(), [x]))


def _reshape_to(cx: ImportContext, shape: tuple[int, ...], x: str | None = None) -> None:
    x = x if x is not None else cx.input(0)
    if cx.graph.is_const(x):
        value = cx.graph.const_value(x)
        if value.size != int(np.prod(shape, dtype=np.int64)):
            raise cx.error(f"cannot reshape {list(value.shape)} to {list(shape)}")
        cx.bind(0, cx.emit_const(value.reshape(shape), cx.node.output[0]))  # type: ignore[union-attr]
        return
    cx.bind(0, cx.emit(OpKind.RESHAPE, ReshapeAttrs(tuple(int(d) for d in shape)), [x]))


@converter("Flatten", 1, 9, 11, 13, 21)
def flatten(cx: ImportContext) -> None:
    """Flatten to 2-D at ``axis`` (a reshape)."""
    shape = cx.type_of(cx.input(0)).shape
    axis = cx.int_attr("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise cx.error(f"axis {axis} out of range for rank {len(shape)}")
    axis = axis % len(shape) if axis < 0 else axis
    if axis == 0:
        refuse_batch_mixing(cx, cx.input(0), "Flatten at axis 0 folds the batch axis into a row")
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    _reshape_to(cx, (outer, int(np.prod(shape[axis:], dtype=np.int64))))


def resolve_reshape(cx: ImportContext, in_shape: tuple[int, ...], target: np.ndarray,
                    allowzero: bool) -> tuple[int, ...]:
    """ONNX Reshape target with 0 (copy) and -1 (infer) resolved."""
    dims = [int(d) for d in np.asarray(target).reshape(-1)]
    out = []
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise cx.error(f"reshape dim {i} is 0 but the input has rank {len(in_shape)}")
            out.append(in_shape[i])
        else:
            out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise cx.error(f"invalid reshape target {dims}")
    total = int(np.prod(in_shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise cx.error(f"cannot reshape {list(in_shape)} to {dims}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise cx.error(f"cannot reshape {list(in_shape)} to {dims}")
    return tuple(out)


@converter("Reshape", 5, 13, 14, 19, 21)
def reshape(cx: ImportContext) -> None:
    """Reshape with a constant (possibly folded) target shape."""
    in_shape = cx.type_of(cx.input(0)).shape
    target = cx.const(1)
    _reshape_to(cx, resolve_reshape(cx, in_shape, target, cx.flag_attr("allowzero", False)))


def _axes(cx: ImportContext, from_input: bool) -> tuple[int, ...] | None:
    if from_input:
        return tuple(int(a) for a in cx.const(1).reshape(-1)) if cx.has_input(1) else None
    return cx.ints("axes")


def _squeeze(cx: ImportContext, from_input: bool) -> None:
    shape = cx.type_of(cx.input(0)).shape
    axes = _axes(cx, from_input)
    if axes is None:
        keep = [d for d in shape if d != 1]
    else:
        norm = {cx.rank_axis(a, len(shape)) for a in axes}
        for a in norm:
            if shape[a] != 1:
                raise cx.error(f"cannot squeeze axis {a} of size {shape[a]}")
        keep = [d for i, d in enumerate(shape) if i not in norm]
    _reshape_to(cx, tuple(keep))


def _unsqueeze(cx: ImportContext, from_input: bool) -> None:
    shape = cx.type_of(cx.input(0)).shape
    axes = _axes(cx, from_input)
    if not axes:
        raise cx.error("Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    norm = sorted(cx.rank_axis(a, rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise cx.error(f"duplicate axes {list(axes)}")
    if norm[0] == 0:
        refuse_batch_mixing(cx, cx.input(0), "Unsqueeze at axis 0 moves the batch axis to axis 1")
    out, it = [], iter(shape)
    for i in range(rank):
        out.append(1 if i in norm else next(it))
    _reshape_to(cx, tuple(out))


@converter("Squeeze", 1, 11)
def squeeze_v1(cx: ImportContext) -> None:
    """Squeeze with an axes attribute."""
    _squeeze(cx, False)


@converter("Squeeze", 13, 21)
def squeeze_v13(cx: ImportContext) -> None:
    """Squeeze with an axes input."""
    _squeeze(cx, True)


@converter("Unsqueeze", 1, 11)
def unsqueeze_v1(cx: ImportContext) -> None:
    """Unsqueeze with an axes attribute."""
    _unsqueeze(cx, False)


@converter("Unsqueeze", 13, 21)
def unsqueeze_v13(cx: ImportContext) -> None:
    """Unsqueeze with an axes input."""
    _unsqueeze(cx, True)


@converter("Transpose", 1, 13, 21)
def transpose(cx: ImportContext) -> None:
    """Transpose (default perm reverses the axes)."""
    x = cx.input(0)
    rank = len(cx.type_of(x).shape)
    perm = cx.ints("perm") or tuple(reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise cx.error(f"perm {list(perm)} is not a permutation of rank {rank}")
    cx.bind(0, cx.emit(OpKind.TRANSPOSE, TransposeAttrs(tuple(perm)), [x]))


@converter("Constant", 1, 9, 11, 12, 13, 19, 21)
def constant(cx: ImportContext) -> None:
    """Constant from any of its value attributes."""
    assert cx.node is not None
    if len(cx.node.attribute) != 1:
        raise cx.error("Constant needs exactly one value attribute")
    attr = cx.node.attribute[0]
    v = cx.attr(attr.name)
    if attr.name == "value":
        from onnx import numpy_helper

        if attr.t.data_location == 1:  # EXTERNAL
            raise cx.unsupported("Constant with external data")
        value = numpy_helper.to_array(attr.t)
    elif attr.name in ("value_float", "value_floats"):
        value = np.array(v, dtype=np.float32)
    elif attr.name in ("value_int", "value_ints"):
        value = np.array(v, dtype=np.int64)
    else:
        raise cx.unsupported(f"Constant with attribute '{attr.name}'")
    cx.bind(0, cx.emit_const(np.asarray(value), cx.node.output[0]))


@converter("Cast", 1, 6, 9, 13, 19, 21)
def cast(cx: ImportContext) -> None:
    """Cast between float32 and float16 (integer casts fold at compile time)."""
    to = cx.int_attr("to", 0)
    if to not in _CAST_TO:
        raise cx.unsupported(f"Cast to dtype code {to}")
    x = cx.input(0)
    src = cx.type_of(x).dtype
    dst = _CAST_TO[to]
    if dst == src:  # a copy, like Identity: a graph output must not alias a graph input
        cx.bind(0, x if cx.graph.is_const(x) else cx.emit(OpKind.IDENTITY, NoAttrs(), [x]))
        return
    if {src, dst} - {"float32", "float16"}:
        raise cx.unsupported(f"Cast from {src} to {dst} on a runtime tensor")
    cx.bind(0, cx.emit(OpKind.CAST, CastAttrs(dst), [x]))


# ------------------------------------------------------------------ windows


def _slice_window(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX Slice's clamping for one axis: the first index read and how many."""
    if start < 0:
        start += dim
    if end < 0:
        end += dim
    if step > 0:
        start, end = min(max(start, 0), dim), min(max(end, 0), dim)
        return start, max(0, -(-(end - start) // step))
    start, end = min(max(start, 0), dim - 1), min(max(end, -1), dim - 1)
    return start, max(0, -(-(start - end) // -step))


def _whole_axis(start: int, end: int, step: int) -> bool:
    """True for a window that keeps an axis of any length whole (``x[0:]``)."""
    return start == 0 and step == 1 and end >= (1 << 31) - 1


def _emit_slice(cx: ImportContext, x: str, windows: dict[int, tuple[int, int, int]],
                name: str | None = None) -> str:
    """A SLICE op of ``x`` with ``{axis: (start, end, step)}`` in ONNX's unclamped form."""
    shape = cx.type_of(x).shape
    starts, steps, sizes = [0] * len(shape), [1] * len(shape), list(shape)
    for axis, (start, end, step) in windows.items():
        if step == 0:
            raise cx.error(f"Slice step 0 on axis {axis}")
        starts[axis], sizes[axis] = _slice_window(shape[axis], start, end, step)
        steps[axis] = step
        if sizes[axis] == 0:
            raise cx.unsupported(f"an empty Slice (axis {axis} keeps no element)")
    attrs = SliceAttrs(tuple(starts), tuple(steps), tuple(sizes))
    if cx.graph.is_const(x):  # a window of a weight: later converters may need its value
        return cx.emit_const(ref_slice(attrs, cx.graph.const_value(x)),
                             name or f"{x}_slice")
    if 0 in windows and not _whole_axis(*windows[0]):
        refuse_batch_mixing(cx, x, "Slice along the batch axis")
    return cx.emit(OpKind.SLICE, attrs, [x], name=name)


@converter("Slice", 1)
def slice_v1(cx: ImportContext) -> None:
    """Slice with starts/ends/axes attributes (steps of 1)."""
    x = cx.input(0)
    rank = len(cx.type_of(x).shape)
    starts, ends = cx.ints("starts") or (), cx.ints("ends") or ()
    axes = cx.ints("axes") or tuple(range(len(starts)))
    if not len(starts) == len(ends) == len(axes):
        raise cx.error("Slice needs as many starts, ends and axes")
    windows = {cx.rank_axis(a, rank): (s, e, 1) for a, s, e in zip(axes, starts, ends)}
    if len(windows) != len(axes):
        raise cx.error(f"Slice repeats an axis in {list(axes)}")
    cx.bind(0, _emit_slice(cx, x, windows))


@converter("Slice", 10, 11, 13)
def slice_v10(cx: ImportContext) -> None:
    """Slice with starts/ends/axes/steps inputs, which must be constants."""
    x = cx.input(0)
    rank = len(cx.type_of(x).shape)
    starts = [int(v) for v in cx.const(1).reshape(-1)]
    ends = [int(v) for v in cx.const(2).reshape(-1)]
    axes = [int(v) for v in cx.const(3).reshape(-1)] if cx.has_input(3) \
        else list(range(len(starts)))
    steps = [int(v) for v in cx.const(4).reshape(-1)] if cx.has_input(4) else [1] * len(starts)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise cx.error("Slice needs as many starts, ends, axes and steps")
    windows = {cx.rank_axis(a, rank): (s, e, st)
               for a, s, e, st in zip(axes, starts, ends, steps)}
    if len(windows) != len(axes):
        raise cx.error(f"Slice repeats an axis in {axes}")
    cx.bind(0, _emit_slice(cx, x, windows))


def _split(cx: ImportContext, sizes: tuple[int, ...] | None, num_outputs: int = 0) -> None:
    assert cx.node is not None
    x = cx.input(0)
    shape = cx.type_of(x).shape
    axis = cx.rank_axis(cx.int_attr("axis", 0), len(shape))
    dim = shape[axis]
    n = len(cx.node.output)
    if sizes is None:
        if num_outputs:  # opset 18: chunks of ceil(dim / n), the last one smaller
            if num_outputs != n:
                raise cx.error(f"Split num_outputs={num_outputs} but {n} outputs")
            chunk = -(-dim // n)
            sizes = tuple(min(chunk, dim - i * chunk) for i in range(n))
        elif dim % n:
            raise cx.error(f"Split of an axis of {dim} into {n} equal parts")
        else:
            sizes = (dim // n,) * n
    if len(sizes) != n or sum(sizes) != dim or min(sizes) <= 0:
        raise cx.error(f"Split sizes {list(sizes)} do not cover an axis of {dim} in {n} "
                       f"non-empty parts")
    start = 0
    for i, size in enumerate(sizes):
        if cx.node.output[i]:
            cx.bind(i, _emit_slice(cx, x, {axis: (start, start + size, 1)},
                                   name=cx.node.output[i]))
        start += size


@converter("Split", 2, 11)
def split_v2(cx: ImportContext) -> None:
    """Split with a ``split`` attribute (or equal parts)."""
    sizes = cx.ints("split")
    _split(cx, tuple(sizes) if sizes else None)


@converter("Split", 13)
def split_v13(cx: ImportContext) -> None:
    """Split with a constant ``split`` input (or equal parts)."""
    sizes = tuple(int(v) for v in cx.const(1).reshape(-1)) if cx.has_input(1) else None
    _split(cx, sizes)


@converter("Split", 18)
def split_v18(cx: ImportContext) -> None:
    """Split with a ``split`` input or the ``num_outputs`` attribute."""
    sizes = tuple(int(v) for v in cx.const(1).reshape(-1)) if cx.has_input(1) else None
    _split(cx, sizes, cx.int_attr("num_outputs", 0))
