"""Matrix products: MatMul (numpy semantics, Gemm lowers to it), QLinearMatMul (and QGemm
folded into it) and MatMulInteger."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.attrs import IntMatMulAttrs, MatMulAttrs, QMatMulAttrs
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.opdef import EIGHT_BIT, OpDef, define, kernels, need_8bit
from sqzc.ort.oracles import mlas

def _matmul_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    x, y = ins
    if x.dtype != y.dtype:
        raise ModelError(f"MatMul operand dtypes differ: {x} and {y}")
    if len(x.shape) < 1 or len(y.shape) < 1:
        raise ModelError("MatMul operands must have rank >= 1")
    try:
        shape = np.matmul(np.empty(x.shape, np.int8), np.empty(y.shape, np.int8)).shape
    except ValueError:
        raise ModelError(f"MatMul shapes {list(x.shape)} and {list(y.shape)} do not match") from None
    return TensorType(tuple(shape), x.dtype)


def _matmul_macs(a: MatMulAttrs, ins: Sequence[TensorType], out: TensorType) -> int:
    return out.size * ins[0].shape[-1]


def _int_matmul_dims(x: TensorType, y: TensorType) -> tuple[int, ...]:
    need_8bit("integer matmul", [x, y])
    if len(x.shape) < 1 or len(y.shape) < 1:
        raise ModelError("MatMul operands must have rank >= 1")
    try:
        return tuple(np.matmul(np.empty(x.shape, np.int8), np.empty(y.shape, np.int8)).shape)
    except ValueError:
        raise ModelError(f"MatMul shapes {list(x.shape)} and {list(y.shape)} do not match") \
            from None


def _b_columns(b_zp: tuple[int, ...], y: TensorType, what: str) -> None:
    n = y.shape[-1] if len(y.shape) > 1 else 1
    if len(b_zp) not in (1, n):
        raise ModelError(f"{what}: {len(b_zp)} per-column values for {n} columns")


def _qmatmul_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QMatMulAttrs)
    shape = _int_matmul_dims(ins[0], ins[1])
    _b_columns(a.b_zp, ins[1], "QLinearMatMul zero points")
    _b_columns(a.multiplier, ins[1], "QLinearMatMul scales")
    if a.bias:
        _b_columns(a.bias, ins[1], "QGemm bias")
    return TensorType(shape, a.out.dtype)


def _matmul_integer_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, IntMatMulAttrs)
    shape = _int_matmul_dims(ins[0], ins[1])
    _b_columns(a.b_zp, ins[1], "MatMulInteger zero points")
    return TensorType(shape, "int32")


def _per_column(values: tuple, dtype: object) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    return arr.reshape(()) if arr.size == 1 else arr


def _int_matmul(a_zp: int, b_zp: tuple[int, ...], x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.matmul(x.astype(np.int64) - a_zp, w.astype(np.int64) - _per_column(b_zp, np.int64))


def ref_qmatmul(a: QMatMulAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """QLinearMatMul (or QGemm with an int32 bias): exact accumulation, the bias added,
    then ``MlasRequantizeOutput`` per column."""
    acc = _int_matmul(a.a_zp, a.b_zp, x, w)
    if a.bias:
        acc = acc + _per_column(a.bias, np.int64)
    return mlas.requantize_output(acc, _per_column(a.multiplier, np.float32), a.out.zero_point[0],
                                a.out.dtype)


def ref_matmul_integer(a: IntMatMulAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MatMulInteger: exact int32 (wrapping like onnxruntime's int32 sums)."""
    return mlas.wrap_i32(_int_matmul(a.a_zp, a.b_zp, x, w))


define(OpDef(OpKind.MATMUL, MatMulAttrs, arity=(2, 2), operands="float", shape=_matmul_shape,
             reference=lambda a, ins: np.matmul(ins[0], ins[1]), macs=_matmul_macs,
             kernels=kernels("float"), tags=frozenset({"matmul"})))
define(OpDef(OpKind.QMATMUL, QMatMulAttrs, arity=(2, 2), operands="int8",
             shape=_qmatmul_shape, reference=lambda a, ins: ref_qmatmul(a, *ins),
             kernels=kernels(EIGHT_BIT), tags=frozenset({"matmul"})))
define(OpDef(OpKind.MATMUL_INTEGER, IntMatMulAttrs, arity=(2, 2), operands="int8",
             shape=_matmul_integer_shape, reference=lambda a, ins: ref_matmul_integer(a, *ins),
             kernels=kernels(EIGHT_BIT), tags=frozenset({"matmul"})))
