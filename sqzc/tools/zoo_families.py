"""Model zoo, part 2: the torchvision small-CNN families with seeded random weights.

Each builder reproduces the graph ``torch.onnx.export`` (the TorchScript exporter, eval
mode, ``do_constant_folding=True``) writes for a torchvision classifier: the exact
topology (widths, kernels, strides, groups, block counts), every BatchNorm that follows a
Conv folded into it (its shift becomes the conv bias), Dropout gone, ``nn.ReLU6`` as Clip
with scalar min/max initializers, SiLU as Sigmoid+Mul, HardSwish as ``HardSwish`` from
opset 14 and as HardSigmoid(1/6, 0.5)+Mul before, ``x.chunk(2, 1)`` as Split, adaptive
average pooling as GlobalAveragePool, ``x.mean([2, 3])`` as ReduceMean(keepdims=0),
``nn.Linear`` as Gemm(transB=1). DenseNet's pre-activation BatchNorms (after a Concat,
not after a Conv) stay BatchNormalization nodes, as the exporter leaves them.

Naming follows the exporter (``zoo_graph``): nodes ``/layer1/layer1.0/conv1/Conv``,
parameters by ``state_dict`` name. The graph input is ``input`` [N, 3, S, S] and the
output ``output`` [N, classes] (logits, no softmax), the names most exports pass as
``input_names`` / ``output_names`` (the exporter's default would be ``input.1`` or
``x.1`` and the last node's output). Differences from torchvision: GoogLeNet without
``transform_input`` and aux heads (the eval-mode graph of a pretrained model has no aux
heads); a DenseNet layer's Concat of a single tensor is omitted.

Weights are seeded normal, calibrated by ``zoo_graph.Net`` on a standard-normal image the
way BatchNorm folding with real statistics would scale them (conv outputs of rms ~1,
residual branches damped by ``_RES_GAIN``, squeeze-excite gates kept near 0.5 by
``_GATE_GAIN``), so a standard-normal input gives logits of std ~1 at any seed: finite and
far from equal in float32 and float16. The models classify nothing. Building costs a
numpy forward pass: about 0.5-4 s at 224x224, well under one at 64x64.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import helper

from sqzc.tools.zoo_graph import Net

__all__ = ["FAMILIES", "INPUT_NAME", "MIN_OPSET", "OUTPUT_NAME", "build_family"]

INPUT_NAME = "input"
OUTPUT_NAME = "output"
#: Split with the sizes as an input, Clip with min/max inputs: opset 13 is the floor.
MIN_OPSET = 13
# Gain on the last conv of a residual branch: the Add then grows the variance by 1.25x,
# not 2x, per block (eval-mode BN statistics would do the same job in a trained model).
_RES_GAIN = 0.5
# Gain on a squeeze-excite's fc2: gates stay near 0.5 (rms of the logits before them ~0.5),
# so the gated features' scale is predictable and seeds do not differ by orders of magnitude.
_GATE_GAIN = 0.5


def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision ``_make_divisible``: round to a multiple of 8, never down by > 10%."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


def _head_pool(g: Net, x: str, cls: int, gain: float, module: str = "fc",
               pool: str = "avgpool") -> str:
    """AdaptiveAvgPool2d(1) -> flatten(x, 1) -> Linear, the common torchvision head."""
    return g.gemm(module, g.flatten("", g.global_avg_pool(pool, x)), cls, gain)


# ----------------------------------------------------------------------------- ResNet


def resnet18(g: Net, x: str, cls: int, gain: float) -> str:
    x = g.relu("relu", g.conv("conv1", x, 64, 7, 2, 3))
    x = g.max_pool("maxpool", x, 3, 2, 1)
    cin = 64
    for li, width in enumerate((64, 128, 256, 512), 1):
        for bi in range(2):
            m = f"layer{li}.{bi}"
            stride = 2 if li > 1 and bi == 0 else 1
            y = g.relu(f"{m}.relu", g.conv(f"{m}.conv1", x, width, 3, stride))
            y = g.conv(f"{m}.conv2", y, width, 3, gain=_RES_GAIN)
            if stride != 1 or cin != width:
                x = g.conv(f"{m}.downsample.0", x, width, 1, stride)
            x = g.relu(f"{m}.relu", g.add(m, y, x))
            cin = width
    return _head_pool(g, x, cls, gain)


# ----------------------------------------------------------------------------- MobileNet v2


def mobilenet_v2(g: Net, x: str, cls: int, gain: float) -> str:
    x = g.relu6("features.0.2", g.conv("features.0.0", x, 32, 3, 2))
    cin, i = 32, 1
    for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                       (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)):
        for j in range(n):
            stride = s if j == 0 else 1
            m, k = f"features.{i}.conv", 0
            y = x
            if t != 1:
                y = g.relu6(f"{m}.0.2", g.conv(f"{m}.0.0", y, cin * t, 1))
                k = 1
            y = g.relu6(f"{m}.{k}.2", g.conv(f"{m}.{k}.0", y, cin * t, 3, stride,
                                               groups=cin * t))
            residual = stride == 1 and cin == c
            y = g.conv(f"{m}.{k + 1}", y, c, 1, gain=_RES_GAIN if residual else 1.0)
            x = g.add(f"features.{i}", x, y) if residual else y
            cin, i = c, i + 1
    x = g.relu6(f"features.{i}.2", g.conv(f"features.{i}.0", x, 1280, 1))
    return g.gemm("classifier.1", g.flatten("", g.global_avg_pool("", x)), cls, gain)


# ----------------------------------------------------------------------------- MobileNet v3

# (kernel, expanded, out, use_se, hardswish, stride) per block, torchvision's bneck_conf.
_V3_LARGE = (
    (3, 16, 16, False, False, 1), (3, 64, 24, False, False, 2), (3, 72, 24, False, False, 1),
    (5, 72, 40, True, False, 2), (5, 120, 40, True, False, 1), (5, 120, 40, True, False, 1),
    (3, 240, 80, False, True, 2), (3, 200, 80, False, True, 1), (3, 184, 80, False, True, 1),
    (3, 184, 80, False, True, 1), (3, 480, 112, True, True, 1), (3, 672, 112, True, True, 1),
    (5, 672, 160, True, True, 2), (5, 960, 160, True, True, 1), (5, 960, 160, True, True, 1),
)
_V3_SMALL = (
    (3, 16, 16, True, False, 2), (3, 72, 24, False, False, 2), (3, 88, 24, False, False, 1),
    (5, 96, 40, True, True, 2), (5, 240, 40, True, True, 1), (5, 240, 40, True, True, 1),
    (5, 120, 48, True, True, 1), (5, 144, 48, True, True, 1), (5, 288, 96, True, True, 2),
    (5, 576, 96, True, True, 1), (5, 576, 96, True, True, 1),
)


def _squeeze_excite(g: Net, m: str, x: str, squeeze: int, act: str, gate: str) -> str:
    """torchvision ``ops.SqueezeExcitation``: pool, fc1, act, fc2, gate, ``scale * x``."""
    s = g.global_avg_pool(f"{m}.avgpool", x)
    s = g.conv(f"{m}.fc1", s, squeeze, 1)
    s = g.relu(f"{m}.activation", s) if act == "relu" else g.silu(f"{m}.activation", s)
    s = g.conv(f"{m}.fc2", s, g.shape[x][0], 1, gain=_GATE_GAIN)
    if gate == "hardsigmoid":
        s = g.hardsigmoid(f"{m}.scale_activation", s)
    else:
        s = g.sigmoid(f"{m}.scale_activation", s)
    return g.mul(m, s, x)


def _mobilenet_v3(g: Net, x: str, cls: int, gain: float, setting: tuple,
                  last_channel: int) -> str:
    x = g.hardswish("features.0.2", g.conv("features.0.0", x, 16, 3, 2))
    cin = 16
    for i, (k, exp, c, se, hs, stride) in enumerate(setting, 1):
        m, j = f"features.{i}.block", 0

        def act(mod: str, y: str, hs: bool = hs) -> str:
            return g.hardswish(mod, y) if hs else g.relu(mod, y)

        y = x
        if exp != cin:
            y, j = act(f"{m}.0.2", g.conv(f"{m}.0.0", y, exp, 1)), 1
        y = act(f"{m}.{j}.2", g.conv(f"{m}.{j}.0", y, exp, k, stride, groups=exp))
        j += 1
        if se:
            y = _squeeze_excite(g, f"{m}.{j}", y, _make_divisible(exp // 4), "relu",
                                "hardsigmoid")
            j += 1
        residual = stride == 1 and cin == c
        y = g.conv(f"{m}.{j}.0", y, c, 1, gain=(_RES_GAIN if residual else 1.0)
                  )
        x = g.add(f"features.{i}", x, y) if residual else y
        cin = c
    n = len(setting) + 1
    x = g.hardswish(f"features.{n}.2", g.conv(f"features.{n}.0", x, 6 * cin, 1))
    x = g.flatten("", g.global_avg_pool("avgpool", x))
    x = g.hardswish("classifier.1", g.gemm("classifier.0", x, last_channel))
    return g.gemm("classifier.3", x, cls, gain)


def mobilenet_v3_large(g: Net, x: str, cls: int, gain: float) -> str:
    return _mobilenet_v3(g, x, cls, gain, _V3_LARGE, 1280)


def mobilenet_v3_small(g: Net, x: str, cls: int, gain: float) -> str:
    return _mobilenet_v3(g, x, cls, gain, _V3_SMALL, 1024)


# ----------------------------------------------------------------------------- EfficientNet


def efficientnet_b0(g: Net, x: str, cls: int, gain: float) -> str:
    x = g.silu("features.0.2", g.conv("features.0.0", x, 32, 3, 2))
    cin = 32
    # (expand_ratio, kernel, stride, out, layers): torchvision's MBConvConfig for B0
    for s, (t, k, stride0, c, n) in enumerate(((1, 3, 1, 16, 1), (6, 3, 2, 24, 2),
                                               (6, 5, 2, 40, 2), (6, 3, 2, 80, 3),
                                               (6, 5, 1, 112, 3), (6, 5, 2, 192, 4),
                                               (6, 3, 1, 320, 1)), 1):
        for b in range(n):
            stride = stride0 if b == 0 else 1
            m, j, exp = f"features.{s}.{b}.block", 0, cin * t
            y = x
            if exp != cin:
                y, j = g.silu(f"{m}.0.2", g.conv(f"{m}.0.0", y, exp, 1)), 1
            y = g.silu(f"{m}.{j}.2", g.conv(f"{m}.{j}.0", y, exp, k, stride, groups=exp))
            y = _squeeze_excite(g, f"{m}.{j + 1}", y, max(1, cin // 4), "silu", "sigmoid")
            residual = stride == 1 and cin == c
            y = g.conv(f"{m}.{j + 2}.0", y, c, 1,
                       gain=_RES_GAIN if residual else 1.0)
            x = g.add(f"features.{s}.{b}", y, x) if residual else y
            cin = c
    x = g.silu("features.8.2", g.conv("features.8.0", x, 1280, 1))
    return _head_pool(g, x, cls, gain, module="classifier.1")


# ----------------------------------------------------------------------------- ShuffleNet v2


def _shuffle(g: Net, m: str, x: str) -> str:
    """``channel_shuffle(x, 2)``: view [N, 2, C/2, H, W], transpose(1, 2), view [N, C, H, W]."""
    c, h, w = g.shape[x]
    x = g.reshape(m, x, [2, c // 2, h, w], (2, c // 2, h, w))
    x = g.transpose(m, x, [0, 2, 1, 3, 4], (c // 2, 2, h, w))
    return g.reshape(m, x, [c, h, w] if g.batch is None else [-1, h, w], (c, h, w))


def shufflenet_v2_x1_0(g: Net, x: str, cls: int, gain: float) -> str:
    x = g.relu("conv1.2", g.conv("conv1.0", x, 24, 3, 2))
    x = g.max_pool("maxpool", x, 3, 2, 1)
    cin = 24
    for s, (n, c) in enumerate(((4, 116), (8, 232), (4, 464)), 2):
        half = c // 2
        for b in range(n):
            m = f"stage{s}.{b}"
            if b == 0:
                x1 = g.conv(f"{m}.branch1.0", x, cin, 3, 2, groups=cin)
                x1 = g.relu(f"{m}.branch1.4", g.conv(f"{m}.branch1.2", x1, half, 1))
                x2 = x
            else:
                x1, x2 = g.split2(m, x)
            y = g.relu(f"{m}.branch2.2", g.conv(f"{m}.branch2.0", x2, half, 1))
            y = g.conv(f"{m}.branch2.3", y, half, 3, 2 if b == 0 else 1, groups=half)
            y = g.relu(f"{m}.branch2.7", g.conv(f"{m}.branch2.5", y, half, 1))
            x, cin = _shuffle(g, m, g.concat(m, [x1, y])), c
    x = g.relu("conv5.2", g.conv("conv5.0", x, 1024, 1))
    return g.gemm("fc", g.mean_hw("", x), cls, gain)


# ----------------------------------------------------------------------------- MNASNet


def mnasnet0_5(g: Net, x: str, cls: int, gain: float) -> str:
    d = [16, 8, 16, 24, 40, 48, 96, 160]  # _get_depths(0.5)
    x = g.relu("layers.2", g.conv("layers.0", x, d[0], 3, 2))
    x = g.relu("layers.5", g.conv("layers.3", x, d[0], 3, groups=d[0]))
    x = g.conv("layers.6", x, d[1], 1)
    cin = d[1]
    # (out, kernel, stride, expansion, repeats) of the _stack calls layers.8 .. layers.13
    for li, (c, k, s, t, n) in enumerate(((d[2], 3, 2, 3, 3), (d[3], 5, 2, 3, 3),
                                          (d[4], 5, 2, 6, 3), (d[5], 3, 1, 6, 2),
                                          (d[6], 5, 2, 6, 4), (d[7], 3, 1, 6, 1)), 8):
        for b in range(n):
            m, stride = f"layers.{li}.{b}.layers", s if b == 0 else 1
            y = g.relu(f"{m}.2", g.conv(f"{m}.0", x, cin * t, 1))
            y = g.relu(f"{m}.5", g.conv(f"{m}.3", y, cin * t, k, stride, groups=cin * t))
            residual = stride == 1 and cin == c
            y = g.conv(f"{m}.6", y, c, 1, gain=_RES_GAIN if residual else 1.0)
            x = g.add(f"layers.{li}.{b}", y, x) if residual else y
            cin = c
    x = g.relu("layers.16", g.conv("layers.14", x, 1280, 1))
    return g.gemm("classifier.1", g.mean_hw("", x), cls, gain)


# ----------------------------------------------------------------------------- RegNet


def regnet_x_400mf(g: Net, x: str, cls: int, gain: float) -> str:
    g.containers = frozenset({"trunk_output", *(f"trunk_output.block{s}" for s in range(1, 5))})
    x = g.relu("stem.2", g.conv("stem.0", x, 32, 3, 2))
    cin, group_width = 32, 16
    # depths and widths of BlockParams.from_init_params(22, 24, 24.48, 2.54, group_width=16)
    for s, (n, c) in enumerate(((1, 32), (2, 64), (7, 160), (12, 400)), 1):
        for b in range(n):
            m = f"trunk_output.block{s}.block{s}-{b}"
            stride = 2 if b == 0 else 1
            y = g.relu(f"{m}.f.a.2", g.conv(f"{m}.f.a.0", x, c, 1))
            y = g.relu(f"{m}.f.b.2", g.conv(f"{m}.f.b.0", y, c, 3, stride,
                                            groups=c // group_width))
            y = g.conv(f"{m}.f.c.0", y, c, 1, gain=_RES_GAIN)
            if stride != 1 or cin != c:
                x = g.conv(f"{m}.proj.0", x, c, 1, stride)
            x, cin = g.relu(f"{m}.activation", g.add(m, x, y)), c
    return _head_pool(g, x, cls, gain)


# ----------------------------------------------------------------------------- GoogLeNet


def _basic(g: Net, m: str, x: str, cout: int, k: int, stride: int = 1) -> str:
    """``BasicConv2d``: Conv (+ folded BN, eps 1e-3) then ``F.relu`` in its forward."""
    return g.relu(m, g.conv(f"{m}.conv", x, cout, k, stride))


def googlenet(g: Net, x: str, cls: int, gain: float) -> str:
    x = _basic(g, "conv1", x, 64, 7, 2)
    x = g.max_pool("maxpool1", x, 3, 2, ceil=True)
    x = _basic(g, "conv3", _basic(g, "conv2", x, 64, 1), 192, 3)
    x = g.max_pool("maxpool2", x, 3, 2, ceil=True)
    for name, (c1, r3, c3, r5, c5, pp) in (
            ("3a", (64, 96, 128, 16, 32, 32)), ("3b", (128, 128, 192, 32, 96, 64)),
            ("4a", (192, 96, 208, 16, 48, 64)), ("4b", (160, 112, 224, 24, 64, 64)),
            ("4c", (128, 128, 256, 24, 64, 64)), ("4d", (112, 144, 288, 32, 64, 64)),
            ("4e", (256, 160, 320, 32, 128, 128)), ("5a", (256, 160, 320, 32, 128, 128)),
            ("5b", (384, 192, 384, 48, 128, 128))):
        if name == "4a":
            x = g.max_pool("maxpool3", x, 3, 2, ceil=True)
        elif name == "5a":
            x = g.max_pool("maxpool4", x, 2, 2, ceil=True)
        m = f"inception{name}"
        b1 = _basic(g, f"{m}.branch1", x, c1, 1)
        b2 = _basic(g, f"{m}.branch2.1", _basic(g, f"{m}.branch2.0", x, r3, 1), c3, 3)
        # torchvision's branch3 is a 3x3 conv (a known deviation from the paper's 5x5)
        b3 = _basic(g, f"{m}.branch3.1", _basic(g, f"{m}.branch3.0", x, r5, 1), c5, 3)
        b4 = _basic(g, f"{m}.branch4.1",
                    g.max_pool(f"{m}.branch4.0", x, 3, 1, 1, ceil=True), pp, 1)
        x = g.concat(m, [b1, b2, b3, b4])
    return _head_pool(g, x, cls, gain)


# ----------------------------------------------------------------------------- DenseNet


def densenet121(g: Net, x: str, cls: int, gain: float) -> str:
    g.containers = frozenset({"features", *(f"features.denseblock{b}" for b in range(1, 5))})
    x = g.relu("features.relu0", g.conv("features.conv0", x, 64, 7, 2, 3))
    x = g.max_pool("features.pool0", x, 3, 2, 1)
    for bi, n in enumerate((6, 12, 24, 16), 1):
        feats = [x]
        for li in range(1, n + 1):
            m = f"features.denseblock{bi}.denselayer{li}"
            y = g.concat(m, feats) if len(feats) > 1 else feats[0]
            y = g.relu(f"{m}.relu1", g.batch_norm(f"{m}.norm1", y))
            y = g.relu(f"{m}.relu2", g.conv(f"{m}.conv1", y, 128, 1))  # norm2 folded
            feats.append(g.conv(f"{m}.conv2", y, 32, 3, bias=False))
        x = g.concat(f"features.denseblock{bi}", feats)
        if bi < 4:
            m = f"features.transition{bi}"
            y = g.relu(f"{m}.relu", g.batch_norm(f"{m}.norm", x))
            y = g.conv(f"{m}.conv", y, g.shape[x][0] // 2, 1, bias=False)
            x = g.avg_pool(f"{m}.pool", y, 2, 2)
    x = g.relu("", g.batch_norm("features.norm5", x))
    return g.gemm("classifier", g.flatten("", g.global_avg_pool("", x)), cls, gain)


# ----------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class _Family:
    body: Callable[[Net, str, int, float], str]  # (net, input, classes, logit rms) -> output
    description: str


_FAMILIES: dict[str, _Family] = {
    "resnet18": _Family(resnet18, "torchvision resnet18: BasicBlocks [2,2,2,2], 11.7M params."),
    "mobilenet_v2": _Family(mobilenet_v2, "torchvision mobilenet_v2: inverted residuals, "
                            "ReLU6 (Clip), 3.5M params."),
    "mobilenet_v3_small": _Family(mobilenet_v3_small, "torchvision mobilenet_v3_small: "
                                  "HardSwish, squeeze-excite, 2.5M params."),
    "mobilenet_v3_large": _Family(mobilenet_v3_large, "torchvision mobilenet_v3_large: "
                                  "HardSwish, squeeze-excite, 5.5M params."),
    "efficientnet_b0": _Family(efficientnet_b0, "torchvision efficientnet_b0: MBConv, SiLU, "
                               "squeeze-excite, 5.3M params."),
    "shufflenet_v2_x1_0": _Family(shufflenet_v2_x1_0, "torchvision shufflenet_v2_x1_0: "
                                  "Split, channel shuffle (Reshape/Transpose), 2.3M params."),
    "mnasnet0_5": _Family(mnasnet0_5, "torchvision mnasnet0_5: inverted residuals, 3x3/5x5 "
                          "depthwise, 2.2M params."),
    "regnet_x_400mf": _Family(regnet_x_400mf, "torchvision regnet_x_400mf: grouped 3x3 "
                              "convs (group width 16), 5.5M params."),
    "googlenet": _Family(googlenet, "torchvision googlenet (no aux heads, no "
                         "transform_input): inception Concats, 6.6M params."),
    "densenet121": _Family(densenet121, "torchvision densenet121: dense Concats, "
                           "BatchNormalization kept, 8.0M params."),
}
#: name -> one-line description.
FAMILIES: dict[str, str] = {n: f.description for n, f in _FAMILIES.items()}


def build_family(name: str, *, opset: int, seed: int, batch: int | None, dtype: str,
                 num_classes: int, image_size: int) -> onnx.ModelProto:
    """Family model ``name`` (arguments already checked by ``zoo.build``)."""
    fam = _FAMILIES[name]
    g = Net(opset, seed, dtype, batch, image_size, INPUT_NAME, name)
    out = fam.body(g, INPUT_NAME, num_classes, 1.0)
    graph = g.finish(out, INPUT_NAME, OUTPUT_NAME, name, image_size)
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opset_ids, producer_name="sqzc.zoo")
    model.ir_version = helper.find_min_ir_version_for(opset_ids)
    model.doc_string = (f"{name}: {fam.description} Random weights (seed={seed}), not "
                        f"trained; BatchNorm folded as torch.onnx does.")
    helper.set_model_props(model, {"sqzc.zoo.name": name, "sqzc.zoo.seed": str(seed)})
    return model
