"""drop-activation-before-quantize: a Relu or Clip that a QuantizeLinear makes redundant goes.

onnxruntime removes ``Relu -> QuantizeLinear``'s Relu when the Q's zero point is its
type's lowest value (``ReluQuantFusion``), and ``Clip -> QuantizeLinear``'s Clip when
the Clip's bounds enclose every value the Q does not saturate (``ClipQuantFusion``),
before its QDQ transformers choose which groups to fuse. The values do not change (the
Q saturates where the activation would have clipped), but the group does: ``DQ -> Add ->
Relu -> Q`` becomes ``DQ -> Add -> Q``, which onnxruntime runs as a QLinearAdd. Running
this before ``fold-qdq`` makes sqzc fuse the same groups (before it, such Add, Mul,
pool, LeakyRelu, MatMul, Gemm and Clip-ended conv groups stayed float: a step apart in a
few elements).

onnxruntime's conditions, mirrored: the activation's only reader is a per-tensor 8-bit
QuantizeLinear and it is no graph output; for Clip, ``lo <= MinUpper`` and ``MaxLower <=
hi`` with ``QuantizeDomain``'s float32 bounds of the values that round to the type's
lowest and highest codes (``sqzc.ort.rules``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import INT_RANGE, Activation, OpKind, QuantAttrs
from sqzc.ort.rules import ort_activation
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def quantize_domain(q: QuantAttrs) -> tuple[float, float]:
    """onnxruntime's ``QuantizeDomain<T>::MinUpper`` / ``MaxLower``: the largest input
    that still quantizes to the lowest code and the smallest that reaches the highest,
    as float32. onnxruntime moves a bound one ulp toward its code when the biased code is
    odd (round half to even), testing ``biased % 2 == 1`` in C++: only the upper bound's
    biased code (>= 0) can pass that test; the lower one's is <= 0."""
    lo, hi = INT_RANGE[q.dtype]
    scale, zp = np.float32(q.scale[0]), q.zero_point[0]
    low = np.float32(lo - zp) + np.float32(0.5)
    high_biased = hi - zp
    high = np.float32(high_biased) - np.float32(0.5)
    if high_biased % 2 == 1:
        high = np.nextafter(high, np.float32(high_biased))
    return float(np.float32(low * scale)), float(np.float32(high * scale))


def _redundant(g: Graph, nid: str) -> bool:
    """Whether onnxruntime removes activation ``nid`` in front of its QuantizeLinear."""
    op = g.op(nid)
    readers = g.consumers(nid)
    if len(readers) != 1 or nid in g.output_nodes():
        return False
    q = g.op(readers[0])
    if q.kind is not OpKind.QUANTIZE or not isinstance(q.attrs, QuantAttrs) \
            or not q.attrs.per_tensor or q.attrs.dtype not in ("uint8", "int8") \
            or q.attrs.bits != 8:  # int4 groups stay literal (onnxruntime fuses none)
        return False
    assert isinstance(op.attrs, Activation)
    if op.attrs.kind == "relu":
        return q.attrs.zero_point[0] == INT_RANGE[q.attrs.dtype][0]
    assert op.attrs.kind == "clip", op.attrs
    low, high = quantize_domain(q.attrs)
    return op.attrs.param("lo") <= low and high <= op.attrs.param("hi")


def drop_activation_before_quantize(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Remove a Relu / Clip that its QuantizeLinear makes redundant (as onnxruntime does).

    Values are unchanged; ``fold-qdq`` then sees the op -> Q groups onnxruntime fuses.
    """
    changed, progress = False, True
    while progress:  # Clip -> Relu -> Q: the Clip's turn comes after the Relu's
        progress = False
        for nid in list(g.nodes()):
            op = g.op(nid)
            ort = ort_activation(op)
            if ort is None or not ort.redundant_before_q or not _redundant(g, nid):
                continue
            q = g.consumers(nid)[0]
            q_op = g.op(q)
            ins = tuple(op.inputs[0] if i == nid else i for i in q_op.inputs)
            g.set_op(q, dataclasses.replace(q_op, inputs=ins, origin=op.origin + q_op.origin))
            g.remove(nid)
            progress = changed = True
    return changed
