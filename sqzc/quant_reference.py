"""Bit-exact numpy references of onnxruntime's CPU int8/uint8 kernels (ORT 1.32, x86-64).

Each function here reproduces, element for element, what onnxruntime 1.32's CPU execution
provider computes on an x86-64 machine with AVX-512 (BW/DQ/VL) + AVX512-VNNI (the machine
the tests run on: AMD Zen 4). The code generator's integer kernels replicate these formulas,
and ``tests/unit/test_quant_reference.py`` checks every function against onnxruntime with
``np.array_equal`` (zero tolerance).

Conventions used in every docstring
-----------------------------------
* ``f32(e)`` means: evaluate ``e`` in IEEE-754 binary32 with round-to-nearest-even, one
  rounding per written operation, left to right as written. ``fma(a, b, c)`` is a fused
  multiply-add with a single rounding (``vfmadd*ps``). Where no ``fma`` is written the
  operations are *not* fused (ORT's binary was checked for this op by op).
* ``rne(v)`` is ``cvtps2dq`` under the default MXCSR: round half to even, and any value
  outside ``[-2**31, 2**31)`` or NaN gives ``INT32_MIN`` (x86 "integer indefinite").
* ``sat16`` / ``sat8`` are the saturating packs ``packssdw`` (int32 -> int16) followed by
  ``packuswb`` / ``packsswb`` (int16 -> uint8 / int8); together they clamp to the 8-bit range
  (note that an ``INT32_MIN`` from ``rne`` therefore lands on the *lowest* 8-bit value).
* ``max_ps(v, lo)`` / ``min_ps(v, hi)`` are SSE/AVX ``maxps``/``minps`` with the data in the
  first operand: a NaN ``v`` yields the bound. So "clamp" below maps NaN to ``lo``.
* Integer accumulations are exact int32 sums (ORT's VNNI kernels do not saturate for any
  realistic reduction length); they are computed here in int64 and wrapped to int32 where
  ORT adds in int32 (bias addition).

Summary (``q`` = 8-bit value, ``z`` = zero point, ``[lo, hi]`` = 8-bit range)
--------------------------------------------------------------------------
* QuantizeLinear:   ``y = rne(clamp(f32(x / s), lo - z, hi - z)) + z``  (NaN -> lo).
* DequantizeLinear: ``y = f32(f32(int32(q) - z) * s)``.
* QLinearConv / QLinearMatMul: exact int32 ``acc``; ``S = f32(f32(sx * sw[m]) / sy)``;
  ``y = rne(clamp(f32(f32(int32(acc + bias)) * S), lo - zy, hi - zy)) + zy``.
* QLinearGlobalAveragePool (and QLinearAveragePool with kernel == image, no pads):
  ``S = f32(sx / f32(sy * f32(n)))``, ``acc = sum(q) - zx * n``, then as above.
* QLinearAveragePool (general): float path, ``y = clamp(rne(f32(f32(mean / sy) + zy)))``.
* QLinearAdd: ``rA = f32(sA/sC)``, ``rB = f32(sB/sC)``, ``K = f32(zC - fma(rA, zA, f32(rB*zB)))``,
  ``y = sat(rne(fma(a, rA, fma(b, rB, K))))`` (operands swapped when A is broadcast).
* QLinearMul: ``R = f32(f32(sA*sB)/sC)``, ``y = sat(rne(f32(f32(f32(p) * R) + zC)))``.
* QLinearSigmoid / QLinearLeakyRelu / QLinearConcat: 256-entry tables,
  ``table[q] = QuantizeLinear(f(f32(sx * f32(q - zx))), sy, zy)``, ``f`` = MLAS logistic /
  leaky-relu / identity.
* MatMulInteger / ConvInteger: exact int32.  MaxPool on 8-bit data is exact (no function).

Only numpy and the standard library are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "conv_integer",
    "dequantize_linear",
    "fma_f32",
    "matmul_integer",
    "mlas_logistic",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_concat",
    "qlinear_conv",
    "qlinear_global_average_pool",
    "qlinear_leaky_relu",
    "qlinear_matmul",
    "qlinear_mul",
    "qlinear_sigmoid",
    "quantize_linear",
    "requantize_output",
]

_F32 = np.float32
_F64 = np.float64
_INT32_MIN = -(2**31)
_QTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


# --------------------------------------------------------------------------------------
# Floating-point / x86 primitives
# --------------------------------------------------------------------------------------


def fma_f32(a: np.ndarray | float, b: np.ndarray | float, c: np.ndarray | float) -> np.ndarray:
    """Single-rounding binary32 fused multiply-add ``round_f32(a * b + c)`` (``vfmadd*ps``).

    ``a*b`` is exact in binary64 (24 + 24 significant bits). The binary64 sum ``s = a*b + c``
    is correct except for its own rounding error ``e`` (recovered exactly with TwoSum);
    rounding ``s`` to binary32 is then wrong only when ``s`` sits exactly on a binary32 tie
    and ``e != 0``, in which case the sign of ``e`` picks the neighbour. Inputs are cast to
    float32 first; overflow / subnormal results are not special-cased (not reachable by the
    quantized kernels).
    """
    a32, b32, c32 = np.broadcast_arrays(
        np.asarray(a, dtype=_F32), np.asarray(b, dtype=_F32), np.asarray(c, dtype=_F32)
    )
    p = a32.astype(_F64) * b32.astype(_F64)
    c64 = c32.astype(_F64)
    s = p + c64
    bv = s - p
    err = (p - (s - bv)) + (c64 - bv)
    with np.errstate(over="ignore", invalid="ignore"):
        r = s.astype(_F32)
        r64 = r.astype(_F64)
        up = np.nextafter(r, _F32(np.inf))
        dn = np.nextafter(r, _F32(-np.inf))
        tie_up = (s == (r64 + up.astype(_F64)) * 0.5) & (err > 0)
        tie_dn = (s == (r64 + dn.astype(_F64)) * 0.5) & (err < 0)
    return np.where(tie_up, up, np.where(tie_dn, dn, r)).astype(_F32)


def _cvtps_epi32(v: np.ndarray) -> np.ndarray:
    """``cvtps2dq``: round half to even; NaN / out-of-int32-range -> INT32_MIN. Returns int64."""
    v = np.asarray(v, dtype=_F32)
    ok = np.isfinite(v) & (v >= _F32(-(2.0**31))) & (v < _F32(2.0**31))
    r = np.rint(np.where(ok, v, _F32(0))).astype(np.int64)
    return np.where(ok, r, _INT32_MIN)


def _sat_pack(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``packssdw`` then ``packuswb``/``packsswb``: saturate int32 to int16, then to 8 bits."""
    info = np.iinfo(dtype)
    v16 = np.clip(np.asarray(v, dtype=np.int64), -32768, 32767)
    return np.clip(v16, info.min, info.max).astype(dtype)


