"""Exact .5 ties at the roundings sqzc does in Python at compile time, against onnxruntime.

Some 8-bit results never reach a kernel's rounding: ops on constants are folded with the
numpy references (``sqzc.ops.defs.quantize``, ``sqzc.ort.oracles.onnx_ops``,
``sqzc.ort.oracles.contrib_ops``), lookup-table ops (QLinearLeakyRelu, QLinearSigmoid)
get their 256 entries computed by the compiler, and the float weights and biases of QDQ
convs are quantized as onnxruntime's ``WeightBiasQuantization`` does. Each rounds half to
even with ``np.rint``, like onnxruntime; the tests here make the values rounded there
exact .5 ties (power-of-two scales, as in ``test_requant_ties.py``, whose helpers check
the share of ties, onnxruntime's half-to-even results and sqzc's bytes) and assert that
the compiler really took the compile-time route (the op folded away, a lookup op, the
weights quantized with the tie zero point).

Sites and tests:

* ``sqzc.ops.defs.quantize.quantize`` (QuantizeLinear and requantize folding, float weights):
  ``test_folded_ties[quantize]``, ``test_float_weight_conv_ties``;
* ``sqzc.ops.defs.quantize.requantize`` (QLinearConv and QLinearGlobalAveragePool folding):
  ``test_folded_ties[qlinear_conv|qlinear_global_average_pool]``;
* ``sqzc.ort.oracles.mlas.cvtps_epi32`` (lookup tables; QLinearAdd, QLinearMatMul and
  QLinearAveragePool folding): ``test_lookup_table_ties``,
  ``test_folded_ties[qlinear_add|qlinear_matmul|qlinear_average_pool]``;
* ``sqzc.ort.oracles.contrib_ops.qlinear_softmax`` (QLinearSoftmax folding):
  ``test_folded_ties[qlinear_softmax]``;
* ``passes/quantize_conv_weights.py``: the weight zero point and the int32 bias,
  ``test_float_weight_conv_ties``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from test_requant_ties import (
    F32,
    I32,
    MS,
    S8,
    U8,
    XS,
    YS,
    assert_half_even_ties,
    int_conv,
    kinds,
    make_model,
    ops_of,
    per_channel,
    run_both,
)

from sqzc.ops import OpKind

pytest.importorskip("onnxruntime")

#: A folded case: (nodes, initializers, outputs -> dtype, outputs -> (exact, zero point
#: added after rounding), the op kind that must have been folded away).
Case = tuple[list, dict, dict, dict, OpKind]


def _quantize(rng: np.random.Generator) -> Case:
    """QuantizeLinear of a constant n * 2^-4 by 2^-3 (uint8): ties where n is odd."""
    c = (rng.integers(-200, 201, (2, 4, 3, 3)) * 2.0**-4).astype(F32)
    nodes = [helper.make_node("QuantizeLinear", ["c", "s", "z"], ["y"])]
    exact = {"y": (c.astype(np.float64) / 2.0**-3, 128)}
    return nodes, {"c": c, "s": F32(2.0**-3), "z": U8(128)}, {"y": U8}, exact, OpKind.QUANTIZE


def _qlinear_conv(rng: np.random.Generator) -> Case:
    """QLinearConv of a constant input, multipliers 1/2 and 1/4 (as the runtime test)."""
    xz, yz = U8(131), U8(120)
    x = (rng.integers(-4, 5, (1, 8, 5, 5)) + int(xz)).astype(U8)
    w = rng.integers(-4, 5, (12, 8, 3, 3)).astype(S8)
    ws = np.where(np.arange(12) % 2 == 0, 2.0**-3, 2.0**-4).astype(F32)
    b = rng.integers(-20, 21, 12).astype(I32)
    inits = {"x": x, "xs": XS, "xz": xz, "w": w, "ws": ws, "wz": np.zeros(12, S8), "ys": YS,
             "yz": yz, "b": b}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"],
                              ["y"], pads=[1, 1, 1, 1])]
    acc = int_conv(x.astype(np.int64) - int(xz), w) + per_channel(b)
    exact = {"y": (acc * per_channel(XS * ws / YS).astype(np.float64), int(yz))}
    return nodes, inits, {"y": U8}, exact, OpKind.QCONV


def _qlinear_global_average_pool(rng: np.random.Generator) -> Case:
    """QLinearGlobalAveragePool of constant 2x2 images, scale 2^-4 / (2^-5 * 4) = 1/2."""
    x = (rng.integers(-40, 41, (2, 12, 2, 2)) - 4).astype(S8)
    inits = {"x": x, "xs": YS, "xz": S8(-4), "ys": F32(2.0**-5), "yz": S8(5)}
    nodes = [helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"],
                              domain=MS)]
    exact = {"y": ((x.astype(np.int64) + 4).sum(axis=(2, 3), keepdims=True) * 0.5, 5)}
    return nodes, inits, {"y": S8}, exact, OpKind.QGLOBAL_AVGPOOL


def _qlinear_add(rng: np.random.Generator) -> Case:
    """QLinearAdd of constants, ``rX = 1/2``, ``rY = 1`` (ties where a - zA is odd)."""
    a = (rng.integers(-60, 61, (3, 20)) + 131).astype(U8)
    b = (rng.integers(-30, 31, (3, 20)) + 100).astype(U8)
    inits = {"a": a, "sa": F32(2.0**-3), "za": U8(131), "b": b, "sb": F32(2.0**-2),
             "zb": U8(100), "sc": F32(2.0**-2), "zc": U8(128)}
    nodes = [helper.make_node("QLinearAdd", ["a", "sa", "za", "b", "sb", "zb", "sc", "zc"],
                              ["y"], domain=MS)]
    exact = (a.astype(np.int64) - 131) * 0.5 + (b.astype(np.int64) - 100) + 128
    return nodes, inits, {"y": U8}, {"y": (exact, 0)}, OpKind.QADD


def _qlinear_matmul(rng: np.random.Generator) -> Case:
    """QLinearMatMul of constants, multiplier 2^-2 * 2^-3 / 2^-4 = 1/2."""
    a = (rng.integers(-4, 5, (5, 24)) - 9).astype(S8)
    b = rng.integers(-4, 5, (24, 6)).astype(S8)
    inits = {"a": a, "as": XS, "az": S8(-9), "b": b, "bs": F32(2.0**-3), "bz": S8(0), "ys": YS,
             "yz": S8(6)}
    nodes = [helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"],
                              ["y"])]
    exact = ((a.astype(np.int64) + 9) @ b.astype(np.int64)) * 0.5
    return nodes, inits, {"y": S8}, {"y": (exact, 6)}, OpKind.QMATMUL


def _qlinear_average_pool(rng: np.random.Generator) -> Case:
    """QLinearAveragePool 2x2 stride 2 of a constant, x_scale = y_scale: sums over 4."""
    x = (rng.integers(-40, 41, (1, 3, 6, 6)) + 129).astype(U8)
    inits = {"x": x, "s": F32(2.0**-3), "xz": U8(129), "yz": U8(126)}
    nodes = [helper.make_node("QLinearAveragePool", ["x", "s", "xz", "s", "yz"], ["y"],
                              domain=MS, kernel_shape=[2, 2], strides=[2, 2])]
    d = x.astype(np.int64) - 129
    sums = d[..., ::2, ::2] + d[..., 1::2, ::2] + d[..., ::2, 1::2] + d[..., 1::2, 1::2]
    return nodes, inits, {"y": U8}, {"y": (sums / 4 + 126, 0)}, OpKind.QAVGPOOL


def _qlinear_softmax(rng: np.random.Generator) -> Case:
    """QLinearSoftmax of constant rows with two maxima (``test_qlinear_softmax_ties``):
    each maximum's quotient is exactly 253 / 2."""
    x = (255 - rng.integers(100, 131, (16, 8))).astype(U8)
    for r in range(len(x)):
        x[r, rng.choice(8, 2, replace=False)] = 255
    inits = {"x": x, "xs": F32(0.3), "xz": U8(0), "ys": F32(1 / 253.5), "yz": U8(0)}
    nodes = [helper.make_node("QLinearSoftmax", ["x", "xs", "xz", "ys", "yz"], ["y"], domain=MS,
                              axis=-1, opset=13)]
    exact = np.where(x == 255, 126.5, 0.0)
    return nodes, inits, {"y": U8}, {"y": (exact, 0)}, OpKind.QSOFTMAX


