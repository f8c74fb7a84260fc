"""Ops that only produce or move data: graph inputs, constants, Concat, Reshape, Transpose,
Slice, Identity and the layout conversion Reorder (NCHW[b]c -> NCHW)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.attrs import (
    AxisAttrs,
    ConstAttrs,
    NoAttrs,
    ReshapeAttrs,
    SliceAttrs,
    TransposeAttrs,
)
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.opdef import OpDef, along_axis, define, kernels, same_shape


def _input_shape(a: NoAttrs, ins: Sequence[TensorType]) -> TensorType:
    raise ModelError("a graph input's type is given by the model, not inferred")


def _const_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ConstAttrs)
    return TensorType(tuple(a.value.shape), a.value.dtype.name)


def _concat_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, AxisAttrs)
    first = ins[0]
    for t in ins[1:]:
        same_rank = len(t.shape) == len(first.shape)
        others_match = same_rank and all(
            d0 == d1 for i, (d0, d1) in enumerate(zip(first.shape, t.shape)) if i != a.axis
        )
        if not others_match or t.dtype != first.dtype:
            raise ModelError(
                f"Concat inputs {[str(t) for t in ins]} differ outside axis {a.axis}"
            )
    if a.axis >= len(first.shape):
        raise ModelError(f"Concat axis {a.axis} out of range for {list(first.shape)}")
    shape = list(first.shape)
    shape[a.axis] = sum(t.shape[a.axis] for t in ins)
    return TensorType(tuple(shape), first.dtype)


def _reshape_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ReshapeAttrs)
    out = TensorType(a.shape, ins[0].dtype)
    if out.size != ins[0].size:
        raise ModelError(f"cannot reshape {list(ins[0].shape)} to {list(a.shape)}")
    return out


def _transpose_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, TransposeAttrs)
    shape = ins[0].shape
    if sorted(a.perm) != list(range(len(shape))):
        raise ModelError(f"Transpose perm {list(a.perm)} is not a permutation of rank {len(shape)}")
    return TensorType(tuple(shape[p] for p in a.perm), ins[0].dtype)


def _slice_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, SliceAttrs)
    shape = ins[0].shape
    if not len(a.starts) == len(a.steps) == len(a.sizes) == len(shape):
        raise ModelError(f"Slice of {list(shape)} needs one start, step and size per axis")
    for dim, start, step, size in zip(shape, a.starts, a.steps, a.sizes):
        last = start + (size - 1) * step
        if step == 0 or size < 0 or (size and not (0 <= start < dim and 0 <= last < dim)):
            raise ModelError(f"Slice window start {start} step {step} size {size} is outside "
                             f"an axis of {dim}")
    return TensorType(a.sizes, ins[0].dtype)


def ref_slice(a: SliceAttrs, x: np.ndarray) -> np.ndarray:
    """The window as numpy indexing (a stop of -1 would mean the last element, so stops
    below zero become None)."""
    index = tuple(slice(s, s + n * st if s + n * st >= 0 else None, st)
                  for s, st, n in zip(a.starts, a.steps, a.sizes))
    return np.ascontiguousarray(x[index])


define(OpDef(OpKind.INPUT, NoAttrs, arity=(0, 0), operands="any", shape=_input_shape,
             reference=None))
define(OpDef(OpKind.CONST, ConstAttrs, arity=(0, 0), operands="any", shape=_const_shape,
             reference=lambda a, ins: a.value))
define(OpDef(OpKind.CONCAT, AxisAttrs, arity=(1, 1 << 16), operands="any",
             shape=_concat_shape,
             reference=lambda a, ins: np.concatenate(list(ins), axis=a.axis),
             kernels=kernels("any", ("plain", "blocked")), batch_rule=along_axis))
define(OpDef(OpKind.RESHAPE, ReshapeAttrs, arity=(1, 1), operands="any", shape=_reshape_shape,
             reference=lambda a, ins: ins[0].reshape(a.shape), kernels=kernels("any")))
define(OpDef(OpKind.TRANSPOSE, TransposeAttrs, arity=(1, 1), operands="any",
             shape=_transpose_shape,
             reference=lambda a, ins: np.ascontiguousarray(ins[0].transpose(a.perm)),
             kernels=kernels("any"),
             batch_rule=lambda a: "moves the batch axis" if a.perm[0] != 0 else ""))
define(OpDef(OpKind.SLICE, SliceAttrs, arity=(1, 1), operands="any", shape=_slice_shape,
             reference=lambda a, ins: ref_slice(a, ins[0]), kernels=kernels("any"),
             batch_rule=lambda a: "slices the batch axis"
             if a.starts[0] != 0 or a.steps[0] != 1 else ""))
define(OpDef(OpKind.IDENTITY, NoAttrs, arity=(1, 1), operands="any", shape=same_shape,
             reference=lambda a, ins: ins[0].copy(), kernels=kernels("any")))
define(OpDef(OpKind.REORDER, NoAttrs, arity=(1, 1), operands="any", shape=same_shape,
             reference=lambda a, ins: ins[0].copy(),
             kernels=kernels("any", ("plain", "blocked"))))
