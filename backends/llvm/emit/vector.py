"""Vector helpers shared by the blocked-layout kernels."""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32
from sqzc.ops import Activation


def vtype(lanes: int) -> ir.VectorType:
    """``<lanes x float>``."""
    return ir.VectorType(F32, lanes)


def vconst(value: float, lanes: int) -> ir.Constant:
    """A splat float vector constant."""
    return ir.Constant(vtype(lanes), [ir.Constant(F32, float(value))] * lanes)


def splat(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    """Broadcast a float to every lane (LLVM selects vbroadcastss for a loaded scalar)."""
    undef = ir.Constant(vtype(lanes), ir.Undefined)
    one = b.insert_element(undef, scalar, ir.Constant(I32, 0))
    mask = ir.Constant(ir.VectorType(I32, lanes), [ir.Constant(I32, 0)] * lanes)
    return b.shuffle_vector(one, undef, mask)


def vector_activation(b: ir.IRBuilder, v: ir.Value, act: Activation, lanes: int) -> ir.Value:
    """The epilogue on a vector (same NaN behaviour as the scalar kernels)."""
    if act.kind == "none":
        return v
    zero = vconst(0.0, lanes)
    if act.kind == "relu":
        return b.select(b.fcmp_ordered("<", v, zero), zero, v)
    if act.kind == "clip":
        lo, hi = vconst(act.lo, lanes), vconst(act.hi, lanes)
        v = b.select(b.fcmp_ordered("<", v, lo), lo, v)
        return b.select(b.fcmp_ordered(">", v, hi), hi, v)
    if act.kind == "leaky":
        return b.select(b.fcmp_ordered("<", v, zero), b.fmul(v, vconst(act.alpha, lanes)), v)
    raise AssertionError(act.kind)
