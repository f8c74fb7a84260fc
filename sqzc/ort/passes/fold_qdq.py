"""fold-qdq: DequantizeLinear -> op -> QuantizeLinear groups become integer ops."""

from __future__ import annotations

import dataclasses

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import (
    AxisAttrs,
    ConvAttrs,
    NoAttrs,
    OpKind,
    PoolAttrs,
    QConvAttrs,
    QPoolAttrs,
    QuantAttrs,
)
from sqzc.ort.orders import sgemm_order
from sqzc.ort.rules import ort_fuses_qdq_conv
from sqzc.ort.passes.fold_qdq_contrib import CONTRIB_FOLDERS
from sqzc.ort.passes.fold_qdq_matmul import fold_matmul
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext
from sqzc.ort.passes.qdq_match import dequantized, sole_quantize_reader, sole_reader_pairs
from sqzc.ops.defs.conv import conv_multipliers


def _conv_group(g: Graph, nid: str) -> tuple[str, QuantAttrs] | None:
    """(QuantizeLinear, its params) of a ``DQ(x) -> Conv -> Q`` group with 8-bit ``x``,
    the Q the conv's only reader. A Relu or Clip the Q makes redundant is gone already
    (``drop-activation-before-quantize``, as in onnxruntime); one still between them
    keeps the group float, as in onnxruntime."""
    op = g.op(nid)
    x = dequantized(g, op.inputs[0])
    if x is None or x[1].dtype not in ("uint8", "int8"):
        return None
    return sole_quantize_reader(g, nid)


def _ort_fuses(g: Graph, nid: str, q: str, yp: QuantAttrs, ctx: PassContext) -> bool:
    """Whether onnxruntime makes the group a QLinearConv (by default: as with
    ``session.qdqisint8allowed=1``, int4 weights included, so that the int8 kernels run
    them; ``--no-fuse-int8-qdq``: as its x86-64 default session, which fuses no conv with
    int4 weights, ``sqzc.ort.rules.ort_fuses_qdq_conv``)."""
    if ctx.fuse_int8_qdq:  # session.qdqisint8allowed=1: int8 too, input and output alike,
        # and an int8 input needs int8 weights (no S8U8 kernel; ConvNodeGroupSelector)
        x_type = g.op(g.op(nid).inputs[0]).attrs.dtype  # type: ignore[attr-defined]
        w = dequantized(g, g.op(nid).inputs[1])
        return x_type == yp.dtype and (x_type != "int8" or (w is not None
                                                             and w[1].dtype == "int8"))
    return ort_fuses_qdq_conv(g, nid, q)


def _fold_conv(g: Graph, nid: str, qid: str) -> bool:
    """DQ -> Conv -> Q (``qid``) into a ``qconv``, if sqzc can express it as
    onnxruntime's QLinearConv (constant int8/uint8 weights, per-tensor input, int32 bias
    with scale x_scale * w_scale)."""
    op = g.op(nid)
    a = op.attrs
    assert isinstance(a, ConvAttrs)
    x = dequantized(g, op.inputs[0])
    w = dequantized(g, op.inputs[1])
    q = (qid, g.op(qid).attrs)
    if x is None or w is None or a.act or a.ort_order:
        return False
    (xq, xp), (wq, wp), (qid, yp) = x, w, q
    if not xp.per_tensor or not g.is_const(wq) or wp.dtype not in ("int8", "uint8"):
        return False
    oc = op.out.shape[1]
    if not wp.per_tensor and (wp.axis != 0 or len(wp.scale) != oc):
        return False
    ws = wp.scale * oc if wp.per_tensor else wp.scale
    wz = wp.zero_point
    ins = [xq, wq]
    if len(op.inputs) > 2:
        b = dequantized(g, op.inputs[2])
        if b is None or not g.is_const(b[0]) or b[1].dtype != "int32" or any(b[1].zero_point):
            return False
        expect = [np.float32(np.float32(xp.scale[0]) * np.float32(s)) for s in ws]
        bs = b[1].scale * oc if b[1].per_tensor else b[1].scale
        if any(abs(float(e) - s) > 1e-6 * abs(float(e)) for e, s in zip(expect, bs)):
            return False  # onnxruntime only fuses when bias scale = x_scale * w_scale
        ins.append(b[0])
    attrs = QConvAttrs(a, xp.zero_point[0], wz, conv_multipliers(xp.scale[0], ws, yp.scale[0]),
                       yp)
    new = g.add_op(OpKind.QCONV, attrs, ins, qid + "_qconv", op.origin + g.op(qid).origin)
    g.replace_uses(qid, new)
    g.remove(qid)
    return True


