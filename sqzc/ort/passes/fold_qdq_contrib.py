"""The QDQ groups onnxruntime fuses into its com.microsoft QLinear ops: DQ -> Softmax /
AveragePool / GlobalAveragePool / LeakyRelu -> Q and DQ, DQ -> Add / Mul -> Q (part of
``fold-qdq``).

Whether a group is fused, and in which 8-bit type its arithmetic runs, is onnxruntime's
decision (``sqzc.ort.rules.ort_group_types``), taken on the graph as imported: its S8->U8
transformer turns rewritable int8 Q -> DQ pairs into uint8 ones first, and a fused
QLinearAveragePool or QLinearAdd then adds the shifted zero point before it rounds. So
an int8 tensor onnxruntime sees as uint8 enters the folded op through an exact
requantization to uint8 (same scale, zero point + 128), and an int8 result the op
computes as uint8 leaves through the inverse one; ``unsign-activations`` and
``fold-requantize`` handle such conversions like any other.
"""

from __future__ import annotations

import dataclasses

from sqzc.ir import Graph
from sqzc.ops import (
    Activation,
    LookupAttrs,
    OpKind,
    PoolAttrs,
    QAvgPoolAttrs,
    QBinaryAttrs,
    QPoolAttrs,
    QSoftmaxAttrs,
    QuantAttrs,
    ReduceAttrs,
    SoftmaxAttrs,
)
from sqzc.ort.rules import ort_activation, ort_group_types, qladd_swaps
from sqzc.passes.manager import PassContext
from sqzc.ort.passes.qdq_match import dequantized, sole_quantize_reader
from sqzc.ort.lookup import lookup_table


@dataclasses.dataclass
class _Group:
    """A group onnxruntime fuses, in the type it computes in."""

    inputs: list[tuple[str, QuantAttrs]]  # 8-bit sources (converted) and their parameters
    qid: str  # the QuantizeLinear the folded op replaces
    y: QuantAttrs  # output parameters in the computing type
    declared: QuantAttrs  # the QuantizeLinear's own parameters


def _as_uint8(q: QuantAttrs) -> QuantAttrs:
    """The same real values stored as uint8: zero point + 128."""
    return dataclasses.replace(q, dtype="uint8", zero_point=tuple(z + 128 for z in q.zero_point))


def _eight_bit(match: tuple[str, QuantAttrs] | None) -> tuple[str, QuantAttrs] | None:
    """``match`` if its params are per-tensor uint8/int8 (what the QLinear ops take)."""
    if match is None or not match[1].per_tensor or match[1].dtype not in ("uint8", "int8"):
        return None
    return match


def _group(g: Graph, imported: Graph, dqs: list[str], last: str,
           ctx: PassContext) -> _Group | None:
    """The group of DequantizeLinears ``dqs`` -> ... -> ``last`` -> Q, if onnxruntime fuses
    it; int8 inputs it sees as uint8 are converted here (call only once committed)."""
    srcs = [_eight_bit(dequantized(g, d)) for d in dqs]
    q = _eight_bit(sole_quantize_reader(g, last))
    if q is None or any(s is None for s in srcs) or q[0] not in imported \
            or any(d not in imported for d in dqs):
        return None
    types = ort_group_types(imported, dqs, q[0], ctx.fuse_int8_qdq)
    if types is None:
        return None
    inputs = []
    for (src, xq), t in zip(srcs, types[0]):  # type: ignore[misc]
        if t != xq.dtype:
            shifted = _as_uint8(xq)
            src = g.add_op(OpKind.REQUANTIZE, QPoolAttrs(xq, shifted), [src], f"{src}_u8",
                           g.op(src).origin)
            xq = shifted
        inputs.append((src, xq))
    y = q[1] if types[1] == q[1].dtype else _as_uint8(q[1])
    return _Group(inputs, q[0], y, q[1])


def _finish(g: Graph, nid: str, grp: _Group, kind: OpKind, attrs: object,
            inputs: list[str], tag: str) -> bool:
    origin = g.op(nid).origin + g.op(grp.qid).origin
    new = g.add_op(kind, attrs, inputs, f"{grp.qid}_{tag}", origin)
    if grp.y != grp.declared:  # computed as uint8, declared int8
        new = g.add_op(OpKind.REQUANTIZE, QPoolAttrs(grp.y, grp.declared), [new],
                       f"{grp.qid}_{tag}_s8", origin)
    g.replace_uses(grp.qid, new)
    g.remove(grp.qid)
    return True


