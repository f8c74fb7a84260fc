"""QLinearSoftmax (com.microsoft) and DQ -> Softmax -> Q against onnxruntime.

onnxruntime's quantizer turns Softmax into com.microsoft QLinearSoftmax (QOperator format)
or DQ -> Softmax -> Q (QDQ format), which onnxruntime fuses into QLinearSoftmax when
input and output types agree (on x86-64 by default after its S8->U8 rewrites). Both run
its lookup-table arithmetic (``sqzc.ort.oracles.contrib_ops.qlinear_softmax``). Checked here:
the numpy reference and the compiled op equal onnxruntime byte for byte on seeded random
rows (uint8/int8, opset 13 along any axis, opset 11 over the flattened tail, one-element
rows whose rescaled entries overflow to inf), and sqzc fuses the QDQ group exactly when
onnxruntime does.

Not bit-exact: rows with two maxima and other entries worth about half an ulp of their
sum, whose output lands within an ulp of x.5 (onnxruntime 1.32's summation evidently
differs from its published source there); those stay within one step
(``test_near_ties_within_one_step``: the compiled library equals the numpy reference
there, and ~10% of such adversarial rows differ from onnxruntime). Exact x.5 ties, where
the half-to-even rounding itself is what is checked, are in ``test_requant_ties.py``
(``test_qlinear_softmax_ties``: rows whose other entries are negligible in any order).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import (
    QDQ_MODES,
    compile_and_load,
    compile_beside_ort,
    ort_optimized_op_types,
)

import sqzc
from sqzc.driver import CompileOptions
from sqzc.ort.oracles.contrib_ops import qlinear_softmax

ort = pytest.importorskip("onnxruntime")

MS = "com.microsoft"
F32 = np.float32


def _softmax_model(shape: list[int], dtype: type, axis: int, opset: int, x_scale: float,
                   y_scale: float, y_zp: int) -> onnx.ModelProto:
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    node = helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS,
                            axis=axis, opset=opset)
    inits = [numpy_helper.from_array(F32(x_scale), "xs"), numpy_helper.from_array(dtype(0), "xz"),
             numpy_helper.from_array(F32(y_scale), "ys"),
             numpy_helper.from_array(dtype(y_zp), "yz")]
    graph = helper.make_graph([node], "qsoftmax", [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, shape)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    return model


def _ort(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def _random_case(seed: int) -> tuple[list[int], type, int, int, float, float, int, np.ndarray]:
    rng = np.random.default_rng(seed)
    dtype = (np.uint8, np.int8)[seed % 2]
    opset = 13 if seed % 4 < 2 else 11
    shape = [int(v) for v in rng.integers(1, 5, 3)]
    shape[int(rng.integers(0, 3))] = int(rng.integers(1, 1100))
    axis = int(rng.integers(-3, 3))
    info = np.iinfo(dtype)
    x = rng.integers(info.min, info.max + 1, shape).astype(dtype)
    y_scale = float(rng.choice([1 / 256, 1 / 255, 0.0039, 0.01, rng.random() * 0.02 + 1e-4]))
    return (shape, dtype, axis, opset, float(rng.random() * 0.3 + 1e-3), y_scale,
            int(rng.integers(info.min, info.max + 1)), x)


@pytest.mark.parametrize("seed", range(16))
def test_qlinear_softmax_bit_exact(seed: int, tmp_path) -> None:
    """Reference and compiled op equal onnxruntime on a random shape, axis, opset, scales."""
    shape, dtype, axis, opset, xs, ys, yz, x = _random_case(seed)
    model = _softmax_model(shape, dtype, axis, opset, xs, ys, yz)
    want = _ort(model, {"x": x})
    if opset >= 13:
        np.testing.assert_array_equal(qlinear_softmax(x, xs, ys, yz, axis), want)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    got = compile_and_load(path).run({"x": x})["y"]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("dtype", (np.uint8, np.int8))
def test_one_element_rows_saturate(dtype: type, tmp_path) -> None:
    """A one-element row's entry times floor(1 / y_scale) overflows to inf: the top value."""
    model = _softmax_model([3, 1], dtype, -1, 13, 0.05, 1 / 256, -100 if dtype == np.int8 else 7)
    x = np.array([[5], [100], [0]], dtype)
    want = _ort(model, {"x": x})
    assert (want == np.iinfo(dtype).max).all()
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    np.testing.assert_array_equal(compile_and_load(path).run({"x": x})["y"], want)


