"""Softmax and log-softmax along one axis (max-subtracted, exp from libm via llvm.exp)."""

from __future__ import annotations

from sqzc.backends.llvm.cg import F32, declare_intrinsic, entry_alloca, f32, for_range, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, SoftmaxAttrs


@emits(OpKind.SOFTMAX, "float")
def emit_softmax(ctx: KernelContext) -> None:
    """Three passes per row: max, sum of exp (stored), normalize (or subtract log-sum)."""
    a = ctx.op.attrs
    assert isinstance(a, SoftmaxAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    exp = declare_intrinsic(ctx.module, "llvm.exp.f32", F32, [F32])
    log = declare_intrinsic(ctx.module, "llvm.log.f32", F32, [F32])
    outer = [d for i, d in enumerate(x.shape) if i != a.axis]
    n = x.shape[a.axis]
    mx_ptr = entry_alloca(b, F32, "max")
    sum_ptr = entry_alloca(b, F32, "sum")

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
        b.store(f32(0.0), sum_ptr)
        with for_range(b, 0, n, name="e") as k:
            shifted = b.fsub(x.load(b, at(oidx, k)), m)
            e = b.call(exp, [shifted])
            if not a.log:
                y.store(b, at(oidx, k), e)
            b.store(b.fadd(b.load(sum_ptr, typ=F32), e), sum_ptr)
        s = b.load(sum_ptr, typ=F32)
        if a.log:
            lse = b.fadd(m, b.call(log, [s]))
            with for_range(b, 0, n, name="l") as k:
                y.store(b, at(oidx, k), b.fsub(x.load(b, at(oidx, k)), lse))
        else:
            inv = b.fdiv(f32(1.0), s)
            with for_range(b, 0, n, name="d") as k:
                y.store(b, at(oidx, k), b.fmul(y.load(b, at(oidx, k)), inv))