def _fold_maxpool(g: Graph, nid: str) -> bool:
    op = g.op(nid)
    x = dequantized(g, op.inputs[0])
    q = sole_quantize_reader(g, nid)
    if x is None or q is None or x[1] != q[1]:
        return False
    assert isinstance(op.attrs, PoolAttrs)
    new = g.add_op(OpKind.MAXPOOL, op.attrs, [x[0]], q[0] + "_q", op.origin)
    g.replace_uses(q[0], new)
    g.remove(q[0])
    return True


def _fold_concat(g: Graph, nid: str) -> bool:
    op = g.op(nid)
    q = sole_quantize_reader(g, nid)
    srcs = [dequantized(g, i) for i in op.inputs]
    if q is None or any(s is None or s[1] != q[1] for s in srcs):
        return False
    assert isinstance(op.attrs, AxisAttrs)
    new = g.add_op(OpKind.CONCAT, op.attrs, [s[0] for s in srcs if s], q[0] + "_q", op.origin)
    g.replace_uses(q[0], new)
    g.remove(q[0])
    return True


def _mlas_attrs(g: Graph, nid: str) -> ConvAttrs:
    """The conv's attrs asking for onnxruntime's MLAS float summation order."""
    op = g.op(nid)
    assert isinstance(op.attrs, ConvAttrs)
    _, icg, kh, kw = g.op(op.inputs[1]).out.shape
    n = op.out.shape[2] * op.out.shape[3]
    return dataclasses.replace(op.attrs, ort_order=sgemm_order(n, icg * kh * kw))


def _reads_8bit_dq(g: Graph, conv: str) -> bool:
    x = dequantized(g, g.op(conv).inputs[0])
    return x is not None and x[1].dtype in ("uint8", "int8")


def _fold_conv_groups(g: Graph, ctx: PassContext) -> bool:
    """Every ``DQ(x) -> Conv -> Q`` group: a ``qconv`` where onnxruntime fuses it
    (decided on the graph as imported, before any group is folded), else a float conv
    marked for MLAS's summation order, onnxruntime's float path (``sqzc.ort.rules``). A
    conv on a dequantized 8-bit tensor that is no such group (its result has another
    reader, or no Q) is onnxruntime's float path too, and is marked the same way: its
    result is usually quantized downstream, where a different float sum shows as a step."""
    groups, loose = {}, []
    for nid in g.nodes():
        if g.op(nid).kind is not OpKind.CONV or not _reads_8bit_dq(g, nid):
            continue
        if (grp := _conv_group(g, nid)) is not None:
            groups[nid] = (grp[0], _ort_fuses(g, nid, *grp, ctx))
        else:
            loose.append(nid)
    for nid, (qid, fused) in groups.items():
        if not (fused and _fold_conv(g, nid, qid)):
            loose.append(nid)
    for nid in loose:
        g.set_op(nid, dataclasses.replace(g.op(nid), attrs=_mlas_attrs(g, nid)))
    return bool(groups or loose)


