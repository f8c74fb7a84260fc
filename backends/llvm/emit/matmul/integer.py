"""QLinearMatMul (and QGemm folded into it) and MatMulInteger: numpy-semantics matmul of
8-bit operands (1-D promotion, broadcast batch dims, ``matmul/float.py``'s geometry) with
an exact int32 accumulator per output element, then onnxruntime's requantization.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, entry_alloca, for_range, loop_nest
from sqzc.backends.llvm.emit.common.qmath import per_index, saturate_round, to_i32
from sqzc.backends.llvm.emit.matmul.float import matmul_geometry
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import IntMatMulAttrs, OpKind, QMatMulAttrs


def _int_matmul(ctx: KernelContext, a_zp: int, b_zp: tuple[int, ...],
                finish: Callable[[ir.Value, ir.Value], ir.Value]) -> None:
    """Numpy-semantics matmul (1-D promotion, broadcast batch dims) of 8-bit operands with
    an exact int32 accumulator per output element; ``finish(acc, column)`` gives the value
    stored."""
    bld, (xa, xb), y = ctx.b, ctx.ins, ctx.out
    g = matmul_geometry(xa, xb)
    azp = ir.Constant(I32, a_zp)
    bzp = per_index(ctx, b_zp, I32, "bzp")
    acc = entry_alloca(bld, I32, "acc")
    with loop_nest(bld, g.batch, name="bt") as bidx:
        with for_range(bld, 0, g.m, name="m") as i:
            with for_range(bld, 0, g.n, name="n") as j:
                bz = bzp(j)
                bld.store(ir.Constant(I32, 0), acc)
                with for_range(bld, 0, g.k, name="k") as kk:
                    av = bld.sub(to_i32(bld, xa.load(bld, list(bidx) + [i, kk], g.a_strides),
                                        xa.dtype), azp)
                    bv = bld.sub(to_i32(bld, xb.load(bld, list(bidx) + [kk, j], g.b_strides),
                                        xb.dtype), bz)
                    bld.store(bld.add(bld.load(acc, typ=I32), bld.mul(av, bv)), acc)
                y.store(bld, g.out_index(bidx, i, j), finish(bld.load(acc, typ=I32), j))


def _emit_qmatmul(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, QMatMulAttrs)
    mult = per_index(ctx, a.multiplier, F32, "qmm_mult")
    bias = per_index(ctx, a.bias, I32, "qmm_bias") if a.bias else None
    out = a.out

    def finish(acc: ir.Value, j: ir.Value) -> ir.Value:
        if bias is not None:  # QGemm's int32 C, added to the sums (wrapping, as MLAS's)
            acc = ctx.b.add(acc, bias(j))
        v = ctx.b.fmul(ctx.b.sitofp(acc, F32), mult(j))
        return saturate_round(ctx.b, v, out.zero_point[0], out.dtype)

    _int_matmul(ctx, a.a_zp, a.b_zp, finish)


def _emit_matmul_integer(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, IntMatMulAttrs)
    _int_matmul(ctx, a.a_zp, a.b_zp, lambda acc, _j: acc)


for _dt in ("uint8", "int8"):
    emits(OpKind.QMATMUL, _dt)(_emit_qmatmul)
    emits(OpKind.MATMUL_INTEGER, _dt)(_emit_matmul_integer)
