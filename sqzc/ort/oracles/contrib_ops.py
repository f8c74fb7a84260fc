"""Bit-exact numpy references of onnxruntime's ``com.microsoft`` int8/uint8 contrib kernels.

The quantized ops outside the standard ONNX domain (QLinearAdd, QLinearMul,
QLinearGlobalAveragePool, QLinearAveragePool, QLinearSoftmax; the lookup-table ops are in
:mod:`sqzc.ort.oracles.lookup_ops`), element for element as onnxruntime 1.32's CPU
execution provider computes them on x86-64
(``onnxruntime/contrib_ops/cpu/quantization/``). They are a family of their own, apart from
the standard ops of :mod:`sqzc.ort.oracles.onnx_ops`: element-wise MLAS kernels with their own
operand-swapping and saturation rules, a lookup-table softmax and a float-path average
pool, instead of exact integer accumulation followed by ``MlasRequantizeOutput``. They are
built from the x86/MLAS primitives of :mod:`sqzc.ort.oracles.mlas`, whose docstring defines the notation used
below (``f32``, ``fma``, ``rne``, ``sat8``/``sat16``, ``max_ps``/``min_ps``).
``tests/unit/test_quant_reference.py`` checks every function against onnxruntime with
``np.array_equal`` (zero tolerance).

Summary (``q`` = 8-bit value, ``z`` = zero point, ``[lo, hi]`` = 8-bit range)
--------------------------------------------------------------------------
* QLinearGlobalAveragePool (and QLinearAveragePool with kernel == image, no pads):
  ``S = f32(sx / f32(sy * f32(n)))``, ``acc = sum(q) - zx * n``, then requantized like
  QLinearConv: ``y = rne(clamp(f32(f32(acc) * S), lo - zy, hi - zy)) + zy``.
* QLinearAveragePool (general): float path, ``y = clamp(rne(f32(f32(mean / sy) + zy)))``.
* QLinearAdd: ``rA = f32(sA/sC)``, ``rB = f32(sB/sC)``, ``K = f32(zC - fma(rA, zA, f32(rB*zB)))``,
  ``y = sat(rne(fma(a, rA, fma(b, rB, K))))`` (operands swapped when A is broadcast).
* QLinearMul: ``R = f32(f32(sA*sB)/sC)``, ``y = sat(rne(f32(f32(f32(p) * R) + zC)))``.
* QLinearSoftmax: ``e = table[raw byte shifted so the row's max is the top entry]`` (exp
  in double, stored as float32), ``s`` = float32 sum of the row in order,
  ``y = sat(rne(f32(f32(e * floor(1 / sy)) / s)) + zy)``.
* QLinearSigmoid / QLinearLeakyRelu / QLinearConcat: 256-entry tables
  (:mod:`sqzc.ort.oracles.lookup_ops`).

Only numpy, the standard library and :mod:`sqzc.ort.oracles.mlas` are used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from sqzc.ort.oracles.mlas import (
    QTYPES,
    cvtps_epi32,
    sat_pack,
    scalar_f32,
    scalar_int,
    fma_f32,
    requantize_output,
)

_F32 = np.float32

__all__ = [
    "broadcast_case",
    "qladd_constants",
    "qladd_kernel",
    "qlgap_scale",
    "qlmul_ratio",
    "qlinear_add",
    "qlinear_average_pool",
    "qlinear_global_average_pool",
    "qlinear_mul",
    "qlinear_softmax",
    "qlinear_softmax_table",
]


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
    return ab, bb, broadcast_case(a.shape, b.shape, out_shape)


def broadcast_case(sa: tuple[int, ...], sb: tuple[int, ...], so: tuple[int, ...]) -> int:
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


def qladd_constants(sx: np.float32, zx: int, sy: np.float32, zy: int, sc: np.float32, zc: int
                    ) -> tuple[np.float32, np.float32, np.float32]:
    """(rX, rY, fixed) of ``MlasQLinearAddKernelAvx2Helper`` with X the first operand:
    ``rX = f32(sX / sC)``, ``rY = f32(sY / sC)``, ``fixed = f32(zC - fma(rX, zX, f32(rY * zY)))``."""
    rx = _F32(_F32(sx) / _F32(sc))
    ry = _F32(_F32(sy) / _F32(sc))
    fixed = _F32(_F32(zc) - fma_f32(rx, _F32(zx), _F32(ry * _F32(zy))).reshape(()))
    return rx, ry, fixed


def qlmul_ratio(sa: np.float32, sb: np.float32, sc: np.float32) -> np.float32:
    """QLinearMul's requantization ratio ``f32(f32(sA * sB) / sC)``."""
    return _F32(_F32(_F32(sa) * _F32(sb)) / _F32(sc))


