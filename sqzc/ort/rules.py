"""onnxruntime's x86-64 CPU treatment of QDQ groups (which ones it fuses), as far as results
depend on it.

What ``--no-fuse-int8-qdq`` follows (by default sqzc fuses int8 groups as onnxruntime
does with ``session.qdqisint8allowed=1``). For QDQ models with uint8 activations
onnxruntime fuses every ``DQ -> Conv -> Q`` group into a QLinearConv (integer sums,
float requantization), and so does sqzc's ``fold-qdq``. With int8 activations
onnxruntime 1.32 on x86-64 fuses a group only when its QDQ S8->U8 transformer could
turn *both* the input and the output Q -> DQ pair into uint8 (``ConvNodeGroupSelector``
rejects int8 activations unless ``session.qdqisint8allowed=1``, and needs the input and
output types to match); every other group runs literally in float: DequantizeLinear,
an MLAS float Conv (im2col + sgemm), QuantizeLinear. Those float sums round, so an
integer conv differs from them by one step in a few elements, and the flips compound
through the network (4-6 steps end to end on the zoo models). Following the same choice
per conv and reproducing the float path's summation order makes sqzc bit-exact there too.

``ort_fuses_qdq_conv`` is the conv fusion rule (``ort_group_types`` the one for
Softmax, AveragePool, GlobalAveragePool, LeakyRelu, Add and Mul: their QLinear ops take
the group when input and output types agree after the S8->U8 rewrites, int8 included);
:func:`sqzc.ort.orders.sgemm_stride_k` is the K blocking that decides where MLAS's float
sums restart (``ConvAttrs.ort_order``, emitted by ``backends/llvm/emit/conv/mlas.py``). Facts from onnxruntime's sources (mlas/lib/convolve.cpp,
sgemm.cpp, the AVX512F/FMA3 sgemm kernels, optimizer/qdq_transformer/qdq_s8_to_u8.cc)
and checked against onnxruntime 1.32.0 on every conv of the four int8-activation zoo
settings (tests/models/test_int8_models.py):

* The im2col K index of tap (ic, kh, kw) is ``(ic * KH + kh) * KW + kw``; padding taps
  are zeros. 1x1 stride-1 unpadded convs skip im2col and multiply the input directly,
  with the same K order.
* ``MlasSgemmOperation`` walks K in slices of ``StrideK`` (128, doubled while a slice of
  N narrower than half of ``StrideN`` = 128 would waste the packed panel; see
  ``sgemm_stride_k``). The kernel sums each slice with fused multiply-adds from zero in
  K order and adds the slice's sum to the output (``vfmadd213ps acc, alpha=1, [C]``).
  Bias is added afterwards (``MlasActivation``), then the activation.
* N is the conv's output size per image when onnxruntime runs one intra-op thread. With
  more threads MLAS gives each thread a slice of N, and a slice narrower than K can
  double ``StrideK``: results then depend on onnxruntime's thread count. For SqueezeNet
  at 224x224 (every N slice of 2 threads is at least 73 columns, and 64 < 73) the one-
  and two-thread blockings are the same.
* A Relu between the Conv and the Q is dropped (``ReluQuantFusion``; sqzc's
  ``drop-activation-before-quantize``) only when the Q's zero point is its type's lowest
  value; otherwise the conv's reader is the Relu, the group is not fused, and MLAS
  applies the Relu after the bias.
* Grouped and depthwise convs slice each group's K the same way (one GEMM per group).
* Every group onnxruntime does not fuse, for whatever reason (a kept Relu, a bias whose
  scale is not x_scale * w_scale, ...), runs its float path, so sqzc marks every
  ``DQ(x) -> Conv -> Q`` conv it does not fold into a ``qconv``.
* A conv with one output channel or one output pixel goes to MLAS's M=1/N=1 kernels,
  which sum in another order; sqzc uses the sliced order for them too (exact on the
  small cases tried, not guaranteed).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqzc.ir import Graph
from sqzc.ops import broadcast_shapes
from sqzc.ort.oracles.contrib_ops import broadcast_case
from sqzc.ops import Activation, OpKind, OpNode, QuantAttrs

def s8_pair_becomes_u8(g: Graph, q: str, dq: str) -> bool:
    """Whether onnxruntime's QDQ S8->U8 transformer rewrites the int8 pair ``q -> dq``.

    It needs ``q`` to feed only ``dq`` (and not be a graph output) and equal zero points.
    ``EnsureUniqueDQForNodeUnit`` runs first and gives every further reader of ``dq`` its
    own copy, so ``dq`` must have one reader, or none when it is a graph output (the
    model's last DequantizeLinear; checked: that pair is rewritten).
    """
    qop, dqop = g.op(q), g.op(dq)
    if qop.kind is not OpKind.QUANTIZE or dqop.kind is not OpKind.DEQUANTIZE:
        return False
    qa, da = qop.attrs, dqop.attrs
    assert isinstance(qa, QuantAttrs) and isinstance(da, QuantAttrs)
    outputs = g.output_nodes()
    reads = sum(g.op(c).inputs.count(dq) for c in g.consumers(dq))  # x * x reads it twice
    return (qa.dtype == da.dtype == "int8" and qa.per_tensor and da.per_tensor
            and qa.zero_point == da.zero_point and g.consumers(q) == [dq]
            and q not in outputs and reads == (0 if dq in outputs else 1))


def ort_fuses_qdq_conv(g: Graph, conv: str, q_out: str) -> bool:
    """Whether onnxruntime (x86-64, default session) fuses the group
    ``DQ(x) -> conv -> q_out`` into a QLinearConv: after the S8->U8 rewrites its input and
    its output must both be uint8 (see the module docstring), and its weights 8-bit:
    onnxruntime 1.32 fuses no conv with int4 / uint4 weights (its optimized graph of a
    quantize_static QInt4 model keeps DequantizeLinear -> Conv -> QuantizeLinear, and the
    MLAS-order float path is bit-exact with it on all eight QInt4 / QUInt4, opset 13 / 21,
    per-channel / per-tensor settings of tests/models/test_int4_models.py)."""
    w = g.op(g.op(conv).inputs[1])
    if w.kind is OpKind.DEQUANTIZE and getattr(w.attrs, "bits", 8) != 8:
        return False
    types = ort_group_types(g, [g.op(conv).inputs[0]], q_out, int8_allowed=False)
    return types is not None and types[1] == "uint8"


def ort_group_types(g: Graph, dq_inputs: list[str], q_out: str, int8_allowed: bool
                    ) -> tuple[list[str], str] | None:
    """The 8-bit types onnxruntime computes ``DQ(x_i)... -> op -> q_out`` in when it fuses
    the group into its QLinear op, else None; for the ops whose selectors accept int8
    (Softmax, AveragePool, GlobalAveragePool, LeakyRelu, Add, Mul). Its S8->U8 transformer
    first turns rewritable int8 Q -> DQ pairs into uint8 ones (value and zero point + 128;
    ``session.qdqisint8allowed=1``, ``int8_allowed``, turns that off); the group is then
    fused when every input and the output have one type, and its arithmetic runs in that
    type, which matters where a zero point is added before rounding (QLinearAveragePool,
    QLinearAdd). Checked against onnxruntime 1.32's optimized graphs for uint8, int8,
    mixed and Q -> DQ-fed groups. Decide on the graph as imported: a folded neighbour is
    no longer a Q -> DQ pair."""
    y_type = g.op(q_out).attrs.dtype  # type: ignore[attr-defined]
    x_types = [g.op(dq).attrs.dtype for dq in dq_inputs]  # type: ignore[attr-defined]
    if not int8_allowed:
        readers = g.consumers(q_out)
        if y_type == "int8" and len(readers) == 1 and s8_pair_becomes_u8(g, q_out, readers[0]):
            y_type = "uint8"
        x_types = ["uint8" if t == "int8" and s8_pair_becomes_u8(g, g.op(dq).inputs[0], dq)
                   else t for dq, t in zip(dq_inputs, x_types)]
    return (x_types, y_type) if all(t == y_type for t in x_types) else None


@dataclass(frozen=True)
class OrtActivation:
    """What onnxruntime does specially with one activation of the table.

    ``redundant_before_q``: its QDQ transformers drop it in front of a QuantizeLinear whose
    range it cannot change (ReluQuantFusion, ClipQuantFusion; see
    ``drop-activation-before-quantize``), and ``IsNoBranchPathToQuantizeLinear`` walks
    through it. ``qlinear_table``: ``DQ -> act -> Q`` becomes its lookup-table op (the
    function ``sqzc.ort.lookup.lookup_table`` builds). ``nchwc``: its NCHWc transformer
    keeps the activation in NCHWc, so a global average pool behind it still runs blocked.
    An activation without an entry has no special case.
    """

    redundant_before_q: bool = False
    qlinear_table: str = ""
    nchwc: bool = False


#: activation kind -> onnxruntime's special cases (checked against onnxruntime 1.32:
#: optimized graphs of Conv -> act -> GlobalAveragePool and DQ -> act -> Q).
ORT_ACTIVATIONS: dict[str, OrtActivation] = {
    "relu": OrtActivation(redundant_before_q=True, nchwc=True),
    "clip": OrtActivation(redundant_before_q=True, nchwc=True),
    "leaky": OrtActivation(qlinear_table="leaky"),
    "sigmoid": OrtActivation(qlinear_table="sigmoid", nchwc=True),
    "hard_sigmoid": OrtActivation(nchwc=True),
    "hard_swish": OrtActivation(nchwc=True),  # as HardSigmoid and Mul, both kept in NCHWc
}


def ort_activation(op: OpNode) -> OrtActivation | None:
    """onnxruntime's special cases for ``op`` when it is an activation op, else None."""
    if op.kind is not OpKind.ACTIVATION:
        return None
    assert isinstance(op.attrs, Activation)
    return ORT_ACTIVATIONS.get(op.attrs.kind, OrtActivation())


def qladd_swaps(a: tuple[int, ...], b: tuple[int, ...], a_batched: tuple[int, ...],
                b_batched: tuple[int, ...]) -> bool | None:
    """Whether onnxruntime's QLinearAdd passes its operands to the kernel as (B, A): it does
    when A is the repeated (broadcast) operand of every span, and the first operand's terms
    round differently, so the IR's operand order must follow. ``a_batched``/``b_batched``
    are the shapes at a batch above 1 (the shapes themselves without a dynamic batch);
    None when the two batches broadcast differently (batch 1 and larger batches would
    round differently: the group cannot be compiled for a dynamic batch)."""
    case = broadcast_case(a, b, broadcast_shapes(a, b))
    if broadcast_case(a_batched, b_batched, broadcast_shapes(a_batched, b_batched)) != case:
        return None
    return case == 0
