"""The ONNX op -> IR converter table, with opset-versioned handlers.

``CONVERTERS[(domain, op_type)]`` lists ``(since_version, handler)``; the handler used is
the one with the highest ``since_version`` not above the model's opset for that domain.
Each handler reads the current node through the ``ImportContext`` and emits IR ops.
``FOLD_ONLY`` ops (shape arithmetic) exist only as compile-time evaluations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from sqzc.ops import (
    INT_DTYPES,
    AxisAttrs,
    CastAttrs,
    ClipAttrs,
    ConvAttrs,
    LeakyReluAttrs,
    NoAttrs,
    OpKind,
    PoolAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SoftmaxAttrs,
    TransposeAttrs,
)

if TYPE_CHECKING:
    from sqzc.frontends.onnx.importer import ImportContext

Handler = Callable[["ImportContext"], None]
CONVERTERS: dict[tuple[str, str], list[tuple[int, Handler]]] = {}

#: Ops sqzc only evaluates at compile time (their inputs must be constants).
FOLD_ONLY = frozenset({
    "Shape", "Size", "Gather", "Slice", "ConstantOfShape", "Range", "Equal", "Where",
    "Expand", "Floor", "Ceil", "Sqrt", "Not", "Less", "Greater", "Min", "Max", "Neg",
    "Abs", "ReduceProd", "ReduceSum", "Tile", "ScatterND", "NonZero", "Pow",
})

#: ONNX TensorProto dtype codes that Cast may target.
_CAST_TO = {1: "float32", 10: "float16", 7: "int64", 6: "int32", 3: "int8", 2: "uint8",
            11: "float64", 9: "bool"}


def converter(op_type: str, *versions: int, domain: str = "") -> Callable[[Handler], Handler]:
    """Register ``fn`` for ``op_type`` from each opset in ``versions``."""

    def register(fn: Handler) -> Handler:
        for v in versions:
            CONVERTERS.setdefault((domain, op_type), []).append((v, fn))
            CONVERTERS[(domain, op_type)].sort(key=lambda e: e[0])
        return fn

    return register


def select_converter(domain: str, op_type: str, opset: int) -> Handler | None:
    """The handler for ``op_type`` at ``opset``; None if sqzc cannot convert it."""
    if domain == "" and op_type in FOLD_ONLY:
        return _fold_only
    best = None
    for since, fn in CONVERTERS.get((domain, op_type), []):
        if since <= opset:
            best = fn
    return best


def _fold_only(cx: ImportContext) -> None:  # pragma: no cover - convert_node folds first
    raise cx.unsupported("op only supported on compile-time constants")


def supported_ops() -> list[tuple[str, str, int]]:
    """(domain, op_type, lowest opset) for every op sqzc converts (README table)."""
    rows = [(d, op, min(v for v, _ in fns)) for (d, op), fns in CONVERTERS.items()]
    rows += [("", op, 1) for op in FOLD_ONLY]
    return sorted(rows)


# ------------------------------------------------------------------ helpers


def _pair(cx: ImportContext, name: str, default: int, n: int = 2) -> tuple[int, ...]:
    v = cx.ints(name, [default] * n)
    assert v is not None
    if len(v) != n:
        raise cx.error(f"attribute '{name}' must have {n} values, got {list(v)}")
    return v


def _spatial_rank(cx: ImportContext, x: str) -> None:
    rank = len(cx.type_of(x).shape)
    if rank != 4:
        raise cx.unsupported(f"{rank - 2}-D spatial input (sqzc supports 2-D NCHW)")


def _resolve_pads(cx: ImportContext, size: tuple[int, int], kernel: tuple[int, ...],
                  strides: tuple[int, ...], dilations: tuple[int, ...]) -> tuple[int, int, int, int]:
    """Explicit pads (top, left, bottom, right) from ``pads`` or ``auto_pad``."""
    auto = cx.attr("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else str(auto)
    if auto in ("NOTSET", ""):
        pads = _pair(cx, "pads", 0, 4)
        if any(p < 0 for p in pads):
            raise cx.error(f"negative pads {list(pads)}")
        return (pads[0], pads[1], pads[2], pads[3])
    if auto == "VALID":
        return (0, 0, 0, 0)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise cx.error(f"unknown auto_pad '{auto}'")
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if auto == "SAME_UPPER" else big)
        end.append(big if auto == "SAME_UPPER" else small)
    return (begin[0], begin[1], end[0], end[1])


def _check_positive(cx: ImportContext, name: str, values: tuple[int, ...]) -> None:
    if any(v < 1 for v in values):
        raise cx.error(f"attribute '{name}' must be positive, got {list(values)}")


def _float_operand(cx: ImportContext, i: int) -> str:
    """Input ``i`` as float32; a float16 *constant* (weight) is widened here, at import,
    rather than by a runtime Cast node: before fold-constants runs, such a Cast looks like
    a runtime tensor without a batch axis and dynamic-batch models would be refused."""
    nid = cx.input(i)
    if cx.graph.is_const(nid) and cx.type_of(nid).dtype == "float16":
        value = cx.graph.const_value(nid).astype(np.float32)
        return cx.emit_const(value, f"{cx.node.input[i]}_f32")  # type: ignore[union-attr]
    return cx.float_input(i)


# ------------------------------------------------------------------ convolution and pooling


@converter("Conv", 1, 11, 22)
def conv(cx: ImportContext) -> None:
    """Conv: 2-D, any kernel/stride/pad/dilation/auto_pad, grouped and depthwise."""
    x = cx.float_input(0)
    _spatial_rank(cx, x)
    w = _float_operand(cx, 1)
    wshape = cx.type_of(w).shape
    if len(wshape) != 4:
        raise cx.error(f"weight must be 4-D, got {list(wshape)}")
    kernel = cx.ints("kernel_shape") or tuple(wshape[2:])
    if len(kernel) != 2:
        raise cx.error(f"kernel_shape must have 2 values, got {list(kernel)}")
    strides, dil = _pair(cx, "strides", 1), _pair(cx, "dilations", 1)
    _check_positive(cx, "strides", strides)
    _check_positive(cx, "dilations", dil)
    _check_positive(cx, "kernel_shape", kernel)
    size = cx.type_of(x).shape[2:]
    pads = _resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    attrs = ConvAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads,
                      (dil[0], dil[1]), cx.int_attr("group", 1))
    ins = [x, w] + ([_float_operand(cx, 2)] if cx.has_input(2) else [])
    cx.bind(0, cx.emit(OpKind.CONV, attrs, ins))


def _pool(cx: ImportContext, kind: OpKind, with_ceil: bool, with_dil: bool,
          with_count: bool) -> None:
    raw = cx.input(0)
    int_max = kind is OpKind.MAXPOOL and cx.type_of(raw).dtype in INT_DTYPES
    x = raw if int_max else cx.float_input(0)  # max pooling is exact on 8-bit values
    _spatial_rank(cx, x)
    kernel = cx.ints("kernel_shape")
    if kernel is None or len(kernel) != 2:
        raise cx.error("kernel_shape must have 2 values")
    strides = _pair(cx, "strides", 1)
    dil = _pair(cx, "dilations", 1) if with_dil else (1, 1)
    for name, vals in (("kernel_shape", kernel), ("strides", strides), ("dilations", dil)):
        _check_positive(cx, name, vals)
    size = cx.type_of(x).shape[2:]
    pads = _resolve_pads(cx, (size[0], size[1]), kernel, strides, dil)
    ceil = bool(cx.int_attr("ceil_mode", 0)) if with_ceil else False
    count = bool(cx.int_attr("count_include_pad", 0)) if with_count else False
    if kind is OpKind.MAXPOOL and cx.output_used(1):
        raise cx.unsupported("MaxPool's Indices output")
    attrs = PoolAttrs((kernel[0], kernel[1]), (strides[0], strides[1]), pads, (dil[0], dil[1]),
                      ceil, count)
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
    attrs = ReduceAttrs(mode, tuple(range(2, rank)), True, lowest_finite=mode == "max")
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


@converter("Relu", 1, 6, 13, 14)
def relu(cx: ImportContext) -> None:
    """Relu."""
    cx.bind(0, cx.emit(OpKind.RELU, NoAttrs(), [cx.float_input(0)]))


@converter("LeakyRelu", 1, 6, 16)
def leaky_relu(cx: ImportContext) -> None:
    """LeakyRelu (alpha defaults to 0.01)."""
    attrs = LeakyReluAttrs(cx.float_attr("alpha", 0.01))
    cx.bind(0, cx.emit(OpKind.LEAKY_RELU, attrs, [cx.float_input(0)]))


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
    attrs = ClipAttrs(cx.float_attr("min", lowest), cx.float_attr("max", highest))
    cx.bind(0, cx.emit(OpKind.CLIP, attrs, [cx.float_input(0)]))


@converter("Clip", 11, 12, 13)
def clip_v11(cx: ImportContext) -> None:
    """Clip with optional min/max inputs, which must be compile-time constants."""
    lowest, highest = _clip_default_bounds(cx, input_typed=True)
    lo = float(cx.const(1).reshape(-1)[0]) if cx.has_input(1) else lowest
    hi = float(cx.const(2).reshape(-1)[0]) if cx.has_input(2) else highest
    cx.bind(0, cx.emit(OpKind.CLIP, ClipAttrs(lo, hi), [cx.float_input(0)]))


# ------------------------------------------------------------------ structure


@converter("Concat", 1, 4, 11, 13)
def concat(cx: ImportContext) -> None:
    """Concat of float tensors (integer shape concats are folded before this)."""
    assert cx.node is not None
    raw = [cx.input(i) for i in range(len(cx.node.input))]
    dtypes = {cx.type_of(r).dtype for r in raw}
    if len(dtypes) == 1 and dtypes <= INT_DTYPES:
        ins = raw  # concatenating 8-bit tensors of one quantization is a copy
    else:
        ins = [_float_operand(cx, i) for i in range(len(raw))]
    rank = len(cx.type_of(ins[0]).shape)
    axis = cx.rank_axis(cx.int_attr("axis", 1), rank)
    cx.bind(0, cx.emit(OpKind.CONCAT, AxisAttrs(axis), ins))


@converter("Dropout", 1, 6, 7, 10, 12, 13, 22)
def dropout(cx: ImportContext) -> None:
    """Dropout in inference mode is the identity (the mask output is unsupported)."""
    assert cx.node is not None
    if cx.output_used(1):
        raise cx.unsupported("Dropout's mask output")
    if cx.has_input(2) and bool(np.asarray(cx.const(2)).reshape(-1)[0]):
        raise cx.unsupported("Dropout in training mode")
    if cx.int_attr("is_test", 1) == 0 and cx.opsets.get("", 1) < 7:
        raise cx.unsupported("Dropout with is_test=0")
    cx.bind(0, cx.emit(OpKind.IDENTITY, NoAttrs(), [cx.float_input(0)]))


@converter("Identity", 1, 13, 14, 16, 19, 21)
def identity(cx: ImportContext) -> None:
    """Identity."""
    x = cx.input(0)
    if cx.graph.is_const(x):
        cx.bind(0, x)
        return
    cx.bind(0, cx.emit(OpKind.IDENTITY, NoAttrs(), [x]))


def _batch_mixing(cx: ImportContext, x: str, what: str) -> None:
    """Refuse an op that merges the dynamic batch axis into others: the library runs the
    batch-1 program once per sample, which such an op would make wrong (the reshape it
    becomes still has a leading 1, so the importer's separability check cannot see it)."""
    if cx.graph.dynamic_batch and not cx.graph.is_const(x):
        raise cx.unsupported(f"dynamic batch: {what} (fix the batch with --input-shape)")


def _softmax(cx: ImportContext, log: bool) -> None:
    x = cx.float_input(0)
    shape = cx.type_of(x).shape
    opset = cx.opsets.get("", 1)
    axis = cx.rank_axis(cx.int_attr("axis", -1 if opset >= 13 else 1), len(shape))
    trailing = int(np.prod(shape[axis + 1:], dtype=np.int64))
    if opset < 13 and axis == 0 and trailing > 1:
        _batch_mixing(cx, x, "axis=0 before opset 13 normalizes across the batch axis")
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


def _reshape_to(cx: ImportContext, shape: tuple[int, ...], x: str | None = None) -> None:
    x = x if x is not None else cx.input(0)
    if cx.graph.is_const(x):
        value = cx.graph.const_value(x)
        if value.size != int(np.prod(shape, dtype=np.int64)):
            raise cx.error(f"cannot reshape {list(value.shape)} to {list(shape)}")
        cx.bind(0, cx.emit_const(value.reshape(shape), cx.node.output[0]))  # type: ignore[union-attr]
        return
    cx.bind(0, cx.emit(OpKind.RESHAPE, ReshapeAttrs(tuple(int(d) for d in shape)), [x]))


@converter("Flatten", 1, 9, 11, 13, 21)
def flatten(cx: ImportContext) -> None:
    """Flatten to 2-D at ``axis`` (a reshape)."""
    shape = cx.type_of(cx.input(0)).shape
    axis = cx.int_attr("axis", 1)
    if not -len(shape) <= axis <= len(shape):
        raise cx.error(f"axis {axis} out of range for rank {len(shape)}")
    axis = axis % len(shape) if axis < 0 else axis
    if axis == 0:
        _batch_mixing(cx, cx.input(0), "Flatten at axis 0 folds the batch axis into a row")
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    _reshape_to(cx, (outer, int(np.prod(shape[axis:], dtype=np.int64))))


def resolve_reshape(cx: ImportContext, in_shape: tuple[int, ...], target: np.ndarray,
                    allowzero: bool) -> tuple[int, ...]:
    """ONNX Reshape target with 0 (copy) and -1 (infer) resolved."""
    dims = [int(d) for d in np.asarray(target).reshape(-1)]
    out = []
    for i, d in enumerate(dims):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise cx.error(f"reshape dim {i} is 0 but the input has rank {len(in_shape)}")
            out.append(in_shape[i])
        else:
            out.append(d)
    if out.count(-1) > 1 or any(d < -1 for d in out):
        raise cx.error(f"invalid reshape target {dims}")
    total = int(np.prod(in_shape, dtype=np.int64))
    if -1 in out:
        known = int(np.prod([d for d in out if d != -1], dtype=np.int64))
        if known == 0 or total % known:
            raise cx.error(f"cannot reshape {list(in_shape)} to {dims}")
        out[out.index(-1)] = total // known
    if int(np.prod(out, dtype=np.int64)) != total:
        raise cx.error(f"cannot reshape {list(in_shape)} to {dims}")
    return tuple(out)


@converter("Reshape", 5, 13, 14, 19, 21)
def reshape(cx: ImportContext) -> None:
    """Reshape with a constant (possibly folded) target shape."""
    in_shape = cx.type_of(cx.input(0)).shape
    target = cx.const(1)
    _reshape_to(cx, resolve_reshape(cx, in_shape, target, bool(cx.int_attr("allowzero", 0))))


def _axes(cx: ImportContext, from_input: bool) -> tuple[int, ...] | None:
    if from_input:
        return tuple(int(a) for a in cx.const(1).reshape(-1)) if cx.has_input(1) else None
    return cx.ints("axes")


def _squeeze(cx: ImportContext, from_input: bool) -> None:
    shape = cx.type_of(cx.input(0)).shape
    axes = _axes(cx, from_input)
    if axes is None:
        keep = [d for d in shape if d != 1]
    else:
        norm = {cx.rank_axis(a, len(shape)) for a in axes}
        for a in norm:
            if shape[a] != 1:
                raise cx.error(f"cannot squeeze axis {a} of size {shape[a]}")
        keep = [d for i, d in enumerate(shape) if i not in norm]
    _reshape_to(cx, tuple(keep))


def _unsqueeze(cx: ImportContext, from_input: bool) -> None:
    shape = cx.type_of(cx.input(0)).shape
    axes = _axes(cx, from_input)
    if not axes:
        raise cx.error("Unsqueeze needs axes")
    rank = len(shape) + len(axes)
    norm = sorted(cx.rank_axis(a, rank) for a in axes)
    if len(set(norm)) != len(norm):
        raise cx.error(f"duplicate axes {list(axes)}")
    if norm[0] == 0:
        _batch_mixing(cx, cx.input(0), "Unsqueeze at axis 0 moves the batch axis to axis 1")
    out, it = [], iter(shape)
    for i in range(rank):
        out.append(1 if i in norm else next(it))
    _reshape_to(cx, tuple(out))


@converter("Squeeze", 1, 11)
def squeeze_v1(cx: ImportContext) -> None:
    """Squeeze with an axes attribute."""
    _squeeze(cx, False)


@converter("Squeeze", 13, 21)
def squeeze_v13(cx: ImportContext) -> None:
    """Squeeze with an axes input."""
    _squeeze(cx, True)


@converter("Unsqueeze", 1, 11)
def unsqueeze_v1(cx: ImportContext) -> None:
    """Unsqueeze with an axes attribute."""
    _unsqueeze(cx, False)


@converter("Unsqueeze", 13, 21)
def unsqueeze_v13(cx: ImportContext) -> None:
    """Unsqueeze with an axes input."""
    _unsqueeze(cx, True)


@converter("Transpose", 1, 13, 21)
def transpose(cx: ImportContext) -> None:
    """Transpose (default perm reverses the axes)."""
    x = cx.input(0)
    rank = len(cx.type_of(x).shape)
    perm = cx.ints("perm") or tuple(reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise cx.error(f"perm {list(perm)} is not a permutation of rank {rank}")
    cx.bind(0, cx.emit(OpKind.TRANSPOSE, TransposeAttrs(tuple(perm)), [x]))


# ------------------------------------------------------------------ arithmetic


def _binary(kind: OpKind) -> Handler:
    def handler(cx: ImportContext) -> None:
        cx.bind(0, cx.emit(kind, NoAttrs(), [_float_operand(cx, 0), _float_operand(cx, 1)]))

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
    keep = bool(cx.int_attr("keepdims", 1))
    if not axes:
        if cx.int_attr("noop_with_empty_axes", 0):
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
    cx.bind(0, cx.emit(OpKind.MATMUL, NoAttrs(), [_float_operand(cx, 0), _float_operand(cx, 1)]))


@converter("Gemm", 7, 9, 11, 13)
def gemm(cx: ImportContext) -> None:
    """Gemm = alpha * op(A) @ op(B) + beta * C, as Transpose/MatMul/Mul/Add the folder cleans."""
    assert cx.node is not None
    out = cx.node.output[0]
    a, b = _float_operand(cx, 0), _float_operand(cx, 1)
    for i, t in ((0, a), (1, b)):
        if len(cx.type_of(t).shape) != 2:
            raise cx.error(f"input {i} must be 2-D, got {list(cx.type_of(t).shape)}")

    def transposed(t: str, tag: str) -> str:
        # constant operands (nn.Linear weights) are transposed now, not by a runtime node
        if cx.graph.is_const(t):
            return cx.emit_const(np.ascontiguousarray(cx.graph.const_value(t).T), f"{out}_{tag}")
        return cx.emit(OpKind.TRANSPOSE, TransposeAttrs((1, 0)), [t], name=f"{out}_{tag}")

    if cx.int_attr("transA", 0):
        a = transposed(a, "At")
    if cx.int_attr("transB", 0):
        b = transposed(b, "Bt")
    alpha, beta = cx.float_attr("alpha", 1.0), cx.float_attr("beta", 1.0)
    has_c = cx.has_input(2)
    y = cx.emit(OpKind.MATMUL, NoAttrs(), [a, b],
                name=f"{out}_mm" if (alpha != 1.0 or has_c) else None)
    if alpha != 1.0:
        k = cx.emit_const(np.array(alpha, np.float32), f"{out}_alpha")
        y = cx.emit(OpKind.MUL, NoAttrs(), [y, k], name=f"{out}_scaled" if has_c else None)
    if has_c and beta != 0.0:
        c = _float_operand(cx, 2)
        if beta != 1.0 and cx.graph.is_const(c):
            scaled = cx.graph.const_value(c) * np.float32(beta)
            c = cx.emit_const(scaled.astype(np.float32), f"{out}_betaC")
        elif beta != 1.0:
            k = cx.emit_const(np.array(beta, np.float32), f"{out}_beta")
            c = cx.emit(OpKind.MUL, NoAttrs(), [c, k], name=f"{out}_betaC")
        y = cx.emit(OpKind.ADD, NoAttrs(), [y, c])
    cx.bind(0, y)


@converter("Constant", 1, 9, 11, 12, 13, 19, 21)
def constant(cx: ImportContext) -> None:
    """Constant from any of its value attributes."""
    assert cx.node is not None
    if len(cx.node.attribute) != 1:
        raise cx.error("Constant needs exactly one value attribute")
    attr = cx.node.attribute[0]
    v = cx.attr(attr.name)
    if attr.name == "value":
        from onnx import numpy_helper

        if attr.t.data_location == 1:  # EXTERNAL
            raise cx.unsupported("Constant with external data")
        value = numpy_helper.to_array(attr.t)
    elif attr.name in ("value_float", "value_floats"):
        value = np.array(v, dtype=np.float32)
    elif attr.name in ("value_int", "value_ints"):
        value = np.array(v, dtype=np.int64)
    else:
        raise cx.unsupported(f"Constant with attribute '{attr.name}'")
    cx.bind(0, cx.emit_const(np.asarray(value), cx.node.output[0]))


@converter("Cast", 1, 6, 9, 13, 19, 21)
def cast(cx: ImportContext) -> None:
    """Cast between float32 and float16 (integer casts fold at compile time)."""
    to = cx.int_attr("to", 0)
    if to not in _CAST_TO:
        raise cx.unsupported(f"Cast to dtype code {to}")
    x = cx.input(0)
    src = cx.type_of(x).dtype
    dst = _CAST_TO[to]
    if dst == src:  # a copy, like Identity: a graph output must not alias a graph input
        cx.bind(0, x if cx.graph.is_const(x) else cx.emit(OpKind.IDENTITY, NoAttrs(), [x]))
        return
    if {src, dst} - {"float32", "float16"}:
        raise cx.unsupported(f"Cast from {src} to {dst} on a runtime tensor")
    cx.bind(0, cx.emit(OpKind.CAST, CastAttrs(dst), [x]))


# The quantized ops (QDQ, QLinear*, com.microsoft) register themselves from their module.
from sqzc.frontends.onnx import quant_converters  # noqa: E402,F401
