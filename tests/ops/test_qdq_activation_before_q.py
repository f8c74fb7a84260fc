"""Relu / Clip in front of a QuantizeLinear (``drop-activation-before-quantize``).

onnxruntime removes such an activation when the Q makes it redundant (a Relu when the
Q's zero point is its type's lowest value, ``ReluQuantFusion``; a Clip whose bounds
enclose the Q's unsaturated range, ``ClipQuantFusion``) before it fuses QDQ groups, so
``DQ -> op -> Relu/Clip -> Q`` becomes its QLinear op. Each case builds one such group
(Add with a per-channel constant, Mul, AveragePool, GlobalAveragePool, LeakyRelu, MatMul,
Conv, in uint8 and int8, with a zero point or bounds that make the activation redundant
and with ones that do not; int8 ones in both QDQ modes), and asserts that sqzc folds the group
exactly when onnxruntime's optimized graph holds the fused op, and that every output
byte agrees on seeded random inputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import compile_beside_ort, ort_optimized_op_types

ort = pytest.importorskip("onnxruntime")

NP = {"u8": np.uint8, "s8": np.int8}
ONNX_T = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}
#: op -> (onnxruntime's fused op, sqzc's folded kind, input shape)
OPS = {
    "add": ("QLinearAdd", "qadd", [1, 8, 6, 6]),
    "mul": ("QLinearMul", "qmul", [1, 8, 6, 6]),
    "avgpool": ("QLinearAveragePool", "qavgpool", [1, 8, 6, 6]),
    "gap": ("QLinearGlobalAveragePool", "qglobal_avgpool", [1, 8, 6, 6]),
    "leaky": ("QLinearLeakyRelu", "lookup", [1, 8, 6, 6]),
    "matmul": ("QLinearMatMul", "qmatmul", [6, 32]),
    "conv": ("QLinearConv", "qconv", [1, 8, 6, 6]),
}
#: activation -> (builder, whether onnxruntime drops it) for a y zero point at the lowest
#: code and y scale 0.04 (uint8: domain [0, 10.2])
ACTS = {
    "relu-zp-lowest": ("relu", True),
    "relu-zp-other": ("relu", False),
    "clip-enclosing": ((-1.0, 100.0), True),
    "clip-inside": ((0.5, 6.0), False),
}


def _model(op: str, dt: str, act: str, seed: int) -> onnx.ModelProto:
    rng = np.random.default_rng(seed)
    t, lo = NP[dt], int(np.iinfo(NP[dt]).min)
    shape = OPS[op][2]
    y_zp = lo if act != "relu-zp-other" else lo + 90
    inits = [numpy_helper.from_array(np.float32(0.05), "xs"),
             numpy_helper.from_array(t(lo + 100), "xz"),
             numpy_helper.from_array(np.float32(0.04 if op != "matmul" else 0.3), "ys"),
             numpy_helper.from_array(t(y_zp), "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"])]
    if op in ("add", "mul", "matmul", "conv"):
        wshape = {"matmul": [32, 16], "conv": [8, 8, 3, 3]}.get(op, [1, 8, 1, 1])
        w = rng.integers(-127, 128, wshape).astype(np.int8) if op in ("matmul", "conv") \
            else rng.integers(lo, lo + 256, wshape).astype(t)
        inits += [numpy_helper.from_array(w, "w"),
                  numpy_helper.from_array(np.float32(0.01 if op in ("matmul", "conv")
                                                     else 0.03), "ws"),
                  numpy_helper.from_array(np.int8(0) if op in ("matmul", "conv")
                                          else t(lo + 120), "wz")]
        nodes.append(helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]))
    onnx_op = {"add": "Add", "mul": "Mul", "avgpool": "AveragePool", "matmul": "MatMul",
               "gap": "GlobalAveragePool", "leaky": "LeakyRelu", "conv": "Conv"}[op]
    attrs = {"avgpool": {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]},
             "leaky": {"alpha": 0.1}, "conv": {"kernel_shape": [3, 3], "pads": [1] * 4}}
    ins = ["xf", "wf"] if op in ("add", "mul", "matmul", "conv") else ["xf"]
    nodes.append(helper.make_node(onnx_op, ins, ["o"], **attrs.get(op, {})))
    kind, _ = ACTS[act]
    if kind == "relu":
        nodes.append(helper.make_node("Relu", ["o"], ["a"]))
    else:
        inits += [numpy_helper.from_array(np.float32(kind[0]), "lo"),
                  numpy_helper.from_array(np.float32(kind[1]), "hi")]
        nodes.append(helper.make_node("Clip", ["o", "lo", "hi"], ["a"]))
    nodes.append(helper.make_node("QuantizeLinear", ["a", "ys", "yz"], ["y"]))
    graph = helper.make_graph(nodes, "act_q", [helper.make_tensor_value_info(
        "x", ONNX_T[dt], shape)], [helper.make_tensor_value_info("y", ONNX_T[dt], None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model)


#: int8 cases in both QDQ modes; uint8 ones only in the default (the modes agree there)
CASES = [(op, dt, act, fused) for op in OPS for dt in NP for act in ACTS
         for fused in ((True, False) if dt == "s8" else (True,))]


@pytest.mark.parametrize("op, dt, act, fused", CASES,
                         ids=[f"{o}-{d}-{a}{'' if f else '-x86'}" for o, d, a, f in CASES])
def test_activation_before_q_fused_as_onnxruntime_does(op: str, dt: str, act: str,
                                                       fused: bool, tmp_path) -> None:
    model = _model(op, dt, act, seed=len(op) + len(act))
    ort_fused = OPS[op][0] in ort_optimized_op_types(model, tmp_path, fused)
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = [result.graph.op(v).kind.value for v in result.graph.nodes()]
    assert (OPS[op][1] in kinds) == ort_fused, (kinds, ort_fused)
    if ort_fused:  # the activation is gone on both sides, or the case tests nothing
        assert "relu" not in kinds and "clip" not in kinds, kinds
    t, shape = NP[dt], OPS[op][2]
    for seed in range(3):
        x = np.random.default_rng(seed).integers(np.iinfo(t).min, np.iinfo(t).max + 1,
                                                 shape).astype(t)
        np.testing.assert_array_equal(lib.run({"x": x})["y"], sess.run(None, {"x": x})[0])
