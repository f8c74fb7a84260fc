"""Where a derived constant came from: its source tensor and the layout steps applied to it.

The kernels read weights in derived layouts: channel-blocked ([OC/b, IC, KH, KW, b]),
Winograd-transformed (``G g G^T``, four times the bytes for F(4x4)), VNNI quads or int16
pairs, biases zero-padded to whole blocks. A library that stores its weights compressed
(issue 21) stores the tensor before those steps, in its original domain (a pruned,
weight-shared 3x3 filter compresses; its Winograd transform does not, and cannot be
inverted exactly), and redoes the steps when it loads. So the pass that derives a
constant records a ``Recipe`` on it (``ConstAttrs.recipe``): the source (the tensor after
compile-time folding) and the steps, each a small dataclass with the numpy ``apply`` that
is its specification. The invariant, checked before a tensor is stored compressed and by
the verifier, is ``recipe.apply()`` equals the constant's value byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sqzc.ops.packing import pack_conv_weight, pack_qconv_weight
from sqzc.ort.oracles.onnx_ops import dequantize_linear
from sqzc.winograd import transform_weights


@dataclass(frozen=True, slots=True)
class PackConv:
    """OIHW float weights -> [OC/b, IC, KH, KW, b], output channels zero-padded."""

    block: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        return pack_conv_weight(x, self.block)


@dataclass(frozen=True, slots=True)
class PadTo:
    """A 1-D tensor (a bias) zero-padded to ``length`` elements."""

    length: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        out = np.zeros(self.length, x.dtype)
        out[:x.shape[0]] = x
        return out


@dataclass(frozen=True, slots=True)
class Winograd:
    """OIHW 3x3 float weights -> ``U`` of F(m x m, 3 x 3), [alpha^2, OC/b, IC, b]
    (``sqzc.winograd.transform_weights``, whose float64 summation order is written down
    in ``filter_transform``)."""

    m: int
    block: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        return transform_weights(x, self.m, self.block)


@dataclass(frozen=True, slots=True)
class PackQConv:
    """int8 OIHW weights -> [OC/b, IC/g, KH, KW, b, g] (VNNI quads or int16 pairs)."""

    block: int
    group: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        return pack_qconv_weight(x, self.block, self.group)


@dataclass(frozen=True, slots=True)
class Dequantize:
    """int8 / uint8 codes -> float32 ``float32(int32(q) - zp) * scale`` (DequantizeLinear,
    ``onnx_ops.dequantize_linear``: what fold-constants computed), one scale and zero point
    per index of ``axis`` or one for the tensor. A weight-only QDQ model's folded float
    weights derive from their codes this way, so a compressed library stores the codes
    (at most 16 values for int4) and dequantizes them at load; always a recipe's first
    step."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int
    #: > 0: blocked (opset 21 ``block_size``): ``scale`` / ``zero_point`` are the C-order
    #: values of tensors shaped like the codes but ``ceil(dim / block)`` along ``axis``
    block: int = 0

    def apply(self, x: np.ndarray) -> np.ndarray:
        if not self.block:
            return dequantize_linear(x, np.asarray(self.scale, np.float32),
                                     np.asarray(self.zero_point, np.int64), self.axis)
        scale, zp = (np.repeat(np.asarray(v).reshape(self.params_shape(x.shape)), self.block,
                               axis=self.axis).take(range(x.shape[self.axis]), axis=self.axis)
                     for v in (np.asarray(self.scale, np.float32), self.zero_point))
        return dequantize_linear(x.reshape(-1), scale.reshape(-1),  # per element
                                 zp.reshape(-1).astype(np.int64), 0).reshape(x.shape)

    def params_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """The blocked scale's shape for codes of ``shape``."""
        out = list(shape)
        out[self.axis] = -(-shape[self.axis] // self.block)
        return tuple(out)


Step = PackConv | PadTo | Winograd | PackQConv | Dequantize


@dataclass(frozen=True, slots=True, eq=False)
class Recipe:
    """``source`` (read-only, C-ordered) with ``steps`` applied in order."""

    source: np.ndarray
    steps: tuple[Step, ...]

    def apply(self) -> np.ndarray:
        """The derived tensor."""
        x = self.source
        for step in self.steps:
            x = step.apply(x)
        return np.ascontiguousarray(x)

    def describe(self) -> str:
        """``pack_conv(16)`` style, for reports."""
        return " -> ".join(type(s).__name__ for s in self.steps) or "identity"


def recipe_of(source: np.ndarray, *steps: Step) -> Recipe:
    """A recipe over a private read-only copy of ``source``."""
    src = np.array(source, order="C")
    src.setflags(write=False)
    return Recipe(src, tuple(steps))


def derived(recipe: Recipe | None, value: np.ndarray, step: Step) -> Recipe:
    """The recipe of ``step`` applied to a constant of ``value`` that has ``recipe``: the
    constant's own steps continue when it derives from dequantized codes (``Dequantize``
    first), so the codes stay the stored source; else ``value`` is the source."""
    if recipe is not None and recipe.steps and isinstance(recipe.steps[0], Dequantize):
        return Recipe(recipe.source, recipe.steps + (step,))
    return recipe_of(value, step)


def recipe_matches(recipe: Recipe, value: np.ndarray) -> bool:
    """The invariant: applying the recipe gives ``value``, same dtype, shape and bytes."""
    got = recipe.apply()
    return got.dtype == value.dtype and got.shape == value.shape \
        and got.tobytes() == np.ascontiguousarray(value).tobytes()
