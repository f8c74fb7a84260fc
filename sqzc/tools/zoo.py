"""Model zoo: SqueezeNet variants as ONNX models with seeded random weights.

This module owns the reference *architectures* sqzc is tested and benchmarked on, so that
tests, examples and benchmarks need no downloads and no network access:

* ``squeezenet1.0``: torchvision ``squeezenet1_0`` / Caffe SqueezeNet v1.0 (conv1 96 7x7/2).
* ``squeezenet1.1``: torchvision ``squeezenet1_1`` / Caffe SqueezeNet v1.1 (conv1 64 3x3/2).
  This is also the graph of the Caffe2-lineage ``SqueezeNet_fp16.onnx`` (and the ONNX-zoo
  ``squeezenet1.0-*`` files), whatever their name says: same nodes, tensors and weights.
* ``squeezenet1.0-simple-bypass`` / ``squeezenet1.0-complex-bypass``: the residual variants
  of Iandola et al. 2016, section 6 / figure 2.

Any of them can be made the way Deep Compression leaves a model (``density``,
``codebook_bits``; ``deep_compress``): magnitude-pruned to a density per conv weight and
weight-shared to a codebook of ``2**bits - 1`` nonzero values per tensor, so the tests of
compressed weights (issue 21) have pruned and shared models of every size without
downloads. ``weight_qdq`` (``quantize_weights``) stores every conv weight as a
DequantizeLinear of integer codes, weight-only QDQ: ``int8`` or ``int4`` symmetric per output
channel, or ``int4-blocked`` (opset 21 ``block_size``, blocks of ``QDQ_BLOCK`` input
channels); combined with ``density`` that is an int8 QDQ of a pruned model.

``sqzc.tools.zoo_families`` adds the other torchvision small-CNN families (ResNet-18,
MobileNet v2/v3, EfficientNet-B0, ShuffleNet v2, MNASNet, RegNetX, GoogLeNet, DenseNet-121)
as torch.onnx exports them, with BatchNorm folded; ``build`` and ``ZOO`` cover both. The
SqueezeNet-only options (``density``, ``codebook_bits``, ``weight_qdq``) are refused for
them.

The SqueezeNet graphs copy the real models' structure and naming (input ``data_0``, output
``softmaxout_1`` of shape ``[N, classes, 1, 1]``, nodes ``fire2/squeeze1x1`` ...), so code
that works on a zoo model works on the real one. Weights are random (He-normal, seeded) and
calibrated so a standard-normal input gives non-degenerate probabilities (a compiler test
learns little from a one-hot output); the models classify nothing. Only ``onnx`` and numpy
are used here: onnxruntime is a test dependency.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sqzc.errors import UsageError
from sqzc.tools.zoo_families import FAMILIES, build_family
from sqzc.tools.zoo_families import MIN_OPSET as FAMILY_MIN_OPSET

__all__ = ["DESCRIPTIONS", "INPUT_NAME", "MAX_OPSET", "MIN_OPSET", "OUTPUT_NAME", "SQUEEZENETS",
           "ZOO", "build"]

MIN_OPSET = 7
MAX_OPSET = onnx.defs.onnx_opset_version()
INPUT_NAME = "data_0"
OUTPUT_NAME = "softmaxout_1"

_DTYPES: dict[str, tuple[int, type]] = {
    "float32": (TensorProto.FLOAT, np.float32),
    "float16": (TensorProto.FLOAT16, np.float16),
}
# Bias init: small next to He-scaled activations (rms ~1 for unit inputs), yet nonzero so a
# compiler that drops or misplaces a bias add is caught by numerical comparisons.
_BIAS_STD = 0.05
# Each bypass Add sums two branches of similar magnitude; damping the residual branch keeps
# the activation rms from growing ~2x per bypass (8 bypasses would approach fp16 overflow).
_BYPASS_GAIN = 0.5


@dataclass(frozen=True)
class _Fire:
    """One fire module: ``squeeze`` 1x1 filters feeding ``expand`` 1x1 and ``expand`` 3x3."""

    index: int
    squeeze: int
    expand: int


@dataclass(frozen=True)
class _Arch:
    """What distinguishes the variants; everything else (naming, head) is shared."""

    conv1_channels: int
    conv1_kernel: int
    layers: tuple[_Fire | str, ...]  # a str is a max-pool name placed after the previous layer
    simple_bypass: frozenset[int] = frozenset()
    complex_bypass: frozenset[int] = frozenset()
    # Gain on conv10's He init, measured over seeds so that N(0,1) inputs give logits with
    # std ~0.6 (max prob ~0.01-0.5) and uniform [0,255] inputs std ~30-50: the net is nearly
    # positively homogeneous, so one gain cannot make both regimes far from one-hot.
    logit_gain: float = 1.0


_FIRES_1_0 = (
    "pool1", _Fire(2, 16, 64), _Fire(3, 16, 64), _Fire(4, 32, 128), "pool4",
    _Fire(5, 32, 128), _Fire(6, 48, 192), _Fire(7, 48, 192), _Fire(8, 64, 256), "pool8",
    _Fire(9, 64, 256),
)  # fmt: skip
_FIRES_1_1 = (
    "pool1", _Fire(2, 16, 64), _Fire(3, 16, 64), "pool3", _Fire(4, 32, 128),
    _Fire(5, 32, 128), "pool5", _Fire(6, 48, 192), _Fire(7, 48, 192), _Fire(8, 64, 256),
    _Fire(9, 64, 256),
)  # fmt: skip
_SIMPLE = frozenset({3, 5, 7, 9})  # fires whose input and output channel counts match
_COMPLEX = frozenset({2, 4, 6, 8})  # the others: the shortcut needs a 1x1 conv

_ARCHS: dict[str, tuple[_Arch, str]] = {
    "squeezenet1.0": (
        _Arch(96, 7, _FIRES_1_0, logit_gain=0.45),
        "SqueezeNet v1.0 (torchvision squeezenet1_0): conv1 96 7x7/2, ~819M MACs at 224x224.",
    ),
    "squeezenet1.1": (
        _Arch(64, 3, _FIRES_1_1, logit_gain=0.33),
        "SqueezeNet v1.1 (torchvision squeezenet1_1): conv1 64 3x3/2, ~349M MACs at 224x224.",
    ),
    "squeezenet1.0-simple-bypass": (
        _Arch(96, 7, _FIRES_1_0, simple_bypass=_SIMPLE, logit_gain=0.12),
        "SqueezeNet v1.0 with identity shortcuts (Add) around fire3, fire5, fire7, fire9.",
    ),
    "squeezenet1.0-complex-bypass": (
        _Arch(96, 7, _FIRES_1_0, _SIMPLE, _COMPLEX, logit_gain=0.17),
        "SqueezeNet v1.0 with identity shortcuts plus 1x1-conv shortcuts around fire2/4/6/8.",
    ),
}


class _GraphBuilder:
    """Accumulates nodes and initializers, naming tensors the way the Caffe export does.

    The Caffe->ONNX convention is ``<layer>_1`` for a layer's output and ``<layer>_2`` for
    the in-place ReLU after it; weights are ``<layer>_w_0`` / ``<layer>_b_0``.
    """

    def __init__(self, opset: int, seed: int, np_dtype: type, density: float = 1.0,
                 codebook_bits: int = 0, weight_qdq: str = "") -> None:
        self.opset = opset
        self.weight_qdq = weight_qdq
        self.rng = np.random.default_rng(seed)
        self.np_dtype = np_dtype
        self.density = density
        self.codebook_bits = codebook_bits
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []

    def _const(self, name: str, value: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(value.astype(self.np_dtype), name))
        return name

    def conv(
        self, layer: str, x: str, cin: int, cout: int, kernel: int,
        stride: int = 1, pad: int = 0, gain: float = 1.0,
    ) -> str:  # fmt: skip
        """Conv with He-normal weights (std = gain * sqrt(2 / fan_in)), as ReLU nets need."""
        fan_in = cin * kernel * kernel
        w = self.rng.standard_normal((cout, cin, kernel, kernel)) * (gain * np.sqrt(2.0 / fan_in))
        b = self.rng.standard_normal(cout) * _BIAS_STD
        w = deep_compress(w, self.density, self.codebook_bits)
        w_name = self._weight(f"{layer}_w_0", w)
        inputs = [x, w_name, self._const(f"{layer}_b_0", b)]
        out = f"{layer}_1"
        self.nodes.append(helper.make_node(
            "Conv", inputs, [out], name=layer, kernel_shape=[kernel, kernel],
            strides=[stride, stride], pads=[pad] * 4,
        ))  # fmt: skip
        return out

    def _weight(self, name: str, w: np.ndarray) -> str:
        """A float weight, or with ``weight_qdq`` the DequantizeLinear of its codes."""
        if not self.weight_qdq:
            return self._const(name, w)
        codes, scale, axis, block = quantize_weights(w, self.weight_qdq)
        elem = TensorProto.INT8 if self.weight_qdq == "int8" else TensorProto.INT4
        self.initializers += [
            helper.make_tensor(f"{name}_q", elem, list(codes.shape),
                               codes.reshape(-1).tolist()),
            numpy_helper.from_array(scale, f"{name}_scale"),
            helper.make_tensor(f"{name}_zp", elem, list(scale.shape), [0] * scale.size)]
        self.nodes.append(helper.make_node(
            "DequantizeLinear", [f"{name}_q", f"{name}_scale", f"{name}_zp"], [name],
            name=f"{name}_dq", axis=axis, **({"block_size": block} if block else {})))
        return name

    def relu(self, layer: str, x: str) -> str:
        prefix, _, base = layer.rpartition("/")
        name = f"{prefix}/relu_{base}" if prefix else f"relu_{base}"
        out = f"{layer}_2"
        self.nodes.append(helper.make_node("Relu", [x], [out], name=name))
        return out

    def conv_relu(
        self, layer: str, x: str, cin: int, cout: int, kernel: int,
        stride: int = 1, pad: int = 0, gain: float = 1.0,
    ) -> str:  # fmt: skip
        return self.relu(layer, self.conv(layer, x, cin, cout, kernel, stride, pad, gain))

    def max_pool(self, layer: str, x: str, size: int) -> tuple[str, int]:
        """3x3/2 max pool in Caffe/torchvision ceil mode; returns (output, new spatial size).

        ``ceil_mode`` exists from opset 10; before that the same windows are obtained by
        padding the end (max pool pads with -inf, so the padding never wins).
        """
        k, s = 3, 2
        out_size = -(-(size - k) // s) + 1
        attrs: dict[str, Any] = {"kernel_shape": [k, k], "strides": [s, s]}
        if self.opset >= 10:
            attrs.update(pads=[0, 0, 0, 0], ceil_mode=1)
        else:
            extra = (out_size - 1) * s + k - size
            attrs.update(pads=[0, 0, extra, extra])
        out = f"{layer}_1"
        self.nodes.append(helper.make_node("MaxPool", [x], [out], name=layer, **attrs))
        return out, out_size

    def add(self, layer: str, a: str, b: str) -> str:
        out = f"{layer}_1"
        self.nodes.append(helper.make_node("Add", [a, b], [out], name=layer))
        return out

    def fire(self, fire: _Fire, x: str, cin: int, gain: float = 1.0) -> str:
        p = f"fire{fire.index}/"
        sq = self.conv_relu(p + "squeeze1x1", x, cin, fire.squeeze, 1)
        e1 = self.conv_relu(p + "expand1x1", sq, fire.squeeze, fire.expand, 1, gain=gain)
        e3 = self.conv_relu(p + "expand3x3", sq, fire.squeeze, fire.expand, 3, pad=1, gain=gain)
        out = f"{p}concat_1"
        self.nodes.append(helper.make_node("Concat", [e1, e3], [out], name=p + "concat", axis=1))
        return out

    def dropout(self, layer: str, x: str, out: str) -> str:
        """Inference no-op kept for fidelity; ratio is an attribute before opset 12 only."""
        attrs: dict[str, Any] = {"ratio": 0.5} if self.opset < 12 else {}
        self.nodes.append(helper.make_node("Dropout", [x], [out], name=layer, **attrs))
        return out


def deep_compress(w: np.ndarray, density: float = 1.0, codebook_bits: int = 0) -> np.ndarray:
    """``w`` as Deep Compression leaves it: the ``density`` share of largest magnitudes kept
    (ties kept too), the rest 0; then, with ``codebook_bits``, each kept weight replaced by
    the nearest of ``2**bits - 1`` levels at evenly spaced quantiles of the kept weights
    (the paper trains its centroids; quantiles give the same alphabet sizes)."""
    keep = np.ones(w.shape, bool)
    if density < 1.0:
        k = max(1, round(density * w.size))
        magnitude = np.abs(w).reshape(-1)
        keep = np.abs(w) >= np.partition(magnitude, w.size - k)[w.size - k]
    out = np.where(keep, w, 0.0)
    if codebook_bits:
        n = 2 ** codebook_bits - 1
        levels = np.unique(np.quantile(w[keep], (np.arange(n) + 0.5) / n))
        nearest = np.searchsorted((levels[1:] + levels[:-1]) / 2, w)
        out = np.where(keep, levels[nearest], 0.0)
    return out


#: Input channels per block of the ``int4-blocked`` zoo variant.
QDQ_BLOCK = 16
#: ``weight_qdq`` values -> (largest code, lowest opset).
WEIGHT_QDQ: dict[str, tuple[int, int]] = {"int8": (127, 13), "int4": (7, 21),
                                          "int4-blocked": (7, 21)}


def quantize_weights(w: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(codes, float32 scales, axis, block_size) of a symmetric quantization of an OIHW
    weight: one scale per output channel (axis 0), or for ``int4-blocked`` one per
    ``QDQ_BLOCK`` input channels of each (output channel, tap) (axis 1), the scale
    ``max|w| / qmax`` of what it covers (1 where that is all zeros, so pruned zeros stay
    zero codes)."""
    qmax = WEIGHT_QDQ[kind][0]
    if kind == "int4-blocked":
        oc, ic, kh, kw = w.shape
        nb = -(-ic // QDQ_BLOCK)
        padded = np.zeros((oc, nb * QDQ_BLOCK, kh, kw))
        padded[:, :ic] = np.abs(w)
        peak = padded.reshape(oc, nb, QDQ_BLOCK, kh, kw).max(axis=2)
        axis, block = 1, QDQ_BLOCK
        full = np.repeat(peak, QDQ_BLOCK, axis=1)[:, :ic]
    else:
        peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1)
        axis, block = 0, 0
        full = peak.reshape(-1, 1, 1, 1)
    scale = np.where(peak > 0, peak / qmax, 1.0).astype(np.float32)
    step = np.where(full > 0, full / qmax, 1.0).astype(np.float32)
    codes = np.clip(np.rint(w / step), -qmax - 1, qmax).astype(np.int8)
    return codes, scale, axis, block