def test_near_ties_within_one_step(tmp_path) -> None:
    """Adversarial rows (two maxima, odd floor(1 / y_scale), the rest ~half an ulp of the
    sum): the compiled library equals the numpy reference byte for byte, and both are
    within one step of onnxruntime and exact on most rows. The 40 cases are the nodes of
    one model, so the library is compiled once."""
    rng = np.random.default_rng(11)
    nodes, inputs, outputs, inits, feeds, cases = [], [], [], [], {}, []
    for trial in range(40):
        dtype = (np.uint8, np.int8)[trial % 2]
        d = int(rng.integers(3, 40))
        top = 100 if dtype == np.int8 else 230
        x = (top - rng.integers(50, 130, (256, d))).astype(dtype)
        a, b = rng.choice(d, 2, replace=False)
        x[:, a] = x[:, b] = top
        xs, ys = 0.15 + rng.random() * 0.1, 1 / (2 * int(rng.integers(10, 60)) + 1.5)
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        names = [f"{n}{trial}" for n in ("x", "xs", "xz", "ys", "yz", "y")]
        nodes.append(helper.make_node("QLinearSoftmax", names[:5], names[5:], domain=MS,
                                      axis=-1, opset=13))
        inits += [numpy_helper.from_array(F32(xs), names[1]),
                  numpy_helper.from_array(dtype(0), names[2]),
                  numpy_helper.from_array(F32(ys), names[3]),
                  numpy_helper.from_array(dtype(0), names[4])]
        inputs.append(helper.make_tensor_value_info(names[0], elem, [256, d]))
        outputs.append(helper.make_tensor_value_info(names[5], elem, [256, d]))
        feeds[names[0]] = x
        cases.append((x, xs, ys))
    graph = helper.make_graph(nodes, "near_ties", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid(MS, 1)])
    model.ir_version = 8
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    got = compile_and_load(path).run(feeds)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    wants = sess.run(None, feeds)
    rows = differing = 0
    for trial, ((x, xs, ys), want) in enumerate(zip(cases, wants)):
        ref = qlinear_softmax(x, xs, ys, 0, -1)
        np.testing.assert_array_equal(got[f"y{trial}"], ref, err_msg=f"case {trial}")
        diff = np.abs(ref.astype(np.int32) - want.astype(np.int32))
        assert diff.max() <= 1
        rows += len(x)
        differing += int(diff.any(axis=1).sum())
    assert differing < 0.2 * rows


# ------------------------------------------------------------------------- QDQ fusion


