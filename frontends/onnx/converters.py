"""Converters for the compute ops: convolution and pooling, activations, softmax and
arithmetic (Add/Sub/Mul/Div, BatchNormalization, reductions, MatMul/Gemm).

Importing this module registers every handler in ``registry.CONVERTERS``: the structure
ops (``shape_converters``) and quantized ops (``quant_converters``) are imported at the
end. The importer reads the table through the names re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sqzc.frontends.onnx.attr_helpers import (
    check_positive,
    float_operand,
    int_tuple,
    refuse_batch_mixing,
    require_2d_spatial,
    resolve_pads,
)
from sqzc.frontends.onnx.registry import (
    CONVERTERS,
    FOLD_ONLY,
    Handler,
    converter,
    select_converter,
    supported_ops,
)
from sqzc.ort.orders import avgpool_order, global_pool_order
from sqzc.ops import (
    ACTIVATIONS,
    INT_DTYPES,
    ConvAttrs,
    MatMulAttrs,
    NoAttrs,
    OpKind,
    PoolAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SoftmaxAttrs,
    TransposeAttrs,
    make_activation,
)

if TYPE_CHECKING:
    from sqzc.frontends.onnx.context import ImportContext

__all__ = ["CONVERTERS", "FOLD_ONLY", "select_converter", "supported_ops"]

# ------------------------------------------------------------------ convolution and pooling


@converter("Conv", 1, 11, 22)
def conv(cx: ImportContext) -> None:
    """Conv: 2-D, any kernel/stride/pad/dilation/auto_pad, grouped and depthwise."""
    x = cx.float_input(0)
    require_2d_spatial(cx, x)
    w = float_operand(cx, 1)
    wshape = cx.type_of(w).shape
    if len(wshape) != 4:
        raise cx.error(f"weight must be 4-D, got {list(wshape)}")
    kernel = cx.ints("kernel_shape") or tuple(wshape[2:])
    if len(kernel) != 2:
        raise cx.error(f"kernel_shape must have 2 values, got {list(kernel)}")
    strides, dil = int_tuple(cx, "strides", 1), int_tuple(cx, "dilations", 1)
    check_positive(cx, "strides", strides)
    check_positive(cx, "dilations", dil)
    check_positive(cx, "kernel_shape", kernel)
    size = cx.type_of(x).shape[2:]
    pads = resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    attrs = ConvAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads,
                      (dil[0], dil[1]), cx.int_attr("group", 1))
    ins = [x, w] + ([float_operand(cx, 2)] if cx.has_input(2) else [])
    cx.bind(0, cx.emit(OpKind.CONV, attrs, ins))


def _pool(cx: ImportContext, kind: OpKind, with_ceil: bool, with_dil: bool,
          with_count: bool) -> None:
    raw = cx.input(0)
    int_max = kind is OpKind.MAXPOOL and cx.type_of(raw).dtype in INT_DTYPES
    x = raw if int_max else cx.float_input(0)  # max pooling is exact on 8-bit values
    require_2d_spatial(cx, x)
    kernel = cx.ints("kernel_shape")
    if kernel is None or len(kernel) != 2:
        raise cx.error("kernel_shape must have 2 values")
    strides = int_tuple(cx, "strides", 1)
    dil = int_tuple(cx, "dilations", 1) if with_dil else (1, 1)
    for name, vals in (("kernel_shape", kernel), ("strides", strides), ("dilations", dil)):
        check_positive(cx, name, vals)
    size = cx.type_of(x).shape[2:]
    pads = resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    ceil = cx.flag_attr("ceil_mode", False) if with_ceil else False
    count = cx.flag_attr("count_include_pad", False) if with_count else False
    if kind is OpKind.MAXPOOL and cx.output_used(1):
        raise cx.unsupported("MaxPool's Indices output")
    attrs = PoolAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads, (dil[0], dil[1]),
                      ceil, count, avgpool_order(kind is OpKind.AVGPOOL, with_dil))
    cx.bind(0, cx.emit(kind, attrs, [x]))


@converter("MaxPool", 1, 8)
def maxpool_v1(cx: ImportContext) -> None:
    """MaxPool before opset 10: no ceil_mode or dilations."""
    _pool(cx, OpKind.MAXPOOL, False, False, False)


@converter("MaxPool", 10, 11, 12, 22)
def maxpool_v10(cx: ImportContext) -> None:
    """MaxPool with ceil_mode and dilations."""
    _pool(cx, OpKind.MAXPOOL, True, True, False)


@converter("AveragePool", 1, 7)
def avgpool_v1(cx: ImportContext) -> None:
    """AveragePool before opset 10 (count_include_pad from 7)."""
    _pool(cx, OpKind.AVGPOOL, False, False, True)


@converter("AveragePool", 10, 11)
def avgpool_v10(cx: ImportContext) -> None:
    """AveragePool with ceil_mode."""
    _pool(cx, OpKind.AVGPOOL, True, False, True)


@converter("AveragePool", 19, 22)
def avgpool_v19(cx: ImportContext) -> None:
    """AveragePool with ceil_mode and dilations."""
    _pool(cx, OpKind.AVGPOOL, True, True, True)


def _global_pool(cx: ImportContext, mode: str) -> None:
    x = cx.float_input(0)
    rank = len(cx.type_of(x).shape)
    if rank < 3:
        raise cx.error(f"global pooling needs rank >= 3, got {rank}")
    attrs = ReduceAttrs(mode, tuple(range(2, rank)), True, lowest_finite=mode == "max",
                        ort_order=global_pool_order(cx.graph, x, mode, rank))
    cx.bind(0, cx.emit(OpKind.REDUCE, attrs, [x]))


@converter("GlobalAveragePool", 1, 22)
def global_avgpool(cx: ImportContext) -> None:
    """GlobalAveragePool = mean over the spatial axes."""
    _global_pool(cx, "mean")


@converter("GlobalMaxPool", 1, 22)
def global_maxpool(cx: ImportContext) -> None:
    """GlobalMaxPool = max over the spatial axes."""
    _global_pool(cx, "max")


# ------------------------------------------------------------------ activations


def activation_op(op_type: str, *versions: int, act: str) -> Handler:
    """Register the converter of ONNX ``op_type`` (from each opset in ``versions``) as the
    activation table's entry ``act``: its parameters are the ONNX attributes of the same
    names, with the entry's defaults (``sqzc.ops.activations``)."""
    entry = ACTIVATIONS[act]

    def handler(cx: ImportContext) -> None:
        params = {name: cx.float_attr(name, default) for name, default in entry.params}
        cx.bind(0, cx.emit(OpKind.ACTIVATION, make_activation(act, **params),
                           [cx.float_input(0)]))

    handler.__name__ = handler.__qualname__ = f"convert_{act}"
    handler.__doc__ = f"{op_type}: the {act} activation" + (
        f" ({', '.join(f'{n} defaults to {d!r}' for n, d in entry.params)})."
        if entry.params else ".")
    return converter(op_type, *versions)(handler)


