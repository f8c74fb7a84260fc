"""Concat: copy each input that was not placed straight into its slice.

After concat elimination most (ideally all) inputs already live in their slice of the
concat's buffer and this kernel emits nothing for them; the rest are copied.
On channel-blocked NCHW[b]c outputs whole channel blocks are copied.
"""

from __future__ import annotations

from dataclasses import replace

from sqzc.backends.llvm.cg import i64, loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import vload, vstore
from sqzc.backends.llvm.emit.data.copy import copy_view
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import AxisAttrs, OpKind


@emits(OpKind.CONCAT, "any")
def emit_concat(ctx: KernelContext) -> None:
    """Copy the non-aliased inputs into their slices of the output."""
    a = ctx.op.attrs
    assert isinstance(a, AxisAttrs)
    b, y = ctx.b, ctx.out
    start = 0
    for pos, x in enumerate(ctx.ins):
        extent = x.shape[a.axis]
        if pos not in ctx.aliased_inputs:
            off = start * y.strides[a.axis]
            ptr = b.gep(y.ptr, [i64(off)], inbounds=True, source_etype=y.ty) if off else y.ptr
            dst = Operand(ptr, replace(y.view, shape=x.shape, offset=y.view.offset + off), y.dtype)
            copy_view(b, x, dst)
        start += extent


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
                v = vload(b, x, [n, c, r, q])
                vstore(b, y, [n, b.add(c, i64(start)), r, q], v)
        start += nblocks
