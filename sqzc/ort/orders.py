"""The summation orders onnxruntime's float kernels use, where sqzc must follow them.

A QDQ model's float path (a group onnxruntime does not fuse) is quantized at its end, so
its float sums must round as onnxruntime's do for the bytes to match. This module decides
*which* order a given op gets; the LLVM that sums in that order lives with the emitters
(``backends/llvm/emit/conv/mlas.py``, ``backends/llvm/emit/pool/mlas.py``), and the
frontend and the QDQ passes record the decision in the op's attributes.

* MLAS's sgemm K blocking for convs run as im2col + sgemm (``sgemm_stride_k``; the
  conv facts are in :mod:`sqzc.ort.rules`).
* The pooling kernel ``MlasPool`` picks per shape, and when onnxruntime's NCHWc
  transformer takes a pool instead (``mlas_pool_kernel``, ``mlas_max_pool_kernel``,
  ``nchwc_pooled``, ``nchwc_source``).

Facts from onnxruntime's sources (mlas/lib/sgemm.cpp, pooling.cpp, mlasi.h,
optimizer/nchwc_transformer.cc), checked against onnxruntime 1.32 by the tests.
"""

from __future__ import annotations

from typing import Literal

from sqzc.ir import Graph
from sqzc.ops import OpKind, OrtOrder, PoolAttrs, ReduceAttrs
from sqzc.ort.rules import ort_activation

#: MLAS_SGEMM_STRIDEN and MLAS_SGEMM_STRIDEK (mlasi.h).
SGEMM_STRIDE_N = 128
SGEMM_STRIDE_K = 128


def sgemm_stride_k(n: int, k: int) -> int:
    """The K slice ``MlasSgemmOperation`` (and ``MlasConvOperation``) uses for an
    ``N``-column output and depth ``K`` (single-threaded onnxruntime).

    If N >= K the slice only shrinks when K already fits in half of it, which changes no
    sum; if N < K it doubles for each halving of StrideN that still covers N.
    """
    stride_n, stride_k = SGEMM_STRIDE_N, SGEMM_STRIDE_K
    if n >= k:
        while stride_k // 2 >= k:
            stride_n, stride_k = stride_n * 2, stride_k // 2
    else:
        while stride_n > 16 and stride_n // 2 >= n:
            stride_n, stride_k = stride_n // 2, stride_k * 2
    return stride_k


def sgemm_order(n: int, k: int) -> OrtOrder:
    """The order of a conv onnxruntime runs as im2col + sgemm (``ConvAttrs.ort_order``)."""
    return OrtOrder("sgemm", sgemm_stride_k(n, k))


def avgpool_order(is_avgpool: bool, has_dilations: bool) -> OrtOrder | None:
    """The order of a float pool as imported (``PoolAttrs.ort_order``): onnxruntime runs
    float AveragePool before opset 19 (the versions without dilations) through
    ``MlasPool``, whose summation order differs from its opset-19 loop."""
    return OrtOrder("mlas_pool") if is_avgpool and not has_dilations else None


def global_pool_order(g: Graph, x: str, mode: str, rank: int) -> OrtOrder | None:
    """The order of a global pool over ``x`` as imported (``ReduceAttrs.ort_order``):
    GlobalAveragePool sums with ``MlasPool``'s global kernel, unless (4-D, from where the
    NCHWc transformer works) that transformer may take it, which depends on the target."""
    if mode != "mean":
        return None
    return OrtOrder("mlas_global_or_nchwc" if rank == 4 and nchwc_source(g, x) else "mlas_global")


def runs_mlas_global_pool(a: ReduceAttrs, nchwc_block: int, channels: int) -> bool:
    """Whether a global average pool must sum in ``MlasPool``'s global order on this target
    (else row by row, as onnxruntime's NCHWc kernels and sqzc's plain loop do)."""
    if a.ort_order is None or a.mode != "mean":
        return False
    return not (a.ort_order.kernel == "mlas_global_or_nchwc" and nchwc_pooled(nchwc_block, channels))


#: MLAS_POOL_REDUCTION_BUFFER_STACK minus its padding: the widest padded row the vector
#: kernel takes.
MLAS_POOL_ROW_LIMIT = 2048 - 3


