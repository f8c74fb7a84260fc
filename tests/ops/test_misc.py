"""Constant, Dropout, Identity and graph-output corner cases against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_builders import init, make_model, rand, single
from sqz_testing import assert_matches_ort

# ---------------------------------------------------------------- Constant


@pytest.mark.parametrize("opset", [9, 11, 12, 13, 21])
@pytest.mark.parametrize("const_first", [False, True])
def test_constant_tensor_operand(opset: int, const_first: bool) -> None:
    """PyTorch exports literals (``x * 2.5``, ``1 - x``, per-channel tensors) as Constant
    nodes with a ``value`` tensor."""
    value = rand((3, 1, 1), 21)
    nodes = [helper.make_node("Constant", [], ["k"], value=helper.make_tensor(
                 "k", TensorProto.FLOAT, [3, 1, 1], value.ravel().tolist())),
             helper.make_node("Sub", ["k", "x"] if const_first else ["x", "k"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 2, 4]}, ["y"], opset=opset))


@pytest.mark.parametrize("attr,value", [
    ("value_float", 0.75), ("value_floats", [0.5, -1.0, 2.0, 0.25]),
], ids=["value_float", "value_floats"])
@pytest.mark.parametrize("opset", [12, 13, 21])
def test_constant_float_attributes(attr: str, value: object, opset: int) -> None:
    """Constant-12+ ``value_float`` / ``value_floats`` (onnxscript / hand-written models)."""
    nodes = [helper.make_node("Constant", [], ["k"], **{attr: value}),
             helper.make_node("Mul", ["x", "k"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 4]}, ["y"], opset=opset))


@pytest.mark.parametrize("opset", [12, 13])
def test_constant_ints_as_reshape_target(opset: int) -> None:
    """Constant ``value_ints`` as a Reshape target (folded at compile time)."""
    nodes = [helper.make_node("Constant", [], ["s"], value_ints=[1, -1, 6]),
             helper.make_node("Reshape", ["x", "s"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 4]}, ["y"], opset=opset))


def test_constant_scalar_int_gather_index() -> None:
    """Constant ``value_int`` used as a Gather index in folded shape arithmetic."""
    nodes = [helper.make_node("Shape", ["x"], ["s"]),
             helper.make_node("Constant", [], ["i"], value_int=1),
             helper.make_node("Gather", ["s", "i"], ["c"], axis=0),
             helper.make_node("Unsqueeze", ["c", "ax"], ["cu"]),
             helper.make_node("Concat", ["one", "cu", "minus1"], ["shape"], axis=0),
             helper.make_node("Reshape", ["x", "shape"], ["y"])]
    inits = [init("ax", [0]), init("one", [1]), init("minus1", [-1])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits))


# ---------------------------------------------------------------- Dropout / Identity


@pytest.mark.parametrize("opset", [7, 10, 12, 13, 22])
@pytest.mark.parametrize("with_mask_output", [False, True], ids=["no_mask", "mask_unused"])
def test_dropout_inference(opset: int, with_mask_output: bool) -> None:
    """``nn.Dropout`` exported in eval mode: Dropout-7/10 with a ``ratio`` attribute,
    Dropout-12+ with a constant ratio input and ``training_mode=False`` input; the mask
    output may be declared but unused."""
    attrs, inits, ins = {}, [], ["r"]
    if opset < 12:
        attrs["ratio"] = 0.3
    else:
        inits = [init("ratio", np.array(0.3, np.float32)), init("train", np.array(False))]
        ins = ["r", "ratio", "train"]
    outs = ["d", "mask"] if with_mask_output else ["d"]
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Dropout", ins, outs, **attrs),
             helper.make_node("Add", ["d", "x"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 4, 4]}, ["y"], inits, opset))


@pytest.mark.parametrize("opset", [12, 13])
def test_dropout_ratio_only(opset: int) -> None:
    """Dropout-12 with only the ratio input (training_mode omitted -> inference)."""
    m = single("Dropout", {"x": [1, 2, 3, 3]}, opset=opset,
               initializers=[init("ratio", np.array(0.5, np.float32))])
    assert_matches_ort(m)


@pytest.mark.parametrize("opset", [7, 13, 14, 16, 19, 21])
def test_identity_runtime(opset: int) -> None:
    """Identity between computed tensors and as the producer of the graph output."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Identity", ["a"], ["b"]),
             helper.make_node("Identity", ["b"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 2, 5]}, ["y"], opset=opset))


