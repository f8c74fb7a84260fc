"""Slice and Split of run-time tensors against onnxruntime: ShuffleNetV2's channel split
(``x.chunk(2, dim=1)``, exported as Split or Slice), windows with negative, clamped and
strided bounds on every axis, each opset's spelling, and what a dynamic batch refuses."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model
from sqz_testing import assert_matches_ort

import sqzc
from sqzc.errors import UnsupportedError

SHAPE = [1, 6, 5, 7]


def _unique_seq(shape: list[int]) -> np.ndarray:
    """Distinct values in row-major order, so any misplaced element shows."""
    return (np.arange(int(np.prod(shape)), dtype=np.float32) * 0.5 - 7).reshape(shape)


def _slice_model(starts: list[int], ends: list[int], axes: list[int] | None,
                 steps: list[int] | None, opset: int = 13) -> object:
    """Relu -> Slice -> Relu, so the window is of a computed tensor and feeds another op."""
    inits = [init("starts", np.array(starts, np.int64)), init("ends", np.array(ends, np.int64))]
    names = ["r", "starts", "ends"]
    if axes is not None or steps is not None:
        inits.append(init("axes", np.array(axes if axes is not None
                                            else list(range(len(starts))), np.int64)))
        names.append("axes")
    if steps is not None:
        inits.append(init("steps", np.array(steps, np.int64)))
        names.append("steps")
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Slice", names, ["s"]),
             helper.make_node("Relu", ["s"], ["y"])]
    return make_model(nodes, {"x": SHAPE}, ["y"], inits, opset)


@pytest.mark.parametrize("starts, ends, axes, steps", [
    ([0], [3], [1], None),                       # ShuffleNet's first channel half
    ([3], [6], [1], None),                       # ... and the second
    ([1, 2], [-1, 1000], [2, 3], None),          # negative end, end clamped to the size
    ([-4], [-1], [-1], None),                    # negative start, end and axis
    ([0, 1], [6, 7], [1, 3], [2, 3]),            # strided
    ([5, 4], [-100, 0], [1, 2], [-2, -1]),       # negative steps, end below zero
    ([0, 0, 1], [1, 6, 4], [0, 1, 2], None),     # the whole batch axis is a no-op window
], ids=str)
@pytest.mark.parametrize("opset", [10, 13])
def test_slice(starts: list[int], ends: list[int], axes: list[int] | None,
               steps: list[int] | None, opset: int) -> None:
    """Slice-10/13: starts, ends, axes and steps as constant inputs, ONNX's clamping."""
    assert_matches_ort(_slice_model(starts, ends, axes, steps, opset),
                       inputs={"x": _unique_seq(SHAPE)})


def test_slice_v1_attributes() -> None:
    """Slice-1 (starts/ends/axes attributes, unit steps)."""
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Slice", ["r"], ["y"], starts=[1, -3], ends=[4, 1000],
                              axes=[1, 3])]
    assert_matches_ort(make_model(nodes, {"x": SHAPE}, ["y"], opset=9),
                       inputs={"x": _unique_seq(SHAPE)})


def _split_model(opset: int, sizes: list[int] | None, outputs: int, axis: int = 1,
                 num_outputs: bool = False) -> object:
    names = [f"y{i}" for i in range(outputs)]
    inits, ins, attrs = [], ["r"], {"axis": axis}
    if sizes is not None and opset >= 13:
        inits.append(init("split", np.array(sizes, np.int64)))
        ins.append("split")
    elif sizes is not None:
        attrs["split"] = sizes
    if num_outputs:
        attrs["num_outputs"] = outputs
    nodes = [helper.make_node("Relu", ["x"], ["r"]),
             helper.make_node("Split", ins, names, **attrs)]
    return make_model(nodes, {"x": SHAPE}, names, inits, opset)


@pytest.mark.parametrize("opset, sizes, outputs, axis", [
    (11, None, 2, 1),           # equal halves: torch's x.chunk(2, dim=1)
    (11, [1, 5], 2, 1),
    (13, [3, 3], 2, 1),         # what torch.onnx writes at opset 13
    (13, [2, 1, 2], 3, 2),      # along H
    (13, None, 7, 3),           # seven columns
    (18, [2, 4], 2, 1),
], ids=str)
def test_split(opset: int, sizes: list[int] | None, outputs: int, axis: int) -> None:
    """Split into sizes (attribute before 13, input from 13) or equal parts."""
    assert_matches_ort(_split_model(opset, sizes, outputs, axis),
                       inputs={"x": _unique_seq(SHAPE)})


def test_split_num_outputs_uneven() -> None:
    """Split-18 ``num_outputs``: 7 columns in parts of ceil(7 / 3) = 3, the last smaller."""
    assert_matches_ort(_split_model(18, None, 3, 3, num_outputs=True),
                       inputs={"x": _unique_seq(SHAPE)})


def test_shufflenet_unit() -> None:
    """ShuffleNetV2's stride-1 unit: split the channels, convolve one half, concat, then
    shuffle (Reshape -> Transpose -> Reshape)."""
    c = 16
    rng = np.random.default_rng(3)
    inits = [init("split", np.array([c // 2, c // 2], np.int64)),
             init("w", (rng.standard_normal((c // 2, c // 2, 1, 1)) * 0.3).astype(np.float32)),
             init("dw", (rng.standard_normal((c // 2, 1, 3, 3)) * 0.3).astype(np.float32)),
             init("s5", np.array([1, 2, c // 2, 6, 6], np.int64)),
             init("s4", np.array([1, c, 6, 6], np.int64))]
    nodes = [helper.make_node("Conv", ["x", "w"], ["x1"], kernel_shape=[1, 1]),
             helper.make_node("Split", ["x1", "split"], ["a", "b"], axis=1),
             helper.make_node("Conv", ["b", "dw"], ["b1"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], group=c // 2),
             helper.make_node("Relu", ["b1"], ["b2"]),
             helper.make_node("Concat", ["a", "b2"], ["cat"], axis=1),
             helper.make_node("Reshape", ["cat", "s5"], ["r5"]),
             helper.make_node("Transpose", ["r5"], ["t5"], perm=[0, 2, 1, 3, 4]),
             helper.make_node("Reshape", ["t5", "s4"], ["y"])]
    inits[1] = init("w", (rng.standard_normal((c, c // 2, 1, 1)) * 0.3).astype(np.float32))
    assert_matches_ort(make_model(nodes, {"x": [1, c // 2, 6, 6]}, ["y"], inits, 13))


def test_slice_of_a_constant_folds() -> None:
    """A Slice of a weight is evaluated at import (the conv after it sees a constant)."""
    rng = np.random.default_rng(4)
    inits = [init("wall", (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)),
             init("starts", np.array([2], np.int64)), init("ends", np.array([6], np.int64)),
             init("axes", np.array([0], np.int64))]
    nodes = [helper.make_node("Slice", ["wall", "starts", "ends", "axes"], ["w"]),
             helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 7, 7]}, ["y"], inits, 13))


def test_slice_of_the_batch_axis_is_refused_under_dynamic_batch(tmp_path: Path) -> None:
    """Each sample runs the batch-1 program, so a window of the batch axis would be
    wrong: a dynamic-batch model that slices it is refused, naming the node."""
    import onnx

    m = _slice_model([0], [1], [0], None)
    m.graph.ClearField("value_info")  # type: ignore[attr-defined]
    m.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "N"  # type: ignore[attr-defined]
    m.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "N"  # type: ignore[attr-defined]
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    with pytest.raises(UnsupportedError, match="Slice along the batch axis"):
        sqzc.compile(path, tmp_path / "m.so")
