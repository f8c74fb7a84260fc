"""unsign-activations: int8 activations are stored as uint8 with the zero point + 128."""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import OpKind, QConvAttrs, QPoolAttrs, QuantAttrs, TensorType
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext

#: Ops that can produce a shifted tensor (they requantize, so any zero point works).
PRODUCERS = frozenset({OpKind.QUANTIZE, OpKind.QCONV, OpKind.REQUANTIZE})
#: Ops whose output dtype follows their input: shifted together with it.
FOLLOWERS = frozenset({OpKind.MAXPOOL, OpKind.CONCAT, OpKind.QGLOBAL_AVGPOOL})
#: Ops that read an 8-bit tensor together with its zero point.
READERS = frozenset({OpKind.QCONV, OpKind.DEQUANTIZE, OpKind.REQUANTIZE}) | FOLLOWERS


def _shift(q: QuantAttrs) -> QuantAttrs:
    """The same real values with uint8 storage: q + 128, zero point + 128."""
    if q.dtype != "int8":
        return q
    return dataclasses.replace(q, dtype="uint8", zero_point=tuple(z + 128 for z in q.zero_point))


def _candidates(g: Graph) -> set[str]:
    """int8 activation tensors whose every producer and reader can take the shift."""
    cand = {n for n in g.nodes() if g.op(n).out.dtype == "int8"
            and g.op(n).kind in PRODUCERS | FOLLOWERS
            and getattr(g.op(n).attrs, "bits", 8) == 8}  # an int4 Q keeps its range
    changed = True
    while changed:
        changed = False
        for n in list(cand):
            op = g.op(n)
            bad = any(g.op(c).kind not in READERS
                      or (g.op(c).kind is OpKind.QCONV and g.op(c).inputs[0] != n)
                      or (g.op(c).kind in FOLLOWERS and c not in cand)
                      for c in g.consumers(n))
            if op.kind in FOLLOWERS:
                bad |= any(i not in cand for i in op.inputs)
            if bad:
                cand.discard(n)
                changed = True
    return cand


def unsign_activations(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Store int8 activations as uint8 (value + 128, zero point + 128).

    The real value ``(q - zp) * scale`` is unchanged, requantization rounds and clamps the
    same way in the shifted range, and max pooling commutes with the shift, so results
    are bit-identical. What changes is speed: the VNNI kernels multiply unsigned by
    signed bytes, and an int8 input would otherwise be flipped on every load (the +128
    correction itself is folded into the bias either way). Applies to connected int8
    tensors produced by QuantizeLinear/QLinearConv/requantization and read only by
    integer convs, max/global-average pooling, concats and DequantizeLinear; a shifted
    graph output gets a requantization back to int8.
    """
    shifted = _candidates(g)
    if not shifted:
        return False
    for n in shifted:
        op = g.op(n)
        a = op.attrs
        if isinstance(a, QuantAttrs):  # QuantizeLinear
            a = _shift(a)
        elif isinstance(a, QConvAttrs):
            a = dataclasses.replace(a, out=_shift(a.out),
                                    requant=_shift(a.requant) if a.requant else None)
        elif isinstance(a, QPoolAttrs):  # requantize / global average pool: the output side
            a = dataclasses.replace(a, y=_shift(a.y))
        g.set_op(n, dataclasses.replace(op, attrs=a, out=TensorType(op.out.shape, "uint8")))
        g.tensor_names.pop(n, None)  # no longer holds the ONNX tensor's bytes
    for n in list(g.nodes()):  # readers of shifted tensors
        op = g.op(n)
        if not any(i in shifted for i in op.inputs):
            continue
        a = op.attrs
        if op.kind is OpKind.QCONV:
            assert isinstance(a, QConvAttrs)
            if op.inputs[0] in shifted:
                a = dataclasses.replace(a, x_zp=a.x_zp + 128)
        elif op.kind is OpKind.DEQUANTIZE:
            assert isinstance(a, QuantAttrs)
            a = _shift(a)
        elif isinstance(a, QPoolAttrs):
            a = dataclasses.replace(a, x=_shift(a.x))
        g.set_op(n, dataclasses.replace(op, attrs=a))
    for out in g.outputs:
        if out.node in shifted:
            op = g.op(out.node)
            q = _quant_of(g, out.node)
            back = dataclasses.replace(q, dtype="int8",
                                       zero_point=tuple(z - 128 for z in q.zero_point))
            r = g.add_op(OpKind.REQUANTIZE, QPoolAttrs(q, back), [out.node],
                         f"{out.node}_int8", op.origin)
            g.tensor_names[r] = out.name
            out.node = r
    return True


def _quant_of(g: Graph, n: str) -> QuantAttrs:
    """The (shifted) quantization of shifted tensor ``n``: its producer's, through max
    pooling and concats (whose operands share it)."""
    op = g.op(n)
    a = op.attrs
    if isinstance(a, QuantAttrs):
        return a
    if isinstance(a, QConvAttrs):
        return a.requant or a.out
    if isinstance(a, QPoolAttrs):
        return a.y
    return _quant_of(g, op.inputs[0])
