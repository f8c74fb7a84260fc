"""Vector helpers shared by the vectorized kernels of every family: vector types,
splat constants with a short spelling, broadcasts and fused multiply-add (the activation
epilogue is ``vecops.apply_activation``)."""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, declare_intrinsic
from sqzc.backends.llvm.target import Target


def vtype(lanes: int) -> ir.VectorType:
    """``<lanes x float>``."""
    return ir.VectorType(F32, lanes)


def vconst(value: float, lanes: int) -> ir.Constant:
    """A splat float vector constant."""
    return vsplat_const(F32, value, lanes)


class _Spelled(ir.Constant):
    """A vector constant with a short spelling (``splat (T v)``, ``undef``,
    ``zeroinitializer``). llvmlite prints every lane of a vector constant; the kernels use
    thousands of them, and the long text cost seconds of printing and parsing per model.
    The lane values stay in ``constant`` for llvmlite's own checks (shuffle masks)."""

    def __init__(self, vt: ir.VectorType, lanes_value: object, text: str) -> None:
        super().__init__(vt, lanes_value)
        self._text = text

    def _get_reference(self) -> str:
        return self._text


def vsplat_const(elem: ir.Type, value: float | int, lanes: int) -> ir.Constant:
    """``<lanes x elem>`` with every lane ``value``."""
    return _Spelled(ir.VectorType(elem, lanes), [ir.Constant(elem, value)] * lanes,
                    f"splat ({ir.Constant(elem, value)})")


def splat(b: ir.IRBuilder, scalar: ir.Value, lanes: int) -> ir.Value:
    """Broadcast a scalar to every lane (LLVM selects vbroadcastss/vpbroadcastd, or folds a
    loaded scalar into the user's ``{1toN}`` memory operand)."""
    vt = ir.VectorType(scalar.type, lanes)
    undef = _Spelled(vt, ir.Undefined, "undef")
    one = b.insert_element(undef, scalar, ir.Constant(I32, 0))
    mask_t = ir.VectorType(I32, lanes)
    return b.shuffle_vector(one, undef, _Spelled(mask_t, [ir.Constant(I32, 0)] * lanes,
                                                 "zeroinitializer"))


MulAdd = Callable[[ir.IRBuilder, ir.Value, ir.Value, ir.Value], ir.Value]


def mul_add(module: ir.Module, target: Target, lanes: int) -> MulAdd:
    """``a * b + c`` on ``<lanes x float>``: one fused ``llvm.fma`` where the target has
    the instruction, a multiply and an add where it does not (baseline x86-64, where
    ``llvm.fma`` is a per-lane libm call: 100x slower kernels)."""
    vt = vtype(lanes)
    if target.has_fma:
        fma = declare_intrinsic(module, f"llvm.fma.v{lanes}f32", vt, [vt, vt, vt])
        return lambda b, x, y, acc: b.call(fma, [x, y, acc])
    return lambda b, x, y, acc: b.fadd(b.fmul(x, y), acc)