activation_op("Relu", 1, 6, 13, 14, act="relu")
activation_op("LeakyRelu", 1, 6, 16, act="leaky")
activation_op("Sigmoid", 1, 6, 13, act="sigmoid")
activation_op("HardSigmoid", 1, 6, 22, act="hard_sigmoid")
activation_op("HardSwish", 14, 22, act="hard_swish")


def _clip_default_bounds(cx: ImportContext, input_typed: bool) -> tuple[float, float]:
    """Clip's default bounds, numeric_limits::lowest() and max() (every Clip opset's spec
    and onnxruntime), not -inf/+inf: infinite inputs are clamped to the finite range.
    Clip-6's bounds are float attributes (float32 limits whatever the input type); from
    Clip-11 they are tensors of the input's type T (float16 inputs: +-65504)."""
    dtype = cx.type_of(cx.input(0)).dtype
    info = np.finfo(np.float16 if input_typed and dtype == "float16" else np.float32)
    return float(info.min), float(info.max)


@converter("Clip", 1, 6)
def clip_v6(cx: ImportContext) -> None:
    """Clip with min/max attributes (before opset 11)."""
    lowest, highest = _clip_default_bounds(cx, input_typed=False)
    attrs = make_activation("clip", lo=cx.float_attr("min", lowest),
                            hi=cx.float_attr("max", highest))
    cx.bind(0, cx.emit(OpKind.ACTIVATION, attrs, [cx.float_input(0)]))


