"""fuse-conv-activation: an activation (any entry of the activation table) after a Conv
becomes its epilogue."""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import Activation, ConvAttrs, OpKind
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def fuse_conv_activation(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Fold an activation into the Conv feeding it (applied in registers before the store).

    Precondition: the Conv has no epilogue yet and the activation is its only consumer
    (otherwise the un-activated value is still needed). The Conv takes over the
    activation's consumers and graph outputs; origins are joined (``conv1+relu1``).
    """
    changed = False
    for nid in list(g.nodes()):
        if nid not in g:
            continue
        op = g.op(nid)
        if op.kind is not OpKind.ACTIVATION:
            continue
        src = op.inputs[0]
        conv = g.op(src)
        if conv.kind is not OpKind.CONV or src in g.output_nodes():
            continue
        assert isinstance(conv.attrs, ConvAttrs)
        if conv.attrs.act or len(g.consumers(src)) != 1:
            continue
        assert isinstance(op.attrs, Activation)
        attrs = dataclasses.replace(conv.attrs, act=op.attrs)
        g.set_op(src, dataclasses.replace(conv, attrs=attrs, origin=conv.origin + op.origin))
        g.replace_uses(nid, src)
        g.remove(nid)
        changed = True
    return changed
