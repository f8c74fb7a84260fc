"""IR version 3 models whose initializers are not all graph inputs.

IR < 4 requires every initializer to be a graph input, but onnxruntime's quantizer adds
scale/zero-point initializers without inputs when it quantizes such an old model (the
pretrained SqueezeNet here is IR 3). onnxruntime runs these files, so sqzc accepts them
(checked as IR 4); any other checker error still fails.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import ort_run

import sqzc
from sqzc.errors import ModelError


def _ir3_model(bad_node: bool = False) -> onnx.ModelProto:
    w = numpy_helper.from_array(np.float32(2.5), "w")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["y"]) if not bad_node
         else helper.make_node("Mul", ["x"], ["y"])],
        "ir3", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 7)])
    model.ir_version = 3
    return model


def test_ir3_initializer_without_input_compiles(tmp_path: Path) -> None:
    model = _ir3_model()
    path = tmp_path / "ir3.onnx"
    onnx.save(model, path)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)  # the strict checker refuses it ...
    sqzc.compile(path, tmp_path / "ir3.so")  # ... sqzc, like onnxruntime, does not
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    got = sqzc.load(tmp_path / "ir3.so")(x)
    assert got.tobytes() == ort_run(path, {"x": x})[0].tobytes()


def test_ir3_other_errors_still_fail(tmp_path: Path) -> None:
    path = tmp_path / "bad.onnx"
    onnx.save(_ir3_model(bad_node=True), path)
    with pytest.raises(ModelError, match="invalid ONNX model"):
        sqzc.compile(path, tmp_path / "bad.so")
    assert not (tmp_path / "bad.so").exists()
