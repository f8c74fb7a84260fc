"""Quantized pooling on 8-bit tensors: QLinearGlobalAveragePool (plain and NCHW[b]c) and
QLinearAveragePool (plain), each float operation onnxruntime's in order and precision
(``sqzc.ops.defs.pool``, ``sqzc.ort.oracles.contrib_ops``).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, SIGNED, entry_alloca, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.common.cvt import cvt_saturate
from sqzc.backends.llvm.emit.common.qmath import saturate_round, to_i32
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, QAvgPoolAttrs, QPoolAttrs
from sqzc.ops.defs.pool import qglobal_avgpool_scale


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


for _dt in ("uint8", "int8"):
    emits(OpKind.QAVGPOOL, _dt)(_emit_qavgpool)
