"""Binary ops with a per-channel operand on channel-blocked tensors, against onnxruntime:
DenseNet's pre-activation BatchNormalization (a constant scale and shift per channel
between a Concat and a ReLU) and squeeze-excite's gate (a run-time [1, C, 1, 1] tensor
multiplying the feature map). Both stay in NCHW[b]c, with no reorder to plain."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand
from sqz_testing import assert_matches_ort

from sqzc.driver import CompileOptions, load_graph, optimize
from sqzc.ops import BINARY, OpKind


def _layouts(model: onnx.ModelProto) -> tuple[int, list[int]]:
    """(reorders in the optimized graph, the block of each binary op)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, path)
        options = CompileOptions()
        graph = load_graph(path, options)
        optimize(graph, options)
    ops = [graph.op(n) for n in graph.nodes()]
    return (sum(op.kind is OpKind.REORDER for op in ops),
            [op.block for op in ops if op.kind in BINARY])


@pytest.mark.parametrize("channels", [32, 40, 20])
@pytest.mark.parametrize("const_shape", ["C11", "1C11"])
def test_batchnorm_before_relu_stays_blocked(channels: int, const_shape: str) -> None:
    """Conv -> Concat -> (x * scale + shift) -> Relu -> Conv, the constants [C, 1, 1] or
    [1, C, 1, 1]; channel counts with a partial block (40, 20) read the constants' zero
    fill in the padded lanes. (The Concat's first operand is a whole 16-channel block,
    as a blocked Concat needs on AVX-512.)"""
    half = 16
    rest = channels - half
    shape = (channels, 1, 1) if const_shape == "C11" else (1, channels, 1, 1)
    inits = [init("w1", rand((half, 3, 3, 3), 1, 0.5)), init("w2", rand((rest, 3, 1, 1), 2, 0.5)),
             init("scale", rand(shape, 3, 1.0)), init("shift", rand(shape, 4, 1.0)),
             init("divisor", (np.abs(rand(shape, 5, 1.0)) + 0.5).astype(np.float32)),
             init("w3", rand((8, channels, 1, 1), 6, 0.5))]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["a"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Conv", ["x", "w2"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Mul", ["c", "scale"], ["m"]),
             helper.make_node("Add", ["shift", "m"], ["s"]),
             helper.make_node("Div", ["s", "divisor"], ["d"]),
             helper.make_node("Sub", ["d", "shift"], ["e"]),
             helper.make_node("Relu", ["e"], ["r"]),
             helper.make_node("Conv", ["r", "w3"], ["y"], kernel_shape=[1, 1])]
    model = make_model(nodes, {"x": [1, 3, 9, 11]}, ["y"], inits)
    reorders, blocks = _layouts(model)
    assert reorders == 1 and all(blocks), (reorders, blocks)  # only the output's reorder
    assert_matches_ort(model)


def test_squeeze_excite_gate_stays_blocked() -> None:
    """EfficientNet's squeeze-excite: GlobalAveragePool -> 1x1 conv -> SiLU -> 1x1 conv
    -> Sigmoid gives a [1, C, 1, 1] gate that multiplies the map (gate on either side)."""
    c, r = 24, 6
    inits = [init("w0", rand((c, 3, 3, 3), 1, 0.5)), init("w1", rand((r, c, 1, 1), 2, 0.5)),
             init("b1", rand((r,), 3)), init("w2", rand((c, r, 1, 1), 4, 0.5)),
             init("b2", rand((c,), 5))]
    nodes = [helper.make_node("Conv", ["x", "w0"], ["f"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["f"], ["p"]),
             helper.make_node("Conv", ["p", "w1", "b1"], ["q"], kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["q"], ["qs"]),
             helper.make_node("Mul", ["q", "qs"], ["h"]),
             helper.make_node("Conv", ["h", "w2", "b2"], ["g"], kernel_shape=[1, 1]),
             helper.make_node("Sigmoid", ["g"], ["gate"]),
             helper.make_node("Mul", ["f", "gate"], ["y1"]),
             helper.make_node("Mul", ["gate", "y1"], ["y"])]
    model = make_model(nodes, {"x": [1, 3, 10, 10]}, ["y"], inits)
    reorders, blocks = _layouts(model)
    assert reorders == 1 and all(blocks), (reorders, blocks)
    assert_matches_ort(model)
