"""Conv against onnxruntime: kernels, strides, pads, dilations, auto_pad, groups, bias,
opsets, plus the few-node exporter patterns that end in a fused/folded Conv."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_builders import (
    assert_matches_ort_equivalent,
    init,
    make_model,
    rand,
    same_pads,
    single,
)
from sqz_testing import assert_matches_ort


def conv_model(c_in: int = 3, c_out: int = 4, hw: tuple[int, int] = (9, 9),
               kernel: tuple[int, int] = (3, 3), group: int = 1, bias: bool = True,
               opset: int = 13, kernel_shape_attr: bool = True, seed: int = 1,
               **attrs: object) -> object:
    """One Conv with constant W (and B) on a [1, c_in, H, W] input."""
    inits = [init("W", rand((c_out, c_in // group) + tuple(kernel), seed, 0.5))]
    if bias:
        inits.append(init("B", rand((c_out,), seed + 1)))
    if kernel_shape_attr:
        attrs["kernel_shape"] = list(kernel)
    if group != 1:
        attrs["group"] = group
    return single("Conv", {"x": [1, c_in, *hw]}, opset=opset, initializers=inits, **attrs)


KERNELS = [(1, 1), (3, 3), (5, 5), (7, 7), (1, 3), (3, 1)]


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"k{k[0]}x{k[1]}")
def test_conv_kernel_stride_same_pads(kernel: tuple[int, int], stride: int) -> None:
    """PyTorch ``nn.Conv2d(k, stride=s, padding=k//2)``: symmetric "same-ish" pads, odd
    spatial size (11x9) so strided outputs drop a partial window."""
    ph, pw = kernel[0] // 2, kernel[1] // 2
    assert_matches_ort(conv_model(hw=(11, 9), kernel=kernel, strides=[stride, stride],
                                  pads=[ph, pw, ph, pw]))


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: f"k{k[0]}x{k[1]}")
def test_conv_no_pads(kernel: tuple[int, int]) -> None:
    """``padding=0`` (no pads attribute at all): valid convolution on a 9x8 input."""
    assert_matches_ort(conv_model(hw=(9, 8), kernel=kernel))


@pytest.mark.parametrize("pads", [
    [0, 1, 2, 0], [2, 0, 0, 1], [1, 2, 0, 0], [0, 0, 1, 2], [3, 3, 0, 0], [0, 3, 1, 0],
], ids=str)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_asymmetric_pads(pads: list[int], stride: int) -> None:
    """Asymmetric explicit pads (TF/Keras 'same' exported by tf2onnx with explicit pads,
    or ``F.pad`` folded into the Conv by optimizers); pads may exceed the kernel radius."""
    assert_matches_ort(conv_model(hw=(7, 9), kernel=(3, 3), strides=[stride, stride],
                                  pads=pads))


@pytest.mark.parametrize("strides", [[1, 2], [2, 1], [3, 2]], ids=str)
def test_conv_nonuniform_strides(strides: list[int]) -> None:
    """Different strides per axis with a non-square kernel."""
    assert_matches_ort(conv_model(hw=(10, 11), kernel=(3, 5), strides=strides,
                                  pads=[1, 2, 1, 2]))


@pytest.mark.parametrize("kernel,pads", [
    ((3, 3), [2, 2, 2, 2]), ((3, 3), [0, 0, 0, 0]), ((1, 3), [0, 2, 0, 2]),
    ((3, 1), [1, 0, 2, 0]), ((5, 5), [4, 4, 4, 4]),
], ids=str)
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_dilation2(kernel: tuple[int, int], pads: list[int], stride: int) -> None:
    """Dilated conv (DeepLab-style atrous, ``dilation=2, padding=2``)."""
    assert_matches_ort(conv_model(hw=(13, 11), kernel=kernel, dilations=[2, 2],
                                  strides=[stride, stride], pads=pads))


def test_conv_mixed_dilations() -> None:
    """Dilation (2, 1): different per axis."""
    assert_matches_ort(conv_model(hw=(9, 9), kernel=(3, 3), dilations=[2, 1],
                                  pads=[2, 1, 2, 1]))


@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER", "VALID"])
@pytest.mark.parametrize("kernel,stride,dil,hw", [
    ((3, 3), 1, 1, (7, 7)),
    ((2, 2), 1, 1, (6, 7)),   # odd total pad: UPPER and LOWER differ
    ((4, 4), 2, 1, (8, 9)),
    ((3, 3), 2, 1, (8, 8)),   # even input, stride 2: total pad 1
    ((5, 3), 3, 1, (10, 11)),
    ((3, 2), 1, 2, (7, 8)),   # dilated
], ids=lambda v: str(v))
def test_conv_auto_pad(auto_pad: str, kernel: tuple[int, int], stride: int, dil: int,
                       hw: tuple[int, int]) -> None:
    """tf2onnx/keras2onnx ``padding='same'/'valid'`` exported as ``auto_pad``.

    onnxruntime refuses dilation with SAME_*; those cases compare with onnxruntime on the
    same Conv with the spec's explicit SAME pads."""
    m = conv_model(hw=hw, kernel=kernel, auto_pad=auto_pad, strides=[stride, stride],
                   dilations=[dil, dil])
    if dil > 1 and auto_pad != "VALID":
        pads = same_pads(hw, kernel, [stride] * 2, [dil] * 2, auto_pad == "SAME_UPPER")
        assert_matches_ort_equivalent(m, conv_model(hw=hw, kernel=kernel, pads=pads,
                                                    strides=[stride] * 2, dilations=[dil] * 2))
    else:
        assert_matches_ort(m)


@pytest.mark.parametrize("c_in,c_out,group", [
    (4, 6, 2), (8, 8, 4), (4, 4, 2), (8, 4, 4),
    (6, 6, 6),   # depthwise
    (4, 8, 4),   # depthwise with channel multiplier 2
    (3, 3, 3),
], ids=lambda v: str(v))
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_grouped(c_in: int, c_out: int, group: int, stride: int) -> None:
    """Grouped conv (ResNeXt) and depthwise conv (MobileNet ``groups=in_channels``)."""
    assert_matches_ort(conv_model(c_in=c_in, c_out=c_out, group=group, hw=(9, 7),
                                  strides=[stride, stride], pads=[1, 1, 1, 1]))


def _kernel_variants(model: object) -> list[str]:
    """The conv kernel variants sqzc's pipeline picks for ``model`` on this host."""
    import tempfile
    from pathlib import Path

    import onnx

    from sqzc.driver import CompileOptions, load_graph, optimize
    from sqzc.ops import OpKind, variant_of

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "m.onnx"
        onnx.save(model, path)  # type: ignore[arg-type]
        options = CompileOptions()
        graph = load_graph(path, options)
        optimize(graph, options)
    return [variant_of(graph.op(n)) for n in graph.nodes() if graph.op(n).kind is OpKind.CONV]


@pytest.mark.parametrize("channels", [16, 24, 40, 3])
@pytest.mark.parametrize("kernel, stride, hw", [
    ((3, 3), 1, (15, 15)), ((3, 3), 2, (15, 14)), ((5, 5), 1, (9, 11)), ((5, 5), 2, (14, 14)),
    ((3, 3), 1, (7, 7)), ((7, 7), 1, (9, 9)),
], ids=lambda v: str(v))
def test_conv_depthwise_blocked(channels: int, kernel: tuple[int, int], stride: int,
                                hw: tuple[int, int]) -> None:
    """MobileNet / EfficientNet depthwise convs (3x3 and 5x5, stride 1 and 2, "same" pads,
    maps from 7x7 up, channel counts that leave a partial block) run the depthwise
    kernel on NCHW[b]c and match onnxruntime."""
    ph, pw = kernel[0] // 2, kernel[1] // 2
    m = conv_model(c_in=channels, c_out=channels, group=channels, hw=hw, kernel=kernel,
                   strides=[stride, stride], pads=[ph, pw, ph, pw])
    assert _kernel_variants(m) == ["depthwise"]
    assert_matches_ort(m)


@pytest.mark.parametrize("pads, dilation", [([0, 0, 0, 0], 1), ([2, 1, 0, 2], 1),
                                            ([2, 2, 2, 2], 2)], ids=str)
def test_conv_depthwise_blocked_pads_dilation(pads: list[int], dilation: int) -> None:
    """The depthwise kernel with no pads, asymmetric pads and dilation 2."""
    m = conv_model(c_in=20, c_out=20, group=20, hw=(10, 13), pads=pads,
                   dilations=[dilation, dilation])
    assert _kernel_variants(m) == ["depthwise"]
    assert_matches_ort(m)


@pytest.mark.parametrize("act", ["Relu", "Clip", "HardSwish", "Sigmoid"])
def test_conv_depthwise_blocked_fused_activation(act: str) -> None:
    """Conv (depthwise, after a 1x1 conv so its input is already blocked) + activation:
    MobileNetV2's ReLU6 (Clip 0..6), V3's HardSwish, EfficientNet's Sigmoid, fused into
    the depthwise kernel's epilogue."""
    c = 24
    nodes = [helper.make_node("Conv", ["x", "W1", "B1"], ["h"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["h", "W2", "B2"], ["z"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1], group=c)]
    inits = [init("W1", rand((c, 8, 1, 1), 3, 0.5)), init("B1", rand((c,), 4)),
             init("W2", rand((c, 1, 3, 3), 5, 0.5)), init("B2", rand((c,), 6))]
    if act == "Clip":
        inits += [init("lo", np.array(0.0, np.float32)), init("hi", np.array(6.0, np.float32))]
        nodes.append(helper.make_node("Clip", ["z", "lo", "hi"], ["y"]))
    else:
        nodes.append(helper.make_node(act, ["z"], ["y"]))
    m = make_model(nodes, {"x": [1, 8, 11, 11]}, ["y"], initializers=inits, opset=14)
    assert _kernel_variants(m) == ["direct", "depthwise"]
    assert_matches_ort(m)


@pytest.mark.parametrize("c, group", [(64, 4), (96, 2), (48, 3)])
@pytest.mark.parametrize("stride", [1, 2])
def test_conv_grouped_blocked(c: int, group: int, stride: int) -> None:
    """Groups of whole 16-channel blocks (RegNetX's group width 16, 32, 48) run the
    direct blocked kernel with each group's input channels."""
    m = conv_model(c_in=c, c_out=c, group=group, hw=(9, 10), strides=[stride, stride],
                   pads=[1, 1, 1, 1])
    assert _kernel_variants(m) == ["direct"]
    assert_matches_ort(m)


@pytest.mark.parametrize("group", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_bias_group_opsets(group: int, bias: bool, opset: int) -> None:
    """``bias=False`` (PyTorch conv before BatchNorm) vs bias, across Conv-1/11/22."""
    assert_matches_ort(conv_model(c_in=4, c_out=8, group=group, bias=bias, opset=opset,
                                  hw=(7, 9), strides=[2, 1], pads=[1, 0, 1, 2]))


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_without_kernel_shape_attr(opset: int) -> None:
    """kernel_shape is optional: inferred from W (onnx-tensorflow / hand-written models)."""
    assert_matches_ort(conv_model(kernel=(3, 5), kernel_shape_attr=False, opset=opset,
                                  pads=[1, 2, 1, 2]))


@pytest.mark.parametrize("opset", [7, 11, 22])
@pytest.mark.parametrize("auto_pad", ["SAME_UPPER", "SAME_LOWER"])
def test_conv_depthwise_dilated_auto_pad(opset: int, auto_pad: str) -> None:
    """Depthwise + dilation + SAME_* together (MobileNet/EfficientNet via tf2onnx);
    onnxruntime refuses dilated SAME_*, so it runs the explicit-pads spelling."""
    common = dict(c_in=4, c_out=4, group=4, hw=(9, 10), kernel=(3, 3), dilations=[2, 2],
                  strides=[2, 2], opset=opset)
    pads = same_pads((9, 10), (3, 3), (2, 2), (2, 2), auto_pad == "SAME_UPPER")
    assert_matches_ort_equivalent(conv_model(auto_pad=auto_pad, **common),
                                  conv_model(pads=pads, **common))


def test_conv_runtime_weight() -> None:
    """W fed as a graph input instead of an initializer (weights not constant-folded)."""
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1], strides=[2, 2])
    assert_matches_ort(make_model([node], {"x": [1, 3, 8, 8], "w": [5, 3, 3, 3]}, ["y"]))


def test_conv_large_magnitude_bias_tiny_weights() -> None:
    """Bias dominating the output (checks bias is added exactly once per output)."""
    inits = [init("W", rand((4, 3, 3, 3), 3, 1e-3)), init("B", rand((4,), 4, 100.0))]
    assert_matches_ort(single("Conv", {"x": [1, 3, 6, 6]}, initializers=inits,
                              pads=[1, 1, 1, 1]))


def test_conv_1x1_pointwise_many_channels() -> None:
    """SqueezeNet squeeze/expand 1x1 (many input channels, stride 1, no pads)."""
    assert_matches_ort(conv_model(c_in=32, c_out=16, kernel=(1, 1), hw=(5, 5)))


# ---------------------------------------------------------------- exporter patterns


def _conv_then(op_nodes: list, extra_inits: list | None = None, opset: int = 13,
               c_out: int = 4, hw: tuple[int, int] = (7, 7)) -> object:
    inits = [init("W", rand((c_out, 3, 3, 3), 5, 0.5)), init("B", rand((c_out,), 6))]
    conv = helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1])
    return make_model([conv, *op_nodes], {"x": [1, 3, *hw]}, ["y"],
                      inits + (extra_inits or []), opset)


