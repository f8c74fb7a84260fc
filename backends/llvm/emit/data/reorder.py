"""Layout conversion at the edges of a channel-blocked region: NCHW -> NCHW[b]c (padded
channels written as zeros) and NCHW[b]c -> NCHW (padded channels dropped), for any dtype.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import for_range, i64
from sqzc.backends.llvm.emit.common.blocked_io import vstore
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind


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
            vstore(b, y, [n, cb, r, q], v)

    _reorder_rows(ctx, n_batch, x.shape[1], blk, h, w, row)
