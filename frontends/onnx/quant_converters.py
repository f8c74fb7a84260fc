"""Converters for quantized ops: QuantizeLinear/DequantizeLinear, QLinearConv and
QLinearMatMul, MatMulInteger/ConvInteger, and the com.microsoft QOperator ops
onnxruntime's quantizer emits (QLinearAdd/Mul/Concat/AveragePool/GlobalAveragePool,
QLinearSigmoid/LeakyRelu, QLinearSoftmax). Registered in ``registry.CONVERTERS``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from sqzc.frontends.onnx.attr_helpers import (
    check_positive,
    int_tuple,
    refuse_batch_mixing,
    require_2d_spatial,
    resolve_pads,
)
from sqzc.frontends.onnx.quant_params import (
    block_size_of,
    blocked_params,
    blocked_weights,
    check_axis_length,
    elementwise,
    quant_params,
)
from sqzc.frontends.onnx.registry import converter

from sqzc.ops import (
    INT_DTYPES,
    Activation,
    AxisAttrs,
    ConvAttrs,
    IntConvAttrs,
    IntMatMulAttrs,
    LookupAttrs,
    OpKind,
    PoolAttrs,
    QAvgPoolAttrs,
    QBinaryAttrs,
    QConvAttrs,
    QMatMulAttrs,
    QPoolAttrs,
    QSoftmaxAttrs,
    QuantAttrs,
    ReshapeAttrs,
    TensorType,
    TransposeAttrs,
    make_activation,
)
from sqzc.ort.lookup import lookup_table
from sqzc.ort.rules import ORT_ACTIVATIONS, qladd_swaps
from sqzc.ops.defs.conv import conv_multipliers

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext


# ------------------------------------------------------------------ quantization


#: onnxruntime's schemas for the com.microsoft ops sqzc converts, per input: True where the
#: input is required, False where optional (from onnxruntime's get_all_operator_schema).
#: onnx's checker does not know this domain, so ``check_contrib_signature`` enforces them.
CONTRIB_INPUTS: dict[str, tuple[bool, ...]] = {
    "QLinearSoftmax": (True, True, False, True, True),
    "QLinearAdd": (True, True, False, True, True, False, True, False),
    "QLinearMul": (True, True, False, True, True, False, True, False),
    "QLinearSigmoid": (True, True, False, True, False),
    "QLinearLeakyRelu": (True, True, False, True, False),
    "QLinearGlobalAveragePool": (True, True, True, True, True),
    "QLinearAveragePool": (True, True, False, True, False),
    "QuantizeLinear": (True, True, False),
    "DequantizeLinear": (True, True, False),
}


def check_contrib_signature(cx: ImportContext) -> None:
    """Refuse a com.microsoft node whose inputs or outputs break onnxruntime's schema (a
    missing required input would otherwise read as a default, an extra one be ignored)."""
    node = cx.node
    assert node is not None
    if len(node.output) != 1:
        raise cx.error(f"{node.op_type} has one output, got {len(node.output)}")
    spec = CONTRIB_INPUTS.get(node.op_type)
    if spec is None:  # variadic (QLinearConcat): its converter checks the triples
        return
    required = len(spec) - list(reversed(spec)).index(True)  # through the last required
    if not required <= len(node.input) <= len(spec):
        count = str(len(spec)) if required == len(spec) else f"{required} to {len(spec)}"
        raise cx.error(f"{node.op_type} takes {count} inputs, got {len(node.input)}")
    for i, needed in enumerate(spec[:len(node.input)]):
        if needed and not node.input[i]:
            raise cx.error(f"{node.op_type} input {i} is required")



#: output_dtype codes QuantizeLinear takes: ONNX type -> (IR dtype, bits).
_Q_OUTPUT = {2: ("uint8", 8), 3: ("int8", 8), 21: ("uint8", 4), 22: ("int8", 4)}


@converter("QuantizeLinear", 10, 13, 19, 21)
@converter("QuantizeLinear", 1, domain="com.microsoft")
def quantize_linear(cx: ImportContext) -> None:
    """QuantizeLinear to uint8/int8/uint4/int4 with constant scale and zero point (per
    tensor, per axis, or blocked); onnxruntime's com.microsoft one has the same meaning."""
    x = cx.float_input(0)
    shape = cx.type_of(x).shape
    out_dtype = cx.int_attr("output_dtype", 0)  # opset 21: the type without a zero point
    if out_dtype and out_dtype not in _Q_OUTPUT:
        raise cx.unsupported(f"QuantizeLinear to dtype code {out_dtype}")
    assert cx.node is not None
    bits = 4 if cx.node.output[0] in cx.nibbles else 8
    out_type = _Q_OUTPUT[out_dtype][0] if out_dtype else "uint8"
    if out_dtype and _Q_OUTPUT[out_dtype][1] != bits:
        raise cx.error(f"output_dtype {out_dtype} disagrees with the output's type")
    if block_size_of(cx, shape):
        q = blocked_params(cx, shape, out_type, bits)
        if out_dtype and q.dtype != out_type:
            raise cx.error(f"output_dtype says {out_type} but the zero point is {q.dtype}")
        cx.bind(0, elementwise(cx, OpKind.QUANTIZE, q, x))
        return
    q = quant_params(cx, 1, 2, cx.int_attr("axis", 1), len(shape), out_type, bits)
    check_axis_length(cx, q, shape)
    if out_dtype and q.dtype != out_type:
        raise cx.error(f"output_dtype says {out_type} but the zero point is {q.dtype}")
    if q.dtype not in INT_DTYPES:
        raise cx.unsupported(f"QuantizeLinear to {q.dtype}")
    cx.bind(0, cx.emit(OpKind.QUANTIZE, q, [x]))


