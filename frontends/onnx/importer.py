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
from sqzc.frontends.onnx.batch_shapes import (
    check_batch_separable,
    check_leading_dims_symbolic,
    fix_input_shapes,
)
from sqzc.frontends.onnx.context import ImportContext, node_label
from sqzc.frontends.onnx.converters import CONVERTERS, FOLD_ONLY, select_converter
from sqzc.frontends.onnx.quant_converters import check_contrib_signature
from sqzc.frontends.onnx.loader import MAX_TENSOR_ELEMENTS, read_model
from sqzc.ir import Graph, GraphOutput
from sqzc.ops import CastAttrs, NoAttrs, OpKind, TensorType

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
    # one value per byte, sign- / zero-extended (``ImportContext.nibbles`` keeps the width)
    onnx.TensorProto.INT4: "int8",
    onnx.TensorProto.UINT4: "uint8",
}
#: ONNX's 4-bit integer types -> their names at the library boundary.
NIBBLE_TYPES: dict[int, str] = {onnx.TensorProto.INT4: "int4", onnx.TensorProto.UINT4: "uint4"}
#: Ops that take or produce INT4/UINT4 tensors: the quantizers, and data movement, which
#: is exact on the 8-bit container (ONNX allows int4 for these).
NIBBLE_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "Identity", "Reshape",
                        "Flatten", "Squeeze", "Unsqueeze", "Transpose"})
#: dtypes a compiled library can take or return.
BOUNDARY_DTYPES = frozenset({"float32", "float16", "uint8", "int8", "int32"})


@dataclass
class ImportOptions:
    """What the user fixed at import: input shapes by ONNX input name."""

    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)


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
    for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]:
        if vi.type.tensor_type.elem_type in NIBBLE_TYPES:
            cx.nibbles[vi.name] = NIBBLE_TYPES[vi.type.tensor_type.elem_type]
    cx.nibbles |= {t.name: NIBBLE_TYPES[t.data_type] for t in model.graph.initializer
                   if t.data_type in NIBBLE_TYPES}
    graph.nibbles = {vi.name: cx.nibbles[vi.name] for vi in [*real_inputs, *model.graph.output]
                     if vi.name in cx.nibbles}
    cx.used = {name for node in model.graph.node for name in node.input if name}
    cx.used |= {vo.name for vo in model.graph.output}
    for vi in real_inputs:
        dtype = _tensor_dtype(vi.type.tensor_type.elem_type, f"input '{vi.name}'", label)
        if dtype not in BOUNDARY_DTYPES:
            raise UnsupportedError(f"{label}: input '{vi.name}' has dtype {dtype}; compiled "
                                   f"models take {sorted(BOUNDARY_DTYPES)}")
        shape = tuple(int(d.dim_value) for d in vi.type.tensor_type.shape.dim)
        try:
            cx.values[vi.name] = graph.add_input(vi.name, TensorType(shape, dtype))
        except ModelError as e:  # the IR's size check does not know the file
            raise ModelError(f"{label}: {e}") from None
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
            nid = graph.add_op(OpKind.CAST, CastAttrs(want), [nid], f"{vo.name}_{want}",
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
    if t.data_type in NIBBLE_TYPES:  # ml_dtypes' int4 byte holds -1 as 0x0F: convert, no view
        value = np.asarray(value).astype(ONNX_DTYPES[t.data_type])
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
    nibbles = [n for n in (*node.input, *node.output) if n in cx.nibbles]
    if nibbles and node.op_type not in NIBBLE_OPS:
        raise cx.unsupported(f"{cx.nibbles[nibbles[0]]} tensor '{nibbles[0]}' (sqzc takes "
                             f"INT4/UINT4 only in QuantizeLinear / DequantizeLinear and data "
                             f"movement)")
    fn = select_converter(dom, node.op_type, cx.opsets[dom])
    assert fn is not None  # find_unsupported ran first
    if dom == "com.microsoft":
        check_contrib_signature(cx)
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


__all__ = ["CONVERTERS", "ImportContext", "ImportOptions", "check_batch_separable",
           "import_model", "import_proto", "node_label"]
