"""MatMul with numpy semantics (1-D promotion, broadcast batch dims), float32.

i-k-j loop order: the innermost loop walks a row of B and of the output, unit-stride,
so LLVM vectorizes it.
"""

from __future__ import annotations

from sqzc.backends.llvm.cg import f32, for_range, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext
from sqzc.ops import OpKind


@emits(OpKind.MATMUL, "float")
def emit_matmul(ctx: KernelContext) -> None:
    """out[..., m, n] = sum_k a[..., m, k] * b[..., k, n]."""
    bld, (xa, xb), y = ctx.b, ctx.ins, ctx.out
    a_shape, b_shape = list(xa.shape), list(xb.shape)
    a_str, b_str = list(xa.strides), list(xb.strides)
    if len(a_shape) == 1:  # (k) -> (1, k)
        a_shape, a_str = [1] + a_shape, [0] + a_str
    if len(b_shape) == 1:  # (k) -> (k, 1)
        b_shape, b_str = b_shape + [1], b_str + [0]
    m, k = a_shape[-2:]
    n = b_shape[-1]
    batch = [max(p, q) for p, q in zip(
        [1] * (max(len(a_shape), len(b_shape)) - len(a_shape)) + a_shape[:-2],
        [1] * (max(len(a_shape), len(b_shape)) - len(b_shape)) + b_shape[:-2])]

    def bstrides(shape: list, strides: list) -> list:
        pad = len(batch) - (len(shape) - 2)
        return [0] * pad + [0 if d == 1 else s for d, s in zip(shape[:-2], strides[:-2])]

    sa, sb = bstrides(a_shape, a_str), bstrides(b_shape, b_str)
    a_mat, b_mat = len(xa.shape) > 1, len(xb.shape) > 1
    with loop_nest(bld, batch, name="bt") as bidx:
        def out_idx(i: object, j: object) -> list:
            return list(bidx) + ([i] if a_mat else []) + ([j] if b_mat else [])

        with for_range(bld, 0, m, name="m") as i:
            with for_range(bld, 0, n, name="z") as j:
                y.store(bld, out_idx(i, j), f32(0.0))
            with for_range(bld, 0, k, name="k") as kk:
                av = xa.load(bld, list(bidx) + [i, kk], sa + a_str[-2:])
                with for_range(bld, 0, n, name="n") as j:
                    bv = xb.load(bld, list(bidx) + [kk, j], sb + b_str[-2:])
                    acc = y.load(bld, out_idx(i, j))
                    y.store(bld, out_idx(i, j), bld.fadd(acc, bld.fmul(av, bv)))