def _tensor_type(elem: int, batch: int | None, dims: list[int]) -> onnx.TypeProto:
    return helper.make_tensor_type_proto(elem, ["N" if batch is None else batch, *dims])


def _build_arch(
    name: str, arch: _Arch, *, opset: int, seed: int, batch: int | None, dtype: str,
    num_classes: int, image_size: int, density: float = 1.0, codebook_bits: int = 0,
    weight_qdq: str = "",
) -> onnx.ModelProto:  # fmt: skip
    elem, np_dtype = _DTYPES[dtype]
    g = _GraphBuilder(opset, seed, np_dtype, density, codebook_bits, weight_qdq)
    k = arch.conv1_kernel
    if image_size < k:
        raise UsageError(f"image_size={image_size} is too small for {name}")
    size = (image_size - k) // 2 + 1
    x = g.conv_relu("conv1", INPUT_NAME, 3, arch.conv1_channels, k, stride=2)
    channels = arch.conv1_channels
    for layer in arch.layers:
        if isinstance(layer, str):
            if size < 3:
                raise UsageError(f"image_size={image_size} is too small for {name}")
            x, size = g.max_pool(layer, x, size)
            continue
        damp = layer.index in arch.simple_bypass | arch.complex_bypass
        y = g.fire(layer, x, channels, gain=_BYPASS_GAIN if damp else 1.0)
        out_channels = 2 * layer.expand
        p = f"fire{layer.index}/"
        if layer.index in arch.simple_bypass:  # channels match: identity shortcut
            y = g.add(p + "bypass", x, y)
        elif layer.index in arch.complex_bypass:
            shortcut = g.conv(p + "bypass1x1", x, channels, out_channels, 1, gain=_BYPASS_GAIN)
            y = g.add(p + "bypass", shortcut, y)
        x, channels = y, out_channels
    x = g.dropout("drop9", x, "fire9/concat_2")
    x = g.relu("conv10", g.conv("conv10", x, channels, num_classes, 1, gain=arch.logit_gain))
    g.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool10_1"], name="pool10"))
    # axis=1 is right under both Softmax semantics: before opset 13 it flattens [N, C, 1, 1]
    # to [N, C]; from 13 it normalises axis 1 alone. The default (-1 from 13) would not be.
    g.nodes.append(helper.make_node("Softmax", ["pool10_1"], [OUTPUT_NAME], name="prob", axis=1))

    in_dims = [3, image_size, image_size]
    graph = helper.make_graph(
        g.nodes, name.replace(".", "_").replace("-", "_"),
        [helper.make_value_info(INPUT_NAME, _tensor_type(elem, batch, in_dims))],
        [helper.make_value_info(OUTPUT_NAME, _tensor_type(elem, batch, [num_classes, 1, 1]))],
        initializer=g.initializers,
    )  # fmt: skip
    opset_ids = [helper.make_opsetid("", opset)]
    model = helper.make_model(graph, opset_imports=opset_ids, producer_name="sqzc.zoo")
    # The oldest IR the opset allows, for old runtimes; but >= 4 so initializers need not be
    # listed as graph inputs (they are constants, not things a caller may override).
    model.ir_version = max(4, helper.find_min_ir_version_for(opset_ids))
    model.doc_string = f"{name}: {_ARCHS[name][1]} Random weights (seed={seed}), not trained."
    props = {"sqzc.zoo.name": name, "sqzc.zoo.seed": str(seed)}
    if density < 1.0 or codebook_bits:
        model.doc_string += (f" Deep-compressed: density {density}, "
                             f"{codebook_bits or 'no'} codebook bits.")
        props |= {"sqzc.zoo.density": str(density), "sqzc.zoo.codebook_bits": str(codebook_bits)}
    if weight_qdq:
        model.doc_string += f" Conv weights as {weight_qdq} DequantizeLinear (weight-only QDQ)."
        props["sqzc.zoo.weight_qdq"] = weight_qdq
    helper.set_model_props(model, props)
    return model


