"""Max and average pooling on channel-blocked NCHW[b]c tensors (float32, and max pooling
on 8-bit tensors): whole ``<b x T>`` vectors, b channels per instruction, taps unrolled
with no bounds checks; average pools sum in onnxruntime's order (``pool/mlas.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import LOWEST_F32, F32, f32, for_range, i64
from sqzc.backends.llvm.emit.common.blocked_io import vload, vstore
from sqzc.backends.llvm.emit.common.geometry import row_groups
from sqzc.backends.llvm.emit.common.vec import splat, vconst
from sqzc.backends.llvm.emit.pool.mlas import (
    avgpool_divisors,
    global_mean_blocked,
    mlas_column_max,
    mlas_vector_max,
)
from sqzc.backends.llvm.emit.pool.plain import Combine, float_max, int_max
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, PoolAttrs
from sqzc.ort.orders import PoolSumOrder, mlas_max_pool_kernel, mlas_pool_kernel

#: Folds one row's value ``v`` into a window column's running value: ``(b, iw, v, col)``.
ColumnCombine = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value], ir.Value]


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
                  order: PoolSumOrder = "generic", column: ColumnCombine | None = None,
                  edge: ir.Value | None = None) -> None:
    """The blocked pooling loop nest, for any element type: per output pixel, ``init``
    folded with every in-bounds tap as ``acc = combine(b, x_tap, acc)`` in registers, then
    ``finish(acc, row, col)`` (if given) and one vector store. Output rows and columns are
    grouped at compile time by which taps are in bounds (as in the convolutions), so no
    tap is tested at run time; (sample, channel block, row) triples are shared among the
    workers. ``order`` is the float sum's (``sqzc.ort.orders.mlas_pool_kernel``): ``generic`` taps
    row by row, ``vector`` each column's sum (``combine``d top to bottom, or with
    ``column(b, iw, v, col)`` when given) folded in left to right, with ``edge`` (if given)
    folded in before the columns of a window that reaches past the left edge and after
    those of one that reaches past the right edge (MLAS's pad slots)."""
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
                        if edge is not None and taps_w and taps_w[0] > 0:
                            acc = combine(b, edge, acc)
                        for iw in iws:
                            col = vload(b, x, [n, c, ihs[0], iw]) if ihs else None
                            for ih in ihs[1:]:
                                v = vload(b, x, [n, c, ih, iw])
                                col = column(b, iw, v, col) if column else combine(b, v, col)
                            acc = combine(b, col, acc) if col is not None else acc
                        if edge is not None and taps_w and taps_w[-1] < kw - 1:
                            acc = combine(b, edge, acc)
                    else:
                        for ih in ihs:
                            for iw in iws:
                                acc = combine(b, vload(b, x, [n, c, ih, iw]), acc)
                    vstore(b, y, [n, c, r, q], finish(acc, r, q) if finish else acc)


def _pool_blocked(ctx: KernelContext, is_max: bool) -> None:
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    (x,), y = ctx.ins, ctx.out
    blk, oh, ow = y.shape[4], y.shape[2], y.shape[3]
    h, w = x.shape[2], x.shape[3]
    if is_max:
        if mlas_max_pool_kernel(a, h, w, ctx.op.out.shape[1], ctx.target.ort_nchwc_block) == "vector":
            # pool.mlas.maxpool_columns_first's order and pad slots, b channels at a time
            _pool_windows(ctx, vconst(-math.inf, blk), mlas_vector_max, order="vector",
                          column=lambda b, iw, v, col: mlas_column_max(b, iw, w, v, col),
                          edge=vconst(LOWEST_F32, blk))
        else:  # onnxruntime's other max kernels start every window at -FLT_MAX
            _pool_windows(ctx, vconst(LOWEST_F32, blk), float_max)
        return
    order = mlas_pool_kernel(a, h, w, ctx.op.out.shape[1], ctx.target.ort_nchwc_block)
    if order == "global":
        global_mean_blocked(ctx)
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


def _int_maxpool_blocked(ctx: KernelContext) -> None:
    """Max pooling on blocked 8-bit tensors, b channels per vector compare."""
    blk, signed = ctx.out.shape[4], ctx.ins[0].dtype == "int8"
    init = ir.Constant(ir.VectorType(ir.IntType(8), blk),
                       [ir.Constant(ir.IntType(8), -128 if signed else 0)] * blk)
    _pool_windows(ctx, init, int_max(signed))


for _dt in ("uint8", "int8"):
    emits(OpKind.MAXPOOL, _dt, layout="blocked")(_int_maxpool_blocked)