@converter("DequantizeLinear", 10, 13, 19, 21)
@converter("DequantizeLinear", 1, domain="com.microsoft")
def dequantize_linear(cx: ImportContext) -> None:
    """DequantizeLinear from uint8/int8/uint4/int4/int32 with constant scale and zero point
    (per tensor, per axis, or blocked); onnxruntime's com.microsoft one has the same
    meaning (``quantize_static`` writes it for int4 weights below opset 21)."""
    x, bits = cx.input(0), cx.input_bits(0)
    t = cx.type_of(x)
    if t.dtype not in ("uint8", "int8", "int32"):
        raise cx.unsupported(f"DequantizeLinear of {t.dtype}")
    if block_size_of(cx, t.shape):
        if t.dtype == "int32":
            raise cx.unsupported("blocked DequantizeLinear of int32")
        q = blocked_params(cx, t.shape, t.dtype, bits)
        if q.dtype != t.dtype:
            raise cx.error(f"zero point dtype {q.dtype} differs from input dtype {t.dtype}")
        # constant weights: the library stores the codes (blocked_weights)
        cx.bind(0, blocked_weights(cx, x) if cx.graph.is_const(x)
                else elementwise(cx, OpKind.DEQUANTIZE, q, x))
        return
    q = quant_params(cx, 1, 2, cx.int_attr("axis", 1), len(t.shape), t.dtype, bits)
    check_axis_length(cx, q, t.shape)
    if q.dtype != t.dtype:
        raise cx.error(f"zero point dtype {q.dtype} differs from input dtype {t.dtype}")
    cx.bind(0, cx.emit(OpKind.DEQUANTIZE, q, [x]))


