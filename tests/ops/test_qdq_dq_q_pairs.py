"""DequantizeLinear -> QuantizeLinear pairs with equal parameters (``drop-dq-q-pairs``).

Such a pair is an exact identity, but onnxruntime removes it (its transpose optimizer,
basic level) before it decides which QDQ groups to fuse, and that decision changes
bytes: an int8 ``x -> DQ -> Q -> DQ -> op -> Q`` is fused in int8 by onnxruntime once the
pair is gone, while the pair's Q -> DQ, seen as a rewritable int8 pair, would have made
the group mixed-type and float. Each case builds an int8 graph around one such pair
(before a group, shared with another reader, with two readers of its Q, at the graph
output, with other parameters), asserts that sqzc's graph folds the same QLinear ops
onnxruntime's optimized graph holds, and that every output byte agrees on seeded random
inputs (int8: bit-exact).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import QDQ_MODES, compile_beside_ort, ort_optimized_op_types


ort = pytest.importorskip("onnxruntime")

SHAPE = [1, 8, 10, 10]
QL_OPS = {"QLinearMul": "qmul", "QLinearAdd": "qadd", "QLinearAveragePool": "qavgpool",
          "QLinearLeakyRelu": "lookup"}


def _params(name: str, scale: float, zp: int) -> list[onnx.TensorProto]:
    return [numpy_helper.from_array(np.float32(scale), f"{name}_s"),
            numpy_helper.from_array(np.int8(zp), f"{name}_z")]


def _dq(src: str, p: str, out: str) -> onnx.NodeProto:
    return helper.make_node("DequantizeLinear", [src, f"{p}_s", f"{p}_z"], [out])


def _q(src: str, p: str, out: str) -> onnx.NodeProto:
    return helper.make_node("QuantizeLinear", [src, f"{p}_s", f"{p}_z"], [out])


def _group(src: str, op: str, out: str, p_in: str, p_out: str) -> list[onnx.NodeProto]:
    """DQ(src) -> op -> Q, in int8 (``mul``/``add`` with a per-channel int8 constant)."""
    nodes = [_dq(src, p_in, f"{out}_f")]
    if op in ("mul", "add"):
        nodes.append(_dq("c", "c", f"{out}_c"))
        nodes.append(helper.make_node(op.capitalize(), [f"{out}_f", f"{out}_c"], [f"{out}_o"]))
    elif op == "avgpool":
        nodes.append(helper.make_node("AveragePool", [f"{out}_f"], [f"{out}_o"],
                                      kernel_shape=[2, 2], strides=[2, 2]))
    else:
        nodes.append(helper.make_node("LeakyRelu", [f"{out}_f"], [f"{out}_o"], alpha=0.1))
    return nodes + [_q(f"{out}_o", p_out, out)]


def _model(case: str, op: str) -> onnx.ModelProto:
    """An int8 graph around one DQ -> Q pair (``case``), with groups of ``op``."""
    rng = np.random.default_rng(len(case) + len(op))
    inits = _params("a", 0.05, 3) + _params("b", 0.07, -5) + _params("y", 0.04, 2) \
        + _params("c", 0.02, 0)
    inits.append(numpy_helper.from_array(rng.integers(-90, 90, [1, 8, 1, 1]).astype(np.int8),
                                         "c"))
    outputs = ["y"]
    if case == "before-group":  # x -> DQ -> Q(same) -> group: the pair goes, int8 group fuses
        nodes = [_dq("x", "a", "d0"), _q("d0", "a", "p")] + _group("p", op, "y", "a", "y")
    elif case == "shared-dq":  # the pair's DQ also feeds a float output: still removed
        nodes = [_dq("x", "a", "d0"), _q("d0", "a", "p"), helper.make_node("Relu", ["d0"], ["r"])]
        nodes += _group("p", op, "y", "a", "y")
        outputs.append("r")
    elif case == "two-readers":  # the pair's Q feeds two groups: onnxruntime keeps it
        nodes = [_dq("x", "a", "d0"), _q("d0", "a", "p")] + _group("p", op, "y", "a", "y") \
            + _group("p", op, "y2", "a", "b")
        outputs.append("y2")
    elif case == "at-output":  # group -> Q -> DQ -> Q(same) -> graph output: the group's Q
        nodes = _group("x", op, "g", "a", "b") + [_dq("g", "b", "d1"), _q("d1", "b", "y")]
    elif case == "chain-at-output":  # two pairs: both go (the first one's DQ at once)
        nodes = _group("x", op, "g", "a", "b") + [_dq("g", "b", "d1"), _q("d1", "b", "p"),
                                                  _dq("p", "b", "d2"), _q("d2", "b", "y")]
    elif case == "input-to-output":  # x -> DQ -> Q(same) -> y: y is a copy of x
        nodes = [_dq("x", "a", "d0"), _q("d0", "a", "y")]
    else:  # "other-params": DQ and Q differ, nothing is removed
        nodes = [_dq("x", "a", "d0"), _q("d0", "b", "p")] + _group("p", op, "y", "b", "y")
    graph = helper.make_graph(
        nodes, "pairs", [helper.make_tensor_value_info("x", TensorProto.INT8, SHAPE)],
        [helper.make_tensor_value_info(o, TensorProto.FLOAT if o == "r" else TensorProto.INT8,
                                       None) for o in outputs], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return onnx.shape_inference.infer_shapes(model)


CASES = [(c, op) for c in ("before-group", "shared-dq", "two-readers", "at-output",
                           "chain-at-output", "other-params") for op in ("mul", "avgpool")]
CASES += [("before-group", "add"), ("before-group", "leaky"), ("at-output", "leaky"),
          ("input-to-output", "mul")]


@pytest.mark.parametrize("fused", QDQ_MODES)
@pytest.mark.parametrize("case, op", CASES, ids=[f"{c}-{o}" for c, o in CASES])
def test_dq_q_pair_matches_onnxruntime(case: str, op: str, fused: bool, tmp_path) -> None:
    """In both QDQ modes (the pair matters most with onnxruntime's x86-64 default)."""
    model = _model(case, op)
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = sorted(k for v in result.graph.nodes()
                   if (k := result.graph.op(v).kind.value) in QL_OPS.values())
    ort_ops = sorted(QL_OPS[o] for o in ort_optimized_op_types(model, tmp_path, fused)
                     if o in QL_OPS)
    assert kinds == ort_ops
    for seed in range(3):
        x = np.random.default_rng(seed).integers(-128, 128, SHAPE).astype(np.int8)
        got = lib.run({"x": x})
        for name, want in zip(sess.get_outputs(), sess.run(None, {"x": x}), strict=True):
            np.testing.assert_array_equal(got[name.name], want)

