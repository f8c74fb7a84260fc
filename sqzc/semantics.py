"""Shape rules and numpy reference semantics, one pair per ``OpKind``.

The same reference functions serve constant folding (so a folded graph computes exactly
what the unfolded one would) and the tests (cross-checked against onnxruntime and
``onnx.reference``). Shape rules raise ``ModelError`` with the offending shapes; callers
add the node name.

The op semantics live in two modules, :mod:`sqzc.float_semantics` (ops that are not
quantized) and :mod:`sqzc.quant_semantics` (int8 ops, bit-exact with onnxruntime); this
module is the ``OpKind`` dispatch over both: ``SHAPE_RULES``/``infer_type`` for types,
``reference`` for values, and ``macs`` for cost accounting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.float_semantics import (
    FLOAT_SHAPE_RULES,
    ShapeRule,
    _int_div,
    ref_conv,
    ref_pool,
    ref_softmax,
    unpack_conv,
)
from sqzc.ops import (
    AxisAttrs,
    CastAttrs,
    ClipAttrs,
    ConstAttrs,
    ConvAttrs,
    LeakyReluAttrs,
    OpKind,
    PoolAttrs,
    QConvAttrs,
    QPoolAttrs,
    QuantAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SoftmaxAttrs,
    TensorType,
    TransposeAttrs,
)
from sqzc.quant_semantics import (
    QUANT_REFERENCES,
    QUANT_SHAPE_RULES,
    dequantize,
    quantize,
    ref_qconv,
    ref_qglobal_avgpool,
)

#: kind -> shape rule, for every ``OpKind``.
SHAPE_RULES: dict[OpKind, ShapeRule] = {**FLOAT_SHAPE_RULES, **QUANT_SHAPE_RULES}


def infer_type(kind: OpKind, attrs: object, ins: Sequence[TensorType]) -> TensorType:
    """Output type of ``kind`` applied to inputs of types ``ins``."""
    return SHAPE_RULES[kind](attrs, ins)


def reference(kind: OpKind, attrs: object, ins: Sequence[np.ndarray]) -> np.ndarray:
    """Evaluate one op on numpy arrays: the meaning of the IR, used for folding and tests."""
    if kind is OpKind.CONST:
        assert isinstance(attrs, ConstAttrs)
        return attrs.value
    if kind is OpKind.CONV:
        assert isinstance(attrs, ConvAttrs)
        if attrs.packed:
            return ref_conv(*unpack_conv(attrs, ins))
        return ref_conv(attrs, ins[0], ins[1], ins[2] if len(ins) > 2 else None)
    if kind is OpKind.RELU:
        return np.maximum(ins[0], np.zeros((), ins[0].dtype))
    if kind is OpKind.CLIP:
        assert isinstance(attrs, ClipAttrs)
        x = ins[0]
        return np.minimum(np.maximum(x, np.array(attrs.lo).astype(x.dtype)),
                          np.array(attrs.hi).astype(x.dtype))
    if kind is OpKind.LEAKY_RELU:
        assert isinstance(attrs, LeakyReluAttrs)
        x = ins[0]
        return np.where(x >= 0, x, x * x.dtype.type(attrs.alpha)).astype(x.dtype)
    if kind in (OpKind.MAXPOOL, OpKind.AVGPOOL):
        assert isinstance(attrs, PoolAttrs)
        return ref_pool(kind, attrs, ins[0])
    if kind is OpKind.REDUCE:
        assert isinstance(attrs, ReduceAttrs)
        fn = np.mean if attrs.mode == "mean" else np.max
        r = fn(ins[0], axis=attrs.axes, keepdims=attrs.keepdims).astype(ins[0].dtype)
        if attrs.lowest_finite:
            r = np.maximum(r, np.finfo(r.dtype).min)
        return r
    if kind is OpKind.CONCAT:
        assert isinstance(attrs, AxisAttrs)
        return np.concatenate(list(ins), axis=attrs.axis)
    if kind is OpKind.SOFTMAX:
        assert isinstance(attrs, SoftmaxAttrs)
        return ref_softmax(attrs, ins[0])
    if kind is OpKind.RESHAPE:
        assert isinstance(attrs, ReshapeAttrs)
        return ins[0].reshape(attrs.shape)
    if kind is OpKind.TRANSPOSE:
        assert isinstance(attrs, TransposeAttrs)
        return np.ascontiguousarray(ins[0].transpose(attrs.perm))
    if kind is OpKind.ADD:
        return ins[0] + ins[1]
    if kind is OpKind.SUB:
        return ins[0] - ins[1]
    if kind is OpKind.MUL:
        return ins[0] * ins[1]
    if kind is OpKind.DIV:
        return _int_div(ins[0], ins[1])
    if kind is OpKind.MATMUL:
        return np.matmul(ins[0], ins[1])
    if kind is OpKind.CAST:
        assert isinstance(attrs, CastAttrs)
        return ins[0].astype(attrs.to)
    if kind in (OpKind.IDENTITY, OpKind.REORDER):
        return ins[0].copy()
    if kind is OpKind.QUANTIZE:
        assert isinstance(attrs, QuantAttrs)
        return quantize(ins[0], attrs)
    if kind is OpKind.DEQUANTIZE:
        assert isinstance(attrs, QuantAttrs)
        return dequantize(ins[0], attrs)
    if kind is OpKind.QCONV:
        assert isinstance(attrs, QConvAttrs)
        return ref_qconv(attrs, ins[0], ins[1], ins[2] if len(ins) > 2 else None)
    if kind is OpKind.QGLOBAL_AVGPOOL:
        assert isinstance(attrs, QPoolAttrs)
        return ref_qglobal_avgpool(attrs, ins[0])
    if kind is OpKind.REQUANTIZE:
        assert isinstance(attrs, QPoolAttrs)
        return quantize(dequantize(ins[0], attrs.x), attrs.y)
    if kind in QUANT_REFERENCES:
        return QUANT_REFERENCES[kind](attrs, ins)
    raise ModelError(f"no reference semantics for {kind.value}")


def macs(kind: OpKind, attrs: object, ins: Sequence[TensorType], out: TensorType) -> int:
    """Multiply-accumulates an op performs (convolutions and matrix products; else 0)."""
    if kind is OpKind.CONV:
        assert isinstance(attrs, ConvAttrs)
        n, oc, oh, ow = out.shape
        return n * oc * oh * ow * (ins[0].shape[1] // attrs.group) * attrs.kernel[0] * \
            attrs.kernel[1]
    if kind is OpKind.MATMUL:
        return out.size * ins[0].shape[-1]
    if kind is OpKind.QCONV:
        assert isinstance(attrs, QConvAttrs)
        c = attrs.conv
        n, oc, oh, ow = out.shape
        return n * oc * oh * ow * (ins[0].shape[1] // c.group) * c.kernel[0] * c.kernel[1]
    return 0
