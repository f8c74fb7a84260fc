"""QDQ convs with float weights or biases (``quantize-conv-weights``).

onnxruntime quantizes a float weight (per tensor, int8, from its range) and a float bias
(int32 at x_scale * w_scale) of ``DQ(x) -> Conv -> [Relu ->] Q`` before it fuses QDQ
groups, so it computes with 8-bit weights whether it then fuses the group (uint8
activations: QLinearConv) or runs it on its float path (int8 activations). Each case
checks that sqzc's output bytes equal onnxruntime's on seeded random inputs (bit-exact),
including the cases onnxruntime leaves alone (a dequantized bias, a conv result with a
second reader), and that the conv is fused exactly when onnxruntime fuses it.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import QDQ_MODES, compile_beside_ort, ort_optimized_op_types


ort = pytest.importorskip("onnxruntime")

C, K, HW = 8, 16, 10
NP = {"u8": np.uint8, "s8": np.int8}
ONNX_T = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}


def _model(case: str, dtype: str) -> onnx.ModelProto:
    rng = np.random.default_rng(len(case))
    t = NP[dtype]
    z = 0 if dtype == "s8" else 128
    w = (rng.standard_normal((K, C, 3, 3)) * 0.2).astype(np.float32)
    b = (rng.standard_normal(K) * 0.5).astype(np.float32)
    inits = [numpy_helper.from_array(np.float32(0.05), "xs"),
             numpy_helper.from_array(t(z + 3), "xz"),
             numpy_helper.from_array(np.float32(0.07), "ys"),
             numpy_helper.from_array(t(z - 8), "yz"), numpy_helper.from_array(b, "B")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"])]
    conv_in = ["xf", "W", "B"]
    if case == "per-channel-weight":  # a dequantized per-channel weight, float bias
        ws = (np.abs(w).max(axis=(1, 2, 3)) / 127).astype(np.float32)
        wq = np.rint(w / ws[:, None, None, None]).astype(np.int8)
        inits += [numpy_helper.from_array(wq, "Wq"), numpy_helper.from_array(ws, "ws"),
                  numpy_helper.from_array(np.zeros(K, np.int8), "wz")]
        nodes.append(helper.make_node("DequantizeLinear", ["Wq", "ws", "wz"], ["W"], axis=0))
    else:
        inits.append(numpy_helper.from_array(w, "W"))
    if case == "no-bias":
        conv_in = ["xf", "W"]
    if case == "dq-bias":  # onnxruntime leaves the conv alone (its float weight too)
        inits += [numpy_helper.from_array(np.rint(b / 0.001).astype(np.int32), "Bq"),
                  numpy_helper.from_array(np.float32(0.001), "bs")]
        nodes.append(helper.make_node("DequantizeLinear", ["Bq", "bs"], ["Bd"]))
        conv_in = ["xf", "W", "Bd"]
    nodes.append(helper.make_node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]))
    out = "c"
    if case == "relu":
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
        out = "r"
    nodes.append(helper.make_node("QuantizeLinear", [out, "ys", "yz"], ["y"]))
    outputs = [helper.make_tensor_value_info("y", ONNX_T[dtype], None)]
    if case == "also-output":  # a graph output is no reader: still quantized
        outputs.append(helper.make_tensor_value_info("c", TensorProto.FLOAT, None))
    if case == "two-readers":  # a second reader: onnxruntime keeps the float weights
        nodes.append(helper.make_node("Relu", ["c"], ["s"]))
        outputs.append(helper.make_tensor_value_info("s", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", ONNX_T[dtype], [1, C, HW, HW])], outputs, inits)
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


CASES = [(c, d) for c in ("float-weight-bias", "no-bias", "relu", "per-channel-weight",
                          "dq-bias", "also-output", "two-readers") for d in ("u8", "s8")]


@pytest.mark.parametrize("fused", QDQ_MODES)
@pytest.mark.parametrize("case, dtype", CASES, ids=[f"{c}-{d}" for c, d in CASES])
def test_float_weight_conv_matches_onnxruntime(case: str, dtype: str, fused: bool,
                                               tmp_path) -> None:
    model = _model(case, dtype)
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    folded = any(result.graph.op(v).kind.value == "qconv" for v in result.graph.nodes())
    assert folded == ("QLinearConv" in ort_optimized_op_types(model, tmp_path, fused))
    t = NP[dtype]
    for seed in range(3):
        x = np.random.default_rng(seed).integers(np.iinfo(t).min, np.iinfo(t).max + 1,
                                                 [1, C, HW, HW]).astype(t)
        got = lib.run({"x": x})
        for o, want in zip(sess.get_outputs(), sess.run(None, {"x": x}), strict=True):
            if want.dtype == np.float32:  # float outputs: float sums, tolerance
                np.testing.assert_allclose(got[o.name], want, rtol=1e-5, atol=1e-4)
            else:
                np.testing.assert_array_equal(got[o.name], want)


def test_batchnorm_parameters_from_dequantize_linear() -> None:
    """onnxruntime's quantizer stores a BatchNormalization it cannot fold (DenseNet's
    pre-activation BN) with its scale, bias, mean and variance as DequantizeLinear of int8
    codes: the importer evaluates them as constants, and the model matches onnxruntime."""
    from onnx_builders import make_model
    from sqz_testing import assert_matches_ort

    rng = np.random.default_rng(11)
    c = 12
    inits, params = [], []
    for name, lo in (("scale", 0.5), ("bias", -1.0), ("mean", -0.5), ("var", 0.2)):
        codes = rng.integers(1 if name == "var" else -127, 128, c).astype(np.int8)
        inits += [numpy_helper.from_array(codes, f"{name}_q"),
                  numpy_helper.from_array(np.float32(abs(lo) / 64), f"{name}_s")]
        params.append(helper.make_node("DequantizeLinear", [f"{name}_q", f"{name}_s"],
                                       [name]))
    nodes = [*params,
             helper.make_node("BatchNormalization", ["x", "scale", "bias", "mean", "var"],
                              ["b"]),
             helper.make_node("Relu", ["b"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, c, 5, 6]}, ["y"], inits, 13))
