"""Integer kernels: quantize, dequantize, integer convolution, quantized global pooling,
and max pooling on 8-bit tensors (plain NCHW layout, any target).

Every float operation mirrors onnxruntime's CPU kernels in order and precision (see
``sqzc.quant_semantics``): requantization is ``float32(acc) * multiplier``, clamped to the
zero-point-shifted range, rounded half to even (``llvm.rint``), plus the zero point.
The convolution accumulates one output row of int32 partial sums on the stack, with taps
unrolled and their valid column ranges known at compile time, so LLVM vectorizes the
innermost loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from llvmlite import ir
from sqzc.backends.llvm.cg import (
    F32,
    I32,
    I64,
    SIGNED,
    declare_intrinsic,
    entry_alloca,
    f32,
    for_range,
    i64,
    loop_nest,
)
from sqzc.backends.llvm.emit.conv import valid_range
from sqzc.backends.llvm.emit.pool import accumulate_taps, int8_maxpool_rows, int_max
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand

from sqzc.ops import ConvAttrs, OpKind, QConvAttrs, QPoolAttrs, QuantAttrs
from sqzc.quant_semantics import _QRANGE, qglobal_avgpool_scale


def const_table(module: ir.Module, name: str, ty: ir.Type, values: list) -> ir.GlobalVariable:
    """An internal constant array of ``values`` (per-channel multipliers, zero points)."""
    arr_t = ir.ArrayType(ty, len(values))
    g = ir.GlobalVariable(module, arr_t, name=module.get_unique_name(name))
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_t, [ir.Constant(ty, v) for v in values])
    return g


def table_value(b: ir.IRBuilder, g: ir.GlobalVariable, idx: ir.Value, ty: ir.Type) -> ir.Value:
    """Element ``idx`` of a ``const_table``."""
    return b.load(b.gep(g, [i64(0), idx], source_etype=g.value_type), typ=ty)


def to_i32(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """Widen an 8/32-bit value of IR dtype ``dtype`` to i32."""
    if dtype == "int32":
        return v
    return b.sext(v, I32) if dtype in SIGNED else b.zext(v, I32)


def saturate_round(b: ir.IRBuilder, v: ir.Value, zp: ir.Value | int, dtype: str) -> ir.Value:
    """``clamp(v, lo - zp, hi - zp)`` rounded half to even, plus ``zp``, as an 8-bit value."""
    lo, hi = _QRANGE[dtype]
    zpf = f32(float(zp)) if isinstance(zp, int) else zp
    rint = declare_intrinsic(b.module, "llvm.rint.f32", F32, [F32])
    low = b.fsub(f32(float(lo)), zpf)
    high = b.fsub(f32(float(hi)), zpf)
    v = b.select(b.fcmp_unordered("<", v, low), low, v)  # NaN -> lowest, as onnxruntime
    v = b.select(b.fcmp_ordered(">", v, high), high, v)
    r = b.fadd(b.call(rint, [v]), zpf)
    return b.trunc(b.fptosi(r, I32), ir.IntType(8))


def quantize_vector(b: ir.IRBuilder, v: ir.Value, q: QuantAttrs, lanes: int) -> ir.Value:
    """``saturate_round(v / scale, zp)`` on ``<lanes x float>`` (per-tensor ``q``): the
    QuantizeLinear of a float-path conv's epilogue, lane for lane the scalar kernel's."""
    lo, hi = _QRANGE[q.dtype]
    zp = float(q.zero_point[0])
    vt = ir.VectorType(F32, lanes)

    def splat_f(x: float) -> ir.Constant:
        return ir.Constant(vt, [f32(x)] * lanes)

    rint = declare_intrinsic(b.module, f"llvm.rint.v{lanes}f32", vt, [vt])
    v = b.fdiv(v, splat_f(q.scale[0]))
    low, high = splat_f(lo - zp), splat_f(hi - zp)
    v = b.select(b.fcmp_unordered("<", v, low), low, v)  # NaN -> lowest, as onnxruntime
    v = b.select(b.fcmp_ordered(">", v, high), high, v)
    r = b.fadd(b.call(rint, [v]), splat_f(zp))
    return b.trunc(b.fptosi(r, ir.VectorType(I32, lanes)), ir.VectorType(ir.IntType(8), lanes))


def requantize_value(b: ir.IRBuilder, q: ir.Value, x: QuantAttrs, y: QuantAttrs) -> ir.Value:
    """Exactly Q(DQ(q)): ``float32(int32(q) - zp_x) * scale_x``, then quantize to ``y``."""
    dq = b.fmul(b.sitofp(b.sub(to_i32(b, q, x.dtype), ir.Constant(I32, x.zero_point[0])), F32),
                f32(x.scale[0]))
    return saturate_round(b, b.fdiv(dq, f32(y.scale[0])), y.zero_point[0], y.dtype)


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
            b.store(saturate_round(b, v, zp, q.dtype), _flat(y, b, at))
        return
    with loop_nest(b, y.shape) as idx:
        scale, zp = _axis_values(ctx, q, idx)
        v = b.fdiv(x.load(b, idx), scale)
        y.store(b, idx, saturate_round(b, v, zp, q.dtype))


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


def accumulate_int_conv_row(b: ir.IRBuilder, c: ConvAttrs, x: Operand, w: Operand, ow: int,
                            n: ir.Value, o: ir.Value, g: ir.Value, r: ir.Value,
                            xzp: ir.Value, wz: ir.Value,
                            add: Callable[[ir.Value, ir.Value], None]) -> None:
    """Output row ``r`` of channel ``o`` of a plain integer convolution: for every input
    channel of group ``g`` and in-bounds tap, ``add(q, (x - xzp) * (w - wz))`` for each
    output column ``q`` (i32). Padded taps are skipped: they contribute
    ``(x_zp - x_zp) * w = 0``. Shared by QLinearConv and ConvInteger."""
    _, _, h, wd = x.shape
    icg = w.shape[1]
    kh, kw = c.kernel
    (sh, sw), (dh, dw) = c.strides, c.dilations
    with for_range(b, 0, icg, name="ic") as ic:
        cin = b.add(b.mul(g, i64(icg)), ic) if c.group > 1 else ic
        for i in range(kh):
            ih = b.add(b.mul(r, i64(sh)), i64(i * dh - c.pads[0]))
            ok = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(h)))
            with b.if_then(ok):
                for j in range(kw):
                    q_lo, q_hi = valid_range(ow, wd, sw, j * dw - c.pads[1])
                    if q_lo >= q_hi:
                        continue
                    wv = b.sub(to_i32(b, w.load(b, [o, ic, i64(i), i64(j)]), w.dtype), wz)
                    with for_range(b, q_lo, q_hi, name=f"q{i}_{j}") as q:
                        iw = b.add(b.mul(q, i64(sw)), i64(j * dw - c.pads[1]))
                        xv = b.sub(to_i32(b, x.load(b, [n, cin, ih, iw]), x.dtype), xzp)
                        add(q, b.mul(xv, wv))


def _emit_qconv(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QConvAttrs)
    c = a.conv
    b, x, w, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.out
    bias = ctx.ins[2] if len(ctx.ins) > 2 else None
    n_batch, oc, oh, ow = y.shape
    ocg = oc // c.group
    row = entry_alloca(b, I32, "acc_row", ow)
    mult = const_table(ctx.module, "qmult", F32, [float(v) for v in a.multiplier])
    wzp = const_table(ctx.module, "wzp", I32, [int(v) for v in a.w_zp]) \
        if len(set(a.w_zp)) > 1 else None
    lo, hi = ctx.split_range(0, n_batch * oc)
    xzp = ir.Constant(I32, a.x_zp)

    def acc_ptr(q: ir.Value) -> ir.Value:
        return b.gep(row, [q], source_etype=I32)

    with for_range(b, lo, hi, name="noc") as noc:
        n, o = b.sdiv(noc, i64(oc)), b.srem(noc, i64(oc))
        g = b.sdiv(o, i64(ocg)) if c.group > 1 else i64(0)
        wz = table_value(b, wzp, o, I32) if wzp is not None else ir.Constant(I32, a.w_zp[0])
        m = table_value(b, mult, o, F32)
        init = to_i32(b, bias.load(b, [o]), "int32") if bias is not None else ir.Constant(I32, 0)
        with for_range(b, 0, oh, name="oh") as r:
            with for_range(b, 0, ow, name="init") as q:
                b.store(init, acc_ptr(q))
            accumulate_int_conv_row(b, c, x, w, ow, n, o, g, r, xzp, wz,
                                    lambda q, v: b.store(b.add(b.load(acc_ptr(q), typ=I32), v),
                                                         acc_ptr(q)))
            with for_range(b, 0, ow, name="rq") as q:
                v = b.fmul(b.sitofp(b.load(acc_ptr(q), typ=I32), F32), m)
                res = saturate_round(b, v, a.out.zero_point[0], a.out.dtype)
                if a.requant is not None:
                    res = requantize_value(b, res, a.out, a.requant)
                y.store(b, [n, o, r, q], res)


for _dt in ("uint8", "int8"):
    emits(OpKind.QCONV, _dt)(_emit_qconv)


def _emit_qgap(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QPoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, ch = x.shape[:2]
    spatial = list(x.shape[2:])
    size = 1
    for d in spatial:
        size *= d
    scale = float(qglobal_avgpool_scale(a, size))
    acc = entry_alloca(b, I32, "acc")
    lo, hi = ctx.split_range(0, n_batch * ch)
    zeros = [i64(0)] * len(spatial)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(ch)), b.srem(nc, i64(ch))
        b.store(ir.Constant(I32, -a.x.zero_point[0] * size), acc)
        with loop_nest(b, spatial, name="s") as sidx:
            v = to_i32(b, x.load(b, [n, c] + list(sidx)), x.dtype)
            b.store(b.add(b.load(acc, typ=I32), v), acc)
        v = b.fmul(b.sitofp(b.load(acc, typ=I32), F32), f32(scale))
        y.store(b, [n, c] + zeros, saturate_round(b, v, a.y.zero_point[0], a.y.dtype))


def _emit_qgap_blocked(ctx: KernelContext) -> None:
    """The same on NCHW[b]c input and output: one vector of b channel sums per block (the
    padded lanes' results are never read), then the scalar requantization per lane."""
    a = ctx.op.attrs
    assert isinstance(a, QPoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, cb_len, h, w, blk = x.shape
    size = h * w
    scale = f32(float(qglobal_avgpool_scale(a, size)))
    vi = ir.VectorType(I32, blk)
    acc = entry_alloca(b, vi, "acc")
    start = ir.Constant(vi, [ir.Constant(I32, -a.x.zero_point[0] * size)] * blk)
    with ctx.parallel_for(n_batch * cb_len, name="block", grain=h * w * blk) as ncb:
        n, cb = b.sdiv(ncb, i64(cb_len)), b.srem(ncb, i64(cb_len))
        b.store(start, acc)
        base = b.add(b.mul(n, i64(x.strides[0])), b.mul(cb, i64(x.strides[1])))
        with for_range(b, 0, h, name="r") as r, for_range(b, 0, w, name="q") as q:
            off = b.add(base, b.add(b.mul(r, i64(x.strides[2])), b.mul(q, i64(x.strides[3]))))
            v8 = b.load(b.gep(x.ptr, [off], inbounds=True, source_etype=ir.IntType(8)),
                        typ=ir.VectorType(ir.IntType(8), blk), align=1)
            wide = b.sext(v8, vi) if x.dtype in SIGNED else b.zext(v8, vi)
            b.store(b.add(b.load(acc, typ=vi), wide), acc)
        total = b.load(acc, typ=vi)
        ybase = b.add(b.mul(n, i64(y.strides[0])), b.mul(cb, i64(y.strides[1])))
        for lane in range(blk):
            s = b.extract_element(total, ir.Constant(I32, lane))
            q8 = saturate_round(b, b.fmul(b.sitofp(s, F32), scale), a.y.zero_point[0],
                                a.y.dtype)
            b.store(q8, b.gep(y.ptr, [b.add(ybase, i64(lane))], inbounds=True,
                              source_etype=ir.IntType(8)))


for _dt in ("uint8", "int8"):
    emits(OpKind.QGLOBAL_AVGPOOL, _dt)(_emit_qgap)
    emits(OpKind.QGLOBAL_AVGPOOL, _dt, layout="blocked")(_emit_qgap_blocked)


def _emit_int_maxpool(ctx: KernelContext) -> None:
    """Max pooling on 8-bit tensors (padding never wins: padded taps are skipped)."""
    signed = ctx.ins[0].dtype in SIGNED
    if not int8_maxpool_rows(ctx, signed):
        accumulate_taps(ctx, ir.Constant(ir.IntType(8), -128 if signed else 0), int_max(signed))


for _dt in ("uint8", "int8"):
    emits(OpKind.MAXPOOL, _dt)(_emit_int_maxpool)

__all__ = ["Operand", "saturate_round", "to_i32"]
