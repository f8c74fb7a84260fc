"""Bit-exact numpy references of onnxruntime's lookup-table contrib ops: QLinearSigmoid,
QLinearLeakyRelu and QLinearConcat's per-input requantization.

onnxruntime computes each as a 256-entry table indexed by the input byte, built once
from float32 arithmetic (``QlinearBuildLookupTable``, ``qlinear_lookup_table.cc``):
``table[q] = QuantizeLinear(f(f32(sx * f32(q - zx))), sy, zy)`` with ``f`` = MLAS's
logistic, leaky relu or the identity. The notation is :mod:`sqzc.ort.oracles.mlas`'s;
``tests/unit/test_quant_reference.py`` checks every function against onnxruntime with
``np.array_equal``. sqzc builds its tables from these (``sqzc.ort.lookup``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from sqzc.ort.oracles.mlas import (
    mlas_logistic,
    mlas_quantize,
    qdtype,
    scalar_f32,
    scalar_int,
)

__all__ = ["qlinear_concat", "qlinear_leaky_relu", "qlinear_sigmoid"]

_F32 = np.float32


def _lut_inputs(x_scale: np.ndarray | float, x_zero_point: np.ndarray | int | None,
                dtype: np.dtype) -> np.ndarray:
    """``QlinearBuildLookupTable`` dequantized inputs for the 256 raw byte values (index = byte)."""
    raw = np.arange(256, dtype=np.uint8).view(dtype).astype(np.int64)
    k = (raw - scalar_int(x_zero_point)).astype(_F32)
    return (scalar_f32(x_scale) * k).astype(_F32)


def _apply_lut(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    return table[x.view(np.uint8)].view(x.dtype) if x.dtype == np.int8 else table[x]


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
    table = mlas_quantize(mlas_logistic(d), scalar_f32(y_scale), scalar_int(y_zero_point), dtype)
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
    table = mlas_quantize(v, scalar_f32(y_scale), scalar_int(y_zero_point), dtype)
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
    dtype = qdtype(y_zero_point)
    ys, yz = scalar_f32(y_scale), scalar_int(y_zero_point)
    parts = []
    for x, xs, xz in inputs:
        x = np.asarray(x)
        if x.dtype != dtype:
            raise TypeError("QLinearConcat inputs must share the output dtype")
        if scalar_f32(xs) == ys and scalar_int(xz) == yz:
            parts.append(x)
            continue
        d = _lut_inputs(xs, xz, dtype)
        table = mlas_quantize(d, ys, yz, dtype)
        parts.append(_apply_lut(x, table.view(np.uint8) if dtype == np.int8 else table))
    return np.concatenate(parts, axis=axis)
