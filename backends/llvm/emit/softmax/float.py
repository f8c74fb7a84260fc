"""Softmax and log-softmax along one axis.

Softmax reproduces onnxruntime's CPU kernel (MLAS ``MlasComputeSoftmax`` on x86-64 with
AVX-512F) bit for bit, so that quantized models whose last op is a float Softmax give
exactly onnxruntime's probabilities: MLAS's own exp (range reduction by ln 2 split in two
constants, a degree-6 polynomial by FMAs, scaling by 2^m with one rounding), partial sums
in 16 lanes (lane ``l`` adds elements ``l, l+16, ...`` in order) reduced pairwise as its
``ReduceAccumulator`` does, then one reciprocal and a multiply. Constants and order are
from onnxruntime's ``TransKernelAvx512F.S`` and ``compute.cpp`` (the constants in
``sqzc.ort.oracles.mlas``); the emulation was
checked bit-exact against onnxruntime on thousands of rows (tests/ops). Log-softmax uses
libm's exp/log (no exactness target).
"""

from __future__ import annotations

import struct

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, F64, I64, declare_intrinsic, entry_alloca, f32, for_range, \
    i64, loop_nest, opaque_ptr
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, SoftmaxAttrs
from sqzc.ort.oracles.mlas import (
    EXP_LOG2_HIGH as LOG2_HIGH,
    EXP_LOG2_LOW as LOG2_LOW,
    EXP_LOG2_RECIPROCAL as LOG2_RECIPROCAL,
    EXP_LOWER_RANGE as LOWER_RANGE,
    EXP_POLY as POLY,
    EXP_ROUNDING_BIAS as ROUNDING_BIAS,
    SOFTMAX_SUM_LANES as SUM_LANES,
)


def _bits(u: int) -> ir.Constant:
    return ir.Constant(F32, struct.unpack("<f", struct.pack("<I", u))[0])




def mlas_exp(b: ir.IRBuilder, fma: ir.Function, v: ir.Value) -> ir.Value:
    """exp(v) exactly as MLAS's AVX-512F sum-exp kernel computes it (v = x - max)."""
    lower = _bits(LOWER_RANGE)
    v = b.select(b.fcmp_ordered(">", lower, v), lower, v)
    bias = _bits(ROUNDING_BIAS)
    m = b.fsub(b.call(fma, [v, _bits(LOG2_RECIPROCAL), bias]), bias)
    v = b.call(fma, [m, _bits(LOG2_HIGH), v])
    v = b.call(fma, [m, _bits(LOG2_LOW), v])
    p = _bits(POLY[0])
    for c in POLY[1:]:
        p = b.call(fma, [p, v, _bits(c)])
    # vscalefps: p * 2^m rounded once (m is an integer in [-150, 0]; 2^m built in double)
    mi = b.fptosi(m, I64)
    scale = b.bitcast(b.shl(b.add(mi, i64(1023)), i64(52)), F64)
    return b.fptrunc(b.fmul(b.fpext(p, F64), scale), F32)


@emits(OpKind.SOFTMAX, "float")
def emit_softmax(ctx: KernelContext) -> None:
    """Three passes per row: max, exp (stored) and its sum, normalize (or subtract the
    log-sum)."""
    a = ctx.op.attrs
    assert isinstance(a, SoftmaxAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    exp = declare_intrinsic(ctx.module, "llvm.exp.f32", F32, [F32])
    log = declare_intrinsic(ctx.module, "llvm.log.f32", F32, [F32])
    outer = [d for i, d in enumerate(x.shape) if i != a.axis]
    n = x.shape[a.axis]
    fma = declare_intrinsic(ctx.module, "llvm.fma.f32", F32, [F32, F32, F32])
    mx_ptr = entry_alloca(b, F32, "max")
    sum_ptr = entry_alloca(b, F32, "sum")
    lanes = opaque_ptr(b, entry_alloca(b, F32, "lanes", count=SUM_LANES))

    def at(oidx: list, k: object) -> list:
        full, it = [], iter(oidx)
        for i in range(len(x.shape)):
            full.append(k if i == a.axis else next(it))
        return full

    with loop_nest(b, outer, name="o") as oidx:
        b.store(f32(float("-inf")), mx_ptr)
        with for_range(b, 0, n, name="m") as k:
            v = x.load(b, at(oidx, k))
            m = b.load(mx_ptr, typ=F32)
            b.store(b.select(b.fcmp_unordered(">", v, m), v, m), mx_ptr)
        m = b.load(mx_ptr, typ=F32)
        if a.log:
            b.store(f32(0.0), sum_ptr)
            with for_range(b, 0, n, name="e") as k:
                e = b.call(exp, [b.fsub(x.load(b, at(oidx, k)), m)])
                b.store(b.fadd(b.load(sum_ptr, typ=F32), e), sum_ptr)
            lse = b.fadd(m, b.call(log, [b.load(sum_ptr, typ=F32)]))
            with for_range(b, 0, n, name="l") as k:
                y.store(b, at(oidx, k), b.fsub(x.load(b, at(oidx, k)), lse))
        else:
            neg = b.fsub(f32(0.0), m)  # MLAS adds -max (same bits as subtracting max)
            for lane in range(SUM_LANES):
                b.store(f32(0.0), b.gep(lanes, [i64(lane)], source_etype=F32))
            with for_range(b, 0, n, name="e") as k:
                e = mlas_exp(b, fma, b.fadd(x.load(b, at(oidx, k)), neg))
                y.store(b, at(oidx, k), e)
                slot = b.gep(lanes, [b.and_(k, i64(SUM_LANES - 1))], source_etype=F32)
                b.store(b.fadd(b.load(slot, typ=F32), e), slot)
            acc = [b.load(b.gep(lanes, [i64(j)], source_etype=F32), typ=F32)
                   for j in range(SUM_LANES)]
            half = [b.fadd(acc[j + 8], acc[j]) for j in range(8)]
            total = b.fadd(b.fadd(b.fadd(half[0], half[1]), b.fadd(half[2], half[3])),
                           b.fadd(b.fadd(half[4], half[5]), b.fadd(half[6], half[7])))
            inv = b.fdiv(f32(1.0), total)
            with for_range(b, 0, n, name="d") as k:
                y.store(b, at(oidx, k), b.fmul(y.load(b, at(oidx, k)), inv))
