"""Winograd minimal filtering F(m x m, 3 x 3) (Lavin & Gray, 2016): matrices, weight
transform, and the cost model that picks the tile size per convolution.

A 3x3 stride-1 convolution computes each m x m output tile from an (m+2) x (m+2) input
tile ``d`` as ``Y = A^T [ (G g G^T) * (B^T d B) ] A`` (``*`` elementwise, summed over
input channels). The filter transform ``U = G g G^T`` is done here, at compile time;
the kernel (``backends/llvm/emit/conv/winograd.py``) transforms input tiles, does one
small matrix product per transformed position (``alpha^2`` of them, ``alpha = m + 2``),
and transforms back. Multiplies per output: 9 for direct convolution, 4 for F(2x2,3x3),
2.25 for F(4x4,3x3); the price is the transforms and a larger rounding error (F(4x4)
uses the interpolation points 0, +-1, +-2, whose error stays near 1e-6 relative).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np


@dataclass(frozen=True)
class WinogradMatrices:
    """``B^T`` (alpha x alpha), ``G`` (alpha x 3) and ``A^T`` (m x alpha) of F(m, 3)."""

    m: int
    bt: np.ndarray
    g: np.ndarray
    at: np.ndarray

    @property
    def alpha(self) -> int:
        """Input tile size m + 2."""
        return self.m + 2


@cache
def matrices(m: int) -> WinogradMatrices:
    """The standard matrices for F(2, 3) and F(4, 3) (Lavin & Gray, section 4)."""
    if m == 2:
        bt = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
        g = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        at = [[1, 1, 1, 0], [0, 1, -1, -1]]
    elif m == 4:
        bt = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
              [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
        g = [[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
             [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]]
        at = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
              [0, 1, -1, 8, -8, 1]]
    else:
        raise ValueError(f"no Winograd matrices for F({m}, 3)")
    return WinogradMatrices(m, np.array(bt, np.float64), np.array(g, np.float64),
                            np.array(at, np.float64))


def transform_weights(w: np.ndarray, m: int, block: int) -> np.ndarray:
    """OIHW 3x3 float weights -> U packed [alpha^2, OC/b, IC, b] (OC zero-padded to b).

    ``U[xi, ocb, ic, lane] = (G g G^T)[xi // alpha, xi % alpha]`` for output channel
    ``ocb * b + lane``: one vector load gives b output channels of one position, which is
    what the kernel's broadcast-and-FMA product reads. Computed in float64.
    """
    mats = matrices(m)
    oc, ic = w.shape[:2]
    u = filter_transform(w, mats.g)
    a = mats.alpha
    ocb = -(-oc // block)
    padded = np.zeros((a * a, ocb * block, ic))
    padded[:, :oc] = u.reshape(a * a, oc, ic)
    packed = padded.reshape(a * a, ocb, block, ic).transpose(0, 1, 3, 2)
    return np.ascontiguousarray(packed, dtype=np.float32)


def filter_transform(w: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``U[i, j, o, c] = (G w[o, c] G^T)[i, j]`` for OIHW 3x3 ``w``, in float64, in one
    written order: ``acc = +0.0``, then for ``k`` in 0..2, for ``l`` in 0..2,
    ``acc += (G[i, k] * w[o, c, k, l]) * G[j, l]``.

    The order is the specification, not an implementation detail: the bits of a float64
    sum depend on it, and a library that rebuilds ``U`` at load time (compressed weights)
    must produce the same float32 values as this function. (It is the order ``np.einsum``
    happened to use for C-contiguous input; for other layouts einsum reorders its loops.)
    Terms with ``G[.,.] == 0`` or a zero weight add ``+-0.0`` to a sum that is never -0.0,
    so a decoder may skip them."""
    w64 = np.asarray(w, np.float64)
    a = g.shape[0]
    u = np.empty((a, a) + w64.shape[:2])
    for i in range(a):
        for j in range(a):
            acc = np.zeros(w64.shape[:2])
            for k in range(3):
                for l in range(3):  # noqa: E741 - the index names of the formula
                    acc = acc + (g[i, k] * w64[:, :, k, l]) * g[j, l]
            u[i, j] = acc
    return u


def untransform_weights(u: np.ndarray, m: int, out_channels: int) -> np.ndarray:
    """The 3x3 OIHW weights a packed ``U`` came from (least squares through ``G``'s
    pseudo-inverse; exact up to rounding): the reference semantics of a Winograd conv."""
    mats = matrices(m)
    a = mats.alpha
    _, ocb, ic, block = u.shape
    full = u.astype(np.float64).transpose(0, 1, 3, 2).reshape(a, a, ocb * block, ic)
    ginv = np.linalg.pinv(mats.g)
    w = np.einsum("ki,ijoc,lj->ockl", ginv, full, ginv)
    return np.ascontiguousarray(w[:out_channels], dtype=np.float32)


def _transform_ops(t: np.ndarray) -> int:
    """Vector operations of ``t @ x`` on vectors: one per non-zero beyond the first of a
    row, plus a multiply per coefficient other than +-1."""
    ops = 0
    for row in t:
        nz = row[row != 0]
        ops += max(len(nz) - 1, 0) + int(np.sum(np.abs(nz) != 1))
    return ops


@dataclass(frozen=True)
class ConvGeometry:
    """What the cost model needs to know about a 3x3 stride-1 convolution."""

    in_channels: int
    out_channels: int
    out_h: int
    out_w: int
    block: int


#: The product runs a little below the direct kernel's FMA rate (accumulators go through
#: memory once per transformed position); measured on Zen 4/5, SqueezeNet shapes.
PRODUCT_OVERHEAD = 1.25


#: Weights up to this size stay in the caches between the passes a kernel makes over
#: them; beyond it every pass streams them from the outer cache levels or memory.
WEIGHT_CACHE_BYTES = 4 << 20
#: The cost of streaming one byte of weights from beyond ``WEIGHT_CACHE_BYTES``, in
#: vector operations. Fitted on ResNet-18's 3x3 layers on the Intel Xeon (2026-12-07):
#: F(4x4) at 256 and 512 channels took 1.8 and 4.9 ms against 1.1 and 1.6 ms direct,
#: since its 9.4 / 37.7 MB of transformed weights are read once per row of tiles
#: (17-30 GB/s, 0.2-0.4 operations per byte at the kernels' 6.5 operations per ns).
STREAMED_BYTE_COST = 0.25


def weight_traffic_cost(weight_bytes: int, passes: int) -> float:
    """Vector-operation equivalent of reading ``weight_bytes`` ``passes`` times: free
    while they fit ``WEIGHT_CACHE_BYTES``."""
    if weight_bytes <= WEIGHT_CACHE_BYTES:
        return 0.0
    return float(weight_bytes * passes) * STREAMED_BYTE_COST


def estimated_cost(geo: ConvGeometry, m: int) -> float:
    """Vector operations for a 3x3 conv: ``m = 0`` direct, else F(m x m, 3 x 3), plus the
    weight traffic: the direct kernel reads its weights once (rows run fastest under
    each channel group), Winograd reads its alpha^2/9 times larger transformed weights
    once per row of tiles."""
    icb = -(-geo.in_channels // geo.block)
    ocb = -(-geo.out_channels // geo.block)
    if m == 0:
        weights = 9 * geo.in_channels * ocb * geo.block * 4
        return float(geo.out_h * geo.out_w * 9 * geo.in_channels * ocb) + \
            weight_traffic_cost(weights, 1)
    mats = matrices(m)
    a = mats.alpha
    tiles = -(-geo.out_h // m) * -(-geo.out_w // m)
    product = a * a * geo.in_channels * ocb * PRODUCT_OVERHEAD
    # input: alpha^2 masked loads + B^T d B (rows then columns) + alpha^2 stores
    inp = icb * (3 * a * a + 2 * a * _transform_ops(mats.bt))
    # output: alpha^2 loads + A^T M A + bias/activation and m^2 guarded stores
    out = ocb * (a * a + a * _transform_ops(mats.at) + m * _transform_ops(mats.at) + 3 * m * m)
    weights = a * a * geo.in_channels * ocb * geo.block * 4
    return float(tiles * (product + inp + out)) + \
        weight_traffic_cost(weights, -(-geo.out_h // m))


def choose_tile(geo: ConvGeometry) -> int:
    """The cheapest of direct (0), F(2x2,3x3) and F(4x4,3x3) under ``estimated_cost``."""
    return min((0, 2, 4), key=lambda m: estimated_cost(geo, m))
