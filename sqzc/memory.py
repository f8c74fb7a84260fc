"""Where every tensor lives: storage roots, strided views and the workspace arena.

A tensor's *root* is the buffer that holds it: a graph input, a graph output, a
constant in the weights blob, or a region of the one workspace arena. Concat
elimination makes a producer's tensor a strided *view* into its concat's root, so views
carry an element offset and strides, and every kernel addresses memory through them.

``assign_arena`` is the memory planner: buffers whose lifetimes (from the topological
schedule) overlap get disjoint regions; others may share. ``naive_arena`` gives every
buffer its own region (the ``-O0`` baseline).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqzc.ir import Graph
import numpy as np

from sqzc.ops import OpKind, OpNode

ALIGN = 64


def align_up(n: int, a: int = ALIGN) -> int:
    """``n`` rounded up to a multiple of ``a``."""
    return (n + a - 1) // a * a


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Row-major element strides of ``shape``."""
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return tuple(strides)


@dataclass(frozen=True)
class Root:
    """A buffer: ``kind`` is input, output, const or arena; ``index`` is the input/output
    position, or the byte offset for const and arena roots (filled in by the planner)."""

    kind: str
    node: str
    index: int = 0


@dataclass(frozen=True)
class View:
    """A tensor inside a root buffer: element ``offset`` and element ``strides``."""

    root: Root
    offset: int
    strides: tuple[int, ...]
    shape: tuple[int, ...]

    @property
    def contiguous(self) -> bool:
        """True if the view is a dense row-major block."""
        return self.strides == contiguous_strides(self.shape) or self.size == 1

    @property
    def size(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n


@dataclass
class MemoryPlan:
    """Arena offsets per root node, the arena size and the liveness lower bound."""

    offsets: dict[str, int] = field(default_factory=dict)
    arena_bytes: int = 0
    lower_bound: int = 0
    reused: bool = False


def physical_shape(op: OpNode) -> tuple[int, ...]:
    """The shape of a tensor's storage: NCHW, or [N, ceil(C/b), H, W, b] when blocked."""
    if not op.block:
        return op.out.shape
    n, c, h, w = op.out.shape
    return (n, -(-c // op.block), h, w, op.block)


def storage_bytes(op: OpNode) -> int:
    """Bytes a tensor occupies (blocked layouts pad channels to the block size)."""
    n = 1
    for d in physical_shape(op):
        n *= d
    return n * np.dtype(op.out.dtype).itemsize


def schedule(graph: Graph) -> list[str]:
    """The execution order: computed nodes in stable topological order."""
    return [n for n in graph.nodes() if graph.op(n).kind not in (OpKind.CONST, OpKind.INPUT)]


def root_node(graph: Graph, nid: str) -> str:
    """Follow concat placements to the node that owns ``nid``'s buffer."""
    seen = set()
    while (p := graph.op(nid).into) is not None:
        if nid in seen:
            raise AssertionError(f"placement cycle at '{nid}'")
        seen.add(nid)
        nid = p.concat
    return nid


def arena_roots(graph: Graph) -> list[str]:
    """Computed root nodes that are not graph outputs: they live in the arena."""
    outs = graph.output_nodes()
    return [n for n in schedule(graph) if graph.op(n).into is None and n not in outs]


def lifetimes(graph: Graph) -> dict[str, tuple[int, int]]:
    """For each arena root, the [first write, last read] positions in the schedule."""
    order = schedule(graph)
    pos = {n: i for i, n in enumerate(order)}
    roots = set(arena_roots(graph))
    spans: dict[str, tuple[int, int]] = {}
    for n in order:
        r = root_node(graph, n)
        if r not in roots:
            continue
        last = max([pos[n]] + [pos[c] for c in graph.consumers(n) if c in pos])
        lo, hi = spans.get(r, (pos[n], pos[n]))
        spans[r] = (min(lo, pos[n]), max(hi, last))
    return spans


def _sizes(graph: Graph, roots: list[str]) -> dict[str, int]:
    return {r: align_up(max(storage_bytes(graph.op(r)), 1)) for r in roots}


def liveness_lower_bound(graph: Graph) -> int:
    """The largest total size of arena buffers alive at one step (no plan can do better)."""
    spans = lifetimes(graph)
    sizes = _sizes(graph, list(spans))
    steps = len(schedule(graph))
    best = 0
    for t in range(steps):
        best = max(best, sum(sizes[r] for r, (lo, hi) in spans.items() if lo <= t <= hi))
    return best


def naive_arena(graph: Graph) -> MemoryPlan:
    """Every arena buffer gets its own region (no reuse)."""
    plan = MemoryPlan()
    roots = arena_roots(graph)
    sizes = _sizes(graph, roots)
    off = 0
    for r in roots:
        plan.offsets[r] = off
        off += sizes[r]
    plan.arena_bytes = off
    plan.lower_bound = liveness_lower_bound(graph)
    return plan


def assign_arena(graph: Graph) -> MemoryPlan:
    """Greedy best-fit by size over lifetime conflicts (buffers that are live together
    never overlap); typically reaches the liveness lower bound on CNN chains."""
    spans = lifetimes(graph)
    sizes = _sizes(graph, list(spans))
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, lo, hi)
    plan = MemoryPlan(reused=True)
    for r in sorted(spans, key=lambda r: (-sizes[r], spans[r][0])):
        lo, hi = spans[r]
        busy = sorted((o, e) for o, e, l2, h2 in placed if not (h2 < lo or hi < l2))
        off = 0
        for o, e in busy:
            if off + sizes[r] <= o:
                break
            off = max(off, e)
        plan.offsets[r] = off
        placed.append((off, off + sizes[r], lo, hi))
    plan.arena_bytes = max((e for _, e, _, _ in placed), default=0)
    plan.lower_bound = liveness_lower_bound(graph)
    return plan


def resolve_views(graph: Graph, plan: MemoryPlan, const_offsets: dict[str, int]) -> dict[str, View]:
    """The view of every node's tensor, given arena and weights-blob offsets."""
    views: dict[str, View] = {}
    out_index: dict[str, int] = {}
    for j, o in enumerate(graph.outputs):
        out_index.setdefault(o.node, j)

    def view_of(nid: str) -> View:
        if nid in views:
            return views[nid]
        op = graph.op(nid)
        shape = physical_shape(op)
        if op.into is not None:
            parent = view_of(op.into.concat)
            start = op.into.start // op.block if op.block else op.into.start
            off = parent.offset + start * parent.strides[op.into.axis]
            v = View(parent.root, off, parent.strides, shape)
        elif op.kind is OpKind.INPUT:
            v = View(Root("input", nid, graph.inputs.index(nid)), 0, contiguous_strides(shape),
                     shape)
        elif op.kind is OpKind.CONST:
            v = View(Root("const", nid, const_offsets.get(nid, -1)), 0,
                     contiguous_strides(shape), shape)
        elif nid in out_index:
            v = View(Root("output", nid, out_index[nid]), 0, contiguous_strides(shape), shape)
        else:
            v = View(Root("arena", nid, plan.offsets[nid]), 0, contiguous_strides(shape), shape)
        views[nid] = v
        return v

    for n in graph.nodes():
        view_of(n)
    return views