@converter("Clip", 11, 12, 13)
def clip_v11(cx: ImportContext) -> None:
    """Clip with optional min/max inputs, which must be compile-time constants."""
    lowest, highest = _clip_default_bounds(cx, input_typed=True)
    lo = float(cx.const(1).reshape(-1)[0]) if cx.has_input(1) else lowest
    hi = float(cx.const(2).reshape(-1)[0]) if cx.has_input(2) else highest
    cx.bind(0, cx.emit(OpKind.ACTIVATION, make_activation("clip", lo=lo, hi=hi),
                       [cx.float_input(0)]))


def _softmax(cx: ImportContext, log: bool) -> None:
    x = cx.float_input(0)
    shape = cx.type_of(x).shape
    opset = cx.opsets.get("", 1)
    axis = cx.rank_axis(cx.int_attr("axis", -1 if opset >= 13 else 1), len(shape))
    trailing = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if opset < 13 and axis == 0 and trailing > 1:
        refuse_batch_mixing(cx, x, "axis=0 before opset 13 normalizes across the batch axis")
    if opset >= 13 or trailing == 1:
        cx.bind(0, cx.emit(OpKind.SOFTMAX, SoftmaxAttrs(axis, log), [x]))
        return
    # Before opset 13 the input is coerced to 2-D at `axis`: normalize over all of shape[axis:].
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    flat = cx.emit(OpKind.RESHAPE, ReshapeAttrs((outer, trailing * shape[axis])), [x],
                   name=f"{cx.node.output[0]}_2d")  # type: ignore[union-attr]
    sm = cx.emit(OpKind.SOFTMAX, SoftmaxAttrs(1, log), [flat],
                 name=f"{cx.node.output[0]}_sm2d")  # type: ignore[union-attr]
    cx.bind(0, cx.emit(OpKind.RESHAPE, ReshapeAttrs(shape), [sm]))


@converter("Softmax", 1, 11, 13)
def softmax(cx: ImportContext) -> None:
    """Softmax with the axis rules before and from opset 13."""
    _softmax(cx, False)


@converter("LogSoftmax", 1, 11, 13)
def log_softmax(cx: ImportContext) -> None:
    """LogSoftmax with the axis rules before and from opset 13."""
    _softmax(cx, True)


# ------------------------------------------------------------------ arithmetic


def _binary(kind: OpKind) -> Handler:
    def handler(cx: ImportContext) -> None:
        cx.bind(0, cx.emit(kind, NoAttrs(), [float_operand(cx, 0), float_operand(cx, 1)]))

    handler.__doc__ = f"{kind.value} with numpy broadcasting (opset >= 7)."
    return handler


for _op, _kind in (("Add", OpKind.ADD), ("Sub", OpKind.SUB), ("Mul", OpKind.MUL),
                   ("Div", OpKind.DIV)):
    converter(_op, 7, 13, 14)(_binary(_kind))


@converter("BatchNormalization", 7, 9, 14, 15)
def batch_norm(cx: ImportContext) -> None:
    """Inference BatchNormalization as x * scale + shift with folded constant statistics."""
    assert cx.node is not None
    if any(cx.output_used(i) for i in range(1, len(cx.node.output))):
        raise cx.unsupported("BatchNormalization in training mode (extra outputs)")
    if cx.int_attr("training_mode", 0):
        raise cx.unsupported("BatchNormalization with training_mode=1")
    x = cx.float_input(0)
    shape = cx.type_of(x).shape
    if len(shape) < 2:
        raise cx.error(f"input must have rank >= 2, got {list(shape)}")
    gamma, beta, mean, var = (cx.const(i).astype(np.float64) for i in range(1, 5))
    c = shape[1]
    for name, v in (("scale", gamma), ("B", beta), ("mean", mean), ("var", var)):
        if v.shape != (c,):
            raise cx.error(f"{name} has shape {list(v.shape)}, expected [{c}]")
    eps = cx.float_attr("epsilon", 1e-5)
    scale = gamma / np.sqrt(var + eps)
    shift = beta - mean * scale
    bshape = (c,) + (1,) * (len(shape) - 2)
    out = cx.node.output[0]
    s = cx.emit_const(scale.astype(np.float32).reshape(bshape), f"{out}_bn_scale")
    t = cx.emit_const(shift.astype(np.float32).reshape(bshape), f"{out}_bn_shift")
    y = cx.emit(OpKind.MUL, NoAttrs(), [x, s], name=f"{out}_bn_mul")
    cx.bind(0, cx.emit(OpKind.ADD, NoAttrs(), [y, t]))


