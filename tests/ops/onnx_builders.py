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
    ir_version = helper.find_min_ir_version_for(ops)
    if ir_version < 4:  # IR 3 (opset <= 8 exporters): initializers are also graph inputs
        graph.input.extend(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims))
                           for t in initializers)
    model = helper.make_model(graph, opset_imports=ops, ir_version=ir_version)
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    missing = [vo for vo in model.graph.output if not vo.type.tensor_type.HasField("shape")]
    if missing:  # old opsets (e.g. Conv-1) have no inference: ask onnxruntime on zeros
        _fill_output_shapes_with_ort(model, ins)
    onnx.checker.check_model(model, full_check=True)
    return model


def _fill_output_shapes_with_ort(model: onnx.ModelProto,
                                 ins: Sequence[tuple[str, Shape, int]]) -> None:
    import onnxruntime as ort

    for vo in model.graph.output:  # a shapeless output is not loadable: give a rank
        if not vo.type.tensor_type.HasField("shape"):
            vo.type.tensor_type.shape.SetInParent()
    init_names = {t.name for t in model.graph.initializer}
    feeds = {n: np.zeros([d if isinstance(d, int) else 1 for d in s],
                         helper.tensor_dtype_to_np_dtype(t)) for n, s, t in ins
             if n not in init_names}
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for vo, value in zip(model.graph.output, sess.run(None, feeds)):
        tt = vo.type.tensor_type
        tt.ClearField("shape")
        tt.shape.dim.extend([onnx.TensorShapeProto.Dimension(dim_value=int(d))
                             for d in np.shape(value)])


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
    """A copy of ``model`` whose inputs have a symbolic leading dim. Output shapes are
    re-inferred (an output whose leading dim is not the batch keeps its real shape); where
    inference cannot tell (shape arithmetic), the static shape with ``dim`` in front is used."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {t.name for t in m.graph.initializer}
    for vi in m.graph.input:
        if vi.name in inits:
            continue
        d0 = vi.type.tensor_type.shape.dim[0]
        d0.Clear()
        d0.dim_param = dim
    static = {vo.name: list(vo.type.tensor_type.shape.dim) for vo in model.graph.output}
    for vo in m.graph.output:
        vo.type.tensor_type.ClearField("shape")
    del m.graph.value_info[:]
    m = onnx.shape_inference.infer_shapes(m, strict_mode=True, data_prop=True)
    for vo in m.graph.output:
        tt = vo.type.tensor_type
        if not tt.HasField("shape"):
            tt.shape.dim.extend(static[vo.name])
            tt.shape.dim[0].Clear()
            tt.shape.dim[0].dim_param = dim
    onnx.checker.check_model(m, full_check=True)
    return m


def reference_run(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """The ONNX reference implementation's outputs (a second opinion beside onnxruntime)."""
    from onnx.reference import ReferenceEvaluator

    return [np.asarray(v) for v in ReferenceEvaluator(model).run(None, dict(feeds))]


def assert_matches_reference(model: onnx.ModelProto, seed: int = 0, opt_level: int = 3,
                             inputs: Mapping[str, np.ndarray] | None = None) -> None:
    """Like ``assert_matches_ort`` but against ``onnx.reference``, for the few valid
    attribute combinations onnxruntime refuses (e.g. dilated Conv with SAME auto_pad)."""
    from sqz_testing import assert_close, compile_and_load, random_inputs

    m = compile_and_load(model, opt_level=opt_level)
    feeds = dict(inputs) if inputs is not None else random_inputs(m, seed)
    got = m.run(feeds)
    want = reference_run(model, feeds)
    assert len(want) == len(got)
    for (name, g), w in zip(got.items(), want):
        assert_close(g, w, name)


def same_pads(size: Sequence[int], kernel: Sequence[int], strides: Sequence[int],
              dilations: Sequence[int], upper: bool) -> list[int]:
    """Explicit ONNX pads equal to SAME_UPPER/SAME_LOWER, by the formula in the spec."""
    begin, end = [], []
    for n, k, s, d in zip(size, kernel, strides, dilations):
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        small, big = total // 2, total - total // 2
        begin.append(small if upper else big)
        end.append(big if upper else small)
    return begin + end


def assert_matches_ort_equivalent(model: onnx.ModelProto, equivalent: onnx.ModelProto,
                                  seed: int = 0, opt_level: int = 3) -> None:
    """sqzc on ``model`` against onnxruntime on ``equivalent`` (the same computation spelled
    so that onnxruntime handles it right, e.g. explicit pads instead of a SAME auto_pad)."""
    from sqz_testing import assert_close, compile_and_load, ort_run, random_inputs

    m = compile_and_load(model, opt_level=opt_level)
    feeds = random_inputs(m, seed)
    got = m.run(feeds)
    want = ort_run(equivalent, feeds)
    assert len(want) == len(got)
    for (name, g), w in zip(got.items(), want):
        assert_close(g, np.asarray(w), name)
