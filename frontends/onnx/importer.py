"""ONNX -> IR: fix input shapes, run shape inference, convert node by node.

The importer owns three decisions the rest of sqzc relies on:

* **Static shapes.** Every tensor in the IR has a concrete shape. A symbolic leading
  (batch) dimension is compiled at 1 and the generated library loops over the batch, which
  is valid only for batch-separable graphs (checked by ``check_batch_separable``). Any
  other symbolic dimension must be fixed by the user (``--input-shape``).
* **float16 at the boundary.** float16 tensors are converted to float32 where a float op
  consumes them; graph outputs declared float16 are converted back.
* **Shape arithmetic disappears.** Nodes computing on integer constants (PyTorch's
  Shape/Gather/Unsqueeze/Concat heads) are evaluated here with ``onnx.reference``, so the
  IR never holds int64 shape math.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from sqzc.errors import ModelError, UnsupportedError
from sqzc.frontends.onnx.converters import CONVERTERS, FOLD_ONLY, select_converter
from sqzc.frontends.onnx.loader import MAX_TENSOR_ELEMENTS, read_model
from sqzc.ir import Graph, GraphOutput
from sqzc.ops import BINARY, NoAttrs, OpKind, TensorType

#: ONNX element types the IR accepts at the model boundary and for constants.
ONNX_DTYPES: dict[int, str] = {
    onnx.TensorProto.FLOAT: "float32",
    onnx.TensorProto.FLOAT16: "float16",
    onnx.TensorProto.DOUBLE: "float64",
    onnx.TensorProto.INT64: "int64",
    onnx.TensorProto.INT32: "int32",
    onnx.TensorProto.INT8: "int8",
    onnx.TensorProto.UINT8: "uint8",
    onnx.TensorProto.BOOL: "bool",
}
#: dtypes a compiled library can take or return.
BOUNDARY_DTYPES = frozenset({"float32", "float16", "uint8", "int8", "int32"})


@dataclass
class ImportOptions:
    """What the user fixed at import: input shapes by ONNX input name."""

    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)


@dataclass
class ImportContext:
    """State while converting one model; converters read inputs and emit ops through it."""

    graph: Graph
    model_label: str
    opsets: dict[str, int]
    values: dict[str, str] = field(default_factory=dict)  # ONNX tensor name -> node id
    used: set[str] = field(default_factory=set)  # tensor names read by a node or output
    node: onnx.NodeProto | None = None

    # -------- node-local helpers used by converters

    @property
    def where(self) -> str:
        """``node 'name' (Op)`` for messages about the node being converted."""
        n = self.node
        assert n is not None
        return f"node '{node_label(n)}' ({n.op_type})"

    @property
    def origin(self) -> tuple[str, ...]:
        assert self.node is not None
        return (node_label(self.node),)

    def error(self, msg: str) -> ModelError:
        """A ModelError about the current node."""
        return ModelError(f"{self.model_label}: {msg} at {self.where}")

    def unsupported(self, msg: str) -> UnsupportedError:
        """An UnsupportedError about the current node."""
        return UnsupportedError(f"{self.model_label}: {msg} at {self.where}")

    def output_used(self, i: int) -> bool:
        """True if output ``i`` of the current node is read by anything."""
        assert self.node is not None
        return i < len(self.node.output) and self.node.output[i] in self.used

    def has_input(self, i: int) -> bool:
        """True if optional input ``i`` is present (non-empty name)."""
        assert self.node is not None
        return i < len(self.node.input) and self.node.input[i] != ""

    def input(self, i: int) -> str:
        """Node id of input ``i`` (raises if missing)."""
        assert self.node is not None
        if not self.has_input(i):
            raise self.error(f"missing required input {i}")
        name = self.node.input[i]
        if name not in self.values:
            raise self.error(f"input '{name}' is not produced by any node or initializer")
        return self.values[name]

    def float_input(self, i: int) -> str:
        """Input ``i`` as float32 (float16 is widened with a Cast the folder may remove)."""
        nid = self.input(i)
        dtype = self.graph.op(nid).out.dtype
        if dtype == "float32":
            return nid
        if dtype == "float16":
            return self.emit(OpKind.CAST, _cast_attrs("float32"), [nid], name=f"{nid}_f32")
        raise self.unsupported(f"dtype {dtype} for input {i} (sqzc computes float ops in float32)")

    def const(self, i: int) -> np.ndarray:
        """The compile-time value of input ``i``; a runtime tensor here is unsupported."""
        nid = self.input(i)
        if not self.graph.is_const(nid):
            raise self.unsupported(f"input {i} ('{self.node.input[i]}') must be a constant")  # type: ignore[union-attr]
        return self.graph.const_value(nid)

    def type_of(self, nid: str) -> TensorType:
        """The IR type of node ``nid``."""
        return self.graph.op(nid).out

    def attr(self, name: str, default: object = None) -> object:
        """The value of attribute ``name`` of the current node (or ``default``)."""
        assert self.node is not None
        for a in self.node.attribute:
            if a.name == name:
                try:
                    return onnx.helper.get_attribute_value(a)
                except Exception:
                    raise self.error(f"attribute '{name}' is malformed") from None
        return default

    def ints(self, name: str, default: Sequence[int] | None = None) -> tuple[int, ...] | None:
        """An integer-list attribute, type-checked."""
        v = self.attr(name, None)
        if v is None:
            return None if default is None else tuple(default)
        if not isinstance(v, list | tuple) or not all(isinstance(x, int) for x in v):
            raise self.error(f"attribute '{name}' must be a list of ints, got {v!r}")
        return tuple(int(x) for x in v)

    def int_attr(self, name: str, default: int) -> int:
        """An integer attribute, type-checked."""
        v = self.attr(name, default)
        if not isinstance(v, int):
            raise self.error(f"attribute '{name}' must be an int, got {v!r}")
        return int(v)

    def float_attr(self, name: str, default: float) -> float:
        """A float attribute, type-checked."""
        v = self.attr(name, default)
        if not isinstance(v, int | float):
            raise self.error(f"attribute '{name}' must be a float, got {v!r}")
        return float(v)

    def emit(self, kind: OpKind, attrs: object, inputs: Sequence[str], name: str | None = None) -> str:
        """Add an IR op for the current node; its type comes from the kind's shape rule."""
        assert self.node is not None
        hint = name or (self.node.output[0] if self.node.output else self.node.op_type)
        try:
            return self.graph.add_op(kind, attrs, inputs, hint, self.origin)
        except ModelError as e:
            raise ModelError(f"{self.model_label}: {e}") from None

    def emit_const(self, value: np.ndarray, name: str) -> str:
        """Add a constant created by a converter."""
        return self.graph.add_const(value, name, self.origin)

    def bind(self, i: int, nid: str) -> None:
        """Make ONNX output ``i`` of the current node refer to node ``nid``."""
        assert self.node is not None
        self.values[self.node.output[i]] = nid
        if not self.graph.is_const(nid):
            self.graph.tensor_names[nid] = self.node.output[i]

    def rank_axis(self, axis: int, rank: int) -> int:
        """Normalize a possibly negative axis, or raise naming the node."""
        if not -rank <= axis < rank:
            raise self.error(f"axis {axis} out of range for rank {rank}")
        return axis % rank


