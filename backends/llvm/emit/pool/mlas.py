"""onnxruntime's MLAS pooling orders as LLVM: the summation orders and max rules of the
kernels onnxruntime runs a float pool with (which kernel that is, per pool, is decided by
:func:`sqzc.ort.orders.mlas_pool_kernel`), shared by the plain (``pool/plain.py``),
blocked (``pool/blocked.py``) and global (``pool/reduce.py``) emitters.

A QDQ model's float-path pool (one onnxruntime does not fuse) must quantize to
onnxruntime's bytes, so the float sums follow its order: before opset 19 onnxruntime runs
``MlasPool`` (mlas/lib/pooling.cpp), which picks a kernel per shape: the global kernel
(window = input: four interleaved partial sums), the vector kernel (each window column
summed top to bottom, then the columns left to right) or the generic one (row-major from
zero, also what its opset-19 AveragePool does).

Float max pools go through ``MlasPool`` too (every opset, when there is no dilation), and
there the kernel changes results at the edges of the float range: the generic and global
kernels start each window at -FLT_MAX, so a window of -inf gives -FLT_MAX, while the
vector kernel starts from the window's first value and meets -FLT_MAX only in the pad
slots of its row buffer (``maxpool_columns_first``); its vector and scalar max also treat
NaN differently (``mlas_vector_max``, ``std_max``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from sqzc.backends.llvm.cg import LOWEST_F32, F32, entry_alloca, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.common.blocked_io import blocks_and_rows, vload, vstore
from sqzc.backends.llvm.emit.common.geometry import window_counts
from sqzc.backends.llvm.emit.common.vec import vconst
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import PoolAttrs


def mlas_vector_max(b: ir.IRBuilder, v: ir.Value, cur: ir.Value) -> ir.Value:
    """``_mm_max_ps(cur, v)``, MLAS's vector max: ``cur`` only when it is (ordered) greater,
    so a NaN on either side gives ``v``, and of two equal zeros ``v`` is kept."""
    return b.select(b.fcmp_ordered(">", cur, v), cur, v)


def std_max(b: ir.IRBuilder, v: ir.Value, cur: ir.Value) -> ir.Value:
    """``std::max(cur, v)``, MLAS's scalar max: ``v`` only when ``cur < v`` (ordered), so a
    NaN ``v`` is dropped and a NaN ``cur`` kept."""
    return b.select(b.fcmp_ordered("<", cur, v), v, cur)


def mlas_column_max(b: ir.IRBuilder, iw: ir.Value, w: int, v: ir.Value, cur: ir.Value
                    ) -> ir.Value:
    """One row folded into a window column's max as MLAS's vector kernel does it: its first
    ``4 * (w // 4)`` input columns four at a time (``mlas_vector_max``), the rest one at a
    time (``std_max``)."""
    vector_cols = 4 * (w // 4)
    if vector_cols == w:
        return mlas_vector_max(b, v, cur)
    if vector_cols == 0:
        return std_max(b, v, cur)
    in_vector = b.icmp_signed("<", iw, i64(vector_cols))
    return b.select(in_vector, mlas_vector_max(b, v, cur), std_max(b, v, cur))


def avgpool_divisors(a: PoolAttrs, oh: int, ow: int, h: int, w: int
                     ) -> tuple[list[int], list[int]]:
    """Per output row and column, the factors of each window's divisor: the valid taps,
    or with ``count_include_pad`` the window clipped to the padded input (``MlasPool``
    divides by the whole kernel, the same number: without ``ceil_mode`` no window passes
    the padding)."""
    (kh, kw), (sh, sw), (dh, dw) = a.kernel, a.strides, a.dilations
    return (window_counts(oh, h, kh, sh, dh, a.pads[0], a.pads[2], a.count_include_pad),
            window_counts(ow, w, kw, sw, dw, a.pads[1], a.pads[3], a.count_include_pad))


def mlas_global_sum(b: ir.IRBuilder, load: Callable[[ir.Value], ir.Value], count: int,
                    zero: ir.Constant) -> ir.Value:
    """The sum of ``load(p)`` for p in [0, count) in ``MlasPoolGlobalKernel``'s order: four
    interleaved partial sums over the first ``4 * (count // 4)`` values, combined as
    ``(s0 + s2) + (s1 + s3)`` (``MlasReduceAddFloat32x4``), then the rest one by one.
    ``zero`` gives the type (a float or a vector of floats)."""
    quads = count // 4
    slots = [entry_alloca(b, zero.type, f"gsum{k}") for k in range(4)]
    for slot in slots:
        b.store(zero, slot)
    if quads:
        with for_range(b, 0, quads, name="g4") as p4:
            base = b.mul(p4, i64(4))
            for k, slot in enumerate(slots):
                v = load(b.add(base, i64(k)))
                b.store(b.fadd(b.load(slot, typ=zero.type), v), slot)
    s0, s1, s2, s3 = (b.load(slot, typ=zero.type) for slot in slots)
    total = b.fadd(b.fadd(s0, s2), b.fadd(s1, s3))
    for p in range(4 * quads, count):
        total = b.fadd(total, load(i64(p)))
    return total


@dataclass(frozen=True)
class _Window:
    """One pooling window's in-bounds rows ``[hs, he)`` and columns ``[ws, we)``, and its
    first column ``w0`` (negative where the window starts in the left padding)."""

    hs: ir.Value
    he: ir.Value
    ws: ir.Value
    we: ir.Value
    w0: ir.Value


@contextmanager
def _each_window(ctx: KernelContext) -> Iterator[tuple[ir.Value, ir.Value, ir.Value, ir.Value,
                                                      _Window]]:
    """The loop nest of the plain MLAS-order pools: (sample, channel) planes split among
    the workers, then every output position; the body gets ``(n, ch, row, col, window)``."""
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    (kh, kw), (sh, sw) = a.kernel, a.strides
    lo, hi = ctx.split_range(0, n_batch * c)
    with for_range(b, lo, hi, name="nc") as nc:
        n, ch = b.sdiv(nc, i64(c)), b.srem(nc, i64(c))
        with loop_nest(b, (oh, ow), name="o") as (r, q):
            h0 = b.sub(b.mul(r, i64(sh)), i64(a.pads[0]))
            w0 = b.sub(b.mul(q, i64(sw)), i64(a.pads[1]))
            yield n, ch, r, q, _Window(_smax(b, h0, 0), _smin(b, b.add(h0, i64(kh)), h),
                                       _smax(b, w0, 0), _smin(b, b.add(w0, i64(kw)), w), w0)


def _smax(b: ir.IRBuilder, v: ir.Value, k: int) -> ir.Value:
    return b.select(b.icmp_signed(">", v, i64(k)), v, i64(k))


def _smin(b: ir.IRBuilder, v: ir.Value, k: int) -> ir.Value:
    return b.select(b.icmp_signed("<", v, i64(k)), v, i64(k))


def avgpool_columns_first(ctx: KernelContext, grow: ir.GlobalVariable,
                           gcol: ir.GlobalVariable) -> None:
    """MLAS's vector-kernel order: per window, each column summed top to bottom, then the
    column sums left to right (padding contributes nothing), then the division."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    acc_slot, col_slot = entry_alloca(b, F32, "acc"), entry_alloca(b, F32, "col")
    with _each_window(ctx) as (n, ch, r, q, win):
        b.store(f32(0.0), acc_slot)
        with for_range(b, win.ws, win.we, name="cw") as iw:
            b.store(f32(0.0), col_slot)
            with for_range(b, win.hs, win.he, name="ch") as ih:
                b.store(b.fadd(b.load(col_slot, typ=F32), x.load(b, [n, ch, ih, iw])),
                        col_slot)
            b.store(b.fadd(b.load(acc_slot, typ=F32), b.load(col_slot, typ=F32)), acc_slot)
        rc = b.load(b.gep(grow, [i64(0), r], source_etype=grow.value_type), typ=F32)
        cc = b.load(b.gep(gcol, [i64(0), q], source_etype=gcol.value_type), typ=F32)
        y.store(b, [n, ch, r, q], b.fdiv(b.load(acc_slot, typ=F32), b.fmul(rc, cc)))


def maxpool_columns_first(ctx: KernelContext) -> None:
    """MLAS's vector kernel for a max pool on a plain tensor. Per window: each column's max
    from its first row down (``mlas_column_max``), then the columns left to right from the
    first (``mlas_vector_max``); pad columns are -FLT_MAX slots of its row buffer, so they
    enter only where the window reaches past the input's left or right edge (slots past
    the right pad are read too with ``ceil_mode``: taken as -FLT_MAX), and a window of
    -inf values gives -inf. Pad rows are skipped."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    w, kw = x.shape[3], ctx.op.attrs.kernel[1]  # type: ignore[attr-defined]
    edge = f32(LOWEST_F32)
    acc_slot, col_slot = entry_alloca(b, F32, "acc"), entry_alloca(b, F32, "col")
    with _each_window(ctx) as (n, ch, r, q, win):
        left = b.icmp_signed("<", win.w0, i64(0))
        right = b.icmp_signed(">", b.add(win.w0, i64(kw)), i64(w))
        # -inf is the identity of mlas_vector_max: the first value folded in is kept
        start = b.select(left, edge, f32(-math.inf))
        b.store(start, acc_slot)
        with for_range(b, win.ws, win.we, name="cw") as iw:
            b.store(x.load(b, [n, ch, win.hs, iw]), col_slot)
            with for_range(b, b.add(win.hs, i64(1)), win.he, name="ch") as ih:
                col = b.load(col_slot, typ=F32)
                b.store(mlas_column_max(b, iw, w, x.load(b, [n, ch, ih, iw]), col), col_slot)
            b.store(mlas_vector_max(b, b.load(col_slot, typ=F32), b.load(acc_slot, typ=F32)),
                    acc_slot)
        acc = b.load(acc_slot, typ=F32)
        y.store(b, [n, ch, r, q], b.select(right, mlas_vector_max(b, edge, acc), acc))


def _unravel(b: ir.IRBuilder, flat: ir.Value, dims: list[int]) -> list[ir.Value]:
    """Row-major indices of ``flat`` in an array of shape ``dims``."""
    idx = []
    for d in reversed(dims):
        idx.append(b.urem(flat, i64(d)))
        flat = b.udiv(flat, i64(d))
    return idx[::-1]


def global_mean_plain(ctx: KernelContext, kept: list[int], red: list[int]) -> None:
    """Mean over the trailing ``red`` axes (a GlobalAveragePool, or an AveragePool whose
    window is the input) in MLAS's global-kernel order; the ``kept`` planes are split
    among the workers."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    planes, count = math.prod(kept), math.prod(red)
    lo, hi = ctx.split_range(0, planes)
    with for_range(b, lo, hi, name="plane") as flat:
        kidx = _unravel(b, flat, kept)
        total = mlas_global_sum(b, lambda p: x.load(b, kidx + _unravel(b, p, red)), count,
                                f32(0.0))
        y.store(b, kidx + [i64(0)] * len(red), b.fdiv(total, f32(float(count))))


def global_mean_blocked(ctx: KernelContext) -> None:
    """Mean over each whole H x W plane of channel blocks, in MLAS's global-kernel order
    (GlobalAveragePool, or an AveragePool whose window is the input)."""
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    blk = y.shape[4]
    h, w = x.shape[2], x.shape[3]
    lo, hi, cb = blocks_and_rows(ctx, y)
    zero = i64(0)
    with for_range(b, lo, hi, name="nc") as nc:
        n, c = b.sdiv(nc, i64(cb)), b.srem(nc, i64(cb))
        total = mlas_global_sum(
            b, lambda p: vload(b, x, [n, c, b.udiv(p, i64(w)), b.urem(p, i64(w))]), h * w,
            vconst(0.0, blk))
        vstore(b, y, [n, c, zero, zero], b.fdiv(total, vconst(float(h * w), blk)))
