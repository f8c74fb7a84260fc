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


def channel_block_of(b: ir.IRBuilder, t: Operand, n: ir.Value, cb: ir.Value, lanes: int
                     ) -> ir.Value:
    """Channel block ``cb`` of a per-channel [N or 1, C, 1, 1] operand, blocked or plain: in
    both layouts the block's channels are ``lanes`` consecutive elements (a plain
    constant's padded lanes read the zero fill after it, see ``assign-layout``)."""
    sample = b.mul(n, i64(t.strides[0])) if t.shape[0] > 1 else i64(0)
    step = t.strides[1] if len(t.shape) == 5 else t.strides[1] * lanes
    ptr = b.gep(t.ptr, [b.add(sample, b.mul(cb, i64(step)))], inbounds=True,
                source_etype=t.ty)
    return b.load(ptr, typ=ir.VectorType(t.ty, lanes), align=4)


def map_blocks(ctx: KernelContext, fn: Callable[[list[ir.Value]], ir.Value]) -> None:
    """Apply ``fn(vectors) -> vector`` over every block of blocked tensors of the output's
    shape; per-channel [1, C, 1, 1] operands (binary ops) give one vector per block."""
    b, y = ctx.b, ctx.out
    _, cb, h, w, lanes = y.shape
    lo, hi, _ = blocks_and_rows(ctx, y)
    per_channel = [(t.shape[2], t.shape[3]) == (1, 1) and (h, w) != (1, 1) or len(t.shape) == 4
                   for t in ctx.ins]
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        fixed = {k: channel_block_of(b, t, n, c, lanes)
                 for k, (t, pc) in enumerate(zip(ctx.ins, per_channel)) if pc}
        with loop_nest(b, (h, w), name="p") as (r, q):
            vals = [fixed[k] if k in fixed else vload(b, t, [n, c, r, q])
                    for k, t in enumerate(ctx.ins)]
            vstore(b, y, [n, c, r, q], fn(vals))