def qlgap_scale(x_scale: np.float32, y_scale: np.float32, n: int) -> np.float32:
    """QLinearGlobalAveragePool's requantization scale ``f32(sx / f32(sy * f32(n)))``."""
    return _F32(_F32(x_scale) / _F32(_F32(y_scale) * _F32(n)))


def qladd_kernel(x: np.ndarray, sx: np.float32, zx: int, y: np.ndarray, sy: np.float32, zy: int,
                  sc: np.float32, zc: int, dtype: np.dtype) -> np.ndarray:
    """``MlasQLinearAddKernelAvx2Helper`` with ``X`` the first MLAS operand (see qlinear_add)."""
    rx, ry, fixed = qladd_constants(sx, zx, sy, zy, sc, zc)
    t = fma_f32(x.astype(_F32), rx, fma_f32(y.astype(_F32), ry, fixed))
    return sat_pack(cvtps_epi32(t), dtype)


def _qbinary_prologue(op: str, a: np.ndarray, a_scale: np.ndarray | float,
                      a_zero_point: np.ndarray | int | None, b: np.ndarray,
                      b_scale: np.ndarray | float, b_zero_point: np.ndarray | int | None,
                      c_scale: np.ndarray | float, c_zero_point: np.ndarray | int | None
                      ) -> tuple[np.dtype, tuple[np.float32, ...], tuple[int, ...],
                                 np.ndarray, np.ndarray, int]:
    """What QLinearAdd and QLinearMul share: the 8-bit dtype check, the scalar scales
    (sA, sB, sC) and zero points (zA, zB, zC), and the broadcast operands with ORT's span
    case (``_binary_operands``)."""
    a = np.asarray(a)
    if a.dtype not in QTYPES:
        raise TypeError(f"{op} supports uint8/int8 here")
    scales = (scalar_f32(a_scale), scalar_f32(b_scale), scalar_f32(c_scale))
    zero_points = (scalar_int(a_zero_point), scalar_int(b_zero_point), scalar_int(c_zero_point))
    ab, bb, case = _binary_operands(a, np.asarray(b))
    return a.dtype, scales, zero_points, ab, bb, case


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
    dtype, (sa, sb, sc), (za, zb, zc), ab, bb, case = _qbinary_prologue(
        "QLinearAdd", a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point)
    if case == 0:  # A is the repeated value: ORT passes (B, A) to MlasQLinearAdd
        return qladd_kernel(bb, sb, zb, ab, sa, za, sc, zc, dtype)
    return qladd_kernel(ab, sa, za, bb, sb, zb, sc, zc, dtype)


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
    dtype, (sa, sb, sc), (za, zb, zc), ab, bb, _ = _qbinary_prologue(
        "QLinearMul", a, a_scale, a_zero_point, b, b_scale, b_zero_point, c_scale, c_zero_point)
    ratio = qlmul_ratio(sa, sb, sc)
    p = (ab.astype(np.int64) - za) * (bb.astype(np.int64) - zb)
    with np.errstate(over="ignore", invalid="ignore"):
        t = ((p.astype(_F32) * ratio).astype(_F32) + _F32(zc)).astype(_F32)
    return sat_pack(cvtps_epi32(t), dtype)


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
    if dtype not in QTYPES:
        raise TypeError("QLinearGlobalAveragePool supports uint8/int8")
    if x.ndim < 3:
        raise ValueError("input rank must be >= 3")
    sp_axes = tuple(range(1, x.ndim - 1)) if channels_last else tuple(range(2, x.ndim))
    n = int(np.prod([x.shape[i] for i in sp_axes]))
    scale = qlgap_scale(scalar_f32(x_scale), scalar_f32(y_scale), n)
    if n >= 0x1000000 or scale < _F32(2.0**-32) or scale >= _F32(256.0):
        raise ValueError("QLinearGlobalAveragePool parameter out of computation range")
    acc = x.astype(np.int64).sum(axis=sp_axes, keepdims=True) - scalar_int(x_zero_point) * n
    return requantize_output(acc, scale, scalar_int(y_zero_point), dtype)


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
    if dtype not in QTYPES:
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
    xs_, ys_ = scalar_f32(x_scale), scalar_f32(y_scale)
    xz, yz = scalar_int(x_zero_point), scalar_int(y_zero_point)

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
        q = np.clip(cvtps_epi32(t), info.min, info.max).astype(dtype)
        y[(slice(None), slice(None)) + opos] = q
    return np.moveaxis(y, 1, -1) if channels_last else y


