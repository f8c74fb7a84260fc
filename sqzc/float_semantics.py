"""Shape rules and numpy references of the ops that are not quantized.

Convolution (plain, channel-blocked and Winograd-packed), pooling, reductions, softmax,
element-wise and data-movement ops, plus the geometry every shape rule is built from
(convolution/pooling output sizes, ONNX broadcasting). This is the bottom layer of the
op semantics: :mod:`sqzc.quant_semantics` builds the quantized ops on the conv/pool rules
and the float convolution here, and :mod:`sqzc.semantics` dispatches on ``OpKind`` over
both. Keeping it free of quantization keeps the import graph acyclic
(float <- quant <- dispatch). Shape rules raise ``ModelError`` with the offending shapes;
callers add the node name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops import (
    AxisAttrs,
    CastAttrs,
    ConstAttrs,
    ConvAttrs,
    OpKind,
    PoolAttrs,
    ReduceAttrs,
    ReshapeAttrs,
    SoftmaxAttrs,
    TensorType,
    TransposeAttrs,
)
from sqzc.winograd import untransform_weights

ShapeRule = Callable[[object, Sequence[TensorType]], TensorType]
Reference = Callable[[object, Sequence[np.ndarray]], np.ndarray]


def conv_out_dim(size: int, k: int, s: int, d: int, p0: int, p1: int) -> int:
    """Output length of a convolution along one spatial axis (floor rounding)."""
    return (size + p0 + p1 - d * (k - 1) - 1) // s + 1


def pool_out_dim(size: int, k: int, s: int, d: int, p0: int, p1: int, ceil: bool) -> int:
    """Output length of pooling along one axis; ceil mode drops a window starting in the
    end padding, as PyTorch, onnxruntime and the ONNX reference do."""
    span = size + p0 + p1 - d * (k - 1) - 1
    if not ceil:
        return span // s + 1
    out = -(-span // s) + 1
    if (out - 1) * s >= size + p0:
        out -= 1
    return out


def broadcast_shapes(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    """Numpy/ONNX multidirectional broadcasting, with a ModelError on mismatch."""
    try:
        return tuple(np.broadcast_shapes(a, b))
    except ValueError:
        raise ModelError(f"shapes {list(a)} and {list(b)} do not broadcast") from None


# ----------------------------------------------------------------------------- shape rules


def _same(attrs: object, ins: Sequence[TensorType]) -> TensorType:
    return ins[0]


def _conv_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ConvAttrs)
    x, w = ins[0], ins[1]
    if a.packed:
        return _packed_conv_shape(a, ins)
    if len(x.shape) != 4 or len(w.shape) != 4:
        raise ModelError(f"Conv needs 4-D input and weight, got {list(x.shape)} and {list(w.shape)}")
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    if a.group < 1 or c % a.group or oc % a.group or icg * a.group != c:
        raise ModelError(
            f"Conv input has {c} channels but weight {list(w.shape)} with group={a.group} "
            f"expects {icg * a.group}"
        )
    if (kh, kw) != a.kernel:
        raise ModelError(f"Conv kernel_shape {list(a.kernel)} != weight {list(w.shape)}")
    if len(ins) > 2 and ins[2].shape != (oc,):
        raise ModelError(f"Conv bias shape {list(ins[2].shape)} != [{oc}]")
    oh = conv_out_dim(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3])
    if oh < 1 or ow < 1:
        raise ModelError(f"Conv output would be empty ({oh}x{ow}) for input {list(x.shape)}")
    return TensorType((n, oc, oh, ow), a.quantize.dtype if a.quantize else x.dtype)


def _packed_conv_shape(a: ConvAttrs, ins: Sequence[TensorType]) -> TensorType:
    """Shape rule for a conv whose weight is packed [OCb, IC, KH, KW, b] (OC in out_channels)."""
    x, w = ins[0], ins[1]
    n, c, h, wd = x.shape
    if a.winograd:
        alpha = a.winograd + 2
        if len(w.shape) != 4 or w.shape[0] != alpha * alpha or w.shape[2] != c \
                or w.shape[3] != a.packed or a.kernel != (3, 3) or a.strides != (1, 1) \
                or a.dilations != (1, 1) or a.group != 1:
            raise ModelError(f"Winograd conv weight {list(w.shape)} does not fit input "
                             f"{list(x.shape)}")
        oh = conv_out_dim(h, 3, 1, 1, a.pads[0], a.pads[2])
        ow = conv_out_dim(wd, 3, 1, 1, a.pads[1], a.pads[3])
        return TensorType((n, a.out_channels, oh, ow), x.dtype)
    if len(w.shape) != 5:
        raise ModelError(f"packed conv weight {list(w.shape)} is not [OC/b, IC, KH, KW, b]")
    ocb, ic, kh, kw, blk = w.shape
    if blk != a.packed or ic != c or (kh, kw) != a.kernel or a.group != 1:
        raise ModelError(f"packed conv weight {list(w.shape)} does not fit input {list(x.shape)}")
    oh = conv_out_dim(h, kh, a.strides[0], a.dilations[0], a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, a.strides[1], a.dilations[1], a.pads[1], a.pads[3])
    return TensorType((n, a.out_channels, oh, ow), x.dtype)


def _pool_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, PoolAttrs)
    x = ins[0]
    if len(x.shape) != 4:
        raise ModelError(f"2-D pooling needs a 4-D input, got {list(x.shape)}")
    n, c, h, w = x.shape
    oh = pool_out_dim(h, a.kernel[0], a.strides[0], a.dilations[0], a.pads[0], a.pads[2],
                      a.ceil_mode)
    ow = pool_out_dim(w, a.kernel[1], a.strides[1], a.dilations[1], a.pads[1], a.pads[3],
                      a.ceil_mode)
    if oh < 1 or ow < 1:
        raise ModelError(f"pooling output would be empty ({oh}x{ow}) for input {list(x.shape)}")
    return TensorType((n, c, oh, ow), x.dtype)


def _reduce_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ReduceAttrs)
    shape = ins[0].shape
    if any(ax >= len(shape) for ax in a.axes):
        raise ModelError(f"reduce axes {list(a.axes)} out of range for {list(shape)}")
    if a.keepdims:
        out = tuple(1 if i in a.axes else d for i, d in enumerate(shape))
    else:
        out = tuple(d for i, d in enumerate(shape) if i not in a.axes)
    return TensorType(out, ins[0].dtype)


def _concat_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, AxisAttrs)
    first = ins[0]
    for t in ins[1:]:
        same_rank = len(t.shape) == len(first.shape)
        others_match = same_rank and all(
            d0 == d1 for i, (d0, d1) in enumerate(zip(first.shape, t.shape)) if i != a.axis
        )
        if not others_match or t.dtype != first.dtype:
            raise ModelError(
                f"Concat inputs {[str(t) for t in ins]} differ outside axis {a.axis}"
            )
    if a.axis >= len(first.shape):
        raise ModelError(f"Concat axis {a.axis} out of range for {list(first.shape)}")
    shape = list(first.shape)
    shape[a.axis] = sum(t.shape[a.axis] for t in ins)
    return TensorType(tuple(shape), first.dtype)


def _reshape_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ReshapeAttrs)
    out = TensorType(a.shape, ins[0].dtype)
    if out.size != ins[0].size:
        raise ModelError(f"cannot reshape {list(ins[0].shape)} to {list(a.shape)}")
    return out


def _transpose_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, TransposeAttrs)
    shape = ins[0].shape
    if sorted(a.perm) != list(range(len(shape))):
        raise ModelError(f"Transpose perm {list(a.perm)} is not a permutation of rank {len(shape)}")
    return TensorType(tuple(shape[p] for p in a.perm), ins[0].dtype)


def _binary_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    if ins[0].dtype != ins[1].dtype:
        raise ModelError(f"operand dtypes differ: {ins[0]} and {ins[1]}")
    return TensorType(broadcast_shapes(ins[0].shape, ins[1].shape), ins[0].dtype)


def _matmul_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    x, y = ins
    if x.dtype != y.dtype:
        raise ModelError(f"MatMul operand dtypes differ: {x} and {y}")
    if len(x.shape) < 1 or len(y.shape) < 1:
        raise ModelError("MatMul operands must have rank >= 1")
    try:
        shape = np.matmul(np.empty(x.shape, np.int8), np.empty(y.shape, np.int8)).shape
    except ValueError:
        raise ModelError(f"MatMul shapes {list(x.shape)} and {list(y.shape)} do not match") from None
    return TensorType(tuple(shape), x.dtype)


def _softmax_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, SoftmaxAttrs)
    if a.axis >= len(ins[0].shape):
        raise ModelError(f"softmax axis {a.axis} out of range for {list(ins[0].shape)}")
    return ins[0]


def _cast_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, CastAttrs)
    return TensorType(ins[0].shape, a.to)


def _const_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, ConstAttrs)
    return TensorType(tuple(a.value.shape), a.value.dtype.name)


#: kind -> shape rule for the kinds above (``sqzc.semantics.SHAPE_RULES`` merges it).
FLOAT_SHAPE_RULES: dict[OpKind, ShapeRule] = {
    OpKind.CONST: _const_shape,
    OpKind.CONV: _conv_shape,
    OpKind.RELU: _same,
    OpKind.CLIP: _same,
    OpKind.LEAKY_RELU: _same,
    OpKind.MAXPOOL: _pool_shape,
    OpKind.AVGPOOL: _pool_shape,
    OpKind.REDUCE: _reduce_shape,
    OpKind.CONCAT: _concat_shape,
    OpKind.SOFTMAX: _softmax_shape,
    OpKind.RESHAPE: _reshape_shape,
    OpKind.TRANSPOSE: _transpose_shape,
    OpKind.ADD: _binary_shape,
    OpKind.SUB: _binary_shape,
    OpKind.MUL: _binary_shape,
    OpKind.DIV: _binary_shape,
    OpKind.MATMUL: _matmul_shape,
    OpKind.CAST: _cast_shape,
    OpKind.IDENTITY: _same,
    OpKind.REORDER: _same,
}


# ------------------------------------------------------------------------ reference semantics


def ref_conv(a: ConvAttrs, x: np.ndarray, w: np.ndarray, b: np.ndarray | None) -> np.ndarray:
    """Direct convolution in float64-free numpy (accumulates in the input dtype)."""
    n, c, h, wd = x.shape
    oc, icg, kh, kw = w.shape
    (sh, sw), (dh, dw), g = a.strides, a.dilations, a.group
    xp = np.pad(x, ((0, 0), (0, 0), (a.pads[0], a.pads[2]), (a.pads[1], a.pads[3])))
    oh = conv_out_dim(h, kh, sh, dh, a.pads[0], a.pads[2])
    ow = conv_out_dim(wd, kw, sw, dw, a.pads[1], a.pads[3])
    out = np.zeros((n, oc, oh, ow), dtype=x.dtype)
    ocg = oc // g
    for gi in range(g):
        xs = xp[:, gi * icg:(gi + 1) * icg]
        ws = w[gi * ocg:(gi + 1) * ocg]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                           j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, gi * ocg:(gi + 1) * ocg] += np.einsum(
                    "nchw,oc->nohw", patch, ws[:, :, i, j]).astype(x.dtype)
    if b is not None:
        out += b.reshape(1, oc, 1, 1).astype(x.dtype)
    out = a.act.apply(out)
    if a.quantize is not None:
        from sqzc.quant_semantics import quantize

        out = quantize(out, a.quantize)
    return out


def ref_pool(kind: OpKind, a: PoolAttrs, x: np.ndarray) -> np.ndarray:
    """Max or average pooling with onnxruntime's window and divisor rules."""
    n, c, h, w = x.shape
    oh = pool_out_dim(h, a.kernel[0], a.strides[0], a.dilations[0], a.pads[0], a.pads[2],
                      a.ceil_mode)
    ow = pool_out_dim(w, a.kernel[1], a.strides[1], a.dilations[1], a.pads[1], a.pads[3],
                      a.ceil_mode)
    out = np.empty((n, c, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            hs, ws = i * a.strides[0] - a.pads[0], j * a.strides[1] - a.pads[1]
            rows = [hs + k * a.dilations[0] for k in range(a.kernel[0])]
            cols = [ws + k * a.dilations[1] for k in range(a.kernel[1])]
            rows_in = [r for r in rows if 0 <= r < h]
            cols_in = [q for q in cols if 0 <= q < w]
            win = x[:, :, rows_in][:, :, :, cols_in]
            if kind is OpKind.MAXPOOL:  # onnxruntime starts from the lowest finite float
                out[:, :, i, j] = np.maximum(win.max(axis=(2, 3)), np.finfo(x.dtype).min) \
                    if x.dtype.kind == "f" else win.max(axis=(2, 3))
            else:
                if a.count_include_pad:
                    he = min(hs + a.kernel[0], h + a.pads[2])
                    we = min(ws + a.kernel[1], w + a.pads[3])
                    count = (he - hs) * (we - ws)
                else:
                    count = len(rows_in) * len(cols_in)
                out[:, :, i, j] = win.sum(axis=(2, 3)) / x.dtype.type(count)
    return out


def ref_softmax(a: SoftmaxAttrs, x: np.ndarray) -> np.ndarray:
    """Numerically stable (log-)softmax along one axis."""
    shifted = x - x.max(axis=a.axis, keepdims=True)
    e = np.exp(shifted)
    s = e.sum(axis=a.axis, keepdims=True)
    return (shifted - np.log(s)) if a.log else (e / s)


def _int_div(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if np.issubdtype(x.dtype, np.integer):
        q = np.abs(x) // np.abs(y)
        return (np.sign(x) * np.sign(y) * q).astype(x.dtype)
    return (x / y).astype(x.dtype)


def pack_conv_weight(w: np.ndarray, block: int) -> np.ndarray:
    """OIHW -> [OC/b, I, H, W, b] with output channels zero-padded to a multiple of b."""
    oc = w.shape[0]
    ocb = -(-oc // block)
    padded = np.zeros((ocb * block,) + w.shape[1:], dtype=w.dtype)
    padded[:oc] = w
    return np.ascontiguousarray(padded.reshape((ocb, block) + w.shape[1:]).transpose(0, 2, 3, 4, 1))


def unpack_conv(a: ConvAttrs, ins: Sequence[np.ndarray]) -> tuple[ConvAttrs, np.ndarray, np.ndarray, np.ndarray]:
    """The plain (attrs, x, w, b) equivalent of a packed conv (for reference semantics)."""
    import dataclasses

    x, wp, bp = ins[0], ins[1], ins[2]
    if a.winograd:
        w = untransform_weights(wp, a.winograd, a.out_channels)
    else:
        ocb, ic, kh, kw, blk = wp.shape
        w = wp.transpose(0, 4, 1, 2, 3).reshape(ocb * blk, ic, kh, kw)[:a.out_channels]
    plain = dataclasses.replace(a, packed=0, out_channels=0, winograd=0)
    return plain, x, np.ascontiguousarray(w), bp[:a.out_channels]
