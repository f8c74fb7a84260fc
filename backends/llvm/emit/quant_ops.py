"""Integer kernels of the QOperator ops: lookup tables (QLinearSigmoid/LeakyRelu),
QLinearAdd/Mul, QLinearMatMul, MatMulInteger, ConvInteger and QLinearAveragePool.

Plain NCHW layout, scalar loop nests. Each float operation is onnxruntime's, in its order
and precision (``sqzc.quant_reference`` and ``sqzc.quant_reference_contrib`` document every
formula): QLinearAdd uses fused multiply-adds (``llvm.fma``, exact on any target),
QLinearMul and the pools separate multiply and add (LLVM does not contract them without
fast-math flags). Where onnxruntime converts with ``cvtps2dq`` and no float clamp, a value
outside the int32 range (or NaN) becomes the lowest 8-bit value, as x86's "integer
indefinite" does there.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from llvmlite import ir

from sqzc import quant_reference_contrib as qrc

from sqzc.backends.llvm.cg import (
    F32,
    I8,
    I32,
    I64,
    declare_intrinsic,
    entry_alloca,
    f32,
    for_range,
    i64,
    loop_nest,
)
from sqzc.backends.llvm.emit.quant import (
    accumulate_int_conv_row,
    const_table,
    saturate_round,
    table_value,
    to_i32,
)
from sqzc.backends.llvm.emit.matmul import matmul_geometry
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import (
    IntConvAttrs,
    IntMatMulAttrs,
    LookupAttrs,
    OpKind,
    QAvgPoolAttrs,
    QBinaryAttrs,
    QMatMulAttrs,
    QSoftmaxAttrs,
)
from sqzc.quant_semantics import _QRANGE, qadd_constants, qmul_ratio

EIGHT_BIT = ("uint8", "int8")


def _per_index(ctx: KernelContext, values: tuple, ty: ir.Type, name: str
               ) -> Callable[[ir.Value], ir.Value]:
    """``values[i]`` as a function of an i64 index: a constant when all values are equal,
    else a load from a constant global table."""
    const = [float(v) if ty == F32 else int(v) for v in values]
    if len(set(const)) == 1:
        c = ir.Constant(ty, const[0])
        return lambda _i: c
    g = const_table(ctx.module, name, ty, const)
    return lambda i: table_value(ctx.b, g, i, ty)


def cvt_saturate(b: ir.IRBuilder, t: ir.Value, dtype: str) -> ir.Value:
    """``cvtps2dq`` (round half to even; NaN or |t| >= 2**31 -> INT32_MIN) followed by the
    saturating packs to ``dtype``, as an i8: out-of-range and NaN give the lowest value."""
    lo, hi = _QRANGE[dtype]
    rint = declare_intrinsic(b.module, "llvm.rint.f32", F32, [F32])
    ok = b.and_(b.fcmp_ordered(">=", t, f32(-(2.0 ** 31))), b.fcmp_ordered("<", t, f32(2.0 ** 31)))
    r = b.call(rint, [b.select(ok, t, f32(0.0))])
    r = b.select(b.fcmp_ordered("<", r, f32(lo)), f32(lo), r)
    r = b.select(b.fcmp_ordered(">", r, f32(hi)), f32(hi), r)
    r = b.select(ok, r, f32(lo))
    return b.trunc(b.fptosi(r, I32), I8)


def _as_float(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """An 8-bit value (of IR dtype ``dtype``) converted exactly to float32."""
    return b.sitofp(to_i32(b, v, dtype), F32)


# ----------------------------------------------------------------------------- lookup


def _emit_lookup(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, LookupAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    bits = [v & 0xFF for v in a.table]  # i8 constants hold the entries' bit patterns
    g = const_table(ctx.module, "lut", I8, [v - 256 if v > 127 else v for v in bits])
    with loop_nest(b, y.shape) as idx:
        byte = b.zext(x.load(b, idx), ir.IntType(64))
        y.store(b, idx, table_value(b, g, byte, I8))


# ----------------------------------------------------------------------------- add / mul


def _emit_qadd(ctx: KernelContext) -> None:
    """``sat(cvt(fma(x0, rX, fma(x1, rY, fixed))))`` with input 0 as onnxruntime's X."""
    a = ctx.op.attrs
    assert isinstance(a, QBinaryAttrs)
    b, (x0, x1), y = ctx.b, ctx.ins, ctx.out
    rx, ry, fixed = (f32(float(v)) for v in qadd_constants(a))
    fma = declare_intrinsic(ctx.module, "llvm.fma.f32", F32, [F32, F32, F32])
    s0, s1 = x0.broadcast_strides(y.shape), x1.broadcast_strides(y.shape)
    with loop_nest(b, y.shape) as idx:
        xv = _as_float(b, x0.load(b, idx, s0), x0.dtype)
        yv = _as_float(b, x1.load(b, idx, s1), x1.dtype)
        t = b.call(fma, [xv, rx, b.call(fma, [yv, ry, fixed])])
        y.store(b, idx, cvt_saturate(b, t, y.dtype))


