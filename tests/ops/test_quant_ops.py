"""Quantized ONNX ops compiled by sqzc, compared bit for bit with onnxruntime.

Every test builds a one-node model (com.microsoft ops import the ``com.microsoft``
domain), compiles it with sqzc and compares with onnxruntime's CPU provider through
``assert_matches_ort`` (exact for int8/uint8/int32 outputs; DequantizeLinear's float
output is compared with zero tolerance too). Each case is also interpreted with the IR's
numpy references (``sqzc.ops.reference``, what constant folding computes) on the
imported graph, which must agree exactly as well.

Scales and zero points are initializers (sqzc specializes kernels on them); the data
covers non-zero and extreme zero points, saturation at both ends, broadcasting, and
parameter sets (taken from ``tests/unit/test_quant_reference.py``) where a
plausible-but-wrong formula would round differently. Exact .5 ties, where rounding half to
even rather than away from zero matters, are built in only by the per-tensor
QuantizeLinear and ``test_qlinear_average_pool_zero_point_rounding``; elsewhere they
occur by chance (a few QLinearAdd/Mul, QLinearConcat and QLinearAveragePool cases) or not
at all: the QLinearConv cases use fixed scales (0.05 in, 0.3 out) and hit none, and the
power-of-two scales of the QLinearMatMul and QLinearGlobalAveragePool cases give
multipliers such as 2^-9 or 2^-3 / 35 whose ties no accumulator here reaches.
``test_requant_ties.py`` and ``test_requant_ties_folded.py`` check the ties at every
rounding site.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from sqz_testing import assert_matches_ort, model_path, ort_run
from sqzc.errors import UnsupportedError
from sqzc.frontends.onnx.importer import import_proto
from sqzc.ops import OpKind, QPoolAttrs, QuantAttrs
from sqzc.ort.lookup import lookup_table
from sqzc.ops import reference

pytest.importorskip("onnxruntime")

MS = "com.microsoft"
F32 = np.float32
U8 = np.uint8
S8 = np.int8
I32 = np.int32
QTYPES = (U8, S8)
Inputs = Sequence[tuple[str, object, bool]]  # (name, value or None, is initializer)


# ----------------------------------------------------------------------------- helpers


def node_model(op: str, inputs: Inputs, out_dtype: type, attrs: dict | None = None,
               domain: str = "", opset: int = 13, dynamic_batch: bool = False
               ) -> tuple[onnx.ModelProto, dict]:
    """A one-node model and its feeds; ``None`` values are omitted optional inputs.

    The output's static shape is taken from onnxruntime (onnx cannot infer com.microsoft
    ops, and sqzc's loader wants typed outputs). ``dynamic_batch`` makes dim 0 of every
    graph input and of the output symbolic (``N``).
    """
    names, graph_inputs, inits, feeds = [], [], [], {}
    for name, value, const in inputs:
        if value is None:
            names.append("")
            continue
        names.append(name)
        arr = np.asarray(value)
        if const:
            inits.append(numpy_helper.from_array(arr, name))
        else:
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            dims = ["N", *arr.shape[1:]] if dynamic_batch else arr.shape
            graph_inputs.append(helper.make_tensor_value_info(name, elem, dims))
            feeds[name] = arr
    node = helper.make_node(op, names, ["y"], name=f"{op}_0", domain=domain, **(attrs or {}))
    elem = helper.np_dtype_to_tensor_dtype(np.dtype(out_dtype))
    out = helper.make_tensor_value_info("y", elem, None)
    graph = helper.make_graph([node], "g", graph_inputs, [out], inits)
    opsets = [helper.make_opsetid("", opset)]
    if domain:
        opsets.append(helper.make_opsetid(domain, 1))
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    shape = ort_run(model, feeds)[0].shape
    tt = model.graph.output[0].type.tensor_type
    tt.shape.SetInParent()
    for i, d in enumerate(shape):
        if dynamic_batch and i == 0:
            tt.shape.dim.add().dim_param = "N"
        else:
            tt.shape.dim.add().dim_value = int(d)
    return model, feeds


def interpret(model: onnx.ModelProto, feeds: dict) -> np.ndarray:
    """The imported (unoptimized) IR evaluated with the numpy references."""
    g = import_proto(model, "test")
    env: dict[str, np.ndarray] = {}
    for nid in g.nodes():
        op = g.op(nid)
        if op.kind is OpKind.INPUT:
            env[nid] = feeds[g.input_names[nid]]
        else:
            env[nid] = reference(op.kind, op.attrs, [env[i] for i in op.inputs])
    return env[g.outputs[0].node]


def check(op: str, inputs: Inputs, out_dtype: type, attrs: dict | None = None,
          domain: str = "", opset: int = 13, exact_float: bool = False, opt_level: int = 3,
          dynamic_batch: bool = False, target_cpu: str = "host") -> np.ndarray:
    """Compile + run with sqzc, compare with onnxruntime; the IR references must agree
    (on the batch-1 slice when the batch is dynamic)."""
    model, feeds = node_model(op, inputs, out_dtype, attrs, domain, opset, dynamic_batch)
    tol = {"rtol": 0.0, "atol": 0.0} if exact_float else {}
    got = assert_matches_ort(model, feeds, opt_level=opt_level, target_cpu=target_cpu,
                             **tol)["y"]
    if dynamic_batch:
        feeds = {k: v[:1] for k, v in feeds.items()}
    want = ort_run(model, feeds)[0]
    ref = interpret(model, feeds)
    assert ref.dtype == want.dtype and ref.shape == want.shape
    assert np.array_equal(ref.view(np.uint8), want.view(np.uint8)), "IR reference differs"
    return got


def rand_q(rng: np.random.Generator, dtype: type, shape: Sequence[int]) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max + 1, size=tuple(shape)).astype(dtype)


def zp(dtype: type, which: str, rng: np.random.Generator | None = None) -> np.generic:
    info = np.iinfo(dtype)
    if which == "rand":
        assert rng is not None
        return dtype(int(rng.integers(info.min, info.max + 1)))
    return dtype({"min": info.min, "max": info.max, "zero": 0}[which])


def scale(rng: np.random.Generator, pow2: bool, lo: float = -7, hi: float = -1) -> np.float32:
    if pow2:
        return F32(2.0 ** int(rng.integers(lo, hi + 1)))
    return F32(2.0 ** rng.uniform(lo, hi))


def hexf(v: str) -> np.float32:
    return F32(float.fromhex(v))


ZPS = ("min", "max", "zero", "rand")


def all_bytes(dtype: type) -> np.ndarray:
    return np.arange(256, dtype=np.uint8).view(dtype)


# ------------------------------------------------------------- QuantizeLinear / Dequantize


@pytest.mark.parametrize("opset", (10, 13, 19, 21))
@pytest.mark.parametrize("dtype", QTYPES)
def test_quantize_linear_per_tensor(opset: int, dtype: type) -> None:
    rng = np.random.default_rng(opset)
    s = F32(2.0**-3)
    x = (rng.integers(-1200, 1200, (2, 3, 7, 5)) * (s / 2)).astype(F32)  # ties + saturation
    x[0, 0, 0, :3] = [1e9, -1e9, -0.0]
    for z in (zp(dtype, "rand", rng), zp(dtype, "max")):
        check("QuantizeLinear", [("x", x, False), ("s", s, True), ("z", z, True)], dtype,
              opset=opset)
    if dtype == U8:  # zero point omitted: uint8
        check("QuantizeLinear", [("x", x, False), ("s", F32(0.1), True)], U8, opset=opset)


@pytest.mark.parametrize("folded", (False, True), ids=("kernel", "folded"))
@pytest.mark.parametrize("dtype", QTYPES)
def test_quantize_linear_special_values(dtype: type, folded: bool) -> None:
    """NaN goes to the lowest code, +-inf saturate, in the kernel and in constant folding
    alike: folding uses onnxruntime's QuantizeLinear (one implementation), where it once
    sent NaN to 0 for int8 while the kernel and onnxruntime give -128."""
    x = np.array([np.nan, -np.nan, np.inf, -np.inf, 1e30, -1e30, 0.0, -0.0], F32)
    z = zp(dtype, "max") if dtype == S8 else zp(dtype, "min")
    got = check("QuantizeLinear", [("x", x, folded), ("s", F32(0.5), True), ("z", z, True)],
                dtype)
    assert got[0] == got[1] == np.iinfo(dtype).min


@pytest.mark.parametrize("opset", (13, 19, 21))
@pytest.mark.parametrize("axis", (1, -1, 0))
def test_quantize_linear_per_axis(opset: int, axis: int) -> None:
    rng = np.random.default_rng(opset + axis)
    x = (rng.standard_normal((3, 6, 4, 5)) * 4).astype(F32)
    n = x.shape[axis]
    for dtype in QTYPES:
        s = (2.0 ** rng.integers(-6, 0, n)).astype(F32)
        s[::2] = rng.uniform(0.01, 0.1, len(s[::2])).astype(F32)
        z = rand_q(rng, dtype, (n,))
        z[0] = np.iinfo(dtype).max
        check("QuantizeLinear", [("x", x, False), ("s", s, True), ("z", z, True)], dtype,
              attrs={"axis": axis}, opset=opset)


@pytest.mark.parametrize("opset", (10, 13, 19, 21))
@pytest.mark.parametrize("dtype", (U8, S8, I32))
def test_dequantize_linear(opset: int, dtype: type) -> None:
    rng = np.random.default_rng(opset * 3)
    x = rand_q(rng, dtype, (2, 5, 3, 4)) if dtype != I32 else \
        rng.integers(-(2**30), 2**30, (2, 5, 3, 4)).astype(I32)
    z = None if dtype == I32 else zp(dtype, "rand", rng)
    check("DequantizeLinear", [("x", x, False), ("s", F32(0.0123), True), ("z", z, True)], F32,
          opset=opset, exact_float=True)
    if opset >= 13 and dtype != I32:
        s = rng.uniform(1e-3, 1.0, 5).astype(F32)
        check("DequantizeLinear", [("x", x, False), ("s", s, True),
                                   ("z", rand_q(rng, dtype, (5,)), True)], F32,
              attrs={"axis": 1}, opset=opset, exact_float=True)


# ----------------------------------------------------------------------------- QLinearConv


# (xdt, wdt, C, M, group, kernel, strides, pads, dilations, per_channel, w_zp, bias)
CONV_CASES = [
    (U8, S8, 16, 32, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), True, "zero", True),
    (U8, S8, 20, 12, 1, (3, 3), (2, 2), (0, 1, 1, 0), (1, 1), True, "rand", True),
    (U8, S8, 3, 5, 1, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1), False, "max", False),
    (U8, S8, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), (2, 2), True, "rand", True),
    (U8, U8, 12, 6, 3, (3, 3), (1, 2), (0, 2, 1, 0), (2, 1), True, "rand", True),
    (S8, S8, 16, 16, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1), True, "zero", True),
    (S8, S8, 12, 9, 3, (5, 3), (1, 1), (2, 1, 2, 1), (1, 1), False, "min", False),
    (S8, S8, 12, 20, 1, (3, 3), (2, 2), (1, 0, 0, 1), (1, 1), False, "zero", True),
]


@pytest.mark.parametrize("cfg", CONV_CASES, ids=lambda c: f"{np.dtype(c[0])}x{np.dtype(c[1])}"
                         f"-C{c[2]}M{c[3]}g{c[4]}k{c[5][0]}{c[5][1]}s{c[6][0]}{c[6][1]}"
                         f"-{'pc' if c[9] else 'pt'}-wz{c[10]}")
def test_qlinear_conv(cfg: tuple) -> None:
    xdt, wdt, c, m, group, k, strides, pads, dil, per_ch, wzp, bias = cfg
    rng = np.random.default_rng(CONV_CASES.index(cfg))
    x = rand_q(rng, xdt, (1, c, 9, 8))
    w = rand_q(rng, wdt, (m, c // group) + k)
    ws = rng.uniform(1e-3, 0.05, m).astype(F32) if per_ch else F32(0.01)
    if wzp == "rand" and per_ch:
        wz = rand_q(rng, wdt, (m,))
    elif per_ch:
        wz = np.full((m,), zp(wdt, wzp), wdt)
    else:
        wz = zp(wdt, wzp, rng)
    b = rng.integers(-3000, 3000, m).astype(I32) if bias else None
    attrs = {"group": group, "strides": list(strides), "pads": list(pads),
             "dilations": list(dil), "kernel_shape": list(k)}
    ins = [("x", x, False), ("xs", F32(0.05), True), ("xz", zp(xdt, "rand", rng), True),
           ("w", w, True), ("ws", ws, True), ("wz", wz, True), ("ys", F32(0.3), True),
           ("yz", zp(xdt, "rand", rng), True), ("b", b, True)]
    check("QLinearConv", ins, xdt, attrs=attrs)
    if group == 1 and wdt is S8 and wzp == "zero":
        # the int16-pair (pmaddwd) kernel of targets without VNNI: AVX2, baseline x86-64
        for cpu in ("haswell", "generic"):
            check("QLinearConv", ins, xdt, attrs=attrs, target_cpu=cpu)


def test_qlinear_conv_saturates_both_ends() -> None:
    x = np.full((1, 8, 5, 5), 255, U8)
    w = np.full((4, 8, 3, 3), 127, S8)
    w[::2] = -128
    ins = [("x", x, False), ("xs", F32(1.0), True), ("xz", U8(0), True), ("w", w, True),
           ("ws", F32(1.0), True), ("wz", S8(0), True), ("ys", F32(3.0), True),
           ("yz", U8(128), True)]
    got = check("QLinearConv", ins, U8, attrs={"pads": [1, 1, 1, 1]})
    assert got.min() == 0 and got.max() == 255


def test_equal_geometry_qlinear_convs_share_one_kernel(tmp_path) -> None:
    """Two QLinearConvs of equal geometry (and output zero point) but different weights,
    per-channel scales and biases: on a VNNI target they compile to one kernel (the multipliers travel with the
    packed bias), and each still requantizes with its own (bit-exact with onnxruntime)."""
    import sqzc
    from sqzc.backends.llvm.target import host_target
    from sqzc.driver import CompileOptions

    if "+avx512vnni" not in host_target().features:
        pytest.skip("the packed (shared) kernel is the VNNI one")
    rng = np.random.default_rng(11)
    x = rand_q(rng, U8, (1, 16, 9, 8))
    inits, nodes = [], []
    for k in range(2):
        w = rand_q(rng, S8, (32, 16, 3, 3))
        params = {"xs": F32(0.05), "xz": U8(3), "w": w,
                  "ws": rng.uniform(1e-3, 0.05, 32).astype(F32), "wz": np.zeros(32, S8),
                  "ys": F32(0.2 + k), "yz": U8(5),
                  "b": rng.integers(-3000, 3000, 32).astype(I32)}
        inits += [numpy_helper.from_array(np.asarray(v), f"{n}{k}") for n, v in params.items()]
        nodes.append(helper.make_node(
            "QLinearConv", ["x", *(f"{n}{k}" for n in ("xs", "xz", "w", "ws", "wz", "ys",
                                                      "yz", "b"))],
            [f"y{k}"], name=f"conv{k}", pads=[1, 1, 1, 1]))
    outs = [helper.make_tensor_value_info(f"y{k}", onnx.TensorProto.UINT8, (1, 32, 9, 8))
            for k in range(2)]
    graph = helper.make_graph(nodes, "two-convs",
                              [helper.make_tensor_value_info("x", onnx.TensorProto.UINT8,
                                                             x.shape)], outs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=10)
    path = tmp_path / "two_convs.onnx"
    onnx.save(model, path)
    ll = tmp_path / "two_convs.ll"
    sqzc.compile(path, ll, CompileOptions(opt_level=3, emit="llvm"))
    kernels = [line.split("(")[0] for line in ll.read_text().splitlines()
               if line.startswith("define internal void @\"k_y")]
    assert len([k for k in kernels if not k.endswith('_nchw"')]) == 1, kernels
    got = assert_matches_ort(str(path), {"x": x}, rtol=0.0, atol=0.0)
    assert not np.array_equal(got["y0"], got["y1"])


# ------------------------------------------------------------------ QLinearGlobalAveragePool


@pytest.mark.parametrize("dtype", QTYPES)
def test_qlinear_global_average_pool(dtype: type) -> None:
    rng = np.random.default_rng(7)
    info = np.iinfo(dtype)
    for i, shape in enumerate([(1, 3, 5, 7), (2, 17, 4, 4), (1, 6, 1, 9)]):
        x = rand_q(rng, dtype, shape)
        if i == 1:
            x[:, ::2] = info.max
            x[:, 1::4] = info.min
        ins = [("x", x, False), ("xs", scale(rng, i == 0, -5, -1), True),
               ("xz", zp(dtype, ZPS[i], rng), True), ("ys", scale(rng, i == 0, -6, -2), True),
               ("yz", zp(dtype, ZPS[i + 1], rng), True)]
        check("QLinearGlobalAveragePool", ins, dtype, domain=MS)


# ----------------------------------------------------------------- QLinearAdd / QLinearMul


def _binary_inputs(a: np.ndarray, b: np.ndarray, p: tuple) -> list:
    sa, za, sb, zb, sc, zc = p
    return [("a", a, False), ("as", sa, True), ("az", za, True), ("b", b, False),
            ("bs", sb, True), ("bz", zb, True), ("cs", sc, True), ("cz", zc, True)]


def _hex_params(dtype: type, scales: Sequence[str], zps: Sequence[int]) -> tuple:
    sa, sb, sc = (hexf(s) for s in scales)
    za, zb, zc = (dtype(z) for z in zps)
    return sa, za, sb, zb, sc, zc


# Parameter sets where the unfused formula (Add), the FMA formula (Mul) or not swapping
# the operands of a broadcast A (Add) would give different bits.
ADD_DISCRIMINATING = [
    (U8, ("0x1.3ad752p-4", "0x1.9554b6p-7", "0x1.a649cep-5"), (218, 77, 76)),
    (S8, ("0x1.daff1ap-5", "0x1.10c7bap-4", "0x1.da8fdcp-5"), (-90, 28, -57)),
]
MUL_DISCRIMINATING = [
    (S8, ("0x1.f2e910p-4", "0x1.9c6e3cp-4", "0x1.016decp+1"), (26, -123, 80)),
    (U8, ("0x1.198282p-3", "0x1.905edcp-4", "0x1.4b38ccp+1"), (202, 11, 164)),
]


@pytest.mark.parametrize("dtype,scales,zps", ADD_DISCRIMINATING)
def test_qlinear_add_all_pairs_and_operand_order(dtype: type, scales: tuple, zps: tuple) -> None:
    p = _hex_params(dtype, scales, zps)
    q = all_bytes(dtype)
    col, row = q.reshape(256, 1), q.reshape(1, 256)
    check("QLinearAdd", _binary_inputs(col, row, p), dtype, domain=MS)  # A broadcast: swap
    check("QLinearAdd", _binary_inputs(row, col, p), dtype, domain=MS)  # B broadcast


@pytest.mark.parametrize("dtype,scales,zps", MUL_DISCRIMINATING)
def test_qlinear_mul_all_pairs(dtype: type, scales: tuple, zps: tuple) -> None:
    p = _hex_params(dtype, scales, zps)
    q = all_bytes(dtype)
    check("QLinearMul", _binary_inputs(q.reshape(256, 1), q.reshape(1, 256), p), dtype,
          domain=MS)


BINARY_SHAPES = [((3, 5, 17), (3, 5, 17)), ((67, 33), ()), ((), (7, 9)), ((1,), (7, 129)),
                 ((3, 5, 17), (17,)), ((3, 5, 17), (5, 1)), ((3, 1, 17), (1, 5, 1)),
                 ((2, 3, 4, 5), (3, 1, 5)), ((1,), (1,))]


@pytest.mark.parametrize("op", ("QLinearAdd", "QLinearMul"))
@pytest.mark.parametrize("dtype", QTYPES)
def test_qlinear_add_mul_broadcasting(op: str, dtype: type) -> None:
    rng = np.random.default_rng(100 + (op == "QLinearMul") + 2 * (dtype == S8))
    for i, (sa, sb) in enumerate(BINARY_SHAPES):
        pow2 = i % 2 == 0
        p = (scale(rng, pow2, -7, -3), zp(dtype, ZPS[i % 4], rng),
             scale(rng, pow2, -7, -3), zp(dtype, ZPS[(i + 1) % 4], rng),
             scale(rng, pow2, -8, -1), zp(dtype, ZPS[(i + 2) % 4], rng))
        check(op, _binary_inputs(rand_q(rng, dtype, sa), rand_q(rng, dtype, sb), p), dtype,
              domain=MS)


def test_qlinear_add_dynamic_batch() -> None:
    rng = np.random.default_rng(5)
    a = rand_q(rng, U8, (3, 4, 5))
    ins = [("a", a, False), ("as", F32(0.03), True), ("az", U8(9), True),
           ("b", rand_q(rng, U8, (5,)), True), ("bs", F32(0.02), True), ("bz", U8(200), True),
           ("cs", F32(0.04), True), ("cz", U8(30), True)]
    check("QLinearAdd", ins, U8, domain=MS, dynamic_batch=True)


def test_qlinear_add_dynamic_batch_with_batch_dependent_rounding_is_refused() -> None:
    """A (N, 1) + B (1, 1): onnxruntime swaps the operands at N == 1 only."""
    ins = [("a", np.zeros((2, 1), U8), False), ("as", F32(0.03), True), ("az", U8(9), True),
           ("b", np.zeros((1, 1), U8), True), ("bs", F32(0.02), True), ("bz", U8(2), True),
           ("cs", F32(0.04), True), ("cz", U8(30), True)]
    model, _ = node_model("QLinearAdd", ins, U8, domain=MS, dynamic_batch=True)
    assert "dynamic batch" in _compile_error(model)


@pytest.mark.parametrize("op", ("QLinearAdd", "QLinearMul"))
def test_qlinear_add_mul_overflow_goes_to_lowest(op: str) -> None:
    """No float clamp before cvtps2dq: |t| >= 2**31 becomes the lowest value (0)."""
    a = np.array([0, 1, 100, 200, 255] * 8, U8)
    b = np.array([255, 0, 3, 9, 200] * 8, U8)
    p = (F32(1e7), U8(0), F32(1e7), U8(0), F32(1e-2), U8(0))
    got = check(op, _binary_inputs(a, b, p), U8, domain=MS)
    assert got[0] == 0


@pytest.mark.parametrize("op", ("QLinearAdd", "QLinearMul"))
def test_qlinear_add_mul_constant_operand(op: str) -> None:
    rng = np.random.default_rng(3)
    a = rand_q(rng, S8, (2, 4, 6))
    b = rand_q(rng, S8, (4, 1))
    ins = [("a", a, False), ("as", F32(0.03), True), ("az", S8(-3), True), ("b", b, True),
           ("bs", F32(0.02), True), ("bz", S8(5), True), ("cs", F32(0.04), True),
           ("cz", S8(1), True)]
    check(op, ins, S8, domain=MS)


# ------------------------------------------------------- QLinearSigmoid / QLinearLeakyRelu


@pytest.mark.parametrize("op", ("QLinearSigmoid", "QLinearLeakyRelu"))
@pytest.mark.parametrize("dtype", QTYPES)
def test_qlinear_lookup_ops(op: str, dtype: type) -> None:
    rng = np.random.default_rng(30 + (dtype == S8))
    x = np.concatenate([all_bytes(dtype), rand_q(rng, dtype, (77,))]).reshape(1, 1, 333)
    for i in range(3):
        pow2 = i % 2 == 0
        ins = [("x", x, False), ("xs", scale(rng, pow2, -7, -1), True),
               ("xz", zp(dtype, ZPS[i], rng), True), ("ys", scale(rng, pow2, -9, -3), True),
               ("yz", zp(dtype, ZPS[(i + 1) % 4], rng), True)]
        attrs = {"alpha": [0.01, 0.2, 1 / 3][i]} if op == "QLinearLeakyRelu" else None
        check(op, ins, dtype, attrs=attrs, domain=MS)


def test_qlinear_sigmoid_uses_mlas_logistic() -> None:
    """Quantizing the exact sigmoid would give a different table entry here."""
    x = all_bytes(S8)
    ins = [("x", x, False), ("xs", hexf("0x1.8d45a8p-4"), True), ("xz", S8(-60), True),
           ("ys", F32(2.0**-7), True), ("yz", S8(-128), True)]
    check("QLinearSigmoid", ins, S8, domain=MS)


def test_qlinear_leaky_relu_default_alpha_no_zero_points() -> None:
    x = all_bytes(U8).reshape(4, 64)
    ins = [("x", x, False), ("xs", F32(0.05), True), ("xz", None, True),
           ("ys", F32(0.02), True), ("yz", None, True)]
    check("QLinearLeakyRelu", ins, U8, domain=MS)


# ----------------------------------------------------------------------------- QLinearConcat


@pytest.mark.parametrize("dtype", QTYPES)
@pytest.mark.parametrize("axis", (1, -1))
def test_qlinear_concat(dtype: type, axis: int) -> None:
    rng = np.random.default_rng(40 + (axis > 0) + 2 * (dtype == S8))
    for i in range(2):
        pow2 = i % 2 == 0
        ys, yz = scale(rng, pow2, -7, -1), zp(dtype, ZPS[i], rng)
        ins: list = [("ys", ys, True), ("yz", yz, True)]
        for j in range(3):
            shape = [2, 3, 5]
            shape[axis] = int(rng.integers(1, 9))
            same = j == 0  # input 0 has the output's quantization: a plain copy
            ins += [(f"x{j}", rand_q(rng, dtype, shape), False),
                    (f"s{j}", ys if same else scale(rng, pow2, -7, -1), True),
                    (f"z{j}", yz if same else zp(dtype, ZPS[(i + j) % 4], rng), True)]
        check("QLinearConcat", ins, dtype, attrs={"axis": axis}, domain=MS)


@pytest.mark.parametrize("dtype,scales,zps", [
    (S8, ("0x1.57900cp-6", "0x1.3163a2p-6"), (-59, 46)),
    (U8, ("0x1.9dbcd6p-6", "0x1.3b9006p-5"), (156, 141)),
])
def test_qlinear_concat_table_is_scale_times_difference(dtype: type, scales: tuple,
                                                        zps: tuple) -> None:
    xs, ys = (hexf(v) for v in scales)
    q = all_bytes(dtype)
    ins = [("ys", ys, True), ("yz", dtype(zps[1]), True), ("a", q, False), ("as", xs, True),
           ("az", dtype(zps[0]), True), ("b", q[::-1].copy(), False), ("bs", ys, True),
           ("bz", dtype(zps[1]), True)]
    check("QLinearConcat", ins, dtype, attrs={"axis": 0}, domain=MS)


@pytest.mark.parametrize("dtype", QTYPES)
def test_requantize_is_the_identity_lookup_table(dtype: type) -> None:
    """QLinearConcat's table equals the IR's requantize (Q(DQ(x))) on all 256 bytes."""
    rng = np.random.default_rng(9)
    q = all_bytes(dtype)
    for i in range(50):
        pow2 = i % 2 == 0
        x = QuantAttrs((float(scale(rng, pow2, -9, 2)),), (int(zp(dtype, ZPS[i % 4], rng)),),
                       np.dtype(dtype).name)
        y = QuantAttrs((float(scale(rng, pow2, -9, 2)),),
                       (int(zp(dtype, ZPS[(i + 1) % 4], rng)),), np.dtype(dtype).name)
        got = reference(OpKind.REQUANTIZE, QPoolAttrs(x, y), [q])
        assert got.tolist() == list(np.asarray(lookup_table("identity", x, y), dtype=dtype))


# ----------------------------------------------------------------------- QLinearAveragePool


# (kernel, strides, pads, count_include_pad, ceil_mode)
AVG_POOL_CASES = [
    ([3, 3], [1, 1], [1, 1, 1, 1], 0, 0),
    ([3, 3], [2, 2], [1, 1, 1, 1], 1, 0),
    ([2, 2], [2, 2], [0, 0, 0, 0], 0, 0),
    ([3, 3], [2, 2], [0, 0, 1, 1], 0, 1),
    ([3, 3], [2, 2], [0, 0, 1, 1], 1, 1),  # full-kernel divisor on windows past the pads
    ([2, 2], [2, 2], [1, 1, 1, 1], 1, 1),  # ceil windows starting in the padding dropped
    ([5, 3], [3, 2], [2, 1, 2, 0], 1, 0),
    ([4, 4], [4, 4], [0, 0, 0, 0], 0, 0),  # kernel == image: integer global-pool path
]


@pytest.mark.parametrize("channels_last", (0, 1))
@pytest.mark.parametrize("cfg", AVG_POOL_CASES, ids=lambda c: f"k{c[0]}s{c[1]}p{c[2]}"
                         f"cip{c[3]}ceil{c[4]}")
def test_qlinear_average_pool(cfg: tuple, channels_last: int) -> None:
    kernel, strides, pads, cip, ceil = cfg
    rng = np.random.default_rng(AVG_POOL_CASES.index(cfg) * 2 + channels_last)
    for i, dtype in enumerate(QTYPES):
        spatial = [4, 4] if kernel == [4, 4] else [int(rng.integers(k, k + 6)) for k in kernel]
        c = int(rng.integers(1, 6))
        shape = [2] + spatial + [c] if channels_last else [2, c] + spatial
        pow2 = i == 0
        ins = [("x", rand_q(rng, dtype, shape), False), ("xs", scale(rng, pow2, -5, -1), True),
               ("xz", zp(dtype, ZPS[i + channels_last], rng), True),
               ("ys", scale(rng, pow2, -5, -1), True), ("yz", zp(dtype, ZPS[i + 1], rng), True)]
        attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads,
                 "count_include_pad": cip, "ceil_mode": ceil, "channels_last": channels_last}
        check("QLinearAveragePool", ins, dtype, attrs=attrs, domain=MS)


@pytest.mark.parametrize("dtype", QTYPES)
def test_qlinear_average_pool_zero_point_rounding(dtype: type) -> None:
    """Exact .5 ties with an odd y_zp: the float path adds y_zp before rounding, the
    kernel == image path after."""
    rng = np.random.default_rng(50)
    s = F32(2.0**-3)
    yz = dtype(63 if dtype == U8 else -11)
    for size in (8, 2):
        ins = [("x", rand_q(rng, dtype, (2, 6, size, size)), False), ("xs", s, True),
               ("xz", dtype(0), True), ("ys", s, True), ("yz", yz, True)]
        check("QLinearAveragePool", ins, dtype, attrs={"kernel_shape": [2, 2],
                                                       "strides": [2, 2]}, domain=MS)


def test_qlinear_average_pool_auto_pad_and_saturation() -> None:
    x = np.full((1, 3, 7, 6), 255, U8)
    x[:, :, ::2] = 0
    ins = [("x", x, False), ("xs", F32(0.5), True), ("xz", U8(0), True),
           ("ys", F32(0.1), True), ("yz", U8(10), True)]
    got = check("QLinearAveragePool", ins, U8, attrs={
        "kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"}, domain=MS)
    assert got.max() == 255


# ----------------------------------------------------------------------------- QLinearMatMul


AB_TYPES = ((U8, S8), (S8, S8), (U8, U8))
MM_SHAPES = (((5, 37), (37, 19)), ((2, 3, 4, 16), (16, 7)), ((1, 9), (9, 1)),
             ((3, 1, 7, 9), (2, 9, 5)), ((9,), (9, 4)))


@pytest.mark.parametrize("opset", (10, 21))
@pytest.mark.parametrize("adt,bdt", AB_TYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("per_column", (False, True), ids=("per_tensor", "per_column"))
def test_qlinear_matmul(opset: int, adt: type, bdt: type, per_column: bool) -> None:
    rng = np.random.default_rng(12 + per_column + 2 * opset)
    for i, (sa, sb) in enumerate(MM_SHAPES):
        if per_column and len(sb) != 2:
            continue
        n = sb[-1]
        pow2 = i % 2 == 0
        if per_column:
            bs = (2.0 ** rng.integers(-9, -4, n)).astype(F32) if pow2 else \
                rng.uniform(1e-3, 2e-2, n).astype(F32)
            bz = rand_q(rng, bdt, (n,))
        else:
            bs, bz = scale(rng, pow2, -9, -5), zp(bdt, ZPS[i % 4], rng)
        b_const = i % 2 == 1
        ins = [("a", rand_q(rng, adt, sa), False), ("as", scale(rng, pow2, -6, -3), True),
               ("az", zp(adt, ZPS[(i + 1) % 4], rng), True),
               ("b", rand_q(rng, bdt, sb), b_const), ("bs", bs, True), ("bz", bz, True),
               ("ys", scale(rng, pow2, -3, 0), True), ("yz", zp(adt, ZPS[(i + 2) % 4], rng), True)]
        check("QLinearMatMul", ins, adt, opset=opset)


# ----------------------------------------------------------------------------- MatMulInteger


@pytest.mark.parametrize("adt,bdt", AB_TYPES, ids=lambda t: np.dtype(t).name)
def test_matmul_integer(adt: type, bdt: type) -> None:
    rng = np.random.default_rng(11)
    for i, (sa, sb) in enumerate(MM_SHAPES):
        az = zp(adt, "max", rng) if i % 2 else zp(adt, "rand", rng)
        bz = rand_q(rng, bdt, (sb[-1],)) if len(sb) == 2 else zp(bdt, "rand", rng)
        ins = [("a", rand_q(rng, adt, sa), False), ("b", rand_q(rng, bdt, sb), i % 2 == 0),
               ("az", az, True), ("bz", bz, True)]
        check("MatMulInteger", ins, I32, opset=10)


def test_matmul_integer_without_zero_points() -> None:
    rng = np.random.default_rng(2)
    a, b = rand_q(rng, U8, (4, 300)), rand_q(rng, U8, (300, 3))
    a[0], b[:, 0] = 255, 255  # large sums
    check("MatMulInteger", [("a", a, False), ("b", b, False)], I32, opset=10)


# ----------------------------------------------------------------------------- ConvInteger


@pytest.mark.parametrize("xdt,wdt", ((U8, U8), (U8, S8), (S8, S8)), ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("geom", [
    ((1, 8, 9, 10), (5, 8, 3, 3), {"pads": [1, 0, 2, 1]}),
    ((2, 12, 7, 9), (6, 4, 3, 3), {"group": 3, "strides": [2, 1], "pads": [1, 1, 0, 2],
                                   "dilations": [1, 2]}),
    ((1, 8, 9, 10), (4, 8, 3, 3), {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ((1, 8, 9, 10), (4, 8, 4, 3), {"auto_pad": "SAME_LOWER", "strides": [2, 3]}),
    ((1, 6, 6, 6), (6, 1, 3, 3), {"group": 6, "pads": [1, 1, 1, 1]}),
], ids=("pads", "group_dil", "same_upper", "same_lower", "depthwise"))
def test_conv_integer(xdt: type, wdt: type, geom: tuple) -> None:
    xs, ws, attrs = geom
    rng = np.random.default_rng(len(attrs) * 7 + xs[1])
    ins = [("x", rand_q(rng, xdt, xs), False), ("w", rand_q(rng, wdt, ws), True),
           ("xz", zp(xdt, "rand", rng), True), ("wz", zp(wdt, "rand", rng), True)]
    check("ConvInteger", ins, I32, attrs=attrs, opset=10)


def test_conv_integer_without_zero_points() -> None:
    rng = np.random.default_rng(4)
    ins = [("x", rand_q(rng, U8, (1, 4, 6, 6)), False), ("w", rand_q(rng, U8, (3, 4, 2, 2)), False)]
    check("ConvInteger", ins, I32, opset=10)


# ----------------------------------------------------------------------------- errors


def _compile_error(model: onnx.ModelProto) -> str:
    import sqzc

    with pytest.raises(UnsupportedError) as e:
        sqzc.compile(model_path(model), None)
    return str(e.value)


def test_runtime_scale_is_unsupported() -> None:
    rng = np.random.default_rng(0)
    a = rand_q(rng, U8, (3, 4))
    ins = [("a", a, False), ("as", F32(0.1), False), ("az", U8(1), True), ("b", a, False),
           ("bs", F32(0.1), True), ("bz", U8(1), True), ("cs", F32(0.2), True),
           ("cz", U8(0), True)]
    model, _ = node_model("QLinearAdd", ins, U8, domain=MS)
    assert "must be a constant" in _compile_error(model)


def test_other_com_microsoft_ops_stay_unsupported() -> None:
    model, _ = node_model("QuickGelu", [("x", np.zeros((1, 4), F32), False)], F32, domain=MS)
    assert "unsupported op 'com.microsoft:QuickGelu'" in _compile_error(model)


def test_qlinear_average_pool_1d_is_unsupported() -> None:
    x = np.zeros((1, 2, 9), U8)
    ins = [("x", x, False), ("xs", F32(0.1), True), ("xz", U8(0), True), ("ys", F32(0.1), True),
           ("yz", U8(0), True)]
    model, _ = node_model("QLinearAveragePool", ins, U8, attrs={"kernel_shape": [3]},
                          domain=MS)
    assert "1-D spatial input" in _compile_error(model)


@pytest.mark.parametrize("dtype_code", [2, 3], ids=["uint8", "int8"])
def test_quantize_linear_21_output_dtype_without_zero_point(dtype_code: int, tmp_path) -> None:
    """QuantizeLinear-21 without a zero point takes its type from ``output_dtype`` (it
    was quantized as uint8 and cast), bit-exact with onnxruntime."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto

    import sqzc

    node = helper.make_node("QuantizeLinear", ["x", "s"], ["y"], output_dtype=dtype_code)
    graph = helper.make_graph(
        [node], "q21", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])],
        [helper.make_tensor_value_info("y", dtype_code, [2, 16])],
        [numpy_helper.from_array(np.float32(0.1), "s")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, tmp_path / "m.onnx")
    sqzc.compile(tmp_path / "m.onnx", tmp_path / "m.so")
    lib = sqzc.load(tmp_path / "m.so", threads=1)
    x = np.random.default_rng(0).normal(0, 8, [2, 16]).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = lib(x)
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)
