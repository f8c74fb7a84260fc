"""Convolution kernel (float32, NCHW, any kernel/stride/pad/dilation/group).

Loop order: output channel, input channel, kernel row/col (unrolled at compile time, so
each tap's valid output range is a constant and padding costs no branches), output row,
output column. The innermost loop accumulates ``w * x`` into the output row and is
unit-stride for stride-1 convs, so LLVM vectorizes it. Bias initializes the accumulator
and the fused activation runs as a final pass over each output channel.
"""

from __future__ import annotations

from sqzc.backends.llvm.cg import f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.common.geometry import valid_range
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import ConvAttrs, OpKind


@emits(OpKind.CONV, "float", variant="direct")
def emit_conv(ctx: KernelContext) -> None:
    """Direct convolution with a bias + activation epilogue."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs)
    b, y = ctx.b, ctx.out
    x, w = ctx.ins[0], ctx.ins[1]
    bias = ctx.ins[2] if len(ctx.ins) > 2 else None
    _, _, h, wd = x.shape
    n_batch, oc, oh, ow = y.shape
    icg = w.shape[1]
    ocg = oc // a.group
    kh, kw = a.kernel
    (sh, sw), (dh, dw) = a.strides, a.dilations
    zero = i64(0)
    with for_range(b, 0, n_batch, name="n") as n, for_range(b, 0, oc, name="oc") as o:
        init = bias.load(b, [o]) if bias is not None else f32(0.0)
        with loop_nest(b, (oh, ow), name="init") as (r, q):
            y.store(b, [n, o, r, q], init)
        g = b.sdiv(o, i64(ocg), name="g") if a.group > 1 else zero
        with for_range(b, 0, icg, name="ic") as ic:
            cin = b.add(b.mul(g, i64(icg)), ic, name="cin") if a.group > 1 else ic
            for i in range(kh):
                r_lo, r_hi = valid_range(oh, h, sh, i * dh - a.pads[0])
                for j in range(kw):
                    q_lo, q_hi = valid_range(ow, wd, sw, j * dw - a.pads[1])
                    if r_lo >= r_hi or q_lo >= q_hi:
                        continue
                    wv = w.load(b, [o, ic, i64(i), i64(j)])
                    with for_range(b, r_lo, r_hi, name=f"r{i}_{j}") as r:
                        ih = b.add(b.mul(r, i64(sh)), i64(i * dh - a.pads[0]), name="ih")
                        with for_range(b, q_lo, q_hi, name=f"q{i}_{j}") as q:
                            iw = b.add(b.mul(q, i64(sw)), i64(j * dw - a.pads[1]), name="iw")
                            xv = x.load(b, [n, cin, ih, iw])
                            acc = y.load(b, [n, o, r, q])
                            y.store(b, [n, o, r, q], b.fadd(acc, b.fmul(wv, xv)))
        if a.act:
            ops = vec_ops(ctx, 1)
            with loop_nest(b, (oh, ow), name="act") as (r, q):
                y.store(b, [n, o, r, q], apply_activation(ops, y.load(b, [n, o, r, q]), a.act))