@converter("QLinearConv", 10)
def qlinear_conv(cx: ImportContext) -> None:
    """QLinearConv (u8/s8 activations, u8/s8 weights per tensor or per output channel)."""
    x, w = cx.input(0), cx.input(3)
    xt, wt = cx.type_of(x), cx.type_of(w)
    if xt.dtype not in INT_DTYPES or wt.dtype not in INT_DTYPES:
        raise cx.unsupported(f"QLinearConv on {xt.dtype} x {wt.dtype}")
    require_2d_spatial(cx, x)
    if len(wt.shape) != 4:
        raise cx.error(f"weight must be 4-D, got {list(wt.shape)}")
    xq = quant_params(cx, 1, 2, 1, 4, xt.dtype)
    wq = quant_params(cx, 4, 5, 0, 4, wt.dtype)
    yq = quant_params(cx, 6, 7, 1, 4, xt.dtype)
    if not xq.per_tensor or not yq.per_tensor:
        raise cx.unsupported("per-channel activation quantization")
    oc = wt.shape[0]
    if len(wq.scale) not in (1, oc):
        raise cx.error(f"weight has {oc} output channels but {len(wq.scale)} scales")
    kernel = cx.ints("kernel_shape") or tuple(wt.shape[2:])
    strides, dil = int_tuple(cx, "strides", 1), int_tuple(cx, "dilations", 1)
    for name, vals in (("strides", strides), ("dilations", dil), ("kernel_shape", kernel)):
        check_positive(cx, name, vals)
    size = cx.type_of(x).shape[2:]
    pads = resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    conv = ConvAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads, (dil[0], dil[1]),
                     cx.int_attr("group", 1))
    ws = wq.scale if len(wq.scale) == oc else wq.scale * oc
    attrs = QConvAttrs(conv, xq.zero_point[0], wq.zero_point,
                       conv_multipliers(xq.scale[0], ws, yq.scale[0]), yq)
    ins = [x, w]
    if cx.has_input(8):
        b = cx.input(8)
        if cx.type_of(b).dtype != "int32":
            raise cx.error(f"bias must be int32, got {cx.type_of(b).dtype}")
        ins.append(b)
    cx.bind(0, cx.emit(OpKind.QCONV, attrs, ins))


@converter("QLinearGlobalAveragePool", 1, domain="com.microsoft")
def qlinear_global_avgpool(cx: ImportContext) -> None:
    """com.microsoft QLinearGlobalAveragePool (NCHW)."""
    if cx.int_attr("channels_last", 0):
        raise cx.unsupported("channels_last=1")
    x = cx.input(0)
    t = cx.type_of(x)
    if t.dtype not in INT_DTYPES or len(t.shape) < 3:
        raise cx.unsupported(f"QLinearGlobalAveragePool on {t}")
    xq = quant_params(cx, 1, 2, 1, 4, t.dtype)
    yq = quant_params(cx, 3, 4, 1, 4, t.dtype)
    cx.bind(0, cx.emit(OpKind.QGLOBAL_AVGPOOL, QPoolAttrs(xq, yq), [x]))


# ------------------------------------------------------------------ QOperator ops
# Scales and zero points must be compile-time constants (the kernels and lookup tables
# are specialized on them); activation quantization must be per tensor.


def _eight_bit(cx: ImportContext, i: int, what: str) -> tuple[str, TensorType]:
    """Input ``i`` (node id, type), which must be uint8 or int8."""
    nid = cx.input(i)
    t = cx.type_of(nid)
    if t.dtype not in INT_DTYPES:
        raise cx.unsupported(f"{what} on {t.dtype} (sqzc supports uint8/int8)")
    return nid, t


def _tensor_quant(cx: ImportContext, scale_i: int, zp_i: int, dtype: str, what: str
                  ) -> QuantAttrs:
    """Per-tensor constant quantization of a ``dtype`` tensor (missing zero point = 0)."""
    q = quant_params(cx, scale_i, zp_i, 1, 1, dtype)
    if not q.per_tensor:
        raise cx.unsupported(f"per-axis quantization of {what}")
    if q.dtype != dtype:
        raise cx.error(f"{what} zero point is {q.dtype} but the tensor is {dtype}")
    return q