def _wrap_i32(v: np.ndarray) -> np.ndarray:
    """Two's-complement int32 wrap-around of an integer array (returned as int32)."""
    return np.asarray(v, dtype=np.int64).astype(np.int32)


def _qdtype(zero_point: np.ndarray | int | None, default: type = np.uint8) -> np.dtype:
    if zero_point is None:
        return np.dtype(default)
    zp = np.asarray(zero_point)
    if zp.dtype not in _QTYPES:
        raise TypeError(f"zero point dtype must be uint8 or int8, got {zp.dtype}")
    return zp.dtype


def _scalar_f32(v: np.ndarray | float) -> np.float32:
    a = np.asarray(v, dtype=_F32)
    if a.size != 1:
        raise ValueError("expected a scalar or 1-element tensor")
    return _F32(a.reshape(-1)[0])


def _scalar_int(v: np.ndarray | int | None) -> int:
    if v is None:
        return 0
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError("expected a scalar or 1-element zero point")
    return int(a.reshape(-1)[0])


def _mlas_quantize(x: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int,
                   dtype: np.dtype) -> np.ndarray:
    """``MlasQuantizeLinear`` body (see :func:`quantize_linear`); ``scale``/``zp`` broadcast."""
    info = np.iinfo(dtype)
    zp = np.asarray(zp, dtype=np.int64)
    lo = (info.min - zp).astype(_F32)
    hi = (info.max - zp).astype(_F32)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        v = np.asarray(x, dtype=_F32) / np.asarray(scale, dtype=_F32)
    v = np.where(np.isnan(v) | (v < lo), lo, v)  # maxps(v, lo): NaN -> lo
    v = np.where(v > hi, hi, v)  # minps(v, hi)
    return (_cvtps_epi32(v) + zp).astype(dtype)


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
    dtype = _qdtype(zero_point)
    x = np.asarray(x, dtype=_F32)
    ax = axis % x.ndim if x.ndim else 0
    s = _axis_view(np.asarray(scale, dtype=_F32), x.ndim, ax)
    zp_arr = np.asarray(0 if zero_point is None else zero_point).astype(np.int64)
    zp = _axis_view(zp_arr, x.ndim, ax)
    return _mlas_quantize(x, s, zp, dtype)


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
    diff = _wrap_i32(x.astype(np.int64) - zp)
    return (diff.astype(_F32) * s).astype(_F32)


