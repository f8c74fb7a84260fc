"""The size-optimized float convolution (``--optimize size``): one function for every layer.

The speed-optimized direct kernel (``conv/blocked.py``) is specialized per layer: its
kernel taps are unrolled and its rows and column tiles are grouped at compile time by
which taps are in bounds, so one 3x3 layer costs 15-28 KB of code. This variant keeps
the same register tile (J output-channel blocks x R pixels, ``Target.conv_tile``) and
the same weight layout, but every extent (channels, spatial sizes, kernel size, strides,
pads, dilations, operand strides) is a run-time argument (``compact_sharing``), so all
float convs with the same activation and input layout share one ``ks_`` function of a
few KB. Padding is still branch-free in the inner loops: per output row the valid kernel
rows, and per pixel outside the interior columns the valid kernel columns, are computed
as loop bounds at run time; interior columns run in full R-pixel tiles.

The summation order is the direct kernel's (bias, then input channels, kernel rows,
kernel columns, skipping out-of-bounds taps), so outputs are bit-identical to a
``--no-winograd`` build of the same model.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, entry_alloca, for_range, i64
from sqzc.backends.llvm.emit.common.vec import mul_add, splat, vtype
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.memory import View
from sqzc.ops import ConvAttrs, OpKind, OpNode

#: The run-time extents of a compact conv, in the order ``compact_sharing`` lists them.
EXTENTS = ("n", "ic", "ocb", "h", "w", "oh", "ow", "kh", "kw", "sh", "sw", "dh", "dw",
           "pt", "pl", "xs0", "xs1", "xs2", "xs3", "ys0", "ys1", "ys2", "ys3")


def compact_sharing(op: OpNode, ins: Sequence[View], out: View, target: Target
                    ) -> tuple[Hashable, dict[str, int]]:
    """Every compact conv with the same activation, channel block, input layout (plain
    NCHW for the first layer, blocked after), kind (unpadded 1x1 or not) and column
    stride shares one kernel: the code depends on nothing else, all other geometry is in
    the extents. The column stride and the pixel strides of input and output are
    structure so that the R pixels of a tile are constant offsets from one address
    (run-time offsets took 7 more registers in the inner loop)."""
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    x, wp = ins[0], ins[1]
    geometry = (out.shape[0], wp.shape[1], out.shape[1], x.shape[2], x.shape[3],
                out.shape[2], out.shape[3], a.kernel[0], a.kernel[1], *a.strides,
                *a.dilations, a.pads[0], a.pads[1], *x.strides[:4], *out.strides[:4])
    structure = (a.act, a.packed, len(x.shape) == 5, _pointwise(a), a.strides[1],
                 x.strides[3], out.strides[3])
    return structure, dict(zip(EXTENTS, geometry))


def _pointwise(a: ConvAttrs) -> bool:
    """An unpadded 1x1 conv: its kernel extents are structure (constants), so its taps
    are no loops and its rows no edges. SqueezeNet's 1x1 convs (squeeze, expand, the
    1000-class head) are half its MACs; with one-trip tap loops around every input
    channel they ran 1.6x slower than the direct kernel."""
    return a.kernel == (1, 1) and not any(a.pads)


def _ceil_div_pos(b: ir.IRBuilder, num: ir.Value, den: ir.Value) -> ir.Value:
    """ceil(max(num, 0) / den) for den > 0."""
    num = b.select(b.icmp_signed("<", num, i64(0)), i64(0), num)
    return b.sdiv(b.add(num, b.sub(den, i64(1))), den)


def _min(b: ir.IRBuilder, u: ir.Value, v: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed("<", u, v), u, v)


def _max(b: ir.IRBuilder, u: ir.Value, v: ir.Value) -> ir.Value:
    return b.select(b.icmp_signed(">", u, v), u, v)


@emits(OpKind.CONV, "float", layout="blocked", variant="compact", shared=compact_sharing)
def emit_conv_compact(ctx: KernelContext) -> None:
    """Direct convolution writing NCHW[b]c with run-time geometry (see module docstring)."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs) and a.packed
    b, x, wp, bias, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.ins[2], ctx.out
    blk = a.packed
    vt = vtype(blk)
    fma = mul_add(ctx.module, ctx.target, blk)
    blocked_in = len(x.shape) == 5
    tile = ctx.target.conv_tile(blk)
    geometry = compact_sharing(ctx.op, [x.view, wp.view], y.view, ctx.target)[1]
    e = {name: ctx.extent(name, value) for name, value in geometry.items()}
    constant = {"sw", "xs3", "ys3"} | ({"kh", "kw", "dh", "dw", "pt", "pl"}
                                       if _pointwise(a) else set())
    e.update({name: i64(geometry[name]) for name in constant})
    taps = b.mul(e["kh"], e["kw"], name="taps")
    w_tap_stride = b.mul(taps, i64(blk))  # floats between input channels
    w_oc_stride = b.mul(e["ic"], w_tap_stride, name="w_oc_stride")
    accs = [entry_alloca(b, vt, f"acc{k}") for k in range(tile.blocks * tile.pixels)]

    def x_channel_offset(ic: ir.Value) -> ir.Value:
        if blocked_in:
            icb = b.lshr(ic, i64(blk.bit_length() - 1))
            return b.add(b.mul(icb, e["xs1"]), b.and_(ic, i64(blk - 1)))
        return b.mul(ic, e["xs1"])

    def microkernel(jn: int, width: int, n: ir.Value, ocb: ir.Value, oh: ir.Value,
                    ow0: ir.Value, kh_lo: ir.Value, kh_hi: ir.Value, kw_lo: ir.Value,
                    kw_hi: ir.Value) -> None:
        """``jn`` channel blocks x ``width`` pixels of row ``oh`` from column ``ow0``,
        over the kernel rows [kh_lo, kh_hi) and columns [kw_lo, kw_hi)."""
        live = [j * tile.pixels + r for j in range(jn) for r in range(width)]
        for j in range(jn):
            bvec = b.load(b.gep(bias.ptr, [b.mul(b.add(ocb, i64(j)), i64(blk))],
                                inbounds=True, source_etype=F32), typ=vt, align=4)
            for r in range(width):
                b.store(bvec, accs[j * tile.pixels + r])
        ih0 = b.sub(b.mul(oh, e["sh"]), e["pt"])
        iw0 = b.sub(b.mul(ow0, e["sw"]), e["pl"])
        x_n = b.mul(n, e["xs0"])
        w_ocb = b.mul(ocb, w_oc_stride)
        with for_range(b, 0, e["ic"], name="ic") as ic:
            xbase = b.gep(x.ptr, [b.add(x_n, x_channel_offset(ic))], inbounds=True,
                          source_etype=F32)
            wbase = b.gep(wp.ptr, [b.add(w_ocb, b.mul(ic, w_tap_stride))], inbounds=True,
                          source_etype=F32)
            with for_range(b, kh_lo, kh_hi, name="kh") as kh:
                ih = b.add(ih0, b.mul(kh, e["dh"]))
                xrow = b.gep(xbase, [b.mul(ih, e["xs2"])], inbounds=True, source_etype=F32)
                wrow = b.mul(kh, e["kw"])
                with for_range(b, kw_lo, kw_hi, name="kw") as kw:
                    vals = {k: b.load(accs[k], typ=vt) for k in live}
                    w_off = b.mul(b.add(wrow, kw), i64(blk))
                    wv = [b.load(b.gep(wbase, [b.add(b.mul(i64(j), w_oc_stride), w_off)],
                                       inbounds=True, source_etype=F32), typ=vt, align=4)
                          for j in range(jn)]
                    iw = b.add(iw0, b.mul(kw, e["dw"]))
                    for r in range(width):
                        col = b.add(iw, b.mul(i64(r), e["sw"])) if r else iw
                        xv = splat(b, b.load(b.gep(xrow, [b.mul(col, e["xs3"])], inbounds=True,
                                                   source_etype=F32), typ=F32), blk)
                        for j in range(jn):
                            k = j * tile.pixels + r
                            vals[k] = fma(b, xv, wv[j], vals[k])
                    for k, v in vals.items():
                        b.store(v, accs[k])
        ops = vec_ops(ctx, blk)
        y_row = b.add(b.mul(n, e["ys0"]), b.mul(oh, e["ys2"]))
        for j in range(jn):
            y_ch = b.add(y_row, b.mul(b.add(ocb, i64(j)), e["ys1"]))
            for r in range(width):
                v = apply_activation(ops, b.load(accs[j * tile.pixels + r], typ=vt), a.act)
                off = b.add(y_ch, b.mul(b.add(ow0, i64(r)), e["ys3"]))
                b.store(v, b.gep(y.ptr, [off], inbounds=True, source_etype=F32), align=4)

    def kernel_range(start: ir.Value, stride_len: ir.Value, dil: ir.Value, k_len: ir.Value
                     ) -> tuple[ir.Value, ir.Value]:
        """The taps t in [lo, hi) with 0 <= start + t*dil < stride_len (contiguous)."""
        lo = _ceil_div_pos(b, b.sub(i64(0), start), dil)
        hi = _min(b, k_len, _ceil_div_pos(b, b.sub(stride_len, start), dil))
        return lo, hi

    def row(jn: int, n: ir.Value, ocb: ir.Value, oh: ir.Value) -> None:
        """Output row ``oh`` of ``jn`` channel blocks: the interior columns (every kernel
        column in bounds) in R-pixel tiles, the pixels left and right of them (and a
        whole interior narrower than a tile) one at a time."""
        kh_lo, kh_hi = kernel_range(b.sub(b.mul(oh, e["sh"]), e["pt"]), e["h"], e["dh"],
                                    e["kh"])
        ow_lo = _min(b, e["ow"], _ceil_div_pos(b, e["pl"], e["sw"]))
        last = b.add(b.sub(b.sub(e["w"], i64(1)), b.mul(b.sub(e["kw"], i64(1)), e["dw"])),
                     e["pl"])
        ow_hi = b.select(b.icmp_signed("<", last, i64(0)), i64(0),
                         _min(b, e["ow"], b.add(b.sdiv(last, e["sw"]), i64(1))))
        interior = _max(b, b.sub(ow_hi, ow_lo), i64(0))
        full = b.sdiv(interior, i64(tile.pixels))
        # A ragged interior gets one more tile, ending at ow_hi: it recomputes a few
        # pixels of the previous tile, the same way, rather than running them one by one
        # (each alone reloads every weight vector).
        ragged = b.and_(b.icmp_signed(">", full, i64(0)),
                        b.icmp_signed("!=", b.srem(interior, i64(tile.pixels)), i64(0)))
        tiles = b.add(full, b.zext(ragged, full.type))
        last_start = b.sub(ow_hi, i64(tile.pixels))
        tiles_end = b.select(b.icmp_signed(">", full, i64(0)), _max(b, ow_hi, ow_lo), ow_lo)
        with for_range(b, 0, tiles, name="tile") as q:
            ow0 = _min(b, b.add(ow_lo, b.mul(q, i64(tile.pixels))), last_start)
            microkernel(jn, tile.pixels, n, ocb, oh, ow0, kh_lo, kh_hi, i64(0), e["kw"])
        with for_range(b, 0, 2, name="edge") as side:  # [0, ow_lo) and [tiles_end, ow)
            left = b.icmp_signed("==", side, i64(0))
            start = b.select(left, i64(0), tiles_end)
            stop = b.select(left, ow_lo, e["ow"])
            with for_range(b, start, stop, name="px") as ow:
                kw_lo, kw_hi = kernel_range(b.sub(b.mul(ow, e["sw"]), e["pl"]), e["w"],
                                            e["dw"], e["kw"])
                microkernel(jn, 1, n, ocb, oh, ow, kh_lo, kh_hi, kw_lo, kw_hi)

    # Work items: (sample, group of J channel blocks, row), rows fastest; the last group
    # may hold fewer than J blocks and runs them one at a time.
    groups = b.sdiv(b.add(e["ocb"], i64(tile.blocks - 1)), i64(tile.blocks), name="groups")
    count = b.mul(b.mul(e["n"], groups), e["oh"])
    with ctx.parallel_for(count, name="rows") as idx:
        oh = b.srem(idx, e["oh"], name="oh")
        rest = b.sdiv(idx, e["oh"])
        ocb = b.mul(b.srem(rest, groups), i64(tile.blocks), name="ocb")
        n = b.sdiv(rest, groups, name="n")
        full = b.icmp_signed("<=", b.add(ocb, i64(tile.blocks)), e["ocb"])
        with b.if_else(full) as (whole, partial):
            with whole:
                row(tile.blocks, n, ocb, oh)
            with partial:
                with for_range(b, ocb, e["ocb"], name="ocb1") as one:
                    row(1, n, one, oh)