def _validate(name: str, opset: int, batch: int | None, dtype: str, num_classes: int,
              seed: int = 0, density: float = 1.0, codebook_bits: int = 0,
              weight_qdq: str = "") -> None:
    if name not in _ARCHS and name not in FAMILIES:
        raise UsageError(f"unknown zoo model {name!r}; valid names: "
                         f"{', '.join([*_ARCHS, *FAMILIES])}")
    low = FAMILY_MIN_OPSET if name in FAMILIES else MIN_OPSET
    if not low <= opset <= MAX_OPSET:
        raise UsageError(f"opset {opset} unsupported; {name} needs {low}..{MAX_OPSET}")
    if name in FAMILIES and (density != 1.0 or codebook_bits or weight_qdq):
        raise UsageError(f"density, codebook bits and weight QDQ are for the SqueezeNets; "
                         f"{name} takes none of them")
    if dtype not in _DTYPES:
        raise UsageError(f"dtype {dtype!r} unsupported; valid: {', '.join(_DTYPES)}")
    if batch is not None and batch < 1:
        raise UsageError(f"batch must be a positive integer or 'dynamic', got {batch}")
    if num_classes < 1:
        raise UsageError(f"num_classes must be positive, got {num_classes}")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise UsageError(f"seed must be an integer >= 0, got {seed!r}")
    if not isinstance(density, numbers.Real) or not 0.0 < density <= 1.0:
        raise UsageError(f"density must be in (0, 1], got {density!r}")
    if isinstance(codebook_bits, bool) or not isinstance(codebook_bits, numbers.Integral) \
            or not 0 <= codebook_bits <= 12:
        raise UsageError(f"codebook bits must be an integer 0..12 (0: no sharing), "
                         f"got {codebook_bits!r}")
    if weight_qdq and weight_qdq not in WEIGHT_QDQ:
        raise UsageError(f"weight QDQ {weight_qdq!r} unknown; valid: {', '.join(WEIGHT_QDQ)}")
    if weight_qdq and (dtype != "float32" or opset < WEIGHT_QDQ[weight_qdq][1]):
        raise UsageError(f"{weight_qdq} weight QDQ needs float32 and opset >= "
                         f"{WEIGHT_QDQ[weight_qdq][1]}")


