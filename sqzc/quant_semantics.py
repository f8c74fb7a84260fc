"""Shape rules and numpy references of the quantized ops (QDQ and QOperator formats).

QuantizeLinear/DequantizeLinear, requantization, QLinearConv (plain and VNNI-packed) and
QLinearGlobalAveragePool, then the QOperator ops: lookup tables (QLinearSigmoid,
QLinearLeakyRelu), QLinearAdd/Mul/MatMul, MatMulInteger, ConvInteger, QLinearAveragePool.
Unlike the float ops, every rounding step here must match onnxruntime's CPU kernels bit for
bit, so these rules sit apart, next to the formulas of :mod:`sqzc.ort.oracles.onnx_ops` and
:mod:`sqzc.ort.oracles.contrib_ops`; the code generator's integer kernels import their
constants (multipliers, packing) from here. Built on the conv/pool geometry
and the float convolution of :mod:`sqzc.float_semantics`; :mod:`sqzc.semantics` dispatches
to the tables at the end (``QUANT_SHAPE_RULES``, ``QUANT_REFERENCES``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.ort.oracles import contrib_ops as qrc
from sqzc.ort.oracles import mlas, onnx_ops
from sqzc.errors import ModelError
from sqzc.float_semantics import (
    Reference,
    ShapeRule,
    _conv_shape,
    _pool_shape,
    broadcast_shapes,
    conv_out_dim,
    pool_out_dim,
    ref_conv,
)
from sqzc.ops import (
    INT_RANGE,
    IntConvAttrs,
    IntMatMulAttrs,
    LookupAttrs,
    OpKind,
    QAvgPoolAttrs,
    QBinaryAttrs,
    QConvAttrs,
    QMatMulAttrs,
    QPoolAttrs,
    QSoftmaxAttrs,
    QuantAttrs,
    TensorType,
)

# ----------------------------------------------------------------------- quantized ops
# These mirror onnxruntime's CPU kernels operation by operation (float32 arithmetic in
# the same order, round-half-to-even, saturation), so compiled int8 models are bit-exact.

def quantize(x: np.ndarray, a: QuantAttrs) -> np.ndarray:
    """QuantizeLinear as onnxruntime computes it (``onnx_ops.quantize_linear``: a true
    division, clamp with NaN to the lowest code, round half to even, add the zero point);
    the one implementation, shared by constant folding and the tests."""
    return onnx_ops.quantize_linear(x, np.asarray(a.scale, np.float32),
                                    np.asarray(a.zero_point, a.dtype), a.axis)


def dequantize(q: np.ndarray, a: QuantAttrs) -> np.ndarray:
    """DequantizeLinear: ``float32(int32(q) - zp) * scale`` (``onnx_ops.dequantize_linear``)."""
    return onnx_ops.dequantize_linear(q, np.asarray(a.scale, np.float32),
                                      np.asarray(a.zero_point, np.int64), a.axis)


def requantize(acc: np.ndarray, multiplier: np.ndarray, out: QuantAttrs) -> np.ndarray:
    """int32 accumulator -> 8 bit: onnxruntime's MlasRequantizeOutput
    (``mlas.requantize_output``: ``clamp(float32(acc) * m)``, rounded half to even, plus zp)."""
    return mlas.requantize_output(acc, multiplier, out.zero_point[0], out.dtype)


def _qconv_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QConvAttrs)
    if a.conv.packed:
        x, w = ins[0], ins[1]
        n, c, h, wd = x.shape
        ocb, icq, kh, kw, blk, group = w.shape
        if blk != a.conv.packed or group not in (2, 4) or icq != -(-c // group) \
                or (kh, kw) != a.conv.kernel:
            raise ModelError(f"packed qconv weight {list(w.shape)} does not fit {list(x.shape)}")
        oh = conv_out_dim(h, kh, a.conv.strides[0], a.conv.dilations[0], a.conv.pads[0],
                          a.conv.pads[2])
        ow = conv_out_dim(wd, kw, a.conv.strides[1], a.conv.dilations[1], a.conv.pads[1],
                          a.conv.pads[3])
        return TensorType((n, a.conv.out_channels, oh, ow), (a.requant or a.out).dtype)
    if ins[0].dtype not in ("uint8", "int8") or ins[1].dtype not in ("uint8", "int8"):
        raise ModelError(f"QLinearConv needs 8-bit input and weight, got {ins[0]} and {ins[1]}")
    if len(ins) > 2 and ins[2].dtype != "int32":
        raise ModelError(f"QLinearConv bias must be int32, got {ins[2]}")
    t = _conv_shape(a.conv, [TensorType(ins[0].shape, "float32"),
                             TensorType(ins[1].shape, "float32")]
                    + ([TensorType(ins[2].shape, "float32")] if len(ins) > 2 else []))
    return TensorType(t.shape, (a.requant or a.out).dtype)


def ref_qconv(a: QConvAttrs, x: np.ndarray, w: np.ndarray, b: np.ndarray | None
              ) -> np.ndarray:
    """QLinearConv with int32 accumulation (exact in float64 for these sizes)."""
    import dataclasses as _dc

    if a.conv.packed:
        a, w, b = unpack_qconv(a, x, w, b)
    wz = np.asarray(a.w_zp, np.int64).reshape(-1, 1, 1, 1) if len(a.w_zp) > 1 else a.w_zp[0]
    xf = (x.astype(np.int64) - a.x_zp).astype(np.float64)
    wf = (w.astype(np.int64) - wz).astype(np.float64)
    acc = ref_conv(_dc.replace(a.conv, act=type(a.conv.act)()), xf, wf, None)
    acc = np.rint(acc).astype(np.int64)
    if b is not None:
        acc = acc + b.astype(np.int64).reshape(1, -1, 1, 1)
    m = np.asarray(a.multiplier, np.float32)
    m = m.reshape(1, -1, 1, 1) if m.size > 1 else m.reshape(())
    y = requantize(acc.astype(np.int32), m, a.out)
    return quantize(dequantize(y, a.out), a.requant) if a.requant is not None else y


def conv_multipliers(x_scale: float, w_scale: tuple[float, ...], y_scale: float
                     ) -> tuple[float, ...]:
    """onnxruntime's QLinearConv requantization scales: float32 ``x_scale * w_scale / y_scale``
    evaluated in that order (qlinearconv.cc), one per output channel."""
    xs, ys = np.float32(x_scale), np.float32(y_scale)
    return tuple(float(np.float32(np.float32(xs * np.float32(w)) / ys)) for w in w_scale)


def qglobal_avgpool_scale(a: QPoolAttrs, image_size: int) -> np.float32:
    """onnxruntime's ``x_scale / (y_scale * float(image_size))`` in float32."""
    return np.float32(np.float32(a.x.scale[0]) /
                      np.float32(np.float32(a.y.scale[0]) * np.float32(image_size)))


