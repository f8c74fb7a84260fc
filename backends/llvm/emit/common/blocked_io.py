"""Loads and stores of whole channel blocks of NCHW[b]c tensors, shared by the blocked
kernels of every family (pools, activations, binary ops, concat, reorder).

A blocked operand's physical shape is [N, C/b, H, W, b]: one ``<b x T>`` vector holds the
b channels of a block at one pixel, so these helpers address (n, channel block, h, w) and
move whole vectors. Padded channels hold zeros and stay zero through every op. Kept out of
the families so that none of them imports another for plumbing.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import for_range, i64, loop_nest
from sqzc.backends.llvm.kernel import KernelContext, Operand


def vaddr(b: ir.IRBuilder, t: Operand, idx: list[ir.Value]) -> ir.Value:
    """The address of the channel block at [n, cb, h, w]."""
    off = None
    for v, s in zip(idx, t.strides[:4]):
        term = b.mul(v, i64(s))
        off = term if off is None else b.add(off, term)
    return b.gep(t.ptr, [off], inbounds=True, source_etype=t.ty)


def vload(b: ir.IRBuilder, t: Operand, idx: list[ir.Value]) -> ir.Value:
    """One channel block (b lanes of the operand's element type) at [n, cb, h, w]."""
    return b.load(vaddr(b, t, idx), typ=ir.VectorType(t.ty, t.shape[4]),
                  align=t.ty.width // 8 if isinstance(t.ty, ir.IntType) else 4)


def vstore(b: ir.IRBuilder, t: Operand, idx: list[ir.Value], v: ir.Value) -> None:
    """Store one channel block ``v`` at [n, cb, h, w]."""
    b.store(v, vaddr(b, t, idx), align=t.ty.width // 8 if isinstance(t.ty, ir.IntType) else 4)


def blocks_and_rows(ctx: KernelContext, y: Operand) -> tuple[ir.Value, ir.Value, int]:
    """This worker's share [lo, hi) of the (sample, channel block) pairs of ``y``, and the
    number of channel blocks per sample."""
    n_batch, cb = y.shape[0], y.shape[1]
    lo, hi = ctx.split_range(0, n_batch * cb)
    return lo, hi, cb


def map_blocks(ctx: KernelContext, fn: Callable[[list[ir.Value]], ir.Value]) -> None:
    """Apply ``fn(vectors) -> vector`` over every block of same-shape blocked tensors."""
    b, y = ctx.b, ctx.out
    _, cb, h, w, _ = y.shape
    lo, hi, _ = blocks_and_rows(ctx, y)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        with loop_nest(b, (h, w), name="p") as (r, q):
            vals = [vload(b, t, [n, c, r, q]) for t in ctx.ins]
            vstore(b, y, [n, c, r, q], fn(vals))