def build(
    name: str, *, opset: int = 13, seed: int = 0, batch: int | None = 1,
    dtype: str = "float32", num_classes: int = 1000, image_size: int = 224,
    density: float = 1.0, codebook_bits: int = 0, weight_qdq: str = "",
) -> onnx.ModelProto:  # fmt: skip
    """Build zoo model ``name`` (see ``ZOO``: a SqueezeNet or a ``zoo_families`` model)
    with seeded random weights.

    ``batch=None`` gives a symbolic batch dimension ``N``; ``dtype`` ("float32"/"float16")
    applies to weights, input and output alike. Same arguments -> byte-identical model, so
    tests and benchmarks are reproducible. ``density`` < 1 and ``codebook_bits`` > 0 prune
    and weight-share the conv weights (``deep_compress``); ``weight_qdq`` ("int8", "int4",
    "int4-blocked") then stores them as DequantizeLinear of integer codes
    (``quantize_weights``). Raises ``UsageError`` on bad arguments.
    """
    _validate(name, opset, batch, dtype, num_classes, seed, density, codebook_bits,
              weight_qdq)
    if name in FAMILIES:
        return build_family(name, opset=opset, seed=seed, batch=batch, dtype=dtype,
                            num_classes=num_classes, image_size=image_size)
    return _build_arch(
        name, _ARCHS[name][0], opset=opset, seed=seed, batch=batch, dtype=dtype,
        num_classes=num_classes, image_size=image_size, density=density,
        codebook_bits=codebook_bits, weight_qdq=weight_qdq,
    )  # fmt: skip


def _builder(name: str) -> Callable[..., onnx.ModelProto]:
    def builder(**kwargs: object) -> onnx.ModelProto:
        return build(name, **kwargs)  # type: ignore[arg-type]

    builder.__name__ = name.replace(".", "_").replace("-", "_")
    builder.__doc__ = DESCRIPTIONS[name]
    return builder


#: name -> builder taking ``build``'s keyword arguments; the builder's ``__doc__`` is its
#: one-line description (also in ``DESCRIPTIONS``), e.g. for ``sqzc zoo --list``.
#: The SqueezeNet variants (input ``data_0``, output ``softmaxout_1``; the compressed and
#: QDQ options apply); the rest of ``ZOO`` is ``zoo_families`` (``input`` / ``output``).
SQUEEZENETS: tuple[str, ...] = tuple(_ARCHS)
DESCRIPTIONS: dict[str, str] = {n: d for n, (_, d) in _ARCHS.items()} | FAMILIES
ZOO: dict[str, Callable[..., onnx.ModelProto]] = {n: _builder(n) for n in DESCRIPTIONS}
