"""Binary arithmetic (Add, Sub, Mul, Div): a broadcasting loop nest on plain tensors (LLVM
vectorizes its unit-stride innermost loop), and whole channel blocks for same-shape
NCHW[b]c operands.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import SIGNED, loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import map_blocks
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import BINARY, OpKind


def _binary_value(b: ir.IRBuilder, kind: OpKind, lhs: ir.Value, rhs: ir.Value,
                  is_float: bool, signed: bool) -> ir.Value:
    if is_float:
        fn = {OpKind.ADD: b.fadd, OpKind.SUB: b.fsub, OpKind.MUL: b.fmul, OpKind.DIV: b.fdiv}
        return fn[kind](lhs, rhs)
    if kind is OpKind.DIV:
        return b.sdiv(lhs, rhs) if signed else b.udiv(lhs, rhs)
    fn = {OpKind.ADD: b.add, OpKind.SUB: b.sub, OpKind.MUL: b.mul}
    return fn[kind](lhs, rhs)


def _binary(ctx: KernelContext) -> None:
    b, (x0, x1), y = ctx.b, ctx.ins, ctx.out
    s0, s1 = x0.broadcast_strides(y.shape), x1.broadcast_strides(y.shape)
    is_float = y.dtype.startswith("float")
    with loop_nest(b, y.shape) as idx:
        v = _binary_value(b, ctx.op.kind, x0.load(b, idx, s0), x1.load(b, idx, s1), is_float,
                          y.dtype in SIGNED)
        y.store(b, idx, v)


for _k in (OpKind.ADD, OpKind.SUB, OpKind.MUL, OpKind.DIV):
    emits(_k, "float")(_binary)


def _binary_blocked(ctx: KernelContext) -> None:
    map_blocks(ctx, lambda v: _binary_value(ctx.b, ctx.op.kind, v[0], v[1], True, False))


for _k in BINARY:
    emits(_k, "float", layout="blocked")(_binary_blocked)
