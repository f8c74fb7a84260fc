"""QDQ groups onnxruntime fuses into its com.microsoft QLinear ops: AveragePool,
GlobalAveragePool, LeakyRelu, Add and Mul.

onnxruntime (x86-64, default session options) turns ``DQ -> op -> Q`` into
QLinearAveragePool / QLinearGlobalAveragePool / QLinearLeakyRelu and ``DQ, DQ -> op -> Q``
into QLinearAdd / QLinearMul when every input and the output have one type after its
S8->U8 rewrites (int8 included), and computes them with integer or lookup-table
arithmetic that differs from the float path by a step in some elements. sqzc's fold-qdq
must make the same choice (``ort_qdq.ort_fuses_qdq_group``) so every output byte agrees:
checked here per op for uint8 and int8, equal and different input/output quantization,
broadcasting operands, and an int8 group fed by a graph-input Q -> DQ pair (its input
pair becomes uint8 and the output stays int8: onnxruntime leaves it float). Each case also
asserts that sqzc's graph holds the QLinear op exactly when onnxruntime's optimized graph
does. Inputs are seeded random bytes (or floats for the Q -> DQ case).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import ort_optimized_op_types

import sqzc
from sqzc.driver import CompileOptions

ort = pytest.importorskip("onnxruntime")

NP = {"u8": np.uint8, "s8": np.int8}
ONNX_T = {"u8": TensorProto.UINT8, "s8": TensorProto.INT8}
SHAPE = [1, 6, 9, 9]

#: op name -> (ONNX op, attributes, binary, onnxruntime's fused op, sqzc's folded op kind)
OPS = {
    "avgpool-2x2s2": ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, False,
                      "QLinearAveragePool", "qavgpool"),
    "avgpool-3x3-pad": ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, False,
                        "QLinearAveragePool", "qavgpool"),
    "avgpool-3x3-pad-count": ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1],
                                              "count_include_pad": 1, "strides": [2, 2]},
                              False, "QLinearAveragePool", "qavgpool"),
    "avgpool-ceil": ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2],
                                     "ceil_mode": 1}, False, "QLinearAveragePool", "qavgpool"),
    "avgpool-global-window": ("AveragePool", {"kernel_shape": [9, 9]}, False,
                              "QLinearAveragePool", "qglobal_avgpool"),
    "global-avgpool": ("GlobalAveragePool", {}, False, "QLinearGlobalAveragePool",
                       "qglobal_avgpool"),
    "leaky-relu": ("LeakyRelu", {"alpha": 0.13}, False, "QLinearLeakyRelu", "lookup"),
    "add": ("Add", {}, True, "QLinearAdd", "qadd"),
    "mul": ("Mul", {}, True, "QLinearMul", "qmul"),
}
#: second operand shapes for the binary ops (same shape, per-channel, scalar)
B_SHAPES = {"same": SHAPE, "channel": [1, 6, 1, 1], "scalar": [1]}


def _model(op: str, dtype: str, same_q: bool, b_shape: list[int], graph_q: bool,
           seed: int) -> onnx.ModelProto:
    onnx_op, attrs, binary, _, _ = OPS[op]
    rng = np.random.default_rng(seed)
    t = NP[dtype]
    lo, hi = np.iinfo(t).min, np.iinfo(t).max
    xs = np.float32(0.02 + rng.random() * 0.05)
    ys = xs if same_q else np.float32(0.03 + rng.random() * 0.1)
    xz = t(rng.integers(lo // 4, hi // 4))
    yz = xz if same_q else t(rng.integers(lo // 4, hi // 4))
    inits = [numpy_helper.from_array(xs, "xs"), numpy_helper.from_array(xz, "xz"),
             numpy_helper.from_array(ys, "ys"), numpy_helper.from_array(yz, "yz")]
    nodes = []
    if graph_q:  # float input -> Q -> DQ: onnxruntime's S8->U8 rewrite makes the pair uint8
        x_in = helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)
        nodes.append(helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]))
        src = "xq"
    else:
        x_in = helper.make_tensor_value_info("x", ONNX_T[dtype], SHAPE)
        src = "x"
    nodes.append(helper.make_node("DequantizeLinear", [src, "xs", "xz"], ["xf"]))
    op_in = ["xf"]
    if binary:
        inits += [numpy_helper.from_array(rng.integers(lo, hi + 1, b_shape).astype(t), "b"),
                  numpy_helper.from_array(np.float32(0.01 + rng.random() * 0.05), "bs"),
                  numpy_helper.from_array(t(rng.integers(lo // 4, hi // 4)), "bz")]
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"]))
        op_in.append("bf")
    nodes.append(helper.make_node(onnx_op, op_in, ["o"], **attrs))
    nodes.append(helper.make_node("QuantizeLinear", ["o", "ys", "yz"], ["y"]))
    graph = helper.make_graph(nodes, "g", [x_in],
                              [helper.make_tensor_value_info("y", ONNX_T[dtype], None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model)  # the output's shape


def _input(dtype: str, graph_q: bool, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if graph_q:
        return rng.normal(0, 2, SHAPE).astype(np.float32)
    t = NP[dtype]
    return rng.integers(np.iinfo(t).min, np.iinfo(t).max + 1, SHAPE).astype(t)


CASES = [(op, dt, same, "same", False) for op in OPS for dt in NP for same in (True, False)]
CASES += [(op, dt, False, bs, False) for op in ("add", "mul") for dt in NP
          for bs in ("channel", "scalar")]
CASES += [(op, "s8", False, "same", True) for op in ("avgpool-2x2s2", "global-avgpool", "add")]


@pytest.mark.parametrize("op, dtype, same_q, b_shape, graph_q", CASES,
                         ids=[f"{c[0]}-{c[1]}-{'sameq' if c[2] else 'requant'}-b{c[3]}"
                              f"{'-graphQ' if c[4] else ''}" for c in CASES])
def test_qdq_group_matches_onnxruntime(op: str, dtype: str, same_q: bool, b_shape: str,
                                       graph_q: bool, tmp_path) -> None:
    model = _model(op, dtype, same_q, B_SHAPES[b_shape], graph_q, seed=len(op) + 7 * same_q)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    result = sqzc.compile(path, tmp_path / "m.so", CompileOptions(opt_level=3))
    kinds = {result.graph.op(v).kind.value for v in result.graph.nodes()}
    ort_fused = OPS[op][3] in ort_optimized_op_types(model, tmp_path)
    assert ort_fused == (not graph_q), "the case no longer tests what it says"
    assert (OPS[op][4] in kinds) == ort_fused, kinds
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    lib = sqzc.load(tmp_path / "m.so", threads=1)
    for seed in (1, 2, 3):
        x = _input(dtype, graph_q, seed)
        np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])
