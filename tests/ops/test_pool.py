"""MaxPool / AveragePool / GlobalAveragePool / GlobalMaxPool against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_builders import assert_matches_ort_equivalent, same_pads, single
from sqz_testing import assert_matches_ort, compile_beside_ort


def pool(op: str, hw: tuple[int, int] = (9, 9), c: int = 3, opset: int = 13,
         **attrs: object) -> object:
    return single(op, {"x": [1, c, *hw]}, opset=opset, **attrs)


# ---------------------------------------------------------------- MaxPool


#: (kernel, stride, pads) sweeps shared by MaxPool and AveragePool.
POOL_CASES = [
    (2, 1, None), (2, 2, None), (2, 1, [1, 1, 1, 1]), (2, 2, [0, 1, 1, 0]),
    (3, 1, None), (3, 2, None), (3, 1, [1, 1, 1, 1]), (3, 2, [1, 1, 1, 1]),
    (3, 1, [0, 1, 2, 0]), (3, 2, [2, 0, 0, 1]),
    (5, 1, [2, 2, 2, 2]), (5, 2, None), (5, 2, [2, 2, 2, 2]), (5, 1, [1, 0, 0, 4]),
]


@pytest.mark.parametrize("kernel,stride,pads", POOL_CASES, ids=str)
def test_maxpool_kernel_stride_pads(kernel: int, stride: int, pads: list[int] | None) -> None:
    """``nn.MaxPool2d(k, s, padding=p)`` (symmetric pads) and asymmetric pads (TF 'same'
    pools exported with explicit pads by tf2onnx), 9x8 input."""
    attrs = {"pads": pads} if pads is not None else {}
    assert_matches_ort(pool("MaxPool", hw=(9, 8), kernel_shape=[kernel, kernel],
                            strides=[stride, stride], **attrs))


@pytest.mark.parametrize("kernel,stride,pads,hw,opset", [
    (3, 2, [0, 0, 0, 0], (13, 13), 10),  # SqueezeNet 1.1 MaxPool(3, 2, ceil_mode=True)
    (3, 2, [0, 0, 0, 0], (8, 9), 11),    # ceil adds a partial window
    (2, 2, [0, 0, 0, 0], (7, 7), 12),
    (3, 2, [1, 1, 1, 1], (8, 8), 22),    # last window would start in the end padding
    (3, 3, [1, 0, 1, 2], (10, 11), 10),
    (5, 2, [2, 2, 2, 2], (9, 6), 12),
    (2, 1, [0, 0, 1, 1], (5, 5), 22),
    (3, 3, [0, 0, 2, 2], (7, 8), 11),    # window starting exactly at the end padding
], ids=str)
@pytest.mark.parametrize("ceil", [0, 1])
def test_maxpool_ceil_mode(kernel: int, stride: int, pads: list[int], hw: tuple[int, int],
                           opset: int, ceil: int) -> None:
    """``ceil_mode`` (Caffe-converted SqueezeNet/GoogLeNet, ``nn.MaxPool2d(ceil_mode=True)``),
    including the PyTorch rule that drops a window starting inside the end padding."""
    assert_matches_ort(pool("MaxPool", hw=hw, opset=opset, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], pads=pads, ceil_mode=ceil))


#: 8-bit MaxPool (QDQ models run it on the quantized tensors): the vector kernel (strides
#: 1 and 2, several 32-column tiles, ceil mode, padding) and the scalar fallback (stride
#: 3, dilation 2): (kernel, stride, pads, hw, ceil_mode, dilation).
INT8_POOL_CASES = [
    (3, 2, [0, 0, 0, 0], (55, 55), 1, 1),   # SqueezeNet's pool after a QDQ fire module
    (3, 2, [1, 1, 1, 1], (21, 100), 0, 1),  # two 32-lane tiles per row, padded
    (2, 1, [0, 0, 0, 0], (9, 40), 0, 1),
    (3, 1, [1, 1, 1, 1], (8, 8), 0, 1),
    (5, 2, [2, 2, 2, 2], (9, 66), 1, 1),
    (3, 3, [0, 0, 2, 2], (7, 8), 1, 1),     # stride 3: scalar loop
    (3, 1, [2, 2, 2, 2], (10, 10), 0, 2),   # dilation 2: scalar loop
]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("kernel,stride,pads,hw,ceil,dil", INT8_POOL_CASES, ids=str)
def test_maxpool_8bit(dtype: type, kernel: int, stride: int, pads: list[int],
                      hw: tuple[int, int], ceil: int, dil: int) -> None:
    """MaxPool on uint8/int8 (opset 12+), bit-exact on random bytes, batch 2."""
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    shape = [2, 5, *hw]
    model = single("MaxPool", [("x", shape, elem)], opset=12, out_type=elem,
                   kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads,
                   ceil_mode=ceil, dilations=[dil, dil])
    info = np.iinfo(dtype)
    x = np.random.default_rng(kernel * 10 + stride).integers(info.min, info.max + 1, shape)
    assert_matches_ort(model, {"x": x.astype(dtype)})


@pytest.mark.parametrize("opset", [10, 11, 12, 22])
def test_maxpool_squeezenet_opsets(opset: int) -> None:
    """The SqueezeNet 1.1 pool (3x3, stride 2, ceil_mode) at every MaxPool opset with ceil."""
    assert_matches_ort(pool("MaxPool", hw=(15, 15), c=4, opset=opset, kernel_shape=[3, 3],
                            strides=[2, 2], ceil_mode=1))


@pytest.mark.parametrize("kernel,stride,dil,pads,ceil,opset", [
    (2, 1, 2, [0, 0, 0, 0], 0, 10),
    (3, 1, 2, [2, 2, 2, 2], 0, 12),
    (3, 2, 2, [1, 1, 1, 1], 1, 22),
    (2, 2, 3, [0, 1, 1, 0], 1, 12),
    (3, 1, 3, [0, 0, 0, 0], 0, 11),
    (3, 2, 2, [0, 0, 0, 0], 1, 10),
], ids=str)
def test_maxpool_dilations(kernel: int, stride: int, dil: int, pads: list[int], ceil: int,
                           opset: int) -> None:
    """``nn.MaxPool2d(dilation=d)`` (opset >= 10), with ceil_mode and pads."""
    assert_matches_ort(pool("MaxPool", hw=(11, 12), opset=opset, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], dilations=[dil, dil], pads=pads,
                            ceil_mode=ceil))


@pytest.mark.parametrize("opset", [8, 12])
def test_maxpool_nonsquare(opset: int) -> None:
    """Non-square kernel, per-axis strides and pads (opset 8: no ceil_mode/dilations)."""
    assert_matches_ort(pool("MaxPool", hw=(9, 12), opset=opset, kernel_shape=[2, 3],
                            strides=[1, 2], pads=[1, 0, 0, 1]))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("kernel,stride,hw,opset", [
    (3, 2, (9, 9), 8), (2, 2, (7, 8), 12), (2, 1, (5, 6), 8), (3, 1, (6, 6), 12),
    (4, 3, (10, 11), 22),
], ids=str)
def test_maxpool_auto_pad(auto_pad: str, kernel: int, stride: int, hw: tuple[int, int],
                          opset: int) -> None:
    """tf2onnx ``MaxPool2D(padding='same'/'valid')`` exported as ``auto_pad``."""
    assert_matches_ort(pool("MaxPool", hw=hw, opset=opset, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], auto_pad=auto_pad))


def test_maxpool_all_negative_with_pads() -> None:
    """Padding must never win a max: all inputs negative with padded windows."""
    x = -np.abs(np.random.default_rng(3).standard_normal((1, 2, 5, 5))).astype(np.float32) - 1
    assert_matches_ort(pool("MaxPool", hw=(5, 5), c=2, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                            strides=[2, 2]), inputs={"x": x})


def test_maxpool_infinities() -> None:
    """-inf/+inf inputs pass through max pooling unchanged."""
    x = np.random.default_rng(4).standard_normal((1, 1, 6, 6)).astype(np.float32)
    x[0, 0, 0, :3] = -np.inf
    x[0, 0, 4, 4] = np.inf
    assert_matches_ort(pool("MaxPool", hw=(6, 6), c=1, kernel_shape=[2, 2], strides=[2, 2]),
                       inputs={"x": x})


# ---------------------------------------------------------------- AveragePool


@pytest.mark.parametrize("kernel,stride,pads", POOL_CASES, ids=str)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avgpool_kernel_stride_pads(kernel: int, stride: int, pads: list[int] | None,
                                    count_include_pad: int) -> None:
    """``nn.AvgPool2d(k, s, padding=p, count_include_pad=...)`` (PyTorch defaults to
    count_include_pad=True) and asymmetric pads up to kernel-1, opset 11, 9x8 input."""
    attrs = {"pads": pads} if pads is not None else {}
    assert_matches_ort(pool("AveragePool", hw=(9, 8), opset=11, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], count_include_pad=count_include_pad,
                            **attrs))


@pytest.mark.parametrize("kernel,stride,pads,hw,opset", [
    (3, 2, [0, 0, 0, 0], (8, 9), 10),
    (2, 2, [0, 0, 0, 0], (7, 7), 11),
    (3, 2, [1, 1, 1, 1], (8, 8), 19),
    (3, 3, [1, 0, 1, 2], (10, 11), 22),
    (2, 1, [0, 0, 1, 1], (5, 5), 11),
    (3, 3, [0, 0, 2, 2], (7, 8), 19),
], ids=str)
@pytest.mark.parametrize("ceil", [0, 1])
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avgpool_ceil_mode(kernel: int, stride: int, pads: list[int], hw: tuple[int, int],
                           opset: int, ceil: int, count_include_pad: int) -> None:
    """``nn.AvgPool2d(ceil_mode=True)``: partial windows at the end, with and without
    counting the padding in the divisor."""
    assert_matches_ort(pool("AveragePool", hw=hw, opset=opset, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], pads=pads, ceil_mode=ceil,
                            count_include_pad=count_include_pad))


@pytest.mark.parametrize("kernel,stride,dil,pads,ceil,opset", [
    (2, 1, 2, [0, 0, 0, 0], 0, 19),
    (3, 1, 2, [1, 1, 1, 1], 0, 22),
    (3, 2, 2, [1, 1, 1, 1], 1, 19),
    (2, 2, 3, [0, 1, 1, 0], 1, 22),
], ids=str)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avgpool_dilations(kernel: int, stride: int, dil: int, pads: list[int], ceil: int,
                           opset: int, count_include_pad: int) -> None:
    """AveragePool-19 ``dilations``."""
    assert_matches_ort(pool("AveragePool", hw=(11, 12), opset=opset,
                            kernel_shape=[kernel, kernel], strides=[stride, stride],
                            dilations=[dil, dil], pads=pads, ceil_mode=ceil,
                            count_include_pad=count_include_pad))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("kernel,stride,hw,opset", [
    (3, 2, (9, 9), 7), (2, 2, (7, 8), 11), (2, 1, (5, 6), 19), (4, 3, (10, 11), 22),
], ids=str)
@pytest.mark.parametrize("count_include_pad", [0, 1])
def test_avgpool_auto_pad(auto_pad: str, kernel: int, stride: int, hw: tuple[int, int],
                          opset: int, count_include_pad: int) -> None:
    """tf2onnx ``AveragePooling2D(padding='same')`` -> auto_pad (TF excludes the padding)."""
    assert_matches_ort(pool("AveragePool", hw=hw, opset=opset, kernel_shape=[kernel, kernel],
                            strides=[stride, stride], auto_pad=auto_pad,
                            count_include_pad=count_include_pad))


@pytest.mark.parametrize("opset", [7, 10, 11, 19, 22])
def test_avgpool_nonsquare(opset: int) -> None:
    """Non-square kernel with per-axis strides and asymmetric pads."""
    assert_matches_ort(pool("AveragePool", hw=(9, 12), opset=opset, kernel_shape=[2, 3],
                            strides=[1, 2], pads=[1, 0, 0, 2], count_include_pad=1))


# ---------------------------------------------------------------- global pooling


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize("shape,opset", [
    ([1, 4, 5, 7], 7), ([1, 3, 1, 1], 13), ([1, 2, 13, 13], 22), ([1, 5, 6], 13),
], ids=str)
def test_global_pool(op: str, shape: list[int], opset: int) -> None:
    """SqueezeNet/ResNet head ``GlobalAveragePool`` (``AdaptiveAvgPool2d(1)``) and
    GlobalMaxPool, including 1x1 spatial and a 3-D (NCL) input."""
    assert_matches_ort(single(op, {"x": shape}, opset=opset))


def test_avgpool_large_magnitudes() -> None:
    """Average of values around 1e4 (relative error must stay within float32 rounding)."""
    x = (1e4 + np.random.default_rng(7).standard_normal((1, 2, 7, 7))).astype(np.float32)
    assert_matches_ort(pool("AveragePool", hw=(7, 7), c=2, kernel_shape=[3, 3],
                            pads=[1, 1, 1, 1]), inputs={"x": x})


@pytest.mark.parametrize("op,opset,count_include_pad", [
    ("MaxPool", 12, None), ("AveragePool", 19, 0), ("AveragePool", 19, 1)], ids=str)
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
@pytest.mark.parametrize("stride,ceil", [(1, 1), (2, 0)], ids=str)
def test_pool_dilated_same_auto_pad(op: str, opset: int, count_include_pad: int | None,
                                    auto_pad: str, stride: int, ceil: int) -> None:
    """Dilated pooling with SAME_* auto_pad, checked against onnxruntime on the same pool
    with the spec's explicit pads: onnxruntime 1.32 ignores the dilation when it derives
    SAME pads (7x8 output for a 9x10 input instead of 9x10), and onnx.reference's
    AveragePool gets the dilated SAME pads wrong too. With SAME_*, ceil_mode does not change
    the output size (ceil(in / stride))."""
    k, d, hw = [3, 3], [2, 2], (9, 10)
    extra = {} if count_include_pad is None else {"count_include_pad": count_include_pad}
    m = pool(op, hw=hw, opset=opset, kernel_shape=k, dilations=d, strides=[stride] * 2,
             auto_pad=auto_pad, ceil_mode=ceil, **extra)
    pads = same_pads(hw, k, [stride] * 2, d, auto_pad == "SAME_UPPER")
    explicit = pool(op, hw=hw, opset=opset, kernel_shape=k, dilations=d,
                    strides=[stride] * 2, pads=pads, **extra)
    assert_matches_ort_equivalent(m, explicit)


# ---------------------------------------------------------------- summation order


#: (op, attributes) of float average pools whose sums onnxruntime orders differently by
#: shape: MlasPool's vector kernel (stride <= 2: column sums first), its generic kernel
#: (stride 3: row by row), its global kernel (window = input: four interleaved partial
#: sums), its own loop for ceil_mode with count_include_pad, GlobalAveragePool.
ORDER_POOLS = [
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1],
                     "ceil_mode": 1}),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 1], "pads": [1, 0, 1, 0],
                     "ceil_mode": 1, "count_include_pad": 1}),
    ("AveragePool", {"kernel_shape": [3, 3], "strides": [3, 3]}),
    ("AveragePool", {"kernel_shape": [13, 13]}),
    ("GlobalAveragePool", {}),
]


@pytest.mark.parametrize("op,attrs", ORDER_POOLS, ids=[f"{o}-{a}" for o, a in ORDER_POOLS])
@pytest.mark.parametrize("opset", [13, 19])
@pytest.mark.parametrize("channels", [8, 16, 24])
@pytest.mark.parametrize("blocked", [False, True], ids=["plain", "blocked"])
def test_avgpool_sums_in_onnxruntime_order(op: str, attrs: dict[str, object], opset: int,
                                           channels: int, blocked: bool, tmp_path) -> None:
    """Float average pooling is bit-exact with onnxruntime, so a QDQ model's unfused pool
    quantizes to its bytes. onnxruntime's order depends on the opset (MlasPool before 19, a
    row-by-row loop from 19), the shape (MlasPool's kernel choice) and the channel count
    (counts filling whole NCHWc blocks, 16 with AVX-512 else 8, go to its blocked kernels,
    row by row). ``blocked``: an identity 1x1 conv first (exact), so sqzc runs the pool on
    channel-blocked tensors."""
    pytest.importorskip("onnxruntime")
    from onnx import numpy_helper
    from onnx_builders import make_model

    shape = [1, channels, 13, 13]
    nodes, inits, src = [], [], "x"
    if blocked:
        eye = np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1)
        inits.append(numpy_helper.from_array(eye, "w"))
        nodes.append(helper.make_node("Conv", ["x", "w"], ["c"]))
        src = "c"
    nodes.append(helper.make_node(op, [src], ["y"], **attrs))
    model = make_model(nodes, {"x": shape}, ["y"], inits, opset)
    _, lib, sess = compile_beside_ort(model, tmp_path)
    for seed in range(2):
        x = (np.random.default_rng(seed).standard_normal(shape) * 100).astype(np.float32)
        np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])


@pytest.mark.parametrize("source", ["dequantize", "relu-of-input", "rank3", "rank5", "conv-relu"])
@pytest.mark.parametrize("channels", [16, 24])
def test_global_avgpool_order_follows_its_source(source: str, channels: int, tmp_path) -> None:
    """onnxruntime's NCHWc transformer takes a GlobalAveragePool only when its 4-D input is
    already NCHWc (a conv or pool result, possibly through elementwise ops) or a graph
    input; after a DequantizeLinear, a Relu of a graph input, or on other ranks it runs
    MlasPool's global kernel whatever the channel count. Bit-exact either way."""
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, numpy_helper
    from onnx_builders import make_model

    shape = {"rank3": [1, channels, 169], "rank5": [1, channels, 5, 6, 7]}.get(
        source, [1, channels, 13, 13])
    nodes, inits, inputs = [], [], [("x", shape, TensorProto.FLOAT)]
    src = "x"
    if source == "dequantize":
        inputs = [("x", shape, TensorProto.INT8)]
        inits += [numpy_helper.from_array(np.float32(0.05), "s"),
                  numpy_helper.from_array(np.int8(3), "z")]
        nodes.append(helper.make_node("DequantizeLinear", ["x", "s", "z"], ["d"]))
        src = "d"
    elif source == "relu-of-input":
        nodes.append(helper.make_node("Relu", ["x"], ["r"]))
        src = "r"
    elif source == "conv-relu":
        eye = np.eye(channels, dtype=np.float32).reshape(channels, channels, 1, 1)
        inits.append(numpy_helper.from_array(eye, "w"))
        nodes += [helper.make_node("Conv", ["x", "w"], ["c"]),
                  helper.make_node("Relu", ["c"], ["r"])]
        src = "r"
    nodes.append(helper.make_node("GlobalAveragePool", [src], ["y"]))
    model = make_model(nodes, inputs, ["y"], inits, 13)
    _, lib, sess = compile_beside_ort(model, tmp_path)
    for seed in range(3):
        rng = np.random.default_rng(seed)
        x = rng.integers(-128, 128, shape).astype(np.int8) if source == "dequantize" \
            else (rng.standard_normal(shape) * 100).astype(np.float32)
        np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])
