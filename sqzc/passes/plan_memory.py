"""plan-memory: one arena for all intermediate tensors, reused by liveness."""

from __future__ import annotations

from sqzc.ir import Graph
from sqzc.memory import assign_arena
from sqzc.passes.manager import DEFAULT_CONTEXT, PassContext


def plan_memory(g: Graph, ctx: PassContext = DEFAULT_CONTEXT) -> bool:
    """Assign arena offsets so tensors alive at the same step never overlap.

    Lifetimes come from the stable topological schedule; a concat's buffer lives from the
    first write of any placed operand to the last read of any of them. Offsets are
    64-byte aligned. The plan (arena size and liveness lower bound) is attached to the
    graph for the backend and for ``--stats``; without this pass (``-O0``) every tensor
    gets its own region.
    """
    g.memory_plan = assign_arena(g)
    return False