@pytest.mark.parametrize("act", ["Relu", "LeakyRelu", "Clip6", "ClipMinOnly"])
@pytest.mark.parametrize("opset", [11, 13])
def test_conv_activation_fusion(act: str, opset: int) -> None:
    """Conv -> Relu / LeakyRelu / Clip(0, 6) (PyTorch ReLU6 exported as Clip with constant
    min/max inputs) / Clip(min only): fused into the Conv epilogue at -O3."""
    extra = []
    if act == "Relu":
        node = helper.make_node("Relu", ["c"], ["y"])
    elif act == "LeakyRelu":
        node = helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.2)
    elif act == "Clip6":
        extra = [init("lo", np.array(0, np.float32)), init("hi", np.array(6, np.float32))]
        node = helper.make_node("Clip", ["c", "lo", "hi"], ["y"])
    else:
        extra = [init("lo", np.array(-0.5, np.float32))]
        node = helper.make_node("Clip", ["c", "lo"], ["y"])
    assert_matches_ort(_conv_then([node], extra, opset), seed=2)


@pytest.mark.parametrize("opset", [9, 14, 15])
def test_conv_batchnorm_relu(opset: int) -> None:
    """PyTorch eval-mode Conv -> BatchNormalization -> Relu exported without
    ``do_constant_folding`` (BN stays a node; sqzc folds it into W and b)."""
    c = 4
    rng = np.random.default_rng(9)
    bn = [init("g", rng.uniform(0.5, 2, c).astype(np.float32)),
          init("b", rng.standard_normal(c).astype(np.float32)),
          init("m", rng.standard_normal(c).astype(np.float32)),
          init("v", rng.uniform(0.1, 3, c).astype(np.float32))]
    nodes = [helper.make_node("BatchNormalization", ["c", "g", "b", "m", "v"], ["bn"],
                              epsilon=1e-3),
             helper.make_node("Relu", ["bn"], ["y"])]
    assert_matches_ort(_conv_then(nodes, bn, opset), seed=3)


