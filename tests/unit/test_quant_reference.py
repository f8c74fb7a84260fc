"""``sqzc.ort.oracles.onnx_ops`` and ``sqzc.ort.oracles.contrib_ops`` must equal onnxruntime's
CPU int8 kernels bit for bit.

Every test builds a one-node ONNX model with ``onnx.helper`` (com.microsoft ops get a
``com.microsoft`` opset import), runs it with onnxruntime's CPU provider and compares with
``np.array_equal`` -- zero tolerance. Inputs are seeded random tensors plus hand-picked
corner cases: extreme zero points, power-of-two scales (exact .5 ties), saturation at both
ends, lengths/channel counts that are not multiples of 16 or 64 (vector tails), and
parameter sets found by search where a plausible-but-wrong formula (unfused instead of
fused multiply-add, reciprocal instead of division, exact sigmoid...) gives different bits,
so these tests do discriminate between formulas.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction

import numpy as np
import pytest
from onnx import helper, numpy_helper

from sqzc.ort.oracles import mlas
from sqzc.ort.oracles import onnx_ops as qr
from sqzc.ort.oracles import contrib_ops as qrc
from sqzc.ort.oracles import lookup_ops

ort = pytest.importorskip("onnxruntime")

MS = "com.microsoft"
F32 = np.float32
U8 = np.uint8
S8 = np.int8
QTYPES = (U8, S8)


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def run_node(op: str, inputs: Sequence[tuple[str, np.ndarray | None]], out_dtype: type,
             attrs: dict | None = None, domain: str = "", opset: int = 21,
             initializers: Sequence[str] = ()) -> np.ndarray:
    """Run a single ``op`` node in onnxruntime; ``None`` inputs are omitted optionals."""
    names: list[str] = []
    graph_inputs = []
    inits = []
    feeds: dict[str, np.ndarray] = {}
    for name, value in inputs:
        if value is None:
            names.append("")
            continue
        names.append(name)
        arr = np.asarray(value)
        if name in initializers:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph_inputs.append(helper.make_tensor_value_info(name, elem, arr.shape))
            feeds[name] = arr
    node = helper.make_node(op, names, ["y"], domain=domain, **(attrs or {}))
    out = helper.make_tensor_value_info("y", helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype)),
                                        None)
    graph = helper.make_graph([node], "g", graph_inputs, [out], inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 10
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)[0]


def assert_same(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if not np.array_equal(got, want):
        bad = np.argwhere(got != want)
        idx = tuple(bad[0])
        raise AssertionError(f"{len(bad)} of {got.size} elements differ; first at {idx}: "
                             f"ort={got[idx]} ref={want[idx]}")


def rand_q(rng: np.random.Generator, dtype: type, shape: Sequence[int]) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=tuple(shape)).astype(dtype)


def zp_of(dtype: type, which: str, rng: np.random.Generator) -> np.generic:
    """Zero point: 'min'/'max' extremes, 'zero', or 'rand'."""
    info = np.iinfo(dtype)
    value = {"min": info.min, "max": info.max, "zero": 0,
             "rand": int(rng.integers(info.min, info.max + 1))}[which]
    return dtype(value)


def scale_of(rng: np.random.Generator, pow2: bool, lo: float = -7, hi: float = -1) -> np.float32:
    if pow2:
        return F32(2.0 ** int(rng.integers(lo, hi + 1)))
    return F32(2.0 ** rng.uniform(lo, hi))


ZP_KINDS = ("min", "max", "zero", "rand")


# --------------------------------------------------------------------------------------
# fma emulation (pure, no onnxruntime)
# --------------------------------------------------------------------------------------


def _exact_round_f32(v: Fraction) -> np.float32:
    c = F32(float(v))
    cands = [c, np.nextafter(c, F32(np.inf)), np.nextafter(c, F32(-np.inf))]
    return min(cands, key=lambda t: (abs(Fraction(float(t)) - v),
                                     int(np.asarray(t).view(np.uint32)) & 1))


def test_fma_f32_single_rounding() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal(3000).astype(F32)
    b = rng.standard_normal(3000).astype(F32)
    c = (rng.standard_normal(3000) * 1e-3).astype(F32)
    # constructed ties: a*b + c lands exactly half-way between two floats +- a tiny bit
    one_p = F32(1 + 2.0**-12)
    a[:4], b[:4] = one_p, one_p
    c[:4] = [F32(0.0), F32(-(2.0**-24)), F32(2.0**-40), F32(-(2.0**-40))]
    got = mlas.fma_f32(a, b, c)
    for i in range(len(a)):
        exact = Fraction(float(a[i])) * Fraction(float(b[i])) + Fraction(float(c[i]))
        want = _exact_round_f32(exact)
        assert got[i] == want, (i, a[i], b[i], c[i])


# --------------------------------------------------------------------------------------
# QuantizeLinear / DequantizeLinear
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("seed", range(4))
def test_quantize_linear_per_tensor(dtype: type, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for n in (1, 15, 63, 64, 65, 129, 1000):
        pow2 = bool(rng.integers(2))
        scale = scale_of(rng, pow2, -8, 1)
        # multiples of scale/2 give exact ties when the scale is a power of two
        x = (rng.integers(-700, 700, n) * (scale / 2)).astype(F32)
        x[: n // 3] = (rng.standard_normal(n // 3) * 200 * scale).astype(F32)  # saturates
        if n >= 4:
            x[:4] = [np.nan, np.inf, -np.inf, -0.0]
        zp = zp_of(dtype, ZP_KINDS[(seed + n) % 4], rng)
        got = run_node("QuantizeLinear", [("x", x), ("s", scale), ("z", zp)], dtype)
        assert_same(got, qr.quantize_linear(x, scale, zp))


def test_quantize_linear_divides_by_scale() -> None:
    """``x / scale`` (not ``x * (1/scale)``): scale 0.1, inputs on a 0.01 grid in range."""
    scale = F32(0.1)
    x = (np.arange(-1270, 1271) * F32(0.01)).astype(F32)
    got = run_node("QuantizeLinear", [("x", x), ("s", scale), ("z", U8(128))], U8)
    assert_same(got, qr.quantize_linear(x, scale, U8(128)))
    reciprocal = np.clip(np.rint((x * (F32(1) / scale)).astype(F32)) + 128, 0, 255).astype(U8)
    assert not np.array_equal(reciprocal, got)  # the data does discriminate


@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("axis", (1, -1, 0))
def test_quantize_linear_per_axis(dtype: type, axis: int) -> None:
    rng = np.random.default_rng(abs(axis) + 10)
    x = (rng.standard_normal((3, 37, 17)) * 4).astype(F32)
    n = x.shape[axis]
    scale = (2.0 ** rng.integers(-6, 0, n)).astype(F32)
    scale[::3] = rng.uniform(0.01, 0.1, len(scale[::3])).astype(F32)
    zp = rand_q(rng, dtype, (n,))
    zp[0], zp[-1] = np.iinfo(dtype).min, np.iinfo(dtype).max
    got = run_node("QuantizeLinear", [("x", x), ("s", scale), ("z", zp)], dtype,
                   attrs={"axis": axis})
    assert_same(got, qr.quantize_linear(x, scale, zp, axis=axis))


@pytest.mark.parametrize("dtype", (U8, S8, np.int32))
def test_dequantize_linear(dtype: type) -> None:
    rng = np.random.default_rng(3)
    for shape in ((1,), (63,), (2, 5, 33)):
        x = rand_q(rng, dtype, shape)
        scale = F32(rng.uniform(1e-3, 1.0))
        zp = None if dtype == np.int32 else zp_of(dtype, "rand", rng)
        got = run_node("DequantizeLinear", [("x", x), ("s", scale), ("z", zp)], F32)
        want = qr.dequantize_linear(x, scale, zp)
        assert_same(got.view(np.uint32), want.view(np.uint32))
    if dtype != np.int32:
        x = rand_q(rng, dtype, (2, 19, 4))
        scale = rng.uniform(1e-3, 1.0, 19).astype(F32)
        zp = rand_q(rng, dtype, (19,))
        got = run_node("DequantizeLinear", [("x", x), ("s", scale), ("z", zp)], F32,
                       attrs={"axis": 1})
        assert_same(got.view(np.uint32), qr.dequantize_linear(x, scale, zp, 1).view(np.uint32))


# --------------------------------------------------------------------------------------
# QLinearConv / ConvInteger
# --------------------------------------------------------------------------------------


def _conv_case(rng: np.random.Generator, xdt: type, wdt: type, n: int, c: int, hw: tuple[int, int],
               m: int, k: tuple[int, int], group: int, per_channel: bool, wzp: str,
               values: str, bias: bool) -> dict:
    xi, wi = np.iinfo(xdt), np.iinfo(wdt)
    cg = c // group
    if values == "max":  # drives the accumulators (and outputs) to both saturation ends
        x = np.full((n, c) + hw, xi.max, xdt)
        w = np.full((m, cg) + k, wi.max, wdt)
        w[::2] = wi.min
    elif values == "extremes":
        x = rng.choice([xi.min, xi.max], (n, c) + hw).astype(xdt)
        w = rng.choice([wi.min, wi.max], (m, cg) + k).astype(wdt)
    else:
        x = rand_q(rng, xdt, (n, c) + hw)
        w = rand_q(rng, wdt, (m, cg) + k)
    pow2 = bool(rng.integers(2))
    if per_channel:
        w_scale = (2.0 ** rng.integers(-9, -3, m)).astype(F32) if pow2 else \
            rng.uniform(1e-3, 0.05, m).astype(F32)
    else:
        w_scale = scale_of(rng, pow2, -9, -4)
    if wzp == "zero":
        w_zp = np.zeros((m,) if per_channel else (), wdt)
    elif per_channel:
        w_zp = rand_q(rng, wdt, (m,))
        w_zp[0], w_zp[-1] = wi.min, wi.max
    else:
        w_zp = np.asarray(zp_of(wdt, wzp, rng))
    return {
        "x": x, "x_scale": scale_of(rng, pow2, -7, -2),
        "x_zero_point": zp_of(xdt, ZP_KINDS[int(rng.integers(4))], rng),
        "w": w, "w_scale": w_scale, "w_zero_point": w_zp,
        "y_scale": scale_of(rng, pow2, -3, 2),
        "y_zero_point": zp_of(xdt, ZP_KINDS[int(rng.integers(4))], rng),
        "bias": rng.integers(-20000, 20000, m).astype(np.int32) if bias else None,
    }


def _run_qlinear_conv(case: dict, attrs: dict, weights_const: bool) -> np.ndarray:
    names = ["x", "x_scale", "x_zero_point", "w", "w_scale", "w_zero_point", "y_scale",
             "y_zero_point", "bias"]
    inits = tuple(names[1:]) if weights_const else ()
    return run_node("QLinearConv", [(nm, case[nm]) for nm in names], case["x"].dtype,
                    attrs=attrs, initializers=inits)


# (xdt, wdt, C, M, group, kernel, strides, pads, dilations, per_channel, w_zp, values, bias)
CONV_CASES = [
    (U8, S8, 16, 32, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "zero", "rand", True),
    (U8, S8, 16, 32, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False, "zero", "rand", False),
    (U8, S8, 20, 68, 1, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1), True, "rand", "rand", True),
    (U8, S8, 67, 130, 1, (3, 3), (1, 2), (1, 1, 1, 1), (1, 1), True, "zero", "rand", True),
    (U8, S8, 3, 5, 1, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), False, "max", "rand", True),
    (U8, S8, 32, 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "zero", "rand", True),
    (U8, S8, 24, 24, 24, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), True, "rand", "rand", False),
    (U8, S8, 17, 17, 17, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), False, "min", "rand", True),
    (U8, S8, 12, 36, 3, (3, 3), (1, 1), (0, 2, 1, 0), (2, 1), True, "rand", "rand", True),
    (U8, S8, 64, 64, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, "zero", "max", False),
    (U8, S8, 20, 17, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "rand", "extremes", True),
    (U8, U8, 16, 32, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "max", "rand", True),
    (U8, U8, 20, 17, 1, (3, 3), (2, 1), (1, 0, 0, 1), (1, 1), False, "rand", "extremes", True),
    (U8, U8, 32, 32, 32, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "rand", "rand", True),
    (U8, U8, 64, 64, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), False, "min", "max", False),
    (S8, S8, 16, 32, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "zero", "rand", True),
    (S8, S8, 67, 130, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, "rand", "rand", True),
    (S8, S8, 32, 32, 32, (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), False, "zero", "rand", True),
    (S8, S8, 12, 36, 3, (5, 3), (1, 1), (2, 1, 2, 1), (1, 1), False, "max", "extremes", False),
    (S8, S8, 64, 64, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), False, "min", "max", True),
]


@pytest.mark.parametrize("weights_const", (True, False), ids=("prepacked", "dynamic"))
@pytest.mark.parametrize("cfg", CONV_CASES, ids=lambda c: f"{np.dtype(c[0])}x{np.dtype(c[1])}"
                         f"-C{c[2]}M{c[3]}g{c[4]}k{c[5][0]}{c[5][1]}s{c[6][0]}{c[6][1]}"
                         f"-{'pc' if c[9] else 'pt'}-wz{c[10]}-{c[11]}")
def test_qlinear_conv(cfg: tuple, weights_const: bool) -> None:
    xdt, wdt, c, m, group, k, strides, pads, dil, per_ch, wzp, values, bias = cfg
    rng = np.random.default_rng(CONV_CASES.index(cfg) + 1000 * weights_const)
    for n, hw in ((1, (9, 11)), (2, (6, 5))):
        case = _conv_case(rng, xdt, wdt, n, c, hw, m, k, group, per_ch, wzp, values, bias)
        attrs = {"group": group, "strides": list(strides), "pads": list(pads),
                 "dilations": list(dil), "kernel_shape": list(k)}
        got = _run_qlinear_conv(case, attrs, weights_const)
        want = qr.qlinear_conv(case["x"], case["x_scale"], case["x_zero_point"], case["w"],
                               case["w_scale"], case["w_zero_point"], case["y_scale"],
                               case["y_zero_point"], case["bias"], strides=strides, pads=pads,
                               dilations=dil, group=group)
        assert_same(got, want)


@pytest.mark.parametrize("scales", [("0x1.4facd8p-4", "0x1.467126p-7", "0x1.b60e86p-1"),
                                    ("0x1.7feeb4p-5", "0x1.dfba98p-8", "0x1.883c5ep-1")])
def test_requant_scale_is_x_times_w_then_divided_by_y(scales: tuple) -> None:
    """Output scale = f32(f32(x_scale * w_scale) / y_scale); x_scale * (w_scale / y_scale) differs.

    Every accumulator value 0..32640 is produced (acc = a + 127 * b over all byte pairs).
    """
    xs, ws, ys = (F32(float.fromhex(v)) for v in scales)
    a = np.tile(np.arange(256), 256)
    b = np.repeat(np.arange(256), 256)
    x = np.stack([a, b]).astype(U8).reshape(1, 2, 256, 256)
    w = np.array([1, 127], S8).reshape(1, 2, 1, 1)
    case = {"x": x, "x_scale": xs, "x_zero_point": U8(0), "w": w, "w_scale": ws,
            "w_zero_point": S8(0), "y_scale": ys, "y_zero_point": U8(0), "bias": None}
    want = qr.qlinear_conv(x, xs, U8(0), w, ws, S8(0), ys, U8(0))
    for const in (True, False):
        assert_same(_run_qlinear_conv(case, {}, const), want)
    acc = (a + 127 * b).reshape(want.shape)
    other = mlas.requantize_output(acc, F32(xs * F32(ws / ys)), 0, U8)
    assert not np.array_equal(other, want)
    # QLinearMatMul computes its output scale the same way.
    am = np.stack([a, b], axis=1).astype(U8)
    bm = np.array([[1], [127]], S8)
    args = [("a", am), ("as", xs), ("az", U8(0)), ("b", bm), ("bs", ws), ("bz", S8(0)),
            ("ys", ys), ("yz", U8(0))]
    assert_same(run_node("QLinearMatMul", args, U8), want.reshape(-1, 1))


@pytest.mark.parametrize("weights_const", (True, False), ids=("prepacked", "dynamic"))
def test_qlinear_conv_int32_bias_then_float_conversion(weights_const: bool) -> None:
    """acc = 2**24 + 1 at one output: the bias is added in int32 *before* the (rounding)
    int32 -> float32 conversion, and the conversion happens before the scale multiply."""
    x = np.array([255] * 259 + [2], U8).reshape(1, 260, 1, 1)
    w = np.array([255] * 258 + [3, 1], U8).reshape(1, 260, 1, 1)
    assert int((x.astype(np.int64) * w).sum()) == 2**24 + 1
    # with bias: (2**24 + 2) / ys = 100.500004 -> 101; float-side bias add would give 100.
    # no bias: exact (2**24 + 1) / ys = 100.500006, but f32(2**24 + 1) = 2**24 -> 100.
    for ys_hex, bias, expected in (("0x1.460cbep+17", 1, 101), ("0x1.460cbcp+17", None, 100)):
        ys = F32(float.fromhex(ys_hex))
        b = None if bias is None else np.array([bias], np.int32)
        case = {"x": x, "x_scale": F32(1.0), "x_zero_point": U8(0), "w": w, "w_scale": F32(1.0),
                "w_zero_point": U8(0), "y_scale": ys, "y_zero_point": U8(0), "bias": b}
        got = _run_qlinear_conv(case, {}, weights_const)
        assert_same(got, qr.qlinear_conv(x, F32(1.0), U8(0), w, F32(1.0), U8(0), ys, U8(0), b))
        assert int(got.ravel()[0]) == expected


@pytest.mark.parametrize("xdt,wdt", ((U8, S8), (U8, U8), (S8, S8)))
def test_qlinear_conv_large_accumulators(xdt: type, wdt: type) -> None:
    """|acc| > 2**24: the int32 -> float32 conversion rounds (RNE) before the scale."""
    rng = np.random.default_rng(5)
    xi, wi = np.iinfo(xdt), np.iinfo(wdt)
    x = rng.integers(xi.max - 3, xi.max + 1, (1, 256, 7, 7)).astype(xdt)
    w = rng.integers(wi.max - 3, wi.max + 1, (32, 256, 5, 5)).astype(wdt)
    w[::3] = rng.integers(wi.min, wi.min + 4, w[::3].shape).astype(wdt)
    x_zp = xdt(xi.min)
    w_zp = np.asarray(wi.min if wdt == U8 else 0, wdt)
    bias = rng.integers(-(2**21), 2**21, 32).astype(np.int32)
    for y_scale in (F32(1.0), F32(1e6), F32(3e5), F32(2.0**20), F32(3.0)):
        for b in (None, bias):
            case = {"x": x, "x_scale": F32(1.0), "x_zero_point": x_zp, "w": w,
                    "w_scale": F32(1.0), "w_zero_point": w_zp, "y_scale": y_scale,
                    "y_zero_point": xdt(0), "bias": b}
            want = qr.qlinear_conv(x, F32(1.0), x_zp, w, F32(1.0), w_zp, y_scale, xdt(0), b,
                                   pads=[2, 2, 2, 2])
            for const in (True, False):
                assert_same(_run_qlinear_conv(case, {"pads": [2, 2, 2, 2]}, const), want)


@pytest.mark.parametrize("xdt,wdt", ((U8, S8), (S8, S8), (U8, U8)))
@pytest.mark.parametrize("geom", [
    ((2, 6, 11), (3,), {"strides": [2], "pads": [1, 0]}),
    ((1, 4, 5, 6, 7), (3, 2, 3), {"pads": [1, 0, 1, 0, 1, 1]}),
    ((1, 8, 9, 10), (3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 8, 9, 10), (4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 8, 9, 10), (3, 3), {"auto_pad": "VALID"}),
], ids=("1d", "3d", "same_upper", "same_lower", "valid"))
def test_qlinear_conv_and_conv_integer_geometry(xdt: type, wdt: type, geom: tuple) -> None:
    shape, k, extra = geom
    rng = np.random.default_rng(len(shape) * 7 + len(extra))
    m = 5
    x = rand_q(rng, xdt, shape)
    w = rand_q(rng, wdt, (m, shape[1]) + k)
    args = [("x", x), ("xs", F32(0.03)), ("xz", zp_of(xdt, "rand", rng)), ("w", w),
            ("ws", rng.uniform(1e-3, 1e-2, m).astype(F32)), ("wz", rand_q(rng, wdt, (m,))),
            ("ys", F32(0.07)), ("yz", zp_of(xdt, "rand", rng))]
    attrs = {"kernel_shape": list(k), **extra}
    got = run_node("QLinearConv", args, xdt, attrs=attrs)
    assert_same(got, qr.qlinear_conv(*[a for _, a in args], **extra))

    xz, wz = zp_of(xdt, "rand", rng), zp_of(wdt, "rand", rng)
    got = run_node("ConvInteger", [("x", x), ("w", w), ("xz", xz), ("wz", wz)], np.int32,
                   attrs=attrs)
    assert_same(got, qr.conv_integer(x, w, xz, wz, **extra))


def test_conv_integer_grouped() -> None:
    rng = np.random.default_rng(8)
    x = rand_q(rng, U8, (2, 12, 7, 9))
    w = rand_q(rng, U8, (6, 4, 3, 3))
    attrs = {"group": 3, "strides": [2, 1], "pads": [1, 1, 0, 2], "dilations": [1, 2]}
    got = run_node("ConvInteger", [("x", x), ("w", w), ("xz", U8(255)), ("wz", U8(0))],
                   np.int32, attrs=attrs)
    assert_same(got, qr.conv_integer(x, w, U8(255), U8(0), strides=[2, 1], pads=[1, 1, 0, 2],
                                     dilations=[1, 2], group=3))


# --------------------------------------------------------------------------------------
# MatMulInteger / QLinearMatMul
# --------------------------------------------------------------------------------------


AB_TYPES = ((U8, S8), (S8, S8), (U8, U8))
MM_SHAPES = (((5, 37), (37, 19)), ((2, 3, 16, 64), (64, 70)), ((1, 65), (65, 1)),
             ((3, 1, 7, 9), (2, 9, 17)))


@pytest.mark.parametrize("adt,bdt", AB_TYPES)
def test_matmul_integer(adt: type, bdt: type) -> None:
    rng = np.random.default_rng(11)
    for sa, sb in MM_SHAPES:
        a, b = rand_q(rng, adt, sa), rand_q(rng, bdt, sb)
        az = zp_of(adt, "max", rng)
        bz = rand_q(rng, bdt, (sb[-1],)) if len(sb) == 2 else zp_of(bdt, "rand", rng)
        got = run_node("MatMulInteger", [("a", a), ("b", b), ("az", az), ("bz", bz)], np.int32)
        assert_same(got, qr.matmul_integer(a, b, az, bz))


@pytest.mark.parametrize("adt,bdt", AB_TYPES)
@pytest.mark.parametrize("per_column", (False, True), ids=("per_tensor", "per_column"))
@pytest.mark.parametrize("b_const", (False, True), ids=("dynamic", "prepacked"))
def test_qlinear_matmul(adt: type, bdt: type, per_column: bool, b_const: bool) -> None:
    rng = np.random.default_rng(12 + per_column + 2 * b_const)
    for i, (sa, sb) in enumerate(MM_SHAPES[:3]):
        a, b = rand_q(rng, adt, sa), rand_q(rng, bdt, sb)
        n = sb[-1]
        pow2 = i % 2 == 0
        if per_column:
            bs = (2.0 ** rng.integers(-9, -4, n)).astype(F32) if pow2 else \
                rng.uniform(1e-3, 2e-2, n).astype(F32)
            bz = rand_q(rng, bdt, (n,))
        else:
            bs = scale_of(rng, pow2, -9, -5)
            bz = np.asarray(zp_of(bdt, ZP_KINDS[i], rng))
        args = [("a", a), ("as", scale_of(rng, pow2, -6, -3)),
                ("az", zp_of(adt, ZP_KINDS[i + 1], rng)),
                ("b", b), ("bs", bs), ("bz", bz), ("ys", scale_of(rng, pow2, -3, 0)),
                ("yz", zp_of(adt, ZP_KINDS[(i + 2) % 4], rng))]
        got = run_node("QLinearMatMul", args, adt,
                       initializers=("b", "bs", "bz") if b_const else ())
        assert_same(got, qr.qlinear_matmul(*[v for _, v in args]))


# --------------------------------------------------------------------------------------
# QLinearAdd / QLinearMul
# --------------------------------------------------------------------------------------


def _all_pairs(dtype: type) -> tuple[np.ndarray, np.ndarray]:
    vals = np.arange(256, dtype=np.uint8).view(dtype)
    return np.tile(vals, 256), np.repeat(vals, 256)


def _binary(op: str, a: np.ndarray, b: np.ndarray, params: tuple) -> np.ndarray:
    sa, za, sb, zb, sc, zc = params
    return run_node(op, [("a", a), ("as", sa), ("az", za), ("b", b), ("bs", sb), ("bz", zb),
                         ("cs", sc), ("cz", zc)], a.dtype, domain=MS)


def _hex_params(dtype: type, scales: Sequence[str], zps: Sequence[int]) -> tuple:
    sa, sb, sc = (F32(float.fromhex(s)) for s in scales)
    za, zb, zc = (dtype(z) for z in zps)
    return sa, za, sb, zb, sc, zc


# Found by search: here ORT's fused (FMA-contracted) QLinearAdd differs from the unfused
# formula, and the operand swap for a broadcast A changes the result.
ADD_DISCRIMINATING = [
    (U8, ("0x1.3ad752p-4", "0x1.9554b6p-7", "0x1.a649cep-5"), (218, 77, 76)),
    (U8, ("0x1.4aa526p-5", "0x1.01b6f0p-4", "0x1.96f75ep-4"), (246, 104, 148)),
    (S8, ("0x1.daff1ap-5", "0x1.10c7bap-4", "0x1.da8fdcp-5"), (-90, 28, -57)),
]
# Here an FMA (or sA * (sB / sC)) in QLinearMul would differ from ORT.
MUL_DISCRIMINATING = [
    (S8, ("0x1.f2e910p-4", "0x1.9c6e3cp-4", "0x1.016decp+1"), (26, -123, 80)),
    (U8, ("0x1.198282p-3", "0x1.905edcp-4", "0x1.4b38ccp+1"), (202, 11, 164)),
]


def _unfused_add(a: np.ndarray, b: np.ndarray, p: tuple) -> np.ndarray:
    sa, za, sb, zb, sc, zc = p
    ra, rb = F32(sa / sc), F32(sb / sc)
    fixed = F32(F32(zc) - F32(F32(ra * F32(za)) + F32(rb * F32(zb))))
    t = ((fixed + (a.astype(F32) * ra).astype(F32)).astype(F32) + (b.astype(F32) * rb)).astype(F32)
    info = np.iinfo(a.dtype)
    return np.clip(np.rint(t), info.min, info.max).astype(a.dtype)


@pytest.mark.parametrize("dtype,scales,zps", ADD_DISCRIMINATING)
def test_qlinear_add_exhaustive_discriminating(dtype: type, scales: tuple, zps: tuple) -> None:
    p = _hex_params(dtype, scales, zps)
    a, b = _all_pairs(dtype)
    got = _binary("QLinearAdd", a, b, p)
    want = qrc.qlinear_add(a, p[0], p[1], b, p[2], p[3], p[4], p[5])
    assert_same(got, want)
    assert not np.array_equal(_unfused_add(a, b, p), got)  # fused rounding matters here
    # A broadcast (functor 0): ORT swaps the operands; B broadcast (functor 1): no swap.
    col, row = a[:256].reshape(256, 1), a[:256].reshape(1, 256)
    for aa, bb in ((col, row), (row, col)):
        assert_same(_binary("QLinearAdd", aa, bb, p), qrc.qlinear_add(aa, p[0], p[1], bb, p[2],
                                                                       p[3], p[4], p[5]))
    no_swap = qrc.qladd_kernel(np.broadcast_to(col, (256, 256)), p[0], int(p[1]),
                               np.broadcast_to(row, (256, 256)), p[2], int(p[3]), p[4], int(p[5]),
                               np.dtype(dtype))
    assert not np.array_equal(no_swap, _binary("QLinearAdd", col, row, p))


@pytest.mark.parametrize("dtype,scales,zps", MUL_DISCRIMINATING)
def test_qlinear_mul_exhaustive_discriminating(dtype: type, scales: tuple, zps: tuple) -> None:
    p = _hex_params(dtype, scales, zps)
    a, b = _all_pairs(dtype)
    got = _binary("QLinearMul", a, b, p)
    assert_same(got, qrc.qlinear_mul(a, p[0], p[1], b, p[2], p[3], p[4], p[5]))
    prod = ((a.astype(np.int64) - int(p[1])) * (b.astype(np.int64) - int(p[3]))).astype(F32)
    ratio = F32(F32(p[0] * p[2]) / p[4])
    info = np.iinfo(dtype)
    fused = np.clip(np.rint(mlas.fma_f32(prod, ratio, F32(p[5]))), info.min, info.max)
    assert not np.array_equal(fused.astype(dtype), got)  # no FMA in ORT's QLinearMul


BINARY_SHAPES = [((65536,), (65536,)), ((1, 256), (256, 1)), ((256, 1), (1, 256)),
                 ((67, 33), ()), ((), (67, 33)), ((1,), (7, 129)), ((3, 5, 17), (17,)),
                 ((3, 5, 17), (5, 1)), ((3, 1, 17), (1, 5, 1)), ((2, 3, 4, 5), (3, 1, 5)),
                 ((1,), (1,)), ((31,), (31,))]


@pytest.mark.parametrize("op", ("QLinearAdd", "QLinearMul"))
@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("seed", range(3))
def test_qlinear_add_mul_random(op: str, dtype: type, seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    fn = qrc.qlinear_add if op == "QLinearAdd" else qrc.qlinear_mul
    for i, (sa_shape, sb_shape) in enumerate(BINARY_SHAPES):
        pow2 = (i + seed) % 2 == 0
        p = (scale_of(rng, pow2, -7, -3), zp_of(dtype, ZP_KINDS[i % 4], rng),
             scale_of(rng, pow2, -7, -3), zp_of(dtype, ZP_KINDS[(i + seed) % 4], rng),
             scale_of(rng, pow2, -8, -1), zp_of(dtype, ZP_KINDS[(i + 2) % 4], rng))
        if sa_shape == (65536,):
            a, b = _all_pairs(dtype)
        else:
            a, b = rand_q(rng, dtype, sa_shape), rand_q(rng, dtype, sb_shape)
        assert_same(_binary(op, a, b, p), fn(a, p[0], p[1], b, p[2], p[3], p[4], p[5]))


@pytest.mark.parametrize("op", ("QLinearAdd", "QLinearMul"))
def test_qlinear_add_mul_overflow_goes_to_lowest(op: str) -> None:
    """No float clamp before cvtps2dq: |t| >= 2**31 gives INT32_MIN, i.e. 0 for uint8."""
    fn = qrc.qlinear_add if op == "QLinearAdd" else qrc.qlinear_mul
    a = np.array([0, 1, 100, 200, 255] * 8, U8)
    b = np.array([255, 0, 3, 9, 200] * 8, U8)
    p = (F32(1e7), U8(0), F32(1e7), U8(0), F32(1e-2), U8(0))
    got = _binary(op, a, b, p)
    assert_same(got, fn(a, p[0], p[1], b, p[2], p[3], p[4], p[5]))
    assert got[0] == 0


# --------------------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("channels_last", (0, 1))
def test_qlinear_global_average_pool(dtype: type, channels_last: int) -> None:
    rng = np.random.default_rng(20 + channels_last)
    info = np.iinfo(dtype)
    for i, (n, c, h, w) in enumerate([(1, 1, 1, 1), (2, 3, 5, 7), (1, 17, 13, 13),
                                      (2, 64, 4, 4), (1, 70, 9, 3), (1, 1000, 1, 3),
                                      (1, 16, 15, 15)]):
        shape = (n, h, w, c) if channels_last else (n, c, h, w)
        x = rand_q(rng, dtype, shape)
        if i % 3 == 0:
            x[...] = info.max if i % 2 else info.min  # saturation at both ends
        pow2 = i % 2 == 0
        args = [("x", x), ("xs", scale_of(rng, pow2, -5, -1)),
                ("xz", zp_of(dtype, ZP_KINDS[i % 4], rng)), ("ys", scale_of(rng, pow2, -5, -1)),
                ("yz", zp_of(dtype, ZP_KINDS[(i + 1) % 4], rng))]
        got = run_node("QLinearGlobalAveragePool", args, dtype,
                       attrs={"channels_last": channels_last}, domain=MS)
        assert_same(got, qrc.qlinear_global_average_pool(*[v for _, v in args], channels_last))


def test_qlinear_global_average_pool_scale_range() -> None:
    """ORT refuses x_scale / (y_scale * n) >= 256; so does the reference."""
    x = np.zeros((1, 2, 1, 1), U8)
    args = [("x", x), ("xs", F32(300.0)), ("xz", U8(0)), ("ys", F32(1.0)), ("yz", U8(0))]
    with pytest.raises(Exception):
        run_node("QLinearGlobalAveragePool", args, U8, domain=MS)
    with pytest.raises(ValueError):
        qrc.qlinear_global_average_pool(x, F32(300.0), U8(0), F32(1.0), U8(0))


@pytest.mark.parametrize("scales", [("0x1.5c45d4p-5", "0x1.05797ep-4"),
                                    ("0x1.80e8bcp-5", "0x1.027d98p-5")])
def test_qlinear_global_average_pool_scale_order(scales: tuple) -> None:
    """scale = f32(x_scale / f32(y_scale * n)); (x_scale / y_scale) / n differs here.

    7x7 images whose channel sums take every value 0..12495.
    """
    xs, ys = (F32(float.fromhex(v)) for v in scales)
    n = 49
    sums = np.arange(255 * n + 1)
    full, rem = sums // 255, sums % 255
    col = np.arange(n)[None, :]
    x = np.where(col < full[:, None], 255, np.where(col == full[:, None], rem[:, None], 0))
    x = x.astype(U8).reshape(1, -1, 7, 7)
    args = [("x", x), ("xs", xs), ("xz", U8(0)), ("ys", ys), ("yz", U8(0))]
    got = run_node("QLinearGlobalAveragePool", args, U8, domain=MS)
    assert_same(got, qrc.qlinear_global_average_pool(x, xs, U8(0), ys, U8(0)))
    other = mlas.requantize_output(sums.reshape(got.shape), F32(F32(xs / ys) / F32(n)), 0, U8)
    assert not np.array_equal(other, got)


# (kernel, strides, pads, count_include_pad, ceil_mode)
AVG_POOL_CASES = [
    ([3, 3], [1, 1], [1, 1, 1, 1], 0, 0),
    ([3, 3], [2, 2], [1, 1, 1, 1], 1, 0),
    ([2, 2], [2, 2], [0, 0, 0, 0], 0, 0),
    ([3, 3], [2, 2], [0, 0, 1, 1], 0, 1),
    ([3, 3], [2, 2], [0, 0, 1, 1], 1, 1),
    ([2, 2], [2, 2], [1, 1, 1, 1], 0, 1),  # ceil windows that start in the padding are dropped
    ([2, 2], [2, 2], [1, 1, 1, 1], 1, 1),
    ([5, 3], [3, 2], [2, 1, 2, 0], 1, 0),
    ([3], [2], [1, 1], 0, 1),
    ([2, 2, 2], [1, 2, 2], [1, 0, 1, 0, 1, 1], 1, 0),
    ([4, 4], [4, 4], [0, 0, 0, 0], 0, 0),  # kernel == image: integer global-pool fallback
]


@pytest.mark.parametrize("channels_last", (0, 1))
@pytest.mark.parametrize("cfg", AVG_POOL_CASES, ids=lambda c: f"k{c[0]}s{c[1]}p{c[2]}"
                         f"cip{c[3]}ceil{c[4]}")
def test_qlinear_average_pool(cfg: tuple, channels_last: int) -> None:
    kernel, strides, pads, cip, ceil = cfg
    rng = np.random.default_rng(len(kernel) * 100 + sum(pads) * 10 + cip + 2 * ceil)
    for i, dtype in enumerate((U8, S8, U8, S8)):
        spatial = [4, 4] if kernel == [4, 4] else [int(rng.integers(k, k + 8)) for k in kernel]
        c = int(rng.integers(1, 20))
        shape = [2] + spatial + [c] if channels_last else [2, c] + spatial
        x = rand_q(rng, dtype, shape)
        pow2 = i < 2
        args = [("x", x), ("xs", scale_of(rng, pow2, -5, -1)),
                ("xz", zp_of(dtype, ZP_KINDS[i], rng)), ("ys", scale_of(rng, pow2, -5, -1)),
                ("yz", zp_of(dtype, ZP_KINDS[(i + 1) % 4], rng))]
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads,
                 "count_include_pad": cip, "ceil_mode": ceil, "channels_last": channels_last}
        got = run_node("QLinearAveragePool", args, dtype, attrs=attrs, domain=MS)
        want = qrc.qlinear_average_pool(*[v for _, v in args], kernel, strides=strides, pads=pads,
                                       count_include_pad=cip, ceil_mode=ceil,
                                       channels_last=channels_last)
        assert_same(got, want)


@pytest.mark.parametrize("dtype", QTYPES)
def test_qlinear_average_pool_zero_point_rounding(dtype: type) -> None:
    """Exact .5 ties with an odd y_zp: the float path rounds f32(v / y_scale + y_zp) (zp added
    before rounding), the kernel == image fallback rounds first and adds y_zp after."""
    rng = np.random.default_rng(50)
    scale = F32(2.0**-3)  # x_scale == y_scale: every 2x2 average is a multiple of 1/4
    yz = dtype(63 if dtype == U8 else -11)
    info = np.iinfo(dtype)
    for size, fallback in ((8, False), (2, True)):  # 2x2 kernel on a 2x2 image: fallback
        x = rand_q(rng, dtype, (2, 24, size, size))
        args = [("x", x), ("xs", scale), ("xz", dtype(0)), ("ys", scale), ("yz", yz)]
        got = run_node("QLinearAveragePool", args, dtype, attrs={
            "kernel_shape": [2, 2], "strides": [2, 2]}, domain=MS)
        want = qrc.qlinear_average_pool(x, scale, dtype(0), scale, yz, [2, 2], strides=[2, 2])
        assert_same(got, want)
        mean = x.astype(np.float64).reshape(2, 24, size // 2, 2, size // 2, 2).mean(axis=(3, 5))
        zp_before = np.clip(np.rint(mean + int(yz)), info.min, info.max).astype(dtype)
        zp_after = np.clip(np.rint(mean) + int(yz), info.min, info.max).astype(dtype)
        assert not np.array_equal(zp_before, zp_after)  # ties exist
        assert_same(got, zp_after if fallback else zp_before)


# --------------------------------------------------------------------------------------
# Lookup-table ops and QLinearConcat
# --------------------------------------------------------------------------------------


def test_mlas_logistic_matches_float_sigmoid() -> None:
    """ORT's float Sigmoid runs the same MLAS kernel the QLinearSigmoid table uses."""
    rng = np.random.default_rng(4)
    x = np.concatenate([(rng.standard_normal(50000) * 6).astype(F32),
                        np.linspace(-20, 20, 20001, dtype=F32),
                        np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], F32)])
    got = run_node("Sigmoid", [("x", x)], F32)
    assert_same(got.view(np.uint32), mlas.mlas_logistic(x).view(np.uint32))


