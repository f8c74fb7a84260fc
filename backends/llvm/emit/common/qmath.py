"""Quantization arithmetic shared by the integer emitters: constant tables, widening, and
ONNX QuantizeLinear's saturating round (scalar and vector) as onnxruntime computes it.

Every float operation mirrors onnxruntime's CPU kernels in order and precision (see
``sqzc.ops.defs.quantize``): requantization is ``float32(acc) * multiplier``, clamped to the
zero-point-shifted range, rounded half to even (``llvm.rint``), plus the zero point. One
definition here serves QuantizeLinear, the integer convolutions, global pooling,
QLinearMatMul and the MLAS-order float conv's fused epilogue, so they cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import F32, I32, SIGNED, declare_intrinsic, f32, i64
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import QuantAttrs, quant_range


def const_table(module: ir.Module, name: str, ty: ir.Type, values: list) -> ir.GlobalVariable:
    """An internal constant array of ``values`` (per-channel multipliers, zero points)."""
    arr_t = ir.ArrayType(ty, len(values))
    g = ir.GlobalVariable(module, arr_t, name=module.get_unique_name(name))
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(arr_t, [ir.Constant(ty, v) for v in values])
    return g


def table_value(b: ir.IRBuilder, g: ir.GlobalVariable, idx: ir.Value, ty: ir.Type) -> ir.Value:
    """Element ``idx`` of a ``const_table``."""
    return b.load(b.gep(g, [i64(0), idx], source_etype=g.value_type), typ=ty)


def to_i32(b: ir.IRBuilder, v: ir.Value, dtype: str) -> ir.Value:
    """Widen an 8/32-bit value of IR dtype ``dtype`` to i32."""
    if dtype == "int32":
        return v
    return b.sext(v, I32) if dtype in SIGNED else b.zext(v, I32)


def saturate_round(b: ir.IRBuilder, v: ir.Value, zp: ir.Value | int, dtype: str,
                   bits: int = 8) -> ir.Value:
    """``clamp(v, lo - zp, hi - zp)`` rounded half to even, plus ``zp``, as an 8-bit value
    (``bits`` = 4: an INT4/UINT4 value in its 8-bit container, ``quant_range``)."""
    lo, hi = quant_range(dtype, bits)
    zpf = f32(float(zp)) if isinstance(zp, int) else zp
    rint = declare_intrinsic(b.module, "llvm.rint.f32", F32, [F32])
    low = b.fsub(f32(float(lo)), zpf)
    high = b.fsub(f32(float(hi)), zpf)
    v = b.select(b.fcmp_unordered("<", v, low), low, v)  # NaN -> lowest, as onnxruntime
    v = b.select(b.fcmp_ordered(">", v, high), high, v)
    r = b.fadd(b.call(rint, [v]), zpf)
    return b.trunc(b.fptosi(r, I32), ir.IntType(8))


def quantize_vector(b: ir.IRBuilder, v: ir.Value, q: QuantAttrs, lanes: int) -> ir.Value:
    """``saturate_round(v / scale, zp)`` on ``<lanes x float>`` (per-tensor ``q``): the
    QuantizeLinear of a float-path conv's epilogue, lane for lane the scalar kernel's."""
    lo, hi = q.qrange
    zp = float(q.zero_point[0])
    vt = ir.VectorType(F32, lanes)

    def splat_f(x: float) -> ir.Constant:
        return ir.Constant(vt, [f32(x)] * lanes)

    rint = declare_intrinsic(b.module, f"llvm.rint.v{lanes}f32", vt, [vt])
    v = b.fdiv(v, splat_f(q.scale[0]))
    low, high = splat_f(lo - zp), splat_f(hi - zp)
    v = b.select(b.fcmp_unordered("<", v, low), low, v)  # NaN -> lowest, as onnxruntime
    v = b.select(b.fcmp_ordered(">", v, high), high, v)
    r = b.fadd(b.call(rint, [v]), splat_f(zp))
    return b.trunc(b.fptosi(r, ir.VectorType(I32, lanes)), ir.VectorType(ir.IntType(8), lanes))


def requantize_value(b: ir.IRBuilder, q: ir.Value, x: QuantAttrs, y: QuantAttrs) -> ir.Value:
    """Exactly Q(DQ(q)): ``float32(int32(q) - zp_x) * scale_x``, then quantize to ``y``."""
    dq = b.fmul(b.sitofp(b.sub(to_i32(b, q, x.dtype), ir.Constant(I32, x.zero_point[0])), F32),
                f32(x.scale[0]))
    return saturate_round(b, b.fdiv(dq, f32(y.scale[0])), y.zero_point[0], y.dtype,
                          y.bits)


def per_index(ctx: KernelContext, values: tuple, ty: ir.Type, name: str
              ) -> Callable[[ir.Value], ir.Value]:
    """``values[i]`` as a function of an i64 index: a constant when all values are equal,
    else a load from a constant global table."""
    const = [float(v) if ty == F32 else int(v) for v in values]
    if len(set(const)) == 1:
        c = ir.Constant(ty, const[0])
        return lambda _i: c
    g = const_table(ctx.module, name, ty, const)
    return lambda i: table_value(ctx.b, g, i, ty)
