"""Activations (Relu, Clip, LeakyRelu) as standalone kernels, plain and channel-blocked,
and the scalar epilogue ``apply_activation`` the plain convolutions fuse (the vector one
is ``common.vec.vector_activation``). NaN passes through, as in onnxruntime.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import f32, loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import map_blocks
from sqzc.backends.llvm.emit.common.vec import vector_activation
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import UNARY_ACTIVATIONS, Activation, OpKind, activation_of


def apply_activation(b: ir.IRBuilder, v: ir.Value, act: Activation) -> ir.Value:
    """The epilogue ``act`` on float value ``v`` (NaN passes through like onnxruntime)."""
    if act.kind == "none":
        return v
    if act.kind == "relu":
        return b.select(b.fcmp_ordered("<", v, f32(0.0)), f32(0.0), v, name="relu")
    if act.kind == "clip":
        lo = b.select(b.fcmp_ordered("<", v, f32(act.lo)), f32(act.lo), v, name="clip.lo")
        return b.select(b.fcmp_ordered(">", lo, f32(act.hi)), f32(act.hi), lo, name="clip.hi")
    if act.kind == "leaky":
        scaled = b.fmul(v, f32(act.alpha), name="leaky.mul")
        return b.select(b.fcmp_ordered("<", v, f32(0.0)), scaled, v, name="leaky")
    raise AssertionError(act.kind)


def _unary(ctx: KernelContext) -> None:
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    act = activation_of(ctx.op.kind, ctx.op.attrs)
    with loop_nest(b, y.shape) as idx:
        y.store(b, idx, apply_activation(b, x.load(b, idx), act))


for _k in (OpKind.RELU, OpKind.CLIP, OpKind.LEAKY_RELU):
    emits(_k, "float")(_unary)


def _unary_blocked(ctx: KernelContext) -> None:
    act = activation_of(ctx.op.kind, ctx.op.attrs)
    lanes = ctx.out.shape[4]
    map_blocks(ctx, lambda v: vector_activation(ctx.b, v[0], act, lanes))


for _k in UNARY_ACTIVATIONS:
    emits(_k, "float", layout="blocked")(_unary_blocked)
