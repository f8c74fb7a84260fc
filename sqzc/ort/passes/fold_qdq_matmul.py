"""QDQ MatMul and Gemm groups onnxruntime fuses into QLinearMatMul / QGemm (part of
``fold-qdq``): both become a ``qmatmul`` (int32 sums, the Gemm's int32 bias added,
onnxruntime's float requantization), which is bit-exact with them.

onnxruntime's rules (its MatMul and Gemm node-group selectors, checked on x86-64 against
the optimized graphs of every u8/s8 combination, constant and input ``b``, graph-input
Q -> DQ pairs, per-tensor and per-column ``b``):

* MatMul -> QLinearMatMul: ``a`` and the output of one type after the S8->U8 rewrites
  (``sqzc.ort.rules.ort_group_types``), uint8 unless ``session.qdqisint8allowed=1`` (sqzc's
  default; ``--no-fuse-int8-qdq`` clears it), and then an int8 ``a`` needs an int8 ``b``.
* Gemm -> QGemm: the same type rule, int8 allowed without the option (an int8 ``a``
  needs an int8 ``b``); a bias must be a DequantizeLinear of int32 added as it is (its
  scale and zero point are not used: QGemm takes the int32 values), with beta 1.
  sqzc's Gemm import is Transpose (for ``transB``) -> MatMul -> Add (bias), so the group
  is matched in that form. Left float: a Gemm whose C beta 0 dropped (onnxruntime
  too); ``transA``, ``alpha`` != 1 without C, a non-constant B with ``transB``, a B of
  another rank, a C of shape [M, N] (onnxruntime fuses these: a step apart in some
  elements).

* int4 / uint4 B (4-bit ``QuantAttrs``): onnxruntime 1.32 on x86-64 fuses none (checked:
  per-column int4 B stays DequantizeLinear -> MatMul -> QuantizeLinear); sqzc's default
  folds them into the same ``qmatmul`` (exact integer sums), ``--no-fuse-int8-qdq`` keeps
  them float.

Computed in the declared types: an integer matmul and its requantization shift exactly
with the zero points.
"""

from __future__ import annotations

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import MatMulAttrs, OpKind, QMatMulAttrs, QuantAttrs, TransposeAttrs
from sqzc.ort.rules import ort_group_types
from sqzc.passes.manager import PassContext
from sqzc.ort.passes.qdq_match import dequantized, sole_quantize_reader
from sqzc.ops.defs.conv import conv_multipliers

EIGHT_BIT = ("uint8", "int8")


def _b_operand(g: Graph, nid: str, from_gemm: bool
               ) -> tuple[str, QuantAttrs, bool] | None:
    """The 8-bit B, its parameters as B's ([K, N]) and whether the source is B's
    transpose: a DequantizeLinear's source, or for a Gemm with ``transB`` the [N, K]
    constant behind ``Transpose(DQ(const))``."""
    b = dequantized(g, nid)
    if b is not None:
        return b[0], b[1], False
    op = g.op(nid)
    if not from_gemm or op.kind is not OpKind.TRANSPOSE \
            or op.attrs != TransposeAttrs((1, 0)):
        return None
    b = dequantized(g, op.inputs[0])
    if b is None or not g.is_const(b[0]) or len(g.op(b[0]).out.shape) != 2:
        return None
    src, p = b
    if not p.per_tensor:
        if p.axis != 0:
            return None
        p = QuantAttrs(p.scale, p.zero_point, p.dtype, 1)  # [N, K] rows are B's columns
    return src, p, True


def _gemm_bias(g: Graph, mm: str, n: int) -> tuple[str, tuple[int, ...]] | None:
    """(the Add, its int32 values per column) when ``mm``'s only reader adds a
    DequantizeLinear of an int32 constant of N (or 1) values; None otherwise."""
    readers = g.consumers(mm)
    if len(readers) != 1 or mm in g.output_nodes() or g.op(readers[0]).kind is not OpKind.ADD:
        return None
    add = g.op(readers[0])
    other = [i for i in add.inputs if i != mm]
    c = dequantized(g, other[0]) if len(other) == 1 else None
    if c is None or c[1].dtype != "int32" or not g.is_const(c[0]):
        return None
    values = g.const_value(c[0]).reshape(-1)
    if values.size not in (1, n) or g.op(c[0]).out.shape[:-1] not in ((), (1,)):
        return None
    return readers[0], tuple(int(v) for v in values)


def fold_matmul(g: Graph, imported: Graph, nid: str, ctx: PassContext) -> bool:
    """DQ(a), DQ(b) -> MatMul [-> Add(DQ(int32 c))] -> Q into a ``qmatmul`` where
    onnxruntime fuses it (module docstring)."""
    op = g.op(nid)
    assert isinstance(op.attrs, MatMulAttrs)
    gemm = op.attrs.source != "matmul"
    if op.attrs.source == "gemm_beta0":
        return False
    a = dequantized(g, op.inputs[0])
    if a is None or a[1].dtype not in EIGHT_BIT or not a[1].per_tensor \
            or len(g.op(a[0]).out.shape) < 1:
        return False
    n = op.out.shape[-1]
    bias = _gemm_bias(g, nid, n) if gemm else None
    last = bias[0] if bias else nid
    q = sole_quantize_reader(g, last)
    if q is None or q[0] not in imported or op.inputs[0] not in imported \
            or q[1].dtype not in EIGHT_BIT:
        return False
    b = _b_operand(g, op.inputs[1], gemm)
    if b is None or b[1].dtype not in EIGHT_BIT or len(g.op(b[0]).out.shape) != 2:
        return False
    (asrc, ap), (bsrc, bp, transposed), (qid, yp) = a, b, q
    if bp.bits != 8 and not ctx.fuse_int8_qdq:
        return False  # onnxruntime 1.32 (x86-64) keeps int4-weight MatMuls float
    if not bp.per_tensor and (bp.axis != 1 or len(bp.scale) != n):
        return False
    int8_allowed = ctx.fuse_int8_qdq or gemm
    types = ort_group_types(imported, [op.inputs[0]], qid, ctx.fuse_int8_qdq)
    if types is None or (types[1] == "int8" and not (int8_allowed and bp.dtype == "int8")):
        return False
    if transposed:
        bsrc = g.add_const(np.ascontiguousarray(g.const_value(bsrc).T), f"{bsrc}_t",
                           g.op(bsrc).origin)
    attrs = QMatMulAttrs(ap.zero_point[0], bp.zero_point,
                         conv_multipliers(ap.scale[0], bp.scale, yp.scale[0]), yp,
                         bias[1] if bias else ())
    new = g.add_op(OpKind.QMATMUL, attrs, [asrc, bsrc], qid + "_qmatmul",
                   op.origin + g.op(qid).origin)
    g.replace_uses(qid, new)
    g.remove(qid)
    return True
