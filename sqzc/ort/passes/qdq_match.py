"""Matching QDQ groups: the DequantizeLinear feeding an op and the QuantizeLinear that
alone reads its result (shared by ``fold_qdq`` and ``fold_qdq_contrib``)."""

from __future__ import annotations

from sqzc.ir import Graph
from sqzc.ops import OpKind, QuantAttrs


def dequantized(g: Graph, nid: str) -> tuple[str, QuantAttrs] | None:
    """(quantized source, params) if ``nid`` is a DequantizeLinear."""
    op = g.op(nid)
    if op.kind is not OpKind.DEQUANTIZE:
        return None
    assert isinstance(op.attrs, QuantAttrs)
    return op.inputs[0], op.attrs


def sole_quantize_reader(g: Graph, nid: str) -> tuple[str, QuantAttrs] | None:
    """The per-tensor QuantizeLinear that is ``nid``'s only reader (``nid`` no graph
    output), with its params."""
    users = g.consumers(nid)
    if len(users) != 1 or nid in g.output_nodes():
        return None
    q = g.op(users[0])
    if q.kind is not OpKind.QUANTIZE or not isinstance(q.attrs, QuantAttrs) \
            or not q.attrs.per_tensor:
        return None
    return users[0], q.attrs