def _qdq_softmax(signed: bool, q_input: bool, dq_output: bool) -> onnx.ModelProto:
    """[float -> Q ->] DQ -> Softmax -> Q [-> DQ], 8-bit (u8 or s8) activations."""
    dtype = np.int8 if signed else np.uint8
    elem = TensorProto.INT8 if signed else TensorProto.UINT8
    inits = [numpy_helper.from_array(F32(0.05), "xs"), numpy_helper.from_array(dtype(3), "xz"),
             numpy_helper.from_array(F32(1 / 256), "ys"),
             numpy_helper.from_array(dtype(-128 if signed else 0), "yz")]
    nodes = []
    if q_input:
        nodes.append(helper.make_node("QuantizeLinear", ["xf", "xs", "xz"], ["x"]))
        inp = helper.make_tensor_value_info("xf", TensorProto.FLOAT, [4, 10])
    else:
        inp = helper.make_tensor_value_info("x", elem, [4, 10])
    nodes += [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
              helper.make_node("Softmax", ["xd"], ["s"], axis=-1),
              helper.make_node("QuantizeLinear", ["s", "ys", "yz"], ["y"])]
    out = helper.make_tensor_value_info("y", elem, [4, 10])
    if dq_output:
        nodes.append(helper.make_node("DequantizeLinear", ["y", "ys", "yz"], ["yf"]))
        out = helper.make_tensor_value_info("yf", TensorProto.FLOAT, [4, 10])
    graph = helper.make_graph(nodes, "qdq_softmax", [inp], [out], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("fused", QDQ_MODES)
@pytest.mark.parametrize("signed", (False, True), ids=("u8", "s8"))
@pytest.mark.parametrize("q_input", (False, True), ids=("int-input", "q-dq-input"))
@pytest.mark.parametrize("dq_output", (False, True), ids=("q-output", "q-dq-output"))
def test_qdq_softmax_fused_as_onnxruntime_does(signed: bool, q_input: bool, dq_output: bool,
                                                fused: bool, tmp_path) -> None:
    """sqzc makes a ``qsoftmax`` exactly when onnxruntime's optimized graph has a
    QLinearSoftmax (uint8 always; int8 too with ``session.qdqisint8allowed=1``, sqzc's
    default; with onnxruntime's x86-64 default, ``--no-fuse-int8-qdq``, int8 only when
    both sides stay int8 or both become uint8), and the outputs are equal."""
    model = _qdq_softmax(signed, q_input, dq_output)
    ort_fused = "QLinearSoftmax" in ort_optimized_op_types(model, tmp_path, fused)
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    graph = result.graph
    assert any(graph.op(n).kind.value == "qsoftmax" for n in graph.nodes()) == ort_fused
    assert ort_fused == (not signed or fused or q_input == dq_output)
    rng = np.random.default_rng(3)
    name = model.graph.input[0].name
    if q_input:
        x = (rng.standard_normal((4, 10)) * 3).astype(F32)
    else:
        x = rng.integers(-128 if signed else 0, 128 if signed else 256, (4, 10)).astype(
            np.int8 if signed else np.uint8)
    want = sess.run(None, {name: x})[0]
    got = lib.run({name: x})[model.graph.output[0].name]
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("signed", (False, True), ids=("u8", "s8"))
def test_qdq_softmax_before_opset_13_over_several_axes(signed: bool, tmp_path) -> None:
    """Opset 11 Softmax(axis=1) on [4, 5, 6] normalizes rows of 30 (the importer's
    Reshape -> Softmax -> Reshape); onnxruntime fuses DQ -> Softmax -> Q into QLinearSoftmax
    all the same, and so does sqzc (the reshapes move onto the 8-bit tensors)."""
    dtype = np.int8 if signed else np.uint8
    elem = TensorProto.INT8 if signed else TensorProto.UINT8
    inits = [numpy_helper.from_array(F32(0.07), "xs"), numpy_helper.from_array(dtype(3), "xz"),
             numpy_helper.from_array(F32(1 / 256), "ys"),
             numpy_helper.from_array(dtype(-128 if signed else 0), "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xd"]),
             helper.make_node("Softmax", ["xd"], ["s"], axis=1),
             helper.make_node("QuantizeLinear", ["s", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_softmax11", [helper.make_tensor_value_info(
        "x", elem, [4, 5, 6])], [helper.make_tensor_value_info("y", elem, [4, 5, 6])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 7
    assert "QLinearSoftmax" in ort_optimized_op_types(model, tmp_path)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    graph_ir = sqzc.compile(path, None, CompileOptions(opt_level=3)).graph
    assert any(graph_ir.op(n).kind.value == "qsoftmax" for n in graph_ir.nodes())
    lib = compile_and_load(path)
    for seed in range(3):
        x = np.random.default_rng(seed).integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1,
                                                 (4, 5, 6)).astype(dtype)
        np.testing.assert_array_equal(lib.run({"x": x})["y"], _ort(model, {"x": x}))


@pytest.mark.parametrize("axis", (0, 1))
def test_dynamic_batch_softmax_over_the_batch_is_refused(axis: int, tmp_path) -> None:
    """A dynamic-batch library runs the batch-1 program per sample, so a QLinearSoftmax
    over axis 0 (the samples) must be refused, as the float Softmax is; over axis 1 it
    runs per sample and matches onnxruntime at batch 3."""
    from onnx_builders import with_dynamic_batch

    from sqzc.errors import UnsupportedError

    model = with_dynamic_batch(_softmax_model([1, 10], np.uint8, axis, 13, 0.1, 1 / 256, 0))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    if axis == 0:
        with pytest.raises(UnsupportedError, match="qsoftmax.*works along the batch axis"):
            sqzc.compile(path, tmp_path / "m.so")
        return
    sqzc.compile(path, tmp_path / "m.so")
    x = np.random.default_rng(3).integers(0, 256, (3, 10)).astype(np.uint8)
    np.testing.assert_array_equal(sqzc.load(tmp_path / "m.so")(x), _ort(model, {"x": x}))
