"""MatMul with numpy semantics (1-D promotion, broadcast batch dims), float32.

i-k-j loop order: the innermost loop walks a row of B and of the output, unit-stride,
so LLVM vectorizes it. Without batch dims (a classifier head: [1, 1280] @ [1280, 1000])
the columns are shared among the workers in slices of ``COLUMN_SLICE``; each output
element still sums over k in order, so results do not depend on the thread count.
"""

from __future__ import annotations

from dataclasses import dataclass

from llvmlite import ir

from sqzc.backends.llvm.cg import f32, for_range, loop_nest
from sqzc.backends.llvm.emit.registry import emits
from sqzc.backends.llvm.kernel import KernelContext, Operand
from sqzc.ops import OpKind


@dataclass(frozen=True)
class MatmulGeometry:
    """A numpy-semantics matmul's loop bounds and element strides: ``a`` is [..., m, k] and
    ``b`` [..., k, n] after 1-D promotion; ``batch`` is the broadcast batch shape and the
    operand strides cover batch dims (0 where broadcast) then the matrix dims."""

    m: int
    k: int
    n: int
    batch: list[int]
    a_strides: list[int]
    b_strides: list[int]
    a_is_matrix: bool
    b_is_matrix: bool

    def out_index(self, bidx: list[ir.Value], i: ir.Value, j: ir.Value) -> list[ir.Value]:
        """The output index of element (i, j) of batch ``bidx`` (promoted dims dropped)."""
        return list(bidx) + ([i] if self.a_is_matrix else []) + ([j] if self.b_is_matrix else [])


def matmul_geometry(xa: Operand, xb: Operand) -> MatmulGeometry:
    """``MatmulGeometry`` of ``xa @ xb`` (shared by the float and integer matmuls)."""
    a_shape, b_shape = list(xa.shape), list(xb.shape)
    a_str, b_str = list(xa.strides), list(xb.strides)
    if len(a_shape) == 1:  # (k) -> (1, k)
        a_shape, a_str = [1] + a_shape, [0] + a_str
    if len(b_shape) == 1:  # (k) -> (k, 1)
        b_shape, b_str = b_shape + [1], b_str + [0]
    rank = max(len(a_shape), len(b_shape)) - 2
    batch = [max(p, q) for p, q in zip([1] * (rank - len(a_shape) + 2) + a_shape[:-2],
                                       [1] * (rank - len(b_shape) + 2) + b_shape[:-2])]

    def strides(shape: list[int], st: list[int]) -> list[int]:
        pad = rank - (len(shape) - 2)
        return [0] * pad + [0 if d == 1 else s for d, s in zip(shape[:-2], st[:-2])] + st[-2:]

    return MatmulGeometry(a_shape[-2], a_shape[-1], b_shape[-1], batch,
                          strides(a_shape, a_str), strides(b_shape, b_str),
                          len(xa.shape) > 1, len(xb.shape) > 1)


#: Output columns one worker claims at a time in an unbatched matmul (4 cache lines of a
#: row of B and of the output).
COLUMN_SLICE = 64


@emits(OpKind.MATMUL, "float")
def emit_matmul(ctx: KernelContext) -> None:
    """out[..., m, n] = sum_k a[..., m, k] * b[..., k, n]."""
    bld, (xa, xb), y = ctx.b, ctx.ins, ctx.out
    g = matmul_geometry(xa, xb)
    if all(d == 1 for d in g.batch) and g.n > COLUMN_SLICE:
        zeros = [ir.Constant(ir.IntType(64), 0)] * len(g.batch)
        slices = -(-g.n // COLUMN_SLICE)
        with ctx.parallel_for(slices, name="cols") as s:
            lo = bld.mul(s, ir.Constant(ir.IntType(64), COLUMN_SLICE))
            end = bld.add(lo, ir.Constant(ir.IntType(64), COLUMN_SLICE))
            hi = bld.select(bld.icmp_signed("<", end, ir.Constant(ir.IntType(64), g.n)),
                            end, ir.Constant(ir.IntType(64), g.n))
            with for_range(bld, 0, g.m, name="m") as i:
                with for_range(bld, lo, hi, name="z") as j:
                    y.store(bld, g.out_index(zeros, i, j), f32(0.0))
                with for_range(bld, 0, g.k, name="k") as kk:
                    av = xa.load(bld, zeros + [i, kk], g.a_strides)
                    with for_range(bld, lo, hi, name="n") as j:
                        bv = xb.load(bld, zeros + [kk, j], g.b_strides)
                        acc = y.load(bld, g.out_index(zeros, i, j))
                        y.store(bld, g.out_index(zeros, i, j), bld.fadd(acc, bld.fmul(av, bv)))
        return
    with loop_nest(bld, g.batch, name="bt") as bidx:
        with for_range(bld, 0, g.m, name="m") as i:
            with for_range(bld, 0, g.n, name="z") as j:
                y.store(bld, g.out_index(bidx, i, j), f32(0.0))
            with for_range(bld, 0, g.k, name="k") as kk:
                av = xa.load(bld, list(bidx) + [i, kk], g.a_strides)
                with for_range(bld, 0, g.n, name="n") as j:
                    bv = xb.load(bld, list(bidx) + [kk, j], g.b_strides)
                    acc = y.load(bld, g.out_index(bidx, i, j))
                    y.store(bld, g.out_index(bidx, i, j), bld.fadd(acc, bld.fmul(av, bv)))
