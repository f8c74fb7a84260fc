"""Activations (Relu, Clip, LeakyRelu), broadcasting Add/Sub/Mul/Div and
BatchNormalization against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand, single
from sqz_testing import assert_matches_ort

SPECIALS = np.array([-np.inf, -3e38, -6.5, -1.0, -1e-30, -0.0, 0.0, 1e-30, 0.5, 5.9, 6.0,
                     6.5, 3e38, np.inf], np.float32)


def _with_specials(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    x = rand(shape, seed, 3.0)
    flat = x.reshape(-1)
    flat[:SPECIALS.size] = SPECIALS
    return x


# ---------------------------------------------------------------- Relu / LeakyRelu


@pytest.mark.parametrize("opset", [6, 13, 14])
@pytest.mark.parametrize("shape", [[1, 3, 5, 7], [2, 17], [1, 33]], ids=str)
def test_relu(opset: int, shape: list[int]) -> None:
    """Standalone Relu (not after a Conv: nothing to fuse into), 2-D and 4-D."""
    assert_matches_ort(single("Relu", {"x": shape}, opset=opset))


def test_relu_special_values() -> None:
    """Relu of +-inf, +-0, denormal-ish and huge values."""
    x = _with_specials((1, 2, 3, 5))
    assert_matches_ort(single("Relu", {"x": [1, 2, 3, 5]}), inputs={"x": x})


@pytest.mark.parametrize("alpha", [None, 0.1, 0.2, 1.5, -0.5, 0.0])
@pytest.mark.parametrize("opset", [6, 16])
def test_leaky_relu(alpha: float | None, opset: int) -> None:
    """LeakyRelu with the default alpha (0.01), PyTorch's ``negative_slope`` values, a slope
    above 1, a negative slope and zero; infinities included (except -inf * 0 = NaN, which
    test_nan_propagation covers)."""
    attrs = {} if alpha is None else {"alpha": alpha}
    x = _with_specials((1, 3, 4, 5))
    if alpha == 0.0:
        x[np.isneginf(x)] = -1e30
    assert_matches_ort(single("LeakyRelu", {"x": [1, 3, 4, 5]}, opset=opset, **attrs),
                       inputs={"x": x})


# ---------------------------------------------------------------- Clip


@pytest.mark.parametrize("bounds", [
    {"min": 0.0, "max": 6.0}, {"min": -1.0, "max": 1.0}, {"min": 0.0}, {"max": 0.5},
    {}, {"min": 1.0, "max": 1.0},
], ids=str)
def test_clip_opset6_attributes(bounds: dict) -> None:
    """Clip-6 with min/max attributes (old Keras/Caffe2 ReLU6 exports), a missing bound
    (defaults to float32 lowest/max, so +-inf inputs clip to +-3.4e38), min == max."""
    x = _with_specials((1, 2, 4, 5))
    assert_matches_ort(single("Clip", {"x": [1, 2, 4, 5]}, opset=6, **bounds), inputs={"x": x})


@pytest.mark.parametrize("opset", [11, 12, 13])
@pytest.mark.parametrize("lo,hi", [
    (0.0, 6.0), (-1.0, 1.0), (0.0, None), (None, 6.0), (None, None), (-0.5, None),
    (1.0, -1.0),
], ids=str)
def test_clip_inputs(opset: int, lo: float | None, hi: float | None) -> None:
    """Clip-11/13 with constant min/max *inputs* (PyTorch ``hardtanh``/``clamp``/ReLU6):
    either may be missing (empty input name or dropped trailing input); a missing one is
    float32 lowest/max per the spec; min > max gives max everywhere."""
    inits, names = [], ["x"]
    if lo is not None:
        inits.append(init("lo", np.array(lo, np.float32)))
    names.append("lo" if lo is not None else "")
    if hi is not None:
        inits.append(init("hi", np.array(hi, np.float32)))
        names.append("hi")
    while names[-1] == "":
        names.pop()
    x = _with_specials((1, 2, 4, 5))
    m = single("Clip", {"x": [1, 2, 4, 5]}, opset=opset, initializers=inits, node_inputs=names)
    assert_matches_ort(m, inputs={"x": x})


@pytest.mark.parametrize("opset", [11, 13])
def test_clip_bounds_from_constant_nodes(opset: int) -> None:
    """PyTorch exports ``clamp(0, 6)`` with the bounds as Constant nodes, not initializers."""
    nodes = [helper.make_node("Constant", [], ["lo"],
                              value=helper.make_tensor("v", 1, [], [0.0])),
             helper.make_node("Constant", [], ["hi"],
                              value=helper.make_tensor("v", 1, [], [6.0])),
             helper.make_node("Clip", ["x", "lo", "hi"], ["y"])]
    x = _with_specials((1, 3, 5, 5))
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], opset=opset),
                       inputs={"x": x})


# ---------------------------------------------------------------- binary arithmetic


BINARY_OPS = ["Add", "Sub", "Mul", "Div"]

#: (shape of A, shape of B): scalar, per-channel, full, both sides broadcasting.
BROADCASTS = [
    ([1, 3, 4, 5], [1, 3, 4, 5]),
    ([1, 3, 4, 5], []),
    ([1, 3, 4, 5], [1]),
    ([1, 3, 4, 5], [3, 1, 1]),
    ([1, 3, 4, 5], [1, 3, 1, 1]),
    ([1, 3, 4, 5], [5]),
    ([1, 3, 4, 5], [4, 1]),
    ([1, 3, 1, 5], [1, 1, 4, 1]),   # both operands broadcast
    ([1, 1, 4, 5], [1, 3, 4, 1]),
    ([2, 7], [7]),
    ([2, 1], [1, 7]),
]


@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("sa,sb", BROADCASTS, ids=str)
def test_binary_both_runtime(op: str, sa: list[int], sb: list[int]) -> None:
    """Both operands are graph inputs (numpy multidirectional broadcasting)."""
    m = single(op, [("a", sa, 1), ("b", sb, 1)])
    rng = np.random.default_rng(1)
    b = rng.standard_normal(sb)
    if op == "Div":  # keep the divisor away from zero
        b = rng.uniform(0.5, 2.0, sb) * rng.choice([-1, 1], sb)
    inputs = {"a": rng.standard_normal(sa).astype(np.float32),
              "b": np.asarray(b, dtype=np.float32)}  # 0-d arrays, never numpy scalars
    assert_matches_ort(m, inputs=inputs)


@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("const_first", [False, True], ids=["x_op_c", "c_op_x"])
@pytest.mark.parametrize("cshape", [[], [1], [3, 1, 1], [1, 3, 1, 1], [1, 3, 4, 5], [5]],
                         ids=str)
def test_binary_constant_operand(op: str, const_first: bool, cshape: list[int]) -> None:
    """A constant on either side: ``x * 0.5``, ``1 - x``, ``x / std`` per channel
    (torchvision normalization), full-size constants; not preceded by a Conv."""
    rng = np.random.default_rng(2)
    c = rng.uniform(0.5, 2.0, cshape).astype(np.float32)
    ins = ["c", "x"] if const_first else ["x", "c"]
    m = single(op, {"x": [1, 3, 4, 5]}, initializers=[init("c", c)], node_inputs=ins)
    x = rand((1, 3, 4, 5), 3)
    if op == "Div" and const_first:
        x = (np.abs(x) + 0.5) * np.sign(x + 1e-3)
    assert_matches_ort(m, inputs={"x": x.astype(np.float32)})


@pytest.mark.parametrize("op", BINARY_OPS)
@pytest.mark.parametrize("opset", [7, 13, 14])
def test_binary_opsets(op: str, opset: int) -> None:
    """Every registered opset of the four binary ops (broadcasting from opset 7)."""
    m = single(op, [("a", [1, 2, 3, 4], 1), ("b", [2, 1, 4], 1)], opset=opset)
    rng = np.random.default_rng(4)
    inputs = {"a": rng.standard_normal((1, 2, 3, 4)).astype(np.float32),
              "b": rng.uniform(0.5, 2.0, (2, 1, 4)).astype(np.float32)}
    assert_matches_ort(m, inputs=inputs)


def test_binary_same_tensor_twice() -> None:
    """``x * x`` and ``x + x``: one tensor as both operands."""
    nodes = [helper.make_node("Mul", ["x", "x"], ["sq"]), helper.make_node("Add", ["sq", "sq"],
                                                                           ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 4, 4]}, ["y"]))


def test_div_by_zero_and_specials() -> None:
    """Float division by +-0 gives +-inf (and 0/0 NaN is avoided here; see test_misc)."""
    a = np.array([[1.0, -1.0, 2.0, -0.0, np.inf, 3e38]], np.float32)
    b = np.array([[0.0, 0.0, -0.0, 5.0, 2.0, 0.25]], np.float32)
    m = single("Div", [("a", [1, 6], 1), ("b", [1, 6], 1)])
    assert_matches_ort(m, inputs={"a": a, "b": b})


def test_elementwise_chain() -> None:
    """``(x - mean) / std * gamma + beta`` hand-written LayerNorm-style affine chain, and a
    torchvision-style input normalization (``(x - mean[c]) / std[c]``)."""
    rng = np.random.default_rng(5)
    inits = [init("mean", rng.standard_normal((3, 1, 1)).astype(np.float32)),
             init("std", rng.uniform(0.2, 0.5, (3, 1, 1)).astype(np.float32)),
             init("gamma", rng.standard_normal((1, 3, 1, 1)).astype(np.float32)),
             init("beta", rng.standard_normal((6,)).astype(np.float32))]
    nodes = [helper.make_node("Sub", ["x", "mean"], ["a"]),
             helper.make_node("Div", ["a", "std"], ["b"]),
             helper.make_node("Mul", ["b", "gamma"], ["c"]),
             helper.make_node("Add", ["c", "beta"], ["d"]),
             helper.make_node("Relu", ["d"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 5, 6]}, ["y"], inits))


# ---------------------------------------------------------------- BatchNormalization


def _bn_params(c: int, seed: int = 7) -> list:
    rng = np.random.default_rng(seed)
    return [init("g", rng.uniform(0.5, 2, c).astype(np.float32)),
            init("b", rng.standard_normal(c).astype(np.float32)),
            init("m", rng.standard_normal(c).astype(np.float32)),
            init("v", rng.uniform(0.1, 3, c).astype(np.float32))]


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
@pytest.mark.parametrize("shape", [[1, 4, 5, 6], [1, 4], [1, 4, 7], [2, 4, 3, 3]], ids=str)
@pytest.mark.parametrize("epsilon", [None, 1e-3, 0.5])
def test_batchnorm(opset: int, shape: list[int], epsilon: float | None) -> None:
    """Standalone inference BatchNormalization (not after a Conv: BatchNorm1d on [N, C] and
    [N, C, L], BatchNorm2d), default and explicit epsilon, opsets 7/9/14/15."""
    attrs = {} if epsilon is None else {"epsilon": epsilon}
    c = shape[1]
    m = single("BatchNormalization", {"x": shape}, opset=opset, initializers=_bn_params(c),
               **attrs)
    assert_matches_ort(m)


@pytest.mark.parametrize("opset", [14, 15])
def test_batchnorm_training_mode_zero_explicit(opset: int) -> None:
    """``training_mode=0`` spelled out (PyTorch >= 1.9 exports it) and extra outputs unused."""
    m = single("BatchNormalization", {"x": [1, 3, 4, 4]}, opset=opset,
               initializers=_bn_params(3), training_mode=0)
    assert_matches_ort(m)


def test_batchnorm_then_relu() -> None:
    """BN -> Relu on a graph input (no Conv to fold into: Mul/Add + Relu at runtime)."""
    nodes = [helper.make_node("BatchNormalization", ["x", "g", "b", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 5, 3, 3]}, ["y"], _bn_params(5)))


# ---------------------------------------------------------------- NaN


@pytest.mark.parametrize("case", ["Relu", "LeakyRelu0", "Add", "Clip"])
def test_nan_propagation(case: str) -> None:
    """NaN passes through Relu/LeakyRelu/Add/Clip like onnxruntime (and -inf * 0 = NaN for
    LeakyRelu(alpha=0))."""
    x = np.array([[np.nan, -np.inf, -1.0, 0.0, 2.0, np.inf]], np.float32)
    if case == "Relu":
        m = single("Relu", {"x": [1, 6]})
    elif case == "LeakyRelu0":
        m = single("LeakyRelu", {"x": [1, 6]}, alpha=0.0)
    elif case == "Clip":
        m = single("Clip", {"x": [1, 6]}, opset=13,
                   initializers=[init("lo", np.array(-1.5, np.float32))])
    else:
        m = single("Add", {"x": [1, 6]}, initializers=[init("c", np.float32(1.0))])
    assert_matches_ort(m, inputs={"x": x})
