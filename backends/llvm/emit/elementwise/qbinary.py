"""QLinearAdd and QLinearMul on 8-bit tensors (broadcasting loop nests), each float
operation onnxruntime's in order and precision (``sqzc.ort.oracles.contrib_ops``):
QLinearAdd uses fused multiply-adds (``llvm.fma``, exact on any target), QLinearMul a
separate multiply and add; both convert with ``cvtps2dq`` semantics (``common/cvt.py``).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, declare_intrinsic, f32, loop_nest
from sqzc.backends.llvm.emit.common.cvt import as_float, cvt_saturate
from sqzc.backends.llvm.emit.common.qmath import to_i32
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, QBinaryAttrs
from sqzc.ops.defs.elementwise import qadd_constants, qmul_ratio


def _emit_qadd(ctx: KernelContext) -> None:
    """``sat(cvt(fma(x0, rX, fma(x1, rY, fixed))))`` with input 0 as onnxruntime's X."""
    a = ctx.op.attrs
    assert isinstance(a, QBinaryAttrs)
    b, (x0, x1), y = ctx.b, ctx.ins, ctx.out
    rx, ry, fixed = (f32(float(v)) for v in qadd_constants(a))
    fma = declare_intrinsic(ctx.module, "llvm.fma.f32", F32, [F32, F32, F32])
    s0, s1 = x0.broadcast_strides(y.shape), x1.broadcast_strides(y.shape)
    with loop_nest(b, y.shape) as idx:
        xv = as_float(b, x0.load(b, idx, s0), x0.dtype)
        yv = as_float(b, x1.load(b, idx, s1), x1.dtype)
        t = b.call(fma, [xv, rx, b.call(fma, [yv, ry, fixed])])
        y.store(b, idx, cvt_saturate(b, t, y.dtype))


def _emit_qmul(ctx: KernelContext) -> None:
    """``sat(cvt(f32(f32(f32(p) * ratio) + zC)))``, ``p = (a - zA) * (b - zB)`` in int32."""
    a = ctx.op.attrs
    assert isinstance(a, QBinaryAttrs)
    b, (x0, x1), y = ctx.b, ctx.ins, ctx.out
    ratio, zc = f32(float(qmul_ratio(a))), f32(float(a.y.zero_point[0]))
    za, zb = ir.Constant(I32, a.a.zero_point[0]), ir.Constant(I32, a.b.zero_point[0])
    s0, s1 = x0.broadcast_strides(y.shape), x1.broadcast_strides(y.shape)
    with loop_nest(b, y.shape) as idx:
        p = b.mul(b.sub(to_i32(b, x0.load(b, idx, s0), x0.dtype), za),
                  b.sub(to_i32(b, x1.load(b, idx, s1), x1.dtype), zb))
        t = b.fadd(b.fmul(b.sitofp(p, F32), ratio), zc)
        y.store(b, idx, cvt_saturate(b, t, y.dtype))


for _dt in ("uint8", "int8"):
    emits(OpKind.QADD, _dt)(_emit_qadd)
    emits(OpKind.QMUL, _dt)(_emit_qmul)
