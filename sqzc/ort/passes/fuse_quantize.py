"""fuse-conv-quantize: the QuantizeLinear after an MLAS-order conv becomes its epilogue."""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import ConvAttrs, OpKind, QuantAttrs
from sqzc.ort.passes.qdq_match import sole_reader_pairs
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def fuse_conv_quantize(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Quantize a float-path QDQ conv's result in registers and store 8-bit values.

    fold-qdq leaves the QDQ convs onnxruntime runs in float as DQ -> Conv -> Q; the conv
    then wrote a float tensor that QuantizeLinear read back. With the Q as the conv's
    epilogue (the same ``saturate(rint(v / scale) + zp)`` per element, after bias and
    activation) the float tensor and one pass over it disappear; results are unchanged.
    Preconditions: per-tensor Q, the only reader of the conv, the conv not a graph
    output. Runs after unsign-activations, so a shifted (uint8) Q is fused as such.
    """
    changed = False
    for nid, q, src, conv in sole_reader_pairs(g, OpKind.QUANTIZE):
        a = conv.attrs
        if conv.kind is not OpKind.CONV or not isinstance(a, ConvAttrs) or not a.ort_order \
                or a.quantize is not None:
            continue
        assert isinstance(q.attrs, QuantAttrs)
        if not q.attrs.per_tensor:
            continue
        attrs = dataclasses.replace(a, quantize=q.attrs)
        g.tensor_names.pop(src, None)  # the conv's result is no longer that float tensor
        g.set_op(src, dataclasses.replace(conv, attrs=attrs, out=q.out,
                                          origin=conv.origin + q.origin))
        g.replace_uses(nid, src)
        g.remove(nid)
        changed = True
    return changed
