"""fold-affine: fold BatchNormalization (as Mul/Add by constants) into the preceding Conv."""

from __future__ import annotations

import dataclasses

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import ConvAttrs, OpKind
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def _channel_vector(g: Graph, const: str, channels: int) -> np.ndarray | None:
    """The constant as a per-output-channel vector, if it broadcasts only along C."""
    v = g.const_value(const)
    if v.ndim > 4 or v.dtype != np.float32:
        return None
    shape = (1,) * (4 - v.ndim) + tuple(v.shape)
    if shape[0] != 1 or shape[2] != 1 or shape[3] != 1 or shape[1] not in (1, channels):
        return None
    return np.broadcast_to(v.reshape(-1), (channels,)).astype(np.float64)


def fold_affine(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Conv followed by Mul/Add/Sub/Div with a per-channel constant folds into W and b.

    Importing BatchNormalization yields ``x * scale + shift`` with constant scale and
    shift; this pass makes it free. Preconditions: the Conv has no fused activation yet,
    its only consumer is the affine op, and the constant broadcasts only along channels.
    Arithmetic is done in float64 and rounded once to float32.
    """
    changed = False
    for nid in list(g.nodes()):
        if nid not in g:
            continue
        op = g.op(nid)
        if op.kind not in (OpKind.MUL, OpKind.ADD, OpKind.SUB, OpKind.DIV):
            continue
        a, c = op.inputs
        if g.is_const(a) and op.kind in (OpKind.MUL, OpKind.ADD):
            a, c = c, a
        if not g.is_const(c) or g.op(a).kind is not OpKind.CONV:
            continue
        conv = g.op(a)
        assert isinstance(conv.attrs, ConvAttrs)
        if conv.attrs.act or conv.attrs.ort_order \
                or len(g.consumers(a)) != 1 or a in g.output_nodes():
            continue
        if op.out != conv.out:
            continue
        w, b = conv.inputs[1], conv.inputs[2] if len(conv.inputs) > 2 else None
        if not g.is_const(w) or (b is not None and not g.is_const(b)):
            continue
        oc = conv.out.shape[1]
        vec = _channel_vector(g, c, oc)
        if vec is None:
            continue
        weight = g.const_value(w).astype(np.float64)
        bias = g.const_value(b).astype(np.float64) if b is not None else np.zeros(oc)
        if op.kind is OpKind.MUL:
            weight, bias = weight * vec[:, None, None, None], bias * vec
        elif op.kind is OpKind.DIV:
            weight, bias = weight / vec[:, None, None, None], bias / vec
        elif op.kind is OpKind.ADD:
            bias = bias + vec
        else:
            bias = bias - vec
        new_w = g.add_const(weight.astype(np.float32), w + "_folded", conv.origin)
        new_b = g.add_const(bias.astype(np.float32), (b or a + "_b") + "_folded", conv.origin)
        g.set_op(a, dataclasses.replace(conv, inputs=(conv.inputs[0], new_w, new_b),
                                        origin=conv.origin + op.origin))
        g.replace_uses(nid, a)
        g.remove(nid)
        changed = True
    return g.remove_dead() or changed
