"""Element-wise ops: the activations (one kind for the whole activation table), the
broadcasting binary ops, Cast, and the quantized element-wise ops (lookup tables,
QLinearAdd, QLinearMul)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.activations import ACTIVATIONS, Activation
from sqzc.ops.attrs import CastAttrs, LookupAttrs, NoAttrs, QBinaryAttrs
from sqzc.ops.geometry import broadcast_shapes
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.opdef import EIGHT_BIT, OpDef, define, kernels, need_8bit, same_shape
from sqzc.ort.oracles import contrib_ops as qrc

def _binary_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    if ins[0].dtype != ins[1].dtype:
        raise ModelError(f"operand dtypes differ: {ins[0]} and {ins[1]}")
    return TensorType(broadcast_shapes(ins[0].shape, ins[1].shape), ins[0].dtype)


def _cast_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, CastAttrs)
    return TensorType(ins[0].shape, a.to)


def int_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        q = np.abs(x) // np.abs(y)
        return (np.sign(x) * np.sign(y) * q).astype(x.dtype)
    return (x / y).astype(x.dtype)


def _lookup_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, LookupAttrs)
    need_8bit("lookup", ins[:1])
    if len(a.table) != 256:
        raise ModelError(f"lookup table has {len(a.table)} entries, expected 256")
    return TensorType(ins[0].shape, a.dtype)


def ref_lookup(a: LookupAttrs, x: np.ndarray) -> np.ndarray:
    """``table[raw byte of x]``."""
    table = np.asarray(a.table, dtype=np.int64).astype(a.dtype)
    return table[np.asarray(x).astype(np.int64) & 0xFF]


def _qbinary_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QBinaryAttrs)
    need_8bit("quantized add/mul", ins)
    if (ins[0].dtype, ins[1].dtype) != (a.a.dtype, a.b.dtype):
        raise ModelError(f"operands {ins[0]} and {ins[1]} do not match their quantization "
                         f"({a.a.dtype}, {a.b.dtype})")
    return TensorType(broadcast_shapes(ins[0].shape, ins[1].shape), a.y.dtype)


def qadd_constants(a: QBinaryAttrs) -> tuple[np.float32, np.float32, np.float32]:
    """(rX, rY, fixed) of onnxruntime's QLinearAdd with X = input 0, Y = input 1:
    ``rX = f32(sX / sC)``, ``rY = f32(sY / sC)``,
    ``fixed = f32(zC - fma(rX, zX, f32(rY * zY)))``; then per element
    ``y = sat(cvtps2dq(fma(x, rX, fma(y, rY, fixed))))``."""
    return qrc.qladd_constants(np.float32(a.a.scale[0]), a.a.zero_point[0],
                               np.float32(a.b.scale[0]), a.b.zero_point[0],
                               np.float32(a.y.scale[0]), a.y.zero_point[0])


def qmul_ratio(a: QBinaryAttrs) -> np.float32:
    """onnxruntime's QLinearMul ``f32(f32(sA * sB) / sC)``; per element
    ``y = sat(cvtps2dq(f32(f32(f32(p) * ratio) + zC)))`` with ``p = (a - zA) * (b - zB)``."""
    return qrc.qlmul_ratio(*(np.float32(q.scale[0]) for q in (a.a, a.b, a.y)))


def ref_qadd(a: QBinaryAttrs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """QLinearAdd with input 0 as onnxruntime's first MLAS operand."""
    xb, yb = np.broadcast_arrays(x, y)
    return qrc.qladd_kernel(xb, np.float32(a.a.scale[0]), a.a.zero_point[0], yb,
                            np.float32(a.b.scale[0]), a.b.zero_point[0],
                            np.float32(a.y.scale[0]), a.y.zero_point[0], np.dtype(a.y.dtype))


def ref_qmul(a: QBinaryAttrs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """QLinearMul (commutative: the operand order does not matter)."""
    out = qrc.qlinear_mul(x, a.a.scale[0], a.a.zero_point[0], y, a.b.scale[0],
                         a.b.zero_point[0], a.y.scale[0], a.y.zero_point[0])
    return out.astype(a.y.dtype)


#: every activation of the table (``sqzc.ops.activations``): one kind, whose attributes
#: are the ``Activation``; it prints as its activation (``relu``, ``leaky_relu`` ...)
define(OpDef(OpKind.ACTIVATION, Activation, arity=(1, 1), operands="float", shape=same_shape,
             reference=lambda a, ins: a.apply(ins[0]),
             kernels=kernels("float", ("plain", "blocked")), tags=frozenset({"activation"}),
             display=lambda a: ACTIVATIONS[a.kind].op_name))
_BINARY_REFERENCES = {OpKind.ADD: lambda a, ins: ins[0] + ins[1],
                      OpKind.SUB: lambda a, ins: ins[0] - ins[1],
                      OpKind.MUL: lambda a, ins: ins[0] * ins[1],
                      OpKind.DIV: lambda a, ins: int_div(ins[0], ins[1])}
for _kind, _ref in _BINARY_REFERENCES.items():
    define(OpDef(_kind, NoAttrs, arity=(2, 2), operands="any", shape=_binary_shape,
                 reference=_ref, kernels=kernels("float", ("plain", "blocked")),
                 tags=frozenset({"binary", "broadcast"})))
define(OpDef(OpKind.CAST, CastAttrs, arity=(1, 1), operands="any", shape=_cast_shape,
             reference=lambda a, ins: ins[0].astype(a.to), kernels=kernels("any")))
define(OpDef(OpKind.LOOKUP, LookupAttrs, arity=(1, 1), operands="int8", shape=_lookup_shape,
             reference=lambda a, ins: ref_lookup(a, *ins), kernels=kernels(EIGHT_BIT)))
define(OpDef(OpKind.QADD, QBinaryAttrs, arity=(2, 2), operands="int8", shape=_qbinary_shape,
             reference=lambda a, ins: ref_qadd(a, *ins), kernels=kernels(EIGHT_BIT),
             tags=frozenset({"broadcast"})))
define(OpDef(OpKind.QMUL, QBinaryAttrs, arity=(2, 2), operands="int8", shape=_qbinary_shape,
             reference=lambda a, ins: ref_qmul(a, *ins), kernels=kernels(EIGHT_BIT),
             tags=frozenset({"broadcast"})))
