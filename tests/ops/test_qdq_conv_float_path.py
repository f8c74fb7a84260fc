"""QDQ convs onnxruntime runs in float: sqzc's MLAS-order conv is bit-exact with it.

This is ``--no-fuse-int8-qdq`` (sqzc follows onnxruntime's default x86-64 choice); by
default sqzc fuses these groups into integer convs, as onnxruntime does with
``session.qdqisint8allowed=1`` (``test_int8_groups_fuse_by_default``).

Each model is ``int8 x (graph input) -> DequantizeLinear -> Conv (int8 weights and int32
bias through DequantizeLinear) [-> Relu] -> QuantizeLinear (int8)``. The input pair is not
Q -> DQ, so onnxruntime (x86-64, default session options, one intra-op thread) cannot
fuse the group and runs DQ, an MLAS float Conv (im2col + sgemm) and Q; sqzc must mark the
conv for the MLAS summation order (``ConvAttrs.ort_order``) and match every output
byte. The geometries cover the K slicing of ``sqzc.ort.orders.sgemm_stride_k`` (one slice,
128 + a remainder, 256 when the output is narrower than K), padding on every side, output
rows wider than one register block, output channels that leave a partial block, batch 2,
the row kernel (stride 2, dilation 2, groups, depthwise, and K = 1600, which the tiled
kernel leaves to it rather than unroll), the tiled kernel's unit shapes (several narrow
rows per unit with a tail row, 1x1 planes flattened into full units and a masked tail)
and a tail of one output column (81 = 64 + 17 and width 17: a one-lane byte store, which
LLVM 22 miscompiled as a 4-byte store before ``store_one_byte_lane``). Inputs are seeded
random bytes.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from sqz_testing import (
    QDQ_MODES,
    compile_and_load,
    compile_beside_ort,
    ort_optimized_op_types,
)

import sqzc
from sqzc.driver import CompileOptions
from sqzc.passes.manager import Instrumentation
from sqzc.ort.orders import sgemm_stride_k

ort = pytest.importorskip("onnxruntime")

#: (C, OC, H, W, kernel, stride, pads (t, l, b, r), dilation, per-channel w, bias, relu, N)
CASES = [
    (16, 64, 14, 14, 3, 1, (1, 1, 1, 1), 1, False, True, False, 1),   # K 144: 128 + 16
    (40, 24, 6, 6, 3, 1, (1, 1, 1, 1), 1, True, True, True, 1),       # N 36 < K 360: 256 + 104
    (300, 20, 5, 5, 1, 1, (0, 0, 0, 0), 1, False, True, False, 1),    # one 512 slice
    (130, 16, 9, 9, 1, 1, (0, 0, 0, 0), 1, True, False, False, 1),    # 1x1, 128 + 2
    (8, 10, 70, 70, 3, 1, (0, 1, 2, 1), 1, True, False, False, 2),    # 5 tiles, tail, batch 2
    (3, 12, 23, 23, 7, 2, (3, 3, 3, 3), 1, False, True, True, 1),     # stride 2: row kernel
    (20, 9, 12, 12, 3, 1, (2, 2, 2, 2), 2, True, True, False, 1),     # dilation 2
    (12, 18, 10, 10, 3, 1, (1, 1, 1, 1), 1, True, True, False, 1, 3),  # 3 groups
    (16, 16, 9, 9, 3, 2, (1, 1, 1, 1), 1, False, True, True, 1, 16),  # depthwise, stride 2
    (64, 8, 12, 12, 5, 2, (2, 2, 2, 2), 1, True, True, False, 1),     # K 1600: 13 slices
    (100, 8, 8, 8, 5, 1, (2, 2, 2, 2), 1, False, True, False, 1),     # K 2500, unit stride
    (16, 4, 17, 17, 3, 1, (1, 1, 1, 1), 1, True, True, True, 1),      # 1-lane row tail
    (24, 10, 13, 13, 3, 1, (1, 1, 1, 1), 1, False, True, True, 1),    # 4 rows a tile, tail 1
    (8, 12, 27, 27, 3, 1, (1, 1, 1, 1), 1, True, True, False, 1),     # 2 rows of 2 tiles
    (20, 14, 11, 9, 1, 1, (0, 0, 0, 0), 1, True, True, True, 1),      # flat 1x1: 64 + 35
    (16, 6, 13, 13, 1, 1, (0, 0, 0, 0), 1, False, False, False, 2),   # flat 1x1, batch 2
]


def _model(case: tuple, seed: int) -> onnx.ModelProto:
    c, oc, h, w, k, s, pads, d, per_channel, with_bias, relu, n = case[:12]
    group = case[12] if len(case) > 12 else 1
    rng = np.random.default_rng(seed)
    x_scale, y_scale = np.float32(0.02 + rng.random() * 0.05), np.float32(0.05 + rng.random())
    w_scale = (rng.random(oc) * 0.01 + 0.002).astype(np.float32)
    if not per_channel:
        w_scale = w_scale[:1].reshape(())
    weights = rng.integers(-127, 128, (oc, c // group, k, k), dtype=np.int8)
    inits = [numpy_helper.from_array(weights, "w_q"),
             numpy_helper.from_array(w_scale, "w_scale"),
             numpy_helper.from_array(np.zeros(w_scale.shape, np.int8), "w_zp"),
             numpy_helper.from_array(x_scale, "x_scale"),
             numpy_helper.from_array(np.int8(rng.integers(-20, 20)), "x_zp"),
             numpy_helper.from_array(y_scale, "y_scale"),
             numpy_helper.from_array(np.int8(rng.integers(-128, 0)), "y_zp")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "x_scale", "x_zp"], ["x_f"]),
             helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zp"], ["w_f"], axis=0)]
    conv_in = ["x_f", "w_f"]
    if with_bias:
        b_scale = (x_scale * w_scale).astype(np.float32)
        inits += [numpy_helper.from_array(rng.integers(-3000, 3000, oc, dtype=np.int32), "b_q"),
                  numpy_helper.from_array(b_scale, "b_scale"),
                  numpy_helper.from_array(np.zeros(b_scale.shape, np.int32), "b_zp")]
        nodes.append(helper.make_node("DequantizeLinear", ["b_q", "b_scale", "b_zp"], ["b_f"],
                                      axis=0))
        conv_in.append("b_f")
    nodes.append(helper.make_node("Conv", conv_in, ["conv"], kernel_shape=[k, k],
                                  strides=[s, s], pads=list(pads), dilations=[d, d],
                                  group=group))
    if relu:
        nodes.append(helper.make_node("Relu", ["conv"], ["act"]))
    nodes.append(helper.make_node("QuantizeLinear", ["act" if relu else "conv", "y_scale",
                                                     "y_zp"], ["y"]))
    oh = (h + pads[0] + pads[2] - d * (k - 1) - 1) // s + 1
    ow = (w + pads[1] + pads[3] - d * (k - 1) - 1) // s + 1
    graph = helper.make_graph(nodes, "qdq_conv_float", [
        helper.make_tensor_value_info("x", TensorProto.INT8, [n, c, h, w])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [n, oc, oh, ow])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("case", CASES, ids=[f"c{c[0]}-oc{c[1]}-{c[2]}x{c[3]}-k{c[4]}s{c[5]}"
                                             f"d{c[7]}g{c[12] if len(c) > 12 else 1}"
                                             for c in CASES])
@pytest.mark.parametrize("fused_q", [True, False], ids=["q-epilogue", "float-out"])
def test_qdq_conv_float_path_bit_exact(case: tuple, fused_q: bool, tmp_path) -> None:
    """Every output byte equal to onnxruntime's float path on 3 seeded inputs, with the
    QuantizeLinear fused into the conv's epilogue (fuse-conv-quantize) and without."""
    model = _model(case, seed=len(tmp_path.name))
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    inst = Instrumentation(disabled=frozenset() if fused_q else frozenset({"fuse-conv-quantize"}))
    options = CompileOptions(opt_level=3, instrumentation=inst, fuse_int8_qdq=False)
    graph = sqzc.compile(path, None, options).graph
    convs = [graph.op(v).attrs for v in graph.nodes() if graph.op(v).kind.value == "conv"]
    c, k, n_out = case[0], case[4], None
    assert len(convs) == 1 and convs[0].ort_order.stride_k > 0  # type: ignore[attr-defined]
    assert (convs[0].quantize is not None) == fused_q  # type: ignore[attr-defined]
    lib = compile_and_load(path, instrumentation=inst, fuse_int8_qdq=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(7)
    for _ in range(3):
        x = rng.integers(-128, 128, (case[11], c, case[2], case[3]), dtype=np.int8)
        want = sess.run(None, {"x": x})[0]
        got = lib.run({"x": x})["y"]
        n_out = want.shape[2] * want.shape[3]
        diff = np.abs(got.astype(np.int32) - want.astype(np.int32))
        assert got.shape == want.shape and not diff.any(), \
            f"{np.count_nonzero(diff)} of {diff.size} bytes differ (max {diff.max()} steps)"
    group = case[12] if len(case) > 12 else 1
    assert convs[0].ort_order.stride_k == sgemm_stride_k(n_out, c // group * k * k)  # type: ignore[attr-defined]


@pytest.mark.parametrize("case", [CASES[1], CASES[5]], ids=["tiled", "rows"])
def test_qdq_conv_float_path_bit_exact_on_avx2(case: tuple, tmp_path) -> None:
    """Compiled for Haswell (AVX2 + FMA3, 8-float vectors), as MLAS's FMA3 kernel sums:
    the same bytes as onnxruntime on this machine."""
    model = _model(case, seed=2)
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    lib = compile_and_load(path, target_cpu="haswell", fuse_int8_qdq=False)
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    x = np.random.default_rng(5).integers(-128, 128, (case[11], case[0], case[2], case[3]),
                                          dtype=np.int8)
    np.testing.assert_array_equal(lib.run({"x": x})["y"], sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("case", [CASES[i] for i in (0, 4, 7, 9)],
                         ids=["3x3", "batch2-pads-per-channel", "groups", "5x5s2"])
def test_int8_groups_fuse_by_default(case: tuple, tmp_path) -> None:
    """By default the same groups become ``qconv`` (no float conv left), bit-exact with
    onnxruntime run with ``session.qdqisint8allowed=1``, which fuses them too."""
    model = _model(case, seed=1)
    result, lib, sess = compile_beside_ort(model, tmp_path)
    kinds = [result.graph.op(v).kind.value for v in result.graph.nodes()]
    assert "qconv" in kinds and "conv" not in kinds
    assert "QLinearConv" in ort_optimized_op_types(model, tmp_path)
    x = np.random.default_rng(5).integers(-128, 128, (case[11], case[0], case[2], case[3]),
                                          dtype=np.int8)
    np.testing.assert_array_equal(lib.run({"x": x})["y"], sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("fused", QDQ_MODES)
def test_int8_input_with_uint8_weights_stays_float(fused: bool, tmp_path) -> None:
    """onnxruntime has no int8 x uint8 conv: an int8-input group with uint8 weights stays
    DQ -> float Conv -> Q even with ``session.qdqisint8allowed=1`` (ConvNodeGroupSelector
    wants int8 weights then); sqzc keeps it float too, in MLAS's order, bit for bit."""
    model = _model(CASES[0], seed=6)
    for t in model.graph.initializer:
        if t.name in ("w_q", "w_zp"):
            t.CopyFrom(numpy_helper.from_array(
                (numpy_helper.to_array(t).astype(np.int16) + 128).astype(np.uint8), t.name))
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = [result.graph.op(v).kind.value for v in result.graph.nodes()]
    assert "QLinearConv" not in ort_optimized_op_types(model, tmp_path, fused)
    assert "qconv" not in kinds and "conv" in kinds
    rng = np.random.default_rng(9)
    for _ in range(3):
        x = rng.integers(-128, 128, (1, 16, 14, 14), dtype=np.int8)
        np.testing.assert_array_equal(lib.run({"x": x})["y"], sess.run(None, {"x": x})[0])


def _pair_model(dtype: type, relu_zp: int | None, seed: int) -> onnx.ModelProto:
    """float x -> Q -> DQ -> Conv [-> Relu] -> Q -> DQ -> float y: both pairs can become
    uint8, so onnxruntime fuses the conv unless a Relu it cannot drop sits before the Q."""
    rng = np.random.default_rng(seed)
    y_zp = dtype(relu_zp if relu_zp is not None else 3)
    inits = [numpy_helper.from_array(np.float32(0.03), "xs"), numpy_helper.from_array(dtype(3), "xz"),
             numpy_helper.from_array(rng.integers(-127, 128, (16, 8, 3, 3), dtype=np.int8), "w"),
             numpy_helper.from_array(np.float32(0.004), "ws"),
             numpy_helper.from_array(np.int8(0), "wz"),
             numpy_helper.from_array(np.float32(0.2), "ys"), numpy_helper.from_array(y_zp, "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("Conv", ["xf", "wf"], ["c"], kernel_shape=[3, 3], pads=[1] * 4)]
    if relu_zp is not None:
        nodes.append(helper.make_node("Relu", ["c"], ["r"]))
    nodes += [helper.make_node("QuantizeLinear", ["r" if relu_zp is not None else "c", "ys",
                                                  "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "pair", [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16, 9, 9])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


@pytest.mark.parametrize("fused", QDQ_MODES)
@pytest.mark.parametrize("dtype", (np.uint8, np.int8), ids=("u8", "s8"))
@pytest.mark.parametrize("relu", ("none", "relu-zp-lowest", "relu-zp-other"))
def test_conv_fused_as_onnxruntime_does(dtype: type, relu: str, fused: bool, tmp_path) -> None:
    """A QLinearConv in onnxruntime's optimized graph exactly when sqzc makes a ``qconv``
    (with its x86-64 default, its QDQ S8->U8 rewrite makes both int8 pairs uint8; a Relu
    is dropped only when the Q's zero point is the type's lowest value), and the float
    outputs are equal."""
    lowest = int(np.iinfo(dtype).min)
    relu_zp = {"none": None, "relu-zp-lowest": lowest, "relu-zp-other": lowest + 5}[relu]
    model = _pair_model(dtype, relu_zp, seed=4)
    ort_fused = "QLinearConv" in ort_optimized_op_types(model, tmp_path, fused)
    assert ort_fused == (relu != "relu-zp-other")
    result, lib, sess = compile_beside_ort(model, tmp_path, fused)
    kinds = [result.graph.op(v).kind.value for v in result.graph.nodes()]
    assert ("qconv" in kinds) == ort_fused and ("conv" in kinds) == (not ort_fused)
    rng = np.random.default_rng(8)
    for _ in range(3):
        x = (rng.standard_normal((1, 8, 9, 9)) * 2).astype(np.float32)
        np.testing.assert_array_equal(lib.run({"x": x})["y"], sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("fused", QDQ_MODES)
def test_conv_with_a_second_reader_keeps_the_mlas_order(fused: bool, tmp_path) -> None:
    """The float conv's result is also a graph output, so the DQ -> Conv -> Q group is no
    group (onnxruntime runs it in float either way): sqzc still sums it in MLAS's order,
    and both the quantized output and the float one are onnxruntime's bit for bit."""
    model = _model(CASES[0], seed=3)
    conv_out = next(n.output[0] for n in model.graph.node if n.op_type == "Conv")
    model.graph.output.append(helper.make_tensor_value_info(conv_out, TensorProto.FLOAT, None))
    model = onnx.shape_inference.infer_shapes(model)
    _, lib, sess = compile_beside_ort(model, tmp_path, fused)
    x = np.random.default_rng(7).integers(-128, 128, (1, 16, 14, 14), dtype=np.int8)
    got = lib.run({"x": x})
    for name, want in zip([o.name for o in sess.get_outputs()], sess.run(None, {"x": x})):
        np.testing.assert_array_equal(got[name], want, err_msg=name)
