"""``VecOps`` over LLVM values: the lane-wise float operations the activation table's
builders are written against (``sqzc.ops.activations``), for a scalar float
(``lanes == 1``) or ``<lanes x float>``.

llvmlite's float instructions are lane-polymorphic already; what depends on the width is
the constants (``f32`` or a splat) and the ``llvm.fma`` intrinsic's name. So one
activation builder serves the plain kernels (scalar), every vector width and the four
conv epilogues.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, declare_intrinsic, f32
from sqzc.backends.llvm.emit.common.vec import vconst, vtype
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target
from sqzc.ops import ACTIVATIONS, Activation


class LLVMVecOps:
    """``VecOps`` emitting LLVM through ``b``: ordered comparisons (false on NaN), and a
    fused ``llvm.fma`` where the target has FMA, else a multiply and an add (on baseline
    x86-64 ``llvm.fma`` is a libm call per lane)."""

    def __init__(self, b: ir.IRBuilder, module: ir.Module, target: Target, lanes: int) -> None:
        self.b, self.module, self.target, self.lanes = b, module, target, lanes

    def const(self, x: float) -> ir.Constant:
        return f32(x) if self.lanes == 1 else vconst(x, self.lanes)

    def add(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fadd(a, b)

    def sub(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fsub(a, b)

    def mul(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fmul(a, b)

    def div(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fdiv(a, b)

    def fma(self, a: ir.Value, b: ir.Value, c: ir.Value) -> ir.Value:
        if not self.target.has_fma:
            return self.b.fadd(self.b.fmul(a, b), c)
        t = F32 if self.lanes == 1 else vtype(self.lanes)
        name = "llvm.fma.f32" if self.lanes == 1 else f"llvm.fma.v{self.lanes}f32"
        return self.b.call(declare_intrinsic(self.module, name, t, [t, t, t]), [a, b, c])

    def lt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered("<", a, b)

    def gt(self, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.fcmp_ordered(">", a, b)

    def select(self, mask: ir.Value, a: ir.Value, b: ir.Value) -> ir.Value:
        return self.b.select(mask, a, b)


def vec_ops(ctx: KernelContext, lanes: int) -> LLVMVecOps:
    """``LLVMVecOps`` for the kernel being emitted, ``lanes`` wide."""
    return LLVMVecOps(ctx.b, ctx.module, ctx.target, lanes)


def apply_activation(ops: LLVMVecOps, v: ir.Value, act: Activation) -> ir.Value:
    """The activation ``act`` on ``v`` (a value of ``ops``' width); the identity for none."""
    return ACTIVATIONS[act.kind].build(ops, v, act) if act else v
