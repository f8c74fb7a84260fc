"""Winograd F(m x m, 3x3) convolution on channel-blocked NCHW[b]c tensors.

Rows of output tiles are shared among the workers (``parallel_for``). For each tile row the kernel:

1. transforms every input tile of the row, one vector of b input channels at a time
   (``V = B^T d B``: alpha^2 masked loads, then rows and columns as fully unrolled
   add/sub/FMA chains with the constants of ``B``), into a stack buffer laid out
   ``[alpha^2][tiles][IC]`` so the product can broadcast one input channel at a time;
2. for each pair of output-channel blocks and each run of up to R tiles, computes the
   alpha^2 small products ``M[xi] = sum_ic V[xi][tile][ic] * U[xi][ocb][ic]`` with the
   same register tile as the direct kernel (R tiles x J channel blocks of accumulators,
   J weight vector loads and R broadcasts per input channel), parking each finished
   ``M[xi]`` in a small stack buffer;
3. transforms back (``Y = A^T M A``), adds the bias, applies the activation and stores
   the m x m outputs straight into the output view (a concat slice included), skipping
   the positions past the edge of the last tile row/column.

``U = G g G^T`` was computed at compile time (``sqzc.winograd.transform_weights``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import replace

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, entry_alloca, for_range, i64, \
    opaque_ptr
from sqzc.backends.llvm.emit.common.vec import (
    MulAdd,
    mul_add,
    splat,
    vconst,
    vtype,
)
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.memory import View
from sqzc.ops import ConvAttrs, OpKind, OpNode
from sqzc.winograd import matrices


def _lincomb(b: ir.IRBuilder, fma: MulAdd, coeffs: Sequence[float],
             vecs: Sequence[ir.Value], lanes: int) -> ir.Value:
    """``sum(c * v)`` skipping zero coefficients; +-1 become adds and subtracts."""
    acc: ir.Value | None = None
    for c, v in zip(coeffs, vecs):
        c = float(c)
        if c == 0.0:
            continue
        if acc is None:
            acc = v if c == 1.0 else b.fmul(v, vconst(c, lanes))
        elif c == 1.0:
            acc = b.fadd(acc, v)
        elif c == -1.0:
            acc = b.fsub(acc, v)
        else:
            acc = fma(b, vconst(c, lanes), v, acc)
    return acc if acc is not None else vconst(0.0, lanes)


def _clamp(b: ir.IRBuilder, v: ir.Value, hi: int) -> ir.Value:
    v = b.select(b.icmp_signed("<", v, i64(0)), i64(0), v)
    return b.select(b.icmp_signed(">", v, i64(hi)), i64(hi), v)


def winograd_sharing(op: OpNode, ins: Sequence[View], out: View, target: Target
                     ) -> tuple[Hashable, dict[str, int]]:
    """Winograd convs of one spatial geometry share a kernel whatever their channel
    counts: those enter only as loop bounds and strides (the run-time ``extents``), so
    SqueezeNet 1.0's fire5, fire6/7 and fire8 (all 27x27) run one function. The register
    tile's split of the output-channel blocks is structure, so it is part of the key."""
    x, wu = ins[0], ins[1]
    ocb = out.shape[1]
    jmax = target.winograd_tile(x.shape[4]).blocks
    assert isinstance(op.attrs, ConvAttrs)
    structure = (replace(op.attrs, out_channels=0), x.shape[0], x.shape[2:], x.strides[1:],
                 out.shape[0], out.shape[2:], out.strides[1:], ocb % jmax, ocb >= jmax)
    return structure, {"icb": x.shape[1], "ic": wu.shape[2], "ocb": ocb,
                       "x_batch_stride": x.strides[0], "y_batch_stride": out.strides[0]}