def _cast_attrs(to: str) -> object:
    from sqzc.ops import CastAttrs

    return CastAttrs(to)


def _text(v: object) -> str:
    """A protobuf string field as text (the upb backend returns bytes for invalid UTF-8)."""
    return v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v)


def node_label(node: onnx.NodeProto) -> str:
    """A node's name, or a stand-in built from its first output when it has none."""
    if node.name:
        return _text(node.name)
    return f"{_text(node.op_type)}->{_text(node.output[0])}" if node.output else \
        _text(node.op_type)


def inference_message(text: str) -> str:
    """The informative line of an onnx shape-inference error (the one naming the node)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    for ln in lines:  # onnx reports the failing node first, then the nodes it reached
        if "node name" in ln or "op_type" in ln:
            return ln
    return lines[0] if lines else "unknown error"


def model_opsets(model: onnx.ModelProto) -> dict[str, int]:
    """Opset version per domain ('' is the default ONNX domain)."""
    opsets = {}
    for imp in model.opset_import:
        dom = "" if imp.domain in ("", "ai.onnx") else imp.domain
        opsets[dom] = int(imp.version)
    if not model.opset_import:
        opsets[""] = 1
    return opsets


def find_unsupported(model: onnx.ModelProto, label: str, opsets: dict[str, int]) -> None:
    """Raise one UnsupportedError listing every node sqzc cannot convert."""
    problems = []
    for node in model.graph.node:
        dom = "" if node.domain in ("", "ai.onnx") else node.domain
        if dom not in opsets:
            problems.append(f"op '{node.op_type}' at node '{node_label(node)}' uses domain "
                            f"'{dom}' which the model does not import")
            continue
        if select_converter(dom, node.op_type, opsets[dom]) is None:
            shown = node.op_type if not dom else f"{dom}:{node.op_type}"
            problems.append(f"unsupported op '{shown}' at node '{node_label(node)}' "
                            f"(opset {opsets[dom]})")
    if problems:
        if len(problems) == 1:
            raise UnsupportedError(f"{label}: {problems[0]}")
        listing = "\n  ".join(problems)
        raise UnsupportedError(f"{label}: {len(problems)} unsupported constructs:\n  {listing}")


def _value_info_dims(vi: onnx.ValueInfoProto) -> list[int | str | None]:
    dims: list[int | str | None] = []
    for d in vi.type.tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param"):
            dims.append(d.dim_param)
        elif d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(None)
    return dims


def fix_input_shapes(model: onnx.ModelProto, inputs: list[onnx.ValueInfoProto], label: str,
                     user_shapes: Mapping[str, Sequence[int]]) -> bool:
    """Give every graph input a static shape (batch 1 for a symbolic batch dim).

    Returns True if the model has a dynamic batch dimension.
    """
    names = {vi.name for vi in inputs}
    for name in user_shapes:
        if name not in names:
            raise ModelError(f"{label}: --input-shape names '{name}', but the model inputs are "
                             f"{sorted(names)}")
    dynamic = []
    for vi in inputs:
        if not vi.type.HasField("tensor_type"):
            raise ModelError(f"{label}: input '{vi.name}' is not a tensor")
        tt = vi.type.tensor_type
        if not tt.HasField("shape"):
            if vi.name not in user_shapes:
                raise ModelError(f"{label}: input '{vi.name}' has no shape; give one with "
                                 f"--input-shape {vi.name}=1x3x224x224")
        if vi.name in user_shapes:
            shape = [int(d) for d in user_shapes[vi.name]]
            if any(d < 1 for d in shape):
                raise ModelError(f"{label}: --input-shape for '{vi.name}' has a dim < 1")
            old = _value_info_dims(vi)
            if tt.HasField("shape") and len(old) != len(shape):
                raise ModelError(f"{label}: --input-shape for '{vi.name}' has rank {len(shape)},"
                                 f" the model says {len(old)}")
            for i, (o, n) in enumerate(zip(old, shape)):
                if isinstance(o, int) and o > 0 and o != n:
                    raise ModelError(f"{label}: --input-shape for '{vi.name}' sets dim {i} to "
                                     f"{n}, the model fixes it to {o}")
            tt.ClearField("shape")
            tt.shape.dim.extend([onnx.TensorShapeProto.Dimension(dim_value=d) for d in shape])
            dynamic.append(False)
            continue
        dims = _value_info_dims(vi)
        for i, d in enumerate(dims):
            if isinstance(d, int) and d > 0:
                continue
            if isinstance(d, int) and d <= 0 and d is not None:
                raise UnsupportedError(f"{label}: input '{vi.name}' dim {i} is {d}: zero-sized "
                                       "and negative dimensions are not supported")
            if i == 0 and len(dims) > 1:
                continue
            raise ModelError(f"{label}: input '{vi.name}' dim {i} is symbolic ({d!r}); fix it "
                             f"with --input-shape {vi.name}=" + "x".join(
                                 str(x) if isinstance(x, int) and x > 0 else "?" for x in dims))
        is_dyn = len(dims) > 1 and not (isinstance(dims[0], int) and dims[0] > 0)
        dynamic.append(is_dyn)
        if is_dyn:
            tt.shape.dim[0].Clear()
            tt.shape.dim[0].dim_value = 1
    if any(dynamic) and not all(dynamic):
        raise ModelError(f"{label}: some inputs have a symbolic batch dim and some a fixed one; "
                         "fix all with --input-shape")
    return bool(dynamic) and all(dynamic)


def _tensor_dtype(elem_type: int, what: str, label: str) -> str:
    if elem_type not in ONNX_DTYPES:
        name = onnx.TensorProto.DataType.Name(elem_type) if elem_type in \
            onnx.TensorProto.DataType.values() else str(elem_type)
        raise UnsupportedError(f"{label}: {what} has unsupported dtype {name}")
    return ONNX_DTYPES[elem_type]


def import_model(path: str | os.PathLike[str], options: ImportOptions | None = None) -> Graph:
    """Read ``path`` and convert it into an IR ``Graph`` with static shapes."""
    label = str(path)
    return import_proto(read_model(path), label, options, Path(path).stem)


def import_proto(model: onnx.ModelProto, label: str, options: ImportOptions | None = None,
                 fallback_name: str = "model") -> Graph:
    """Convert an already-checked ``ModelProto`` (see ``import_model``)."""
    options = options or ImportOptions()
    opsets = model_opsets(model)
    find_unsupported(model, label, opsets)
    init_names = {t.name for t in model.graph.initializer}
    real_inputs = [vi for vi in model.graph.input if vi.name not in init_names]
    symbolic = model
    if any(vi.name not in options.input_shapes for vi in real_inputs):
        symbolic = onnx.ModelProto()
        symbolic.CopyFrom(model)  # keeps the symbolic batch for check_leading_dims_symbolic
    dynamic = fix_input_shapes(model, real_inputs, label, options.input_shapes)
    try:
        model = onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except Exception as e:
        raise ModelError(f"{label}: shape inference failed: {inference_message(str(e))}") \
            from None

    graph = Graph(model.graph.name or fallback_name)
    graph.dynamic_batch = dynamic
    cx = ImportContext(graph, label, opsets)
    cx.used = {name for node in model.graph.node for name in node.input if name}
    cx.used |= {vo.name for vo in model.graph.output}
    for vi in real_inputs:
        dtype = _tensor_dtype(vi.type.tensor_type.elem_type, f"input '{vi.name}'", label)
        if dtype not in BOUNDARY_DTYPES:
            raise UnsupportedError(f"{label}: input '{vi.name}' has dtype {dtype}; compiled "
                                   f"models take {sorted(BOUNDARY_DTYPES)}")
        shape = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
        cx.values[vi.name] = graph.add_input(vi.name, TensorType(shape, dtype))
        graph.tensor_names[cx.values[vi.name]] = vi.name
    seen: set[str] = set()
    for t in model.graph.initializer:
        if t.name in seen:
            raise ModelError(f"{label}: duplicate initializer '{t.name}'")
        seen.add(t.name)
        cx.values[t.name] = graph.add_const(_tensor_value(t, label), t.name, (t.name,))
    produced: set[str] = set(cx.values)
    for node in model.graph.node:
        for out in node.output:
            if out and out in produced:
                raise ModelError(f"{label}: tensor '{out}' is produced twice "
                                 f"(again by node '{node_label(node)}')")
            produced.add(out)
        cx.node = node
        convert_node(cx, node)
    cx.node = None

    for vo in model.graph.output:
        if vo.name not in cx.values:
            raise ModelError(f"{label}: graph output '{vo.name}' is not produced by any node")
        nid = cx.values[vo.name]
        want = _tensor_dtype(vo.type.tensor_type.elem_type, f"output '{vo.name}'", label)
        have = graph.op(nid).out.dtype
        if want not in BOUNDARY_DTYPES:
            raise UnsupportedError(f"{label}: output '{vo.name}' has dtype {want}; compiled "
                                   f"models return {sorted(BOUNDARY_DTYPES)}")
        if have != want:
            nid = graph.add_op(OpKind.CAST, _cast_attrs(want), [nid], f"{vo.name}_{want}",
                               (vo.name,))
        elif graph.op(nid).kind in (OpKind.INPUT, OpKind.CONST) or \
                nid in graph.output_nodes():
            # every output buffer needs a kernel that writes it
            nid = graph.add_op(OpKind.IDENTITY, NoAttrs(), [nid], f"{vo.name}_out", (vo.name,))
        graph.outputs.append(GraphOutput(vo.name, nid))
    if not graph.outputs:
        raise ModelError(f"{label}: model has no outputs")
    graph.remove_dead()
    if dynamic:
        check_leading_dims_symbolic(symbolic, label)
        check_batch_separable(graph, label)
    return graph


def _tensor_value(t: onnx.TensorProto, label: str) -> np.ndarray:
    dims = list(t.dims)
    if any(d < 0 for d in dims):
        raise ModelError(f"{label}: initializer '{t.name}' has a negative dim {dims}")
    n = int(np.prod(dims, dtype=object)) if dims else 1
    if n > MAX_TENSOR_ELEMENTS:
        raise ModelError(f"{label}: initializer '{t.name}' has {n} elements, above the limit "
                         f"{MAX_TENSOR_ELEMENTS}")
    _tensor_dtype(t.data_type, f"initializer '{t.name}'", label)
    try:
        value = numpy_helper.to_array(t)
    except Exception as e:
        raise ModelError(f"{label}: initializer '{t.name}' cannot be decoded: {e}") from None
    if value.size != n:
        raise ModelError(f"{label}: initializer '{t.name}' holds {value.size} values, its dims "
                         f"{dims} say {n}")
    return np.asarray(value)


def _all_inputs_const(cx: ImportContext, node: onnx.NodeProto) -> bool:
    return all(
        (not name) or (name in cx.values and cx.graph.is_const(cx.values[name]))
        for name in node.input
    )


def convert_node(cx: ImportContext, node: onnx.NodeProto) -> None:
    """Convert one ONNX node: fold integer shape arithmetic, else use the converter table."""
    dom = "" if node.domain in ("", "ai.onnx") else node.domain
    for name in node.input:
        if name and name not in cx.values:
            raise cx.error(f"input '{name}' is not produced by any node or initializer")
    if node.op_type in ("Shape", "Size") and dom == "":
        value = _shape_of(cx, node)
        cx.bind(0, cx.emit_const(value, node.output[0]))
        return
    if _all_inputs_const(cx, node) and (node.op_type in FOLD_ONLY or _integer_only(cx, node)):
        for i, value in enumerate(_evaluate(cx, node)):
            if i < len(node.output) and node.output[i]:
                cx.bind(i, cx.emit_const(value, node.output[i]))
        return
    if node.op_type in FOLD_ONLY and dom == "":
        raise cx.unsupported(f"'{node.op_type}' on a runtime tensor (sqzc folds it only when its "
                             "inputs are compile-time constants)")
    fn = select_converter(dom, node.op_type, cx.opsets[dom])
    assert fn is not None  # find_unsupported ran first
    fn(cx)


def _integer_only(cx: ImportContext, node: onnx.NodeProto) -> bool:
    dtypes = [cx.graph.op(cx.values[n]).out.dtype for n in node.input if n]
    return bool(dtypes) and all(d in ("int64", "int32", "bool") for d in dtypes)


def _shape_of(cx: ImportContext, node: onnx.NodeProto) -> np.ndarray:
    shape = cx.type_of(cx.input(0)).shape
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    rank = len(shape)
    start = cx.int_attr("start", 0)
    end = cx.int_attr("end", rank)
    start = min(max(start + rank if start < 0 else start, 0), rank)
    end = min(max(end + rank if end < 0 else end, 0), rank)
    return np.array(shape[start:end], dtype=np.int64)


def _evaluate(cx: ImportContext, node: onnx.NodeProto) -> list[np.ndarray]:
    """Evaluate a node on constant inputs with the ONNX reference implementation."""
    from onnx.reference import ReferenceEvaluator

    feeds = {name: cx.graph.const_value(cx.values[name]) for name in node.input if name}
    helper = onnx.helper
    try:
        graph = helper.make_graph(
            [node], "fold",
            [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
             for n, v in feeds.items()],
            [helper.make_empty_tensor_value_info(o) for o in node.output if o])
        model = helper.make_model(graph, opset_imports=[
            helper.make_opsetid(d, v) for d, v in cx.opsets.items()])
        outs = ReferenceEvaluator(model).run(None, feeds)
    except Exception as e:
        raise cx.error(f"cannot evaluate on constant inputs: {e}") from None
    result = []
    for v in outs:
        arr = np.asarray(np.asarray(v))
        if arr.size > MAX_TENSOR_ELEMENTS:
            raise cx.error(f"constant result of {arr.size} elements exceeds the limit")
        result.append(arr)
    return result





def check_leading_dims_symbolic(model: onnx.ModelProto, label: str) -> None:
    """Under a symbolic batch, no inferred activation may have a fixed leading dim.

    The graph is compiled at batch 1, so a literal ``Reshape(x, [1, -1])`` looks exactly
    like PyTorch's ``[N, -1]`` head; onnx shape inference with the batch kept symbolic
    tells them apart (it infers 1 for the first, the batch symbol for the second).
    """
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except Exception:
        return  # the strict inference of the fixed-shape model already vetted the graph
    init = {t.name for t in model.graph.initializer}
    reach = {vi.name for vi in model.graph.input if vi.name not in init}
    for node in model.graph.node:  # tensors computed from a graph input (not weights)
        if any(i in reach for i in node.input):
            reach.update(o for o in node.output if o)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name not in reach:
            continue
        tt = vi.type.tensor_type
        if not tt.HasField("shape") or not tt.shape.dim:
            continue
        d0 = tt.shape.dim[0]
        if d0.HasField("dim_value") and tt.elem_type in (onnx.TensorProto.FLOAT,
                                                         onnx.TensorProto.FLOAT16,
                                                         onnx.TensorProto.UINT8,
                                                         onnx.TensorProto.INT8):
            raise UnsupportedError(
                f"{label}: dynamic batch: tensor '{vi.name}' has a fixed leading dim "
                f"{d0.dim_value} (the graph mixes samples); fix the batch with --input-shape")


def check_batch_separable(graph: Graph, label: str) -> None:
    """Verify a graph compiled at batch 1 is valid for any batch N.

    The library runs the batch-1 program once per sample, which is exact when no op mixes
    samples: every runtime tensor keeps a leading batch axis of 1, no op reduces,
    normalizes, concatenates or moves that axis, and constants never broadcast along it.
    """
    for nid in graph.nodes():
        op = graph.op(nid)
        if op.kind in (OpKind.CONST, OpKind.INPUT):
            continue
        where = f"node '{op.origin_str}' ({op.kind.value})"
        shape = op.out.shape
        if not shape or shape[0] != 1:
            raise UnsupportedError(
                f"{label}: dynamic batch: {where} produces {op.out} without a leading batch "
                "axis; fix the batch with --input-shape")
        attrs = op.attrs
        axis_ops = {OpKind.CONCAT: "axis", OpKind.SOFTMAX: "axis"}
        if op.kind in axis_ops and getattr(attrs, axis_ops[op.kind]) == 0:
            raise UnsupportedError(f"{label}: dynamic batch: {where} works along the batch axis")
        if op.kind is OpKind.REDUCE and 0 in attrs.axes:  # type: ignore[attr-defined]
            raise UnsupportedError(f"{label}: dynamic batch: {where} reduces the batch axis")
        if op.kind is OpKind.TRANSPOSE and attrs.perm[0] != 0:  # type: ignore[attr-defined]
            raise UnsupportedError(f"{label}: dynamic batch: {where} moves the batch axis")
        for src in op.inputs:
            t = graph.op(src).out
            # a constant with the output's rank and a leading dim > 1 would be broadcast
            # along the batch (a rank-2 MatMul weight is not: its first dim is K)
            broadcasting = op.kind in BINARY or (op.kind is OpKind.MATMUL and len(shape) > 2)
            if broadcasting and graph.is_const(src) and len(t.shape) == len(shape) \
                    and t.shape and t.shape[0] != 1:
                raise UnsupportedError(f"{label}: dynamic batch: {where} broadcasts a constant "
                                       "along the batch axis")
            if not graph.is_const(src) and (not t.shape or t.shape[0] != 1):
                raise UnsupportedError(f"{label}: dynamic batch: {where} reads {t} without a "
                                       "leading batch axis")

__all__ = ["CONVERTERS", "ImportOptions", "check_batch_separable", "import_model", "import_proto",
           "node_label"]
