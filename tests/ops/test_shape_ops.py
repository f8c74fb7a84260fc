"""Data movement against onnxruntime: Flatten, Reshape, Squeeze, Unsqueeze, Transpose,
Concat and the PyTorch ``x.view(x.size(0), -1)`` shape head."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_builders import I64, init, make_model, single
from sqz_testing import assert_matches_ort


def _unique_seq(shape: list[int]) -> np.ndarray:
    """Distinct values in row-major order, so any misplaced element shows."""
    return (np.arange(int(np.prod(shape)), dtype=np.float32) * 0.5 - 7).reshape(shape)


# ---------------------------------------------------------------- Flatten


@pytest.mark.parametrize("axis,opset", [
    (a, o) for o in (9, 13, 21) for a in (None, 0, 1, 2, 3, 4, -1, -2, -4)
    if o >= 11 or a is None or a >= 0], ids=str)
def test_flatten(axis: int | None, opset: int) -> None:
    """``torch.flatten(x, 1)`` (axis 1, the classifier head) and every other axis, including
    0 (-> [1, N]), rank (-> [N, 1]) and negative axes (opset >= 11)."""
    attrs = {} if axis is None else {"axis": axis}
    shape = [1, 3, 4, 5]
    assert_matches_ort(single("Flatten", {"x": shape}, opset=opset, **attrs),
                       inputs={"x": _unique_seq(shape)})


def test_flatten_after_relu() -> None:
    """Flatten of a computed tensor (not a graph input) feeding a Relu."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Flatten", ["r"], ["f"]),
             helper.make_node("Relu", ["f"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 3]}, ["y"]))


# ---------------------------------------------------------------- Reshape


@pytest.mark.parametrize("target", [
    [1, -1], [0, -1], [1, 12, 5], [0, 0, -1], [-1, 5], [0, 3, 2, 10], [60],
    [1, 3, 20, 1], [0, 0, 0, 0], [3, -1, 1], [-1],
], ids=str)
@pytest.mark.parametrize("opset", [5, 13, 14, 21])
def test_reshape(target: list[int], opset: int) -> None:
    """Reshape with 0 (copy the input dim) and -1 (infer), e.g. ``x.view(1, -1)``,
    ``x.reshape(0, -1)`` from tf2onnx, rank changes."""
    shape = [1, 3, 4, 5]
    m = single("Reshape", {"x": shape}, opset=opset, initializers=[init("shape", target)])
    assert_matches_ort(m, inputs={"x": _unique_seq(shape)})


@pytest.mark.parametrize("target", [[1, 60], [3, 4, 5], [-1, 20], [0, 12, 5]], ids=str)
def test_reshape_allowzero(target: list[int]) -> None:
    """Reshape-14 ``allowzero=1``: a 0 in the target is a literal zero-size dim (not used
    here since the input is non-empty); other targets behave as usual."""
    shape = [1, 3, 4, 5]
    m = single("Reshape", {"x": shape}, opset=14, initializers=[init("shape", target)],
               allowzero=1 if 0 not in target else 0)
    assert_matches_ort(m, inputs={"x": _unique_seq(shape)})


