"""Integer convolution with AVX512-VNNI ``vpdpbusd`` on channel-blocked 8-bit tensors.

Same tiling as the float kernel (``conv/blocked.py``): J output-channel blocks x R pixels of
one row held as ``<16 x i32>`` accumulators. Per group of 4 input channels and kernel tap,
J weight vectors (packed [OC/16, IC/4, KH, KW, 16, 4], 64 int8 each) meet R broadcast
32-bit loads of 4 consecutive input channels; one ``vpdpbusd`` does 64 multiply-adds.
``vpdpbusd`` multiplies unsigned by signed bytes, so int8 activations are shifted by +128
(an XOR of the sign bits) and the shift, like the input zero point, is folded into the
bias at compile time (``pack_qconv``): ``sum((x - zp) * w) = sum(u * w) - c * sum(w)``.
Padded taps then feed ``u = c`` where ``c != 0`` so the fold stays exact. The epilogue
requantizes in registers exactly like onnxruntime (float32 multiply, clamp, round half
to even, zero point) and stores 16 bytes into the blocked output (or its concat slice).
The packed bias operand is two rows, the int32 biases and the float32 requantization
multipliers (as bits), so the code holds no per-layer data and Fire modules of equal
geometry share one kernel (``kernel_key``).

Arm64 with the dot-product extension (Cortex-A76, Neoverse N1) runs the same quads with
SDOT, which multiplies signed by signed bytes: uint8 activations are shifted by -128
instead (``QConvAttrs.signed_dot``; the fold's constant is ``qconv_input_offset``'s), and
an 8-lane block is two 4-lane SDOTs. Targets without either run the same kernel on pairs: weights packed as int16
[OC/b, IC/2, KH, KW, b, 2], the two input bytes zero-extended into one 32-bit word, and
``pmaddwd`` (two exact int16 products summed into int32) in place of ``vpdpbusd``, with
the float kernel's register tile for the target (AVX2 has 16 vector registers).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, declare_intrinsic, entry_alloca, for_range, i64
from sqzc.backends.llvm.emit.common.geometry import col_tiles, row_groups
from sqzc.backends.llvm.emit.common.vec import splat, vsplat_const
from sqzc.backends.llvm.emit.conv.tiling import drive_conv_rows
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.ops import INT_RANGE, OpKind, QConvAttrs
from sqzc.ops.layout import qconv_input_offset

FLIP_BYTES = int.from_bytes(b"\x80" * 4, "little", signed=True)  # int8 -> uint8 + 128


def _vec(ty: ir.Type, lanes: int, value: float | int) -> ir.Constant:
    return vsplat_const(ty, value, lanes)


Dot = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value], ir.Value]


def _vnni_dot(module: ir.Module, vi: ir.VectorType) -> Dot:
    """``acc += sum of 4 u8 x s8 products`` per 32-bit lane: one ``vpdpbusd``."""
    fn = declare_intrinsic(module, "llvm.x86.avx512.vpdpbusd.512", vi, [vi, vi, vi])
    return lambda b, acc, x, w: b.call(fn, [acc, x, w])


def _sdot(module: ir.Module, vi: ir.VectorType) -> Dot:
    """``acc += sum of 4 s8 x s8 products`` per 32-bit lane: Arm's SDOT (the dot-product
    extension), 4 lanes a register, so a wider block runs one per 4-lane quarter."""
    q_i = ir.VectorType(I32, 4)
    q_b = ir.VectorType(ir.IntType(8), 16)
    fn = declare_intrinsic(module, "llvm.aarch64.neon.sdot.v4i32.v16i8", q_i, [q_i, q_b, q_b])
    lanes = vi.count

    def dot(b: ir.IRBuilder, acc: ir.Value, x: ir.Value, w: ir.Value) -> ir.Value:
        if lanes == 4:
            return b.call(fn, [acc, b.bitcast(x, q_b), b.bitcast(w, q_b)])
        parts = []
        undef = ir.Constant(vi, ir.Undefined)
        for lo in range(0, lanes, 4):
            sel = ir.Constant(q_i, [ir.Constant(I32, lo + k) for k in range(4)])
            a, xs, ws = (b.shuffle_vector(v, undef, sel) for v in (acc, x, w))
            parts.append(b.call(fn, [a, b.bitcast(xs, q_b), b.bitcast(ws, q_b)]))
        while len(parts) > 1:  # concatenate the quarters back into one vector
            n = 2 * parts[0].type.count
            both = ir.Constant(ir.VectorType(I32, n), [ir.Constant(I32, i) for i in range(n)])
            parts = [b.shuffle_vector(parts[i], parts[i + 1], both)
                     for i in range(0, len(parts), 2)]
        return parts[0]
    return dot


def _widening_pair_dot(lanes: int) -> Dot:
    """The pair dot product in portable vector IR, for targets without a ``pmaddwd``
    (Arm64 without the dot-product extension: LLVM selects widening multiplies and
    pairwise adds): sign-extend both int16 halves to int32, multiply, add each lane's
    even and odd products. Exact, as ``pmaddwd`` is (|x * w| < 2^15 * 2^7)."""
    vi = ir.VectorType(I32, lanes)
    halves = ir.VectorType(ir.IntType(16), 2 * lanes)
    wide = ir.VectorType(I32, 2 * lanes)
    even = ir.Constant(vi, [ir.Constant(I32, 2 * k) for k in range(lanes)])
    odd = ir.Constant(vi, [ir.Constant(I32, 2 * k + 1) for k in range(lanes)])

    def dot(b: ir.IRBuilder, acc: ir.Value, x: ir.Value, w: ir.Value) -> ir.Value:
        prod = b.mul(b.sext(b.bitcast(x, halves), wide), b.sext(b.bitcast(w, halves), wide))
        pairs = b.add(b.shuffle_vector(prod, prod, even), b.shuffle_vector(prod, prod, odd))
        return b.add(acc, pairs)
    return dot


def _pair_dot(module: ir.Module, target: Target, lanes: int) -> Dot:
    """``acc += x0 * w0 + x1 * w1`` per 32-bit lane holding two int16 (x: zero-extended
    bytes, w: sign-extended int8), exact in int32: one ``pmaddwd`` per register (AVX-512BW,
    AVX2, or two SSE2 halves per 8 lanes on baseline x86-64: ``Target.pair_dot``) and an
    add."""
    vi = ir.VectorType(I32, lanes)
    width, name = target.pair_dot(lanes)
    if not name:
        return _widening_pair_dot(lanes)
    part_i = ir.VectorType(I32, width)
    part_w = ir.VectorType(ir.IntType(16), 2 * width)
    fn = declare_intrinsic(module, name, part_i, [part_w, part_w])

    def dot(b: ir.IRBuilder, acc: ir.Value, x: ir.Value, w: ir.Value) -> ir.Value:
        if width == lanes:
            return b.add(acc, b.call(fn, [b.bitcast(x, part_w), b.bitcast(w, part_w)]))
        assert lanes == 2 * width, (lanes, width)
        parts = []
        for lo in range(0, lanes, width):
            sel = ir.Constant(ir.VectorType(I32, width),
                              [ir.Constant(I32, lo + k) for k in range(width)])
            xs, ws = (b.bitcast(b.shuffle_vector(v, ir.Constant(vi, ir.Undefined), sel), part_w)
                      for v in (x, w))
            parts.append(b.call(fn, [xs, ws]))
        both = ir.Constant(ir.VectorType(I32, lanes), [ir.Constant(I32, i) for i in range(lanes)])
        return b.add(acc, b.shuffle_vector(parts[0], parts[1], both))
    return dot


def _emit_qconv_vnni(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QConvAttrs) and a.conv.packed
    c = a.conv
    b, x, wp, bias, y = ctx.b, ctx.ins[0], ctx.ins[1], ctx.ins[2], ctx.out
    blk = c.packed
    vi = ir.VectorType(I32, blk)
    vf = ir.VectorType(F32, blk)
    group = wp.shape[5]  # input channels per 32-bit word: 4 bytes (VNNI) or 2 int16
    per_block = blk // group  # words per channel block of the input
    if group == 2:
        dot = _pair_dot(ctx.module, ctx.target, blk)
    else:
        dot = _sdot(ctx.module, vi) if a.signed_dot else _vnni_dot(ctx.module, vi)
    rint = declare_intrinsic(ctx.module, f"llvm.rint.v{blk}f32", vf, [vf])
    n_batch, ocb_total, oh_len, ow_len, _ = y.shape
    icq_total, kh_len, kw_len = wp.shape[1], wp.shape[2], wp.shape[3]
    h_len, w_len = x.shape[2], x.shape[3]
    (sh, sw), (dh, dw) = c.strides, c.dilations
    # the bytes the dot product multiplies: unsigned (VNNI, pairs), or signed (SDOT)
    shift = x.dtype == ("uint8" if a.signed_dot else "int8")
    offset = qconv_input_offset(x.dtype, a.x_zp, a.signed_dot)
    pad_word = (offset & 0xFF) * (0x01010101 if group == 4 else 0x00010001)
    pad_vec = _vec(I32, blk, int.from_bytes(pad_word.to_bytes(4, "little"), "little", signed=True))
    rows = row_groups(oh_len, h_len, kh_len, sh, dh, c.pads[0])
    tile = ctx.target.qconv_tile(blk, group)
    pixels, blocks = tile.pixels, tile.blocks
    cols = col_tiles(ow_len, w_len, kw_len, sw, dw, c.pads[1], pixels)
    accs = [entry_alloca(b, vi, f"acc{j}_{r}") for j in range(blocks) for r in range(pixels)]
    w_oc_stride = icq_total * kh_len * kw_len * blk  # i32 words between output blocks
    lo_q, hi_q = INT_RANGE[a.out.dtype]
    zp = float(a.out.zero_point[0])
    low, high = _vec(F32, blk, lo_q - zp), _vec(F32, blk, hi_q - zp)
    zpv = _vec(F32, blk, zp)
    mult = b.gep(bias.ptr, [i64(ocb_total * blk)], inbounds=True, source_etype=I32)
    out_t = ir.VectorType(ir.IntType(8), blk)
    if a.requant is not None:
        lo2, hi2 = INT_RANGE[a.requant.dtype]
        zp2 = float(a.requant.zero_point[0])
        low2, high2 = _vec(F32, blk, lo2 - zp2), _vec(F32, blk, hi2 - zp2)
        zp2v = _vec(F32, blk, zp2)

    def x_word(xq: ir.Value, offset_bytes: int) -> ir.Value:
        """Broadcast the ``group`` input channels at ``xq + offset_bytes`` as one 32-bit
        word: 4 bytes, or 2 bytes zero-extended to two int16."""
        at = b.gep(xq, [i64(offset_bytes)], source_etype=ir.IntType(8))
        if group == 4:
            word = b.load(at, typ=I32, align=1)
            if shift:  # on the scalar: an XOR of the splat feeding vpdpbusd hangs LLVM 22's isel
                word = b.xor(word, ir.Constant(I32, FLIP_BYTES))
        else:
            pair = b.zext(b.load(at, typ=ir.IntType(16), align=1), I32)
            if shift:
                pair = b.xor(pair, ir.Constant(I32, 0x8080))
            word = b.or_(b.and_(pair, ir.Constant(I32, 0xFF)),
                         b.shl(b.and_(pair, ir.Constant(I32, 0xFF00)), ir.Constant(I32, 8)))
        return splat(b, word, blk)

    def microkernel(n: ir.Value, ocb: ir.Value, oh: ir.Value, ow0: ir.Value, jn: int,
                    width: int, taps_h: tuple[int, ...], valid: Callable[[int, int], bool]) -> None:
        for j in range(jn):
            bvec = b.load(b.gep(bias.ptr, [b.mul(b.add(ocb, i64(j)), i64(blk))], inbounds=True,
                                source_etype=I32), typ=vi, align=4)
            for r in range(width):
                b.store(bvec, accs[j * pixels + r])
        all_h = tuple(range(kh_len))
        # The tile's input origin (tap 0, pixel 0, possibly out of bounds: only in-bounds
        # offsets from it are ever loaded); every load is then a constant offset from it.
        origin = b.add(b.mul(n, i64(x.strides[0])),
                       b.add(b.mul(oh, i64(sh * x.strides[2])), b.mul(ow0, i64(sw * x.strides[3]))))
        with for_range(b, 0, icq_total, name="icq") as q:
            cb, word = b.udiv(q, i64(per_block)), b.urem(q, i64(per_block))
            xq = b.gep(x.ptr, [b.add(origin, b.add(b.mul(cb, i64(x.strides[1])),
                                                   b.mul(word, i64(group))))],
                       source_etype=ir.IntType(8))
            words: dict[int, ir.Value] = {}
            wbase = b.gep(wp.ptr, [b.mul(b.add(b.mul(ocb, i64(w_oc_stride // blk)),
                                              b.mul(q, i64(kh_len * kw_len))), i64(blk * 4))],
                          inbounds=True, source_etype=ir.IntType(8))
            vals = {k: b.load(acc, typ=vi) for k, acc in enumerate(accs)
                    if k % pixels < width and k // pixels < jn}
            for i in (all_h if offset else taps_h):
                row_ok = i in taps_h
                row_off = (i * dh - c.pads[0]) * x.strides[2]
                for t in range(kw_len):
                    wv = [b.load(b.gep(wbase, [i64((j * w_oc_stride + (i * kw_len + t) * blk) * 4)],
                                       inbounds=True, source_etype=ir.IntType(8)), typ=vi, align=4)
                          for j in range(jn)]
                    for r in range(width):
                        if row_ok and valid(r, t):
                            at = row_off + (r * sw + t * dw - c.pads[1]) * x.strides[3]
                            if at not in words:  # stride 1: pixel r at tap t+1 is r+1 at t
                                words[at] = x_word(xq, at)
                            xv = words[at]
                        elif offset:
                            xv = pad_vec
                        else:
                            continue
                        for j in range(jn):
                            k = j * pixels + r
                            vals[k] = dot(b, vals[k], xv, wv[j])
            for k, v in vals.items():
                b.store(v, accs[k])
        for j in range(jn):
            mvec = b.load(b.gep(mult, [b.mul(b.add(ocb, i64(j)), i64(blk))], inbounds=True,
                                source_etype=F32), typ=vf, align=4)
            for r in range(width):
                v = b.fmul(b.sitofp(b.load(accs[j * pixels + r], typ=vi), vf), mvec)
                v = b.select(b.fcmp_ordered("<", v, low), low, v)
                v = b.select(b.fcmp_ordered(">", v, high), high, v)
                v = b.fadd(b.call(rint, [v]), zpv)
                yi = b.fptosi(v, vi)
                if a.requant is not None:  # exactly Q(DQ(y)) into the consumer's scale
                    dq = b.fmul(b.sitofp(b.sub(yi, _vec(I32, blk, a.out.zero_point[0])), vf),
                                _vec(F32, blk, a.out.scale[0]))
                    v2 = b.fdiv(dq, _vec(F32, blk, a.requant.scale[0]))
                    v2 = b.select(b.fcmp_ordered("<", v2, low2), low2, v2)
                    v2 = b.select(b.fcmp_ordered(">", v2, high2), high2, v2)
                    yi = b.fptosi(b.fadd(b.call(rint, [v2]), zp2v), vi)
                qv = b.trunc(yi, out_t)
                off = b.add(b.add(b.mul(n, i64(y.strides[0])),
                                  b.mul(b.add(ocb, i64(j)), i64(y.strides[1]))),
                            b.add(b.mul(oh, i64(y.strides[2])),
                                  b.mul(b.add(ow0, i64(r)), i64(y.strides[3]))))
                b.store(qv, b.gep(y.ptr, [off], inbounds=True, source_etype=ir.IntType(8)),
                        align=1)

    drive_conv_rows(ctx, n_batch, ocb_total, blocks, rows, cols, microkernel)

for _dt in ("uint8", "int8"):
    emits(OpKind.QCONV, _dt, layout="blocked")(_emit_qconv_vnni)