# --------------------------------------------------------------------------------------
# QLinearSoftmax (com.microsoft; also onnxruntime's QDQ fusion of DQ -> Softmax -> Q)
# --------------------------------------------------------------------------------------


def qlinear_softmax_table(x_scale: float, reduce_len: int, signed: bool) -> np.ndarray:
    """The 256 float32 exponentials of ``QlinearBuildLookupTableUint32``
    (``contrib_ops/cpu/quantization/qlinear_softmax.cc``, float ``EXP_OUT_DTYPE``)::

        shift    = max(0, log(f32(FLT_MAX / f32(reduce_len))) - 5) / x_scale   # double
        table[i] = f32(exp((i - 255 + shift) * x_scale))   for i in 0..255     # double exp

    stored at raw byte ``i`` (uint8) or ``i - 128`` (int8). The shift keeps a row's sum of
    up to ``reduce_len`` entries below FLT_MAX, exponent headroom that cancels in the
    division.
    """
    xs = float(np.float32(x_scale))
    headroom = float(np.float32(np.finfo(np.float32).max) / np.float32(reduce_len))
    shift = max(0.0, math.log(headroom) - 5.0) / xs
    table = np.empty(256, np.float32)
    for i in range(256):
        table[(i - 128) & 0xFF if signed else i] = np.float32(math.exp((i - 255 + shift) * xs))
    return table


def qlinear_softmax(x: np.ndarray, x_scale: np.ndarray | float, y_scale: np.ndarray | float,
                    y_zero_point: np.ndarray | int | None, axis: int = -1) -> np.ndarray:
    """com.microsoft ``QLinearSoftmax`` (opset-13 meaning: along ``axis``). Per row::

        m = max(row);  e_k = table[byte(x_k - m + top)]    # top: 255 (uint8), 127 (int8)
        s = f32 sum of e_k, in index order
        y_k = saturate(rne(f32(f32(e_k * f32(floor(1 / y_scale))) / s)) + y_zp)

    saturated to the 8-bit range (an overflowing ``e_k * floor(1 / y_scale)``, possible
    for rows of one element, gives inf and the top value; onnxruntime 1.32's behaviour,
    checked, where older sources cast without saturating). The input zero point cancels.
    """
    x = np.asarray(x)
    signed = x.dtype == np.int8
    rows = np.moveaxis(x, axis, -1)
    flat = rows.reshape(-1, rows.shape[-1]).astype(np.int32)
    table = qlinear_softmax_table(float(scalar_f32(x_scale)), flat.shape[1], signed)
    top = 127 if signed else 255
    e = table[(flat - flat.max(axis=1, keepdims=True) + top) & 0xFF]
    total = np.zeros(flat.shape[0], np.float32)
    for k in range(flat.shape[1]):
        total = (total + e[:, k]).astype(np.float32)
    inv = np.float32(math.floor(np.float32(1.0) / scalar_f32(y_scale)))
    with np.errstate(over="ignore"):
        v = ((e * inv).astype(np.float32) / total[:, None]).astype(np.float32)
    lo, hi = (-128, 127) if signed else (0, 255)
    y = np.clip(np.rint(v) + np.float32(scalar_int(y_zero_point)), lo, hi).astype(x.dtype)
    return np.moveaxis(y.reshape(rows.shape), -1, axis)

