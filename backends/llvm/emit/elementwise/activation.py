"""The standalone activation op (``OpKind.ACTIVATION``), plain and channel-blocked: the
activation table's builder (``sqzc.ops.activations``) on scalars in a loop nest, or on
whole channel blocks. The conv epilogues apply the same builder through
``common.vecops.apply_activation``. NaN passes through, as in onnxruntime.
"""

from __future__ import annotations

from sqzc.backends.llvm.cg import loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import map_blocks
from sqzc.backends.llvm.emit.common.vecops import apply_activation, vec_ops
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import Activation, OpKind


@emits(OpKind.ACTIVATION, "float")
def emit_activation(ctx: KernelContext) -> None:
    """One element at a time, in a loop nest over the output."""
    act = ctx.op.attrs
    assert isinstance(act, Activation)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    ops = vec_ops(ctx, 1)
    with loop_nest(b, y.shape) as idx:
        y.store(b, idx, apply_activation(ops, x.load(b, idx), act))


@emits(OpKind.ACTIVATION, "float", layout="blocked")
def emit_activation_blocked(ctx: KernelContext) -> None:
    """One channel block (a vector) at a time."""
    act = ctx.op.attrs
    assert isinstance(act, Activation)
    ops = vec_ops(ctx, ctx.out.shape[4])
    map_blocks(ctx, lambda v: apply_activation(ops, v[0], act))