def runs_mlas_pool(a: PoolAttrs) -> bool:
    """Whether onnxruntime runs this float average pool with ``MlasPool`` (before opset 19,
    except ``ceil_mode`` with ``count_include_pad``: checked, that one sums row by row and
    divides by the window clipped to the padded input)."""
    return a.ort_order is not None and not (a.ceil_mode and a.count_include_pad)


def nchwc_pooled(nchwc_block: int, channels: int) -> bool:
    """Whether onnxruntime's NCHWc transformer takes a float pool with ``channels``
    channels: it does when they fill whole blocks of MLAS's NCHWc block size on the target
    (``Target.ort_nchwc_block``: 16 with AVX-512F, 8 with AVX2, 0 = no NCHWc), and its
    blocked kernels sum each window row by row from zero."""
    return nchwc_block > 0 and channels % nchwc_block == 0


#: The summation order of a float average pool (``mlas_pool_kernel``).
PoolSumOrder = Literal["global", "vector", "generic"]


def mlas_pool_kernel(a: PoolAttrs, h: int, w: int, channels: int, nchwc_block: int
                     ) -> PoolSumOrder:
    """The kernel onnxruntime runs a float average pool with, which fixes its summation
    order: ``MlasPool``'s ``global`` (window = input, stride 1, no pads), ``vector`` (last
    stride <= 2, kernel sides <= 32, padded row fits its buffer) or ``generic`` kernel;
    ``generic`` (row-major) also for pools it does not run through ``MlasPool`` (``a.ort_order``
    false: opset 19 and up; ``ceil_mode`` with ``count_include_pad``, which it computes
    with its own loop; channel counts its NCHWc transformer takes)."""
    if not runs_mlas_pool(a) or nchwc_pooled(nchwc_block, channels):
        return "generic"
    return _mlas_kernel_by_shape(a, h, w)


def mlas_max_pool_kernel(a: PoolAttrs, h: int, w: int, channels: int, nchwc_block: int
                         ) -> PoolSumOrder:
    """The kernel onnxruntime runs a float max pool with: ``MlasPool``'s, chosen by shape
    as for average pools, for every MaxPool without dilation (its Indices output, the other
    condition, sqzc refuses); ``generic`` for dilated pools (its own loop, which also starts
    at -FLT_MAX) and channel counts its NCHWc transformer takes (blocked kernels that
    start at -FLT_MAX as well)."""
    if a.dilations != (1, 1) or nchwc_pooled(nchwc_block, channels):
        return "generic"
    return _mlas_kernel_by_shape(a, h, w)


def _mlas_kernel_by_shape(a: PoolAttrs, h: int, w: int) -> PoolSumOrder:
    """``MlasPool``'s choice of kernel for a 2-D pool."""
    if a.kernel == (h, w) and a.strides == (1, 1) and not any(a.pads):
        return "global"
    if a.strides[1] <= 2 and max(a.kernel) <= 32 \
            and a.pads[1] + a.pads[3] + w <= MLAS_POOL_ROW_LIMIT:
        return "vector"
    return "generic"


#: Ops onnxruntime's NCHWc transformer keeps in NCHWc when their inputs are (and the
#: activations whose ORT_ACTIVATIONS entry says ``nchwc``).
NCHWC_PASS_THROUGH = frozenset({OpKind.ADD, OpKind.MUL, OpKind.CONCAT})


def nchwc_source(g: Graph, nid: str, direct: bool = True) -> bool:
    """Whether onnxruntime's NCHWc transformer takes a global pool reading ``nid``: a
    graph input read directly, a float conv or pool, or an elementwise op whose inputs
    (constants aside) are conv or pool results in NCHWc form. A DequantizeLinear, for
    one, is not (checked against onnxruntime 1.32: DQ, Relu on a graph input)."""
    op = g.op(nid)
    if op.kind in (OpKind.CONV, OpKind.MAXPOOL, OpKind.AVGPOOL):
        return True
    if op.kind is OpKind.INPUT:
        return direct
    ort = ort_activation(op)
    if op.kind in NCHWC_PASS_THROUGH or (ort is not None and ort.nchwc):
        ins = [i for i in op.inputs if not g.is_const(i)]
        return bool(ins) and all(nchwc_source(g, i, False) for i in ins)
    return False
