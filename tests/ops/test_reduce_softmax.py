"""Softmax / LogSoftmax (axis rules before and from opset 13) and ReduceMean / ReduceMax
(axes as attribute or input, keepdims) against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand, single
from sqz_testing import assert_matches_ort, compile_and_load, ort_run

SHAPES = {2: [3, 7], 3: [2, 3, 5], 4: [1, 3, 4, 5]}


def _axis_cases(opsets: tuple[int, ...]) -> list[tuple[int, int, int | None]]:
    cases = []
    for opset in opsets:
        for rank in (2, 3, 4):
            for axis in [None, *range(-rank, rank)]:
                cases.append((opset, rank, axis))
    return cases


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset,rank,axis", _axis_cases((1, 11, 13)), ids=str)
def test_softmax_axes(op: str, opset: int, rank: int, axis: int | None) -> None:
    """Every axis of rank 2/3/4 inputs, default axis (1 before opset 13, -1 from 13).

    Before opset 13 the input is coerced to 2-D at ``axis`` and normalized over *all*
    trailing dims (e.g. opset 11 axis=1 on [1, 3, 4, 5] normalizes over 60 values); from
    13 only along ``axis``."""
    attrs = {} if axis is None else {"axis": axis}
    x = rand(SHAPES[rank], seed=rank, scale=3.0)
    assert_matches_ort(single(op, {"x": SHAPES[rank]}, opset=opset, **attrs), inputs={"x": x})


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("opset", [11, 13])
def test_softmax_classifier_head(op: str, opset: int) -> None:
    """Classifier head: Gemm -> Softmax(axis=1) on [1, 10] (axis=1 is also the last axis)
    and PyTorch's ``F.log_softmax(x, dim=1)`` after Flatten."""
    rng = np.random.default_rng(8)
    inits = [init("W", rng.standard_normal((10, 12)).astype(np.float32)),
             init("B", rng.standard_normal((10,)).astype(np.float32))]
    nodes = [helper.make_node("Flatten", ["x"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["g"], transB=1),
             helper.make_node(op, ["g"], ["y"], axis=1)]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 2, 2]}, ["y"], inits, opset))


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_softmax_large_logits(op: str) -> None:
    """Logits around +-80 (exp would overflow without the max subtraction) and a row where
    one logit dominates (log-softmax of ~-160)."""
    x = rand((2, 3, 6), 9, 1.0) + np.array([80.0, -80.0, 0.0], np.float32).reshape(1, 3, 1)
    x[1, 2, :] = [-80, 80, -80, -80, -80, -80]
    assert_matches_ort(single(op, {"x": [2, 3, 6]}, opset=13, axis=-1),
                       inputs={"x": x.astype(np.float32)})


def _host_has_avx512() -> bool:
    from sqzc.backends.llvm.target import resolve_target

    return resolve_target("host").vector_width >= 16


@pytest.mark.skipif(not _host_has_avx512(), reason="onnxruntime uses other MLAS kernels "
                    "(FMA3: another clamp and 8 lanes) without AVX-512F")
@pytest.mark.parametrize("n", [1, 10, 16, 17, 48, 49, 1000, 1001])
def test_softmax_is_bit_exact_with_onnxruntime(n: int) -> None:
    """Float Softmax reproduces MLAS's exp polynomial, 16-lane summation and reciprocal
    scaling, so every bit equals onnxruntime's (on x86-64 with AVX-512F; the order is
    MLAS's AVX-512 one) over scales from 0.1 to 100, including rows that underflow."""
    model = single("Softmax", {"x": [8, n]}, opset=13, axis=-1)
    m = compile_and_load(model)
    rng = np.random.default_rng(n)
    for scale in (0.1, 1.0, 10.0, 30.0, 100.0):
        x = (rng.standard_normal((8, n)) * scale).astype(np.float32)
        got, want = m(x), ort_run(model, {"x": x})[0]
        bad = np.flatnonzero((got.view(np.uint32) != want.view(np.uint32)).any(axis=1))
        assert not bad.size, f"scale {scale}: rows {bad.tolist()} differ in their bits"


