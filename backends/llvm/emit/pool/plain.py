"""Max and average pooling on plain NCHW tensors (float32, and max pooling on 8-bit
tensors; pads, strides, dilations, ceil mode).

Same scheme as the convolution: taps are unrolled at compile time with their valid output
ranges precomputed, so there are no per-element bounds checks. Average pooling divides by
a per-position window size that is separable (rows x columns) and known at compile time,
and sums in onnxruntime's order (``pool/mlas.py`` picks the kernel and holds its orders).
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import (
    F32,
    LOWEST_F32,
    PTR,
    SIGNED,
    declare_intrinsic,
    f32,
    for_range,
    i64,
    linear_index,
    loop_nest,
)
from sqzc.backends.llvm.emit.common.geometry import valid_range
from sqzc.backends.llvm.emit.pool.mlas import (
    avgpool_columns_first,
    avgpool_divisors,
    global_mean_plain,
    maxpool_columns_first,
)
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind, PoolAttrs
from sqzc.ort.orders import mlas_max_pool_kernel, mlas_pool_kernel


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
    if is_max:
        if mlas_max_pool_kernel(a, h, w, c, ctx.target.ort_nchwc_block) == "vector":
            maxpool_columns_first(ctx)
        else:  # onnxruntime's other max kernels start every window at -FLT_MAX
            accumulate_taps(ctx, f32(LOWEST_F32), float_max)
        return
    kernel = mlas_pool_kernel(a, h, w, c, ctx.target.ort_nchwc_block)
    if kernel == "global":
        global_mean_plain(ctx, [n_batch, c], [h, w])
        return
    rows, cols = avgpool_divisors(a, oh, ow, h, w)
    grow = _const_array(ctx.module, "pool_rows", [float(v) for v in rows])
    gcol = _const_array(ctx.module, "pool_cols", [float(v) for v in cols])
    if kernel == "vector":
        avgpool_columns_first(ctx, grow, gcol)
        return
    accumulate_taps(ctx, f32(0.0), lambda b, v, cur: b.fadd(cur, v))
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
    """Max pooling in the order and from the start value of the onnxruntime kernel that
    runs it (``sqzc.ort.orders.mlas_max_pool_kernel``)."""
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


def _emit_int_maxpool(ctx: KernelContext) -> None:
    """Max pooling on 8-bit tensors (padding never wins: padded taps are skipped)."""
    signed = ctx.ins[0].dtype in SIGNED
    if not int8_maxpool_rows(ctx, signed):
        accumulate_taps(ctx, ir.Constant(ir.IntType(8), -128 if signed else 0), int_max(signed))


for _dt in ("uint8", "int8"):
    emits(OpKind.MAXPOOL, _dt)(_emit_int_maxpool)