def _batched(cx: ImportContext, nid: str) -> tuple[int, ...]:
    """The shape of ``nid`` at batch 2 when the model has a dynamic batch (else as is)."""
    shape = cx.type_of(nid).shape
    if cx.graph.dynamic_batch and not cx.graph.is_const(nid) and shape:
        return (2,) + shape[1:]
    return shape


def _qlinear_binary(cx: ImportContext, kind: OpKind, name: str) -> None:
    a, ta = _eight_bit(cx, 0, name)
    b, tb = _eight_bit(cx, 3, name)
    if ta.dtype != tb.dtype:
        raise cx.error(f"operands are {ta.dtype} and {tb.dtype}; {name} needs one type")
    aq = _tensor_quant(cx, 1, 2, ta.dtype, "A")
    bq = _tensor_quant(cx, 4, 5, tb.dtype, "B")
    yq = _tensor_quant(cx, 6, 7, ta.dtype, "C")
    ins, attrs = [a, b], QBinaryAttrs(aq, bq, yq)
    if kind is OpKind.QADD:  # the IR's operand order is onnxruntime's kernel's
        swap = qladd_swaps(ta.shape, tb.shape, _batched(cx, a), _batched(cx, b))
        if swap is None:
            raise cx.unsupported("dynamic batch: QLinearAdd rounds differently at batch 1 "
                                 "than at larger batches for these shapes (fix the batch "
                                 "with --input-shape)")
        if swap:
            ins, attrs = [b, a], QBinaryAttrs(bq, aq, yq)
    cx.bind(0, cx.emit(kind, attrs, ins))


@converter("QLinearAdd", 1, domain="com.microsoft")
def qlinear_add(cx: ImportContext) -> None:
    """com.microsoft QLinearAdd (uint8/int8, broadcasting; onnxruntime's fused formula)."""
    _qlinear_binary(cx, OpKind.QADD, "QLinearAdd")


@converter("QLinearMul", 1, domain="com.microsoft")
def qlinear_mul(cx: ImportContext) -> None:
    """com.microsoft QLinearMul (uint8/int8, broadcasting)."""
    _qlinear_binary(cx, OpKind.QMUL, "QLinearMul")


def _qlinear_lookup(cx: ImportContext, act: Activation, name: str) -> None:
    """onnxruntime's lookup-table op of activation ``act`` (its ``ORT_ACTIVATIONS`` table)."""
    x, t = _eight_bit(cx, 0, name)
    xq = _tensor_quant(cx, 1, 2, t.dtype, "X")
    yq = _tensor_quant(cx, 3, 4, t.dtype, "Y")
    table = ORT_ACTIVATIONS[act.kind].qlinear_table
    attrs = LookupAttrs(lookup_table(table, xq, yq, *act.params), t.dtype, str(act))
    cx.bind(0, cx.emit(OpKind.LOOKUP, attrs, [x]))


@converter("QLinearLeakyRelu", 1, domain="com.microsoft")
def qlinear_leaky_relu(cx: ImportContext) -> None:
    """com.microsoft QLinearLeakyRelu: a 256-entry table built at compile time."""
    _qlinear_lookup(cx, make_activation("leaky", alpha=cx.float_attr("alpha", 0.01)),
                    "QLinearLeakyRelu")


@converter("QLinearSigmoid", 1, domain="com.microsoft")
def qlinear_sigmoid(cx: ImportContext) -> None:
    """com.microsoft QLinearSigmoid: a 256-entry table (MLAS logistic) built at compile time."""
    _qlinear_lookup(cx, make_activation("sigmoid"), "QLinearSigmoid")


