"""QDQ MatMul groups: ``DQ(a), DQ(b) -> MatMul -> Q`` against onnxruntime.

onnxruntime (x86-64, default session) fuses the group into QLinearMatMul when ``a`` and
the output have one type after its S8->U8 rewrites and that type is uint8 (``b`` may be
uint8 or int8, a constant or an input, per tensor or per column); with
``session.qdqisint8allowed=1`` int8 groups fuse too, when ``b`` is int8 as well. Its integer matmul and float
requantization differ from the float path by a step in some elements, so sqzc must
fold exactly the groups onnxruntime fuses (``fold-qdq``'s ``qmatmul``, or with
``--fuse-int8-qdq``) for the bytes to agree. Each case asserts the fusion decision and
bit-exact outputs on seeded random inputs.
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
M, K, N = 6, 40, 12


def _model(a_t: str, b_t: str, y_t: str, b_const: bool, per_column: bool,
           graph_q: bool) -> onnx.ModelProto:
    rng = np.random.default_rng(len(a_t + b_t + y_t) + 2 * b_const + per_column)
    lo = {"u8": 0, "s8": -128}
    b_scale = (0.01 + rng.random(N) * 0.02).astype(np.float32) if per_column \
        else np.float32(0.02)
    b_zp = (rng.integers(-3, 4, N) + lo[b_t] + 128).astype(NP[b_t]) if per_column \
        else NP[b_t](lo[b_t] + 128 + 2)
    inits = [numpy_helper.from_array(np.float32(0.05), "as"),
             numpy_helper.from_array(NP[a_t](lo[a_t] + 131), "az"),
             numpy_helper.from_array(b_scale, "bs"), numpy_helper.from_array(b_zp, "bz"),
             numpy_helper.from_array(np.float32(0.4), "ys"),
             numpy_helper.from_array(NP[y_t](lo[y_t] + 125), "yz")]
    inputs = []
    nodes = []
    if graph_q:  # float a -> Q -> DQ: onnxruntime's S8->U8 rewrites an int8 pair
        inputs.append(helper.make_tensor_value_info("x", TensorProto.FLOAT, [M, K]))
        nodes.append(helper.make_node("QuantizeLinear", ["x", "as", "az"], ["a"]))
    else:
        inputs.append(helper.make_tensor_value_info("a", ONNX_T[a_t], [M, K]))
    if b_const:
        inits.append(numpy_helper.from_array(
            rng.integers(np.iinfo(NP[b_t]).min, np.iinfo(NP[b_t]).max + 1, [K, N])
            .astype(NP[b_t]), "b"))
    else:
        inputs.append(helper.make_tensor_value_info("b", ONNX_T[b_t], [K, N]))
    axis = {"axis": 1} if per_column else {}
    nodes += [helper.make_node("DequantizeLinear", ["a", "as", "az"], ["af"]),
              helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], **axis),
              helper.make_node("MatMul", ["af", "bf"], ["m"]),
              helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_matmul", inputs,
                              [helper.make_tensor_value_info("y", ONNX_T[y_t], None)], inits)
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


CASES = [(a, b, y, const, False, False) for a in NP for b in NP for y in NP
         for const in (True, False)]
CASES += [("u8", b, "u8", True, True, False) for b in NP]  # per-column b
CASES += [("s8", "s8", "s8", True, False, True), ("s8", "s8", "u8", True, False, True)]


@pytest.mark.parametrize("int8_allowed", [False, True], ids=["default", "int8-allowed"])
@pytest.mark.parametrize("a_t, b_t, y_t, b_const, per_column, graph_q", CASES,
                         ids=[f"{c[0]}x{c[1]}->{c[2]}-{'const' if c[3] else 'input'}"
                              f"{'-percol' if c[4] else ''}{'-graphQ' if c[5] else ''}"
                              for c in CASES])
def test_qdq_matmul_matches_onnxruntime(a_t: str, b_t: str, y_t: str, b_const: bool,
                                        per_column: bool, graph_q: bool,
                                        int8_allowed: bool, tmp_path) -> None:
    model = _model(a_t, b_t, y_t, b_const, per_column, graph_q)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    result = sqzc.compile(path, tmp_path / "m.so",
                          CompileOptions(opt_level=3, fuse_int8_qdq=int8_allowed))
    folded = any(result.graph.op(v).kind.value == "qmatmul" for v in result.graph.nodes())
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if int8_allowed:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    assert folded == ("QLinearMatMul" in ort_optimized_op_types(model, tmp_path, int8_allowed))
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    lib = sqzc.load(tmp_path / "m.so", threads=1)
    rng = np.random.default_rng(3)
    for _ in range(3):
        feeds = {}
        if graph_q:
            feeds["x"] = rng.normal(0, 3, [M, K]).astype(np.float32)
        else:
            feeds["a"] = rng.integers(np.iinfo(NP[a_t]).min, np.iinfo(NP[a_t]).max + 1,
                                      [M, K]).astype(NP[a_t])
        if not b_const:
            feeds["b"] = rng.integers(np.iinfo(NP[b_t]).min, np.iinfo(NP[b_t]).max + 1,
                                      [K, N]).astype(NP[b_t])
        np.testing.assert_array_equal(lib.run(feeds)["y"], sess.run(None, feeds)[0])