def test_reshape_of_transposed() -> None:
    """Transpose -> Reshape (ShuffleNet channel shuffle: view/transpose/view)."""
    shape = [1, 6, 3, 3]
    nodes = [helper.make_node("Reshape", ["x", "s1"], ["a"]),
             helper.make_node("Transpose", ["a"], ["b"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["b", "s2"], ["y"])]
    inits = [init("s1", [1, 2, 3, 3, 3]), init("s2", [1, -1, 3, 3])]
    assert_matches_ort(make_model(nodes, {"x": shape}, ["y"], inits),
                       inputs={"x": _unique_seq(shape)})


# ---------------------------------------------------------------- Squeeze / Unsqueeze


@pytest.mark.parametrize("axes,opset", [
    (a, o) for o in (1, 11, 13, 21) for a in (None, [1], [3], [1, 3], [-1], [-3, -1], [0])
    if o >= 11 or a is None or min(a) >= 0], ids=str)
def test_squeeze(axes: list[int] | None, opset: int) -> None:
    """Squeeze with axes as an attribute (opset < 13) or an input (opset >= 13), negative
    axes (opset >= 11), and no axes (every size-1 dim, including the batch)."""
    shape = [1, 1, 4, 1]
    inits, attrs = [], {}
    if axes is not None:
        if opset >= 13:
            inits = [init("axes", axes)]
        else:
            attrs["axes"] = axes
    m = single("Squeeze", {"x": shape}, opset=opset, initializers=inits, **attrs)
    assert_matches_ort(m, inputs={"x": _unique_seq(shape)})


@pytest.mark.parametrize("axes,opset", [
    (a, o) for o in (1, 11, 13, 21)
    for a in ([0], [2], [4], [1, 2], [0, 5], [-1], [-1, 0], [3, 1]) if o >= 11 or min(a) >= 0],
    ids=str)
def test_unsqueeze(axes: list[int], opset: int) -> None:
    """Unsqueeze with axes attribute vs input, unsorted and negative axes (against the
    output rank)."""
    shape = [1, 3, 4, 2]
    if opset >= 13:
        m = single("Unsqueeze", {"x": shape}, opset=opset, initializers=[init("axes", axes)])
    else:
        m = single("Unsqueeze", {"x": shape}, opset=opset, axes=axes)
    assert_matches_ort(m, inputs={"x": _unique_seq(shape)})


def test_squeeze_unsqueeze_roundtrip() -> None:
    """Unsqueeze -> Relu -> Squeeze on computed tensors."""
    nodes = [helper.make_node("Unsqueeze", ["x", "ax"], ["u"]),
             helper.make_node("Relu", ["u"], ["r"]),
             helper.make_node("Squeeze", ["r", "ax"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 4, 3]}, ["y"], [init("ax", [2])]))


# ---------------------------------------------------------------- Transpose


@pytest.mark.parametrize("perm,shape", [
    (None, [2, 3, 4]), ([0, 2, 3, 1], [1, 3, 4, 5]), ([0, 3, 1, 2], [1, 4, 5, 3]),
    ([1, 0], [3, 7]), ([0, 2, 1, 3], [1, 3, 4, 5]), ([3, 2, 1, 0], [1, 2, 3, 4]),
    ([0, 1, 3, 2], [1, 2, 3, 5]), ([2, 0, 1], [3, 4, 5]), (None, [1, 2, 3, 4, 2]),
    ([0, 2, 1, 3, 4], [1, 2, 3, 3, 3]),
], ids=str)
@pytest.mark.parametrize("opset", [1, 13, 21])
def test_transpose(perm: list[int] | None, shape: list[int], opset: int) -> None:
    """NCHW<->NHWC (tf2onnx), swapping the last two axes (``x.transpose(-1, -2)``), the
    default (reversed) perm, rank 2 to 5."""
    attrs = {} if perm is None else {"perm": perm}
    assert_matches_ort(single("Transpose", {"x": shape}, opset=opset, **attrs),
                       inputs={"x": _unique_seq(shape)})


