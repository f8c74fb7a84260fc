"""Matching QDQ groups: the DequantizeLinear feeding an op and the QuantizeLinear that
alone reads its result (shared by ``fold_qdq`` and ``fold_qdq_contrib``)."""

from __future__ import annotations

from collections.abc import Iterator

from sqzc.ir import Graph
from sqzc.ops import OpKind, OpNode, QuantAttrs


def dequantized(g: Graph, nid: str) -> tuple[str, QuantAttrs] | None:
    """(quantized source, params) if ``nid`` is a DequantizeLinear."""
    op = g.op(nid)
    if op.kind is not OpKind.DEQUANTIZE:
        return None
    assert isinstance(op.attrs, QuantAttrs)
    return op.inputs[0], op.attrs


def sole_quantize_reader(g: Graph, nid: str) -> tuple[str, QuantAttrs] | None:
    """The per-tensor 8-bit QuantizeLinear that is ``nid``'s only reader (``nid`` no graph
    output), with its params. A 4-bit one is no group's end: the integer kernels it would
    fold into saturate to 8 bits (and onnxruntime fuses no int4 activation group)."""
    users = g.consumers(nid)
    if len(users) != 1 or nid in g.output_nodes():
        return None
    q = g.op(users[0])
    if q.kind is not OpKind.QUANTIZE or not isinstance(q.attrs, QuantAttrs) \
            or not q.attrs.per_tensor or q.attrs.bits != 8:
        return None
    return users[0], q.attrs


def sole_reader_pairs(g: Graph, kind: OpKind) -> Iterator[tuple[str, OpNode, str, OpNode]]:
    """(node, op, source, source op) for each ``kind`` node whose first input it alone
    reads and that is no graph output: the shape of every fusion of a node into its
    producer. The graph may change between items: each is checked when it is reached."""
    for nid in list(g.nodes()):
        if nid not in g or g.op(nid).kind is not kind:
            continue
        op = g.op(nid)
        src = op.inputs[0]
        if len(g.consumers(src)) != 1 or src in g.output_nodes():
            continue
        yield nid, op, src, g.op(src)