@pytest.mark.parametrize("op", ("QLinearSigmoid", "QLinearLeakyRelu"))
@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("const_params", (False, True), ids=("dynamic", "const"))
def test_qlinear_lookup_ops(op: str, dtype: type, const_params: bool) -> None:
    rng = np.random.default_rng(30 + const_params)
    x = np.concatenate([np.arange(256, dtype=np.uint8).view(dtype), rand_q(rng, dtype, (77,))])
    for i in range(8):
        pow2 = i % 2 == 0
        xs = scale_of(rng, pow2, -7, -1)
        ys = scale_of(rng, pow2, -9, -3)
        xz = zp_of(dtype, ZP_KINDS[i % 4], rng)
        yz = zp_of(dtype, ZP_KINDS[(i + 1) % 4], rng)
        args = [("x", x), ("xs", xs), ("xz", xz), ("ys", ys), ("yz", yz)]
        inits = ("xs", "xz", "ys", "yz") if const_params else ()
        if op == "QLinearSigmoid":
            got = run_node(op, args, dtype, domain=MS, initializers=inits)
            want = lookup_ops.qlinear_sigmoid(x, xs, xz, ys, yz)
        else:
            alpha = float(rng.choice([0.01, 0.1, 0.2, 1 / 3, 0.5]))
            got = run_node(op, args, dtype, attrs={"alpha": alpha}, domain=MS,
                           initializers=inits)
            want = lookup_ops.qlinear_leaky_relu(x, xs, xz, ys, yz, alpha)
        assert_same(got, want)


