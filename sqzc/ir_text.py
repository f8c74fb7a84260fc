"""Stable dumps of the IR: text (one op per line), JSON (documented schema) and DOT.

Text form, one line per node in stable topological order::

    %conv1 = conv(%data_0, %conv1_w, %conv1_b) {act=relu, group=1, ...} : f32[1,64,111,111]  # conv1+relu1
    %fire2_e1 = conv(...) {...} : f32[1,64,55,55] into %fire2_cat[c=0:64]  # fire2/expand1x1
    %w = const #1a2b3c4d : f32[64,16,3,3]
    return %prob as "softmaxout_1"

Attributes print sorted by name; constants print a content hash (scalars inline), so two
runs over the same model give byte-identical dumps that diff cleanly.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from sqzc.ir import Graph
from sqzc.ops import (
    DTYPE_SHORT,
    Activation,
    ConstAttrs,
    OpKind,
    OpNode,
    OrtOrder,
    QuantAttrs,
    op_name,
)

JSON_SCHEMA_VERSION = 2


def const_hash(value: np.ndarray) -> str:
    """First 8 hex digits of the sha256 of a constant's dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(f"{value.dtype.name}{value.shape}".encode())
    h.update(np.ascontiguousarray(value).tobytes())
    return h.hexdigest()[:8]


def _fmt(v: object) -> str:
    if isinstance(v, Activation):
        return str(v)
    if isinstance(v, QuantAttrs):
        short = DTYPE_SHORT.get(v.dtype, v.dtype)
        if v.per_tensor:
            return f"{short}(scale={v.scale[0]!r}, zp={v.zero_point[0]})"
        return f"{short}(axis={v.axis}, scale={_fmt(v.scale)}, zp={_fmt(v.zero_point)})"
    if isinstance(v, tuple | list) and len(v) > 4 and len(set(v)) == 1:
        return f"[{_fmt(v[0])}]*{len(v)}"
    if isinstance(v, tuple | list) and len(v) > 8:
        return "[" + ",".join(_fmt(x) for x in v[:4]) + f",...({len(v)} values)]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple | list):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    if isinstance(v, float):
        return repr(v)
    return str(v)


def attr_items(op: OpNode) -> list[tuple[str, object]]:
    """An op's attributes as sorted (name, value) pairs (constants excluded)."""
    if isinstance(op.attrs, ConstAttrs) or not dataclasses.is_dataclass(op.attrs):
        return []
    if isinstance(op.attrs, Activation):  # an activation op: its parameters by name
        return sorted(op.attrs.named_params())
    items = [(f.name, getattr(op.attrs, f.name)) for f in dataclasses.fields(op.attrs)]
    nested = [(k, v) for k, v in items if dataclasses.is_dataclass(v)
              and not isinstance(v, Activation | QuantAttrs | OrtOrder)]
    for k, v in nested:  # show nested geometry (a qconv's conv, a pool's window) inline
        items = [(k2, v2) for k2, v2 in items if k2 != k]
        items += [(f.name, getattr(v, f.name)) for f in dataclasses.fields(v)]
    # shown only when set
    optional = {"act": Activation(), "packed": 0, "out_channels": 0, "winograd": 0,
                "compact": False, "ort_order": None, "quantize": None, "source": "matmul", "bias": (),
                "signed_dot": False}
    items = [(k, v) for k, v in items if not (k in optional and v == optional[k])]
    return sorted(items)


def _const_repr(value: np.ndarray) -> str:
    if value.size == 1 and value.ndim <= 1:
        return repr(value.reshape(-1)[0].item())
    return f"#{const_hash(value)}"


def placement_text(graph: Graph, nid: str) -> str:
    """`` into %concat[c=a:b]`` for nodes placed by concat elimination, else ''."""
    p = graph.op(nid).into
    if p is None:
        return ""
    extent = graph.op(nid).out.shape[p.axis]
    axis = "c" if p.axis == 1 else f"axis{p.axis}"
    return f" into %{p.concat}[{axis}={p.start}:{p.start + extent}]"


def node_line(graph: Graph, nid: str) -> str:
    """The text line for one node."""
    op = graph.op(nid)
    if op.kind is OpKind.CONST:
        assert isinstance(op.attrs, ConstAttrs)
        return f"%{nid} = const {_const_repr(op.attrs.value)} : {op.out}"
    args = ", ".join(f"%{i}" for i in op.inputs)
    attrs = attr_items(op)
    attr_text = " {" + ", ".join(f"{k}={_fmt(v)}" for k, v in attrs) + "}" if attrs else ""
    note = concat_note(graph, nid) if op.kind is OpKind.CONCAT else ""
    origin = f"  # {op.origin_str}" if op.origin else ""
    layout = f" nchw{op.block}c" if op.block else ""
    return (f"%{nid} = {op_name(op)}({args}){attr_text} : {op.out}{layout}"
            f"{placement_text(graph, nid)}{note}{origin}")


