"""Elementwise kernels: activations, broadcasting binary ops, casts and data movement.

All of them are one loop nest over the output shape that loads each operand through its
(broadcast) strides; LLVM vectorizes the innermost loop when it is unit-stride.
"""

from __future__ import annotations

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, SIGNED, declare_intrinsic, f32, i64, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.memory import contiguous_strides
from sqzc.ops import Activation, OpKind, activation_of


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


def convert(b: ir.IRBuilder, v: ir.Value, src: str, dst: str) -> ir.Value:
    """Convert a scalar between IR dtypes with ONNX Cast semantics (float->int truncates)."""
    from sqzc.backends.llvm.cg import LLVM_TYPE

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


def copy_view(b: ir.IRBuilder, x: "object", y: "object") -> None:
    """Copy a tensor between two views of the same shape."""
    from sqzc.backends.llvm.kernel import Operand

    assert isinstance(x, Operand) and isinstance(y, Operand)
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


__all__ = ["F32", "activation_of", "apply_activation", "convert", "copy_view"]
