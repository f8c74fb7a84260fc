"""8-bit table lookups: onnxruntime's QLinearSigmoid and QLinearLeakyRelu (and any other
8-bit -> 8-bit function folded into a 256-entry table at compile time).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import I8, loop_nest
from sqzc.backends.llvm.emit.common.qmath import const_table, table_value
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import LookupAttrs, OpKind


def _emit_lookup(ctx: KernelContext) -> None:
    a = ctx.op.attrs
    assert isinstance(a, LookupAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    bits = [v & 0xFF for v in a.table]  # i8 constants hold the entries' bit patterns
    g = const_table(ctx.module, "lut", I8, [v - 256 if v > 127 else v for v in bits])
    with loop_nest(b, y.shape) as idx:
        byte = b.zext(x.load(b, idx), ir.IntType(64))
        y.store(b, idx, table_value(b, g, byte, I8))


for _dt in ("uint8", "int8"):
    emits(OpKind.LOOKUP, _dt)(_emit_lookup)