def _emit_qmul(ctx: KernelContext) -> None:
    """``sat(cvt(f32(f32(f32(p) * ratio) + zC)))``, ``p = (a - zA) * (b - zB)`` in int32."""
    a = ctx.op.attrs
    assert isinstance(a, QBinaryAttrs)
    b, (x0, x1), y = ctx.b, ctx.ins, ctx.out
    ratio, zc = f32(float(qmul_ratio(a))), f32(float(a.y.zero_point[0]))
    za, zb = ir.Constant(I32, a.a.zero_point[0]), ir.Constant(I32, a.b.zero_point[0])
    s0, s1 = x0.broadcast_strides(y.shape), x1.broadcast_strides(y.shape)
    with loop_nest(b, y.shape) as idx:
        p = b.mul(b.sub(to_i32(b, x0.load(b, idx, s0), x0.dtype), za),
                  b.sub(to_i32(b, x1.load(b, idx, s1), x1.dtype), zb))
        t = b.fadd(b.fmul(b.sitofp(p, F32), ratio), zc)
        y.store(b, idx, cvt_saturate(b, t, y.dtype))


# ----------------------------------------------------------------------------- matmul


def _int_matmul(ctx: KernelContext, a_zp: int, b_zp: tuple[int, ...],
                finish: Callable[[ir.Value, ir.Value], ir.Value]) -> None:
    """Numpy-semantics matmul (1-D promotion, broadcast batch dims) of 8-bit operands with
    an exact int32 accumulator per output element; ``finish(acc, column)`` gives the value
    stored."""
    bld, (xa, xb), y = ctx.b, ctx.ins, ctx.out
    g = matmul_geometry(xa, xb)
    azp = ir.Constant(I32, a_zp)
    bzp = _per_index(ctx, b_zp, I32, "bzp")
    acc = entry_alloca(bld, I32, "acc")
    with loop_nest(bld, g.batch, name="bt") as bidx:
        with for_range(bld, 0, g.m, name="m") as i:
            with for_range(bld, 0, g.n, name="n") as j:
                bz = bzp(j)
                bld.store(ir.Constant(I32, 0), acc)
                with for_range(bld, 0, g.k, name="k") as kk:
                    av = bld.sub(to_i32(bld, xa.load(bld, list(bidx) + [i, kk], g.a_strides),
                                        xa.dtype), azp)
                    bv = bld.sub(to_i32(bld, xb.load(bld, list(bidx) + [kk, j], g.b_strides),
                                        xb.dtype), bz)
                    bld.store(bld.add(bld.load(acc, typ=I32), bld.mul(av, bv)), acc)
                y.store(bld, g.out_index(bidx, i, j), finish(bld.load(acc, typ=I32), j))


def _emit_qmatmul(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QMatMulAttrs)
    mult = _per_index(ctx, a.multiplier, F32, "qmm_mult")
    bias = _per_index(ctx, a.bias, I32, "qmm_bias") if a.bias else None
    out = a.out

    def finish(acc: ir.Value, j: ir.Value) -> ir.Value:
        if bias is not None:  # QGemm's int32 C, added to the sums (wrapping, as MLAS's)
            acc = ctx.b.add(acc, bias(j))
        v = ctx.b.fmul(ctx.b.sitofp(acc, F32), mult(j))
        return saturate_round(ctx.b, v, out.zero_point[0], out.dtype)

    _int_matmul(ctx, a.a_zp, a.b_zp, finish)


def _emit_matmul_integer(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, IntMatMulAttrs)
    _int_matmul(ctx, a.a_zp, a.b_zp, lambda acc, _j: acc)


# ----------------------------------------------------------------------------- conv