def _reduce(cx: ImportContext, mode: str, axes_from_input: bool) -> None:
    x = cx.float_input(0)
    rank = len(cx.type_of(x).shape)
    if axes_from_input:
        axes = tuple(int(a) for a in cx.const(1).reshape(-1)) if cx.has_input(1) else ()
    else:
        axes = cx.ints("axes") or ()
    keep = cx.flag_attr("keepdims", True)
    if not axes:
        if cx.flag_attr("noop_with_empty_axes", False):
            cx.bind(0, cx.emit(OpKind.IDENTITY, NoAttrs(), [x]))
            return
        axes = tuple(range(rank))
    norm = tuple(sorted({cx.rank_axis(a, rank) for a in axes}))
    cx.bind(0, cx.emit(OpKind.REDUCE, ReduceAttrs(mode, norm, keep), [x]))


@converter("ReduceMean", 1, 11, 13)
def reduce_mean(cx: ImportContext) -> None:
    """ReduceMean with axes as an attribute."""
    _reduce(cx, "mean", False)


@converter("ReduceMean", 18)
def reduce_mean_v18(cx: ImportContext) -> None:
    """ReduceMean with axes as an input."""
    _reduce(cx, "mean", True)


@converter("ReduceMax", 1, 11, 12, 13)
def reduce_max(cx: ImportContext) -> None:
    """ReduceMax with axes as an attribute."""
    _reduce(cx, "max", False)


@converter("ReduceMax", 18, 20)
def reduce_max_v18(cx: ImportContext) -> None:
    """ReduceMax with axes as an input."""
    _reduce(cx, "max", True)


@converter("MatMul", 1, 9, 13)
def matmul(cx: ImportContext) -> None:
    """MatMul with numpy semantics."""
    cx.bind(0, cx.emit(OpKind.MATMUL, MatMulAttrs(), [float_operand(cx, 0), float_operand(cx, 1)]))


@converter("Gemm", 7, 9, 11, 13)
def gemm(cx: ImportContext) -> None:
    """Gemm = alpha * op(A) @ op(B) + beta * C, as Transpose/MatMul/Mul/Add the folder cleans."""
    assert cx.node is not None
    out = cx.node.output[0]
    a, b = float_operand(cx, 0), float_operand(cx, 1)
    for i, t in ((0, a), (1, b)):
        if len(cx.type_of(t).shape) != 2:
            raise cx.error(f"input {i} must be 2-D, got {list(cx.type_of(t).shape)}")

    def transposed(t: str, tag: str) -> str:
        # constant operands (nn.Linear weights) are transposed now, not by a runtime node
        if cx.graph.is_const(t):
            return cx.emit_const(np.ascontiguousarray(cx.graph.const_value(t).T), f"{out}_{tag}")
        return cx.emit(OpKind.TRANSPOSE, TransposeAttrs((1, 0)), [t], name=f"{out}_{tag}")

    if cx.flag_attr("transA", False):
        a = transposed(a, "At")
    if cx.flag_attr("transB", False):
        b = transposed(b, "Bt")
    alpha, beta = cx.float_attr("alpha", 1.0), cx.float_attr("beta", 1.0)
    has_c = cx.has_input(2)
    attrs = MatMulAttrs(source="gemm_beta0" if has_c and beta == 0.0 else "gemm")
    y = cx.emit(OpKind.MATMUL, attrs, [a, b],
                name=f"{out}_mm" if (alpha != 1.0 or has_c) else None)
    if alpha != 1.0:
        k = cx.emit_const(np.array(alpha, np.float32), f"{out}_alpha")
        y = cx.emit(OpKind.MUL, NoAttrs(), [y, k], name=f"{out}_scaled" if has_c else None)
    if has_c and beta != 0.0:
        c = float_operand(cx, 2)
        if beta != 1.0 and cx.graph.is_const(c):
            scaled = cx.graph.const_value(c) * np.float32(beta)
            c = cx.emit_const(scaled.astype(np.float32), f"{out}_betaC")
        elif beta != 1.0:
            k = cx.emit_const(np.array(beta, np.float32), f"{out}_beta")
            c = cx.emit(OpKind.MUL, NoAttrs(), [c, k], name=f"{out}_betaC")
        y = cx.emit(OpKind.ADD, NoAttrs(), [y, c])
    cx.bind(0, y)


# The structure and quantized ops register themselves from their modules.
from sqzc.frontends.onnx import quant_converters, shape_converters  # noqa: F401