FOLDED: dict[str, Callable[[np.random.Generator], Case]] = {
    "quantize": _quantize, "qlinear_conv": _qlinear_conv,
    "qlinear_global_average_pool": _qlinear_global_average_pool, "qlinear_add": _qlinear_add,
    "qlinear_matmul": _qlinear_matmul, "qlinear_average_pool": _qlinear_average_pool,
    "qlinear_softmax": _qlinear_softmax,
}


@pytest.mark.parametrize("case", list(FOLDED))
def test_folded_ties(case: str, tmp_path: Path) -> None:
    """An op whose operands are all constants, folded by ``fold-constants`` with its
    numpy reference; a float input through Identity keeps the model runnable."""
    nodes, inits, outs, exact, kind = FOLDED[case](np.random.default_rng(2610))
    feeds = {"d": np.ones(1, F32)}
    model = make_model([*nodes, helper.make_node("Identity", ["d"], ["d_out"])], feeds, inits,
                       {**outs, "d_out": F32})
    graph, got, want = run_both(model, feeds, tmp_path)
    assert kind not in kinds(graph), f"{kind.value} was not folded"
    for out, (ex, zp) in exact.items():
        assert_half_even_ties(ex, zp, want[out], got[out], f"folded {case}")


def test_lookup_table_ties(tmp_path: Path) -> None:
    """QLinearLeakyRelu with alpha 1/2 and x_scale = y_scale, on all 256 bytes: the
    compiler's table rounds ``(x - zp) / 2`` for negative inputs (ties where odd)."""
    feeds = {"x_u": np.arange(256, dtype=np.uint16).astype(U8),
             "x_s": np.arange(256, dtype=np.uint16).astype(U8).view(S8)}
    inits = {"s": F32(2.0**-3), "xz_u": U8(128), "yz_u": U8(100), "xz_s": S8(-3),
             "yz_s": S8(7)}
    nodes = [helper.make_node("QLinearLeakyRelu", [f"x_{t}", "s", f"xz_{t}", "s", f"yz_{t}"],
                              [f"y_{t}"], domain=MS, alpha=0.5) for t in ("u", "s")]
    model = make_model(nodes, feeds, inits, {"y_u": U8, "y_s": S8})
    graph, got, want = run_both(model, feeds, tmp_path)
    assert kinds(graph).count(OpKind.LOOKUP) == 2
    for t, xz, yz in (("u", 128, 100), ("s", -3, 7)):
        d = feeds[f"x_{t}"].astype(np.int64) - xz
        assert_half_even_ties(np.where(d >= 0, d, d * 0.5), yz, want[f"y_{t}"],
                              got[f"y_{t}"], f"leaky relu table {t}")