@converter("QLinearSoftmax", 1, domain="com.microsoft")
def qlinear_softmax(cx: ImportContext) -> None:
    """com.microsoft QLinearSoftmax (``opset`` attribute: the Softmax axis rules it
    follows; before 13 the dims from ``axis`` on are one row, done here as a 2-D reshape
    around the op)."""
    x, t = _eight_bit(cx, 0, "QLinearSoftmax")
    opset = cx.attr("opset")
    if opset is None:
        raise cx.error("QLinearSoftmax needs its opset attribute")
    rank = len(t.shape)
    axis = int(cx.int_attr("axis", 1 if int(opset) < 13 else -1))  # type: ignore[arg-type]
    if not -rank <= axis < rank:
        raise cx.error(f"axis {axis} out of range for rank {rank}")
    axis %= rank
    xs = _tensor_quant(cx, 1, 2, t.dtype, "X")
    yq = _tensor_quant(cx, 3, 4, t.dtype, "Y")
    with np.errstate(over="ignore", divide="ignore"):
        inverse = np.float32(1.0) / np.float32(yq.scale[0])
    if not np.isfinite(xs.scale[0]) or xs.scale[0] <= 0 or not np.isfinite(yq.scale[0]) \
            or yq.scale[0] <= 0 or not np.isfinite(inverse):
        raise cx.error("QLinearSoftmax scales must be positive and finite (and 1 / Y_scale "
                       "finite in float32)")
    trailing = int(np.prod(t.shape[axis + 1:], dtype=np.int64))
    if int(opset) >= 13 or trailing == 1:
        cx.bind(0, cx.emit(OpKind.QSOFTMAX, QSoftmaxAttrs(xs.scale[0], yq, axis), [x]))
        return
    if axis == 0:
        refuse_batch_mixing(cx, x, "QLinearSoftmax before opset 13 with axis=0 spans the batch")
    outer = int(np.prod(t.shape[:axis], dtype=np.int64))
    name = cx.node.output[0]  # type: ignore[union-attr]
    flat = cx.emit(OpKind.RESHAPE, ReshapeAttrs((outer, trailing * t.shape[axis])), [x],
                   name=f"{name}_2d")
    sm = cx.emit(OpKind.QSOFTMAX, QSoftmaxAttrs(xs.scale[0], yq, 1), [flat],
                 name=f"{name}_sm2d")
    cx.bind(0, cx.emit(OpKind.RESHAPE, ReshapeAttrs(t.shape), [sm]))


@converter("QLinearConcat", 1, domain="com.microsoft")
def qlinear_concat(cx: ImportContext) -> None:
    """com.microsoft QLinearConcat: each input whose quantization differs from the output's
    is requantized (exactly onnxruntime's identity lookup table), then an 8-bit concat."""
    assert cx.node is not None
    n_in = len(cx.node.input)
    if n_in < 5 or (n_in - 2) % 3:
        raise cx.error("QLinearConcat needs Y_scale, Y_zero_point and (X, X_scale, "
                       f"X_zero_point) triples, got {n_in} inputs")
    if cx.attr("axis") is None:
        raise cx.error("QLinearConcat needs an axis")
    if not cx.has_input(1):
        raise cx.error("QLinearConcat needs Y_zero_point")
    zp_dtype = np.asarray(cx.const(1)).dtype.name
    if zp_dtype not in INT_DTYPES:
        raise cx.unsupported(f"QLinearConcat to {zp_dtype}")
    yq = _tensor_quant(cx, 0, 1, zp_dtype, "Y")
    parts = []
    for k in range(2, n_in, 3):
        x, t = _eight_bit(cx, k, "QLinearConcat")
        if t.dtype != yq.dtype:
            raise cx.error(f"input {k} is {t.dtype} but the output is {yq.dtype}")
        xq = _tensor_quant(cx, k + 1, k + 2, t.dtype, f"input {k}")
        parts.append(x if xq == yq else cx.emit(
            OpKind.REQUANTIZE, QPoolAttrs(xq, yq), [x],
            name=f"{cx.node.output[0]}_rq{(k - 2) // 3}"))
    axis = cx.rank_axis(cx.int_attr("axis", 0), len(cx.type_of(parts[0]).shape))
    cx.bind(0, cx.emit(OpKind.CONCAT, AxisAttrs(axis), parts))


