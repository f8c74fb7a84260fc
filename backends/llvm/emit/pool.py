"""Max and average pooling (float32, NCHW, pads, strides, dilations, ceil mode).

Same scheme as the convolution: taps are unrolled at compile time with their valid output
ranges precomputed, so there are no per-element bounds checks. Average pooling divides by
a per-position window size that is separable (rows x columns) and known at compile time.

Average pooling sums in onnxruntime's order, so a QDQ model's float-path pool (one
onnxruntime does not fuse) quantizes to its bytes: before opset 19 onnxruntime runs
``MlasPool`` (mlas/lib/pooling.cpp), which picks a kernel per shape (``mlas_pool_kernel``):
the global kernel (window = input: four interleaved partial sums), the vector kernel
(each window column summed top to bottom, then the columns left to right) or the generic
one (row-major from zero, also what its opset-19 AveragePool does).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from llvmlite import ir
from sqzc.backends.llvm.cg import (
    F32,
    LOWEST_F32,
    PTR,
    declare_intrinsic,
    entry_alloca,
    f32,
    for_range,
    i64,
    linear_index,
    loop_nest,
)
from sqzc.backends.llvm.emit.conv import valid_range
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.backends.llvm.target import Target

from sqzc.ops import OpKind, PoolAttrs


def window_counts(out_len: int, in_len: int, k: int, s: int, d: int, p0: int, p1: int,
                  include_pad: bool) -> list[int]:
    """Divisor per output position along one axis (onnxruntime's rule)."""
    counts = []
    for o in range(out_len):
        start = o * s - p0
        if include_pad:
            end = min(start + (k - 1) * d + 1, in_len + p1)
            counts.append(len(range(start, end, d)))
        else:
            counts.append(sum(1 for t in range(k) if 0 <= start + t * d < in_len))
    return counts


#: MLAS_POOL_REDUCTION_BUFFER_STACK minus its padding: the widest padded row the vector
#: kernel takes.
MLAS_POOL_ROW_LIMIT = 2048 - 3


def runs_mlas_pool(a: PoolAttrs) -> bool:
    """Whether onnxruntime runs this float average pool with ``MlasPool`` (before opset 19,
    except ``ceil_mode`` with ``count_include_pad``: checked, that one sums row by row and
    divides by the window clipped to the padded input)."""
    return a.mlas and not (a.ceil_mode and a.count_include_pad)


def nchwc_pooled(target: Target, channels: int) -> bool:
    """Whether onnxruntime's NCHWc transformer takes a float pool with ``channels``
    channels: it does when they fill whole blocks of MLAS's NCHWc block size (16 lanes with
    AVX-512F, else 8; no NCHWc without AVX2), and its blocked kernels sum each window row
    by row from zero."""
    flags = set(target.features.split(","))
    if "+avx512f" in flags:
        return channels % 16 == 0
    return "+avx2" in flags and channels % 8 == 0


#: The summation order of a float average pool (``mlas_pool_kernel``).
PoolSumOrder = Literal["global", "vector", "generic"]


def mlas_pool_kernel(a: PoolAttrs, h: int, w: int, channels: int, target: Target
                     ) -> PoolSumOrder:
    """The kernel onnxruntime runs a float average pool with, which fixes its summation
    order: ``MlasPool``'s ``global`` (window = input, stride 1, no pads), ``vector`` (last
    stride <= 2, kernel sides <= 32, padded row fits its buffer) or ``generic`` kernel;
    ``generic`` (row-major) also for pools it does not run through ``MlasPool`` (``a.mlas``
    false: opset 19 and up; ``ceil_mode`` with ``count_include_pad``, which it computes
    with its own loop; channel counts its NCHWc transformer takes)."""
    if not runs_mlas_pool(a) or nchwc_pooled(target, channels):
        return "generic"
    if a.kernel == (h, w) and a.strides == (1, 1) and not any(a.pads):
        return "global"
    if a.strides[1] <= 2 and max(a.kernel) <= 32 \
            and a.pads[1] + a.pads[3] + w <= MLAS_POOL_ROW_LIMIT:
        return "vector"
    return "generic"


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


def _smax(b: ir.IRBuilder, v: ir.Value, k: int) -> ir.Value:
    return b.select(b.icmp_signed(">", v, i64(k)), v, i64(k))


def _smin(b: ir.IRBuilder, v: ir.Value, k: int) -> ir.Value:
    return b.select(b.icmp_signed("<", v, i64(k)), v, i64(k))


def _avgpool_columns_first(ctx: KernelContext, grow: ir.GlobalVariable,
                           gcol: ir.GlobalVariable) -> None:
    """MLAS's vector-kernel order: per window, each column summed top to bottom, then the
    column sums left to right (padding contributes nothing), then the division."""
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    (kh, kw), (sh, sw) = a.kernel, a.strides
    acc_slot, col_slot = entry_alloca(b, F32, "acc"), entry_alloca(b, F32, "col")
    lo, hi = ctx.split_range(0, n_batch * c)
    with for_range(b, lo, hi, name="nc") as nc:
        n, ch = b.sdiv(nc, i64(c)), b.srem(nc, i64(c))
        with loop_nest(b, (oh, ow), name="o") as (r, q):
            h0 = b.sub(b.mul(r, i64(sh)), i64(a.pads[0]))
            w0 = b.sub(b.mul(q, i64(sw)), i64(a.pads[1]))
            hs, he = _smax(b, h0, 0), _smin(b, b.add(h0, i64(kh)), h)
            ws, we = _smax(b, w0, 0), _smin(b, b.add(w0, i64(kw)), w)
            b.store(f32(0.0), acc_slot)
            with for_range(b, ws, we, name="cw") as iw:
                b.store(f32(0.0), col_slot)
                with for_range(b, hs, he, name="ch") as ih:
                    b.store(b.fadd(b.load(col_slot, typ=F32), x.load(b, [n, ch, ih, iw])),
                            col_slot)
                b.store(b.fadd(b.load(acc_slot, typ=F32), b.load(col_slot, typ=F32)), acc_slot)
            rc = b.load(b.gep(grow, [i64(0), r], source_etype=grow.value_type), typ=F32)
            cc = b.load(b.gep(gcol, [i64(0), q], source_etype=gcol.value_type), typ=F32)
            y.store(b, [n, ch, r, q], b.fdiv(b.load(acc_slot, typ=F32), b.fmul(rc, cc)))


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


def _const_array(module: ir.Module, name: str, values: list[float]) -> ir.GlobalVariable:
    ty = ir.ArrayType(F32, len(values))
    g = ir.GlobalVariable(module, ty, name=module.get_unique_name(name))
    g.global_constant = True
    g.linkage = "internal"
    g.initializer = ir.Constant(ty, [f32(v) for v in values])
    return g


Combine = Callable[[ir.IRBuilder, ir.Value, ir.Value], ir.Value]


def accumulate_taps(ctx: KernelContext, init: ir.Value, combine: Combine) -> None:
    """The plain-layout pooling loop nest, for any element type: the output starts at
    ``init`` and each valid tap folds in as ``y = combine(b, x_tap, y)``; (sample, channel)
    planes are split among the workers."""
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    (kh, kw), (sh, sw), (dh, dw) = a.kernel, a.strides, a.dilations
    lo, hi = ctx.split_range(0, n_batch * c)
    with for_range(b, lo, hi, name="nc") as nc:
        n, ch = b.sdiv(nc, i64(c)), b.srem(nc, i64(c))
        with loop_nest(b, (oh, ow), name="init") as (r, q):
            y.store(b, [n, ch, r, q], init)
        for i in range(kh):
            r_lo, r_hi = valid_range(oh, h, sh, i * dh - a.pads[0])
            for j in range(kw):
                q_lo, q_hi = valid_range(ow, w, sw, j * dw - a.pads[1])
                if r_lo >= r_hi or q_lo >= q_hi:
                    continue
                with for_range(b, r_lo, r_hi, name=f"r{i}_{j}") as r:
                    ih = b.add(b.mul(r, i64(sh)), i64(i * dh - a.pads[0]))
                    with for_range(b, q_lo, q_hi, name=f"q{i}_{j}") as q:
                        iw = b.add(b.mul(q, i64(sw)), i64(j * dw - a.pads[1]))
                        v, cur = x.load(b, [n, ch, ih, iw]), y.load(b, [n, ch, r, q])
                        y.store(b, [n, ch, r, q], combine(b, v, cur))


def float_max(b: ir.IRBuilder, v: ir.Value, cur: ir.Value) -> ir.Value:
    """onnxruntime's max: a NaN input wins (unordered compare)."""
    return b.select(b.fcmp_unordered(">", v, cur), v, cur)


def int_max(signed: bool) -> Combine:
    """Max of 8-bit values (signed or unsigned compare)."""
    def combine(b: ir.IRBuilder, v: ir.Value, cur: ir.Value) -> ir.Value:
        gt = b.icmp_signed(">", v, cur) if signed else b.icmp_unsigned(">", v, cur)
        return b.select(gt, v, cur)
    return combine


def _pool(ctx: KernelContext, is_max: bool) -> None:
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    kernel = "generic" if is_max else mlas_pool_kernel(a, h, w, c, ctx.target)
    if kernel == "global":
        global_mean_plain(ctx, [n_batch, c], [h, w])
        return
    if not is_max:
        rows, cols = avgpool_divisors(a, oh, ow, h, w)
        grow = _const_array(ctx.module, "pool_rows", [float(v) for v in rows])
        gcol = _const_array(ctx.module, "pool_cols", [float(v) for v in cols])
        if kernel == "vector":
            _avgpool_columns_first(ctx, grow, gcol)
            return
    init = f32(LOWEST_F32) if is_max else f32(0.0)  # onnxruntime: max pooling never gives -inf
    accumulate_taps(ctx, init, float_max if is_max else lambda b, v, cur: b.fadd(cur, v))
    if is_max:
        return
    lo, hi = ctx.split_range(0, n_batch * c)
    with for_range(b, lo, hi, name="dnc") as nc:
        n, ch = b.sdiv(nc, i64(c)), b.srem(nc, i64(c))
        with loop_nest(b, (oh, ow), name="div") as (r, q):
            rc = b.load(b.gep(grow, [i64(0), r], source_etype=grow.value_type), typ=F32)
            cc = b.load(b.gep(gcol, [i64(0), q], source_etype=gcol.value_type), typ=F32)
            acc = y.load(b, [n, ch, r, q])
            y.store(b, [n, ch, r, q], b.fdiv(acc, b.fmul(rc, cc)))


@emits(OpKind.MAXPOOL, "float")
def emit_maxpool(ctx: KernelContext) -> None:
    """Max pooling (padding never wins: padded taps are skipped)."""
    _pool(ctx, True)


@emits(OpKind.AVGPOOL, "float")
def emit_avgpool(ctx: KernelContext) -> None:
    """Average pooling with count_include_pad on or off."""
    _pool(ctx, False)


#: Output columns per vector of the 8-bit max pool (one 256-bit register of results).
INT8_POOL_LANES = 32


def int8_maxpool_rows(ctx: KernelContext, signed: bool) -> bool:
    """Vectorized plain-layout max pooling of 8-bit tensors for strides 1 and 2 (no
    dilation); returns False (nothing emitted) for other geometries.

    Per (sample, channel) plane and output row, each ``INT8_POOL_LANES``-column tile keeps
    a vector of maxima: every tap loads the stride x lanes input bytes it covers (masked
    to the valid columns, masked-off bytes reading as the lowest value, which never wins),
    keeps every stride-th byte and takes the lane-wise max; rows outside the input are
    skipped. LLVM unrolls the scalar loop of ``accumulate_taps`` instead of vectorizing
    its stride-2 loads."""
    a = ctx.op.attrs
    assert isinstance(a, PoolAttrs)
    b, (x,), y = ctx.b, ctx.ins, ctx.out
    (kh, kw), (sh, sw) = a.kernel, a.strides
    if a.dilations != (1, 1) or sw not in (1, 2) or x.strides[-1] != 1 or y.strides[-1] != 1:
        return False
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    lanes = INT8_POOL_LANES
    i8, i1 = ir.IntType(8), ir.IntType(1)
    wide_t, vt = ir.VectorType(i8, lanes * sw), ir.VectorType(i8, lanes)
    mload = declare_intrinsic(ctx.module, f"llvm.masked.load.v{lanes * sw}i8.p0", wide_t,
                              [PTR, ir.IntType(32), ir.VectorType(i1, lanes * sw), wide_t])
    mstore = declare_intrinsic(ctx.module, f"llvm.masked.store.v{lanes}i8.p0", ir.VoidType(),
                               [vt, PTR, ir.IntType(32), ir.VectorType(i1, lanes)])
    align = ir.Constant(ir.IntType(32), 1)
    lowest = -128 if signed else 0
    low_wide = ir.Constant(wide_t, [ir.Constant(i8, lowest)] * (lanes * sw))
    low = ir.Constant(vt, [ir.Constant(i8, lowest)] * lanes)
    no_bytes = ir.Constant(ir.VectorType(i1, lanes * sw), [ir.Constant(i1, 0)] * (lanes * sw))
    pick = ir.Constant(ir.VectorType(ir.IntType(32), lanes),
                       [ir.Constant(ir.IntType(32), k * sw) for k in range(lanes)])

    def mask(flags: list[bool]) -> ir.Constant:
        return ir.Constant(ir.VectorType(i1, len(flags)), [ir.Constant(i1, int(f)) for f in flags])

    with ctx.parallel_for(n_batch * c * oh, name="rows", grain=ow * kh * kw) as row:
        plane, r = b.sdiv(row, i64(oh)), b.srem(row, i64(oh))
        n, ch = b.sdiv(plane, i64(c)), b.srem(plane, i64(c))
        for q0 in range(0, ow, lanes):
            best = low
            for i in range(kh):
                ih = b.add(b.mul(r, i64(sh)), i64(i - a.pads[0]))
                ok = b.and_(b.icmp_signed(">=", ih, i64(0)), b.icmp_signed("<", ih, i64(h)))
                safe = b.select(ok, ih, i64(0))
                for j in range(kw):
                    first = q0 * sw + j - a.pads[1]  # input column of the tile's byte 0
                    valid = [0 <= first + k < w and (k % sw == 0 and q0 + k // sw < ow)
                             for k in range(lanes * sw)]
                    if not any(valid):
                        continue
                    lin = b.add(linear_index(b, [n, ch, safe, i64(0)], x.strides), i64(first))
                    ptr = b.gep(x.ptr, [lin], source_etype=i8)
                    m = b.select(ok, mask(valid), no_bytes)
                    wide = b.call(mload, [ptr, align, m, low_wide])
                    v = wide if sw == 1 else b.shuffle_vector(wide, low_wide, pick)
                    gt = b.icmp_signed(">", v, best) if signed else b.icmp_unsigned(">", v, best)
                    best = b.select(gt, v, best)
            out = y.addr(b, [n, ch, r, i64(q0)])
            b.call(mstore, [best, out, align, mask([q0 + k < ow for k in range(lanes)])])
    return True
