"""The IR verifier: structural checks plus each kind's definition (``sqzc.ops.OpDef``:
arity, attribute class, operand dtypes, shape rule).

It runs after every pass in tests and under ``--verify-each``. Each failure names the
node, its op and the offending types.
"""

from __future__ import annotations

import networkx as nx

from sqzc.errors import InternalError, ModelError
from sqzc.ir import Graph
from sqzc.ops import (
    EIGHT_BIT,
    FLOAT_DTYPES,
    ConstAttrs,
    OpKind,
    OpNode,
    infer_type,
    op_name,
    opdef,
)
from sqzc.ops.recipes import Winograd, recipe_matches

def verify(graph: Graph) -> None:
    """Raise InternalError describing the first inconsistency found."""
    if not nx.is_directed_acyclic_graph(graph.g):
        raise InternalError("IR graph has a cycle")
    for nid in graph.nodes():
        op = graph.op(nid)
        where = f"node '{nid}' ({op_name(op)}, from {op.origin_str})"
        d = opdef(op.kind)
        lo, hi = d.arity
        if not lo <= len(op.inputs) <= hi:
            raise InternalError(f"{where}: {len(op.inputs)} inputs, expected {lo}..{hi}")
        if not isinstance(op.attrs, d.attrs):
            raise InternalError(f"{where}: attrs {type(op.attrs).__name__}, expected "
                                f"{d.attrs.__name__}")
        if set(graph.g.predecessors(nid)) != set(op.inputs):
            raise InternalError(f"{where}: edges disagree with operands")
        ins = [graph.op(i).out for i in op.inputs]
        if d.operands == "float" and any(t.dtype not in FLOAT_DTYPES for t in ins):
            raise InternalError(f"{where}: non-float operand {[str(t) for t in ins]}")
        if d.operands == "int8" and ins[0].dtype not in EIGHT_BIT:
            raise InternalError(f"{where}: operand {ins[0]} is not 8-bit")
        if op.kind is not OpKind.INPUT:
            try:
                expect = infer_type(op.kind, op.attrs, ins)
            except ModelError as e:
                raise InternalError(f"{where}: {e}") from None
            if expect != op.out:
                raise InternalError(f"{where}: result type {op.out}, shape rule says {expect}")
        if op.into is not None:
            _check_placement(graph, nid, where)
        _check_layout(graph, nid, where)
        _check_recipe(op, where)
    for o in graph.outputs:
        if o.node in graph and graph.op(o.node).block:
            raise InternalError(f"graph output '{o.name}' is in a blocked layout")
        if o.node not in graph:
            raise InternalError(f"graph output '{o.name}' refers to missing node '{o.node}'")
        if graph.op(o.node).into is not None:
            raise InternalError(f"graph output '{o.name}' is placed into a concat")


def _check_layout(graph: Graph, nid: str, where: str) -> None:
    """Blocked tensors are 4-D float32 and are read only by layout-aware kernels."""
    op = graph.op(nid)
    if op.block and (len(op.out.shape) != 4 or op.out.dtype not in ("float32", "uint8", "int8")):
        raise InternalError(f"{where}: blocked layout on {op.out}")
    if op.kind is OpKind.REORDER and bool(op.block) == bool(graph.op(op.inputs[0]).block):
        raise InternalError(f"{where}: reorder must change the layout")
    reads_blocked = (op.block and op.kind is not OpKind.REORDER) or (
        op.kind is OpKind.REORDER and not op.block) or (
        op.kind is OpKind.CONV and getattr(op.attrs, "packed", 0))
    for src in op.inputs:
        if graph.op(src).block and not reads_blocked:
            raise InternalError(f"{where}: reads blocked tensor '{src}' without a reorder")
    if op.block and op.kind not in (OpKind.CONV, OpKind.QCONV, OpKind.REORDER):
        for src in op.inputs:
            if not graph.is_const(src) and graph.op(src).block != op.block:
                raise InternalError(f"{where}: mixes layouts")


def _check_placement(graph: Graph, nid: str, where: str) -> None:
    p = graph.op(nid).into
    assert p is not None
    if p.concat not in graph or graph.op(p.concat).kind is not OpKind.CONCAT:
        raise InternalError(f"{where}: placed into '{p.concat}', which is not a concat")
    cat = graph.op(p.concat)
    start = 0
    for src in cat.inputs:
        if src == nid and start == p.start:
            return
        start += graph.op(src).out.shape[p.axis]
    raise InternalError(f"{where}: placement {p} does not match an operand slot of "
                        f"'{p.concat}'")


def _check_recipe(op: OpNode, where: str) -> None:
    """A derived constant's recipe must rebuild its value byte for byte (compressed builds
    store the source and rebuild it). Winograd recipes are checked where they are used,
    not here: their float64 transform is too slow to redo after every pass."""
    if not isinstance(op.attrs, ConstAttrs) or op.attrs.recipe is None:
        return
    recipe = op.attrs.recipe
    if any(isinstance(s, Winograd) for s in recipe.steps):
        return
    if not recipe_matches(recipe, op.attrs.value):
        raise InternalError(f"{where}: its recipe ({recipe.describe()}) does not rebuild its "
                            "value")