def concat_note(graph: Graph, nid: str) -> str:
    """`` copies(%a, %b)`` naming the inputs a Concat still copies (none when eliminated)."""
    op = graph.op(nid)
    axis = op.attrs.axis  # type: ignore[attr-defined]
    start, copies = 0, []
    for src in op.inputs:
        p = graph.op(src).into
        if not (p is not None and p.concat == nid and p.start == start):
            copies.append(f"%{src}")
        start += graph.op(src).out.shape[axis]
    return f" copies({', '.join(copies)})" if copies else " eliminated"


def print_ir(graph: Graph) -> str:
    """The whole graph as stable text."""
    head = f"// sqzc IR graph '{graph.name}'" + (" (dynamic batch)" if graph.dynamic_batch else "")
    lines = [head]
    lines += [node_line(graph, n) for n in graph.nodes()]
    for o in graph.outputs:
        lines.append(f'return %{o.node} as "{o.name}"')
    return "\n".join(lines) + "\n"


def to_json(graph: Graph) -> dict[str, object]:
    """The JSON form (schema ``JSON_SCHEMA_VERSION``): nodes with name/op/inputs/outputs/attrs/origin,
    tensors with shape and dtype."""
    nodes, tensors = [], {}
    for nid in graph.nodes():
        op = graph.op(nid)
        tensors[nid] = {"shape": list(op.out.shape), "dtype": op.out.dtype,
                        "layout": f"nchw{op.block}c" if op.block else "plain"}
        entry: dict[str, object] = {
            "name": nid,
            "op": op_name(op),
            "inputs": list(op.inputs),
            "outputs": [nid],
            "attrs": {k: _jsonable(v) for k, v in attr_items(op)},
            "origin": list(op.origin),
        }
        if op.kind is OpKind.CONST:
            value = op.attrs.value  # type: ignore[attr-defined]
            entry["attrs"] = {"hash": const_hash(value), "bytes": int(value.nbytes)}
            if value.size == 1:
                entry["attrs"]["value"] = value.reshape(-1)[0].item()  # type: ignore[index]
        if op.into is not None:
            entry["placement"] = {"concat": op.into.concat, "axis": op.into.axis,
                                  "start": op.into.start,
                                  "stop": op.into.start + op.out.shape[op.into.axis]}
        if op.kind is OpKind.CONCAT:
            note = concat_note(graph, nid)
            entry["copies"] = [] if note == " eliminated" else \
                [s.strip().lstrip("%") for s in note[len(" copies("):-1].split(",")]
        nodes.append(entry)
    return {
        "schema": JSON_SCHEMA_VERSION,
        "graph": graph.name,
        "dynamic_batch": graph.dynamic_batch,
        "inputs": [{"name": graph.input_names[n], "node": n} for n in graph.inputs],
        "outputs": [{"name": o.name, "node": o.node} for o in graph.outputs],
        "nodes": nodes,
        "tensors": tensors,
    }


def _jsonable(v: object) -> object:
    if dataclasses.is_dataclass(v) and not isinstance(v, Activation):
        return {f.name: _jsonable(getattr(v, f.name)) for f in dataclasses.fields(v)}
    if isinstance(v, Activation):
        return {"kind": v.kind, **{k: _jsonable(x) for k, x in v.named_params()}}
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return str(v)
    return v


def to_json_text(graph: Graph) -> str:
    """JSON text (sorted keys, indented) for ``sqzc dump --format json``."""
    return json.dumps(to_json(graph), indent=1, sort_keys=True) + "\n"


def to_dot(graph: Graph) -> str:
    """Graphviz DOT: one box per op (constants folded into their consumers' labels)."""
    lines = [f'digraph "{graph.name}" {{', "  rankdir=TB;", '  node [shape=box, fontname="monospace"];']
    for nid in graph.nodes():
        op = graph.op(nid)
        if op.kind is OpKind.CONST:
            continue
        label = f"{nid}\\n{op_name(op)} {DTYPE_SHORT.get(op.out.dtype, op.out.dtype)}" \
                f"{list(op.out.shape)}"
        act = getattr(op.attrs, "act", None)
        if isinstance(act, Activation) and act:
            label += f"\\n+{act}"
        if op.into is not None:
            label += f"\\ninto {op.into.concat}@{op.into.start}"
        lines.append(f'  "{nid}" [label="{label}"];')
        for src in op.inputs:
            if not graph.is_const(src):
                lines.append(f'  "{src}" -> "{nid}";')
    for o in graph.outputs:
        lines.append(f'  "out:{o.name}" [shape=ellipse];')
        lines.append(f'  "{o.node}" -> "out:{o.name}";')
    lines.append("}")
    return "\n".join(lines) + "\n"