def test_qlinear_sigmoid_uses_mlas_approximation() -> None:
    """A case where quantizing the exact sigmoid would give a different table entry."""
    xs, xz = F32(float.fromhex("0x1.8d45a8p-4")), S8(-60)
    ys, yz = F32(2.0**-7), S8(-128)
    x = np.arange(256, dtype=np.uint8).view(S8)
    got = run_node("QLinearSigmoid", [("x", x), ("xs", xs), ("xz", xz), ("ys", ys), ("yz", yz)],
                   S8, domain=MS)
    assert_same(got, lookup_ops.qlinear_sigmoid(x, xs, xz, ys, yz))
    d = (xs * (x.astype(np.int64) - int(xz)).astype(F32)).astype(F32)
    exact = qr.quantize_linear((1 / (1 + np.exp(-d.astype(np.float64)))).astype(F32), ys, yz)
    assert not np.array_equal(exact, got)


@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("const_params", (False, True), ids=("dynamic", "const"))
@pytest.mark.parametrize("axis", (1, -1))
def test_qlinear_concat(dtype: type, const_params: bool, axis: int) -> None:
    rng = np.random.default_rng(40 + const_params + 2 * (axis > 0))
    for i in range(4):
        pow2 = i % 2 == 0
        ys, yz = scale_of(rng, pow2, -7, -1), zp_of(dtype, ZP_KINDS[i], rng)
        inputs, args = [], []
        for j in range(3):
            shape = [2, 3, 5]
            shape[axis] = int(rng.integers(1, 20))
            xs = ys if j == 0 else scale_of(rng, pow2, -7, -1)  # input 0: plain copy path
            xz = yz if j == 0 else zp_of(dtype, ZP_KINDS[(i + j) % 4], rng)
            x = rand_q(rng, dtype, shape)
            inputs.append((x, xs, xz))
            args += [(f"x{j}", x), (f"s{j}", xs), (f"z{j}", xz)]
        inits = tuple(n for n, _ in args if not n.startswith("x")) + ("ys", "yz")
        got = run_node("QLinearConcat", [("ys", ys), ("yz", yz)] + args, dtype,
                       attrs={"axis": axis}, domain=MS,
                       initializers=inits if const_params else ())
        assert_same(got, lookup_ops.qlinear_concat(ys, yz, inputs, axis))


@pytest.mark.parametrize("dtype,scales,zps", [
    (S8, ("0x1.57900cp-6", "0x1.3163a2p-6"), (-59, 46)),
    (U8, ("0x1.9dbcd6p-6", "0x1.3b9006p-5"), (156, 141)),
])
def test_lookup_table_dequantizes_as_scale_times_difference(dtype: type, scales: tuple,
                                                            zps: tuple) -> None:
    """Table input is f32(x_scale * f32(q - x_zp)); x_scale*q - x_scale*x_zp differs here."""
    xs, ys = (F32(float.fromhex(v)) for v in scales)
    xz, yz = (dtype(z) for z in zps)
    q = np.arange(256, dtype=np.uint8).view(dtype)
    got = run_node("QLinearConcat", [("ys", ys), ("yz", yz), ("a", q), ("as", xs), ("az", xz)],
                   dtype, attrs={"axis": 0}, domain=MS)
    assert_same(got, lookup_ops.qlinear_concat(ys, yz, [(q, xs, xz)], 0))
    other = qr.quantize_linear((xs * q.astype(F32) - xs * F32(xz)).astype(F32), ys, yz)
    assert not np.array_equal(other, got)
