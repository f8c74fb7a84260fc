"""ConvInteger (int32 sums of zero-point-shifted 8-bit operands), plain NCHW: the row
accumulation of QLinearConv (``conv/qconv.py``) summed straight into the output.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import I32, for_range, i64
from sqzc.backends.llvm.emit.common.qmath import per_index
from sqzc.backends.llvm.emit.conv.qconv import accumulate_int_conv_row
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import IntConvAttrs, OpKind


def _emit_conv_integer(ctx: KernelContext) -> None:
    """One output row of int32 sums at a time, accumulated in the output."""
    a = ctx.op.attrs
    assert isinstance(a, IntConvAttrs)
    c = a.conv
    b, x, w, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.out
    n_batch, oc, oh, ow = y.shape
    ocg = oc // c.group
    wzp = per_index(ctx, a.w_zp, I32, "wzp")
    xzp = ir.Constant(I32, a.x_zp)
    lo, hi = ctx.split_range(0, n_batch * oc)
    with for_range(b, lo, hi, name="noc") as noc:
        n, o = b.sdiv(noc, i64(oc)), b.srem(noc, i64(oc))
        g = b.sdiv(o, i64(ocg)) if c.group > 1 else i64(0)
        wz = wzp(o)
        with for_range(b, 0, oh, name="oh") as r:
            with for_range(b, 0, ow, name="init") as q:
                y.store(b, [n, o, r, q], ir.Constant(I32, 0))
            accumulate_int_conv_row(
                b, c, x, w, ow, n, o, g, r, xzp, wz,
                lambda q, v: y.store(b, [n, o, r, q], b.add(y.load(b, [n, o, r, q]), v)))


for _dt in ("uint8", "int8"):
    emits(OpKind.CONV_INTEGER, _dt)(_emit_conv_integer)
