"""QDQ groups onnxruntime fuses into its com.microsoft QLinear ops: AveragePool,
GlobalAveragePool, LeakyRelu, Sigmoid, Add and Mul.

onnxruntime (x86-64, default session options) turns ``DQ -> op -> Q`` into
QLinearAveragePool / QLinearGlobalAveragePool / QLinearLeakyRelu and ``DQ, DQ -> op -> Q``
into QLinearAdd / QLinearMul when every input and the output have one type after its
S8->U8 rewrites (int8 included), and computes them with integer or lookup-table
arithmetic that differs from the float path by a step in some elements. sqzc's fold-qdq
must make the same choice (``sqzc.ort.rules.ort_group_types``) so every output byte agrees:
checked here per op for uint8 and int8, equal and different input/output quantization,
broadcasting operands, and an int8 group fed by a graph-input Q -> DQ pair (its input
pair becomes uint8 and the output stays int8: onnxruntime leaves it float). Each case also
asserts that sqzc's graph holds the QLinear op exactly when onnxruntime's optimized graph
does. Inputs are seeded random bytes (or floats for the Q -> DQ case).

The rule above is ``--no-fuse-int8-qdq``'s; by default sqzc fuses as onnxruntime does
with ``session.qdqisint8allowed=1`` (no S8->U8 rewrites, int8 groups fused in int8).
int8 cases run in both modes, each against its onnxruntime configuration.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import QDQ_MODES, compile_beside_ort, ort_optimized_op_types

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
    "sigmoid": ("Sigmoid", {}, False, "QLinearSigmoid", "lookup"),
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
#: int8 cases run in both QDQ modes (fused as with qdqisint8allowed=1, sqzc's default, and
#: onnxruntime's default x86-64 choice); uint8 ones only in the default (the same rule).
MODE_CASES = [(*c, fused) for c in CASES for fused in ((True, False) if c[1] == "s8" else (True,))]


@pytest.mark.parametrize("op, dtype, same_q, b_shape, graph_q, fused", MODE_CASES,
                         ids=[f"{c[0]}-{c[1]}-{'sameq' if c[2] else 'requant'}-b{c[3]}"
                              f"{'-graphQ' if c[4] else ''}{'' if c[5] else '-x86'}"
                              for c in MODE_CASES])
def test_qdq_group_matches_onnxruntime(op: str, dtype: str, same_q: bool, b_shape: str,
                                       graph_q: bool, fused: bool, tmp_path) -> None:
    """With onnxruntime's x86-64 default an int8 group fed by a graph-input Q -> DQ stays
    float (its input pair becomes uint8, its output stays int8); fused, every group is."""
    model = _model(op, dtype, same_q, B_SHAPES[b_shape], graph_q, seed=len(op) + 7 * same_q)
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = {result.graph.op(v).kind.value for v in result.graph.nodes()}
    ort_fused = OPS[op][3] in ort_optimized_op_types(model, tmp_path, fused)
    assert ort_fused == (fused or not graph_q), "the case no longer tests what it says"
    assert (OPS[op][4] in kinds) == ort_fused, kinds
    for seed in (1, 2, 3):
        x = _input(dtype, graph_q, seed)
        np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])


# ------------------------------------------------------------------ chains (S8->U8 rewrites)

LINK_OPS = {  # op -> (ONNX op, attributes, binary)
    "avgpool": ("AveragePool", {"kernel_shape": [2, 2], "strides": [1, 1]}, False),
    "leaky": ("LeakyRelu", {"alpha": 0.2}, False),
    "add-const": ("Add", {}, True),
    "square": ("Mul", {}, False),  # x * x: one DequantizeLinear read twice
    "gap": ("GlobalAveragePool", {}, False),
    "softmax": ("Softmax", {"axis": 1}, False),
}


def _chain(ops: list[str], types: list[str], seed: int) -> onnx.ModelProto:
    """float x -> Q -> DQ -> op1 -> Q -> DQ -> op2 ... -> Q -> DQ -> float y; ``types[i]``
    is the type of the i-th QuantizeLinear (len(ops) + 1 of them). onnxruntime rewrites
    the int8 Q -> DQ pairs to uint8 and fuses where the types then agree, computing in
    the rewritten type."""
    rng = np.random.default_rng(seed)
    inits, nodes, cur = [], [], "x"
    for i, t in enumerate(types):
        lowest = -128 if t == "s8" else 0
        if i and ops[i - 1] == "softmax":  # onnxruntime's quantizer: [0, 1] at 1/256
            scale, zp = np.float32(1 / 256), NP[t](lowest)
        else:
            scale = np.float32(0.02 + rng.random() * 0.05)
            zp = NP[t](rng.integers(-20, 20) + lowest + 128)
        inits += [numpy_helper.from_array(scale, f"s{i}"), numpy_helper.from_array(zp, f"z{i}")]
        nodes += [helper.make_node("QuantizeLinear", [cur, f"s{i}", f"z{i}"], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"])]
        cur = f"d{i}"
        if i == len(ops):
            break
        onnx_op, attrs, binary = LINK_OPS[ops[i]]
        ins = [cur, cur] if ops[i] == "square" else [cur]
        if binary:
            inits += [numpy_helper.from_array(rng.integers(-100, 100, [1, 6, 1, 1]).astype(np.int8),
                                              f"c{i}"),
                      numpy_helper.from_array(np.float32(0.03), f"cs{i}"),
                      numpy_helper.from_array(np.int8(0), f"cz{i}")]
            nodes.append(helper.make_node("DequantizeLinear", [f"c{i}", f"cs{i}", f"cz{i}"],
                                          [f"cd{i}"]))
            ins.append(f"cd{i}")
        nodes.append(helper.make_node(onnx_op, ins, [f"o{i}"], **attrs))
        cur = f"o{i}"
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, SHAPE)], [helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model)


QL_OPS = ("QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearLeakyRelu", "QLinearAdd",
          "QLinearMul", "QLinearSoftmax")
FOLDED = ("qavgpool", "qglobal_avgpool", "lookup", "qadd", "qmul", "qsoftmax")
CHAINS = [
    (["avgpool", "leaky", "add-const", "gap"], ["s8"] * 5),  # every pair becomes uint8
    (["avgpool", "leaky", "add-const"], ["s8", "s8", "u8", "s8"]),  # mixed declared types
    (["square", "avgpool"], ["s8", "s8", "s8"]),
    (["leaky", "softmax"], ["s8", "u8", "u8"]),
    (["avgpool", "square", "gap"], ["u8", "s8", "s8", "u8"]),
]


@pytest.mark.parametrize("fused", QDQ_MODES)
@pytest.mark.parametrize("ops, types", CHAINS, ids=["-".join(c[0]) + "-" + "".join(c[1])
                                                    for c in CHAINS])
def test_qdq_chain_matches_onnxruntime(ops: list[str], types: list[str], fused: bool,
                                       tmp_path) -> None:
    """Chains of groups with float -> Q -> DQ at the input and int8 links: every decision
    is onnxruntime's on the graph as imported (a folded neighbour no longer looks like a
    Q -> DQ pair); with its x86-64 default, int8 groups it rewrites compute in uint8
    (QLinearAveragePool and QLinearAdd round after adding the zero point); the bytes
    agree."""
    model = _chain(ops, types, seed=len(ops))
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = [result.graph.op(v).kind.value for v in result.graph.nodes()]
    ort_ops = ort_optimized_op_types(model, tmp_path, fused)
    assert sum(k in FOLDED for k in kinds) == sum(o in QL_OPS for o in ort_ops), (kinds, ort_ops)
    for seed in range(4):
        x = np.random.default_rng(seed).normal(0, 1.5, SHAPE).astype(np.float32)
        np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])
