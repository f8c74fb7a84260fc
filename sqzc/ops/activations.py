"""The activation table: one entry per element-wise activation, one formula each.

An activation is both a standalone op (``OpKind.ACTIVATION``, whose attributes are an
``Activation``) and the epilogue a convolution applies in registers before it stores its
result (``ConvAttrs.act``). Each ``ActDef`` entry holds the activation's parameters (names
and defaults, which are also its ONNX attribute names), how dumps spell it, and **one**
builder written against ``VecOps``, a small protocol of lane-wise float operations. The
LLVM backend implements ``VecOps`` for a scalar or any vector width
(``backends/llvm/emit/common/vecops.py``), and ``NumpyVecOps`` below implements it with
numpy; the numpy reference of the activation (constant folding, the tests) is the same
builder run on ``NumpyVecOps``. So the formula is written once, and the plain and
blocked standalone kernels, the four conv epilogues (direct, blocked, Winograd, MLAS
order), fusion (fuse-conv-activation), the verifier, the dumps and the ONNX export all
follow from the entry. A new activation is one ``activation(ActDef(...))`` here plus one
``activation_op`` line in ``frontends/onnx/converters.py``.

The builders use ordered comparisons, so a NaN input passes through every activation here,
as it does in onnxruntime. Where onnxruntime's result depends on the order of float
operations (MLAS's logistic, HardSigmoid's unfused multiply-add), the builder uses that
order; constants shared with onnxruntime's oracles come from ``sqzc.ort.oracles.mlas``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from sqzc.ort.oracles.mlas import LOGISTIC_DENOMINATOR, LOGISTIC_NUMERATOR, fma_f32


class VecOps(Protocol):
    """Lane-wise float operations on values of one width (a scalar or a vector).

    Comparisons are ordered (false when either side is NaN); ``fma`` is a fused
    multiply-add where the target has one (the LLVM implementation falls back to a
    multiply and an add on targets without FMA).
    """

    def const(self, x: float) -> Any: ...
    def add(self, a: Any, b: Any) -> Any: ...
    def sub(self, a: Any, b: Any) -> Any: ...
    def mul(self, a: Any, b: Any) -> Any: ...
    def div(self, a: Any, b: Any) -> Any: ...
    def fma(self, a: Any, b: Any, c: Any) -> Any: ...
    def lt(self, a: Any, b: Any) -> Any: ...
    def gt(self, a: Any, b: Any) -> Any: ...
    def select(self, mask: Any, a: Any, b: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class Activation:
    """An element-wise activation with its parameters (in its ``ActDef``'s order).

    ``Activation()`` (kind ``none``) is the identity, the default epilogue of a conv.
    Build one with :func:`make_activation` to get the defaults and a checked name.
    """

    kind: str = "none"
    params: tuple[float, ...] = ()

    def __bool__(self) -> bool:
        return self.kind != "none"

    def param(self, name: str) -> float:
        """The parameter called ``name`` (an ONNX attribute name of the activation)."""
        names = [n for n, _ in ACTIVATIONS[self.kind].params]
        return self.params[names.index(name)]

    def named_params(self) -> list[tuple[str, float]]:
        """(name, value) of every parameter, in the entry's order."""
        if not self:
            return []
        return [(n, v) for (n, _), v in zip(ACTIVATIONS[self.kind].params, self.params)]

    def __str__(self) -> str:
        if not self:
            return "none"
        d = ACTIVATIONS[self.kind]
        return d.label(self) if d.label else self.kind

    def apply(self, x: np.ndarray) -> np.ndarray:
        """The reference semantics: the entry's builder run lane-wise with numpy."""
        if not self:
            return x
        x = np.asarray(x)
        with np.errstate(all="ignore"):
            return np.asarray(ACTIVATIONS[self.kind].build(NumpyVecOps(x.dtype), x, self),
                              dtype=x.dtype)


NO_ACTIVATION = Activation()

Builder = Callable[[VecOps, Any, Activation], Any]


@dataclass(frozen=True)
class ActDef:
    """One activation: its name (``Activation.kind``), the name its standalone op has in
    dumps, errors and profiles, its parameters as (name, default) pairs (also the ONNX
    attribute names the converter reads), the one builder, how an epilogue is labelled
    in dumps (default: the name) and the ONNX op type the exporter writes."""

    name: str
    op_name: str
    params: tuple[tuple[str, float], ...]
    build: Builder
    label: Callable[[Activation], str] | None = None
    onnx: str = ""
    #: the ONNX op takes the parameters as (optional, constant) inputs in order, not as
    #: attributes (Clip since opset 11; an infinite bound is left out)
    onnx_inputs: bool = False


#: kind -> its entry.
ACTIVATIONS: dict[str, ActDef] = {}


def activation(d: ActDef) -> ActDef:
    """Add an entry to ``ACTIVATIONS``."""
    if d.name in ACTIVATIONS or d.name == "none":
        raise ValueError(f"activation {d.name!r} is defined twice")
    ACTIVATIONS[d.name] = d
    return d


def make_activation(kind: str, **params: float) -> Activation:
    """``Activation(kind)`` with ``params`` by name, the entry's defaults for the rest."""
    if kind == "none":
        return NO_ACTIVATION
    d = ACTIVATIONS[kind]
    unknown = set(params) - {n for n, _ in d.params}
    if unknown:
        raise ValueError(f"{kind} has no parameter {sorted(unknown)[0]!r}")
    return Activation(kind, tuple(float(params.get(n, default)) for n, default in d.params))


class NumpyVecOps:
    """``VecOps`` on numpy arrays of one float dtype, rounding like the compiled kernels
    (one rounding per operation; ``fma`` single-rounded for float32)."""

    def __init__(self, dtype: np.dtype | type = np.float32) -> None:
        self.dtype = np.dtype(dtype)

    def const(self, x: float) -> np.ndarray:
        return np.asarray(x, self.dtype)

    def add(self, a: Any, b: Any) -> np.ndarray:
        return np.asarray(a + b, self.dtype)

    def sub(self, a: Any, b: Any) -> np.ndarray:
        return np.asarray(a - b, self.dtype)

    def mul(self, a: Any, b: Any) -> np.ndarray:
        return np.asarray(a * b, self.dtype)

    def div(self, a: Any, b: Any) -> np.ndarray:
        return np.asarray(a / b, self.dtype)

    def fma(self, a: Any, b: Any, c: Any) -> np.ndarray:
        if self.dtype == np.float32:
            return fma_f32(a, b, c)
        return np.asarray(a * b + c, self.dtype)

    def lt(self, a: Any, b: Any) -> np.ndarray:
        return np.less(a, b)

    def gt(self, a: Any, b: Any) -> np.ndarray:
        return np.greater(a, b)

    def select(self, mask: Any, a: Any, b: Any) -> np.ndarray:
        return np.asarray(np.where(mask, a, b), self.dtype)


# ------------------------------------------------------------------------------ entries


def _clamp(o: VecOps, v: Any, lo: float, hi: float) -> Any:
    """``v`` limited to [lo, hi]; NaN passes through."""
    v = o.select(o.lt(v, o.const(lo)), o.const(lo), v)
    return o.select(o.gt(v, o.const(hi)), o.const(hi), v)


def _relu(o: VecOps, v: Any, act: Activation) -> Any:
    return o.select(o.lt(v, o.const(0.0)), o.const(0.0), v)


def _clip(o: VecOps, v: Any, act: Activation) -> Any:
    return _clamp(o, v, *act.params)


def _clip_label(act: Activation) -> str:
    lo, hi = act.params
    return "relu6" if (lo, hi) == (0.0, 6.0) else f"clip({lo!r},{hi!r})"


def _leaky(o: VecOps, v: Any, act: Activation) -> Any:
    return o.select(o.lt(v, o.const(0.0)), o.mul(v, o.const(act.params[0])), v)


def _sigmoid(o: VecOps, v: Any, act: Activation) -> Any:
    """MLAS's logistic (``MlasComputeLogisticF32KernelFma3``, what onnxruntime runs on
    x86-64): clamp to [-18, 18], odd/even rational polynomial evaluated with fused
    multiply-adds, ``p / q + 0.5`` clamped below at 0 only."""
    v = _clamp(o, v, -18.0, 18.0)
    v2 = o.mul(v, v)
    p = o.const(LOGISTIC_NUMERATOR[0])
    for c in LOGISTIC_NUMERATOR[1:]:
        p = o.fma(v2, p, o.const(c))
    q = o.const(LOGISTIC_DENOMINATOR[0])
    for c in LOGISTIC_DENOMINATOR[1:]:
        q = o.fma(v2, q, o.const(c))
    y = o.add(o.div(o.mul(v, p), q), o.const(0.5))
    return o.select(o.lt(y, o.const(0.0)), o.const(0.0), y)


def _hard_sigmoid_of(o: VecOps, v: Any, alpha: float, beta: float) -> Any:
    """``clamp(alpha * x + beta, 0, 1)``, multiply and add rounded separately as in
    onnxruntime (Eigen, and MLAS's fused-conv activation)."""
    return _clamp(o, o.add(o.mul(v, o.const(alpha)), o.const(beta)), 0.0, 1.0)


def _hard_sigmoid(o: VecOps, v: Any, act: Activation) -> Any:
    return _hard_sigmoid_of(o, v, *act.params)


def _hard_swish(o: VecOps, v: Any, act: Activation) -> Any:
    """``x * HardSigmoid(x, alpha = 1/6, beta = 0.5)``, the ONNX definition (and how
    onnxruntime runs it: a HardSigmoid then a Mul)."""
    return o.mul(v, _hard_sigmoid_of(o, v, 1.0 / 6.0, 0.5))


def _with_params(name: str) -> Callable[[Activation], str]:
    return lambda act: f"{name}({','.join(repr(p) for p in act.params)})"


activation(ActDef("relu", "relu", (), _relu, onnx="Relu"))
activation(ActDef("clip", "clip", (("lo", float("-inf")), ("hi", float("inf"))), _clip,
                  label=_clip_label, onnx="Clip", onnx_inputs=True))
activation(ActDef("leaky", "leaky_relu", (("alpha", 0.01),), _leaky,
                  label=_with_params("leaky"), onnx="LeakyRelu"))
activation(ActDef("sigmoid", "sigmoid", (), _sigmoid, onnx="Sigmoid"))
activation(ActDef("hard_sigmoid", "hard_sigmoid", (("alpha", 0.2), ("beta", 0.5)),
                  _hard_sigmoid, label=_with_params("hard_sigmoid"), onnx="HardSigmoid"))
activation(ActDef("hard_swish", "hard_swish", (), _hard_swish, onnx="HardSwish"))


def activation_names() -> Sequence[str]:
    """Every activation kind, in table order."""
    return tuple(ACTIVATIONS)
