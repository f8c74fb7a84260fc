"""unsign-activations: int8 activations stored as uint8 (zero point + 128), bit-identical.

Small QOperator graphs with int8 activations (QuantizeLinear -> QLinearConv -> MaxPool ->
QLinearConv -> DequantizeLinear) are compiled and compared bit for bit with onnxruntime;
the optimized IR must hold the intermediates as uint8, an int8 graph output must come
back as int8 (through a requantization), and a tensor read by an op the pass does not
know must stay int8.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import compile_and_load, model_path, ort_run

import sqzc.driver as driver
from sqzc.driver import CompileOptions


def _int8_model(expose_mid: bool = False, extra_reader: bool = False) -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(-3, np.int8), "xz"),
        numpy_helper.from_array(rng.integers(-100, 100, (16, 3, 3, 3)).astype(np.int8), "w1"),
        numpy_helper.from_array(np.array(0.01, np.float32), "w1s"),
        numpy_helper.from_array(np.array(0, np.int8), "w1z"),
        numpy_helper.from_array(rng.integers(-500, 500, 16).astype(np.int32), "b1"),
        numpy_helper.from_array(np.array(0.2, np.float32), "y1s"),
        numpy_helper.from_array(np.array(-128, np.int8), "y1z"),
        numpy_helper.from_array(rng.integers(-100, 100, (8, 16, 1, 1)).astype(np.int8), "w2"),
        numpy_helper.from_array(np.array(0.02, np.float32), "w2s"),
        numpy_helper.from_array(np.array(0, np.int8), "w2z"),
        numpy_helper.from_array(np.array(0.3, np.float32), "y2s"),
        numpy_helper.from_array(np.array(5, np.int8), "y2z"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
        helper.make_node("QLinearConv", ["xq", "xs", "xz", "w1", "w1s", "w1z", "y1s", "y1z",
                                         "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("MaxPool", ["c1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("QLinearConv", ["p1", "y1s", "y1z", "w2", "w2s", "w2z", "y2s", "y2z"],
                         ["c2"]),
        helper.make_node("DequantizeLinear", ["c2", "y2s", "y2z"], ["y"]),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 6, 6])]
    if expose_mid:
        outputs.append(helper.make_tensor_value_info("p1", TensorProto.INT8, [1, 16, 6, 6]))
    if extra_reader:  # Reshape is not one of the pass's readers: p1 must stay int8
        inits.append(numpy_helper.from_array(np.array([1, -1], np.int64), "shape"))
        nodes.append(helper.make_node("Reshape", ["p1", "shape"], ["flat"]))
        outputs.append(helper.make_tensor_value_info("flat", TensorProto.INT8, [1, 576]))
    graph = helper.make_graph(nodes, "int8", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 12, 12])], outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _optimized_dtypes(model: onnx.ModelProto) -> dict[str, str]:
    options = CompileOptions()
    g = driver.load_graph(model_path(model), options)
    driver.optimize(g, options)
    return {n: g.op(n).out.dtype for n in g.nodes() if g.op(n).kind.value != "const"}


@pytest.mark.parametrize("expose_mid,extra_reader", [(False, False), (True, False),
                                                     (False, True)])
def test_bit_exact_with_onnxruntime(expose_mid: bool, extra_reader: bool) -> None:
    model = _int8_model(expose_mid, extra_reader)
    m = compile_and_load(model)
    for seed in range(3):
        x = np.random.default_rng(seed).uniform(-8, 8, (1, 3, 12, 12)).astype(np.float32)
        got = m.run({"x": x})
        want = ort_run(model, {"x": x})
        for (name, g), w in zip(got.items(), want):
            assert g.dtype == w.dtype, name
            assert g.tobytes() == np.asarray(w).tobytes(), f"{name} differs (seed {seed})"


def test_intermediates_become_uint8() -> None:
    dtypes = _optimized_dtypes(_int8_model())
    eight_bit = {n: d for n, d in dtypes.items() if d in ("int8", "uint8")}
    assert eight_bit and set(eight_bit.values()) == {"uint8"}, eight_bit


def test_int8_output_is_converted_back() -> None:
    model = _int8_model(expose_mid=True)
    dtypes = _optimized_dtypes(model)
    assert "int8" in dtypes.values() and "uint8" in dtypes.values(), dtypes
    m = compile_and_load(model)
    assert m.run({"x": np.zeros((1, 3, 12, 12), np.float32)})["p1"].dtype == np.int8


def test_unknown_reader_keeps_int8() -> None:
    """p1 (and c1, which max pooling ties to it) stay int8; c2 is shifted on its own."""
    dtypes = _optimized_dtypes(_int8_model(extra_reader=True))
    assert dtypes["c1"] == "int8" and dtypes["flat"] == "int8", dtypes
    assert dtypes["c2"] == "uint8", dtypes


def test_disabled_at_o1() -> None:
    options = CompileOptions(opt_level=1)
    g = driver.load_graph(model_path(_int8_model()), options)
    driver.optimize(g, options)
    assert "uint8" not in {g.op(n).out.dtype for n in g.nodes()}
