"""onnxruntime's QLinearSoftmax on 8-bit tensors: a 256-entry exp table chosen at compile
time (``sqzc.ort.oracles.contrib_ops.qlinear_softmax_table``), the float32 row sum in
index order, then each entry scaled, rounded half to even and saturated, as onnxruntime
does.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir

from sqzc.ort.oracles import contrib_ops as qrc
from sqzc.backends.llvm.cg import F32, I8, I32, I64, declare_intrinsic, entry_alloca, f32, \
    for_range, i64
from sqzc.backends.llvm.emit.common.qmath import const_table, table_value
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import INT_RANGE, OpKind, QSoftmaxAttrs


def _emit_qsoftmax(ctx: KernelContext) -> None:
    """onnxruntime's QLinearSoftmax, one row (the elements along the axis) per claim: the
    row's max, then the float32 sum of the table entries in index order, then each entry
    times ``floor(1 / y_scale)`` over the sum, rounded half to even, plus the zero point,
    saturated in float (an overflow to inf gives the top value, as onnxruntime)."""
    a = ctx.op.attrs
    assert isinstance(a, QSoftmaxAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    shape = y.shape
    length = shape[a.axis]
    outer, inner = math.prod(shape[:a.axis]), math.prod(shape[a.axis + 1:])
    signed = y.dtype == "int8"
    table = qrc.qlinear_softmax_table(a.x_scale, length, signed)
    g = const_table(ctx.module, "softmax_exp", F32, [float(v) for v in table])
    inv = f32(float(np.float32(math.floor(np.float32(1.0) / np.float32(a.y.scale[0])))))
    zp = f32(float(a.y.zero_point[0]))
    lo, hi = INT_RANGE[y.dtype]
    rint = declare_intrinsic(ctx.module, "llvm.rint.f32", F32, [F32])
    top = i64(127 if signed else 255)
    if length == 0 or outer * inner == 0:
        return

    def split(v: ir.Value, dims: tuple[int, ...]) -> list[ir.Value]:
        out = []
        for d in reversed(dims):
            out.append(b.srem(v, i64(d)))
            v = b.sdiv(v, i64(d))
        return out[::-1]

    with ctx.parallel_for(outer * inner, name="rows", grain=length) as row:
        pre = split(b.sdiv(row, i64(inner)), shape[:a.axis])
        post = split(b.srem(row, i64(inner)), shape[a.axis + 1:])

        def at(k: ir.Value) -> list[ir.Value]:
            return [*pre, k, *post]

        def entry(k: ir.Value, shift: ir.Value) -> ir.Value:
            raw = b.sext(x.load(b, at(k)), I64) if signed else b.zext(x.load(b, at(k)), I64)
            return table_value(b, g, b.and_(b.add(raw, shift), i64(0xFF)), F32)

        best = entry_alloca(b, I64, "row_max")
        total = entry_alloca(b, F32, "row_sum")
        b.store(i64(lo), best)
        with for_range(b, 0, length, name="max") as k:
            v = b.sext(x.load(b, at(k)), I64) if signed else b.zext(x.load(b, at(k)), I64)
            m = b.load(best)
            b.store(b.select(b.icmp_signed(">", v, m), v, m), best)
        shift = b.sub(top, b.load(best), name="shift")
        b.store(f32(0.0), total)
        with for_range(b, 0, length, name="sum") as k:
            b.store(b.fadd(b.load(total), entry(k, shift)), total)
        s = b.load(total)
        with for_range(b, 0, length, name="out") as k:
            v = b.fadd(b.call(rint, [b.fdiv(b.fmul(entry(k, shift), inv), s)]), zp)
            v = b.select(b.fcmp_ordered("<", v, f32(lo)), f32(lo), v)
            v = b.select(b.fcmp_ordered(">", v, f32(hi)), f32(hi), v)
            y.store(b, at(k), b.trunc(b.fptosi(v, I32), I8))


for _dt in ("uint8", "int8"):
    emits(OpKind.QSOFTMAX, _dt)(_emit_qsoftmax)