def test_softmax_single_element_axis() -> None:
    """Softmax along an axis of length 1 is exactly 1 (and LogSoftmax 0)."""
    nodes = [helper.make_node("Softmax", ["x"], ["y"], axis=2),
             helper.make_node("LogSoftmax", ["x"], ["z"], axis=2)]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 1, 4]}, ["y", "z"], opset=13))


# ---------------------------------------------------------------- reductions


def _reduce_cases() -> list[tuple[list[int] | None, int]]:
    return [(None, 1), (None, 0), ([1], 1), ([1], 0), ([2, 3], 1), ([2, 3], 0), ([-1], 1),
            ([-2, -1], 0), ([0], 1), ([3, 1], 0), ([0, 1, 2, 3], 0)]


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("axes,keepdims", _reduce_cases(), ids=str)
@pytest.mark.parametrize("opset", [11, 13])
def test_reduce_axes_attribute(op: str, axes: list[int] | None, keepdims: int,
                               opset: int) -> None:
    """Axes as an attribute (opset <= 17): ``x.mean([2, 3], keepdim=True)`` (global
    average pool spelled as ReduceMean), negative and unsorted axes, keepdims 0/1,
    no axes (reduce everything)."""
    attrs: dict = {"keepdims": keepdims}
    if axes is not None:
        attrs["axes"] = axes
    assert_matches_ort(single(op, {"x": [2, 3, 4, 5]}, opset=opset, **attrs))


@pytest.mark.parametrize("op,opset", [("ReduceMean", 18), ("ReduceMax", 18),
                                       ("ReduceMax", 20)], ids=str)
@pytest.mark.parametrize("axes,keepdims", _reduce_cases(), ids=str)
def test_reduce_axes_input(op: str, opset: int, axes: list[int] | None, keepdims: int) -> None:
    """Axes as a constant input (opset >= 18; ReduceMax-20 too); omitted axes input reduces
    everything."""
    inits = [init("axes", axes)] if axes is not None else []
    assert_matches_ort(single(op, {"x": [2, 3, 4, 5]}, opset=opset, initializers=inits,
                              keepdims=keepdims))


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
@pytest.mark.parametrize("keepdims", [0, 1])
def test_reduce_noop_with_empty_axes(op: str, keepdims: int) -> None:
    """Opset 18 ``noop_with_empty_axes=1`` with no axes input: the identity."""
    assert_matches_ort(single(op, {"x": [1, 3, 4, 5]}, opset=18, noop_with_empty_axes=1,
                              keepdims=keepdims))


@pytest.mark.parametrize("op", ["ReduceMean", "ReduceMax"])
def test_reduce_empty_axes_tensor(op: str) -> None:
    """Opset 18 with an *empty* axes tensor and noop_with_empty_axes=0: reduce everything."""
    inits = [init("axes", np.zeros((0,), np.int64))]
    assert_matches_ort(single(op, {"x": [1, 3, 4, 5]}, opset=18, initializers=inits,
                              keepdims=0))


def test_reduce_max_all_negative() -> None:
    """ReduceMax starts from -inf, not 0."""
    x = -np.abs(rand((1, 3, 4, 5), 2)) - 1.0
    assert_matches_ort(single("ReduceMax", {"x": [1, 3, 4, 5]}, opset=13, axes=[2, 3]),
                       inputs={"x": x})


def test_reduce_mean_then_flatten_head() -> None:
    """MobileNetV2 torchvision head: ``x.mean([2, 3])`` (ReduceMean keepdims=0) -> Gemm."""
    rng = np.random.default_rng(12)
    inits = [init("W", rng.standard_normal((5, 8)).astype(np.float32)),
             init("B", rng.standard_normal((5,)).astype(np.float32))]
    nodes = [helper.make_node("ReduceMean", ["x"], ["m"], axes=[2, 3], keepdims=0),
             helper.make_node("Gemm", ["m", "W", "B"], ["y"], transB=1)]
    assert_matches_ort(make_model(nodes, {"x": [1, 8, 4, 4]}, ["y"], inits))