def _emit_conv_integer(ctx: KernelContext) -> None:
    """One output row of int32 sums at a time, accumulated in the output."""
    a = ctx.op.attrs
    assert isinstance(a, IntConvAttrs)
    c = a.conv
    b, x, w, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.out
    n_batch, oc, oh, ow = y.shape
    ocg = oc // c.group
    wzp = _per_index(ctx, a.w_zp, I32, "wzp")
    xzp = ir.Constant(I32, a.x_zp)
    lo, hi = ctx.split_range(0, n_batch * oc)
    with for_range(b, lo, hi, name="noc") as noc:
        n, o = b.sdiv(noc, i64(oc)), b.srem(noc, i64(oc))
        g = b.sdiv(o, i64(ocg)) if c.group > 1 else i64(0)
        wz = wzp(o)
        with for_range(b, 0, oh, name="oh") as r:
            with for_range(b, 0, ow, name="init") as q:
                y.store(b, [n, o, r, q], ir.Constant(I32, 0))
            accumulate_int_conv_row(
                b, c, x, w, ow, n, o, g, r, xzp, wz,
                lambda q, v: y.store(b, [n, o, r, q], b.add(y.load(b, [n, o, r, q]), v)))


# ----------------------------------------------------------------------------- avg pool


def _emit_qavgpool(ctx: KernelContext) -> None:
    """Per output: sequential float32 sum of ``f32(x_scale * f32(x - x_zp))`` over the
    window clipped to the image (row-major), ``/ count``, ``/ y_scale``, ``+ y_zp``."""
    a = ctx.op.attrs
    assert isinstance(a, QAvgPoolAttrs)
    p = a.pool
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, ch, oh, ow = y.shape
    h, w = x.shape[2:]
    (kh, kw), (sh, sw) = p.kernel, p.strides
    xs, ys = f32(a.x.scale[0]), f32(a.y.scale[0])
    xz, yz = ir.Constant(I32, a.x.zero_point[0]), f32(float(a.y.zero_point[0]))
    acc = entry_alloca(b, F32, "acc")
    lo, hi = ctx.split_range(0, n_batch * ch)

    def clipped(o: ir.Value, s: int, pad: int, k: int, size: int) -> tuple[ir.Value, ir.Value]:
        start = b.sub(b.mul(o, i64(s)), i64(pad))
        end = b.add(start, i64(k))
        end = b.select(b.icmp_signed("<", end, i64(size)), end, i64(size))
        start = b.select(b.icmp_signed(">", start, i64(0)), start, i64(0))
        return start, end

    def extent(start: ir.Value, end: ir.Value) -> ir.Value:
        d = b.sub(end, start)
        return b.select(b.icmp_signed(">", d, i64(0)), d, i64(0))

    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(ch)), b.srem(nc, i64(ch))
        with for_range(b, 0, oh, name="oh") as r:
            hs, he = clipped(r, sh, p.pads[0], kh, h)
            with for_range(b, 0, ow, name="ow") as q:
                ws, we = clipped(q, sw, p.pads[1], kw, w)
                b.store(f32(0.0), acc)
                with for_range(b, hs, he, name="wh") as ih:
                    with for_range(b, ws, we, name="ww") as iw:
                        xv = b.sub(to_i32(b, x.load(b, [n, c, ih, iw]), x.dtype), xz)
                        d = b.fmul(xs, b.sitofp(xv, F32))
                        b.store(b.fadd(b.load(acc, typ=F32), d), acc)
                if p.count_include_pad:
                    cnt = f32(float(kh * kw))
                else:
                    cnt = b.sitofp(b.mul(extent(hs, he), extent(ws, we)), F32)
                v = b.fdiv(b.load(acc, typ=F32), cnt)
                t = b.fadd(b.fdiv(v, ys), yz)
                y.store(b, [n, c, r, q], cvt_saturate(b, t, y.dtype))


# ----------------------------------------------------------------------------- softmax


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
    lo, hi = _QRANGE[y.dtype]
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


for _dt in EIGHT_BIT:
    emits(OpKind.QSOFTMAX, _dt)(_emit_qsoftmax)
    emits(OpKind.LOOKUP, _dt)(_emit_lookup)
    emits(OpKind.QADD, _dt)(_emit_qadd)
    emits(OpKind.QMUL, _dt)(_emit_qmul)
    emits(OpKind.QMATMUL, _dt)(_emit_qmatmul)
    emits(OpKind.MATMUL_INTEGER, _dt)(_emit_matmul_integer)
    emits(OpKind.CONV_INTEGER, _dt)(_emit_conv_integer)
    emits(OpKind.QAVGPOOL, _dt)(_emit_qavgpool)

__all__ = ["Operand", "cvt_saturate"]
