"""The kernel-emission context handed to every emitter.

Each IR node becomes one internal LLVM function ``k_<node>(ptr in0, ..., ptr out)``
whose pointers already point at the start of each tensor's view; shapes and strides are
compile-time constants baked into the code. ``Operand`` turns index lists into loads and
stores through those strides (zero strides implement broadcasting).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from llvmlite import ir

from sqzc.backends.llvm.cg import I8, I64, LLVM_TYPE, PTR, for_range, i64, linear_index
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
    sites: int = 0  # work counters used by parallel_for so far (<= MAX_WORK_SITES)
    #: A kernel shared by layers that differ only in some extents (``shared_kernel``):
    #: the run-time argument of each such extent, and its largest value in the group.
    runtime_extents: dict[str, ir.Value] | None = None
    extent_caps: dict[str, int] | None = None

    @property
    def work(self) -> ir.Value:
        """This kernel's work counters (MAX_WORK_SITES cache lines, zero on entry)."""
        return self.fn.args[len(self.ins) + 1]

    @property
    def tid(self) -> ir.Value:
        """This worker's index (0 .. nthreads-1)."""
        return self.fn.args[len(self.ins) + 2]

    @property
    def nthreads(self) -> ir.Value:
        """Number of workers running this kernel together."""
        return self.fn.args[len(self.ins) + 3]

    def extent(self, name: str, value: int) -> ir.Value:
        """An extent (a channel count, a stride) as an IR value: the constant ``value``
        in a kernel of its own, the argument ``name`` in a kernel shared across layers.
        Python-level decisions must not use ``value`` for a shared extent: only the
        emitter's ``Sharing.extents`` vary within a group."""
        if self.runtime_extents is None:
            return i64(value)
        return self.runtime_extents[name]

    def extent_cap(self, name: str, value: int) -> int:
        """The largest value ``extent(name)`` takes in this kernel's group (stack sizes)."""
        return value if self.extent_caps is None else self.extent_caps[name]

    def split_range(self, lo: int, hi: int | ir.Value) -> tuple[ir.Value, ir.Value]:
        """This worker's contiguous share of ``[lo, hi)`` (balanced to within one)."""
        self.parallel = True
        b = self.b
        n = i64(hi - lo) if isinstance(hi, int) else b.sub(hi, i64(lo))
        start = b.sdiv(b.mul(self.tid, n), self.nthreads)
        stop = b.sdiv(b.mul(b.add(self.tid, i64(1)), n), self.nthreads)
        return b.add(start, i64(lo), name="part.lo"), b.add(stop, i64(lo), name="part.hi")

    @contextmanager
    def parallel_for(self, count: int | ir.Value, name: str = "work", chunk: int = 1,
                     grain: int = 0) -> Iterator[ir.Value]:
        """``for i in range(count)`` shared dynamically among the workers: each claims
        ``chunk`` indices at a time from an atomic counter until none are left, so a
        worker that is descheduled (another process on its CPU) delays nothing; the others
        take its share. With one thread the whole range is claimed at once. Every index is
        run by exactly one worker, the same code whichever it is, so results do not depend
        on the thread count. Past MAX_WORK_SITES call sites it falls back to
        ``split_range``. ``count`` may be a run-time value (a kernel shared across layers).

        ``grain``: elements one index touches, for light loops (copies, reorders): claims
        then cover at least ``MIN_CLAIM_ELEMENTS``, since two workers taking turns on the
        counter's cache line cost ~20 ns per claim (a 1000-channel reorder to plain, one
        element per index, took 24 us at 2 threads instead of 1)."""
        b = self.b
        self.parallel = True
        if isinstance(count, int) and count <= 0:
            return
        total = i64(count) if isinstance(count, int) else count
        if grain > 0:
            chunk = max(chunk, -(-MIN_CLAIM_ELEMENTS // grain))
        if self.sites >= MAX_WORK_SITES:
            lo, hi = self.split_range(0, count)
            with for_range(b, lo, hi, name=name) as i:
                yield i
            return
        slot = b.gep(self.work, [i64(WORK_SITE_BYTES * self.sites)], source_etype=I8,
                     name=f"{name}.counter")
        self.sites += 1
        single = b.icmp_signed("==", self.nthreads, i64(1))
        step = b.select(single, total, i64(chunk), name=f"{name}.step")
        claim = b.append_basic_block(f"{name}.claim")
        run = b.append_basic_block(f"{name}.run")
        done = b.append_basic_block(f"{name}.done")
        b.branch(claim)
        b.position_at_end(claim)
        start = b.atomic_rmw("add", slot, step, "monotonic", name=f"{name}.start")
        b.cbranch(b.icmp_signed("<", start, total), run, done)
        b.position_at_end(run)
        end = b.add(start, step)
        stop = b.select(b.icmp_signed("<", end, total), end, total)
        with for_range(b, start, stop, name=name) as i:
            yield i
        b.branch(claim)
        b.position_at_end(done)


#: Elements a claim of a light ``parallel_for`` covers at least (see ``grain``).
MIN_CLAIM_ELEMENTS = 4096
#: Work counters (parallel_for call sites) a kernel may use, one cache line each.
MAX_WORK_SITES = 16
WORK_SITE_BYTES = 64
WORK_BYTES_PER_KERNEL = MAX_WORK_SITES * WORK_SITE_BYTES


def kernel_signature(n_inputs: int, n_extents: int = 0) -> ir.FunctionType:
    """``void (ptr in0, ..., ptr out, ptr work, i64 tid, i64 nthreads)``: every worker
    calls every kernel; kernels that do not split their work run on worker 0 only. A
    kernel shared across layers takes its run-time extents after these (``i64`` each)."""
    return ir.FunctionType(ir.VoidType(), [PTR] * (n_inputs + 2) + [I64] * (2 + n_extents))
