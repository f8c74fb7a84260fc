"""eliminate-concat: producers write straight into their slice of the concat buffer."""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import OpKind, Placement
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def eliminate_concat(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Place each Concat operand in its slice of the Concat's buffer (zero-copy concat).

    An operand is placed when its producer is a computed op, it is not a graph output
    and not already placed in another concat (a tensor has one home). Operands that are
    graph inputs, constants, graph outputs, repeated operands (``Concat(x, x)``) or
    already placed elsewhere keep a copy; the dump says ``copies(...)`` for those. Other
    consumers of a placed tensor read it through its strided view, so sharing is safe.
    """
    changed = False
    outputs = g.output_nodes()
    for nid in list(g.nodes()):
        op = g.op(nid)
        if op.kind is not OpKind.CONCAT:
            continue
        axis = op.attrs.axis  # type: ignore[attr-defined]
        start = 0
        for src in op.inputs:
            sop = g.op(src)
            extent = sop.out.shape[axis]
            placeable = (
                sop.kind not in (OpKind.INPUT, OpKind.CONST)
                and sop.into is None
                and src not in outputs
                and src != nid
                and sop.block == op.block
                and (not op.block or start % op.block == 0)
            )
            if placeable:
                g.set_op(src, dataclasses.replace(sop, into=Placement(nid, axis, start)))
                changed = True
            start += extent
    return changed
