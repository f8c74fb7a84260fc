"""The layout steps of weight recipes in native code (issue 21): what a library that stores
its weights compressed runs at load time to rebuild the kernels' layouts from the decoded
source tensors, bit for bit as the compiler built them (``sqzc.ops.recipes``).

* ``sqz_pack_conv``: OIHW float32 -> [OC/b, IC, KH, KW, b] (``PackConv``). The
  destination's padding lanes are left as they are (the image starts zeroed).
* ``sqz_pack_qconv``: int8 OIHW -> [OC/b, IC/g, KH, KW, b, g], int8 quads (g = 4) or
  sign-extended int16 pairs (g = 2) (``PackQConv``).
* ``sqz_dequantize_{s8,u8}``: int8 / uint8 codes -> float32 ``float(int32(q) - zp) *
  scale`` per index of an axis (``Dequantize``), from per-tensor tables of scales and zero
  points; one ``sitofp`` and one ``fmul``, as ``onnx_ops.dequantize_linear`` rounds.
  ``sqz_dequantize_blocked_{s8,u8}``: the same with opset 21's blocks (one scale and 8-bit
  zero point per ``block`` indices of the axis and per index of the other dims).
* ``sqz_winograd_m{2,4}``: channel-blocked 3x3 float32 filters [OC/b, IC, 3, 3, b] ->
  ``U`` [alpha^2, OC/b, IC, b] (``Winograd``). ``b`` output channels at a time, as two
  4-double halves per 8 lanes: each ``U[i, j]`` is ``acc = +0.0``, then for ``k``, ``l``
  in order ``acc += (G[i, k] * w[k, l]) * G[j, l]`` in double, rounded to float once,
  exactly ``sqzc.winograd.filter_transform``. The products ``G[i, k] * w[k, l]`` are
  computed once per ``(i, k, l)`` and reused for every ``j`` (the same operation on the
  same operands). Terms with a zero ``G`` entry are kept: they add ``+-0.0`` for finite
  weights, but ``0 * inf`` is NaN, as in numpy. No fast-math flags and no
  ``llvm.fmuladd``, so LLVM contracts nothing.

Generic over the sizes (run-time arguments), so a library has one copy of each whatever its
layers; ``b`` is a compile-time constant (the target's channel block).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, F64, I8, I16, I32, I64, PTR, VOID, for_range, i64
from sqzc.winograd import matrices

__all__ = ["emit_dequantize", "emit_dequantize_blocked", "emit_pack_conv", "emit_pack_qconv", "emit_winograd"]


def _fn(module: ir.Module, name: str, n_sizes: int) -> tuple[ir.Function, ir.IRBuilder]:
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR] + [I64] * n_sizes), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")  # one copy per library, however many tensors call it
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def emit_pack_conv(module: ir.Module, block: int) -> ir.Function:
    """``void sqz_pack_conv(const float *src, float *dst, i64 O, i64 I, i64 KHW)``:
    dst[((o / b) * I * KHW + i * KHW + t) * b + o % b] = src[(o * I + i) * KHW + t]."""
    fn, b = _fn(module, f"sqz_pack_conv_b{block}", 3)
    src, dst, oc, ic, khw = fn.args
    per_o = b.mul(ic, khw)
    with for_range(b, 0, oc, name="o") as o:
        base = b.add(b.mul(b.mul(b.sdiv(o, i64(block)), per_o), i64(block)),
                     b.srem(o, i64(block)))
        with for_range(b, 0, per_o, name="k") as k:
            v = b.load(b.gep(src, [b.add(b.mul(o, per_o), k)], source_etype=F32), typ=F32)
            b.store(v, b.gep(dst, [b.add(base, b.mul(k, i64(block)))], source_etype=F32))
    b.ret_void()
    return fn


def emit_pack_qconv(module: ir.Module, block: int, group: int) -> ir.Function:
    """``void sqz_pack_qconv(const int8 *src, void *dst, i64 O, i64 I, i64 KHW)``: the
    int8 OIHW weight into [OC/b, ceil(I/g), KH, KW, b, g]; int16 elements when g = 2."""
    fn, b = _fn(module, f"sqz_pack_qconv_b{block}_g{group}", 3)
    src, dst, oc, ic, khw = fn.args
    elem = I8 if group == 4 else I16
    icq = b.sdiv(b.add(ic, i64(group - 1)), i64(group))
    with for_range(b, 0, oc, name="o") as o:
        ocb, lane = b.sdiv(o, i64(block)), b.srem(o, i64(block))
        with for_range(b, 0, ic, name="i") as i:
            iq, ig = b.sdiv(i, i64(group)), b.srem(i, i64(group))
            with for_range(b, 0, khw, name="t") as t:
                v = b.load(b.gep(src, [b.add(b.mul(b.add(b.mul(o, ic), i), khw), t)],
                                 source_etype=I8), typ=I8)
                # ((((ocb * icq + iq) * khw + t) * block + lane) * group + ig)
                idx = b.add(b.mul(b.add(b.mul(b.add(b.mul(b.add(b.mul(ocb, icq), iq), khw),
                                                    t), i64(block)), lane), i64(group)), ig)
                b.store(v if elem is I8 else b.sext(v, I16),
                        b.gep(dst, [idx], source_etype=elem))
    b.ret_void()
    return fn


def emit_dequantize(module: ir.Module, signed: bool) -> ir.Function:
    """``void sqz_dequantize_{s8,u8}(const i8 *src, float *dst, i64 outer, i64 A, i64 inner,
    const float *scale, const i32 *zp)``: dst[(o * A + a) * inner + i] =
    float(int32(src[same]) - zp[a]) * scale[a]."""
    name = f"sqz_dequantize_{'s8' if signed else 'u8'}"
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, I64, I64, PTR, PTR]), name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    src, dst, outer, alen, inner, scales, zps = fn.args
    with for_range(b, 0, outer, name="o") as o:
        with for_range(b, 0, alen, name="a") as a:
            scale = b.load(b.gep(scales, [a], source_etype=F32), typ=F32)
            zp = b.load(b.gep(zps, [a], source_etype=I32), typ=I32)
            row = b.mul(b.add(b.mul(o, alen), a), inner)
            with for_range(b, 0, inner, name="i") as i:
                at = b.add(row, i)
                q = b.load(b.gep(src, [at], source_etype=I8), typ=I8)
                wide = b.sext(q, I32) if signed else b.zext(q, I32)
                v = b.fmul(b.sitofp(b.sub(wide, zp), F32), scale)
                b.store(v, b.gep(dst, [at], source_etype=F32))
    b.ret_void()
    return fn


def emit_dequantize_blocked(module: ir.Module, signed: bool) -> ir.Function:
    """``void sqz_dequantize_blocked_{s8,u8}(const i8 *src, float *dst, i64 outer, i64 A,
    i64 inner, i64 block, const float *scale, const i8 *zp)``: with ``p = (o * ceil(A /
    block) + a / block) * inner + i``, dst[(o * A + a) * inner + i] =
    float(int32(src[same]) - zp[p]) * scale[p]."""
    name = f"sqz_dequantize_blocked_{'s8' if signed else 'u8'}"
    fn = ir.Function(module, ir.FunctionType(VOID, [PTR, PTR, I64, I64, I64, I64, PTR, PTR]),
                     name)
    fn.linkage = "internal"
    fn.attributes.add("noinline")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    src, dst, outer, alen, inner, block, scales, zps = fn.args

    def widen(v: ir.Value) -> ir.Value:
        return b.sext(v, I32) if signed else b.zext(v, I32)

    blocks = b.sdiv(b.add(alen, b.sub(block, i64(1))), block)
    with for_range(b, 0, outer, name="o") as o:
        with for_range(b, 0, alen, name="a") as a:
            row = b.mul(b.add(b.mul(o, alen), a), inner)
            prow = b.mul(b.add(b.mul(o, blocks), b.sdiv(a, block)), inner)
            with for_range(b, 0, inner, name="i") as i:
                at, p = b.add(row, i), b.add(prow, i)
                scale = b.load(b.gep(scales, [p], source_etype=F32), typ=F32)
                zp = widen(b.load(b.gep(zps, [p], source_etype=I8), typ=I8))
                q = widen(b.load(b.gep(src, [at], source_etype=I8), typ=I8))
                b.store(b.fmul(b.sitofp(b.sub(q, zp), F32), scale),
                        b.gep(dst, [at], source_etype=F32))
    b.ret_void()
    return fn


def emit_winograd(module: ir.Module, block: int, m: int) -> ir.Function:
    """``void sqz_winograd_m{m}(const float *src, float *dst, i64 OCB, i64 IC)``: src is
    [OCB, IC, 3, 3, b] (packed), dst is U [alpha^2, OCB, IC, b].

    The row ``i`` of ``U`` is a loop reading ``G[i, :]`` from a table (the columns ``j``
    are unrolled): unrolling both made this function 9.6 KB of a 0.68 MB library, and it
    runs once per process."""
    fn, b = _fn(module, f"sqz_winograd_m{m}_b{block}", 2)
    src, dst, ocb_n, ic = fn.args
    g = matrices(m).g
    alpha = g.shape[0]
    lanes = 8 if block % 8 == 0 else block
    vf, vd = ir.VectorType(F32, lanes), ir.VectorType(F64, lanes)
    table = ir.GlobalVariable(module, ir.ArrayType(F64, alpha * 3), f"sqz_winograd_g{m}")
    table.linkage, table.global_constant = "internal", True
    table.initializer = ir.Constant(table.value_type, [float(v) for v in g.reshape(-1)])

    def splat(v: float | ir.Value) -> ir.Value:
        if isinstance(v, ir.Value):
            return b.shuffle_vector(b.insert_element(ir.Constant(vd, None), v, i64(0)),
                                    ir.Constant(vd, None),
                                    ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                                                [0] * lanes))
        return ir.Constant(vd, [ir.Constant(F64, float(v))] * lanes)

    with for_range(b, 0, ocb_n, name="ocb") as ocb:
        with for_range(b, 0, ic, name="c") as c:
            filt = b.mul(b.add(b.mul(ocb, ic), c), i64(9 * block))
            for half in range(block // lanes):
                w = []
                for kl in range(9):
                    off = b.add(filt, i64(kl * block + half * lanes))
                    v = b.load(b.gep(src, [off], source_etype=F32), typ=vf, align=4)
                    w.append(b.fpext(v, vd))
                with for_range(b, 0, alpha, name=f"i{half}") as i:
                    g_row = [b.load(b.gep(table, [i64(0), b.add(b.mul(i, i64(3)), i64(k))],
                                          source_etype=table.value_type), typ=F64)
                             for k in range(3)]
                    prods = [b.fmul(splat(g_row[kl // 3]), w[kl]) for kl in range(9)]
                    for j in range(alpha):
                        acc: ir.Value = splat(0.0)
                        for kl in range(9):
                            acc = b.fadd(acc, b.fmul(prods[kl], splat(g[j, kl % 3])))
                        u = b.fptrunc(acc, vf)
                        # dst[((i * alpha + j) * OCB + ocb) * IC + c) * b + half * lanes]
                        row = b.add(b.mul(i, i64(alpha)), i64(j))
                        pos = b.add(b.mul(b.add(b.mul(row, ocb_n), ocb), ic), c)
                        out = b.add(b.mul(pos, i64(block)), i64(half * lanes))
                        b.store(u, b.gep(dst, [out], source_etype=F32), align=4)
    b.ret_void()
    return fn


#: Element types the emitters use, for callers building the argument buffers.
ELEMENT_TYPES = {"float32": F32, "int8": I8, "int16": I16, "int32": I32}
