"""Max and average pooling (float32, NCHW, pads, strides, dilations, ceil mode).

Same scheme as the convolution: taps are unrolled at compile time with their valid output
ranges precomputed, so there are no per-element bounds checks. Average pooling divides by
a per-position window size that is separable (rows x columns) and known at compile time.
"""

from __future__ import annotations

from collections.abc import Callable

from llvmlite import ir

from sqzc.backends.llvm.cg import LOWEST_F32, F32, f32, for_range, i64, loop_nest
from sqzc.backends.llvm.emit.conv import valid_range
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
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
    init = f32(LOWEST_F32) if is_max else f32(0.0)  # onnxruntime: max pooling never gives -inf
    accumulate_taps(ctx, init, float_max if is_max else lambda b, v, cur: b.fadd(cur, v))
    if is_max:
        return
    n_batch, c, oh, ow = y.shape
    h, w = x.shape[2:]
    (kh, kw), (sh, sw), (dh, dw) = a.kernel, a.strides, a.dilations
    rows = window_counts(oh, h, kh, sh, dh, a.pads[0], a.pads[2], a.count_include_pad)
    cols = window_counts(ow, w, kw, sw, dw, a.pads[1], a.pads[3], a.count_include_pad)
    grow = _const_array(ctx.module, "pool_rows", [float(v) for v in rows])
    gcol = _const_array(ctx.module, "pool_cols", [float(v) for v in cols])
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
