"""canonicalize: drop Identity/Dropout copies, dead code, and normalize Clip forms."""

from __future__ import annotations

import dataclasses
import math

from sqzc.ir import Graph
from sqzc.ops import Activation, OpKind, make_activation
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def canonicalize(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Remove Identity/Dropout and dead nodes; Clip(0, inf) becomes Relu.

    Identity nodes that give a graph output its own buffer (an output that would
    otherwise be a graph input, a constant, or the same tensor as another output) stay:
    the ABI needs one producer per output buffer. Clip(0, 6) stays a Clip; it prints and
    fuses as ``relu6``.
    """
    changed = False
    out_nodes = [o.node for o in g.outputs]
    for nid in list(g.nodes()):
        op = g.op(nid)
        if op.kind is OpKind.IDENTITY:
            src = op.inputs[0]
            needed = nid in out_nodes and (
                g.op(src).kind in (OpKind.INPUT, OpKind.CONST) or src in out_nodes
                or out_nodes.count(nid) > 1)
            if not needed:
                g.replace_uses(nid, src)
                out_nodes = [o.node for o in g.outputs]
                g.remove(nid)
                changed = True
        elif op.kind is OpKind.ACTIVATION and op.attrs.kind == "clip":
            assert isinstance(op.attrs, Activation)
            lo, hi = op.attrs.params
            if lo == 0.0 and math.isinf(hi) and hi > 0:
                g.set_op(nid, dataclasses.replace(op, attrs=make_activation("relu")))
                changed = True
    return g.remove_dead() or changed