def _fold_softmax(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ -> Softmax -> Q becomes onnxruntime's QLinearSoftmax (its lookup-table
    arithmetic). A Softmax before opset 13 over several axes arrives as Reshape -> Softmax
    -> Reshape (the importer's 2-D form); onnxruntime fuses that group too, so the
    reshapes move onto the 8-bit tensors around the ``qsoftmax``."""
    op = g.op(nid)
    a = op.attrs
    assert isinstance(a, SoftmaxAttrs)
    if a.log:
        return False
    dq, pre, post = op.inputs[0], None, None
    if g.op(dq).kind is OpKind.RESHAPE and g.consumers(dq) == [nid]:
        pre, dq = dq, g.op(dq).inputs[0]
        users = g.consumers(nid)
        if len(users) != 1 or nid in g.output_nodes() or g.op(users[0]).kind is not OpKind.RESHAPE:
            return False
        post = users[0]
    grp = _group(g, imported, [dq], post or nid, ctx)
    if grp is None:
        return False
    src, xq = grp.inputs[0]
    if pre is not None:
        src = g.add_op(OpKind.RESHAPE, g.op(pre).attrs, [src], pre + "_q", g.op(pre).origin)
    attrs = QSoftmaxAttrs(xq.scale[0], grp.y, a.axis)
    if post is None:
        return _finish(g, nid, grp, OpKind.QSOFTMAX, attrs, [src], "qsoftmax")
    sm = g.add_op(OpKind.QSOFTMAX, attrs, [src], grp.qid + "_qsoftmax", op.origin)
    return _finish(g, post, grp, OpKind.RESHAPE, g.op(post).attrs, [sm], "reshape")


def _fold_avgpool(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ -> AveragePool -> Q becomes onnxruntime's QLinearAveragePool (a window covering
    the unpadded input is its global-pool path, as the importer does for
    QLinearAveragePool). Dilated pools stay float: QLinearAveragePool has no dilations,
    and onnxruntime's fused result then differs from the model's meaning."""
    pool = g.op(nid).attrs
    assert isinstance(pool, PoolAttrs)
    if pool.dilations != (1, 1):
        return False
    grp = _group(g, imported, [g.op(nid).inputs[0]], nid, ctx)
    if grp is None:
        return False
    (src, xq), = grp.inputs
    if pool.kernel == g.op(src).out.shape[2:] and not any(pool.pads):
        return _finish(g, nid, grp, OpKind.QGLOBAL_AVGPOOL, QPoolAttrs(xq, grp.y), [src], "qgap")
    return _finish(g, nid, grp, OpKind.QAVGPOOL, QAvgPoolAttrs(pool, xq, grp.y), [src],
                   "qavgpool")


def _fold_global_avgpool(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ -> GlobalAveragePool (a mean over every axis after the channels, kept) -> Q
    becomes onnxruntime's QLinearGlobalAveragePool (integer sum, its requantization)."""
    a, rank = g.op(nid).attrs, len(g.op(nid).out.shape)
    assert isinstance(a, ReduceAttrs)
    if a.mode != "mean" or not a.keepdims or rank < 3 or a.axes != tuple(range(2, rank)):
        return False
    grp = _group(g, imported, [g.op(nid).inputs[0]], nid, ctx)
    if grp is None:
        return False
    (src, xq), = grp.inputs
    return _finish(g, nid, grp, OpKind.QGLOBAL_AVGPOOL, QPoolAttrs(xq, grp.y), [src], "qgap")


def _fold_activation(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ -> activation -> Q becomes onnxruntime's lookup-table op for the activations it
    has one for (``ORT_ACTIVATIONS``: QLinearLeakyRelu, QLinearSigmoid)."""
    op = g.op(nid)
    ort = ort_activation(op)
    if ort is None or not ort.qlinear_table:
        return False
    a = op.attrs
    assert isinstance(a, Activation)
    grp = _group(g, imported, [op.inputs[0]], nid, ctx)
    if grp is None:
        return False
    (src, xq), = grp.inputs
    table = LookupAttrs(lookup_table(ort.qlinear_table, xq, grp.y, *a.params), grp.y.dtype,
                        str(a))
    return _finish(g, nid, grp, OpKind.LOOKUP, table, [src], f"q{a.kind}")


def _fold_binary(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ(a), DQ(b) -> Add/Mul -> Q becomes onnxruntime's QLinearAdd/QLinearMul, operands
    ordered as its kernel takes them (``qadd``'s first operand rounds differently). Left
    float where batch 1 and larger batches would round differently (a dynamic batch that
    changes onnxruntime's broadcast case)."""
    op = g.op(nid)
    kind = OpKind.QADD if op.kind is OpKind.ADD else OpKind.QMUL
    shapes = [g.op(i).out.shape for i in op.inputs]
    swap = False
    if kind is OpKind.QADD:
        constant = g.constant_derived() if g.dynamic_batch else set()  # weights, their DQs
        batched = [(2,) + s[1:] if g.dynamic_batch and s and i not in constant else s
                   for i, s in zip(op.inputs, shapes)]
        swap_or_none = qladd_swaps(shapes[0], shapes[1], batched[0], batched[1])
        if swap_or_none is None:
            return False
        swap = swap_or_none
    grp = _group(g, imported, list(op.inputs), nid, ctx)
    if grp is None:
        return False
    (a, aq), (b, bq) = grp.inputs
    ins, attrs = [a, b], QBinaryAttrs(aq, bq, grp.y)
    if swap:
        ins, attrs = [b, a], QBinaryAttrs(bq, aq, grp.y)
    return _finish(g, nid, grp, kind, attrs, ins, kind.value)


#: op kind -> folder(graph, graph as imported, node, pass context)
CONTRIB_FOLDERS = {
    OpKind.SOFTMAX: _fold_softmax,
    OpKind.AVGPOOL: _fold_avgpool,
    OpKind.REDUCE: _fold_global_avgpool,
    OpKind.ACTIVATION: _fold_activation,
    OpKind.ADD: _fold_binary,
    OpKind.MUL: _fold_binary,
}