def ref_qglobal_avgpool(a: QPoolAttrs, x: np.ndarray) -> np.ndarray:
    """QLinearGlobalAveragePool: ``sum(x) - x_zp * N`` in int32, requantized by
    ``x_scale / (y_scale * N)``."""
    n = int(np.prod(x.shape[2:]))
    acc = x.astype(np.int64).reshape(x.shape[0], x.shape[1], -1).sum(axis=2) - a.x.zero_point[0] * n
    y = requantize(acc.astype(np.int32), qglobal_avgpool_scale(a, n), a.y)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


def qconv_input_offset(x_dtype: str, x_zp: int) -> int:
    """The constant c with ``sum((x - x_zp) * w) = sum(u * w) - c * sum(w)`` where ``u`` is
    the unsigned byte the VNNI kernel multiplies (int8 activations are shifted by +128)."""
    return x_zp + (128 if x_dtype == "int8" else 0)


def pack_qconv(a: QConvAttrs, x_dtype: str, w: np.ndarray, b: np.ndarray | None, block: int,
               group: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Weights [OC, IC, KH, KW] -> [OC/b, IC/g, KH, KW, b, g] (zero padded): int8 quads
    (``group`` 4) for ``vpdpbusd``, or int16 pairs (``group`` 2) for ``pmaddwd`` on
    targets without VNNI; and a [2, OC padded] int32 table: the bias with the zero-point
    correction folded in, then the float32 requantization multipliers as bits (data the
    kernel reads, so layers of equal geometry share code)."""
    oc, ic, kh, kw = w.shape
    ocb, icq = -(-oc // block), -(-ic // group)
    padded = np.zeros((ocb * block, icq * group, kh, kw), np.int8 if group == 4 else np.int16)
    padded[:oc, :ic] = w
    packed = padded.reshape(ocb, block, icq, group, kh, kw).transpose(0, 2, 4, 5, 1, 3)
    bias = np.zeros(ocb * block, np.int64)
    if b is not None:
        bias[:oc] = b
    c = qconv_input_offset(x_dtype, a.x_zp)
    bias[:oc] -= c * w.astype(np.int64).reshape(oc, -1).sum(axis=1)
    mult = np.zeros(ocb * block, np.float32)
    mult[:oc] = np.asarray(a.multiplier, np.float32)  # one value (per tensor) or one per oc
    table = np.stack([bias.astype(np.int32), mult.view(np.int32)])
    return np.ascontiguousarray(packed), table


def unpack_qconv(a: QConvAttrs, x: np.ndarray, wp: np.ndarray, bp: np.ndarray | None
                 ) -> tuple[QConvAttrs, np.ndarray, np.ndarray]:
    """The plain (attrs, weight, bias) a packed qconv computes (for reference semantics)."""
    import dataclasses as _dc

    ocb, icq, kh, kw, blk, group = wp.shape
    oc, ic = a.conv.out_channels, x.shape[1]
    w = wp.transpose(0, 4, 1, 5, 2, 3).reshape(ocb * blk, icq * group, kh, kw)[:oc, :ic]
    c = qconv_input_offset(x.dtype.name, a.x_zp)
    assert bp is not None
    b = bp[0, :oc].astype(np.int64) + c * w.astype(np.int64).reshape(oc, -1).sum(axis=1)
    plain = _dc.replace(a, conv=_dc.replace(a.conv, packed=0, out_channels=0))
    return plain, np.ascontiguousarray(w), b.astype(np.int32)


# ------------------------------------------------- quantized ops of the QOperator format
# QLinearAdd/Mul/MatMul/AveragePool/Sigmoid/LeakyRelu, MatMulInteger and ConvInteger:
# shape rules and references mirroring onnxruntime bit for bit (``sqzc.ort.oracles.onnx_ops``
# and ``sqzc.ort.oracles.contrib_ops`` hold the formulas, each checked against onnxruntime
# by tests/unit/test_quant_reference).

_EIGHT_BIT = ("uint8", "int8")


def _need_8bit(what: str, ins: Sequence[TensorType]) -> None:
    for t in ins:
        if t.dtype not in _EIGHT_BIT:
            raise ModelError(f"{what} needs 8-bit operands, got {[str(i) for i in ins]}")


def _lookup_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, LookupAttrs)
    _need_8bit("lookup", ins[:1])
    if len(a.table) != 256:
        raise ModelError(f"lookup table has {len(a.table)} entries, expected 256")
    return TensorType(ins[0].shape, a.dtype)


def _qbinary_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QBinaryAttrs)
    _need_8bit("quantized add/mul", ins)
    if (ins[0].dtype, ins[1].dtype) != (a.a.dtype, a.b.dtype):
        raise ModelError(f"operands {ins[0]} and {ins[1]} do not match their quantization "
                         f"({a.a.dtype}, {a.b.dtype})")
    return TensorType(broadcast_shapes(ins[0].shape, ins[1].shape), a.y.dtype)


def _int_matmul_dims(x: TensorType, y: TensorType) -> tuple[int, ...]:
    _need_8bit("integer matmul", [x, y])
    if len(x.shape) < 1 or len(y.shape) < 1:
        raise ModelError("MatMul operands must have rank >= 1")
    try:
        return tuple(np.matmul(np.empty(x.shape, np.int8), np.empty(y.shape, np.int8)).shape)
    except ValueError:
        raise ModelError(f"MatMul shapes {list(x.shape)} and {list(y.shape)} do not match") \
            from None


def _b_columns(b_zp: tuple[int, ...], y: TensorType, what: str) -> None:
    n = y.shape[-1] if len(y.shape) > 1 else 1
    if len(b_zp) not in (1, n):
        raise ModelError(f"{what}: {len(b_zp)} per-column values for {n} columns")


def _qmatmul_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QMatMulAttrs)
    shape = _int_matmul_dims(ins[0], ins[1])
    _b_columns(a.b_zp, ins[1], "QLinearMatMul zero points")
    _b_columns(a.multiplier, ins[1], "QLinearMatMul scales")
    if a.bias:
        _b_columns(a.bias, ins[1], "QGemm bias")
    return TensorType(shape, a.out.dtype)


def _matmul_integer_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, IntMatMulAttrs)
    shape = _int_matmul_dims(ins[0], ins[1])
    _b_columns(a.b_zp, ins[1], "MatMulInteger zero points")
    return TensorType(shape, "int32")


def _conv_integer_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, IntConvAttrs)
    _need_8bit("ConvInteger", ins)
    if a.conv.packed:
        raise ModelError("ConvInteger has no packed form")
    t = _conv_shape(a.conv, [TensorType(i.shape, "float32") for i in ins])
    if len(a.w_zp) not in (1, t.shape[1]):
        raise ModelError(f"ConvInteger: {len(a.w_zp)} weight zero points for "
                         f"{t.shape[1]} output channels")
    return TensorType(t.shape, "int32")


def _qavgpool_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QAvgPoolAttrs)
    _need_8bit("QLinearAveragePool", ins)
    if a.pool.dilations != (1, 1):
        raise ModelError("QLinearAveragePool has no dilations")
    return TensorType(_pool_shape(a.pool, ins).shape, a.y.dtype)


def _qsoftmax_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QSoftmaxAttrs)
    _need_8bit("QLinearSoftmax", ins)
    if ins[0].dtype != a.y.dtype:
        raise ModelError(f"QLinearSoftmax: input is {ins[0].dtype}, output {a.y.dtype}")
    if not 0 <= a.axis < len(ins[0].shape):
        raise ModelError(f"QLinearSoftmax: axis {a.axis} out of range for rank "
                         f"{len(ins[0].shape)}")
    return TensorType(ins[0].shape, a.y.dtype)


#: kind -> shape rule for every quantized kind (``sqzc.semantics.SHAPE_RULES`` merges it).
QUANT_SHAPE_RULES: dict[OpKind, ShapeRule] = {
    OpKind.QUANTIZE: lambda a, ins: TensorType(ins[0].shape, a.dtype),  # type: ignore[attr-defined]
    OpKind.DEQUANTIZE: lambda a, ins: TensorType(ins[0].shape, "float32"),
    OpKind.QCONV: _qconv_shape,
    OpKind.REQUANTIZE: lambda a, ins: TensorType(ins[0].shape, a.y.dtype),  # type: ignore[attr-defined]
    OpKind.QGLOBAL_AVGPOOL: lambda a, ins: TensorType(
        ins[0].shape[:2] + (1,) * (len(ins[0].shape) - 2), ins[0].dtype),
    OpKind.LOOKUP: _lookup_shape,
    OpKind.QADD: _qbinary_shape,
    OpKind.QMUL: _qbinary_shape,
    OpKind.QMATMUL: _qmatmul_shape,
    OpKind.MATMUL_INTEGER: _matmul_integer_shape,
    OpKind.CONV_INTEGER: _conv_integer_shape,
    OpKind.QAVGPOOL: _qavgpool_shape,
    OpKind.QSOFTMAX: _qsoftmax_shape,
}


def ref_lookup(a: LookupAttrs, x: np.ndarray) -> np.ndarray:
    """``table[raw byte of x]``."""
    table = np.asarray(a.table, dtype=np.int64).astype(a.dtype)
    return table[np.asarray(x).astype(np.int64) & 0xFF]


def qadd_constants(a: QBinaryAttrs) -> tuple[np.float32, np.float32, np.float32]:
    """(rX, rY, fixed) of onnxruntime's QLinearAdd with X = input 0, Y = input 1:
    ``rX = f32(sX / sC)``, ``rY = f32(sY / sC)``,
    ``fixed = f32(zC - fma(rX, zX, f32(rY * zY)))``; then per element
    ``y = sat(cvtps2dq(fma(x, rX, fma(y, rY, fixed))))``."""
    sx, sy, sc = (np.float32(q.scale[0]) for q in (a.a, a.b, a.y))
    rx, ry = np.float32(sx / sc), np.float32(sy / sc)
    inner = np.float32(ry * np.float32(a.b.zero_point[0]))
    fixed = np.float32(np.float32(a.y.zero_point[0])
                       - mlas.fma_f32(rx, np.float32(a.a.zero_point[0]), inner).reshape(()))
    return rx, ry, fixed


def qmul_ratio(a: QBinaryAttrs) -> np.float32:
    """onnxruntime's QLinearMul ``f32(f32(sA * sB) / sC)``; per element
    ``y = sat(cvtps2dq(f32(f32(f32(p) * ratio) + zC)))`` with ``p = (a - zA) * (b - zB)``."""
    sa, sb, sc = (np.float32(q.scale[0]) for q in (a.a, a.b, a.y))
    return np.float32(np.float32(sa * sb) / sc)


def ref_qadd(a: QBinaryAttrs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """QLinearAdd with input 0 as onnxruntime's first MLAS operand."""
    xb, yb = np.broadcast_arrays(x, y)
    return qrc.qladd_kernel(xb, np.float32(a.a.scale[0]), a.a.zero_point[0], yb,
                            np.float32(a.b.scale[0]), a.b.zero_point[0],
                            np.float32(a.y.scale[0]), a.y.zero_point[0], np.dtype(a.y.dtype))


def ref_qmul(a: QBinaryAttrs, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """QLinearMul (commutative: the operand order does not matter)."""
    out = qrc.qlinear_mul(x, a.a.scale[0], a.a.zero_point[0], y, a.b.scale[0],
                         a.b.zero_point[0], a.y.scale[0], a.y.zero_point[0])
    return out.astype(a.y.dtype)


def _per_column(values: tuple, dtype: object) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    return arr.reshape(()) if arr.size == 1 else arr


def _int_matmul(a_zp: int, b_zp: tuple[int, ...], x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return np.matmul(x.astype(np.int64) - a_zp, w.astype(np.int64) - _per_column(b_zp, np.int64))


def ref_qmatmul(a: QMatMulAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """QLinearMatMul (or QGemm with an int32 bias): exact accumulation, the bias added,
    then ``MlasRequantizeOutput`` per column."""
    acc = _int_matmul(a.a_zp, a.b_zp, x, w)
    if a.bias:
        acc = acc + _per_column(a.bias, np.int64)
    return mlas.requantize_output(acc, _per_column(a.multiplier, np.float32), a.out.zero_point[0],
                                a.out.dtype)


def ref_matmul_integer(a: IntMatMulAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """MatMulInteger: exact int32 (wrapping like onnxruntime's int32 sums)."""
    return mlas.wrap_i32(_int_matmul(a.a_zp, a.b_zp, x, w))


def ref_conv_integer(a: IntConvAttrs, x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ConvInteger: exact int32 convolution of the zero-point-centred operands."""
    c = a.conv
    wz = np.asarray(a.w_zp, np.int64)
    wz = wz.reshape(-1, 1, 1, 1) if wz.size > 1 else wz.reshape(())
    acc = onnx_ops.conv_accumulate(x.astype(np.int64) - a.x_zp, w.astype(np.int64) - wz,
                              c.strides, c.pads, c.dilations, c.group)
    return mlas.wrap_i32(acc)


def ref_qavgpool(a: QAvgPoolAttrs, x: np.ndarray) -> np.ndarray:
    """QLinearAveragePool's float path (``QLinearPool2DTask``): sequential float32 window
    sums of the dequantized values, ``/ count``, ``/ y_scale``, ``+ y_zp``, cvtps2dq, saturate."""
    p = a.pool
    f = np.float32
    n, c, h, w = x.shape
    oh = pool_out_dim(h, p.kernel[0], p.strides[0], 1, p.pads[0], p.pads[2], p.ceil_mode)
    ow = pool_out_dim(w, p.kernel[1], p.strides[1], 1, p.pads[1], p.pads[3], p.ceil_mode)
    d = (f(a.x.scale[0]) * (x.astype(np.int64) - a.x.zero_point[0]).astype(f)).astype(f)
    ys, yz = f(a.y.scale[0]), f(a.y.zero_point[0])
    lo, hi = INT_RANGE[a.y.dtype]
    out = np.empty((n, c, oh, ow), dtype=a.y.dtype)
    for i in range(oh):
        hs = i * p.strides[0] - p.pads[0]
        he, hs = min(hs + p.kernel[0], h), max(hs, 0)
        for j in range(ow):
            ws = j * p.strides[1] - p.pads[1]
            we, ws = min(ws + p.kernel[1], w), max(ws, 0)
            acc = np.zeros((n, c), f)
            for r in range(hs, he):
                for q in range(ws, we):
                    acc = (acc + d[:, :, r, q]).astype(f)
            cnt = p.kernel[0] * p.kernel[1] if p.count_include_pad else \
                max(he - hs, 0) * max(we - ws, 0)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                t = ((acc / f(cnt)).astype(f) / ys).astype(f)
                t = (t + yz).astype(f)
            out[:, :, i, j] = np.clip(mlas.cvtps_epi32(t), lo, hi)
    return out


def ref_qsoftmax(a: QSoftmaxAttrs, x: np.ndarray) -> np.ndarray:
    """onnxruntime's QLinearSoftmax (``sqzc.ort.oracles.contrib_ops.qlinear_softmax``)."""
    return qrc.qlinear_softmax(x, a.x_scale, a.y.scale[0], a.y.zero_point[0], a.axis)


#: kind -> reference, for the QOperator kinds above (``sqzc.semantics.reference`` dispatches here).
QUANT_REFERENCES: dict[OpKind, Reference] = {
    OpKind.LOOKUP: lambda a, ins: ref_lookup(a, *ins),  # type: ignore[arg-type]
    OpKind.QADD: lambda a, ins: ref_qadd(a, *ins),  # type: ignore[arg-type]
    OpKind.QMUL: lambda a, ins: ref_qmul(a, *ins),  # type: ignore[arg-type]
    OpKind.QMATMUL: lambda a, ins: ref_qmatmul(a, *ins),  # type: ignore[arg-type]
    OpKind.MATMUL_INTEGER: lambda a, ins: ref_matmul_integer(a, *ins),  # type: ignore[arg-type]
    OpKind.CONV_INTEGER: lambda a, ins: ref_conv_integer(a, *ins),  # type: ignore[arg-type]
    OpKind.QAVGPOOL: lambda a, ins: ref_qavgpool(a, *ins),  # type: ignore[arg-type]
    OpKind.QSOFTMAX: lambda a, ins: ref_qsoftmax(a, *ins),  # type: ignore[arg-type]
}
