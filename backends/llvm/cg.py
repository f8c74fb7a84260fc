"""Codegen helpers over llvmlite's IRBuilder: types, loops, named values.

Emitters build kernels from these small checked pieces (in the spirit of numba's
``cgutils``) so every loop and block gets a readable name in ``--emit llvm``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from llvmlite import ir

I1 = ir.IntType(1)
I8 = ir.IntType(8)
I16 = ir.IntType(16)
I32 = ir.IntType(32)
I64 = ir.IntType(64)
F16 = ir.HalfType()
F32 = ir.FloatType()
F64 = ir.DoubleType()
PTR = ir.PointerType()
VOID = ir.VoidType()

#: LLVM element type per IR dtype.
LLVM_TYPE: dict[str, ir.Type] = {
    "float32": F32, "float16": F16, "float64": F64, "int64": I64, "int32": I32,
    "int8": I8, "uint8": I8, "bool": I8,
}
SIGNED = frozenset({"int64", "int32", "int8"})
#: The lowest finite float32 (-FLT_MAX): where onnxruntime's max pooling starts.
LOWEST_F32 = -3.4028234663852886e38


def i64(v: int) -> ir.Constant:
    """An i64 constant."""
    return ir.Constant(I64, int(v))


def f32(v: float) -> ir.Constant:
    """A float constant."""
    return ir.Constant(F32, float(v))


@contextmanager
def for_range(b: ir.IRBuilder, start: int | ir.Value, stop: int | ir.Value, step: int = 1,
              name: str = "i") -> Iterator[ir.Value]:
    """``for (i = start; i < stop; i += step)``; yields ``i`` (i64) inside the body.

    The trip count may be zero. The builder is left after the loop on exit.
    """
    start_v = i64(start) if isinstance(start, int) else start
    stop_v = i64(stop) if isinstance(stop, int) else stop
    pre = b.block
    head = b.append_basic_block(f"{name}.head")
    body = b.append_basic_block(f"{name}.body")
    end = b.append_basic_block(f"{name}.end")
    b.branch(head)
    b.position_at_end(head)
    idx = b.phi(I64, name=name)
    idx.add_incoming(start_v, pre)
    b.cbranch(b.icmp_signed("<", idx, stop_v, name=f"{name}.cond"), body, end)
    b.position_at_end(body)
    yield idx
    nxt = b.add(idx, i64(step), name=f"{name}.next", flags=["nsw"])
    idx.add_incoming(nxt, b.block)
    b.branch(head)
    b.position_at_end(end)


@contextmanager
def loop_nest(b: ir.IRBuilder, dims: Sequence[int], name: str = "d") -> Iterator[list[ir.Value]]:
    """Nested ``for_range`` over ``dims`` (outermost first); yields the index list.

    Dims of extent 1 get the constant 0 instead of a loop.
    """
    idx: list[ir.Value] = []
    stack = []
    for k, n in enumerate(dims):
        if n == 1:
            idx.append(i64(0))
            continue
        cm = for_range(b, 0, n, name=f"{name}{k}")
        idx.append(cm.__enter__())
        stack.append(cm)
    yield idx
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


def linear_index(b: ir.IRBuilder, idx: Sequence[ir.Value], strides: Sequence[int],
                 offset: int = 0) -> ir.Value:
    """``offset + sum(idx[i] * strides[i])`` as i64, skipping zero strides."""
    acc: ir.Value = i64(offset)
    for v, s in zip(idx, strides):
        if s == 0 or (isinstance(v, ir.Constant) and v.constant == 0):
            continue
        term = v if s == 1 else b.mul(v, i64(s), flags=["nsw"])
        acc = term if (isinstance(acc, ir.Constant) and acc.constant == 0) else \
            b.add(acc, term, flags=["nsw"])
    return acc


def declare_intrinsic(module: ir.Module, name: str, ret: ir.Type, args: Sequence[ir.Type]) -> ir.Function:
    """Declare (once) an LLVM intrinsic or libm function, including vector overloads."""
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, list(args)), name)


def contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return tuple(strides)


def entry_alloca(b: ir.IRBuilder, ty: ir.Type, name: str, count: int = 1) -> ir.Value:
    """A stack slot (``count`` elements of ``ty``) allocated once in the function's entry
    block, never inside a loop. Index arrays with one GEP index of ``ty``."""
    entry = b.function.entry_basic_block
    with b.goto_block(entry):
        if entry.instructions:
            b.position_before(entry.instructions[0])
        return b.alloca(ty, size=ir.Constant(I64, count) if count > 1 else None, name=name)


def opaque_ptr(b: ir.IRBuilder, ptr: ir.Value) -> ir.Value:
    """View an alloca as an opaque ``ptr``: llvmlite types allocas as typed pointers and
    then mis-types GEPs through them; LLVM folds this round trip away."""
    return b.inttoptr(b.ptrtoint(ptr, I64), PTR)
