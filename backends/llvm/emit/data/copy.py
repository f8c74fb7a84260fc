"""Data movement without arithmetic: Identity (and inference-mode Dropout), Transpose,
Slice and Reshape, and ``copy_view``, the copy between two views of one shape that Concat shares
(a ``memcpy`` when both are contiguous).
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import declare_intrinsic, i64, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.memory import contiguous_strides
from sqzc.ops import OpKind


def copy_view(b: ir.IRBuilder, x: Operand, y: Operand) -> None:
    """Copy a tensor between two views of the same shape."""
    if x.view.contiguous and y.view.contiguous:
        memcpy = declare_intrinsic(b.module, "llvm.memcpy.p0.p0.i64", ir.VoidType(),
                                   [ir.PointerType(), ir.PointerType(), ir.IntType(64),
                                    ir.IntType(1)])
        nbytes = x.view.size * (x.ty.width // 8 if isinstance(x.ty, ir.IntType) else
                                {"float32": 4, "float16": 2, "float64": 8}[x.dtype])
        b.call(memcpy, [y.ptr, x.ptr, i64(nbytes), ir.Constant(ir.IntType(1), 0)])
        return
    with loop_nest(b, y.shape, name="cp") as idx:
        y.store(b, idx, x.load(b, idx))


@emits(OpKind.IDENTITY, "any")
def emit_identity(ctx: KernelContext) -> None:
    """A copy (Identity, inference-mode Dropout)."""
    copy_view(ctx.b, ctx.ins[0], ctx.out)


@emits(OpKind.TRANSPOSE, "any")
def emit_transpose(ctx: KernelContext) -> None:
    """Output index i reads input axis perm[i]: a copy with permuted input strides."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    perm = ctx.op.attrs.perm  # type: ignore[attr-defined]
    strides = [x.strides[p] for p in perm]
    with loop_nest(b, y.shape) as idx:
        y.store(b, idx, x.load(b, idx, strides))


@emits(OpKind.SLICE, "any")
def emit_slice(ctx: KernelContext) -> None:
    """Output index i of each axis reads input index start + i * step; the innermost
    axis is a contiguous copy when its step is 1 (ShuffleNet's channel halves: whole
    planes)."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    a = ctx.op.attrs
    with loop_nest(b, y.shape, name="sl") as idx:
        src = [b.add(i64(s), b.mul(i, i64(st))) if (s, st) != (0, 1) else i
               for i, s, st in zip(idx, a.starts, a.steps)]  # type: ignore[attr-defined]
        y.store(b, idx, x.load(b, src))


@emits(OpKind.RESHAPE, "any")
def emit_reshape(ctx: KernelContext) -> None:
    """Same elements in row-major order under a new shape (a copy; views may be strided)."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    if x.view.contiguous and y.view.contiguous:
        copy_view(b, x, y)
        return
    out_dense = contiguous_strides(y.shape)
    in_dense = contiguous_strides(x.shape)
    with loop_nest(b, x.shape, name="rs") as idx:
        v = x.load(b, idx)
        lin = None
        for i, s in zip(idx, in_dense):
            term = b.mul(i, i64(s))
            lin = term if lin is None else b.add(lin, term)
        lin = lin if lin is not None else i64(0)
        out_idx = []
        for s in out_dense:
            out_idx.append(b.udiv(lin, i64(s)))
            lin = b.urem(lin, i64(s))
        y.store(b, out_idx, v)
