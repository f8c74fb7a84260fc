"""The x86-64 / MLAS arithmetic primitives onnxruntime's quantized CPU kernels are built from.

Binary32 fused multiply-add, ``cvtps2dq``, the saturating packs, ``MlasQuantizeLinear``,
``MlasRequantizeOutput`` and MLAS's logistic, each reproduced bit for bit as onnxruntime
1.32 runs them on x86-64 with AVX-512. The op oracles (:mod:`sqzc.ort.oracles.onnx_ops`,
:mod:`sqzc.ort.oracles.contrib_ops`) are written in terms of these, and so are the
compile-time foldings of the quantize ops (``sqzc.ops``); the code generator's kernels
replicate the same formulas in LLVM.

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

Only numpy and the standard library are used.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "EXP_LOG2_HIGH",
    "EXP_LOG2_LOW",
    "EXP_LOG2_RECIPROCAL",
    "EXP_LOWER_RANGE",
    "EXP_POLY",
    "EXP_ROUNDING_BIAS",
    "SOFTMAX_SUM_LANES",
    "LOGISTIC_DENOMINATOR",
    "LOGISTIC_NUMERATOR",
    "QTYPES",
    "cvtps_epi32",
    "fma_f32",
    "mlas_logistic",
    "mlas_quantize",
    "qdtype",
    "requantize_output",
    "sat_pack",
    "scalar_f32",
    "scalar_int",
    "wrap_i32",
]

_F32 = np.float32
_F64 = np.float64
_INT32_MIN = -(2**31)
QTYPES = (np.dtype(np.uint8), np.dtype(np.int8))


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


def cvtps_epi32(v: np.ndarray) -> np.ndarray:
    """``cvtps2dq``: round half to even; NaN / out-of-int32-range -> INT32_MIN. Returns int64."""
    v = np.asarray(v, dtype=_F32)
    ok = np.isfinite(v) & (v >= _F32(-(2.0**31))) & (v < _F32(2.0**31))
    r = np.rint(np.where(ok, v, _F32(0))).astype(np.int64)
    return np.where(ok, r, _INT32_MIN)


def sat_pack(v: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``packssdw`` then ``packuswb``/``packsswb``: saturate int32 to int16, then to 8 bits."""
    info = np.iinfo(dtype)
    v16 = np.clip(np.asarray(v, dtype=np.int64), -32768, 32767)
    return np.clip(v16, info.min, info.max).astype(dtype)


def wrap_i32(v: np.ndarray) -> np.ndarray:
    """Two's-complement int32 wrap-around of an integer array (returned as int32)."""
    return np.asarray(v, dtype=np.int64).astype(np.int32)


def qdtype(zero_point: np.ndarray | int | None, default: type = np.uint8) -> np.dtype:
    if zero_point is None:
        return np.dtype(default)
    zp = np.asarray(zero_point)
    if zp.dtype not in QTYPES:
        raise TypeError(f"zero point dtype must be uint8 or int8, got {zp.dtype}")
    return zp.dtype


def scalar_f32(v: np.ndarray | float) -> np.float32:
    a = np.asarray(v, dtype=_F32)
    if a.size != 1:
        raise ValueError("expected a scalar or 1-element tensor")
    return _F32(a.reshape(-1)[0])


def scalar_int(v: np.ndarray | int | None) -> int:
    if v is None:
        return 0
    a = np.asarray(v)
    if a.size != 1:
        raise ValueError("expected a scalar or 1-element zero point")
    return int(a.reshape(-1)[0])


def mlas_quantize(x: np.ndarray, scale: np.ndarray | float, zp: np.ndarray | int,
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
    return (cvtps_epi32(v) + zp).astype(dtype)


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
    a32 = wrap_i32(a)
    with np.errstate(over="ignore", invalid="ignore"):
        v = (a32.astype(_F32) * np.asarray(scale, dtype=_F32)).astype(_F32)
    lo = _F32(info.min - zero_point)
    hi = _F32(info.max - zero_point)
    v = np.where(np.isnan(v) | (v < lo), lo, v)
    v = np.where(v > hi, hi, v)
    return (cvtps_epi32(v) + zero_point).astype(dtype)


#: ``MlasExpConstants`` (mlas/lib/compute.cpp) as float32 bit patterns, for MLAS's exp in
#: its AVX-512F softmax kernel (``backends/llvm/emit/softmax/float.py`` reproduces it).
EXP_LOWER_RANGE = 0xC2CFF1B5      # -103.972084: below it exp underflows to 0
EXP_ROUNDING_BIAS = 0x4B400000    # 1.5 * 2^23: adding it rounds to an integer
EXP_LOG2_RECIPROCAL = 0x3FB8AA3B  # 1 / ln 2
EXP_LOG2_HIGH = 0xBF317200        # -ln 2, high part
EXP_LOG2_LOW = 0xB5BFBE8E         # -ln 2, low part
EXP_POLY = (0x3AB4A000, 0x3C092F6E, 0x3D2AADAD, 0x3E2AAA28, 0x3EFFFFFB, 0x3F800000,
            0x3F800000)
#: Lanes of MLAS's AVX-512 softmax partial sums (lane l adds elements l, l + 16, ...).
SOFTMAX_SUM_LANES = 16


#: ``MlasLogisticConstants`` (mlas/lib/logistic.cpp, Eigen's rational approximation of the
#: logistic on [-18, 18]): the odd numerator's coefficients a9, a7, a5, a3, a1 and the even
#: denominator's b10 ... b0, highest power first, as the float32 values the kernel loads.
LOGISTIC_NUMERATOR = tuple(float(np.float32(c)) for c in (
    4.37031012579801e-11, 1.15627324459942e-07, 6.08574864600143e-05,
    8.51377133304701e-03, 2.48287947061529e-01))
LOGISTIC_DENOMINATOR = tuple(float(np.float32(c)) for c in (
    6.10247389755681e-13, 5.76102136993427e-09, 6.29106785017040e-06,
    1.70198817374094e-03, 1.16817656904453e-01, 9.93151921023180e-01))


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
    v = np.asarray(x, dtype=_F32)
    v = np.where(v < _F32(-18.0), _F32(-18.0), v)
    v = np.where(v > _F32(18.0), _F32(18.0), v).astype(_F32)
    v2 = (v * v).astype(_F32)
    p = fma_f32(v2, _F32(LOGISTIC_NUMERATOR[0]), _F32(LOGISTIC_NUMERATOR[1]))
    for k in LOGISTIC_NUMERATOR[2:]:
        p = fma_f32(v2, p, _F32(k))
    q = fma_f32(v2, _F32(LOGISTIC_DENOMINATOR[0]), _F32(LOGISTIC_DENOMINATOR[1]))
    for k in LOGISTIC_DENOMINATOR[2:]:
        q = fma_f32(v2, q, _F32(k))
    p = (v * p).astype(_F32)
    y = ((p / q).astype(_F32) + _F32(0.5)).astype(_F32)
    return np.where(y < _F32(0.0), _F32(0.0), y).astype(_F32)