@emits(OpKind.CONV, "float", layout="blocked", variant="winograd", shared=winograd_sharing)
def emit_conv_winograd(ctx: KernelContext) -> None:
    """Winograd convolution (see module docstring)."""
    a = ctx.op.attrs
    assert isinstance(a, ConvAttrs) and a.winograd and a.packed
    mats = matrices(a.winograd)
    m, al = mats.m, mats.alpha
    xi_n = al * al
    bt, at = mats.bt, mats.at
    b, x, wu, bias, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.ins[2], ctx.out
    blk = a.packed
    vt = vtype(blk)
    fma = mul_add(ctx.module, ctx.target, blk)
    n_batch, ocb_n, oh_len, ow_len, _ = y.shape
    h_len, w_len = x.shape[2], x.shape[3]
    th_n, tw_n = -(-oh_len // m), -(-ow_len // m)
    tile = ctx.target.winograd_tile(blk)
    rmax, jmax = tile.pixels, tile.blocks
    ocb_rem = ocb_n % jmax  # structure (``winograd_sharing``), unlike the extents below
    icb_total = ctx.extent("icb", x.shape[1])
    ic_total = ctx.extent("ic", wu.shape[2])
    ocb_total = ctx.extent("ocb", ocb_n)
    x_batch, y_batch = ctx.extent("x_batch_stride", x.strides[0]), \
        ctx.extent("y_batch_stride", y.strides[0])
    icp = b.mul(icb_total, i64(blk), name="icp")
    zero = vconst(0.0, blk)

    # vector-typed buffers, so the stack slots get the vector's 64-byte alignment
    v_raw = entry_alloca(b, vt, "wino.v", count=xi_n * tw_n * ctx.extent_cap("icb", x.shape[1]))
    m_raw = entry_alloca(b, vt, "wino.m", count=xi_n * rmax * jmax)
    accs = [entry_alloca(b, vt, f"acc{k}") for k in range(rmax * jmax)]
    vbuf, mbuf = opaque_ptr(b, v_raw), opaque_ptr(b, m_raw)

    def at_f32(base: ir.Value, idx: ir.Value) -> ir.Value:
        return b.gep(base, [idx], inbounds=True, source_etype=F32)

    def input_transform(n: ir.Value, th: ir.Value) -> None:
        with for_range(b, 0, tw_n, name="tw") as tw:
            with for_range(b, 0, icb_total, name="icb") as icb:
                base = at_f32(x.ptr, b.add(b.mul(n, x_batch),
                                           b.mul(icb, i64(x.strides[1]))))
                d: list[list[ir.Value]] = []
                for i in range(al):
                    ih = b.add(b.mul(th, i64(m)), i64(i - a.pads[0]))
                    ihc = _clamp(b, ih, h_len - 1)
                    row_ok = b.icmp_signed("==", ih, ihc)
                    row = []
                    for j in range(al):
                        iw = b.add(b.mul(tw, i64(m)), i64(j - a.pads[1]))
                        iwc = _clamp(b, iw, w_len - 1)
                        ok = b.and_(row_ok, b.icmp_signed("==", iw, iwc))
                        off = b.add(b.mul(ihc, i64(x.strides[2])), b.mul(iwc, i64(x.strides[3])))
                        v = b.load(at_f32(base, off), typ=vt, align=4)
                        row.append(b.select(ok, v, zero))
                    d.append(row)
                t = [[_lincomb(b, fma, bt[i], [d[k][j] for k in range(al)], blk)
                      for j in range(al)] for i in range(al)]
                for i in range(al):
                    for j in range(al):
                        v = _lincomb(b, fma, bt[j], t[i], blk)
                        idx = b.add(b.mul(b.add(i64((i * al + j) * tw_n), tw), icp),
                                    b.mul(icb, i64(blk)))
                        b.store(v, at_f32(vbuf, idx), align=4)

    def product(ocb: ir.Value, tw0: ir.Value, rr: int, jn: int) -> None:
        with for_range(b, 0, xi_n, name="xi") as xi:
            live = [r * jmax + j for r in range(rr) for j in range(jn)]
            for k in live:
                b.store(zero, accs[k])
            vrow = b.mul(b.add(b.mul(xi, i64(tw_n)), tw0), icp)
            wrow = b.mul(b.add(b.mul(xi, ocb_total), ocb), b.mul(ic_total, i64(blk)))
            with for_range(b, 0, ic_total, name="ic") as ic:
                wv = [b.load(at_f32(wu.ptr, b.add(wrow, b.add(b.mul(ic_total, i64(j * blk)),
                                                             b.mul(ic, i64(blk))))),
                             typ=vt, align=4) for j in range(jn)]
                vals = {k: b.load(accs[k], typ=vt) for k in live}
                for r in range(rr):
                    s = b.load(at_f32(vbuf, b.add(vrow, b.add(b.mul(icp, i64(r)), ic))), typ=F32)
                    sv = splat(b, s, blk)
                    for j in range(jn):
                        k = r * jmax + j
                        vals[k] = fma(b, sv, wv[j], vals[k])
                for k, v in vals.items():
                    b.store(v, accs[k])
            for k in live:
                slot = b.add(b.mul(xi, i64(rmax * jmax)), i64(k))
                b.store(b.load(accs[k], typ=vt),
                        b.gep(mbuf, [slot], inbounds=True, source_etype=vt), align=64)

    def output_transform(n: ir.Value, th: ir.Value, ocb: ir.Value, tw0: ir.Value, rr: int,
                         jn: int) -> None:
        """Tiles are a loop (not unrolled): the transform is hundreds of instructions."""
        for j in range(jn):
            bvec = b.load(at_f32(bias.ptr, b.mul(b.add(ocb, i64(j)), i64(blk))), typ=vt, align=4)
            ybase = at_f32(y.ptr, b.add(b.mul(n, y_batch),
                                        b.mul(b.add(ocb, i64(j)), i64(y.strides[1]))))
            with for_range(b, 0, rr, name=f"otile{j}") as r:
                slot = b.add(b.mul(r, i64(jmax)), i64(j))
                mv = [[b.load(b.gep(mbuf, [b.add(slot, i64((i * al + jj) * rmax * jmax))],
                                    inbounds=True, source_etype=vt), typ=vt, align=64)
                       for jj in range(al)] for i in range(al)]
                s = [[_lincomb(b, fma, at[u], [mv[i][jj] for i in range(al)], blk)
                      for jj in range(al)] for u in range(m)]
                ow0 = b.mul(b.add(tw0, r), i64(m))
                for u in range(m):
                    oh = b.add(b.mul(th, i64(m)), i64(u))
                    for v in range(m):
                        out = _lincomb(b, fma, at[v], s[u], blk)
                        out = apply_activation(vec_ops(ctx, blk), b.fadd(out, bvec), a.act)
                        ow = b.add(ow0, i64(v))
                        inside = b.and_(b.icmp_signed("<", oh, i64(oh_len)),
                                        b.icmp_signed("<", ow, i64(ow_len)))
                        with b.if_then(inside):
                            off = b.add(b.mul(oh, i64(y.strides[2])), b.mul(ow, i64(y.strides[3])))
                            b.store(out, at_f32(ybase, off), align=4)

    def tiles(n: ir.Value, th: ir.Value, ocb: ir.Value, jn: int) -> None:
        full = tw_n - tw_n % rmax
        if full:
            with for_range(b, 0, full, step=rmax, name="tw0") as tw0:
                product(ocb, tw0, rmax, jn)
                output_transform(n, th, ocb, tw0, rmax, jn)
        if tw_n % rmax:
            product(ocb, i64(full), tw_n % rmax, jn)
            output_transform(n, th, ocb, i64(full), tw_n % rmax, jn)

    with ctx.parallel_for(n_batch * th_n, name="tilerow") as idx:
        n, th = b.sdiv(idx, i64(th_n), name="n"), b.srem(idx, i64(th_n), name="th")
        input_transform(n, th)
        full_ocb = b.sub(ocb_total, i64(ocb_rem))
        if ocb_n >= jmax:
            with for_range(b, 0, full_ocb, step=jmax, name="ocb") as ocb:
                tiles(n, th, ocb, jmax)
        if ocb_rem:
            tiles(n, th, full_ocb, ocb_rem)