@converter("QLinearAveragePool", 1, domain="com.microsoft")
def qlinear_avgpool(cx: ImportContext) -> None:
    """com.microsoft QLinearAveragePool, 2-D (NCHW, or NHWC with channels_last)."""
    assert cx.node is not None
    x, t = _eight_bit(cx, 0, "QLinearAveragePool")
    if len(t.shape) != 4:
        raise cx.unsupported(f"{len(t.shape) - 2}-D spatial input (sqzc supports 2-D)")
    xq = _tensor_quant(cx, 1, 2, t.dtype, "X")
    yq = _tensor_quant(cx, 3, 4, t.dtype, "Y")
    out = cx.node.output[0]
    channels_last = cx.int_attr("channels_last", 0)
    if channels_last:  # NHWC in and out: the pool itself runs on NCHW (exact data movement)
        x = cx.emit(OpKind.TRANSPOSE, TransposeAttrs((0, 3, 1, 2)), [x], name=f"{out}_nchw")
    kernel = cx.ints("kernel_shape")
    if kernel is None or len(kernel) != 2:
        raise cx.error("kernel_shape must have 2 values")
    strides = int_tuple(cx, "strides", 1)
    for name, vals in (("kernel_shape", kernel), ("strides", strides)):
        check_positive(cx, name, vals)
    size = cx.type_of(x).shape[2:]
    pads = resolve_pads(cx, (size[0], size[1]), kernel, strides, (1, 1))
    if tuple(kernel) == tuple(size) and not any(pads):
        # onnxruntime's integer global-pool path (rounds, then adds the zero point)
        y = cx.emit(OpKind.QGLOBAL_AVGPOOL, QPoolAttrs(xq, yq), [x],
                    name=f"{out}_gap" if channels_last else None)
    else:
        pool = PoolAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads, (1, 1),
                         cx.flag_attr("ceil_mode", False),
                         cx.flag_attr("count_include_pad", False))
        y = cx.emit(OpKind.QAVGPOOL, QAvgPoolAttrs(pool, xq, yq), [x],
                    name=f"{out}_pool" if channels_last else None)
    if channels_last:
        y = cx.emit(OpKind.TRANSPOSE, TransposeAttrs((0, 2, 3, 1)), [y])
    cx.bind(0, y)


def _column_values(cx: ImportContext, i: int, b: TensorType, what: str) -> np.ndarray | None:
    """A B-side constant (QLinearMatMul scale, MatMulInteger/QLinearMatMul zero point) as a
    1-D array: one value, or one per column of B (shape [N] or [1, ..., 1, N])."""
    if not cx.has_input(i):
        return None
    v = np.asarray(cx.const(i))
    n = b.shape[-1] if len(b.shape) > 1 else 1
    if v.size == 1:
        return v.reshape(1)
    if len(b.shape) > 1 and v.size == n and v.shape[-1] == n:
        return v.reshape(-1)
    raise cx.unsupported(f"{what} of shape {list(v.shape)} (sqzc supports one value or one "
                         f"per column of B)")


def _scalar_zp(cx: ImportContext, i: int, dtype: str, what: str) -> int:
    """An optional scalar zero point of a ``dtype`` tensor (0 when absent)."""
    if not cx.has_input(i):
        return 0
    v = np.asarray(cx.const(i))
    if v.size != 1:
        raise cx.unsupported(f"non-scalar {what} (sqzc supports per-tensor zero points here)")
    if v.dtype.name != dtype:
        raise cx.error(f"{what} is {v.dtype.name} but the tensor is {dtype}")
    return int(v.reshape(-1)[0])


def _b_zero_points(cx: ImportContext, i: int, b: TensorType) -> tuple[int, ...]:
    zp = _column_values(cx, i, b, "B zero point")
    if zp is None:
        return (0,)
    if zp.dtype.name != b.dtype:
        raise cx.error(f"B zero point is {zp.dtype.name} but B is {b.dtype}")
    return tuple(int(v) for v in zp)


