"""QuantizeLinear, DequantizeLinear and requantization (8 bit -> 8 bit).

The arithmetic is onnxruntime's, from its oracles (``sqzc.ort.oracles``): the one
implementation of each, shared by constant folding, the other quantized ops' references
and the tests, so a folded constant is bit for bit what the kernel would have produced.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.ops.attrs import QPoolAttrs, QuantAttrs
from sqzc.ops.kinds import OpKind, TensorType
from sqzc.ops.opdef import EIGHT_BIT, OpDef, define, kernels
from sqzc.ort.oracles import mlas, onnx_ops

def quantize(x: np.ndarray, a: QuantAttrs) -> np.ndarray:
    """QuantizeLinear as onnxruntime computes it (``onnx_ops.quantize_linear``: a true
    division, clamp with NaN to the lowest code, round half to even, add the zero point);
    the one implementation, shared by constant folding and the tests). A 4-bit ``a``
    saturates to its range: clamping the 8-bit result again is the same as clamping once,
    as onnxruntime's int4 kernel does, since both bounds are integers."""
    y = onnx_ops.quantize_linear(x, np.asarray(a.scale, np.float32),
                                 np.asarray(a.zero_point, a.dtype), a.axis)
    return y if a.bits >= 8 else np.clip(y, *a.qrange).astype(y.dtype)


def dequantize(q: np.ndarray, a: QuantAttrs) -> np.ndarray:
    """DequantizeLinear: ``float32(int32(q) - zp) * scale`` (``onnx_ops.dequantize_linear``)."""
    return onnx_ops.dequantize_linear(q, np.asarray(a.scale, np.float32),
                                      np.asarray(a.zero_point, np.int64), a.axis)


def requantize(acc: np.ndarray, multiplier: np.ndarray, out: QuantAttrs) -> np.ndarray:
    """int32 accumulator -> 8 bit: onnxruntime's MlasRequantizeOutput
    (``mlas.requantize_output``: ``clamp(float32(acc) * m)``, rounded half to even, plus zp)."""
    return mlas.requantize_output(acc, multiplier, out.zero_point[0], out.dtype)


def _quantize_shape(a: QuantAttrs, ins: Sequence[TensorType]) -> TensorType:
    return TensorType(ins[0].shape, a.dtype)


def _dequantize_shape(a: QuantAttrs, ins: Sequence[TensorType]) -> TensorType:
    return TensorType(ins[0].shape, "float32")


def _requantize_shape(a: QPoolAttrs, ins: Sequence[TensorType]) -> TensorType:
    return TensorType(ins[0].shape, a.y.dtype)


define(OpDef(OpKind.QUANTIZE, QuantAttrs, arity=(1, 1), operands="float",
             shape=_quantize_shape, reference=lambda a, ins: quantize(ins[0], a),
             kernels=kernels("float")))
define(OpDef(OpKind.DEQUANTIZE, QuantAttrs, arity=(1, 1), operands="any",
             shape=_dequantize_shape, reference=lambda a, ins: dequantize(ins[0], a),
             kernels=kernels(EIGHT_BIT, ("plain", "blocked")) | kernels("int32")))
#: exactly Q(DQ(x)) with new parameters (onnxruntime's identity lookup table)
define(OpDef(OpKind.REQUANTIZE, QPoolAttrs, arity=(1, 1), operands="int8",
             shape=_requantize_shape,
             reference=lambda a, ins: quantize(dequantize(ins[0], a.x), a.y),
             kernels=kernels(EIGHT_BIT)))