# --------------------------------------------------------------------------------------
# Requantization shared by QLinearConv / QLinearMatMul / QLinearGlobalAveragePool
# --------------------------------------------------------------------------------------


def requantize_output(acc: np.ndarray, scale: np.ndarray | float, zero_point: int,
                      dtype: np.dtype | type, bias: np.ndarray | None = None) -> np.ndarray:
    """MLAS ``MlasRequantizeOutput`` / ``MlasRequantizeOutputVector`` (int32 -> 8-bit).

    Mirrors ``MlasRequantizeOutput`` in ``onnxruntime/core/mlas/lib/quantize.cpp`` (16-wide
    main loop, 4-wide and scalar tails all identical per element), the fused post-processing
    ``MlasConvSymPostProcessAvx512Core`` of ``core/mlas/lib/x86_64/ConvSymKernelAvx512Core.S``
    (symmetric-weight QLinearConv path) and ``MlasRequantizeOutputVector`` used by
    ``core/mlas/lib/qlgavgpool.cpp``::

        a = int32(acc + bias)                  # int32 wrap-around add (bias optional)
        v = f32( f32(a) * scale )              # cvtdq2ps (RNE above 2**24) then one mulps
        v = min_ps(max_ps(v, f32(qmin - zp)), f32(qmax - zp))
        y = rne(v) + zp                        # cvtps2dq half-to-even, then add zp

    ``scale`` broadcasts against ``acc`` (per-tensor scalar or per-column / per-channel).
    """
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    a = np.asarray(acc, dtype=np.int64)
    if bias is not None:
        a = a + np.asarray(bias, dtype=np.int64)
    a32 = _wrap_i32(a)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (a32.astype(_F32) * np.asarray(scale, dtype=_F32)).astype(_F32)
    lo = _F32(info.min - zero_point)
    hi = _F32(info.max - zero_point)
    v = np.where(np.isnan(v) | (v < lo), lo, v)
    v = np.where(v > hi, hi, v)
    return (_cvtps_epi32(v) + zero_point).astype(dtype)


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