def fold_qdq(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Turn QDQ-format groups into integer ops, as onnxruntime's QDQ transformer does.

    DequantizeLinear -> Conv -> QuantizeLinear becomes one ``qconv`` (int8 weights kept,
    int32 bias, onnxruntime's float32 multiplier), DQ, DQ -> MatMul / Gemm -> Q a
    ``qmatmul`` where onnxruntime fuses it (``fold_qdq_matmul``); DQ -> MaxPool -> Q and
    DQ -> Concat ->
    Q with identical quantization on every side become the same op on the 8-bit tensors
    (exact: max and copy commute with an affine map); DQ -> Softmax / AveragePool /
    GlobalAveragePool / LeakyRelu -> Q and DQ, DQ -> Add / Mul -> Q become onnxruntime's
    QLinear ops (``qsoftmax``, ``qavgpool``, ``qglobal_avgpool``, ``lookup``, ``qadd``,
    ``qmul``) where onnxruntime fuses them (``sqzc.ort.rules.ort_group_types``,
    ``fold_qdq_contrib``), so their integer arithmetic is the result. Lone Q/DQ at the
    edges, and groups
    that do not match exactly, stay as they are (the float path computes the model's
    literal meaning). Runs before constant folding, which would otherwise turn the
    dequantized weights into float constants.

    int8-activation groups are folded too by default (the context's ``fuse_int8_qdq``), as
    onnxruntime does with ``session.qdqisint8allowed=1``. With ``--no-fuse-int8-qdq`` the
    conv groups onnxruntime's default x86-64 session does not fuse (int8 activations whose
    Q -> DQ pairs its S8->U8 transformer cannot rewrite, ``sqzc.ort.rules``) stay float,
    marked to sum in its MLAS order so the results are its results.
    """
    imported = g.copy()  # onnxruntime decides every group before it fuses any
    changed = _fold_conv_groups(g, ctx)
    folders = {OpKind.MAXPOOL: _fold_maxpool, OpKind.CONCAT: _fold_concat}
    for nid in list(g.nodes()):
        if nid not in g:
            continue
        if g.op(nid).kind in folders:
            changed |= folders[g.op(nid).kind](g, nid)
        elif g.op(nid).kind in CONTRIB_FOLDERS:
            changed |= CONTRIB_FOLDERS[g.op(nid).kind](g, imported, nid, ctx)
        elif g.op(nid).kind is OpKind.MATMUL:
            changed |= fold_matmul(g, imported, nid, ctx)
    if changed:
        g.remove_dead()
    return changed


def _requant(g: Graph, src: str, x: QuantAttrs, y: QuantAttrs, hint: str,
             origin: tuple[str, ...]) -> str:
    """``src`` re-expressed in ``y`` (itself when the parameters are equal)."""
    if x == y:
        return src
    return g.add_op(OpKind.REQUANTIZE, QPoolAttrs(x, y), [src], hint, origin)


def _push_quantize_through_maxpool(g: Graph) -> bool:
    """Q(MaxPool(y)) -> MaxPool(Q(y)): quantization is monotonic, so it commutes with max
    (padding never wins a max), and the pool then runs on 8-bit values."""
    changed = False
    for nid, q, pool, pop in sole_reader_pairs(g, OpKind.QUANTIZE):
        if pop.kind is not OpKind.MAXPOOL or not q.attrs.per_tensor:  # type: ignore[attr-defined]
            continue
        inner = g.add_op(OpKind.QUANTIZE, q.attrs, [pop.inputs[0]], nid + "_pre", q.origin)
        new = g.add_op(OpKind.MAXPOOL, pop.attrs, [inner], nid + "_pool", pop.origin)
        g.replace_uses(nid, new)
        g.remove(nid)
        g.remove(pool)
        changed = True
    return changed


def fold_requantize(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Q(DQ(x)) and Q(Concat(DQ(a), DQ(b), ...)) become integer requantizations.

    Both are exact rewrites of the float path (the requantize kernel performs the same
    dequantize and quantize float operations per element), so they apply whether or not
    onnxruntime fuses them; the concat then runs on 8-bit tensors and concat elimination
    can place its operands. A requantization right after an integer conv with no other
    reader becomes that conv's second epilogue stage (written straight into its slice).
    """
    changed = _push_quantize_through_maxpool(g)
    for nid, q, src, sop in sole_reader_pairs(g, OpKind.QUANTIZE):
        assert isinstance(q.attrs, QuantAttrs)
        if not q.attrs.per_tensor or q.attrs.bits != 8:  # 8-bit storage only (unsign)
            continue
        if sop.kind is OpKind.DEQUANTIZE and sop.attrs.per_tensor and \
                sop.attrs.dtype != "int32":  # type: ignore[attr-defined]
            new = _requant(g, sop.inputs[0], sop.attrs, q.attrs, nid + "_rq",  # type: ignore[arg-type]
                           sop.origin + q.origin)
        elif sop.kind is OpKind.CONCAT and all(
                g.op(i).kind is OpKind.DEQUANTIZE and g.op(i).attrs.per_tensor  # type: ignore[attr-defined]
                and g.op(i).attrs.dtype != "int32"  # type: ignore[attr-defined]
                and len(g.consumers(i)) == 1 for i in sop.inputs):
            parts = [_requant(g, g.op(i).inputs[0], g.op(i).attrs, q.attrs, i + "_rq",  # type: ignore[arg-type]
                              g.op(i).origin + q.origin) for i in sop.inputs]
            new = g.add_op(OpKind.CONCAT, sop.attrs, parts, nid + "_cat", sop.origin + q.origin)
        else:
            continue
        if nid in g.output_nodes() and (g.op(new).kind in (OpKind.INPUT, OpKind.CONST)
                                        or new in g.output_nodes()):
            # the output needs a buffer of its own (an identity Q(DQ(x)) of a graph input
            # or of another output): a copy, as canonicalize keeps Identity for
            new = g.add_op(OpKind.IDENTITY, NoAttrs(), [new], nid + "_copy", q.origin)
        g.replace_uses(nid, new)
        g.remove(nid)
        changed = True
    g.remove_dead()  # the replaced DequantizeLinear nodes must not count as readers below
    for nid, r, src, conv in sole_reader_pairs(g, OpKind.REQUANTIZE):
        if conv.kind is not OpKind.QCONV or conv.attrs.requant is not None \
                or r.attrs.x != conv.attrs.out:  # type: ignore[attr-defined]
            continue
        attrs = dataclasses.replace(conv.attrs, requant=r.attrs.y)  # type: ignore[attr-defined,type-var]
        g.tensor_names.pop(src, None)  # the conv's result is no longer that ONNX tensor
        g.set_op(src, dataclasses.replace(conv, attrs=attrs, out=r.out,
                                          origin=conv.origin + r.origin))
        g.replace_uses(nid, src)
        g.remove(nid)
        changed = True
    if changed:
        g.remove_dead()
    return changed