def test_float_weight_conv_ties(tmp_path: Path) -> None:
    """DQ(x) -> Conv(float W, float B) -> Q: the weight's range [-101.5, 153.5] / 16 gives
    scale 1/16 and the zero point round(-128 + 101.5) = round(-26.5) = -26 (half away:
    -27, which shifts the clamped extremes and so channel 0's outputs); most weights are
    (k + 0.5) / 16 and every bias is (j + 0.5) * x_scale / 16. The quantized conv's
    outputs are ties too (multiplier 2^-4 * 2^-4 / 2^-7 = 1/2)."""
    rng = np.random.default_rng(2611)
    c, m = 8, 12
    xs, ys, xz, yz = F32(2.0**-4), F32(2.0**-7), U8(128), U8(120)
    x = (rng.integers(-1, 2, (1, c, 6, 6)) + int(xz)).astype(U8)
    halves = rng.integers(-6, 6, (m, c, 3, 3)) + 0.5
    halves[rng.random(halves.shape) < 0.3] -= 0.5  # some plain multiples of 1/16
    halves[0, 0, 0, :2] = (-101.5, 153.5)  # the range: exactly 255 steps of 1/16
    w = (halves / 16).astype(F32)
    bias_steps = rng.integers(-40, 40, m) + 0.5
    b = (bias_steps * float(xs) / 16).astype(F32)
    lo, hi = F32(w.min()), F32(w.max())
    scale = F32((hi - lo) / F32(255.0))
    initial = F32(F32(-128.0) - F32(lo / scale))
    assert scale == F32(1 / 16) and initial == -26.5, "the zero point is no exact tie"
    assert np.mean(halves % 1 == 0.5) >= 0.5 and np.mean(np.rint(bias_steps) % 2 == 0) > 0.2
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("Conv", ["xf", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"])]
    model = make_model(nodes, {"x": x}, {"xs": xs, "xz": xz, "w": w, "b": b, "ys": ys, "yz": yz},
                       {"y": U8})
    graph, got, want = run_both(model, {"x": x}, tmp_path)
    convs = [op.attrs for op in ops_of(graph, OpKind.QCONV)]
    assert len(convs) == 1, "the float weights were not quantized"
    # half to even: weights (clamped to [-128 + 26, 127 + 26]) and biases
    wq = np.clip(np.rint(halves), -102, 153).astype(np.int64)
    acc = int_conv(x.astype(np.int64) - int(xz), wq) + per_channel(np.rint(bias_steps))
    exact = acc * float(xs / 16 / ys)
    assert_half_even_ties(exact, int(yz), want["y"], got["y"], "float-weight conv")
    assert getattr(convs[0], "w_zp", None) == (-26,), \
        "the weight zero point -26.5 was not rounded to even"
