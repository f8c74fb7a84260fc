"""QLinearConv on plain NCHW 8-bit tensors, and the integer row accumulation it shares
with ConvInteger (``conv/integer.py``).

The convolution accumulates one output row of int32 partial sums on the stack, with taps
unrolled and their valid column ranges known at compile time, so LLVM vectorizes the
innermost loop; the epilogue requantizes exactly like onnxruntime (``common/qmath.py``).
The channel-blocked VNNI / pair-dot kernel is ``conv/qconv_blocked.py``.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, entry_alloca, for_range, i64
from sqzc.backends.llvm.emit.common.geometry import valid_range
from sqzc.backends.llvm.emit.common.qmath import (
    const_table,
    requantize_value,
    saturate_round,
    table_value,
    to_i32,
)
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import ConvAttrs, OpKind, QConvAttrs


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
