"""Constant quantization parameters of the ONNX quantized ops as ``QuantAttrs``: scale and
zero point inputs per tensor or per axis, and opset 21's blocked form (``block_size``),
validated against the tensor they quantize. Shared by the QuantizeLinear /
DequantizeLinear converters and the QLinear / QOperator ones (``quant_converters``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sqzc.ops import OpKind, QuantAttrs, ReshapeAttrs
from sqzc.ops.recipes import Dequantize, recipe_of

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext


def quant_params(cx: ImportContext, scale_i: int, zp_i: int, axis: int, rank: int,
                  default_dtype: str = "uint8", bits: int = 8) -> QuantAttrs:
    """Constant scale/zero point inputs as QuantAttrs (runtime scales are unsupported).
    ``bits`` = 4 for INT4/UINT4 tensors (their zero points arrive widened to 8 bits)."""
    scale = np.asarray(cx.const(scale_i), dtype=np.float32).reshape(-1)
    if cx.has_input(zp_i):
        zp_arr = np.asarray(cx.const(zp_i))
        dtype = zp_arr.dtype.name
        zp = zp_arr.reshape(-1)
        if cx.input_bits(zp_i) != bits:
            raise cx.error(f"zero point is {cx.input_bits(zp_i)}-bit but the quantized "
                           f"tensor is {bits}-bit")
    else:
        dtype, zp = default_dtype, np.zeros(1, np.int64)
    if dtype not in ("uint8", "int8", "int32"):
        raise cx.unsupported(f"zero point dtype {dtype}")
    if zp.size not in (1, scale.size):
        raise cx.error(f"{scale.size} scales but {zp.size} zero points")
    if zp.size == 1 and scale.size > 1:
        zp = np.repeat(zp, scale.size)
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise cx.error("quantization scales must be positive and finite")
    if np.asarray(cx.const(scale_i)).ndim > 1:
        raise cx.error(f"scale must be a scalar or 1-D, got shape "
                       f"{list(np.asarray(cx.const(scale_i)).shape)}")
    ax = cx.rank_axis(axis, max(rank, 1)) if scale.size > 1 else 1
    return QuantAttrs(tuple(float(v) for v in scale), tuple(int(v) for v in zp), dtype, ax,
                      bits)


def check_axis_length(cx: ImportContext, q: QuantAttrs, shape: tuple[int, ...]) -> None:
    """Per-axis parameters need one scale per index of the axis (onnxruntime refuses
    others at run time; the kernels would read past the scales)."""
    if not q.per_tensor and (q.axis >= len(shape) or shape[q.axis] != len(q.scale)):
        dim = shape[q.axis] if q.axis < len(shape) else "no"
        raise cx.error(f"{len(q.scale)} per-axis scales for axis {q.axis} of size {dim}")


def blocked_params(cx: ImportContext, shape: tuple[int, ...], dtype: str, bits: int
                    ) -> QuantAttrs:
    """Blocked quantization (opset 21 ``block_size`` > 0) as one scale and zero point per
    element, for the flattened tensor (axis 0): the scale (and zero point) tensor has the
    input's shape but ``ceil(dim / block_size)`` along ``axis``; element ``i`` along the
    axis uses block ``i // block_size``. Converters reshape around the op, so the
    per-axis kernels run it unchanged."""
    block = cx.int_attr("block_size", 0)
    axis = cx.rank_axis(cx.int_attr("axis", 1), max(len(shape), 1))
    scale = np.asarray(cx.const(1), dtype=np.float32)
    zp = np.asarray(cx.const(2)) if cx.has_input(2) else np.zeros(scale.shape, dtype)
    if cx.has_input(2) and cx.input_bits(2) != bits:
        raise cx.error(f"zero point is {cx.input_bits(2)}-bit but the quantized tensor is "
                       f"{bits}-bit")
    want = list(shape)
    if len(shape):
        want[axis] = -(-shape[axis] // block)
    for what, v in (("scale", scale), ("zero point", zp)):
        if list(v.shape) != want:
            raise cx.error(f"blocked {what} has shape {list(v.shape)}; block_size {block} "
                           f"on axis {axis} of {list(shape)} needs {want}")
    if zp.dtype.name not in ("uint8", "int8"):
        raise cx.unsupported(f"zero point dtype {zp.dtype.name}")
    if not np.all(np.isfinite(scale)) or np.any(scale <= 0):
        raise cx.error("quantization scales must be positive and finite")
    full_s = np.repeat(scale, block, axis=axis).take(range(shape[axis]), axis=axis)
    full_z = np.repeat(zp, block, axis=axis).take(range(shape[axis]), axis=axis)
    return QuantAttrs(tuple(float(v) for v in full_s.reshape(-1)),
                      tuple(int(v) for v in full_z.reshape(-1)), zp.dtype.name, 0, bits)


def elementwise(cx: ImportContext, kind: OpKind, q: QuantAttrs, x: str) -> str:
    """``kind`` (Q or DQ) with one parameter pair per element: on the flattened tensor,
    per axis 0, reshaped back."""
    shape = cx.type_of(x).shape
    name = cx.node.output[0]  # type: ignore[union-attr]
    flat = cx.emit(OpKind.RESHAPE, ReshapeAttrs((len(q.scale),)), [x], name=f"{name}_flat")
    y = cx.emit(kind, q, [flat], name=f"{name}_blocked")
    return cx.emit(OpKind.RESHAPE, ReshapeAttrs(shape), [y])


def block_size_of(cx: ImportContext, shape: tuple[int, ...]) -> int:
    """The validated ``block_size`` attribute (0: not blocked)."""
    block = cx.int_attr("block_size", 0)
    if block < 0:
        raise cx.error(f"block_size must be >= 0, got {block}")
    if block and not shape:
        raise cx.error("blocked quantization needs a tensor of rank >= 1")
    return block


def blocked_weights(cx: ImportContext, x: str) -> str:
    """A blocked DequantizeLinear of constant codes (validated by ``blocked_params``),
    evaluated here into a float32 constant whose recipe keeps the codes and the blocked
    scales (``Dequantize`` with ``block``): a compressed library stores the codes and
    dequantizes them at load, as it would a per-axis one (fold-constants)."""
    assert cx.node is not None
    axis = cx.rank_axis(cx.int_attr("axis", 1), len(cx.type_of(x).shape))
    codes = cx.graph.const_value(x)
    scale = np.asarray(cx.const(1), np.float32)
    zp = np.asarray(cx.const(2)) if cx.has_input(2) else np.zeros(scale.shape, codes.dtype)
    step = Dequantize(tuple(float(v) for v in scale.reshape(-1)),
                      tuple(int(v) for v in zp.reshape(-1)), axis, cx.int_attr("block_size", 0))
    return cx.graph.add_const(step.apply(codes), cx.node.output[0], cx.origin,
                              recipe_of(codes, step))
