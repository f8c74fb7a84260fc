"""Cast: elementwise dtype conversion with ONNX semantics (float -> int truncates toward
zero), one loop nest over the output.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import LLVM_TYPE, SIGNED, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind


def convert(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """Convert a scalar between IR dtypes with ONNX Cast semantics (float->int truncates)."""
    st, dt = LLVM_TYPE[src], LLVM_TYPE[dst]
    sf, df = src.startswith("float"), dst.startswith("float")
    if src == dst:
        return v
    if sf and df:
        widths = {"float16": 16, "float32": 32, "float64": 64}
        return b.fpext(v, dt) if widths[dst] > widths[src] else b.fptrunc(v, dt)
    if sf:
        return b.fptosi(v, dt) if dst in SIGNED else b.fptoui(v, dt)
    if df:
        return b.sitofp(v, dt) if src in SIGNED else b.uitofp(v, dt)
    if dt.width > st.width:
        return b.sext(v, dt) if src in SIGNED else b.zext(v, dt)
    return b.trunc(v, dt) if dt.width < st.width else v


@emits(OpKind.CAST, "any")
def emit_cast(ctx: KernelContext) -> None:
    """Elementwise dtype conversion."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    with loop_nest(b, y.shape) as idx:
        y.store(b, idx, convert(b, x.load(b, idx), x.dtype, y.dtype))
