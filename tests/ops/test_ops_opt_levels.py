"""A representative subset of the per-op models again at -O0 (no IR passes: no folding,
fusion or concat elimination; LLVM -O0) and for ``target_cpu="generic"`` (baseline
x86-64, no host vector extensions), against onnxruntime."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from onnx import helper
from onnx_builders import F16, init, make_model, rand, single
from sqz_testing import assert_matches_ort


def _conv_bn_relu() -> object:
    rng = np.random.default_rng(1)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[0, 1, 2, 1], strides=[2, 2]),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["n"]),
             helper.make_node("Relu", ["n"], ["y"])]
    inits = [init("W", rand((4, 3, 3, 3), 2, 0.5)),
             init("g", rng.uniform(0.5, 2, 4).astype(np.float32)), init("b", rand((4,), 3)),
             init("m", rand((4,), 4)), init("v", rng.uniform(0.2, 2, 4).astype(np.float32))]
    return make_model(nodes, {"x": [1, 3, 9, 8]}, ["y"], inits)


def _fire() -> object:
    nodes = [helper.make_node("Conv", ["x", "Ws", "Bs"], ["s"]),
             helper.make_node("Relu", ["s"], ["sr"]),
             helper.make_node("Conv", ["sr", "W1"], ["e1"]),
             helper.make_node("Conv", ["sr", "W3"], ["e3"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e1"], ["r1"]),
             helper.make_node("Relu", ["e3"], ["r3"]),
             helper.make_node("Concat", ["r1", "r3"], ["y"], axis=1)]
    inits = [init("Ws", rand((3, 4, 1, 1), 5)), init("Bs", rand((3,), 6)),
             init("W1", rand((4, 3, 1, 1), 7)), init("W3", rand((4, 3, 3, 3), 8, 0.4))]
    return make_model(nodes, {"x": [1, 4, 6, 5]}, ["y"], inits)


def _classifier() -> object:
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "W", "B"], ["g"], transB=1, alpha=0.5, beta=2.0),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    inits = [init("W", rand((7, 5), 9)), init("B", rand((1, 7), 10))]
    return make_model(nodes, {"x": [1, 5, 3, 3]}, ["y"], inits, opset=11)


MODELS: dict[str, Callable[[], object]] = {
    "conv_bn_relu": _conv_bn_relu,
    "fire_concat": _fire,
    "classifier_head": _classifier,
    "conv_depthwise_dilated": lambda: single(
        "Conv", {"x": [1, 4, 9, 9]}, initializers=[init("W", rand((4, 1, 3, 3), 11))],
        group=4, dilations=[2, 2], pads=[2, 2, 2, 2], strides=[2, 1]),
    "conv_grouped_bias_clip6": lambda: make_model(
        [helper.make_node("Conv", ["x", "W", "B"], ["c"], group=2, auto_pad="SAME_LOWER",
                          strides=[2, 2]),
         helper.make_node("Clip", ["c", "lo", "hi"], ["y"])], {"x": [1, 4, 8, 7]}, ["y"],
        [init("W", rand((6, 2, 2, 2), 12)), init("B", rand((6,), 13)),
         init("lo", np.array(0, np.float32)), init("hi", np.array(6, np.float32))]),
    "maxpool_ceil_dilated": lambda: single("MaxPool", {"x": [1, 2, 9, 10]}, opset=12,
                                           kernel_shape=[3, 3], strides=[2, 2],
                                           dilations=[2, 1], pads=[1, 0, 1, 1], ceil_mode=1),
    "avgpool_include_pad_ceil": lambda: single("AveragePool", {"x": [1, 2, 8, 7]}, opset=19,
                                               kernel_shape=[3, 2], strides=[2, 2],
                                               pads=[1, 0, 0, 1], ceil_mode=1,
                                               count_include_pad=1),
    "global_maxpool": lambda: single("GlobalMaxPool", {"x": [1, 3, 5, 4]}),
    "softmax11_axis1_4d": lambda: single("Softmax", {"x": [1, 3, 2, 4]}, opset=11, axis=1),
    "logsoftmax13_axis1": lambda: single("LogSoftmax", {"x": [2, 3, 4]}, axis=1),
    "reduce_mean_keepdims0": lambda: single("ReduceMean", {"x": [2, 3, 4, 5]}, opset=18,
                                            initializers=[init("axes", [-1, 1])], keepdims=0),
    "reduce_max": lambda: single("ReduceMax", {"x": [2, 3, 4]}, axes=[1]),
    "matmul_batched_broadcast": lambda: single("MatMul", {"a": [2, 1, 3, 5], "b": [3, 5, 2]}),
    "matmul_1d": lambda: single("MatMul", {"a": [5]}, initializers=[init("b", rand((2, 5, 3)))]),
    "gemm_transA": lambda: single("Gemm", {"a": [5, 3], "b": [4, 5]}, transA=1, transB=1),
    "add_both_broadcast": lambda: single("Add", {"a": [1, 3, 1, 5], "b": [1, 1, 4, 1]}),
    "div_per_channel": lambda: single("Div", {"x": [1, 3, 2, 2]},
                                      initializers=[init("c", np.array([[[0.5]], [[2.0]],
                                                                        [[-4.0]]], np.float32))]),
    "leaky_relu": lambda: single("LeakyRelu", {"x": [1, 3, 4]}, alpha=0.2),
    "transpose_nchw_nhwc": lambda: single("Transpose", {"x": [1, 3, 4, 5]}, perm=[0, 2, 3, 1]),
    "reshape_squeeze_unsqueeze": lambda: make_model(
        [helper.make_node("Reshape", ["x", "s"], ["r"]),
         helper.make_node("Unsqueeze", ["r", "a"], ["u"]),
         helper.make_node("Squeeze", ["u", "a"], ["y"])], {"x": [1, 3, 4]}, ["y"],
        [init("s", [0, -1, 2]), init("a", [1])]),
    "concat_axis3_inputs": lambda: single("Concat", {"a": [1, 2, 3, 1], "b": [1, 2, 3, 4],
                                                     "c": [1, 2, 3, 2]}, axis=3),
    "float16_conv_relu": lambda: make_model(
        [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["y"])], [("x", [1, 2, 5, 5], F16)], [("y", F16)],
        [init("W", rand((3, 2, 3, 3), 14, 0.4).astype(np.float16))]),
    "dropout12_identity": lambda: make_model(
        [helper.make_node("Dropout", ["x", "r"], ["d"]),
         helper.make_node("Identity", ["d"], ["y"])], {"x": [1, 4, 2]}, ["y"],
        [init("r", np.array(0.2, np.float32))]),
}


@pytest.mark.parametrize("opt_level,target_cpu", [(0, "host"), (3, "generic")],
                         ids=["O0-host", "O3-generic"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_opt_level_and_target(name: str, opt_level: int, target_cpu: str) -> None:
    """Same model, same inputs: -O0 (the differential baseline: every op a kernel of its
    own) and generic-CPU code must both match onnxruntime."""
    assert_matches_ort(MODELS[name](), opt_level=opt_level, target_cpu=target_cpu, seed=21)


@pytest.mark.parametrize("opt_level", [1, 2])
@pytest.mark.parametrize("name", ["conv_bn_relu", "fire_concat", "classifier_head"])
def test_intermediate_opt_levels(name: str, opt_level: int) -> None:
    """-O1/-O2 (all IR passes, lower LLVM levels) on the multi-op models."""
    assert_matches_ort(MODELS[name](), opt_level=opt_level, seed=22)