def _conv_accumulate(xs: np.ndarray, ws: np.ndarray, strides: Sequence[int] | None,
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
    xs = x.astype(np.int64) - _scalar_int(x_zero_point)
    ws = w.astype(np.int64) - _scalar_int(w_zero_point)
    return _wrap_i32(_conv_accumulate(xs, ws, strides, pads, dilations, group, auto_pad))


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
    if dtype not in _QTYPES:
        raise TypeError("QLinearConv activations must be uint8 or int8")
    m = w.shape[0]
    xz = _scalar_int(x_zero_point)
    yz = _scalar_int(y_zero_point)
    wz = _w_zp_per_channel(w_zero_point, m, w.ndim - 2)
    xs_ = _scalar_f32(x_scale)
    ys_ = _scalar_f32(y_scale)
    ws_ = np.asarray(w_scale, dtype=_F32).reshape(-1)
    if ws_.size not in (1, m):
        raise ValueError("weight scale must be scalar or have one value per output channel")
    out_scale = ((xs_ * ws_).astype(_F32) / ys_).astype(_F32)  # x_scale * w_scale / y_scale
    acc = _conv_accumulate(x.astype(np.int64) - xz, w.astype(np.int64) - wz,
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
    az = _scalar_int(a_zero_point)
    bz = 0 if b_zero_point is None else _b_param_view(np.asarray(b_zero_point).astype(np.int64))
    return _wrap_i32(np.matmul(a.astype(np.int64) - az, b.astype(np.int64) - bz))


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
    dtype = _qdtype(y_zero_point)
    az = _scalar_int(a_zero_point)
    bz = _b_param_view(np.asarray(b_zero_point).astype(np.int64))
    bs = _b_param_view(np.asarray(b_scale, dtype=_F32))
    scale = ((_scalar_f32(a_scale) * bs).astype(_F32) / _scalar_f32(y_scale)).astype(_F32)
    acc = np.matmul(a.astype(np.int64) - az, b.astype(np.int64) - bz)
    return requantize_output(acc, scale, _scalar_int(y_zero_point), dtype)


# --------------------------------------------------------------------------------------
# Element-wise binary ops (com.microsoft)
# --------------------------------------------------------------------------------------


def _binary_operands(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Broadcast ``a`` and ``b`` and report which of ORT's three span functors applies.

    ORT's ``BroadcastLooper`` (``core/providers/cpu/math/element_wise_ops.h``) walks the
    output in spans and calls functor 0 when input 0 is one repeated value over the span
    ("scalar A"), functor 1 when input 1 is ("scalar B"), functor 2 when both vary. The
    choice is the same for every span of a given pair of shapes. Returns (A, B, functor).
    """
    a = np.asarray(a)
    b = np.asarray(b)
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    ab, bb = np.broadcast_arrays(a, b)
    return ab, bb, _broadcast_case(a.shape, b.shape, out_shape)


def _broadcast_case(sa: tuple[int, ...], sb: tuple[int, ...], so: tuple[int, ...]) -> int:
    """Functor index ORT's broadcaster uses for input shapes ``sa``, ``sb`` (output ``so``)."""
    if int(np.prod(sa)) == 1:
        return 0
    if int(np.prod(sb)) == 1:
        return 1
    r = len(so)
    pa = (1,) * (r - len(sa)) + tuple(sa)
    pb = (1,) * (r - len(sb)) + tuple(sb)
    for i in range(r - 1, -1, -1):  # the innermost non-trivial output dim decides
        if so[i] == 1:
            continue
        if pa[i] == 1 and pb[i] != 1:
            return 0
        if pb[i] == 1 and pa[i] != 1:
            return 1
        return 2
    return 2


def _qladd_kernel(x: np.ndarray, sx: np.float32, zx: int, y: np.ndarray, sy: np.float32, zy: int,
                  sc: np.float32, zc: int, dtype: np.dtype) -> np.ndarray:
    """``MlasQLinearAddKernelAvx2Helper`` with ``X`` the first MLAS operand (see qlinear_add)."""
    rx = _F32(sx / sc)
    ry = _F32(sy / sc)
    fixed = _F32(_F32(zc) - fma_f32(rx, _F32(zx), _F32(ry * _F32(zy))))
    t = fma_f32(x.astype(_F32), rx, fma_f32(y.astype(_F32), ry, fixed))
    return _sat_pack(_cvtps_epi32(t), dtype)


def qlinear_add(a: np.ndarray, a_scale: np.ndarray | float, a_zero_point: np.ndarray | int | None,
                b: np.ndarray, b_scale: np.ndarray | float, b_zero_point: np.ndarray | int | None,
                c_scale: np.ndarray | float, c_zero_point: np.ndarray | int | None) -> np.ndarray:
    """com.microsoft ``QLinearAdd`` (uint8 / int8) with numpy broadcasting.

    Mirrors ``QLinearAdd<T>::Compute`` (``onnxruntime/contrib_ops/cpu/quantization/
    qlinear_binary_op.cc``) -> ``MlasQLinearAdd`` -> on this machine
    ``MlasQLinearAddKernelAvx2Helper`` (``core/mlas/lib/intrinsics/avx2/qladd_avx2.cpp``),
    compiled by GCC with FMA contraction. With ``X`` the vector operand and ``Y`` the other::

        rX    = f32(sX / sC);   rY = f32(sY / sC)
        fixed = f32( f32(zC) - fma(rX, f32(zX), f32(rY * f32(zY))) )
        t     = fma(f32(x), rX, fma(f32(y), rY, fixed))        # y broadcast or per element
        out   = sat8(sat16(rne(t)))                             # no float clamp before cvt!

    Operand roles follow ORT's broadcast spans: in a span where B is one repeated value,
    ``X = A, Y = B``; where A is repeated (and when both are single values) ORT *swaps* the
    operands, ``X = B, Y = A`` (which changes the rounding of ``fixed``); where both vary,
    ``X = A, Y = B``. ``zC`` is folded into ``fixed`` before rounding (no separate ``+ zp``).
    Because nothing clamps before ``cvtps2dq``, |t| >= 2**31 (or NaN) becomes INT32_MIN and
    saturates to the *lowest* value (0 / -128). Missing zero points are 0; the output dtype
    is A's dtype.
    """
    a = np.asarray(a)
    dtype = a.dtype
    if dtype not in _QTYPES:
        raise TypeError("QLinearAdd supports uint8/int8 here")
    sa, sb, sc = _scalar_f32(a_scale), _scalar_f32(b_scale), _scalar_f32(c_scale)
    za, zb, zc = _scalar_int(a_zero_point), _scalar_int(b_zero_point), _scalar_int(c_zero_point)
    ab, bb, case = _binary_operands(a, np.asarray(b))
    if case == 0:  # A is the repeated value: ORT passes (B, A) to MlasQLinearAdd
        return _qladd_kernel(bb, sb, zb, ab, sa, za, sc, zc, dtype)
    return _qladd_kernel(ab, sa, za, bb, sb, zb, sc, zc, dtype)


def qlinear_mul(a: np.ndarray, a_scale: np.ndarray | float, a_zero_point: np.ndarray | int | None,
                b: np.ndarray, b_scale: np.ndarray | float, b_zero_point: np.ndarray | int | None,
                c_scale: np.ndarray | float, c_zero_point: np.ndarray | int | None) -> np.ndarray:
    """com.microsoft ``QLinearMul`` (uint8 / int8) with numpy broadcasting.

    Mirrors ``QLinearMul<T>::Compute`` (``onnxruntime/contrib_ops/cpu/quantization/
    qlinear_binary_op.cc``) -> ``MlasQLinearMul`` SSE2 kernel (``core/mlas/lib/qlmul.cpp``,
    ``MlasQLinearMulVectorS16``; built without FMA contraction)::

        ratio = f32( f32(sA * sB) / sC )
        p     = int32( (a - zA) * (b - zB) )            # exact (int16 x int16 -> int32)
        t     = f32( f32( f32(p) * ratio ) + f32(zC) )   # mul, then add: NOT fused
        out   = sat8(sat16(rne(t)))                      # no float clamp before cvtps2dq

    The 16-wide loop and the padded tail behave identically; operand swapping for a
    broadcast A does not change anything (the product is commutative). |t| >= 2**31 gives
    INT32_MIN -> lowest value. Output dtype is A's dtype.
    """
    a = np.asarray(a)
    dtype = a.dtype
    if dtype not in _QTYPES:
        raise TypeError("QLinearMul supports uint8/int8 here")
    sa, sb, sc = _scalar_f32(a_scale), _scalar_f32(b_scale), _scalar_f32(c_scale)
    za, zb, zc = _scalar_int(a_zero_point), _scalar_int(b_zero_point), _scalar_int(c_zero_point)
    ab, bb, _ = _binary_operands(a, np.asarray(b))
    ratio = _F32(_F32(sa * sb) / sc)
    p = (ab.astype(np.int64) - za) * (bb.astype(np.int64) - zb)
    with np.errstate(over="ignore", invalid="ignore"):
        t = ((p.astype(_F32) * ratio).astype(_F32) + _F32(zc)).astype(_F32)
    return _sat_pack(_cvtps_epi32(t), dtype)


# --------------------------------------------------------------------------------------
# Lookup-table ops (com.microsoft)
# --------------------------------------------------------------------------------------


def _lut_inputs(x_scale: np.ndarray | float, x_zero_point: np.ndarray | int | None,
                dtype: np.dtype) -> np.ndarray:
    """``QlinearBuildLookupTable`` dequantized inputs for the 256 raw byte values (index = byte)."""
    raw = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int64)
    k = (raw - _scalar_int(x_zero_point)).astype(_F32)
    return (_scalar_f32(x_scale) * k).astype(_F32)


def _apply_lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return table[x.view(np.uint8)].view(x.dtype) if x.dtype == np.int8 else table[x]


def mlas_logistic(x: np.ndarray) -> np.ndarray:
    """MLAS logistic (sigmoid) as computed by ``MlasComputeLogisticF32KernelFma3`` on x86-64.

    Mirrors ``core/mlas/lib/x86_64/LogisticKernelFma3.S`` / the FMA3 transcendental kernel,
    constants ``MlasLogisticConstants`` from ``core/mlas/lib/logistic.cpp`` (Eigen's rational
    approximation)::

        v  = min_ps(18, max_ps(-18, x))            # NaN propagates
        v2 = f32(v * v)
        p  = fma(v2, a9, a7); p = fma(v2, p, a5); p = fma(v2, p, a3); p = fma(v2, p, a1)
        q  = fma(v2, b10, b8); q = fma(v2, q, b6); q = fma(v2, q, b4); q = fma(v2, q, b2)
        q  = fma(v2, q, b0)
        p  = f32(v * p)
        y  = max_ps(0, f32( f32(p / q) + 0.5 ))     # only the lower bound is clamped

    (The generic SSE kernel uses separate mul+add; it is not the one ORT runs here.)
    """
    c = {k: _F32(v) for k, v in dict(
        a9=4.37031012579801e-11, a7=1.15627324459942e-07, a5=6.08574864600143e-05,
        a3=8.51377133304701e-03, a1=2.48287947061529e-01, b10=6.10247389755681e-13,
        b8=5.76102136993427e-09, b6=6.29106785017040e-06, b4=1.70198817374094e-03,
        b2=1.16817656904453e-01, b0=9.93151921023180e-01).items()}
    v = np.asarray(x, dtype=_F32)
    v = np.where(v < _F32(-18.0), _F32(-18.0), v)
    v = np.where(v > _F32(18.0), _F32(18.0), v).astype(_F32)
    v2 = (v * v).astype(_F32)
    p = fma_f32(v2, c["a9"], c["a7"])
    for k in ("a5", "a3", "a1"):
        p = fma_f32(v2, p, c[k])
    q = fma_f32(v2, c["b10"], c["b8"])
    for k in ("b6", "b4", "b2", "b0"):
        q = fma_f32(v2, q, c[k])
    p = (v * p).astype(_F32)
    y = ((p / q).astype(_F32) + _F32(0.5)).astype(_F32)
    return np.where(y < _F32(0.0), _F32(0.0), y).astype(_F32)


def qlinear_sigmoid(x: np.ndarray, x_scale: np.ndarray | float,
                    x_zero_point: np.ndarray | int | None, y_scale: np.ndarray | float,
                    y_zero_point: np.ndarray | int | None) -> np.ndarray:
    """com.microsoft ``QLinearSigmoid``: a 256-entry lookup table built in float32.

    Mirrors ``QLinearSigmoid<T>`` (``onnxruntime/contrib_ops/cpu/quantization/
    qlinear_activations.cc``) + ``QlinearBuildLookupTable`` (``qlinear_lookup_table.cc``)::

        for every raw byte value q (as T):
            d        = f32( x_scale * f32(int(q) - int(x_zp)) )
            s        = mlas_logistic(d)                       # MLAS FMA3 approximation
            table[q] = quantize(s, y_scale, y_zp)             # MlasQuantizeLinear: s / y_scale ...
        y = table[x]

    The table is identical whether the scales are constant (built at session creation) or
    dynamic (built per run). Output dtype equals input dtype.
    """
    x = np.asarray(x)
    dtype = x.dtype
    d = _lut_inputs(x_scale, x_zero_point, dtype)
    table = _mlas_quantize(mlas_logistic(d), _scalar_f32(y_scale), _scalar_int(y_zero_point), dtype)
    return _apply_lut(x, table.view(np.uint8) if dtype == np.int8 else table)


def qlinear_leaky_relu(x: np.ndarray, x_scale: np.ndarray | float,
                       x_zero_point: np.ndarray | int | None, y_scale: np.ndarray | float,
                       y_zero_point: np.ndarray | int | None, alpha: float = 0.01) -> np.ndarray:
    """com.microsoft ``QLinearLeakyRelu``: a 256-entry lookup table built in float32.

    Mirrors ``QLinearLeakyRelu<T>`` (``onnxruntime/contrib_ops/cpu/quantization/
    qlinear_activations.cc``) + ``QlinearBuildLookupTable``::

        d        = f32( x_scale * f32(int(q) - int(x_zp)) )      # for each raw byte q
        v        = d if d >= 0 else f32(alpha * d)               # alpha as float32
        table[q] = quantize(v, y_scale, y_zp)                     # MlasQuantizeLinear
        y = table[x]
    """
    x = np.asarray(x)
    dtype = x.dtype
    d = _lut_inputs(x_scale, x_zero_point, dtype)
    v = np.where(d >= _F32(0.0), d, (_F32(alpha) * d).astype(_F32)).astype(_F32)
    table = _mlas_quantize(v, _scalar_f32(y_scale), _scalar_int(y_zero_point), dtype)
    return _apply_lut(x, table.view(np.uint8) if dtype == np.int8 else table)


def qlinear_concat(y_scale: np.ndarray | float, y_zero_point: np.ndarray | int,
                   inputs: Sequence[tuple[np.ndarray, np.ndarray | float, np.ndarray | int]],
                   axis: int) -> np.ndarray:
    """com.microsoft ``QLinearConcat``: per-input requantization by lookup table, then concat.

    Mirrors ``QLinearConcat::Compute`` (``onnxruntime/contrib_ops/cpu/quantization/
    qlinear_concat.cc``). Inputs whose scale and zero point equal the output's are copied;
    the others go through a 256-entry table built by ``QlinearBuildLookupTable`` with an
    identity transform::

        table[q] = quantize( f32(x_scale * f32(int(q) - int(x_zp))), y_scale, y_zp )
                 # quantize = MlasQuantizeLinear: rne(clamp(f32(v / y_scale))) + y_zp

    (For equal parameters the table would be the identity too.) Output dtype follows
    ``y_zero_point``.
    """
    dtype = _qdtype(y_zero_point)
    ys, yz = _scalar_f32(y_scale), _scalar_int(y_zero_point)
    parts = []
    for x, xs, xz in inputs:
        x = np.asarray(x)
        if x.dtype != dtype:
            raise TypeError("QLinearConcat inputs must share the output dtype")
        if _scalar_f32(xs) == ys and _scalar_int(xz) == yz:
            parts.append(x)
            continue
        d = _lut_inputs(xs, xz, dtype)
        table = _mlas_quantize(d, ys, yz, dtype)
        parts.append(_apply_lut(x, table.view(np.uint8) if dtype == np.int8 else table))
    return np.concatenate(parts, axis=axis)


# --------------------------------------------------------------------------------------
# Pooling (com.microsoft)
# --------------------------------------------------------------------------------------


def qlinear_global_average_pool(x: np.ndarray, x_scale: np.ndarray | float,
                                x_zero_point: np.ndarray | int, y_scale: np.ndarray | float,
                                y_zero_point: np.ndarray | int, channels_last: int = 0
                                ) -> np.ndarray:
    """com.microsoft ``QLinearGlobalAveragePool`` (uint8 / int8, NCHW or channels-last).

    Mirrors ``QLinearGlobalAveragePool::Compute`` / ``ComputeQLinearGlobalAvgPool``
    (``onnxruntime/contrib_ops/cpu/quantization/qlinear_global_average_pool.cc``) ->
    ``MlasQLinearGlobalAveragePoolNchw`` / ``...Nhwc`` (``core/mlas/lib/qlgavgpool.cpp``,
    SSE2 path: integer sums, then ``MlasRequantizeOutputVector``)::

        n     = number of spatial elements (image size)
        scale = f32( x_scale / f32(y_scale * f32(n)) )
        acc   = int32( sum(x over the image) - x_zp * n )        # exact
        y     = requantize_output(acc, scale, y_zp)              # f32(acc)*scale, clamp, rne, +zp

    ORT throws (here: ValueError) when ``n >= 2**24`` or ``scale`` is outside
    ``[2**-32, 256)``. NCHW and NHWC give the same result (only the summation order of
    exact integers differs). Output keeps the rank with spatial dims set to 1.
    """
    x = np.asarray(x)
    dtype = x.dtype
    if dtype not in _QTYPES:
        raise TypeError("QLinearGlobalAveragePool supports uint8/int8")
    if x.ndim < 3:
        raise ValueError("input rank must be >= 3")
    sp_axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    n = int(np.prod([x.shape[i] for i in sp_axes]))
    scale = _F32(_scalar_f32(x_scale) / _F32(_scalar_f32(y_scale) * _F32(n)))
    if n >= 0x1000000 or scale < _F32(2.0**-32) or scale >= _F32(256.0):
        raise ValueError("QLinearGlobalAveragePool parameter out of computation range")
    acc = x.astype(np.int64).sum(axis=sp_axes, keepdims=True) - _scalar_int(x_zero_point) * n
    return requantize_output(acc, scale, _scalar_int(y_zero_point), dtype)


def _pool_out_size(n: int, k: int, s: int, pad_head: int, pad_tail: int, ceil_mode: int) -> int:
    """Pooled size as ORT 1.32 computes it (``PoolAttributes::ComputeOutputSize``).

    ``int(f32(n + pads - k) / s + 1)`` (truncation), or ``ceil`` of it with ``ceil_mode``; in
    ceil mode a last window that would *start* inside the tail padding
    (``(out - 1) * s >= n + pad_head``) is dropped (verified against the binary).
    """
    v = float(_F32(_F32(n + pad_head + pad_tail - (k - 1) - 1) / _F32(s)))
    if not ceil_mode:
        return int(v + 1)
    out = int(math.ceil(v + 1))
    if (out - 1) * s >= n + pad_head:
        out -= 1
    return out


def qlinear_average_pool(x: np.ndarray, x_scale: np.ndarray | float,
                         x_zero_point: np.ndarray | int | None, y_scale: np.ndarray | float,
                         y_zero_point: np.ndarray | int | None, kernel_shape: Sequence[int], *,
                         strides: Sequence[int] | None = None, pads: Sequence[int] | None = None,
                         count_include_pad: int = 0, ceil_mode: int = 0, channels_last: int = 0,
                         auto_pad: str = "NOTSET") -> np.ndarray:
    """com.microsoft ``QLinearAveragePool`` (uint8 / int8; 1-D, 2-D, 3-D kernels).

    Mirrors ``QLinearAveragePool::ComputeImpl`` (``onnxruntime/contrib_ops/cpu/
    quantization/qlinear_pool.cc``). Two paths:

    * kernel == input spatial dims and all pads 0: falls back to
      :func:`qlinear_global_average_pool` (integer sum + requantize; strides ignored).
    * otherwise a float32 path (``QLinearPool{1,2,3}DTask`` with ``AveragePool``)::

          d   = f32( x_scale * f32(int(x) - int(x_zp)) )      # dequantize_value / lookup
          # window: start = o*stride - pad_head, end = min(start + k, size), start = max(start, 0)
          s   = 0.0f; for h in window: for w in window: s = f32(s + d)     # row-major order
          cnt = prod(k) if count_include_pad else number of taps actually summed
          v   = f32( s / f32(cnt) )                            # AveragePool::Finalize
          y   = clamp( int32(nearbyintf( f32( f32(v / y_scale) + f32(y_zp) ) )), qmin, qmax )

      Note ``y_zp`` is added *before* rounding (in float), unlike the fallback path where it is
      added after rounding (they differ on exact .5 ties with odd ``y_zp``), and the division
      is a true division by ``y_scale``. (Another summation order could in principle round
      differently; an extensive search found no input where it changes the output.) With
      ``count_include_pad`` the divisor is the full kernel size even for windows that hang
      over the padded border (ceil_mode). Channels-last only changes memory order, not the
      arithmetic.

    Output size per axis: ``int(f32(n + pads - k) / s + 1)`` (``ceil`` when ``ceil_mode``, minus
    one when the last window would start in the tail padding), as
    ``PoolAttributes::ComputeOutputSize``. auto_pad SAME_UPPER/SAME_LOWER/VALID follow
    ``ComputeSizePadDilations``.
    """
    x = np.asarray(x)
    dtype = x.dtype
    if dtype not in _QTYPES:
        raise TypeError("QLinearAveragePool supports uint8/int8")
    info = np.iinfo(dtype)
    ks = [int(k) for k in kernel_shape]
    r = len(ks)
    if channels_last:
        x_nc = np.moveaxis(x, -1, 1)
    else:
        x_nc = x
    sp = list(x_nc.shape[2:])
    st = [int(s) for s in strides] if strides else [1] * r
    pd = [int(p) for p in pads] if pads else [0] * (2 * r)
    out: list[int] = []
    for i in range(r):
        if auto_pad in ("SAME_UPPER", "SAME_LOWER"):
            tgt = (sp[i] + st[i] - 1) // st[i]
            need = (tgt - 1) * st[i] + ks[i] - sp[i]
            head = need // 2 if auto_pad == "SAME_UPPER" else (need + 1) // 2
            pd[i], pd[i + r] = head, need - head
        elif auto_pad == "VALID":
            pd[i], pd[i + r] = 0, 0
        out.append(_pool_out_size(sp[i], ks[i], st[i], pd[i], pd[i + r], ceil_mode))
    xs_, ys_ = _scalar_f32(x_scale), _scalar_f32(y_scale)
    xz, yz = _scalar_int(x_zero_point), _scalar_int(y_zero_point)

    if sp == ks and all(p == 0 for p in pd):
        g = qlinear_global_average_pool(x_nc, xs_, dtype.type(xz), ys_, dtype.type(yz), 0)
        return np.moveaxis(g, 1, -1) if channels_last else g

    d = (xs_ * (x_nc.astype(np.int64) - xz).astype(_F32)).astype(_F32)
    n, c = x_nc.shape[:2]
    y = np.empty((n, c) + tuple(out), dtype=dtype)
    kprod = int(np.prod(ks))
    for opos in np.ndindex(*out):
        rngs = []
        for i in range(r):
            s0 = opos[i] * st[i] - pd[i]
            e0 = min(s0 + ks[i], sp[i])
            rngs.append((max(s0, 0), e0))
        cnt = 1
        for s0, e0 in rngs:
            cnt *= max(e0 - s0, 0)
        acc = np.zeros((n, c), dtype=_F32)
        for tap in np.ndindex(*[max(e0 - s0, 0) for s0, e0 in rngs]):
            idx = tuple(rngs[i][0] + tap[i] for i in range(r))
            acc = (acc + d[(slice(None), slice(None)) + idx]).astype(_F32)
        div = _F32(kprod if count_include_pad else cnt)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            v = (acc / div).astype(_F32)
            t = ((v / ys_).astype(_F32) + _F32(yz)).astype(_F32)
        q = np.clip(_cvtps_epi32(t), info.min, info.max).astype(dtype)
        y[(slice(None), slice(None)) + opos] = q
    return np.moveaxis(y, 1, -1) if channels_last else y
