"""The kernel-emission context handed to every emitter.

Each IR node becomes one internal LLVM function ``k_<node>(ptr in0, ..., ptr out)``
whose pointers already point at the start of each tensor's view; shapes and strides are
compile-time constants baked into the code. ``Operand`` turns index lists into loads and
stores through those strides (zero strides implement broadcasting).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llvmlite import ir

from sqzc.backends.llvm.cg import LLVM_TYPE, PTR, linear_index
from sqzc.backends.llvm.target import Target
from sqzc.memory import View
from sqzc.ops import OpNode


@dataclass
class Operand:
    """A tensor argument of a kernel: base pointer, view (shape and strides), dtype."""

    ptr: ir.Value
    view: View
    dtype: str

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's shape."""
        return self.view.shape

    @property
    def strides(self) -> tuple[int, ...]:
        """Element strides of the view."""
        return self.view.strides

    @property
    def ty(self) -> ir.Type:
        """LLVM element type."""
        return LLVM_TYPE[self.dtype]

    def addr(self, b: ir.IRBuilder, idx: Sequence[ir.Value],
             strides: Sequence[int] | None = None) -> ir.Value:
        """Address of element ``idx`` (optionally with overriding strides)."""
        lin = linear_index(b, idx, self.strides if strides is None else strides)
        return b.gep(self.ptr, [lin], inbounds=True, source_etype=self.ty)

    def load(self, b: ir.IRBuilder, idx: Sequence[ir.Value],
             strides: Sequence[int] | None = None) -> ir.Value:
        """Load element ``idx``."""
        return b.load(self.addr(b, idx, strides), typ=self.ty)

    def store(self, b: ir.IRBuilder, idx: Sequence[ir.Value], value: ir.Value) -> None:
        """Store ``value`` at element ``idx``."""
        b.store(value, self.addr(b, idx))

    def broadcast_strides(self, out_shape: Sequence[int]) -> tuple[int, ...]:
        """Strides that read this operand at output indices (numpy broadcasting)."""
        pad = len(out_shape) - len(self.shape)
        strides = [0] * pad
        for d, s in zip(self.shape, self.strides):
            strides.append(0 if d == 1 else s)
        return tuple(strides)


@dataclass
class KernelContext:
    """Everything an emitter needs: builder positioned in the kernel body, operands, op."""

    module: ir.Module
    fn: ir.Function
    b: ir.IRBuilder
    node_id: str
    op: OpNode
    ins: list[Operand]
    out: Operand
    target: Target
    aliased_inputs: frozenset[int] = frozenset()  # Concat operands already in their slice
    parallel: bool = False  # set when the emitter split its work across threads

    @property
    def tid(self) -> ir.Value:
        """This worker's index (0 .. nthreads-1)."""
        return self.fn.args[-2]

    @property
    def nthreads(self) -> ir.Value:
        """Number of workers running this kernel together."""
        return self.fn.args[-1]

    def split_range(self, lo: int, hi: int) -> tuple[ir.Value, ir.Value]:
        """This worker's contiguous share of ``[lo, hi)`` (balanced to within one)."""
        self.parallel = True
        b, n = self.b, hi - lo
        start = b.sdiv(b.mul(self.tid, ir.Constant(ir.IntType(64), n)), self.nthreads)
        stop = b.sdiv(b.mul(b.add(self.tid, ir.Constant(ir.IntType(64), 1)),
                            ir.Constant(ir.IntType(64), n)), self.nthreads)
        base = ir.Constant(ir.IntType(64), lo)
        return b.add(start, base, name="part.lo"), b.add(stop, base, name="part.hi")


def kernel_signature(n_inputs: int) -> ir.FunctionType:
    """``void (ptr in0, ..., ptr out, i64 tid, i64 nthreads)``: every worker calls every
    kernel; kernels that do not split their work run on worker 0 only."""
    return ir.FunctionType(ir.VoidType(), [PTR] * (n_inputs + 1) + [ir.IntType(64)] * 2)
