"""Reductions (mean, max) over any set of axes; global pooling is a reduce over H, W
(plain layout, and whole channel blocks of NCHW[b]c).
"""

from __future__ import annotations

from sqzc.backends.llvm.cg import LOWEST_F32, F32, entry_alloca, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import blocks_and_rows, vload, vstore
from sqzc.backends.llvm.emit.common.vec import vconst, vtype
from sqzc.backends.llvm.emit.pool.mlas import (
    global_mean_blocked,
    global_mean_plain,
)
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, ReduceAttrs
from sqzc.ort.orders import runs_mlas_global_pool


@emits(OpKind.REDUCE, "float")
def emit_reduce(ctx: KernelContext) -> None:
    """Loop over kept axes outside, reduced axes inside, accumulating in a register."""
    a = ctx.op.attrs
    assert isinstance(a, ReduceAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    kept = [d for i, d in enumerate(x.shape) if i not in a.axes]
    red = [x.shape[i] for i in a.axes]
    count = 1
    for d in red:
        count *= d
    is_max = a.mode == "max"
    if not is_max and runs_mlas_global_pool(a, ctx.target.ort_nchwc_block, x.shape[1]):
        global_mean_plain(ctx, kept, red)
        return
    with loop_nest(b, kept, name="k") as kidx:
        acc_ptr = entry_alloca(b, F32, "acc")
        lowest = LOWEST_F32 if a.lowest_finite else float("-inf")
        b.store(f32(lowest) if is_max else f32(0.0), acc_ptr)
        with loop_nest(b, red, name="r") as ridx:
            full, ki, ri = [], iter(kidx), iter(ridx)
            for i in range(len(x.shape)):
                full.append(next(ri) if i in a.axes else next(ki))
            v = x.load(b, full)
            acc = b.load(acc_ptr, typ=F32)
            new = b.select(b.fcmp_unordered(">", v, acc), v, acc) if is_max else b.fadd(acc, v)
            b.store(new, acc_ptr)
        result = b.load(acc_ptr, typ=F32)
        if not is_max:
            result = b.fdiv(result, f32(float(count)))
        if a.keepdims:
            oidx, ki = [], iter(kidx)
            for i in range(len(x.shape)):
                oidx.append(i64(0) if i in a.axes else next(ki))
        else:
            oidx = list(kidx)
        y.store(b, oidx, result)


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
    if not is_max and runs_mlas_global_pool(a, ctx.target.ort_nchwc_block, ctx.op.out.shape[1]):
        global_mean_blocked(ctx)
        return
    lo, hi, cb = blocks_and_rows(ctx, y)
    acc = entry_alloca(b, vt, "acc")
    zero = i64(0)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        b.store(vconst((LOWEST_F32 if a.lowest_finite else float("-inf")) if is_max else 0.0,
                       blk), acc)
        with for_range(b, 0, h, name="h") as r, for_range(b, 0, w, name="w") as q:
            v = vload(b, x, [n, c, r, q])
            cur = b.load(acc, typ=vt)
            b.store(b.select(b.fcmp_unordered(">", v, cur), v, cur) if is_max
                    else b.fadd(cur, v), acc)
        res = b.load(acc, typ=vt)
        if not is_max:
            res = b.fdiv(res, vconst(float(h * w), blk))
        vstore(b, y, [n, c, zero, zero], res)