def test_identity_of_graph_input_is_output() -> None:
    """``y = Identity(x)``: the output needs its own buffer (a copy of the input)."""
    assert_matches_ort(single("Identity", {"x": [1, 4, 3]}))


def test_identity_on_weight() -> None:
    """PyTorch exports shared/tied weights through Identity nodes on initializers."""
    nodes = [helper.make_node("Identity", ["W0"], ["W"]),
             helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])]
    m = make_model(nodes, {"x": [1, 2, 4, 4]}, ["y"], [init("W0", rand((3, 2, 3, 3), 22))])
    assert_matches_ort(m)


@pytest.mark.parametrize("opset", [6, 13, 21])
def test_cast_same_type_of_graph_input(opset: int) -> None:
    """``Cast(to=FLOAT)`` of a float32 graph input (exporters emit redundant casts): the
    output needs its own buffer like Identity."""
    m = single("Cast", {"x": [1, 3, 2, 2]}, opset=opset, to=TensorProto.FLOAT)
    assert_matches_ort(m, seed=23)


def test_two_outputs_one_computed_tensor_each() -> None:
    """Several graph outputs, including an intermediate tensor that is also consumed."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Mul", ["a", "x"], ["b"]),
             helper.make_node("Add", ["b", "a"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 3]}, ["y", "a", "b"]))


def test_two_inputs_two_outputs_order() -> None:
    """Outputs returned in graph order even when produced in another order."""
    nodes = [helper.make_node("Relu", ["q"], ["late"]),
             helper.make_node("Sub", ["p", "q"], ["early"])]
    assert_matches_ort(make_model(nodes, {"p": [1, 5], "q": [1, 5]}, ["early", "late"]))


@pytest.mark.parametrize("opt_level", [0, 3])
def test_graph_input_listed_as_output(opt_level: int) -> None:
    """A graph input that is also a graph output (no node between them). Values are unique
    to each parametrization so a recycled numpy buffer cannot hold the expected output."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    m = make_model(nodes, {"x": [1, 7, 5]}, ["y", "x"])
    assert_matches_ort(m, opt_level=opt_level, seed=31 + opt_level)


@pytest.mark.parametrize("opt_level", [0, 3])
def test_initializer_listed_as_output(opt_level: int) -> None:
    """An initializer that is also a graph output."""
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    c = rand((2, 9), 32 + opt_level, 5.0) + 10.0
    m = make_model(nodes, {"x": [1, 3]}, ["y", "c"], [init("c", c)])
    assert_matches_ort(m, opt_level=opt_level)


@pytest.mark.parametrize("opt_level", [0, 3])
def test_constant_node_as_output(opt_level: int) -> None:
    """A Constant node (or Identity of an initializer) whose tensor is a graph output."""
    c = rand((3, 7), 40 + opt_level, 5.0) - 20.0
    nodes = [helper.make_node("Constant", [], ["k"], value=helper.make_tensor(
                 "k", TensorProto.FLOAT, [3, 7], c.ravel().tolist())),
             helper.make_node("Identity", ["W"], ["w_out"]),
             helper.make_node("Relu", ["x"], ["y"])]
    m = make_model(nodes, {"x": [1, 3]}, ["y", "k", "w_out"],
                   [init("W", rand((4, 6), 50 + opt_level, 3.0) + 50.0)])
    assert_matches_ort(m, opt_level=opt_level)


def test_folded_subgraph_as_output() -> None:
    """An output computed only from constants (folded at -O1+, computed at -O0)."""
    nodes = [helper.make_node("Relu", ["c"], ["k"]),
             helper.make_node("Mul", ["k", "c"], ["y"]),
             helper.make_node("Relu", ["x"], ["z"])]
    m = make_model(nodes, {"x": [1, 3]}, ["y", "z"], [init("c", rand((2, 5), 35))])
    for level in (0, 3):
        assert_matches_ort(m, opt_level=level)
