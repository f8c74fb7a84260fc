"""``cvtps2dq``-style conversions of onnxruntime's QOperator contrib kernels
(QLinearAdd/Mul, QLinearAveragePool): round half to even with x86's "integer indefinite"
for NaN and out-of-range values, then saturating packs.

Kept apart from ``qmath`` (ONNX QuantizeLinear's clamp-then-round) because the two
conversions differ exactly on NaN and huge values, and each kernel must use its own.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I8, I32, declare_intrinsic, f32
from sqzc.backends.llvm.emit.common.qmath import to_i32
from sqzc.ops import INT_RANGE


def cvt_saturate(b: ir.IRBuilder, t: ir.Value, dtype: str) -> ir.Value:
    """``cvtps2dq`` (round half to even; NaN or |t| >= 2**31 -> INT32_MIN) followed by the
    saturating packs to ``dtype``, as an i8: out-of-range and NaN give the lowest value."""
    lo, hi = INT_RANGE[dtype]
    rint = declare_intrinsic(b.module, "llvm.rint.f32", F32, [F32])
    ok = b.and_(b.fcmp_ordered(">=", t, f32(-(2.0 ** 31))), b.fcmp_ordered("<", t, f32(2.0 ** 31)))
    r = b.call(rint, [b.select(ok, t, f32(0.0))])
    r = b.select(b.fcmp_ordered("<", r, f32(lo)), f32(lo), r)
    r = b.select(b.fcmp_ordered(">", r, f32(hi)), f32(hi), r)
    r = b.select(ok, r, f32(lo))
    return b.trunc(b.fptosi(r, I32), I8)


def as_float(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """An 8-bit value (of IR dtype ``dtype``) converted exactly to float32."""
    return b.sitofp(to_i32(b, v, dtype), F32)
