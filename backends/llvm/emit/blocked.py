"""Kernels on channel-blocked NCHW[b]c tensors other than convolution.

Pools, global pools, activations, same-shape binary ops and concat copies work on whole
``<b x float>`` vectors (b channels at once); ``reorder`` converts back to plain NCHW at
the edge of the blocked region. Physical shapes are [N, C/b, H, W, b]; padded channels
hold zeros and stay zero through every op here.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import LOWEST_F32, F32, entry_alloca, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.elementwise import _binary_value
from sqzc.backends.llvm.emit.conv_blocked import row_groups
from sqzc.backends.llvm.emit.pool import (
    Combine,
    avgpool_divisors,
    float_max,
    int_max,
    mlas_global_sum,
    mlas_pool_kernel,
    nchwc_pooled,
    PoolSumOrder,
)
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.emit.vector import splat, vconst, vector_activation, vtype
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import BINARY, UNARY_ACTIVATIONS, OpKind, PoolAttrs, ReduceAttrs, activation_of


def _vaddr(b: ir.IRBuilder, t: Operand, idx: list[ir.Value]) -> ir.Value:
    off = None
    for v, s in zip(idx, t.strides[:4]):
        term = b.mul(v, i64(s))
        off = term if off is None else b.add(off, term)
    return b.gep(t.ptr, [off], inbounds=True, source_etype=t.ty)


def _vload(b: ir.IRBuilder, t: Operand, idx: list[ir.Value]) -> ir.Value:
    """One channel block (b lanes of the operand's element type) at [n, cb, h, w]."""
    return b.load(_vaddr(b, t, idx), typ=ir.VectorType(t.ty, t.shape[4]),
                  align=t.ty.width // 8 if isinstance(t.ty, ir.IntType) else 4)


def _vstore(b: ir.IRBuilder, t: Operand, idx: list[ir.Value], v: ir.Value) -> None:
    b.store(v, _vaddr(b, t, idx), align=t.ty.width // 8 if isinstance(t.ty, ir.IntType) else 4)


def _blocks_and_rows(ctx: KernelContext, y: Operand):  # type: ignore[no-untyped-def]
    """Loop over (n, channel block) split across workers, yielding indices."""
    n_batch, cb = y.shape[0], y.shape[1]
    lo, hi = ctx.split_range(0, n_batch * cb)
    return lo, hi, cb


@emits(OpKind.MAXPOOL, "float", layout="blocked")
def emit_maxpool_blocked(ctx: KernelContext) -> None:
    """Vector max pooling (b channels per instruction), taps unrolled, no bounds checks."""
    _pool_blocked(ctx, True)


@emits(OpKind.AVGPOOL, "float", layout="blocked")
def emit_avgpool_blocked(ctx: KernelContext) -> None:
    """Vector average pooling with compile-time divisors."""
    _pool_blocked(ctx, False)


def _pool_windows(ctx: KernelContext, init: ir.Value, combine: Combine,
                  finish: Callable[[ir.Value, ir.Value, ir.Value], ir.Value] | None = None,
                  order: PoolSumOrder = "generic") -> None:
    """The blocked pooling loop nest, for any element type: per output pixel, ``init``
    folded with every in-bounds tap as ``acc = combine(b, x_tap, acc)`` in registers, then
    ``finish(acc, row, col)`` (if given) and one vector store. Output rows and columns are
    grouped at compile time by which taps are in bounds (as in the convolutions), so no
    tap is tested at run time; (sample, channel block, row) triples are shared among the
    workers. ``order`` is the float sum's (``pool.mlas_pool_kernel``): ``generic`` taps
    row by row, ``vector`` each column's sum (``combine``d top to bottom) folded in left
    to right."""
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, cb, oh, ow, blk = y.shape
    h, w = x.shape[2], x.shape[3]
    (kh, kw), (sh, sw), (dh, dw) = a.kernel, a.strides, a.dilations
    col_runs = row_groups(ow, w, kw, sw, dw, a.pads[1])
    for r0, r1, taps_h in row_groups(oh, h, kh, sh, dh, a.pads[0]):
        nrows = r1 - r0
        with ctx.parallel_for(n_batch * cb * nrows, name="rows", grain=ow * blk) as idx:
            r = b.add(b.srem(idx, i64(nrows)), i64(r0), name="oh")
            rest = b.sdiv(idx, i64(nrows))
            c, n = b.srem(rest, i64(cb)), b.sdiv(rest, i64(cb))
            for q0, q1, taps_w in col_runs:
                with for_range(b, q0, q1, name="ow") as q:
                    ihs = [b.add(b.mul(r, i64(sh)), i64(i * dh - a.pads[0])) for i in taps_h]
                    iws = [b.add(b.mul(q, i64(sw)), i64(j * dw - a.pads[1])) for j in taps_w]
                    acc = init
                    if order == "vector":
                        for iw in iws:
                            col = _vload(b, x, [n, c, ihs[0], iw]) if ihs else None
                            for ih in ihs[1:]:
                                col = combine(b, _vload(b, x, [n, c, ih, iw]), col)
                            acc = combine(b, col, acc) if col is not None else acc
                    else:
                        for ih in ihs:
                            for iw in iws:
                                acc = combine(b, _vload(b, x, [n, c, ih, iw]), acc)
                    _vstore(b, y, [n, c, r, q], finish(acc, r, q) if finish else acc)


def _pool_blocked(ctx: KernelContext, is_max: bool) -> None:
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    (x,), y = ctx.ins, ctx.out
    blk, oh, ow = y.shape[4], y.shape[2], y.shape[3]
    if is_max:
        _pool_windows(ctx, vconst(LOWEST_F32, blk), float_max)
        return
    h, w = x.shape[2], x.shape[3]
    order = mlas_pool_kernel(a, h, w, ctx.op.out.shape[1], ctx.target)
    if order == "global":
        _global_mean_blocked(ctx)
        return
    rows, cols = avgpool_divisors(a, oh, ow, h, w)
    rt = ir.Constant(ir.ArrayType(F32, oh), [f32(v) for v in rows])
    ct = ir.Constant(ir.ArrayType(F32, ow), [f32(v) for v in cols])
    gr = ir.GlobalVariable(ctx.module, rt.type, ctx.module.get_unique_name("prow"))
    gc = ir.GlobalVariable(ctx.module, ct.type, ctx.module.get_unique_name("pcol"))
    for g, init in ((gr, rt), (gc, ct)):
        g.global_constant, g.linkage, g.initializer = True, "internal", init

    def divide(acc: ir.Value, r: ir.Value, q: ir.Value) -> ir.Value:
        b = ctx.b
        rc = b.load(b.gep(gr, [i64(0), r], source_etype=rt.type), typ=F32)
        cc = b.load(b.gep(gc, [i64(0), q], source_etype=ct.type), typ=F32)
        return b.fdiv(acc, splat(b, b.fmul(rc, cc), blk))

    _pool_windows(ctx, vconst(0.0, blk), lambda b, v, acc: b.fadd(acc, v), divide, order)


@emits(OpKind.REDUCE, "float", layout="blocked")
def emit_reduce_blocked(ctx: KernelContext) -> None:
    """Global average/max pooling over H, W on whole channel blocks."""
    a = ctx.op.attrs
    assert isinstance(a, ReduceAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    blk = y.shape[4]
    vt = vtype(blk)
    h, w = x.shape[2], x.shape[3]
    is_max = a.mode == "max"
    nchwc = a.nchwc_source and nchwc_pooled(ctx.target, ctx.op.out.shape[1])
    if a.mlas_global and not is_max and not nchwc:
        _global_mean_blocked(ctx)
        return
    lo, hi, cb = _blocks_and_rows(ctx, y)
    acc = entry_alloca(b, vt, "acc")
    zero = i64(0)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        b.store(vconst((LOWEST_F32 if a.lowest_finite else float("-inf")) if is_max else 0.0,
                       blk), acc)
        with for_range(b, 0, h, name="h") as r, for_range(b, 0, w, name="w") as q:
            v = _vload(b, x, [n, c, r, q])
            cur = b.load(acc, typ=vt)
            b.store(b.select(b.fcmp_unordered(">", v, cur), v, cur) if is_max
                    else b.fadd(cur, v), acc)
        res = b.load(acc, typ=vt)
        if not is_max:
            res = b.fdiv(res, vconst(float(h * w), blk))
        _vstore(b, y, [n, c, zero, zero], res)


def _global_mean_blocked(ctx: KernelContext) -> None:
    """Mean over each whole H x W plane of channel blocks, in MLAS's global-kernel order
    (GlobalAveragePool, or an AveragePool whose window is the input)."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    blk = y.shape[4]
    h, w = x.shape[2], x.shape[3]
    lo, hi, cb = _blocks_and_rows(ctx, y)
    zero = i64(0)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        total = mlas_global_sum(
            b, lambda p: _vload(b, x, [n, c, b.udiv(p, i64(w)), b.urem(p, i64(w))]), h * w,
            vconst(0.0, blk))
        _vstore(b, y, [n, c, zero, zero], b.fdiv(total, vconst(float(h * w), blk)))


def _flat(ctx: KernelContext, fn) -> None:  # type: ignore[no-untyped-def]
    """Apply ``fn(vectors) -> vector`` over every block of same-shape blocked tensors."""
    b, y = ctx.b, ctx.out
    _, cb, h, w, _ = y.shape
    lo, hi, _ = _blocks_and_rows(ctx, y)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        with loop_nest(b, (h, w), name="p") as (r, q):
            vals = [_vload(b, t, [n, c, r, q]) for t in ctx.ins]
            _vstore(b, y, [n, c, r, q], fn(vals))


def _unary_blocked(ctx: KernelContext) -> None:
    act = activation_of(ctx.op.kind, ctx.op.attrs)
    lanes = ctx.out.shape[4]
    _flat(ctx, lambda v: vector_activation(ctx.b, v[0], act, lanes))


def _binary_blocked(ctx: KernelContext) -> None:
    _flat(ctx, lambda v: _binary_value(ctx.b, ctx.op.kind, v[0], v[1], True, False))


for _k in UNARY_ACTIVATIONS:
    emits(_k, "float", layout="blocked")(_unary_blocked)
for _k in BINARY:
    emits(_k, "float", layout="blocked")(_binary_blocked)


@emits(OpKind.CONCAT, "any", layout="blocked")
def emit_concat_blocked(ctx: KernelContext) -> None:
    """Copy the operands not placed by concat elimination (whole channel blocks)."""
    b, y = ctx.b, ctx.out
    start = 0
    for pos, x in enumerate(ctx.ins):
        nblocks = x.shape[1]
        if pos not in ctx.aliased_inputs:
            n_batch, _, h, w, _ = x.shape
            with loop_nest(b, (n_batch, nblocks, h, w), name="cp") as (n, c, r, q):
                v = _vload(b, x, [n, c, r, q])
                _vstore(b, y, [n, b.add(c, i64(start)), r, q], v)
        start += nblocks


def _reorder_rows(ctx: KernelContext, n_batch: int, channels: int, blk: int, h: int, w: int,
                  body: Callable[[ir.Value, ir.Value, ir.Value, int], None]) -> None:
    """Rows (n, channel block, h) shared among the workers; ``body(n, cb, r, lanes)``
    handles one row of one block, ``lanes`` real channels in it (a compile-time count:
    full blocks and the last, partial one get separate code)."""
    b = ctx.b
    full, cb_len = channels // blk, -(-channels // blk)
    for start, stop, lanes in ((0, full, blk), (full, cb_len, channels - full * blk)):
        if stop <= start or lanes <= 0:
            continue
        count = stop - start
        with ctx.parallel_for(n_batch * count * h, name=f"rows{lanes}", grain=w * blk) as idx:
            r = b.srem(idx, i64(h))
            rest = b.sdiv(idx, i64(h))
            cb = b.add(b.srem(rest, i64(count)), i64(start))
            body(b.sdiv(rest, i64(count)), cb, r, lanes)


@emits(OpKind.REORDER, "any", layout="plain")
def emit_reorder_to_plain(ctx: KernelContext) -> None:
    """NCHW[b]c -> NCHW (drops the padded channels); (sample, channel) planes are shared
    among the workers, each written contiguously."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, c, h, w = y.shape
    blk = x.shape[4]
    with ctx.parallel_for(n_batch * c, name="plane", grain=h * w) as nc:
        n, ch = b.sdiv(nc, i64(c)), b.srem(nc, i64(c))
        cb, lane = b.sdiv(ch, i64(blk)), b.srem(ch, i64(blk))
        base = b.add(b.add(b.mul(n, i64(x.strides[0])), b.mul(cb, i64(x.strides[1]))), lane)
        with for_range(b, 0, h, name="r") as r, for_range(b, 0, w, name="q") as q:
            src = b.add(base, b.add(b.mul(r, i64(x.strides[2])), b.mul(q, i64(x.strides[3]))))
            v = b.load(b.gep(x.ptr, [src], inbounds=True, source_etype=x.ty), typ=x.ty)
            y.store(b, [n, ch, r, q], v)


@emits(OpKind.REORDER, "any", layout="blocked")
def emit_reorder_to_blocked(ctx: KernelContext) -> None:
    """NCHW -> NCHW[b]c; padded channels are written as zeros (one vector store per
    pixel, built from the real channels' loads)."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, cb_len, h, w, blk = y.shape
    vt = ir.VectorType(y.ty, blk)
    zero = ir.Constant(y.ty, 0) if isinstance(y.ty, ir.IntType) else ir.Constant(y.ty, 0.0)

    def row(n: ir.Value, cb: ir.Value, r: ir.Value, lanes: int) -> None:
        with for_range(b, 0, w, name="q") as q:
            v = ir.Constant(vt, [zero] * blk)
            for lane in range(lanes):
                ch = b.add(b.mul(cb, i64(blk)), i64(lane))
                v = b.insert_element(v, x.load(b, [n, ch, r, q]),
                                     ir.Constant(ir.IntType(32), lane))
            _vstore(b, y, [n, cb, r, q], v)

    _reorder_rows(ctx, n_batch, x.shape[1], blk, h, w, row)


def _int_maxpool_blocked(ctx: KernelContext) -> None:
    """Max pooling on blocked 8-bit tensors, b channels per vector compare."""
    blk, signed = ctx.out.shape[4], ctx.ins[0].dtype == "int8"
    init = ir.Constant(ir.VectorType(ir.IntType(8), blk),
                       [ir.Constant(ir.IntType(8), -128 if signed else 0)] * blk)
    _pool_windows(ctx, init, int_max(signed))


for _dt in ("uint8", "int8"):
    emits(OpKind.MAXPOOL, _dt, layout="blocked")(_int_maxpool_blocked)
