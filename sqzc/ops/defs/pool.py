"""Pooling and reductions: MaxPool, AveragePool, reductions over axes (global pools are
reductions over H, W), QLinearGlobalAveragePool and QLinearAveragePool."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.errors import ModelError
from sqzc.ops.attrs import PoolAttrs, QAvgPoolAttrs, QPoolAttrs, ReduceAttrs
from sqzc.ops.defs.quantize import requantize
from sqzc.ops.geometry import pool_out_dim
from sqzc.ops.kinds import INT_RANGE, OpKind, TensorType
from sqzc.ops.opdef import EIGHT_BIT, OpDef, define, kernels, need_8bit
from sqzc.ort.oracles import contrib_ops as qrc
from sqzc.ort.oracles import mlas

def pool_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
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


def _ref_reduce(a: ReduceAttrs, x: np.ndarray) -> np.ndarray:
    fn = np.mean if a.mode == "mean" else np.max
    r = fn(x, axis=a.axes, keepdims=a.keepdims).astype(x.dtype)
    if a.lowest_finite:
        r = np.maximum(r, np.finfo(r.dtype).min)
    return r


def qglobal_avgpool_scale(a: QPoolAttrs, image_size: int) -> np.float32:
    """onnxruntime's ``x_scale / (y_scale * float(image_size))`` in float32."""
    return qrc.qlgap_scale(np.float32(a.x.scale[0]), np.float32(a.y.scale[0]), image_size)


def ref_qglobal_avgpool(a: QPoolAttrs, x: np.ndarray) -> np.ndarray:
    """QLinearGlobalAveragePool: ``sum(x) - x_zp * N`` in int32, requantized by
    ``x_scale / (y_scale * N)``."""
    n = int(np.prod(x.shape[2:]))
    acc = x.astype(np.int64).reshape(x.shape[0], x.shape[1], -1).sum(axis=2) - a.x.zero_point[0] * n
    y = requantize(acc.astype(np.int32), qglobal_avgpool_scale(a, n), a.y)
    return y.reshape(x.shape[:2] + (1,) * (x.ndim - 2))


def _qglobal_avgpool_shape(a: QPoolAttrs, ins: Sequence[TensorType]) -> TensorType:
    return TensorType(ins[0].shape[:2] + (1,) * (len(ins[0].shape) - 2), ins[0].dtype)


def _qavgpool_shape(a: object, ins: Sequence[TensorType]) -> TensorType:
    assert isinstance(a, QAvgPoolAttrs)
    need_8bit("QLinearAveragePool", ins)
    if a.pool.dilations != (1, 1):
        raise ModelError("QLinearAveragePool has no dilations")
    return TensorType(pool_shape(a.pool, ins).shape, a.y.dtype)


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


define(OpDef(OpKind.MAXPOOL, PoolAttrs, arity=(1, 1), operands="any", shape=pool_shape,
             reference=lambda a, ins: ref_pool(OpKind.MAXPOOL, a, ins[0]),
             kernels=kernels(("float", *EIGHT_BIT), ("plain", "blocked")), tags=frozenset({"pool"})))
define(OpDef(OpKind.AVGPOOL, PoolAttrs, arity=(1, 1), operands="float", shape=pool_shape,
             reference=lambda a, ins: ref_pool(OpKind.AVGPOOL, a, ins[0]),
             kernels=kernels("float", ("plain", "blocked")), tags=frozenset({"pool"})))
define(OpDef(OpKind.REDUCE, ReduceAttrs, arity=(1, 1), operands="float", shape=_reduce_shape,
             reference=lambda a, ins: _ref_reduce(a, ins[0]), kernels=kernels("float", ("plain", "blocked")),
             batch_rule=lambda a: "reduces the batch axis" if 0 in a.axes else ""))
define(OpDef(OpKind.QGLOBAL_AVGPOOL, QPoolAttrs, arity=(1, 1), operands="int8",
             shape=_qglobal_avgpool_shape,
             reference=lambda a, ins: ref_qglobal_avgpool(a, ins[0]), kernels=kernels(EIGHT_BIT, ("plain", "blocked"))))
define(OpDef(OpKind.QAVGPOOL, QAvgPoolAttrs, arity=(1, 1), operands="int8",
             shape=_qavgpool_shape, reference=lambda a, ins: ref_qavgpool(a, *ins),
             kernels=kernels(EIGHT_BIT)))
