"""Malformed INT4 / UINT4 inputs are refused with an ``SqzcError`` naming the node (issue 21):
a blocked scale whose shape does not match ``block_size``, per-axis scales of the wrong
length, a zero point of another width, an int4 tensor on an op that cannot take it; and
at run time, a 4-bit input whose 8-bit container holds values outside the 4-bit range."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.driver import CompileOptions
from sqzc.errors import CallError, ModelError, SqzcError, UnsupportedError


def _model(node: onnx.NodeProto, inputs: list[onnx.ValueInfoProto],
           output: onnx.ValueInfoProto, inits: list[onnx.TensorProto]) -> onnx.ModelProto:
    graph = helper.make_graph([node], "int4", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model


def _int4(name: str, shape: list[int], dtype: int = TensorProto.INT4) -> onnx.TensorProto:
    n = int(np.prod(shape))
    return helper.make_tensor(name, dtype, shape, [(i % 7) - 3 if dtype == TensorProto.INT4
                                                   else i % 15 for i in range(n)])


def _dq(name: str, scale_shape: list[int], block: int, zp: onnx.TensorProto | None = None,
        axis: int = 0) -> onnx.ModelProto:
    scale = numpy_helper.from_array(np.full(scale_shape, 0.5, np.float32), "ws")
    inits = [_int4("wq", [8, 4]), scale] + ([zp] if zp is not None else [])
    attrs = {"axis": axis} | ({"block_size": block} if block else {})
    node = helper.make_node("DequantizeLinear", ["wq", "ws"] + (["wz"] if zp else []), ["y"],
                            name=name, **attrs)
    return _model(node, [], helper.make_tensor_value_info("y", TensorProto.FLOAT, [8, 4]),
                  inits)


CASES = {
    "blocked scale shape": (_dq("bad_block", [3, 4], 4), ModelError,
                            ["'bad_block'", "block_size 4", "[2, 4]"]),
    "negative block_size": (_dq("neg_block", [2, 4], -1), ModelError,
                            ["'neg_block'", "block_size must be >= 0"]),
    "per-axis scales": (_dq("bad_axis", [5], 0), ModelError,
                        ["'bad_axis'", "5 per-axis scales"]),
    "zero point width": (_dq("bad_zp", [8], 0, numpy_helper.from_array(
        np.zeros(8, np.int8), "wz")), ModelError, ["'bad_zp'", "8-bit", "4-bit"]),
    "int4 into Add": (_model(
        helper.make_node("Add", ["a", "b"], ["y"], name="add4"),
        [helper.make_tensor_value_info("a", TensorProto.INT4, [4])],
        helper.make_tensor_value_info("y", TensorProto.INT4, [4]), [_int4("b", [4])]),
        UnsupportedError, ["'add4'", "int4 tensor"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_malformed_int4_refused(case: str, tmp_path: Path) -> None:
    model, error, needles = CASES[case]
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    with pytest.raises(error) as info:
        sqzc.compile(path, tmp_path / "m.so", CompileOptions())
    assert isinstance(info.value, SqzcError)
    for needle in needles:
        assert needle in str(info.value), (needle, str(info.value))


def test_int4_input_container_range(tmp_path: Path) -> None:
    """An int4 input takes an ml_dtypes int4 array (converted value by value) or an int8
    array of values in [-8, 7]; other int8 values are a CallError, not a silent wrap."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    model = _model(
        helper.make_node("DequantizeLinear", ["x", "s"], ["y"], name="dq"),
        [helper.make_tensor_value_info("x", TensorProto.INT4, [4])],
        helper.make_tensor_value_info("y", TensorProto.FLOAT, [4]),
        [numpy_helper.from_array(np.float32(0.5), "s")])
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    sqzc.compile(path, tmp_path / "m.so", CompileOptions())
    lib = sqzc.load(tmp_path / "m.so")
    assert lib.input_specs[0].nibble == "int4" and lib.input_specs[0].dtype == np.int8
    x = np.array([-8, -1, 0, 7], np.int8)
    want = x.astype(np.float32) * 0.5
    assert lib.run({"x": x})["y"].tolist() == want.tolist()
    assert lib.run({"x": x.astype(ml_dtypes.int4)})["y"].tolist() == want.tolist()
    with pytest.raises(CallError, match="must lie in"):
        lib.run({"x": np.array([8, 0, 0, 0], np.int8)})
