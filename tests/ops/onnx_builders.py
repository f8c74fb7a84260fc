"""Tiny ``onnx.helper`` wrappers for the per-op differential tests in ``tests/ops``.

Models are built with real opset imports and the lowest IR version the opsets allow (as
exporters write them); graph output shapes come from ONNX shape inference so the models
pass ``onnx.checker`` exactly like exported ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

F32 = TensorProto.FLOAT
F16 = TensorProto.FLOAT16
I64 = TensorProto.INT64

Shape = Sequence[int | str]


def rand(shape: Sequence[int], seed: int = 0, scale: float = 1.0,
         dtype: type = np.float32) -> np.ndarray:
    """Seeded standard-normal array."""
    return (np.random.default_rng(seed).standard_normal(tuple(shape)) * scale).astype(dtype)


def init(name: str, value: np.ndarray | Sequence[int] | float) -> onnx.TensorProto:
    """An initializer from a numpy array (lists of ints become int64)."""
    arr = np.asarray(value)
    if arr.dtype == np.int32 or (arr.dtype.kind == "i" and arr.dtype != np.int64):
        arr = arr.astype(np.int64)
    return numpy_helper.from_array(arr, name)


def make_model(nodes: Sequence[onnx.NodeProto],
               inputs: Mapping[str, Shape] | Sequence[tuple[str, Shape, int]],
               outputs: Sequence[str] | Sequence[tuple[str, int]],
               initializers: Sequence[onnx.TensorProto] = (), opset: int = 13,
               name: str = "op_test") -> onnx.ModelProto:
    """A checked model.

    ``inputs`` maps name -> shape (float32) or is a list of ``(name, shape, elem_type)``;
    ``outputs`` are names (float32) or ``(name, elem_type)``. Output shapes are inferred.
    """
    if isinstance(inputs, Mapping):
        ins = [(n, s, F32) for n, s in inputs.items()]
    else:
        ins = list(inputs)
    outs = [(o, F32) if isinstance(o, str) else o for o in outputs]
    graph = helper.make_graph(
        list(nodes), name,
        [helper.make_tensor_value_info(n, t, list(s)) for n, s, t in ins],
        [helper.make_tensor_value_info(n, t, None) for n, t in outs],
        list(initializers))
    ops = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=ops,
                              ir_version=helper.find_min_ir_version_for(ops))
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    for vo in model.graph.output:
        if not vo.type.tensor_type.HasField("shape"):
            raise AssertionError(f"shape inference gave no shape for output {vo.name}")
    onnx.checker.check_model(model, full_check=True)
    return model


def single(op: str, inputs: Mapping[str, Shape] | Sequence[tuple[str, Shape, int]],
           opset: int = 13, initializers: Sequence[onnx.TensorProto] = (),
           node_inputs: Sequence[str] | None = None, n_outputs: int = 1,
           out_type: int = F32, **attrs: object) -> onnx.ModelProto:
    """A one-node model ``op(node_inputs) -> y``.

    ``node_inputs`` defaults to the graph inputs followed by the initializers (in order).
    """
    names = list(inputs) if isinstance(inputs, Mapping) else [n for n, _, _ in inputs]
    if node_inputs is None:
        node_inputs = names + [t.name for t in initializers]
    outs = ["y"] + [f"y{i}" for i in range(1, n_outputs)]
    node = helper.make_node(op, list(node_inputs), outs, **attrs)
    return make_model([node], inputs, [("y", out_type)], initializers, opset)


def with_dynamic_batch(model: onnx.ModelProto, dim: str = "N") -> onnx.ModelProto:
    """A copy of ``model`` whose inputs and outputs have a symbolic leading dim."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    for vi in list(m.graph.input) + list(m.graph.output):
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_param = dim
    del m.graph.value_info[:]
    onnx.checker.check_model(m, full_check=True)
    return m


def reference_run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The ONNX reference implementation's outputs (a second opinion beside onnxruntime)."""
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, dict(feeds))]
