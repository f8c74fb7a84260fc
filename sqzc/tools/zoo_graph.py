"""Graph builder for ``sqzc.tools.zoo_families``: ONNX the way torch.onnx writes it.

``Net`` appends nodes and seeded initializers in the style of the TorchScript exporter
(``torch.onnx.export(model.eval(), ..., do_constant_folding=True)``): a node is named by
its module scope and op (``/features/features.0/features.0.0/Conv``), its output
``<node>_output_0``; a parameter keeps its ``state_dict`` name (``fc.weight``; the exporter
calls the weights of a BatchNorm-folded conv ``onnx::Conv_NNN``, here they are
``<module>.weight`` / ``<module>.bias`` too). Shapes are tracked as (C, H, W) per tensor,
so a too-small ``image_size`` is a ``UsageError`` and Reshape targets are constants.

Calibration: while building, ``Net`` also runs the graph in numpy (float64) on a seeded
standard-normal batch (``CALIB_BATCH`` images of the model's size: at a smaller size the
zero padding of the deep layers' small maps skews the statistics), and gives
each Conv and kept BatchNormalization the statistics of what it sees, the way BatchNorm
folding with real running statistics does: every conv output comes out with rms ~``gain``,
each channel centred (then a small random shift), so activations keep rms ~1 through any depth
and the logits have std ~1 for a standard-normal input at any seed. Only ``onnx`` and
numpy are used. The weights depend on float64 sums in numpy (BLAS), so they are
byte-identical for the same arguments on the same numpy build.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from sqzc.errors import UsageError

__all__ = ["CALIB_BATCH", "CALIB_SIZE", "DTYPES", "Net"]

#: dtype name -> (ONNX element type, numpy type).
DTYPES: dict[str, tuple[int, type]] = {
    "float32": (TensorProto.FLOAT, np.float32),
    "float16": (TensorProto.FLOAT16, np.float16),
}
#: The calibration batch: images, of side ``min(image_size, CALIB_SIZE)``.
CALIB_BATCH = 1
CALIB_SIZE = 224
# Bias (and BatchNorm shift) init: small next to the unit-rms activations, yet nonzero so a
# compiler that drops a bias add is caught by numerical comparisons.
_BIAS_STD = 0.05

Shape = tuple[int, ...]
# The elementwise activations, in numpy, for the calibration run.
_ACTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "Relu": lambda z: np.maximum(z, 0),
    "Clip": lambda z: np.clip(z, 0, 6),
    "HardSigmoid": lambda z: np.clip(z / 6 + 0.5, 0, 1),
    "Sigmoid": lambda z: 1 / (1 + np.exp(-z)),
    "HardSwish": lambda z: z * np.clip(z / 6 + 0.5, 0, 1),
}


def _scope(module: str, containers: frozenset[str] = frozenset()) -> str:
    """The exporter's scope of a module: ``features.0.0`` ->
    ``/features/features.0/features.0.0``, ``layer1.0.conv1`` -> ``/layer1/layer1.0/conv1``.

    A component's name is its path from the nearest ancestor that is not a container
    (Sequential, ModuleDict): indexed children (digits) and the children of ``containers``
    extend their parent's name, named attributes of a module start afresh.
    """
    parts = module.split(".") if module else []
    names: list[str] = []
    for i, part in enumerate(parts):
        parent = ".".join(parts[:i])
        names.append(f"{names[-1]}.{part}" if names and (part.isdigit() or parent in containers)
                     else part)
    return "".join("/" + n for n in names)


def _out(size: int, k: int, s: int, p: int, ceil: bool = False) -> int:
    """Output length of a conv / pool window, torch's rule (with ceil_mode)."""
    span = size + 2 * p - k
    n = (-(-span // s) if ceil else span // s) + 1
    if ceil and (n - 1) * s >= size + p:  # torch: the last window must start inside
        n -= 1
    return n


def _windows(x: np.ndarray, k: int, stride: int, pad: int, ceil: bool = False,
             fill: float = 0.0, dilation: int = 1) -> tuple[list[np.ndarray], int, int]:
    """The k*k strided views of padded ``x`` [N, C, H, W] a window op combines."""
    h, w = x.shape[2:]
    ek = (k - 1) * dilation + 1
    oh, ow = _out(h, ek, stride, pad, ceil), _out(w, ek, stride, pad, ceil)
    end_h, end_w = (max(pad, (o - 1) * stride + ek - n - pad) for o, n in ((oh, h), (ow, w)))
    xp = np.pad(x, ((0, 0), (0, 0), (pad, end_h), (pad, end_w)), constant_values=fill)
    views = [xp[:, :, i * dilation:i * dilation + (oh - 1) * stride + 1:stride,
                j * dilation:j * dilation + (ow - 1) * stride + 1:stride]
             for i in range(k) for j in range(k)]
    return views, oh, ow


def _conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, groups: int,
          dilation: int) -> np.ndarray:
    n = x.shape[0]
    co, ci, k, _ = w.shape
    views, oh, ow = _windows(x, k, stride, pad, dilation=dilation)
    wg = w.reshape(groups, co // groups, ci, k * k)
    out = np.zeros((n, groups, co // groups, oh, ow))
    for t, v in enumerate(views):
        out += np.einsum("ngihw,goi->ngohw", v.reshape(n, groups, ci, oh, ow), wg[..., t],
                         optimize=True)
    return out.reshape(n, co, oh, ow)


class Net:
    """Nodes, initializers, (C, H, W) shapes and calibration values of a graph under
    construction.

    Every op method takes the torch module path it belongs to (``""`` for the model's own
    ``forward``) and returns the name of its output tensor.
    """

    def __init__(self, opset: int, seed: int, dtype: str, batch: int | None,
                 image_size: int, input_name: str, model: str) -> None:
        self.opset = opset
        self.rng = np.random.default_rng(seed)
        self.elem, self.np_dtype = DTYPES[dtype]
        self.batch = batch
        self.model = model
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()
        self.shape: dict[str, Shape] = {input_name: (3, image_size, image_size)}
        side = min(image_size, CALIB_SIZE)
        calib = np.random.default_rng([seed, 1]).standard_normal((CALIB_BATCH, 3, side, side))
        #: each tensor's value on the calibration batch (float64)
        self.val: dict[str, np.ndarray] = {input_name: calib}
        #: module paths of named containers (``_scope``); indexed ones need no entry
        self.containers: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ plumbing
    def const(self, name: str, value: np.ndarray, float_dtype: bool = True) -> str:
        arr = value.astype(self.np_dtype) if float_dtype else value
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, module: str, inputs: list[str], shape: Shape,
             value: np.ndarray | list[np.ndarray], shapes: list[Shape] | None = None,
             **attrs: Any) -> list[str]:
        """Append ``op`` named ``<scope>/<op>`` (``_1``, ``_2`` ... if taken) whose
        calibration output is ``value`` (a list: one per output, shapes in ``shapes``)."""
        base = f"{self.scope(module)}/{op}"
        name, i = base, 0
        while name in self._names:
            i += 1
            name = f"{base}_{i}"
        self._names.add(name)
        values = value if isinstance(value, list) else [value]
        outs = [f"{name}_output_{j}" for j in range(len(values))]
        for j, out in enumerate(outs):
            self.shape[out] = shapes[j] if shapes else shape
            self.val[out] = values[j]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs

    def scope(self, module: str) -> str:
        return _scope(module, self.containers)

    def _check(self, shape: Shape, what: str) -> Shape:
        if min(shape) < 1:
            raise UsageError(f"image_size is too small for {self.model} ({what} would be "
                             f"empty)")
        return shape

    # ------------------------------------------------------------------ layers with weights
    def conv(self, module: str, x: str, cout: int, k: int, stride: int = 1,
             pad: int | None = None, groups: int = 1, bias: bool = True,
             gain: float = 1.0, dilation: int = 1) -> str:
        """Conv with seeded normal weights, calibrated like a folded BatchNorm: filters of
        equal norm, the output scaled to rms ``gain`` on the calibration batch and, with
        ``bias`` and at least 32 values per channel, each channel centred (then a small
        random shift)."""
        cin, h, w = self.shape[x]
        pad = (k - 1) // 2 * dilation if pad is None else pad
        wt = self.rng.standard_normal((cout, cin // groups, k, k))
        # every filter gets the same norm (BatchNorm gives every channel the same variance;
        # a 3x3 depthwise filter's random norm would spread over 10x)
        wt /= np.sqrt((wt.reshape(cout, -1) ** 2).sum(axis=1)).reshape(-1, 1, 1, 1)
        shift = self.rng.standard_normal(cout) * _BIAS_STD
        y = _conv(self.val[x], wt, stride, pad, groups, dilation)
        # centred per channel where there are enough samples for a mean, scaled as a whole
        # (per-channel scales fitted on a few deep-layer pixels blow up on other inputs)
        mean = y.mean(axis=(0, 2, 3)) if bias and y[:, 0].size >= 32 else np.zeros(cout)
        centred = y - mean.reshape(1, -1, 1, 1)
        scale = np.full(cout, gain / max(float(np.sqrt((centred * centred).mean())), 1e-6))
        wt *= scale.reshape(-1, 1, 1, 1)
        inputs = [x, self.const(f"{module}.weight", wt)]
        b = shift - mean * scale if bias else np.zeros(cout)
        if bias:
            inputs.append(self.const(f"{module}.bias", b))
        y = y * scale.reshape(1, -1, 1, 1) + b.reshape(1, -1, 1, 1)
        ek = (k - 1) * dilation + 1
        shape = self._check((cout, _out(h, ek, stride, pad), _out(w, ek, stride, pad)), module)
        return self.node("Conv", module, inputs, shape, y, dilations=[dilation] * 2,
                         group=groups, kernel_shape=[k, k], pads=[pad] * 4,
                         strides=[stride] * 2)[0]

    def batch_norm(self, module: str, x: str, eps: float = 1e-5) -> str:
        """An unfoldable eval-mode BatchNorm: running statistics those of the calibration
        batch, scale ~1 and shift ~0 random."""
        c = self.shape[x][0]
        v = self.val[x]
        mean, var = v.mean(axis=(0, 2, 3)), v.var(axis=(0, 2, 3))
        gamma = 1 + 0.1 * self.rng.standard_normal(c)
        beta = self.rng.standard_normal(c) * _BIAS_STD
        inputs = [x, self.const(f"{module}.weight", gamma), self.const(f"{module}.bias", beta),
                  self.const(f"{module}.running_mean", mean),
                  self.const(f"{module}.running_var", var)]
        r = lambda a: a.reshape(1, -1, 1, 1)  # noqa: E731
        y = (v - r(mean)) / np.sqrt(r(var) + eps) * r(gamma) + r(beta)
        attrs: dict[str, Any] = {"epsilon": eps, "momentum": 0.9}
        if self.opset >= 14:
            attrs["training_mode"] = 0
        return self.node("BatchNormalization", module, inputs, self.shape[x], y, **attrs)[0]

    def gemm(self, module: str, x: str, cout: int, gain: float = 1.0) -> str:
        """``nn.Linear``: Gemm(transB=1) with ``<module>.weight`` [out, in] and ``.bias``,
        the outputs' rms ``gain`` on the calibration batch."""
        (cin,) = self.shape[x]
        wt = self.rng.standard_normal((cout, cin))
        b = self.rng.standard_normal(cout) * _BIAS_STD
        y = self.val[x] @ wt.T
        wt *= gain / max(float(np.sqrt((y * y).mean())), 1e-6)
        y = self.val[x] @ wt.T + b
        inputs = [x, self.const(f"{module}.weight", wt), self.const(f"{module}.bias", b)]
        return self.node("Gemm", module, inputs, (cout,), y, alpha=1.0, beta=1.0, transB=1)[0]

    # ------------------------------------------------------------------ activations
    def _act(self, op: str, module: str, x: str, **attrs: Any) -> str:
        return self.node(op, module, [x], self.shape[x], _ACTS[op](self.val[x]), **attrs)[0]

    def relu(self, module: str, x: str) -> str:
        return self._act("Relu", module, x)

    def relu6(self, module: str, x: str) -> str:
        """``nn.ReLU6``: Clip with scalar min/max inputs (opset >= 11)."""
        if "clip_min" not in self._names:
            self._names |= {"clip_min", "clip_max"}
            self.const("clip_min", np.array(0.0))
            self.const("clip_max", np.array(6.0))
        return self.node("Clip", module, [x, "clip_min", "clip_max"], self.shape[x],
                         _ACTS["Clip"](self.val[x]))[0]

    def hardsigmoid(self, module: str, x: str) -> str:
        return self._act("HardSigmoid", module, x, alpha=1 / 6, beta=0.5)

    def hardswish(self, module: str, x: str) -> str:
        """``HardSwish`` from opset 14; before, the exporter writes HardSigmoid then Mul."""
        if self.opset >= 14:
            return self._act("HardSwish", module, x)
        return self.mul(module, x, self.hardsigmoid(module, x))

    def sigmoid(self, module: str, x: str) -> str:
        return self._act("Sigmoid", module, x)

    def silu(self, module: str, x: str) -> str:
        """``nn.SiLU``: the exporter writes ``x * Sigmoid(x)``."""
        return self.mul(module, x, self.sigmoid(module, x))

    # ------------------------------------------------------------------ elementwise, shape ops
    def mul(self, module: str, a: str, b: str) -> str:
        shape = max(self.shape[a], self.shape[b], key=lambda s: s[1:] if len(s) > 1 else ())
        return self.node("Mul", module, [a, b], shape, self.val[a] * self.val[b])[0]

    def add(self, module: str, a: str, b: str) -> str:
        return self.node("Add", module, [a, b], self.shape[a], self.val[a] + self.val[b])[0]

    def concat(self, module: str, xs: list[str]) -> str:
        _, h, w = self.shape[xs[0]]
        c = sum(self.shape[x][0] for x in xs)
        value = np.concatenate([self.val[x] for x in xs], axis=1)
        return self.node("Concat", module, xs, (c, h, w), value, axis=1)[0]

    def split2(self, module: str, x: str) -> list[str]:
        """``x.chunk(2, dim=1)``: Split with the sizes as an input (opset >= 13)."""
        c, h, w = self.shape[x]
        sizes = self.const(f"{self.scope(module)}/split_sizes",
                           np.array([c // 2, c - c // 2], np.int64), float_dtype=False)
        v = self.val[x]
        return self.node("Split", module, [x, sizes], (), [v[:, :c // 2], v[:, c // 2:]],
                         shapes=[(c // 2, h, w), (c - c // 2, h, w)], axis=1)

    def reshape(self, module: str, x: str, dims: list[int], shape: Shape) -> str:
        """Reshape to ``[batch, *dims]`` (``-1`` for the batch when it is symbolic)."""
        target = np.array([-1 if self.batch is None else self.batch, *dims], np.int64)
        const = self.const(f"{self.scope(module)}/shape_{len(self._names)}", target,
                           float_dtype=False)
        v = self.val[x]  # the calibration batch has its own sizes: same rank, same channels
        c_old = v.shape[1] * (v.shape[2] if v.ndim == 5 else 1)
        h, w = v.shape[-2:]
        value = v.reshape(v.shape[0], *shape[:-2], h, w) if len(shape) == 4 else \
            v.reshape(v.shape[0], c_old, h, w)
        return self.node("Reshape", module, [x, const], shape, value)[0]

    def transpose(self, module: str, x: str, perm: list[int], shape: Shape) -> str:
        return self.node("Transpose", module, [x], shape, self.val[x].transpose(perm),
                         perm=perm)[0]

    # ------------------------------------------------------------------ pooling, head
    def max_pool(self, module: str, x: str, k: int, stride: int, pad: int = 0,
                 ceil: bool = False) -> str:
        c, h, w = self.shape[x]
        shape = self._check((c, _out(h, k, stride, pad, ceil), _out(w, k, stride, pad, ceil)),
                            module or "max pool")
        value = np.max(_windows(self.val[x], k, stride, pad, ceil, -np.inf)[0], axis=0)
        return self.node("MaxPool", module, [x], shape, value, ceil_mode=int(ceil),
                         kernel_shape=[k, k], pads=[pad] * 4, strides=[stride] * 2)[0]

    def avg_pool(self, module: str, x: str, k: int, stride: int) -> str:
        c, h, w = self.shape[x]
        shape = self._check((c, _out(h, k, stride, 0), _out(w, k, stride, 0)), module)
        value = np.mean(_windows(self.val[x], k, stride, 0)[0], axis=0)
        return self.node("AveragePool", module, [x], shape, value, ceil_mode=0,
                         count_include_pad=1, kernel_shape=[k, k], pads=[0] * 4,
                         strides=[stride] * 2)[0]

    def global_avg_pool(self, module: str, x: str) -> str:
        """``AdaptiveAvgPool2d(1)`` / ``adaptive_avg_pool2d(x, (1, 1))``."""
        value = self.val[x].mean(axis=(2, 3), keepdims=True)
        return self.node("GlobalAveragePool", module, [x], (self.shape[x][0], 1, 1), value)[0]

    def mean_hw(self, module: str, x: str) -> str:
        """``x.mean([2, 3])``: ReduceMean keepdims=0 (axes an input from opset 18)."""
        c = self.shape[x][0]
        value = self.val[x].mean(axis=(2, 3))
        if self.opset >= 18:
            axes = self.const(f"{self.scope(module)}/axes", np.array([2, 3], np.int64),
                              float_dtype=False)
            return self.node("ReduceMean", module, [x, axes], (c,), value, keepdims=0)[0]
        return self.node("ReduceMean", module, [x], (c,), value, axes=[2, 3], keepdims=0)[0]

    def flatten(self, module: str, x: str) -> str:
        """``torch.flatten(x, 1)`` of a [N, C, 1, 1] tensor."""
        v = self.val[x]
        return self.node("Flatten", module, [x], (self.shape[x][0],),
                         v.reshape(v.shape[0], -1), axis=1)[0]

    def finish(self, x: str, input_name: str, output_name: str, graph_name: str,
               image_size: int) -> onnx.GraphProto:
        """Rename the last node's output to ``output_name``; the graph with typed I/O."""
        last = self.nodes[-1]
        last.output[0] = output_name
        n: int | str = "N" if self.batch is None else self.batch
        inp = helper.make_tensor_value_info(input_name, self.elem, [n, 3, image_size, image_size])
        out = helper.make_tensor_value_info(output_name, self.elem, [n, *self.shape[x]])
        return helper.make_graph(self.nodes, graph_name, [inp], [out],
                                 initializer=self.initializers)
