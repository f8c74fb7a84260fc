"""Bit-exact numpy references of onnxruntime's CPU int8/uint8 kernels (ORT 1.32, x86-64).

Each function here reproduces, element for element, what onnxruntime 1.32's CPU execution
provider computes on an x86-64 machine with AVX-512 (BW/DQ/VL) + AVX512-VNNI (the machine
the tests run on: AMD Zen 4). The code generator's integer kernels replicate these formulas,
and ``tests/unit/test_quant_reference.py`` checks every function against onnxruntime with
``np.array_equal`` (zero tolerance).

The notation (``f32``, ``fma``, ``rne``, ``sat8``/``sat16``, ``max_ps``/``min_ps``) is defined in
:mod:`sqzc.ort.oracles.mlas`, whose primitives these ops are built from.

Summary (``q`` = 8-bit value, ``z`` = zero point, ``[lo, hi]`` = 8-bit range)
--------------------------------------------------------------------------
* QuantizeLinear:   ``y = rne(clamp(f32(x / s), lo - z, hi - z)) + z``  (NaN -> lo).
* DequantizeLinear: ``y = f32(f32(int32(q) - z) * s)``.
* QLinearConv / QLinearMatMul: exact int32 ``acc``; ``S = f32(f32(sx * sw[m]) / sy)``;
  ``y = rne(clamp(f32(f32(int32(acc + bias)) * S), lo - zy, hi - zy)) + zy``.
* MatMulInteger / ConvInteger: exact int32.  MaxPool on 8-bit data is exact (no function).

This module holds the standard-domain (``ai.onnx``) ops. onnxruntime's ``com.microsoft``
contrib ops (QLinearAdd/Mul, the lookup-table activations, QLinearConcat, the quantized
average pools) are in :mod:`sqzc.ort.oracles.contrib_ops`.

Only numpy, the standard library and :mod:`sqzc.ort.oracles.mlas` are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.ort.oracles.mlas import (
    QTYPES,
    mlas_quantize,
    qdtype,
    requantize_output,
    scalar_f32,
    scalar_int,
    wrap_i32,
)

__all__ = [
    "conv_accumulate",
    "conv_integer",
    "dequantize_linear",
    "matmul_integer",
    "qlinear_conv",
    "qlinear_conv_multipliers",
    "qlinear_matmul",
    "quantize_linear",
]

_F32 = np.float32
_F64 = np.float64

# --------------------------------------------------------------------------------------
# QuantizeLinear / DequantizeLinear
# --------------------------------------------------------------------------------------


def _axis_view(param: np.ndarray, ndim: int, axis: int) -> np.ndarray:
    """Reshape a per-axis 1-D parameter so it broadcasts along ``axis`` of an ``ndim`` tensor."""
    param = np.asarray(param)
    if param.size == 1 and param.ndim <= 1:
        return param.reshape(())
    if param.ndim != 1:
        raise ValueError("per-axis quantization parameters must be 1-D")
    shape = [1] * ndim
    shape[axis] = param.shape[0]
    return param.reshape(shape)


def quantize_linear(x: np.ndarray, scale: np.ndarray | float,
                    zero_point: np.ndarray | int | None = None, axis: int = 1) -> np.ndarray:
    """ONNX ``QuantizeLinear`` (float32 input, uint8/int8 output), per-tensor or per-axis.

    Mirrors ``QuantizeLinear<T>::Compute`` in
    ``onnxruntime/core/providers/cpu/quantization/quantize_linear.cc`` (one
    ``ParQuantizeLinearStd`` -> ``MlasQuantizeLinear`` call per (outer index, channel) block
    for per-axis), whose x86 kernel here is ``MlasQuantizeLinearAvx512F``
    (``core/mlas/lib/intrinsics/avx512/quantize_avx512f.cpp``; the SSE2 kernel in
    ``core/mlas/lib/quantize.cpp`` is identical). The 64-wide, 16-wide and masked-tail paths
    all perform the same per-element sequence, so there is no tail-dependent rounding::

        v = f32(x / scale)                     # a true division, NOT x * (1/scale)
        v = min_ps(max_ps(v, f32(qmin - zp)), f32(qmax - zp))   # clamp first; NaN -> qmin - zp
        y = rne(v) + zp                        # cvtps2dq: round half to even, then add zp

    Clamping before rounding with integer bounds is equivalent to
    ``clamp(rne(x / scale) + zp, qmin, qmax)``; consequences: NaN -> qmin, +inf -> qmax,
    -inf -> qmin. The output dtype is the zero point's dtype (uint8 when omitted).
    ``axis`` selects the per-axis dimension when ``scale`` has more than one element.
    """
    dtype = qdtype(zero_point)
    x = np.asarray(x, dtype=_F32)
    ax = axis % x.ndim if x.ndim else 0
    s = _axis_view(np.asarray(scale, dtype=_F32), x.ndim, ax)
    zp_arr = np.asarray(0 if zero_point is None else zero_point).astype(np.int64)
    zp = _axis_view(zp_arr, x.ndim, ax)
    return mlas_quantize(x, s, zp, dtype)


def dequantize_linear(x: np.ndarray, scale: np.ndarray | float,
                      zero_point: np.ndarray | int | None = None, axis: int = 1) -> np.ndarray:
    """ONNX ``DequantizeLinear`` for uint8 / int8 / int32 inputs, float32 output.

    Mirrors ``DequantizeLinearApply<T, float>::op`` in
    ``onnxruntime/core/providers/cpu/quantization/quantize_linear.cc`` (and the equivalent
    ``MlasDequantizeLinear`` kernels of ``core/mlas/lib/dequantize.cpp``)::

        y = f32( f32(int32(x) - int32(zp)) * scale )

    i.e. the zero point is subtracted in int32, the difference converted to float32
    (exact for 8-bit inputs, RNE for large int32 values) and multiplied once by the scale.
    ORT requires the zero point of an int32 input to be absent or 0.
    """
    x = np.asarray(x)
    if x.dtype not in (np.dtype(np.uint8), np.dtype(np.int8), np.dtype(np.int32)):
        raise TypeError(f"unsupported DequantizeLinear input dtype {x.dtype}")
    ax = axis % x.ndim if x.ndim else 0
    s = _axis_view(np.asarray(scale, dtype=_F32), x.ndim, ax)
    zp_arr = np.asarray(0 if zero_point is None else zero_point).astype(np.int64)
    zp = _axis_view(zp_arr, x.ndim, ax)
    diff = wrap_i32(x.astype(np.int64) - zp)
    return (diff.astype(_F32) * s).astype(_F32)


# --------------------------------------------------------------------------------------
# Convolution / matmul accumulators
# --------------------------------------------------------------------------------------


def _conv_geometry(in_spatial: Sequence[int], k_spatial: Sequence[int],
                   strides: Sequence[int] | None, pads: Sequence[int] | None,
                   dilations: Sequence[int] | None, auto_pad: str
                   ) -> tuple[list[int], list[int], list[int], list[int]]:
    """ORT ``ConvAttributes::InferPadsAndOutputShape``: returns (strides, dilations, pads, out)."""
    r = len(k_spatial)
    st = list(strides) if strides else [1] * r
    dl = list(dilations) if dilations else [1] * r
    pd = list(pads) if pads else [0] * (2 * r)
    out: list[int] = []
    for i in range(r):
        n, k, s, d = int(in_spatial[i]), int(k_spatial[i]), st[i], dl[i]
        dk = (k - 1) * d + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            o = (n + s - 1) // s
            total = max(0, (o - 1) * s + dk - n)
            head = total // 2 if auto_pad == "SAME_UPPER" else (total + 1) // 2
            pd[i], pd[i + r] = head, total - head
        elif auto_pad == "VALID":
            pd[i], pd[i + r] = 0, 0
        o = (n + pd[i] + pd[i + r] - dk) // s + 1
        if o <= 0:
            raise ValueError("convolution output would be empty")
        out.append(o)
    return st, dl, pd, out


def conv_accumulate(xs: np.ndarray, ws: np.ndarray, strides: Sequence[int] | None,
                     pads: Sequence[int] | None, dilations: Sequence[int] | None, group: int,
                     auto_pad: str = "NOTSET") -> np.ndarray:
    """Exact grouped N-d convolution of zero-point-centred int64 tensors (padding value 0).

    ``xs = x - x_zp`` (N, C, *S), ``ws = w - w_zp`` (M, C/group, *K) -> (N, M, *O) int64.
    Padding with 0 here is ORT padding with ``x_zp`` (im2col/indirection pad with the zero
    point), so padded taps contribute ``(x_zp - x_zp) * w = 0``.
    """
    n, c = xs.shape[:2]
    m, cg = ws.shape[:2]
    ksp = ws.shape[2:]
    r = len(ksp)
    if c != cg * group or m % group:
        raise ValueError("channel counts do not match group")
    st, dl, pd, out = _conv_geometry(xs.shape[2:], ksp, strides, pads, dilations, auto_pad)
    xp = np.pad(xs, [(0, 0), (0, 0)] + [(pd[i], pd[i + r]) for i in range(r)])
    mg = m // group
    wg = ws.reshape(group, mg, cg, -1)  # (g, Mg, Cg, prod(K))
    npix = int(np.prod(out))
    acc = np.zeros((n, group, mg, npix), dtype=np.int64)
    for kidx, kpos in enumerate(np.ndindex(*ksp)):
        sl = tuple(slice(kpos[i] * dl[i], kpos[i] * dl[i] + st[i] * (out[i] - 1) + 1, st[i])
                   for i in range(r))
        patch = xp[(slice(None), slice(None)) + sl].reshape(n, group, cg, npix)
        acc += np.matmul(wg[:, :, :, kidx][None], patch)
    return acc.reshape((n, m) + tuple(out))


def _w_zp_per_channel(w_zp: np.ndarray | int, m: int, spatial_rank: int) -> np.ndarray:
    """Weight zero point as an int64 array broadcasting over (M, C/group, *K)."""
    zp = np.asarray(w_zp).astype(np.int64).reshape(-1)
    if zp.size == 1:
        return zp.reshape(())
    if zp.size != m:
        raise ValueError("weight zero point must be scalar or have one value per output channel")
    return zp.reshape((m, 1) + (1,) * spatial_rank)


def qlinear_conv_multipliers(x_scale: np.float32, w_scale: np.ndarray, y_scale: np.float32
                             ) -> np.ndarray:
    """QLinearConv's requantization scales, one per output channel: float32
    ``x_scale * w_scale / y_scale`` evaluated in that order (qlinearconv.cc)."""
    ws = np.asarray(w_scale, dtype=_F32).reshape(-1)
    return ((_F32(x_scale) * ws).astype(_F32) / _F32(y_scale)).astype(_F32)


def conv_integer(x: np.ndarray, w: np.ndarray, x_zero_point: np.ndarray | int | None = None,
                 w_zero_point: np.ndarray | int | None = None, *,
                 strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                 dilations: Sequence[int] | None = None, group: int = 1,
                 auto_pad: str = "NOTSET") -> np.ndarray:
    """ONNX ``ConvInteger``: exact int32 ``sum((x - x_zp) * (w - w_zp))``.

    Mirrors ``ConvInteger::Compute`` (``onnxruntime/core/providers/cpu/quantization/
    conv_integer.cc``: im2col padded with ``x_zp`` + ``MlasGemm`` with zero-point
    correction). The result is exact integer arithmetic (no rounding anywhere); int32
    wrap-around only for reductions far larger than any real model. ``w_zero_point`` must be
    a scalar (ORT rejects per-channel weight zero points for ConvInteger).
    """
    x = np.asarray(x)
    w = np.asarray(w)
    xs = x.astype(np.int64) - scalar_int(x_zero_point)
    ws = w.astype(np.int64) - scalar_int(w_zero_point)
    return wrap_i32(conv_accumulate(xs, ws, strides, pads, dilations, group, auto_pad))


def qlinear_conv(x: np.ndarray, x_scale: np.ndarray | float, x_zero_point: np.ndarray | int,
                 w: np.ndarray, w_scale: np.ndarray | float, w_zero_point: np.ndarray | int,
                 y_scale: np.ndarray | float, y_zero_point: np.ndarray | int,
                 bias: np.ndarray | None = None, *, strides: Sequence[int] | None = None,
                 pads: Sequence[int] | None = None, dilations: Sequence[int] | None = None,
                 group: int = 1, auto_pad: str = "NOTSET") -> np.ndarray:
    """ONNX ``QLinearConv`` (NCHW; 1-D/2-D/3-D), u8 or s8 activations, u8 or s8 weights.

    Mirrors ``QLinearConv<ActType>::Compute`` in
    ``onnxruntime/core/providers/cpu/quantization/qlinearconv.cc``. ORT picks one of three
    paths; on this machine all of them give the same bits (checked against the binary with
    weights both as initializers -- prepacked -- and as graph inputs):

    * symmetric path (u8 activations, constant s8 weights whose zero points are all 0,
      constant x zero point; group == 1 with C % 4 == 0, M % 4 == 0, M >= 16, or depthwise
      with group % 16 == 0): ``MlasConvSym`` / ``MlasConvSymDepthwise`` with the AVX512-VNNI
      kernels of ``core/mlas/lib/x86_64/ConvSymKernelAvx512Core.S`` (``vpdpbusds``: no
      int16 pair saturation). ORT pre-folds ``bias - x_zp * sum(w)`` into an int32 per-channel
      bias; the fused post-process is the same float sequence as ``MlasRequantizeOutput``.
    * depthwise path (C/group == 1 and M == group): ``MlasConvDepthwise`` (exact int32),
      then ``MlasRequantizeOutput``.
    * general path: im2col (padding filled with ``x_zp``) + ``MlasGemm`` (exact int32 with
      zero-point corrections; the U8S8 kernel here is ``MlasGemmU8S8KernelAvx512Vnni`` --
      unlike the plain AVX2 ``vpmaddubsw`` kernel it cannot saturate u8*s8 pair sums),
      then ``MlasRequantizeOutput``.

    Formula (per output element, output channel ``m``)::

        acc   = sum over (c, kernel taps) of (x - x_zp) * (w[m] - w_zp)     # exact int32
        scale = f32( f32(x_scale * w_scale[m]) / y_scale )                 # ComputeOutputScale
        y     = requantize_output(acc + bias[m], scale, y_zp)              # see that function

    i.e. ``v = f32(f32(int32(acc + bias)) * scale)``, clamp to ``[qmin - y_zp, qmax - y_zp]``,
    ``rne`` (half to even), ``+ y_zp``. ``w_scale`` and ``w_zero_point`` may be per output
    channel; ORT 1.32 honours distinct per-channel weight zero points exactly (older sources
    rejected them -- verified against the installed binary). The output dtype is ``x``'s
    dtype. Padded taps contribute exactly 0.
    """
    x = np.asarray(x)
    w = np.asarray(w)
    dtype = x.dtype
    if dtype not in QTYPES:
        raise TypeError("QLinearConv activations must be uint8 or int8")
    m = w.shape[0]
    xz = scalar_int(x_zero_point)
    yz = scalar_int(y_zero_point)
    wz = _w_zp_per_channel(w_zero_point, m, w.ndim - 2)
    xs_ = scalar_f32(x_scale)
    ys_ = scalar_f32(y_scale)
    ws_ = np.asarray(w_scale, dtype=_F32).reshape(-1)
    if ws_.size not in (1, m):
        raise ValueError("weight scale must be scalar or have one value per output channel")
    out_scale = qlinear_conv_multipliers(xs_, ws_, ys_)
    acc = conv_accumulate(x.astype(np.int64) - xz, w.astype(np.int64) - wz,
                           strides, pads, dilations, group, auto_pad)
    bshape = (1, m) + (1,) * (acc.ndim - 2)
    sc = out_scale.reshape(bshape) if out_scale.size > 1 else out_scale.reshape(())
    b = None if bias is None else np.asarray(bias, dtype=np.int32).reshape(bshape)
    return requantize_output(acc, sc, yz, dtype, bias=b)


def _b_param_view(p: np.ndarray) -> np.ndarray:
    """Shape a QLinearMatMul/MatMulInteger B-side parameter to broadcast over (..., M, N)."""
    p = np.asarray(p)
    if p.size == 1:
        return p.reshape(())
    if p.ndim == 1:
        return p.reshape(1, -1)  # per column N
    return p  # (..., 1, N) as allowed by IsBQuantParamSupported


def matmul_integer(a: np.ndarray, b: np.ndarray, a_zero_point: np.ndarray | int | None = None,
                   b_zero_point: np.ndarray | int | None = None) -> np.ndarray:
    """ONNX ``MatMulInteger``: exact int32 ``(a - a_zp) @ (b - b_zp)`` with numpy broadcasting.

    Mirrors ``MatMulInteger::Compute`` (``onnxruntime/core/providers/cpu/quantization/
    matmul_integer.cc``, ``MlasGemmBatch`` with zero-point corrections). ``a_zero_point`` is a
    scalar; ``b_zero_point`` a scalar or one value per column of B. No rounding; the VNNI
    U8S8 kernel used here does not saturate intermediate int16 pairs.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    az = scalar_int(a_zero_point)
    bz = 0 if b_zero_point is None else _b_param_view(np.asarray(b_zero_point).astype(np.int64))
    return wrap_i32(np.matmul(a.astype(np.int64) - az, b.astype(np.int64) - bz))


