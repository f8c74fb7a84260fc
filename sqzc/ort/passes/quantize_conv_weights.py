"""quantize-conv-weights: float weights and biases of QDQ convs become int8 / int32, as
onnxruntime quantizes them.

Some QDQ models quantize a conv's activations but leave its weight or bias float
(``DQ(x) -> Conv(W, B) -> [Relu/Clip ->] Q``). onnxruntime's ``WeightBiasQuantization``
(basic level, before any group is fused) quantizes them first, so the conv it then fuses
(or runs on its float path) uses 8-bit weights: results differ from the float weights
by far more than a step. sqzc does the same, in the same arithmetic, and ``fold-qdq``
then treats the group like any other:

* a float32 weight constant becomes ``DQ(int8 W)`` with one scale and zero point from
  its range including 0: ``scale = (max - min) / 255`` (1 if max == min),
  ``zero_point = round_half_even(clamp(-128 - min / scale, -128, 127))``, the weight
  quantized by QuantizeLinear (onnxruntime's ``GetQuantizationParameter<int8_t>`` and
  constant folding);
* a float bias constant (1-D) becomes ``DQ(int32 round_half_even(B / (x_scale * w_scale)))``
  with that scale, per output channel when the weight's scales are.

onnxruntime's conditions, mirrored: the conv's input is a per-tensor DequantizeLinear;
its result reaches a QuantizeLinear through single-reader Relu/Clip steps only; the weight
is a DequantizeLinear or a float32 constant; a bias, if any, is a 1-D constant (any other
bias, e.g. a DequantizeLinear, leaves the conv alone); a dequantized weight with no bias
needs nothing; a per-channel weight needs one scale per bias element along axis 0.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import OpKind, QuantAttrs
from sqzc.ort.rules import ort_activation
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext
from sqzc.ops.defs.quantize import quantize


def _reaches_quantize(g: Graph, nid: str) -> bool:
    """``nid``'s result flows to a QuantizeLinear through single readers, with only Relu
    or Clip on the way (onnxruntime's ``IsNoBranchPathToQuantizeLinear``)."""
    while True:
        readers = g.consumers(nid)
        if len(readers) != 1:
            return False
        op = g.op(readers[0])
        if op.kind is OpKind.QUANTIZE:
            return True
        ort = ort_activation(op)
        if ort is None or not ort.redundant_before_q:
            return False
        nid = readers[0]


def weight_quant_params(w: np.ndarray) -> QuantAttrs:
    """onnxruntime's per-tensor int8 parameters for a float weight (its range, with 0)."""
    lo = min(np.float32(w.min()), np.float32(0.0))
    hi = max(np.float32(w.max()), np.float32(0.0))
    scale = np.float32(1.0) if hi == lo else np.float32((hi - lo) / np.float32(255.0))
    initial = np.float32(np.float32(-128.0) - np.float32(lo / scale))
    zp = int(np.rint(np.clip(initial, np.float32(-128.0), np.float32(127.0))))
    return QuantAttrs((float(scale),), (zp,), "int8", 0)


def _dq_params(g: Graph, nid: str) -> QuantAttrs | None:
    """The parameters of ``nid`` if it is a DequantizeLinear."""
    op = g.op(nid)
    if op.kind is OpKind.DEQUANTIZE:
        assert isinstance(op.attrs, QuantAttrs)
        return op.attrs
    return None


def _quantize_conv(g: Graph, conv: str) -> bool:
    op = g.op(conv)
    x = _dq_params(g, op.inputs[0])
    if x is None or not x.per_tensor or not _reaches_quantize(g, conv):
        return False
    w_id = op.inputs[1]
    wq = _dq_params(g, w_id)
    if wq is None and not (g.is_const(w_id) and g.op(w_id).out.dtype == "float32"
                           and np.all(np.isfinite(g.const_value(w_id)))):
        return False  # (a NaN or inf weight has no range to quantize to: left float)
    b_id = op.inputs[2] if len(op.inputs) > 2 else None
    if b_id is not None and (not g.is_const(b_id) or len(g.op(b_id).out.shape) != 1
                             or g.op(b_id).out.dtype != "float32"):
        return False
    if wq is not None:  # a dequantized weight: only a float bias to quantize
        if b_id is None or not wq.per_tensor and (
                wq.axis != 0 or len(wq.scale) != g.op(b_id).out.shape[0]):
            return False
    ins = list(op.inputs)
    if wq is None:
        w = g.const_value(w_id)
        wq = weight_quant_params(w)
        q = g.add_const(quantize(w, wq), f"{w_id}_q", g.op(w_id).origin)
        ins[1] = g.add_op(OpKind.DEQUANTIZE, wq, [q], f"{w_id}_dq", g.op(w_id).origin)
    if b_id is not None:
        scales = np.float32(x.scale[0]) * np.asarray(wq.scale, np.float32)
        b = g.const_value(b_id).astype(np.float32)
        with np.errstate(invalid="ignore", over="ignore"):  # out of range: as Cast does
            bq = np.rint((b / scales).astype(np.float32)).astype(np.int32)
        attrs = QuantAttrs(tuple(float(s) for s in scales), (0,) * len(scales), "int32", 0)
        q = g.add_const(bq, f"{b_id}_q", g.op(b_id).origin)
        ins[2] = g.add_op(OpKind.DEQUANTIZE, attrs, [q], f"{b_id}_dq", g.op(b_id).origin)
    g.set_op(conv, dataclasses.replace(op, inputs=tuple(ins)))
    return True


def quantize_conv_weights(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Quantize the float weight and bias of a QDQ conv to int8 / int32, as onnxruntime does."""
    changed = False
    for nid in list(g.nodes()):
        if g.op(nid).kind is OpKind.CONV:
            changed |= _quantize_conv(g, nid)
    if changed:
        g.remove_dead()
    return changed
