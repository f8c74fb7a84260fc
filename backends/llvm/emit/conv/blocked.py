"""Register-tiled direct convolution into channel-blocked NCHW[b]c outputs.

The microkernel keeps a tile of ``J`` output-channel blocks x ``R`` output pixels of one
row in vector registers (J*R accumulators of ``<b x float>``; 3 x 7 on AVX-512). For
each input channel and kernel tap it loads J weight vectors (pre-packed
[OC/b, IC, KH, KW, b], so one load covers b output channels), broadcasts R input values
and issues J*R FMAs; bias initializes the accumulators and the activation runs in
registers before the stores. 1x1 convolutions are the same kernel with one tap (a GEMM
tile). Padding costs no branches: rows and column tiles are grouped at compile time by
which taps are in bounds, and each group is emitted with exactly its valid taps. The
input may be plain NCHW (the first layer) or blocked; only scalar broadcasts read it.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, entry_alloca, for_range, i64
from sqzc.backends.llvm.emit.common.geometry import col_tiles, row_groups
from sqzc.backends.llvm.emit.common.vec import mul_add, splat, vtype
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.conv.tiling import drive_conv_rows
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.memory import View
from sqzc.ops import ConvAttrs, OpKind, OpNode


#: Kernels with more taps than this loop over kernel rows instead of unrolling them all:
#: a 7x7 body of 49 taps x 28 FMAs would overflow the registers and the scheduler.
MAX_UNROLLED_TAPS = 9


def direct_sharing(op: OpNode, ins: Sequence[View], out: View, target: Target
                   ) -> tuple[Hashable, dict[str, int]]:
    """Layers that differ only in their input channel count and the samples' strides
    share one kernel: the input channels are a loop bound (never unrolled) and the
    strides a multiplier, so the shared code runs as fast as its own would. DenseNet's
    bottleneck 1x1 convs (the input growing by 32 channels per layer, 58 layers) become
    one kernel per dense block; the kernel's code takes ~1 s of LLVM time each."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    x, wp = ins[0], ins[1]
    structure = (a, len(x.shape), x.shape[2:4], x.strides[1:], wp.shape[0], wp.shape[2:],
                 out.shape, out.strides[1:])
    return structure, {"ic": wp.shape[1], "xs0": x.strides[0], "ys0": out.strides[0]}