def test_transpose_then_conv_layout() -> None:
    """tf2onnx NHWC model: Transpose(0,3,1,2) -> Conv -> Transpose(0,2,3,1)."""
    w = np.random.default_rng(2).standard_normal((4, 3, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["x"], ["a"], perm=[0, 3, 1, 2]),
             helper.make_node("Conv", ["a", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Transpose", ["c"], ["y"], perm=[0, 2, 3, 1])]
    assert_matches_ort(make_model(nodes, {"x": [1, 5, 6, 3]}, ["y"], [init("W", w)]))


# ---------------------------------------------------------------- Concat


@pytest.mark.parametrize("axis,opset", [
    (a, o) for o in (7, 11, 13) for a in (1, 2, 3, -1, -3) if o >= 11 or a >= 0], ids=str)
@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_concat_graph_inputs(axis: int, n: int, opset: int) -> None:
    """Concat of 1-4 graph inputs with different extents along axis 1/2/3 (and negative
    axes from opset 11); one input is a plain copy."""
    norm = axis % 4
    ins = {}
    for i in range(n):
        shape = [1, 2, 3, 4]
        shape[norm] = i + 1
        ins[f"x{i}"] = shape
    assert_matches_ort(single("Concat", ins, opset=opset, axis=axis))


@pytest.mark.parametrize("axis", [1, 2, 3])
def test_concat_computed_operands(axis: int) -> None:
    """SqueezeNet Fire module: Relu(Conv1x1) and Relu(Conv3x3) concatenated on channels --
    operands written straight into the concat buffer; also along H and W."""
    rng = np.random.default_rng(3)
    inits = [init("W1", rng.standard_normal((2, 3, 1, 1)).astype(np.float32)),
             init("W3", rng.standard_normal((3, 3, 3, 3)).astype(np.float32)),
             init("B3", rng.standard_normal((3,)).astype(np.float32))]
    if axis != 1:
        inits[1] = init("W3", rng.standard_normal((2, 3, 3, 3)).astype(np.float32))
        inits[2] = init("B3", rng.standard_normal((2,)).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "W1"], ["c1"]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["x", "W3", "B3"], ["c3"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c3"], ["r3"]),
             helper.make_node("Concat", ["r1", "r3"], ["y"], axis=axis)]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 5, 6]}, ["y"], inits))


def test_concat_mixed_operands() -> None:
    """One graph input, one constant, one computed tensor and the same tensor twice."""
    c = np.random.default_rng(4).standard_normal((1, 2, 3, 3)).astype(np.float32)
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Concat", ["x", "c", "r", "r"], ["y"], axis=1)]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 3, 3]}, ["y"], [init("c", c)]))


def test_concat_operand_also_output() -> None:
    """A concat operand that is itself a graph output keeps its own buffer."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Concat", ["r", "x"], ["y"], axis=2)]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 3]}, ["y", "r"]))


def test_nested_concat() -> None:
    """Concat feeding a Concat (Inception blocks): a tensor can live in one buffer only."""
    nodes = [helper.make_node("Relu", ["x"], ["a"]),
             helper.make_node("Relu", ["z"], ["b"]),
             helper.make_node("Concat", ["a", "b"], ["ab"], axis=1),
             helper.make_node("Relu", ["ab"], ["c"]),
             helper.make_node("Concat", ["c", "a"], ["y"], axis=1)]
    assert_matches_ort(make_model(nodes, {"x": [1, 2, 3, 3], "z": [1, 1, 3, 3]}, ["y"]))


# ---------------------------------------------------------------- the PyTorch shape head


@pytest.mark.parametrize("opset", [9, 11, 13])
def test_pytorch_shape_head(opset: int) -> None:
    """``x.view(x.size(0), -1)`` as exported by PyTorch: Shape -> Gather(0) -> Unsqueeze ->
    Concat(with [-1]) -> Reshape (folded at compile time), after a GlobalAveragePool."""
    unsq_axes = {"axes": [0]} if opset < 13 else {}
    unsq_in = ["n"] if opset < 13 else ["n", "ax0"]
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Constant", [], ["i0"],
                         value=helper.make_tensor("i0", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", unsq_in, ["nu"], **unsq_axes),
        helper.make_node("Concat", ["nu", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["p", "shape"], ["y"]),
    ]
    inits = [init("minus1", [-1])] + ([init("ax0", [0])] if opset >= 13 else [])
    assert_matches_ort(make_model(nodes, {"x": [1, 6, 3, 3]}, ["y"], inits, opset))


def test_shape_slice_reshape_head() -> None:
    """tf2onnx/PyTorch variant: Shape -> Slice([0:1]) -> Concat([-1]) -> Reshape, plus
    Flatten-free ``x.reshape(x.shape[0], -1)`` through Cast(int64) of the gathered dim."""
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en"], ["n"]),
        helper.make_node("Cast", ["n"], ["nc"], to=I64),
        helper.make_node("Concat", ["nc", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["r"]),
        helper.make_node("Relu", ["r"], ["y"]),
    ]
    inits = [init("st", [0]), init("en", [1]), init("minus1", [-1])]
    assert_matches_ort(make_model(nodes, {"x": [1, 4, 2, 3]}, ["y"], inits))
