"""The graph IR: a ``networkx.DiGraph`` of ``OpNode``s wrapped in a small ``Graph`` class.

Node ids are SSA-like tensor names (sanitized, unique); each node produces exactly one
tensor. Operand order lives in ``OpNode.inputs``; edges exist so networkx algorithms
(topological order, reachability) work. Mutations go through ``Graph`` methods that keep
the two in sync, and the verifier (``sqzc.ir_verifier``) checks they agree.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import Any

import networkx as nx
import numpy as np

from sqzc.errors import ModelError
from sqzc.ops import ConstAttrs, NoAttrs, OpKind, OpNode, TensorType, kind_name
from sqzc.ops.recipes import Recipe
from sqzc.ops import infer_type

_UNSAFE = re.compile(r"[^A-Za-z0-9_.]")


#: The largest tensor sqzc compiles (elements); bigger ones are rejected before anything
#: is allocated or emitted (see README "Safety and limits").
MAX_TENSOR_ELEMENTS = 1 << 28


def check_size(t: TensorType, what: str) -> None:
    """Reject tensors with non-positive dims or more than MAX_TENSOR_ELEMENTS elements."""
    n = 1
    for d in t.shape:
        if d < 1:
            raise ModelError(f"{what}: dimension {d} in shape {list(t.shape)} is not positive")
        n *= d
        if n > MAX_TENSOR_ELEMENTS:
            raise ModelError(f"{what}: shape {list(t.shape)} exceeds the limit of "
                             f"{MAX_TENSOR_ELEMENTS} elements per tensor")


def sanitize(name: str) -> str:
    """Map an ONNX tensor name to an identifier usable in dumps and symbol names."""
    s = _UNSAFE.sub("_", name).strip("_") or "t"
    return s if not s[0].isdigit() else "t" + s


@dataclasses.dataclass
class GraphOutput:
    """A model output: its user-visible ONNX name and the node producing it."""

    name: str
    node: str


class Graph:
    """A model as a DAG of single-output ops, with named graph inputs and outputs."""

    def __init__(self, name: str = "model") -> None:
        self.name = name
        self.g: nx.DiGraph = nx.DiGraph()
        self.inputs: list[str] = []  # INPUT node ids, in ABI order
        self.input_names: dict[str, str] = {}  # INPUT node id -> ONNX name
        self.outputs: list[GraphOutput] = []
        self.dynamic_batch = False
        #: ONNX input/output name -> "int4" / "uint4" where the boundary tensor is 4-bit
        #: (the library takes and returns it in an int8 / uint8 container, a value a byte)
        self.nibbles: dict[str, str] = {}
        self.memory_plan: Any = None  # a sqzc.memory.MemoryPlan once plan-memory ran
        # node id -> the ONNX tensor it computes (moves with rewrites; `sqzc verify` uses it)
        self.tensor_names: dict[str, str] = {}
        self._order = itertools.count()

    # ------------------------------------------------------------------ construction

    def fresh_name(self, hint: str) -> str:
        """A node id derived from ``hint`` that is not used yet."""
        base = sanitize(hint)
        name, i = base, 1
        while name in self.g:
            name = f"{base}_{i}"
            i += 1
        return name

    def add(self, op: OpNode, name: str) -> str:
        """Insert ``op`` under a fresh id derived from ``name``; return the id."""
        nid = self.fresh_name(name)
        self.g.add_node(nid, op=op, order=next(self._order))
        for src in op.inputs:
            if src not in self.g:
                raise ModelError(f"node '{nid}' uses undefined tensor '{src}'")
            self.g.add_edge(src, nid)
        return nid

    def add_op(self, kind: OpKind, attrs: object, inputs: Iterable[str], name: str,
               origin: tuple[str, ...] = ()) -> str:
        """Insert an op whose output type follows from the shape rule of ``kind``."""
        ins = tuple(inputs)
        where = "+".join(origin) or name
        try:
            out = infer_type(kind, attrs, [self.op(i).out for i in ins])
        except ModelError as e:
            raise ModelError(f"{e} at node '{where}' ({kind_name(kind, attrs)})") from None
        check_size(out, f"node '{where}' ({kind_name(kind, attrs)})")
        return self.add(OpNode(kind, attrs, out, ins, origin), name)

    def add_const(self, value: np.ndarray, name: str, origin: tuple[str, ...] = (),
                  recipe: Recipe | None = None) -> str:
        """Insert a constant node holding ``value`` (made read-only, never copied); a
        derived one records how to rebuild it from its source (``recipe``)."""
        arr = np.array(value, order="C")  # a private C-ordered copy; keeps 0-d scalars 0-d
        arr.setflags(write=False)
        op = OpNode(OpKind.CONST, ConstAttrs(arr, recipe),
                    TensorType(tuple(arr.shape), arr.dtype.name), (), origin)
        return self.add(op, name)

    def add_input(self, onnx_name: str, ttype: TensorType) -> str:
        """Insert a graph input (appended to the ABI input order)."""
        check_size(ttype, f"input '{onnx_name}'")
        nid = self.add(OpNode(OpKind.INPUT, NoAttrs(), ttype, (), (onnx_name,)), onnx_name)
        self.inputs.append(nid)
        self.input_names[nid] = onnx_name
        return nid

    # ------------------------------------------------------------------ queries

    def op(self, nid: str) -> OpNode:
        """The op stored at node ``nid``."""
        return self.g.nodes[nid]["op"]

    def __contains__(self, nid: str) -> bool:
        return nid in self.g

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    def nodes(self) -> Iterator[str]:
        """Node ids in stable topological order (ties broken by insertion order)."""
        order = nx.get_node_attributes(self.g, "order")
        return iter(nx.lexicographical_topological_sort(self.g, key=lambda n: order[n]))

    def consumers(self, nid: str) -> list[str]:
        """Nodes reading ``nid``, in stable order."""
        order = self.g.nodes
        return sorted(self.g.successors(nid), key=lambda n: order[n]["order"])

    def output_nodes(self) -> set[str]:
        """Ids of nodes whose tensors are graph outputs."""
        return {o.node for o in self.outputs}

    def is_const(self, nid: str) -> bool:
        """True if ``nid`` is a compile-time constant."""
        return self.op(nid).kind is OpKind.CONST

    def constant_derived(self) -> set[str]:
        """Ids of nodes computed from constants alone (a QDQ weight's DequantizeLinear),
        constants themselves included: their values do not depend on any input."""
        derived: set[str] = set()
        for nid in self.nodes():  # topological order
            op = self.op(nid)
            if op.kind is OpKind.CONST or (op.kind is not OpKind.INPUT and op.inputs and all(
                    i in derived for i in op.inputs)):
                derived.add(nid)
        return derived

    def const_value(self, nid: str) -> np.ndarray:
        """The value of constant node ``nid``."""
        attrs = self.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        return attrs.value

    # ------------------------------------------------------------------ rewriting

    def set_op(self, nid: str, op: OpNode) -> None:
        """Replace the op at ``nid`` (same id), rewiring edges to its new inputs."""
        for src in list(self.g.predecessors(nid)):
            self.g.remove_edge(src, nid)
        self.g.nodes[nid]["op"] = op
        for src in op.inputs:
            self.g.add_edge(src, nid)

    def replace_uses(self, old: str, new: str) -> None:
        """Make every consumer of ``old`` (and graph outputs) read ``new`` instead."""
        for user in self.consumers(old):
            op = self.op(user)
            ins = tuple(new if i == old else i for i in op.inputs)
            self.set_op(user, dataclasses.replace(op, inputs=ins))
        for out in self.outputs:
            if out.node == old:
                out.node = new
        if old in self.tensor_names:  # ``new`` now computes what ``old`` did
            self.tensor_names[new] = self.tensor_names[old]

    def remove(self, nid: str) -> None:
        """Delete a node that nothing uses any more."""
        if self.g.out_degree(nid) or nid in self.output_nodes():
            raise AssertionError(f"removing '{nid}' which is still used")
        self.g.remove_node(nid)

    def remove_dead(self) -> bool:
        """Delete every node no graph output depends on (graph inputs stay: they are ABI)."""
        live: set[str] = set()
        for out in self.outputs:
            live.add(out.node)
            live |= nx.ancestors(self.g, out.node)
        dead = [n for n in self.g if n not in live and n not in self.inputs]
        self.g.remove_nodes_from(dead)
        return bool(dead)

    def copy(self) -> Graph:
        """A structural copy (ops are immutable and shared)."""
        new = Graph(self.name)
        new.g = self.g.copy()
        new.inputs = list(self.inputs)
        new.input_names = dict(self.input_names)
        new.outputs = [GraphOutput(o.name, o.node) for o in self.outputs]
        new.dynamic_batch = self.dynamic_batch
        new.nibbles = dict(self.nibbles)
        new.tensor_names = dict(self.tensor_names)
        new._order = itertools.count(max(nx.get_node_attributes(self.g, "order").values(),
                                         default=-1) + 1)
        return new