@converter("QLinearMatMul", 10, 21)
def qlinear_matmul(cx: ImportContext) -> None:
    """QLinearMatMul on uint8/int8 (B scale/zero point per tensor or per column)."""
    a, ta = _eight_bit(cx, 0, "QLinearMatMul")
    b, tb = _eight_bit(cx, 3, "QLinearMatMul")
    aq = _tensor_quant(cx, 1, 2, ta.dtype, "a")
    zp_dtype = np.asarray(cx.const(7)).dtype.name if cx.has_input(7) else ta.dtype
    if zp_dtype not in INT_DTYPES:
        raise cx.unsupported(f"QLinearMatMul to {zp_dtype}")
    yq = _tensor_quant(cx, 6, 7, zp_dtype, "y")
    b_scale = _column_values(cx, 4, tb, "B scale")
    assert b_scale is not None
    b_scale = b_scale.astype(np.float32)
    if not np.all(np.isfinite(b_scale)) or np.any(b_scale <= 0):
        raise cx.error("quantization scales must be positive and finite")
    b_zp = _b_zero_points(cx, 5, tb)
    cols = max(len(b_scale), len(b_zp))
    scales = tuple(float(v) for v in b_scale) * (cols // len(b_scale))
    b_zp = b_zp * (cols // len(b_zp))
    attrs = QMatMulAttrs(aq.zero_point[0], b_zp,
                         conv_multipliers(aq.scale[0], scales, yq.scale[0]), yq)
    cx.bind(0, cx.emit(OpKind.QMATMUL, attrs, [a, b]))


@converter("MatMulInteger", 10)
def matmul_integer(cx: ImportContext) -> None:
    """MatMulInteger on uint8/int8 -> int32 (a zero point per tensor, b per tensor or
    per column)."""
    a, ta = _eight_bit(cx, 0, "MatMulInteger")
    b, tb = _eight_bit(cx, 1, "MatMulInteger")
    attrs = IntMatMulAttrs(_scalar_zp(cx, 2, ta.dtype, "a_zero_point"),
                           _b_zero_points(cx, 3, tb))
    cx.bind(0, cx.emit(OpKind.MATMUL_INTEGER, attrs, [a, b]))


@converter("ConvInteger", 10)
def conv_integer(cx: ImportContext) -> None:
    """ConvInteger on uint8/int8 -> int32, 2-D (w zero point per tensor or per channel)."""
    x, xt = _eight_bit(cx, 0, "ConvInteger")
    w, wt = _eight_bit(cx, 1, "ConvInteger")
    require_2d_spatial(cx, x)
    if len(wt.shape) != 4:
        raise cx.error(f"weight must be 4-D, got {list(wt.shape)}")
    kernel = cx.ints("kernel_shape") or tuple(wt.shape[2:])
    if len(kernel) != 2:
        raise cx.error(f"kernel_shape must have 2 values, got {list(kernel)}")
    strides, dil = int_tuple(cx, "strides", 1), int_tuple(cx, "dilations", 1)
    for name, vals in (("strides", strides), ("dilations", dil), ("kernel_shape", kernel)):
        check_positive(cx, name, vals)
    size = xt.shape[2:]
    pads = resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    conv = ConvAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads, (dil[0], dil[1]),
                     cx.int_attr("group", 1))
    w_zp: tuple[int, ...] = (0,)
    if cx.has_input(3):
        v = np.asarray(cx.const(3))
        if v.dtype.name != wt.dtype:
            raise cx.error(f"w_zero_point is {v.dtype.name} but w is {wt.dtype}")
        if v.size not in (1, wt.shape[0]):
            raise cx.error(f"{v.size} weight zero points for {wt.shape[0]} output channels")
        w_zp = tuple(int(z) for z in v.reshape(-1))
    attrs = IntConvAttrs(conv, _scalar_zp(cx, 2, xt.dtype, "x_zero_point"), w_zp)
    cx.bind(0, cx.emit(OpKind.CONV_INTEGER, attrs, [x, w]))
