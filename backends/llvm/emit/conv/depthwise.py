"""Depthwise convolution on channel-blocked NCHW[b]c tensors (MobileNet, EfficientNet,
MNASNet, ShuffleNet: ``group == in_channels == out_channels``).

Each output channel reads only its own input channel, so in the blocked layout a block of
b output channels is a block of b input channels: one vector load of the input feeds b
channels' multiply-adds, with the packed weights [C/b, 1, KH, KW, b] as the other vector
operand. The kernel keeps R output pixels of one row (``Target.depthwise_pixels``) in
vector registers; bias initializes them and the activation runs in registers before the
stores, as in the direct kernel (``conv/blocked.py``). Padding costs no branches: rows and
column tiles are grouped at compile time by which taps are in bounds
(``row_groups``/``col_tiles``) and each group is emitted with exactly its valid taps.
Each channel's sum runs over the taps in row-major order, so results do not depend on the
tile shape or the thread count.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, entry_alloca, for_range, i64
from sqzc.backends.llvm.emit.common.geometry import col_tiles, row_groups
from sqzc.backends.llvm.emit.common.vec import mul_add, vtype
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.conv.tiling import drive_conv_rows
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import ConvAttrs, OpKind

#: Kernels with more rows of taps than this loop over kernel rows instead of unrolling
#: them (a 7x7 depthwise body would be 49 taps x R multiply-adds).
MAX_UNROLLED_ROWS = 5


@emits(OpKind.CONV, "float", layout="blocked", variant="depthwise")
def emit_conv_depthwise(ctx: KernelContext) -> None:
    """Depthwise conv NCHW[b]c -> NCHW[b]c (see module docstring)."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs) and a.packed
    b, x, wp, bias, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.ins[2], ctx.out
    blk = a.packed
    vt = vtype(blk)
    fma = mul_add(ctx.module, ctx.target, blk)
    n_batch, cb_total, oh_len, ow_len, _ = y.shape
    kh_len, kw_len = wp.shape[2], wp.shape[3]
    h_len, w_len = x.shape[2], x.shape[3]
    (sh, sw), (dh, dw) = a.strides, a.dilations
    pixels = ctx.target.depthwise_pixels(blk)
    rows = row_groups(oh_len, h_len, kh_len, sh, dh, a.pads[0])
    cols = col_tiles(ow_len, w_len, kw_len, sw, dw, a.pads[1], pixels)
    accs = [entry_alloca(b, vt, f"acc{r}") for r in range(pixels)]
    w_cb_stride = kh_len * kw_len * blk  # floats between channel blocks of the weights

    def microkernel(n: ir.Value, cb: ir.Value, oh: ir.Value, ow0: ir.Value, jn: int,
                    width: int, taps_h: tuple[int, ...],
                    valid: Callable[[int, int], bool]) -> None:
        assert jn == 1
        bvec = b.load(b.gep(bias.ptr, [b.mul(cb, i64(blk))], inbounds=True, source_etype=F32),
                      typ=vt, align=4)
        for r in range(width):
            b.store(bvec, accs[r])
        xbase = b.gep(x.ptr, [b.add(b.mul(n, i64(x.strides[0])), b.mul(cb, i64(x.strides[1])))],
                      inbounds=True, source_etype=F32)
        wbase = b.gep(wp.ptr, [b.mul(cb, i64(w_cb_stride))], inbounds=True, source_etype=F32)

        def taps_of_row(i: ir.Value | int) -> None:
            """Multiply-adds of kernel row ``i`` (a constant, or a loop index)."""
            vals = [b.load(accs[r], typ=vt) for r in range(width)]
            row = i64(i) if isinstance(i, int) else i
            ih = b.add(b.mul(oh, i64(sh)), b.sub(b.mul(row, i64(dh)), i64(a.pads[0])))
            xrow = b.gep(xbase, [b.mul(ih, i64(x.strides[2]))], inbounds=True,
                         source_etype=F32)
            for t in range(kw_len):
                tap = b.add(b.mul(row, i64(kw_len)), i64(t))
                wv = b.load(b.gep(wbase, [b.mul(tap, i64(blk))], inbounds=True,
                                  source_etype=F32), typ=vt, align=4)
                for r in range(width):
                    if not valid(r, t):
                        continue
                    iw = b.add(b.mul(b.add(ow0, i64(r)), i64(sw)), i64(t * dw - a.pads[1]))
                    xv = b.load(b.gep(xrow, [b.mul(iw, i64(x.strides[3]))], inbounds=True,
                                      source_etype=F32), typ=vt, align=4)
                    vals[r] = fma(b, xv, wv, vals[r])
            for r in range(width):
                b.store(vals[r], accs[r])

        if kh_len <= MAX_UNROLLED_ROWS:
            for i in taps_h:
                taps_of_row(i)
        else:
            with for_range(b, taps_h[0], taps_h[-1] + 1, name="kh") as i:
                taps_of_row(i)
        ops = vec_ops(ctx, blk)
        for r in range(width):
            v = apply_activation(ops, b.load(accs[r], typ=vt), a.act)
            off = b.add(b.add(b.mul(n, i64(y.strides[0])), b.mul(cb, i64(y.strides[1]))),
                        b.add(b.mul(oh, i64(y.strides[2])),
                              b.mul(b.add(ow0, i64(r)), i64(y.strides[3]))))
            b.store(v, b.gep(y.ptr, [off], inbounds=True, source_etype=F32), align=4)

    # a row of one channel block is little work (a 56-pixel 3x3 row: ~8K multiply-adds):
    # claims of one row each kept two workers contending for the counter, slower than one
    drive_conv_rows(ctx, n_batch, cb_total, 1, rows, cols, microkernel,
                    grain=ow_len * blk * kh_len)
