"""A seeded mutator for ONNX models: protobuf-field mutations and raw byte damage.

``mutate(base_bytes, seed)`` returns ``(mutated_bytes, description)``; the same arguments
always give the same bytes (``random.Random(seed)``, no global state), so every fuzz
case is reproducible from its seed alone:

    python -c "import hardening_mutate as hm; open('m.onnx','wb').write(
        hm.mutate(open('base.onnx','rb').read(), SEED)[0])"

A case is a byte mutation (20%), 1-3 semantic mutations (40%) or 1-3 structural protobuf
mutations (40%).

Semantic mutations mostly keep the model valid so that the case reaches code generation
and is compared with onnxruntime: valid attribute changes (strides, pads, dilations,
auto_pad, ceil_mode, pool kernels, concat/softmax axes), op swaps within a family (Relu ->
LeakyRelu/Clip/Identity/..., MaxPool <-> AveragePool, ...), inserted nodes (affine ops,
BatchNormalization, Transpose, Flatten+Reshape, Clip), other input sizes and batch sizes,
special values (NaN, inf, huge, denormal) in the weights, extra graph outputs.

Structural protobuf mutations touch the fields a compiler frontend
trusts: tensor dims (graph inputs/outputs, value_info, initializers), attribute values and
types, op_type and domain, node inputs/outputs (renamed, dropped, duplicated), initializer
payloads (raw_data truncated/extended/emptied, data_type changed), element types of graph
inputs/outputs, opset and IR versions, node order, graph inputs/outputs/nodes removed or
added. Byte mutations flip, overwrite, insert, delete or truncate bytes of the serialized
file (half of them aimed at the graph structure rather than the weight payload).
"""

from __future__ import annotations

import random
import struct

import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

# Values that break assumptions: zero, negative, off-by-one, overflow of int32/int64 math.
_EDGE_INTS = (0, 1, -1, 2, 3, 4, 5, 7, 8, 16, 17, 64, 255, 1000, 65536, 2**31 - 1, 2**31,
              2**32 + 1, 2**40, -(2**31), 2**62, -(2**63), 2**63 - 1)
_EDGE_FLOATS = (0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 3.4e38, float("inf"), float("-inf"),
                float("nan"), 2.0, -100.0)
_OP_TYPES = ("Conv", "Relu", "MaxPool", "AveragePool", "GlobalAveragePool", "GlobalMaxPool",
             "Concat", "Dropout", "Identity", "Softmax", "LogSoftmax", "Flatten", "Reshape",
             "Squeeze", "Unsqueeze", "Transpose", "Add", "Sub", "Mul", "Div", "Gemm", "MatMul",
             "BatchNormalization", "Clip", "LeakyRelu", "Sigmoid", "LSTM", "conv", "Foo", "",
             "Cast", "Shape", "Gather", "Slice", "ReduceMean", "ReduceMax", "Constant", "Sum",
             "Max", "Pad", "Resize", "QLinearConv", "If", "Loop")
_DOMAINS = ("", "ai.onnx", "com.microsoft", "ai.onnx.ml", "x")
_DTYPES = tuple(range(0, 24)) + (99, -1)
_OPSETS = (0, 1, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 17, 18, 19, 20, 21, 22, 23, 24, 25, 100,
           -1, 2**40)
_IR_VERSIONS = (0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11, 12, 13, 99)
#: Every AttributeType (0 = UNDEFINED): protobuf refuses to set a value outside the enum
#: (ValueError: invalid enumerator), so a byte mutation is the only way to write one.
_ATTR_TYPES = tuple(range(0, 15))


def _edge_int(r: random.Random, old: int | None = None) -> int:
    if old is not None and r.random() < 0.3:
        return old + r.choice((-2, -1, 1, 2))
    return r.choice(_EDGE_INTS)


def _tensor_names(g: onnx.GraphProto) -> list[str]:
    names = [t.name for t in g.initializer] + [v.name for v in g.input]
    for n in g.node:
        names.extend(n.output)
    return [n for n in names if n]


def _all_dims(m: onnx.ModelProto) -> list:
    g = m.graph
    dims = []
    for vi in list(g.input) + list(g.output) + list(g.value_info):
        if vi.type.HasField("tensor_type") and vi.type.tensor_type.HasField("shape"):
            dims.extend(vi.type.tensor_type.shape.dim)
    return dims