def qlinear_matmul(a: np.ndarray, a_scale: np.ndarray | float, a_zero_point: np.ndarray | int,
                   b: np.ndarray, b_scale: np.ndarray | float, b_zero_point: np.ndarray | int,
                   y_scale: np.ndarray | float, y_zero_point: np.ndarray | int) -> np.ndarray:
    """ONNX ``QLinearMatMul`` (opset 10/21 semantics for 8-bit types), numpy broadcasting.

    Mirrors ``QLinearMatMul::Compute`` in ``onnxruntime/core/providers/cpu/quantization/
    quantize_linear_matmul.cc``: ``MlasGemmBatch`` with an
    ``MLAS_QGEMM_REQUANT_OUTPUT_PROCESSOR`` (i.e. ``MlasRequantizeOutput``)::

        acc   = sum_k (a - a_zp) * (b - b_zp[n])              # exact int32
        scale = f32( f32(a_scale * b_scale[n]) / y_scale )    # per tensor or per column n
        y     = requantize_output(acc, scale, y_zp)           # f32(acc)*scale, clamp, rne, +zp

    ``b_scale`` / ``b_zero_point`` may be scalars or per column (shape (N,) or (..., 1, N)).
    Output dtype follows ``y_zero_point``.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    dtype = qdtype(y_zero_point)
    az = scalar_int(a_zero_point)
    bz = _b_param_view(np.asarray(b_zero_point).astype(np.int64))
    bs = _b_param_view(np.asarray(b_scale, dtype=_F32))
    scale = ((scalar_f32(a_scale) * bs).astype(_F32) / scalar_f32(y_scale)).astype(_F32)
    acc = np.matmul(a.astype(np.int64) - az, b.astype(np.int64) - bz)
    return requantize_output(acc, scale, scalar_int(y_zero_point), dtype)
