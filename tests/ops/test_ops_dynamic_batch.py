"""Ops on a symbolic leading dim 'N' (``torch.onnx.export(dynamic_axes={'x': {0: 'N'}})``),
run at batch 3 against onnxruntime at batch 3; ops that would mix samples are refused."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from onnx import helper, numpy_helper
from onnx_builders import F16, init, make_model, rand, single, with_dynamic_batch
from sqz_testing import assert_matches_ort, compile_and_load

from sqzc.errors import UnsupportedError


def _conv_relu() -> object:
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c"], ["y"])]
    return make_model(nodes, {"x": [1, 3, 7, 7]}, ["y"],
                      [init("W", rand((4, 3, 3, 3), 1, 0.5)), init("B", rand((4,), 2))])


def _conv_bn() -> object:
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], group=2),
             helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["y"])]
    inits = [init("W", rand((4, 1, 3, 3), 4)),
             init("g", rng.uniform(0.5, 2, 4).astype(np.float32)),
             init("b", rand((4,), 5)), init("m", rand((4,), 6)),
             init("v", rng.uniform(0.5, 2, 4).astype(np.float32))]
    return make_model(nodes, {"x": [1, 2, 6, 5]}, ["y"], inits, opset=15)


def _fire_concat() -> object:
    nodes = [helper.make_node("Conv", ["x", "W1"], ["a"]),
             helper.make_node("Conv", ["x", "W3"], ["b"], pads=[1, 1, 1, 1]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Relu", ["c"], ["y"])]
    return make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"],
                      [init("W1", rand((2, 3, 1, 1), 7)), init("W3", rand((2, 3, 3, 3), 8))])


def _pytorch_head() -> object:
    nodes = [
        helper.make_node("GlobalAveragePool", ["x"], ["p"]),
        helper.make_node("Shape", ["p"], ["s"]),
        helper.make_node("Gather", ["s", "i0"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "ax0"], ["nu"]),
        helper.make_node("Concat", ["nu", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["p", "shape"], ["y"]),
    ]
    inits = [init("i0", np.array(0, np.int64)), init("ax0", [0]), init("minus1", [-1])]
    return make_model(nodes, {"x": [1, 6, 3, 3]}, ["y"], inits)


def _squeezenet_tail() -> object:
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Softmax", ["f"], ["y"], axis=1)]
    return make_model(nodes, {"x": [1, 4, 5, 5]}, ["y"], [init("W", rand((10, 4, 1, 1), 9))],
                      opset=11)


def _qdq_conv() -> object:
    """float -> Q -> DQ -> Conv (int8 weights through DequantizeLinear) -> Q -> DQ: the
    weight DequantizeLinear has no batch axis, but it is a constant (folded)."""
    rng = np.random.default_rng(21)
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
             helper.make_node("Conv", ["xd", "wd"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["cq"]),
             helper.make_node("DequantizeLinear", ["cq", "ys", "yz"], ["y"])]
    q8 = numpy_helper.from_array  # onnx_builders.init widens integers to int64
    inits = [init("xs", np.array(0.05, np.float32)), q8(np.array(128, np.uint8), "xz"),
             q8(rng.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8), "wq"),
             init("ws", np.array(0.01, np.float32)), q8(np.array(0, np.int8), "wz"),
             init("ys", np.array(0.1, np.float32)), q8(np.array(120, np.uint8), "yz")]
    return make_model(nodes, {"x": [1, 4, 6, 6]}, ["y"], inits)


#: name -> builder of a batch-1 model; each is made dynamic with ``with_dynamic_batch``.
MODELS: dict[str, Callable[[], object]] = {
    "conv_relu": _conv_relu,
    "grouped_conv_bn": _conv_bn,
    "fire_concat": _fire_concat,
    "maxpool_ceil": lambda: single("MaxPool", {"x": [1, 2, 7, 7]}, kernel_shape=[3, 3],
                                   strides=[2, 2], ceil_mode=1),
    "avgpool_pads": lambda: single("AveragePool", {"x": [1, 2, 6, 6]}, kernel_shape=[3, 3],
                                   pads=[1, 1, 1, 1], count_include_pad=0),
    "global_avgpool": lambda: single("GlobalAveragePool", {"x": [1, 3, 4, 5]}),
    "softmax_axis1_op13": lambda: single("Softmax", {"x": [1, 5, 2]}, axis=1),
    "logsoftmax_last": lambda: single("LogSoftmax", {"x": [1, 4, 6]}),
    "softmax_op11_axis1_4d": lambda: single("Softmax", {"x": [1, 3, 2, 2]}, opset=11, axis=1),
    "reduce_mean_hw": lambda: single("ReduceMean", {"x": [1, 3, 4, 4]}, axes=[2, 3],
                                     keepdims=0),
    "reduce_max_c": lambda: single("ReduceMax", {"x": [1, 3, 4, 4]}, opset=18,
                                   initializers=[init("axes", [1])]),
    "add_per_channel": lambda: single("Add", {"x": [1, 3, 2, 2]},
                                      initializers=[init("c", rand((3, 1, 1), 10))]),
    "mul_two_inputs": lambda: single("Mul", {"a": [1, 3, 2, 2], "b": [1, 1, 2, 2]}),
    "transpose_nhwc": lambda: single("Transpose", {"x": [1, 3, 2, 4]}, perm=[0, 2, 3, 1]),
    "flatten": lambda: single("Flatten", {"x": [1, 3, 2, 2]}),
    "reshape_0_-1": lambda: single("Reshape", {"x": [1, 3, 2, 2]},
                                   initializers=[init("s", [0, -1])]),
    "pytorch_shape_head": _pytorch_head,
    "squeezenet_tail": _squeezenet_tail,
    "qdq_conv_uint8": _qdq_conv,
    "clip_leaky": lambda: make_model(
        [helper.make_node("Clip", ["x", "lo", "hi"], ["c"]),
         helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.3)], {"x": [1, 4, 3]}, ["y"],
        [init("lo", np.array(-1, np.float32)), init("hi", np.array(1, np.float32))]),
    "matmul_batched_const_b": lambda: single("MatMul", {"x": [1, 4, 8]},
                                             initializers=[init("w", rand((8, 5), 11))]),
    "float16_io_maxpool": lambda: single("MaxPool", [("x", [1, 2, 5, 5], F16)], out_type=F16,
                                         kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1),
    "dropout_identity": lambda: make_model(
        [helper.make_node("Dropout", ["x"], ["d"]), helper.make_node("Identity", ["d"], ["y"])],
        {"x": [1, 3, 3]}, ["y"]),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dynamic_batch_3(name: str) -> None:
    """The library reports a dynamic batch and, at batch 3, matches onnxruntime at batch 3
    (each sample differs, so mixing samples or reusing one would show)."""
    model = with_dynamic_batch(MODELS[name]())
    lib = compile_and_load(model)
    assert all(s.shape[0] is None for s in lib.input_specs)
    assert all(s.shape[0] is None for s in lib.output_specs)
    assert_matches_ort(model, batch=3, seed=13)


@pytest.mark.parametrize("name", ["conv_relu", "fire_concat", "squeezenet_tail"])
def test_dynamic_batch_1_and_5(name: str) -> None:
    """The same library serves batch 1 and batch 5."""
    model = with_dynamic_batch(MODELS[name]())
    assert_matches_ort(model, batch=1, seed=14)
    assert_matches_ort(model, batch=5, seed=15)


@pytest.mark.parametrize("model", [
    single("Flatten", {"x": [1, 3, 2, 2]}, axis=0),
    single("Flatten", {"x": [1, 3, 2, 2]}, axis=-4),
    single("Softmax", {"x": [1, 3, 2, 2]}, opset=11, axis=0),
    single("LogSoftmax", {"x": [1, 3]}, opset=1, axis=0),
    single("Unsqueeze", {"x": [1, 3]}, initializers=[init("a", [0])]),
    single("Unsqueeze", {"x": [1, 3]}, opset=11, axes=[-3]),
    single("Softmax", {"x": [1, 3, 2]}, axis=0),
    single("ReduceMean", {"x": [1, 3, 2]}, axes=[0, 2]),
    single("Transpose", {"x": [1, 3, 2]}, perm=[1, 0, 2]),
    single("Concat", {"a": [1, 3], "b": [1, 3]}, axis=0),
], ids=["flatten0", "flatten-4", "softmax11_axis0", "logsoftmax1_axis0", "unsqueeze0",
        "unsqueeze11_-3", "softmax13_axis0", "reduce_batch", "transpose_batch", "concat0"])
def test_dynamic_batch_refuses_sample_mixing(model: object) -> None:
    """Ops that mix samples (Flatten/Unsqueeze at axis 0, pre-13 Softmax at axis 0 which
    coerces the whole tensor to one row, reductions/concats/transposes over the batch) are
    refused with UnsupportedError instead of being run per sample."""
    with pytest.raises(UnsupportedError, match="dynamic batch"):
        compile_and_load(with_dynamic_batch(model))


def test_dynamic_batch_literal_reshape_1_minus1() -> None:
    """``x.view(1, -1)`` with a dynamic batch merges all samples into one row."""
    model = with_dynamic_batch(single("Reshape", {"x": [1, 3, 2, 2]},
                                      initializers=[init("s", [1, -1])]))
    try:
        compile_and_load(model)
    except UnsupportedError:
        return  # refusing is a correct answer too
    assert_matches_ort(model, batch=3)


@pytest.mark.parametrize("op", ["Gemm", "MatMul"])
def test_dynamic_batch_linear_head(op: str) -> None:
    """``nn.Linear`` on [N, K] (Gemm transB=1 with bias, or MatMul by a constant [K, M])."""
    if op == "Gemm":
        m = single("Gemm", {"x": [1, 6]}, initializers=[init("w", rand((4, 6), 16)),
                                                        init("b", rand((4,), 17))], transB=1)
    else:
        m = single("MatMul", {"x": [1, 6]}, initializers=[init("w", rand((6, 4), 18))])
    assert_matches_ort(with_dynamic_batch(m), batch=3)


def test_dynamic_batch_float16_weights() -> None:
    """float16 IO and float16 Conv weights and bias with a symbolic batch (the weights are
    widened at import; a runtime Cast of a constant used to be refused as 'without a
    leading batch axis' by the importer's separability check)."""
    m = make_model([helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1]),
                    helper.make_node("Add", ["c", "k"], ["y"])],
                   [("x", [1, 2, 4, 4], F16)], [("y", F16)],
                   [init("W", rand((3, 2, 3, 3), 12, 0.4).astype(np.float16)),
                    init("B", rand((3,), 13).astype(np.float16)),
                    init("k", rand((3, 1, 1), 14).astype(np.float16))])
    assert_matches_ort(with_dynamic_batch(m), batch=3)