@pytest.mark.parametrize("op,const_first", [
    ("Mul", False), ("Mul", True), ("Add", False), ("Add", True),
    ("Sub", False), ("Sub", True), ("Div", False), ("Div", True),
])
@pytest.mark.parametrize("cshape", [(4, 1, 1), (1, 4, 1, 1), (1,), ()], ids=str)
def test_conv_then_channel_affine(op: str, const_first: bool, cshape: tuple) -> None:
    """Conv followed by Mul/Add/Sub/Div with a per-channel or scalar constant on either side
    (decomposed BN / normalization layers); only ``conv op c`` may fold into W and b."""
    rng = np.random.default_rng(11)
    c = rng.uniform(0.5, 2.0, cshape).astype(np.float32)
    ins = ["k", "c"] if const_first else ["c", "k"]
    node = helper.make_node(op, ins, ["y"])
    assert_matches_ort(_conv_then([node], [init("k", c)]), seed=4)


def test_conv_shared_output_not_fused() -> None:
    """A Conv feeding both a Relu and a graph output: the activation must not be fused."""
    inits = [init("W", rand((4, 3, 3, 3), 5, 0.5))]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["y"])]
    m = make_model(nodes, {"x": [1, 3, 5, 5]}, ["y", "c"], inits)
    assert_matches_ort(m)


def test_conv_bn_with_second_consumer() -> None:
    """Conv whose output is also read elsewhere (residual): the Mul must not fold into W."""
    inits = [init("W", rand((3, 3, 3, 3), 5, 0.5)),
             init("s", np.array([0.5, 2.0, -1.0], np.float32).reshape(3, 1, 1))]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Mul", ["c", "s"], ["m"]),
             helper.make_node("Add", ["m", "c"], ["y"])]
    assert_matches_ort(make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], inits))