def _m_dim(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    choice = r.random()
    if choice < 0.45:
        dims = _all_dims(m)
        if not dims:
            return "no dims"
        d = r.choice(dims)
        kind = r.random()
        if kind < 0.7:
            old = d.dim_value if d.HasField("dim_value") else None
            d.dim_value = _edge_int(r, old)
            return f"dim_value -> {d.dim_value}"
        if kind < 0.85:
            d.dim_param = r.choice(("N", "batch", "", "H", "?"))
            return f"dim_param -> {d.dim_param!r}"
        d.Clear()
        return "dim cleared"
    if choice < 0.6:
        vis = [vi for vi in list(g.input) + list(g.output)
               if vi.type.tensor_type.HasField("shape")]
        if not vis:
            return "no shaped value"
        shp = r.choice(vis).type.tensor_type.shape
        if shp.dim and r.random() < 0.5:
            del shp.dim[r.randrange(len(shp.dim))]
            return "rank - 1"
        shp.dim.add().dim_value = r.choice((1, 2, 3))
        return "rank + 1"
    if not g.initializer:
        return "no initializer"
    t = r.choice(g.initializer)
    if t.dims and r.random() < 0.75:
        i = r.randrange(len(t.dims))
        t.dims[i] = _edge_int(r, t.dims[i])
        return f"initializer {t.name} dims[{i}] -> {t.dims[i]}"
    if t.dims and r.random() < 0.5:
        del t.dims[r.randrange(len(t.dims))]
        return f"initializer {t.name} rank - 1"
    t.dims.append(r.choice((1, 2)))
    return f"initializer {t.name} rank + 1"


def _m_attr(m: onnx.ModelProto, r: random.Random) -> str:
    nodes = [n for n in m.graph.node if n.attribute]
    if not nodes or r.random() < 0.1:
        n = r.choice(m.graph.node)
        a = n.attribute.add()
        a.name = r.choice(("group", "dilations", "auto_pad", "axis", "kernel_shape", "bogus",
                           "storage_order", "count_include_pad", "alpha", "pads"))
        a.type = AttributeProto.INT
        a.i = _edge_int(r)
        return f"node {n.name}: added attribute {a.name}={a.i}"
    n = r.choice(nodes)
    a = r.choice(n.attribute)
    what = r.random()
    if what < 0.1:
        n.attribute.remove(a)
        return f"node {n.name}: removed attribute {a.name}"
    if what < 0.2:
        a.type = r.choice(_ATTR_TYPES)
        return f"node {n.name}: attribute {a.name} type -> {a.type}"
    if what < 0.3:
        # Same payload, another kind of field: e.g. ints -> floats / a string / a tensor.
        old = list(a.ints) if a.ints else [a.i]
        kind = r.choice(("floats", "f", "s", "ints_str", "i"))
        a.ClearField("ints")
        a.ClearField("i")
        if kind == "floats":
            a.type = AttributeProto.FLOATS
            a.floats.extend(float(v) for v in old)
        elif kind == "f":
            a.type = AttributeProto.FLOAT
            a.f = float(old[0]) + 0.5
        elif kind == "s":
            a.type = AttributeProto.STRING
            a.s = r.choice((b"SAME_UPPER", b"VALID", b"NOTSET", b"\xff\xfe", b"", b"1"))
        elif kind == "ints_str":
            a.type = AttributeProto.STRINGS
            a.strings.extend(str(v).encode() for v in old)
        else:
            a.type = AttributeProto.INT
            a.i = old[0] if old else 0
        return f"node {n.name}: attribute {a.name} -> {kind}"
    if what < 0.35:
        a.name = r.choice(("Group", "kernel", "", a.name + "_", "pads"))
        return f"node {n.name}: attribute renamed to {a.name!r}"
    if a.type == AttributeProto.INTS:
        sub = r.random()
        if a.ints and sub < 0.6:
            i = r.randrange(len(a.ints))
            a.ints[i] = _edge_int(r, a.ints[i])
            return f"node {n.name}: {a.name}[{i}] -> {a.ints[i]}"
        if a.ints and sub < 0.8:
            del a.ints[r.randrange(len(a.ints))]
            return f"node {n.name}: {a.name} shortened"
        a.ints.append(_edge_int(r))
        return f"node {n.name}: {a.name} lengthened"
    if a.type == AttributeProto.INT:
        a.i = _edge_int(r, a.i)
        return f"node {n.name}: {a.name} -> {a.i}"
    if a.type == AttributeProto.FLOAT:
        a.f = r.choice(_EDGE_FLOATS)
        return f"node {n.name}: {a.name} -> {a.f}"
    if a.type == AttributeProto.STRING:
        a.s = r.choice((b"SAME_UPPER", b"SAME_LOWER", b"VALID", b"NOTSET", b"same", b""))
        return f"node {n.name}: {a.name} -> {a.s!r}"
    a.type = AttributeProto.INT
    a.i = _edge_int(r)
    return f"node {n.name}: {a.name} -> int {a.i}"


def _m_op(m: onnx.ModelProto, r: random.Random) -> str:
    n = r.choice(m.graph.node)
    if r.random() < 0.85:
        old, n.op_type = n.op_type, r.choice(_OP_TYPES)
        return f"node {n.name}: op_type {old} -> {n.op_type!r}"
    n.domain = r.choice(_DOMAINS)
    return f"node {n.name}: domain -> {n.domain!r}"


def _m_edges(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    n = r.choice(g.node)
    names = _tensor_names(g)
    what = r.random()
    if what < 0.25 and n.input:
        i = r.randrange(len(n.input))
        n.input[i] = r.choice(names + ["", "missing_tensor", n.input[i] + "x"])
        return f"node {n.name}: input[{i}] -> {n.input[i]!r}"
    if what < 0.45 and n.input:
        i = r.randrange(len(n.input))
        del n.input[i]
        return f"node {n.name}: input[{i}] dropped"
    if what < 0.55:
        n.input.append(r.choice(names + [""]))
        return f"node {n.name}: extra input {n.input[-1]!r}"
    if what < 0.75 and n.output:
        i = r.randrange(len(n.output))
        n.output[i] = r.choice(names + ["", "fresh_name"])
        return f"node {n.name}: output[{i}] -> {n.output[i]!r}"
    if what < 0.85 and n.output:
        del n.output[r.randrange(len(n.output))]
        return f"node {n.name}: output dropped"
    n.output.append(r.choice(("mask_out", n.output[0] if n.output else "", "")))
    return f"node {n.name}: extra output {n.output[-1]!r}"


def _m_payload(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    if not g.initializer:
        return "no initializer"
    t = r.choice(g.initializer)
    what = r.random()
    if what < 0.3 and t.raw_data:
        k = r.randrange(len(t.raw_data))
        t.raw_data = t.raw_data[:k]
        return f"initializer {t.name}: raw_data truncated to {k}"
    if what < 0.5 and t.raw_data:
        t.raw_data = t.raw_data + bytes(r.randrange(256) for _ in range(r.choice((1, 2, 4, 64))))
        return f"initializer {t.name}: raw_data extended"
    if what < 0.6:
        t.ClearField("raw_data")
        return f"initializer {t.name}: raw_data cleared"
    if what < 0.7 and t.raw_data:
        # Payload moved into float_data (valid for FLOAT when lengths agree).
        raw = t.raw_data
        t.ClearField("raw_data")
        t.float_data.extend(struct.unpack(f"<{len(raw) // 4}f", raw[: len(raw) // 4 * 4]))
        return f"initializer {t.name}: raw_data -> float_data"
    if what < 0.8:
        t.name = r.choice(("", "data_0", g.initializer[0].name, t.name + "_renamed"))
        return f"initializer renamed to {t.name!r}"
    if what < 0.9:
        g.initializer.remove(t)
        return f"initializer {t.name} removed"
    t.data_location = TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", r.choice(("../../etc/passwd", "/etc/passwd", "w.bin",
                                                   "sub/../../x"))
    return f"initializer {t.name}: external data {entry.value!r}"


def _m_dtype(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    if r.random() < 0.55 and g.initializer:
        t = r.choice(g.initializer)
        t.data_type = r.choice(_DTYPES)
        return f"initializer {t.name}: data_type -> {t.data_type}"
    vis = list(g.input) + list(g.output)
    vi = r.choice(vis)
    vi.type.tensor_type.elem_type = r.choice(_DTYPES)
    return f"{vi.name}: elem_type -> {vi.type.tensor_type.elem_type}"


def _m_versions(m: onnx.ModelProto, r: random.Random) -> str:
    what = r.random()
    if what < 0.55 and m.opset_import:
        op = r.choice(m.opset_import)
        op.version = r.choice(_OPSETS)
        return f"opset {op.domain!r} -> {op.version}"
    if what < 0.7:
        op = m.opset_import.add()
        op.domain = r.choice(("com.microsoft", "", "ai.onnx", "x"))
        op.version = r.choice(_OPSETS)
        return f"extra opset {op.domain!r} {op.version}"
    if what < 0.8:
        m.ClearField("opset_import")
        return "opset_import cleared"
    m.ir_version = r.choice(_IR_VERSIONS)
    return f"ir_version -> {m.ir_version}"


def _m_order(m: onnx.ModelProto, r: random.Random) -> str:
    nodes = list(m.graph.node)
    if len(nodes) < 2:
        return "too few nodes"
    if r.random() < 0.3:
        r.shuffle(nodes)
        desc = "nodes shuffled"
    else:
        i = r.randrange(len(nodes) - 1)
        j = r.randrange(i + 1, min(len(nodes), i + 4))
        nodes[i], nodes[j] = nodes[j], nodes[i]
        desc = f"nodes {i} and {j} swapped"
    m.graph.ClearField("node")
    m.graph.node.extend(nodes)
    return desc


def _m_graph(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    what = r.random()
    if what < 0.25 and g.input:
        vi = r.choice(g.input)
        g.input.remove(vi)
        return f"graph input {vi.name} removed"
    if what < 0.35 and g.output:
        vi = r.choice(g.output)
        g.output.remove(vi)
        return f"graph output {vi.name} removed"
    if what < 0.55:
        # Expose an intermediate tensor as an extra graph output (valid ONNX).
        outs = [o for n in g.node for o in n.output if o]
        name = r.choice(outs)
        vi = g.output.add()
        vi.name = name
        if r.random() < 0.5:
            vi.type.tensor_type.elem_type = g.input[0].type.tensor_type.elem_type if g.input \
                else TensorProto.FLOAT
        return f"graph output {name} added"
    if what < 0.65 and g.input:
        vi = g.input.add()
        vi.CopyFrom(g.input[0])
        vi.name = r.choice((g.input[0].name, "extra_in", g.initializer[0].name
                            if g.initializer else "w"))
        return f"graph input {vi.name} added"
    if what < 0.85:
        n = r.choice(g.node)
        g.node.remove(n)
        return f"node {n.name} ({n.op_type}) removed"
    i = r.randrange(len(g.node))
    dup = g.node.add()
    dup.CopyFrom(g.node[i])
    if r.random() < 0.5:
        dup.output[:] = [o + "_dup" for o in dup.output]
    return f"node {g.node[i].name} duplicated"


# ----------------------------------------------------------------------------------------
# Semantic mutations: changes that mostly keep the model valid, so the case reaches code
# generation and is compared with onnxruntime (structural ones mostly test rejection).

_FLOAT_NP = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16}


def _float_type(m: onnx.ModelProto) -> int:
    for vi in m.graph.input:
        t = vi.type.tensor_type.elem_type
        if t in _FLOAT_NP:
            return t
    return TensorProto.FLOAT


def _opset(m: onnx.ModelProto) -> int:
    for op in m.opset_import:
        if op.domain in ("", "ai.onnx"):
            return op.version
    return 0


def _set_attr(n: onnx.NodeProto, name: str, value: object) -> None:
    for a in list(n.attribute):
        if a.name == name:
            n.attribute.remove(a)
    if value is not None:
        n.attribute.append(helper.make_attribute(name, value))


def _get_attr(n: onnx.NodeProto, name: str, default: object = None) -> object:
    for a in n.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _const(m: onnx.ModelProto, r: random.Random, prefix: str, value: np.ndarray,
           dtype: object = None) -> str:
    name = f"{prefix}_{r.randrange(1 << 30)}"
    m.graph.initializer.append(numpy_helper.from_array(
        np.asarray(value, dtype or _FLOAT_NP[_float_type(m)]), name))
    return name


def _s_attr(m: onnx.ModelProto, r: random.Random) -> str:
    kinds = ("Conv", "MaxPool", "AveragePool", "Concat", "Softmax", "LogSoftmax")
    nodes = [n for n in m.graph.node if n.op_type in kinds]
    if not nodes:
        return "no candidate node"
    n = r.choice(nodes)
    if n.op_type == "Concat":
        _set_attr(n, "axis", r.choice((0, 1, 2, 3, -1, -3)))
        return f"{n.name}: axis -> {_get_attr(n, 'axis')}"
    if n.op_type in ("Softmax", "LogSoftmax"):
        _set_attr(n, "axis", r.choice((-1, 0, 1, 2, 3)))
        return f"{n.name}: axis -> {_get_attr(n, 'axis')}"
    kernel = list(_get_attr(n, "kernel_shape", [1, 1]))
    field = r.choice(("strides", "pads", "dilations", "auto_pad", "ceil_mode", "kernel_shape"))
    if field == "strides":
        _set_attr(n, "strides", [r.choice((1, 2, 3))] * 2 if r.random() < 0.7
                  else [r.choice((1, 2)), r.choice((1, 3))])
    elif field == "pads":
        lim = max(kernel) if n.op_type == "Conv" else min(kernel)
        _set_attr(n, "pads", [r.randrange(lim) for _ in range(4)])
        _set_attr(n, "auto_pad", None)
    elif field == "dilations":
        if (n.op_type == "AveragePool" and _opset(m) < 19) or \
                (n.op_type == "MaxPool" and _opset(m) < 10):
            return f"{n.name}: no dilations at this opset"
        _set_attr(n, "dilations", [r.choice((1, 2))] * 2)
    elif field == "auto_pad":
        _set_attr(n, "pads", None)
        _set_attr(n, "auto_pad", r.choice(("SAME_UPPER", "SAME_LOWER", "VALID")))
    elif field == "ceil_mode":
        if n.op_type == "Conv" or _opset(m) < 10:
            return f"{n.name}: no ceil_mode"
        _set_attr(n, "ceil_mode", int(not _get_attr(n, "ceil_mode", 0)))
    else:
        if n.op_type == "Conv":
            return f"{n.name}: conv kernel kept"
        _set_attr(n, "kernel_shape", [r.choice((1, 2, 3))] * 2)
        _set_attr(n, "pads", None)
    return f"{n.name}: {field} -> {_get_attr(n, field)}"


def _s_swap(m: onnx.ModelProto, r: random.Random) -> str:
    groups = (("Relu", "LeakyRelu", "Identity", "Dropout", "Clip", "Softmax", "LogSoftmax"),
              ("MaxPool", "AveragePool"), ("GlobalAveragePool", "GlobalMaxPool"),
              ("Softmax", "LogSoftmax"))
    nodes = [n for n in m.graph.node if any(n.op_type in g for g in groups)]
    if not nodes:
        return "no candidate node"
    n = r.choice(nodes)
    group = next(g for g in groups if n.op_type in g)
    old, n.op_type = n.op_type, r.choice(group)
    for a in list(n.attribute):
        if n.op_type in ("Relu", "Identity", "Clip", "LeakyRelu", "Dropout",
                         "GlobalAveragePool", "GlobalMaxPool") or a.name == "axis":
            n.attribute.remove(a)
    if n.op_type == "Dropout" and _opset(m) < 12 and r.random() < 0.5:
        _set_attr(n, "ratio", 0.3)
    if n.op_type == "LeakyRelu":
        _set_attr(n, "alpha", r.choice((0.01, 0.2, -0.5, 2.0)))
    if n.op_type == "Clip":
        lo, hi = r.choice(((0.0, 6.0), (-1.0, 1.0), (0.5, 0.25)))
        if _opset(m) >= 11:
            del n.input[1:]
            n.input.extend([_const(m, r, "clip_min", lo), _const(m, r, "clip_max", hi)])
        else:
            _set_attr(n, "min", lo)
            _set_attr(n, "max", hi)
    if n.op_type in ("Softmax", "LogSoftmax"):
        _set_attr(n, "axis", 1)
    if n.op_type == "AveragePool" and r.random() < 0.5:
        _set_attr(n, "count_include_pad", 1)
    return f"{n.name}: {old} -> {n.op_type}"


def _shapes(m: onnx.ModelProto) -> dict[str, list[int]]:
    inferred = onnx.shape_inference.infer_shapes(m)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
    return out


def _s_insert(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    outs = {o.name for o in g.output}
    cands = [o for n in g.node for o in n.output if o and o not in outs]
    if not cands:
        return "no candidate tensor"
    t = r.choice(cands)
    shape = _shapes(m).get(t, [])
    t2 = t + "_ins"
    op = r.choice(("Relu", "Identity", "Mul", "Add", "Sub", "Div", "BatchNormalization",
                   "Transpose", "Flatten+Reshape", "Clip"))
    if op in ("Mul", "Add", "Sub", "Div"):
        c = r.choice((0.5, -1.0, 2.0, 1e-3)) if r.random() < 0.5 or len(shape) != 4 or \
            shape[1] < 1 else np.linspace(0.5, 1.5, shape[1]).reshape(1, -1, 1, 1)
        new = [helper.make_node(op, [t, _const(m, r, "k", c)], [t2], name=f"ins_{op}")]
    elif op == "BatchNormalization":
        if len(shape) != 4 or shape[1] < 1:
            return "no channel count for BatchNormalization"
        ch = shape[1]
        rng = np.random.default_rng(r.randrange(1 << 30))
        ins = [t] + [_const(m, r, nm, v) for nm, v in (
            ("bn_scale", rng.uniform(0.5, 1.5, ch)), ("bn_bias", rng.normal(0, 0.1, ch)),
            ("bn_mean", rng.normal(0, 0.1, ch)), ("bn_var", rng.uniform(0.5, 2.0, ch)))]
        new = [helper.make_node(op, ins, [t2], name="ins_bn", epsilon=1e-5)]
    elif op == "Transpose":
        if len(shape) != 4 or shape[2] != shape[3]:
            return "no square tensor for Transpose"
        new = [helper.make_node(op, [t], [t2], name="ins_tr", perm=[0, 1, 3, 2])]
    elif op == "Flatten+Reshape":
        if len(shape) != 4 or min(shape[1:]) < 1 or _opset(m) < 5:
            return "no static shape for Reshape"
        sh = _const(m, r, "shape", np.array([-1, *shape[1:]], np.int64), np.int64)
        new = [helper.make_node("Flatten", [t], [t + "_flat"], name="ins_flatten", axis=1),
               helper.make_node("Reshape", [t + "_flat", sh], [t2], name="ins_reshape")]
    elif op == "Clip":
        if _opset(m) >= 11:
            new = [helper.make_node(op, [t, _const(m, r, "lo", 0.0), _const(m, r, "hi", 6.0)],
                                    [t2], name="ins_clip")]
        else:
            new = [helper.make_node(op, [t], [t2], name="ins_clip", min=0.0, max=6.0)]
    else:
        new = [helper.make_node(op, [t], [t2], name=f"ins_{op}")]
    nodes = list(g.node)
    for n in nodes:
        n.input[:] = [t2 if i == t else i for i in n.input]
    pos = next(i for i, n in enumerate(nodes) if t in n.output) + 1
    nodes[pos:pos] = new
    g.ClearField("node")
    g.node.extend(nodes)
    return f"inserted {op} after {t}"


def _s_shape(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    inits = {t.name for t in g.initializer}
    data = [vi for vi in g.input if vi.name not in inits]
    if not data:
        return "no data input"
    dims = data[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return "input is not 4-d"
    what = r.random()
    if what < 0.6:
        old = dims[2].dim_value
        new = r.randrange(max(8, old // 2), old + old // 2 + 2)
        dims[2].dim_value = new
        dims[3].dim_value = new if r.random() < 0.7 else r.randrange(max(8, old // 2), old + 2)
        return f"input spatial size {old} -> {dims[2].dim_value}x{dims[3].dim_value}"
    batch: int | str = r.choice((2, 3, "N"))
    for vi in data + list(g.output):
        d = vi.type.tensor_type.shape.dim
        if d:
            if isinstance(batch, int):
                d[0].dim_value = batch
            else:
                d[0].dim_param = batch
    return f"batch -> {batch}"


def _s_weights(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    ts = [t for t in g.initializer if t.data_type in _FLOAT_NP and t.raw_data]
    if not ts:
        return "no float initializer"
    t = r.choice(ts)
    arr = numpy_helper.to_array(t).copy()
    flat = arr.reshape(-1)
    vals = (np.nan, np.inf, -np.inf, 1e30, 0.0, -0.0, 1e-40, 65504.0, 1e4)
    picked = []
    with np.errstate(over="ignore"):
        for _ in range(r.choice((1, 2, 5))):
            v = r.choice(vals)
            flat[r.randrange(flat.size)] = v
            picked.append(v)
    with np.errstate(over="ignore"):
        t.raw_data = arr.astype(_FLOAT_NP[t.data_type]).tobytes()
    return f"initializer {t.name}: set {picked}"


def _s_output(m: onnx.ModelProto, r: random.Random) -> str:
    g = m.graph
    have = {o.name for o in g.output}
    cands = [o for n in g.node for o in n.output if o and o not in have]
    if not cands:
        return "no candidate tensor"
    name = r.choice(cands)
    shape = _shapes(m).get(name)
    if shape is None:
        return f"no inferred shape for {name}"
    dims = [d if d >= 0 else "N" for d in shape]
    g.output.append(helper.make_tensor_value_info(name, _float_type(m), dims))
    return f"graph output {name} added"


SEMANTIC_MUTATORS = {
    "s-attr": _s_attr, "s-swap": _s_swap, "s-insert": _s_insert, "s-shape": _s_shape,
    "s-weights": _s_weights, "s-output": _s_output,
}


PROTO_MUTATORS = {
    "dim": _m_dim, "attr": _m_attr, "op": _m_op, "edges": _m_edges, "payload": _m_payload,
    "dtype": _m_dtype, "versions": _m_versions, "order": _m_order, "graph": _m_graph,
}


def _structure_span(data: bytes, m: onnx.ModelProto) -> int:
    """Bytes before the first initializer payload (nodes come first on the wire)."""
    for t in m.graph.initializer:
        if t.raw_data:
            k = data.find(t.raw_data[:16])
            if k > 0:
                return k
    return len(data)


def _mutate_bytes(data: bytes, m: onnx.ModelProto, r: random.Random) -> tuple[bytes, str]:
    buf = bytearray(data)
    span = _structure_span(data, m)

    def pos() -> int:
        return r.randrange(span if r.random() < 0.6 else len(buf))

    what = r.random()
    if what < 0.4:
        k = r.choice((1, 1, 2, 4, 16))
        for _ in range(k):
            p = pos()
            buf[p] ^= 1 << r.randrange(8)
        return bytes(buf), f"{k} bit flip(s)"
    if what < 0.6:
        for _ in range(r.choice((1, 2, 8))):
            buf[pos()] = r.choice((0x00, 0xFF, 0x7F, 0x80, r.randrange(256)))
        return bytes(buf), "bytes overwritten"
    if what < 0.7:
        p = pos()
        buf[p:p] = bytes(r.randrange(256) for _ in range(r.choice((1, 3, 10))))
        return bytes(buf), f"bytes inserted at {p}"
    if what < 0.8:
        p = pos()
        del buf[p:p + r.choice((1, 2, 7, 100))]
        return bytes(buf), f"bytes deleted at {p}"
    k = r.randrange(len(buf))
    return bytes(buf[:k]), f"truncated to {k} bytes"


def mutate(base: bytes, seed: int) -> tuple[bytes, str]:
    """A deterministic mutant of the serialized model ``base`` for ``seed``."""
    r = random.Random(seed)
    m = onnx.ModelProto()
    m.ParseFromString(base)
    what = r.random()
    if what < 0.2:
        return _mutate_bytes(base, m, r)
    table = SEMANTIC_MUTATORS if what < 0.6 else PROTO_MUTATORS
    names = sorted(table)
    descs = []
    for _ in range(r.choice((1, 1, 1, 2, 3))):
        kind = r.choice(names)
        descs.append(f"{kind}: {table[kind](m, r)}")
    return m.SerializeToString(), "; ".join(descs)