@emits(OpKind.CONV, "float", layout="blocked", variant="direct", shared=direct_sharing)
def emit_conv_blocked(ctx: KernelContext) -> None:
    """Tiled direct convolution writing NCHW[b]c (see module docstring); the input
    channel count and the sample strides are ``direct_sharing``'s extents."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs) and a.packed
    b, x, wp, bias, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.ins[2], ctx.out
    blk = a.packed
    vt = vtype(blk)
    fma = mul_add(ctx.module, ctx.target, blk)
    n_batch, ocb_total, oh_len, ow_len, _ = y.shape
    ic_total = ctx.extent("ic", wp.shape[1])
    kh_len, kw_len = wp.shape[2], wp.shape[3]
    x_sample = ctx.extent("xs0", x.strides[0])
    y_sample = ctx.extent("ys0", y.strides[0])
    h_len, w_len = x.shape[2], x.shape[3]
    (sh, sw), (dh, dw) = a.strides, a.dilations
    blocked_in = len(x.shape) == 5
    tile = ctx.target.conv_tile(blk)
    # Grouped convs (assign-layout packs them when a group is whole output-channel
    # blocks): a tile stays inside one group, whose input channels start at group x IC/g.
    blocks_per_group = a.out_channels // a.group // blk if a.group > 1 else ocb_total
    tile_blocks = max(j for j in range(1, tile.blocks + 1) if blocks_per_group % j == 0) \
        if a.group > 1 else tile.blocks
    rows = row_groups(oh_len, h_len, kh_len, sh, dh, a.pads[0])
    cols = col_tiles(ow_len, w_len, kw_len, sw, dw, a.pads[1], tile.pixels)
    accs = [entry_alloca(b, vt, f"acc{j}_{r}") for j in range(tile_blocks)
            for r in range(tile.pixels)]
    w_oc_stride = b.mul(ic_total, i64(kh_len * kw_len * blk))  # between output-channel blocks

    def x_channel_offset(ic: ir.Value) -> ir.Value:
        if blocked_in:
            icb = b.lshr(ic, i64(blk.bit_length() - 1))
            lane = b.and_(ic, i64(blk - 1))
            return b.add(b.mul(icb, i64(x.strides[1])), lane)
        return b.mul(ic, i64(x.strides[1]))

    def x_load(base: ir.Value, ih: ir.Value, iw: ir.Value) -> ir.Value:
        off = b.add(b.mul(ih, i64(x.strides[2])), b.mul(iw, i64(x.strides[3])))
        ptr = b.gep(base, [off], inbounds=True, source_etype=F32)
        return splat(b, b.load(ptr, typ=F32), blk)

    def microkernel(n: ir.Value, ocb: ir.Value, oh: ir.Value, ow0: ir.Value, jn: int,
                    width: int, taps_h: tuple[int, ...],
                    valid: Callable[[int, int], bool]) -> None:
        for j in range(jn):
            bvec = b.load(b.gep(bias.ptr, [b.mul(b.add(ocb, i64(j)), i64(blk))],
                                inbounds=True, source_etype=F32), typ=vt, align=4)
            for r in range(width):
                b.store(bvec, accs[j * tile.pixels + r])
        group_base = i64(0) if a.group == 1 else \
            b.mul(b.sdiv(ocb, i64(blocks_per_group)), ic_total)
        with for_range(b, 0, ic_total, name="ic") as ic:
            xbase = b.gep(x.ptr, [b.add(b.mul(n, x_sample),
                                        x_channel_offset(b.add(group_base, ic)))],
                          inbounds=True, source_etype=F32)
            wbase = b.gep(wp.ptr, [b.add(b.mul(ocb, w_oc_stride),
                                         b.mul(ic, i64(kh_len * kw_len * blk)))],
                          inbounds=True, source_etype=F32)
            live = [k for k in range(len(accs))
                    if k % tile.pixels < width and k // tile.pixels < jn]

            def taps_of_row(i: ir.Value | int) -> None:
                """FMAs of kernel row ``i`` (a constant, or a runtime index in a loop)."""
                vals = {k: b.load(accs[k], typ=vt) for k in live}
                row = i64(i) if isinstance(i, int) else i
                ih = b.add(b.mul(oh, i64(sh)), b.sub(b.mul(row, i64(dh)), i64(a.pads[0])))
                for t in range(kw_len):
                    tap = b.add(b.mul(row, i64(kw_len)), i64(t))
                    wv = [b.load(b.gep(wbase, [b.add(b.mul(i64(j), w_oc_stride),
                                                     b.mul(tap, i64(blk)))],
                                       inbounds=True, source_etype=F32), typ=vt, align=4)
                          for j in range(jn)]
                    for r in range(width):
                        if not valid(r, t):
                            continue
                        iw = b.add(b.mul(b.add(ow0, i64(r)), i64(sw)),
                                   i64(t * dw - a.pads[1]))
                        xv = x_load(xbase, ih, iw)
                        for j in range(jn):
                            k = j * tile.pixels + r
                            vals[k] = fma(b, xv, wv[j], vals[k])
                for k, v in vals.items():
                    b.store(v, accs[k])

            if kh_len * kw_len <= MAX_UNROLLED_TAPS:
                for i in taps_h:
                    taps_of_row(i)
            else:  # big kernels (7x7): kernel rows become a loop, keeping the body small
                with for_range(b, taps_h[0], taps_h[-1] + 1, name="kh") as i:
                    taps_of_row(i)
        for j in range(jn):
            for r in range(width):
                v = apply_activation(vec_ops(ctx, blk), b.load(accs[j * tile.pixels + r], typ=vt),
                                     a.act)
                off = b.add(b.add(b.mul(n, y_sample),
                                  b.mul(b.add(ocb, i64(j)), i64(y.strides[1]))),
                            b.add(b.mul(oh, i64(y.strides[2])),
                                  b.mul(b.add(ow0, i64(r)), i64(y.strides[3]))))
                b.store(v, b.gep(y.ptr, [off], inbounds=True, source_etype=F32), align=4)

    drive_conv_rows(ctx, n_batch, ocb_total, tile_blocks, rows, cols, microkernel)
