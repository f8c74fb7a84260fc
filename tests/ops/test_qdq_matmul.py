"""QDQ MatMul and Gemm groups against onnxruntime.

onnxruntime (x86-64, default session) fuses ``DQ(a), DQ(b) -> MatMul -> Q`` into
QLinearMatMul when ``a`` and the output have one type after its S8->U8 rewrites and that
type is uint8 (``b`` may be uint8 or int8, a constant or an input, per tensor or per
column); with ``session.qdqisint8allowed=1`` int8 groups fuse too, when ``b`` is int8 as
well. It fuses QDQ Gemm into QGemm (int8 included). Their integer matmul and float
requantization differ from the float path by a step in some elements, so sqzc must fold
exactly the groups onnxruntime fuses (``fold-qdq``'s ``qmatmul``, or with
``--fuse-int8-qdq``) for the bytes to agree. Each case asserts the fusion decision and
bit-exact outputs on seeded random inputs.
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
    result, lib, sess = compile_beside_ort(model, tmp_path, int8_allowed)
    folded = any(result.graph.op(v).kind.value == "qmatmul" for v in result.graph.nodes())
    assert folded == ("QLinearMatMul" in ort_optimized_op_types(model, tmp_path, int8_allowed))
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


# ------------------------------------------------------------------ Gemm -> QGemm

GM, GK, GN = 16, 200, 24


def _gemm(a_t: str, y_t: str, trans_b: bool, bias: bool, per_column: bool) -> onnx.ModelProto:
    """DQ(a) x DQ(int8 B) [+ DQ(int32 C)] -> Gemm -> Q (nn.Linear's QDQ export with
    ``transB``); K is large enough that the float path rounds differently in places."""
    rng = np.random.default_rng(11 + trans_b + 2 * bias + 4 * per_column)
    lo = {"u8": 0, "s8": -128}
    b_shape = [GN, GK] if trans_b else [GK, GN]
    b_scale = (0.004 + rng.random(GN) * 0.004).astype(np.float32) if per_column \
        else np.float32(0.005)
    b_zp = np.zeros(GN, np.int8) if per_column else np.int8(0)
    inits = [numpy_helper.from_array(np.float32(0.05), "as"),
             numpy_helper.from_array(NP[a_t](lo[a_t] + 131), "az"),
             numpy_helper.from_array(b_scale, "bs"), numpy_helper.from_array(b_zp, "bz"),
             numpy_helper.from_array(np.float32(0.25), "ys"),
             numpy_helper.from_array(NP[y_t](lo[y_t] + 125), "yz"),
             numpy_helper.from_array(rng.integers(-127, 128, b_shape).astype(np.int8), "b")]
    axis = {"axis": 0 if trans_b else 1} if per_column else {}
    nodes = [helper.make_node("DequantizeLinear", ["a", "as", "az"], ["af"]),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], **axis)]
    ins = ["af", "bf"]
    if bias:
        c_scale = np.float32(0.05) * b_scale  # the quantizer's x_scale * w_scale
        inits += [numpy_helper.from_array(rng.integers(-3000, 3000, GN).astype(np.int32), "c"),
                  numpy_helper.from_array(c_scale.astype(np.float32), "cs")]
        nodes.append(helper.make_node("DequantizeLinear", ["c", "cs"], ["cf"],
                                      **({"axis": 0} if per_column else {})))
        ins.append("cf")
    nodes += [helper.make_node("Gemm", ins, ["m"], transB=int(trans_b)),
              helper.make_node("QuantizeLinear", ["m", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "qdq_gemm",
                              [helper.make_tensor_value_info("a", ONNX_T[a_t], [GM, GK])],
                              [helper.make_tensor_value_info("y", ONNX_T[y_t], None)], inits)
    return onnx.shape_inference.infer_shapes(
        helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]))


GEMM_CASES = [(a, a, tb, bias, pc) for a in NP for tb in (False, True) for bias in (False, True)
              for pc in (False, True)]
GEMM_CASES += [("u8", "s8", True, True, False)]  # mixed types: onnxruntime keeps it float


@pytest.mark.parametrize("int8_allowed", [False, True], ids=["default", "int8-allowed"])
@pytest.mark.parametrize("a_t, y_t, trans_b, bias, per_column", GEMM_CASES,
                         ids=[f"{c[0]}->{c[1]}{'-transB' if c[2] else ''}"
                              f"{'-bias' if c[3] else ''}{'-percol' if c[4] else ''}"
                              for c in GEMM_CASES])
def test_qdq_gemm_matches_onnxruntime(a_t: str, y_t: str, trans_b: bool, bias: bool,
                                      per_column: bool, int8_allowed: bool, tmp_path) -> None:
    """onnxruntime fuses QDQ Gemm into QGemm (int8 included, without the session option):
    sqzc folds the same groups into a ``qmatmul`` with the int32 bias, bit-exact."""
    model = _gemm(a_t, y_t, trans_b, bias, per_column)
    result, lib, sess = compile_beside_ort(model, tmp_path, int8_allowed)
    folded = any(result.graph.op(v).kind.value == "qmatmul" for v in result.graph.nodes())
    assert folded == ("QGemm" in ort_optimized_op_types(model, tmp_path, int8_allowed))
    rng = np.random.default_rng(5)
    for _ in range(3):
        a = rng.integers(np.iinfo(NP[a_t]).min, np.iinfo(NP[a_t]).max + 1,
                         [GM, GK]).astype(NP[a_t])
        np.testing.assert_array_equal(lib(a), sess.run(None, {"a": a})[0])
