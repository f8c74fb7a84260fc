"""QuantizeLinear, DequantizeLinear and requantization (a DequantizeLinear ->
QuantizeLinear pair folded into one kernel): float32 <-> 8 bit, per tensor or per axis,
plain NCHW (and blocked DequantizeLinear), any target.

Every float operation mirrors onnxruntime's CPU kernels in order and precision; the
saturating round itself is ``common/qmath.py``'s, shared with the integer kernels.
Contiguous tensors are split into rows with one scale and zero point each, shared among
the workers, so the inner loop is unit-stride and LLVM vectorizes it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, I64, SIGNED, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.common.qmath import (
    const_table,
    requantize_value,
    saturate_round,
    table_value,
    to_i32,
)
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import OpKind, QPoolAttrs, QuantAttrs


def _emit_requantize(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QPoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    with loop_nest(b, y.shape) as idx:
        y.store(b, idx, requantize_value(b, x.load(b, idx), a.x, a.y))


for _dt in ("uint8", "int8"):
    emits(OpKind.REQUANTIZE, _dt)(_emit_requantize)


def _axis_values(ctx: KernelContext, q: QuantAttrs, idx: list[ir.Value]
                 ) -> tuple[ir.Value, ir.Value]:
    """(scale, zero point as float) for the element at ``idx``."""
    b = ctx.b
    if q.per_tensor:
        return f32(q.scale[0]), f32(float(q.zero_point[0]))
    gs = const_table(ctx.module, "qscale", F32, [float(v) for v in q.scale])
    gz = const_table(ctx.module, "qzp", F32, [float(v) for v in q.zero_point])
    return table_value(b, gs, idx[q.axis], F32), table_value(b, gz, idx[q.axis], F32)


def _flat_rows(ctx: KernelContext, q: QuantAttrs) -> tuple[int, int] | None:
    """(rows, row length) splitting a contiguous tensor so that one scale/zero point
    covers each row (per axis a: the dims up to a; per tensor: rows of up to ~8k
    elements, so small planes such as 3x3 weights do not make tiny rows), or None when an
    operand is a strided view."""
    shape = ctx.out.shape
    size = math.prod(shape)
    if not all(t.view.contiguous for t in (*ctx.ins, ctx.out)) or not size:
        return None
    if not q.per_tensor:
        rows = math.prod(shape[:q.axis + 1])
        return rows, size // rows
    length = size  # one scale: any split works; halve down to ~8k-element rows
    while length > 8192 and length % 2 == 0:
        length //= 2
    return size // length, length


@contextmanager
def _row_elements(ctx: KernelContext, q: QuantAttrs, rows: int, length: int
                  ) -> Iterator[tuple[ir.Value, ir.Value]]:
    """Rows shared among the workers, then a unit-stride loop LLVM vectorizes; yields
    (flat element index, index along the quantization axis)."""
    b = ctx.b
    axis_len = 1 if q.per_tensor else ctx.out.shape[q.axis]
    with ctx.parallel_for(rows, name="rows", grain=length) as row:
        along = b.srem(row, i64(axis_len)) if axis_len > 1 else i64(0)
        base = b.mul(row, i64(length))
        with for_range(b, 0, length, name="e") as e:
            yield b.add(base, e), along


def _scalar_at(ctx: KernelContext, q: QuantAttrs, along: ir.Value, zp_type: ir.Type
               ) -> tuple[ir.Value, ir.Value]:
    """(scale, zero point of type ``zp_type``) of axis index ``along``."""
    b = ctx.b
    as_float = zp_type == F32
    if q.per_tensor:
        zp = f32(float(q.zero_point[0])) if as_float else ir.Constant(I32, q.zero_point[0])
        return f32(q.scale[0]), zp
    gs = const_table(ctx.module, "qscale", F32, [float(v) for v in q.scale])
    gz = const_table(ctx.module, "qzp", zp_type,
                     [float(v) for v in q.zero_point] if as_float else list(q.zero_point))
    return table_value(b, gs, along, F32), table_value(b, gz, along, zp_type)


def _flat(t: Operand, b: ir.IRBuilder, at: ir.Value) -> ir.Value:
    return b.gep(t.ptr, [at], inbounds=True, source_etype=t.ty)


@emits(OpKind.QUANTIZE, "float")
def emit_quantize(ctx: KernelContext) -> None:
    """float32 -> 8 bit: ``saturate(rint(x / scale) + zp)``."""
    q = ctx.op.attrs
    assert isinstance(q, QuantAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    flat = _flat_rows(ctx, q)
    if flat is not None:
        with _row_elements(ctx, q, *flat) as (at, along):
            scale, zp = _scalar_at(ctx, q, along, F32)
            v = b.fdiv(b.load(_flat(x, b, at), typ=x.ty), scale)
            b.store(saturate_round(b, v, zp, q.dtype, q.bits), _flat(y, b, at))
        return
    with loop_nest(b, y.shape) as idx:
        scale, zp = _axis_values(ctx, q, idx)
        v = b.fdiv(x.load(b, idx), scale)
        y.store(b, idx, saturate_round(b, v, zp, q.dtype, q.bits))


def _emit_dequantize(ctx: KernelContext) -> None:
    """8/32 bit -> float32: ``float(int32(q) - zp) * scale``."""
    q = ctx.op.attrs
    assert isinstance(q, QuantAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    flat = _flat_rows(ctx, q)
    if flat is not None:
        with _row_elements(ctx, q, *flat) as (at, along):
            scale, zp = _scalar_at(ctx, q, along, I32)
            diff = b.sub(to_i32(b, b.load(_flat(x, b, at), typ=x.ty), x.dtype), zp)
            b.store(b.fmul(b.sitofp(diff, F32), scale), _flat(y, b, at))
        return
    with loop_nest(b, y.shape) as idx:
        if q.per_tensor:
            zp, scale = ir.Constant(I32, q.zero_point[0]), f32(q.scale[0])
        else:
            gs = const_table(ctx.module, "dqscale", F32, [float(v) for v in q.scale])
            gz = const_table(ctx.module, "dqzp", I32, list(q.zero_point))
            scale = table_value(b, gs, idx[q.axis], F32)
            zp = table_value(b, gz, idx[q.axis], I32)
        diff = b.sub(to_i32(b, x.load(b, idx), x.dtype), zp)
        y.store(b, idx, b.fmul(b.sitofp(diff, F32), scale))


def _emit_dequantize_blocked(ctx: KernelContext) -> None:
    """Per-tensor DequantizeLinear of a blocked 8-bit tensor into a blocked float one, a
    vector of b channels at a time (the same ``float(q - zp) * scale``); padded channels
    stay zero."""
    q = ctx.op.attrs
    assert isinstance(q, QuantAttrs) and q.per_tensor
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, cb_len, h, w, blk = y.shape
    channels = ctx.op.out.shape[1]
    vi, vf = ir.VectorType(I32, blk), ir.VectorType(F32, blk)
    zp = ir.Constant(vi, [ir.Constant(I32, q.zero_point[0])] * blk)
    scale = ir.Constant(vf, [f32(q.scale[0])] * blk)
    lanes = ir.Constant(ir.VectorType(I64, blk), [i64(k) for k in range(blk)])
    zero = ir.Constant(vf, [f32(0.0)] * blk)
    with ctx.parallel_for(n_batch * cb_len * h, name="rows", grain=w * blk) as idx:
        r = b.srem(idx, i64(h))
        rest = b.sdiv(idx, i64(h))
        cb, n = b.srem(rest, i64(cb_len)), b.sdiv(rest, i64(cb_len))
        real = b.sub(i64(channels), b.mul(cb, i64(blk)))
        keep = b.icmp_signed("<", lanes, _splat_i64(b, real, blk))
        xrow = b.add(b.add(b.mul(n, i64(x.strides[0])), b.mul(cb, i64(x.strides[1]))),
                     b.mul(r, i64(x.strides[2])))
        yrow = b.add(b.add(b.mul(n, i64(y.strides[0])), b.mul(cb, i64(y.strides[1]))),
                     b.mul(r, i64(y.strides[2])))
        with for_range(b, 0, w, name="q") as col:
            v8 = b.load(b.gep(x.ptr, [b.add(xrow, b.mul(col, i64(x.strides[3])))],
                              inbounds=True, source_etype=ir.IntType(8)),
                        typ=ir.VectorType(ir.IntType(8), blk), align=1)
            wide = b.sext(v8, vi) if x.dtype in SIGNED else b.zext(v8, vi)
            v = b.fmul(b.sitofp(b.sub(wide, zp), vf), scale)
            b.store(b.select(keep, v, zero),
                    b.gep(y.ptr, [b.add(yrow, b.mul(col, i64(y.strides[3])))], inbounds=True,
                          source_etype=F32), align=4)


def _splat_i64(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    vt = ir.VectorType(I64, lanes)
    one = b.insert_element(ir.Constant(vt, ir.Undefined), v, ir.Constant(I32, 0))
    return b.shuffle_vector(one, ir.Constant(vt, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), [ir.Constant(I32, 0)] * lanes))


for _dt in ("uint8", "int8", "int32"):
    emits(OpKind.DEQUANTIZE, _dt)(_emit_dequantize)
for _dt in ("uint8", "int8"):
    emits(OpKind.DEQUANTIZE, _dt, layout="blocked")(_emit_dequantize_blocked)
