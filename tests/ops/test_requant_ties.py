"""Exact .5 ties at every rounding site of sqzc's 8-bit kernels, against onnxruntime.

Every quantized kernel ends in a rounding to an integer. onnxruntime's CPU kernels round
half to even (``cvtps2dq``, ``nearbyintf``) and so must sqzc's (``llvm.rint``). Random
data with arbitrary scales (0.05, 0.3, ...) almost never lands exactly on k + 0.5, so a
kernel rounding half away from zero (``llvm.round``) passed every per-op test (issue 26).
Here the scales are powers of two, so multipliers, float sums and quotients are exact, and
the data is chosen so that the real value before rounding is k + 0.5 for many elements
(integer accumulators times 2^-1 or 2^-2, window sums over 2 or 4, x = n * 2^-4
quantized by 2^-3, ...). Each test computes those exact values in float64 and asserts
(``assert_half_even_ties``) that

* at least ``MIN_TIES`` of the outputs are ties strictly inside the 8-bit range, and a
  quarter of that share are ties where the two rounding modes disagree, so the test cannot
  silently lose its ties when someone edits the data;
* onnxruntime's output is the half-to-even rounding of the exact values everywhere
  (it rounds half to even at these ties, and the exact model is the right one);
* sqzc's output equals onnxruntime's byte for byte.

The sites (``grep -rn llvm.rint backends/llvm/emit/``) and their tests here:

* ``conv/qconv_blocked.py``'s epilogue, the blocked integer conv (``vpdpbusd`` on AVX512-VNNI,
  int16 ``pmaddwd`` pairs on AVX2 and baseline x86-64), both its roundings: the conv's
  output and the requantization into a DQ -> Q consumer's scale;
  ``test_qlinear_conv_ties[vnni-*|pairs-*]``, ``test_qdq_conv_ties[integer]``;
* ``common/qmath.py``'s ``saturate_round``: the plain integer conv (groups, weight zero
  points; ``test_qlinear_conv_ties[plain-*]``) and its requantization, QuantizeLinear,
  QLinearGlobalAveragePool (plain and channel-blocked), QLinearMatMul, the requantize op
  (QLinearConcat), the MLAS-order float conv's row kernel
  (``test_qdq_conv_ties[float]``, the stride-2 conv);
* ``common/qmath.py``'s ``quantize_vector``: the MLAS-order float conv's tiled kernel with its
  QuantizeLinear fused (``test_qdq_conv_ties[float]``, the stride-1 conv);
* ``common/cvt.py``'s ``cvt_saturate``: QLinearAdd, QLinearMul, QLinearAveragePool;
* ``softmax/quant.py``'s QLinearSoftmax kernel.

The roundings done in Python at compile time (folded constants, lookup tables, float
weights quantized like onnxruntime) are tested in ``test_requant_ties_folded.py``.
``tests/mutation/mutants.py`` plants ``llvm.round`` at each site; these tests catch it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

import sqzc
from sqzc.backends.llvm.target import host_target
from sqzc.driver import CompileOptions
from sqzc.ir import Graph
from sqzc.ops import OpKind, OpNode, QConvAttrs
from sqzc.passes.manager import Instrumentation
from sqzc.ort.oracles.contrib_ops import qlinear_softmax_table

ort = pytest.importorskip("onnxruntime")

MS = "com.microsoft"
F32 = np.float32
U8 = np.uint8
S8 = np.int8
I32 = np.int32
#: Least share of an output's elements that must be exact ties inside the 8-bit range.
MIN_TIES = 0.10


# ----------------------------------------------------------------------------- helpers


def make_model(nodes: Sequence[onnx.NodeProto], feeds: Mapping[str, np.ndarray],
               inits: Mapping[str, np.ndarray], outputs: Mapping[str, type],
               opset: int = 13) -> onnx.ModelProto:
    """A model of ``nodes`` with ``feeds`` as graph inputs and ``outputs`` (name -> dtype)
    as typed graph outputs; their static shapes come from onnxruntime, because onnx
    cannot infer com.microsoft ops and sqzc's loader wants them."""
    ins = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
           for n, v in feeds.items()]
    outs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(np.dtype(t)), None)
            for n, t in outputs.items()]
    graph = helper.make_graph(list(nodes), "ties", ins, outs,
                              [numpy_helper.from_array(np.asarray(v), n) for n, v in inits.items()])
    opsets = [helper.make_opsetid("", opset), helper.make_opsetid(MS, 1)]
    model = helper.make_model(graph, opset_imports=opsets, ir_version=10)
    shapes = [r.shape for r in _session(model, fuse_int8_qdq=True).run(None, dict(feeds))]
    for out, shape in zip(model.graph.output, shapes):
        tt = out.type.tensor_type
        tt.shape.SetInParent()
        for d in shape:
            tt.shape.dim.add().dim_value = int(d)
    return model


def _session(model: onnx.ModelProto, fuse_int8_qdq: bool) -> object:
    """onnxruntime, one thread; int8 QDQ groups fused exactly when sqzc fuses them
    (``session.qdqisint8allowed=1`` for sqzc's default, x86-64 defaults otherwise)."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.log_severity_level = 3
    if fuse_int8_qdq:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def run_both(model: onnx.ModelProto, feeds: Mapping[str, np.ndarray], tmp_path: Path,
             target_cpu: str = "host", fuse_int8_qdq: bool = True,
             disabled: frozenset[str] = frozenset()
             ) -> tuple[Graph, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(sqzc's optimized graph, sqzc's outputs, onnxruntime's outputs) on ``feeds``; the
    graph lets a test assert which kernel it exercised."""
    path, lib = tmp_path / "m.onnx", tmp_path / "m.so"
    onnx.save(model, path)
    opts = CompileOptions(opt_level=3, target_cpu=target_cpu, verify_ir=True,
                          fuse_int8_qdq=fuse_int8_qdq,
                          instrumentation=Instrumentation(disabled=disabled))
    graph = sqzc.compile(path, lib, opts).graph
    got = sqzc.load(lib, threads=1).run(dict(feeds))
    names = [o.name for o in model.graph.output]
    want = dict(zip(names, _session(model, fuse_int8_qdq).run(None, dict(feeds))))
    return graph, got, want


def assert_half_even_ties(exact: np.ndarray, zp: np.ndarray | int, want: np.ndarray,
                          got: np.ndarray, what: str) -> int:
    """``exact`` is the real value an output element rounds (float64, exact), ``zp`` what
    is added after rounding (0 where the kernel adds the zero point before). Checks the
    share of ties, onnxruntime = half-to-even rounding of ``exact`` (saturated), and
    sqzc = onnxruntime; returns the number of ties."""
    info = np.iinfo(want.dtype)
    exact = np.asarray(exact, np.float64)
    shifted = exact + zp
    ties = (exact - np.floor(exact) == 0.5) & (shifted > info.min) & (shifted < info.max)
    even = np.rint(exact) + zp
    away = np.trunc(exact + np.copysign(0.5, exact)) + zp
    split = ties & (even != away)
    assert ties.mean() >= MIN_TIES, f"{what}: only {ties.sum()} of {ties.size} are ties"
    assert split.mean() >= MIN_TIES / 4, \
        f"{what}: only {split.sum()} ties where half-even and half-away differ"
    expected = np.clip(even, info.min, info.max).astype(want.dtype)
    assert np.array_equal(want, expected), \
        f"{what}: onnxruntime is not the half-to-even rounding of the exact values " \
        f"({int((want != expected).sum())} differ, {int((want != expected)[ties].sum())} ties)"
    assert got.dtype == want.dtype and got.shape == want.shape, what
    bad = got != want
    assert not bad.any(), f"{what}: {int(bad.sum())} of {bad.size} bytes differ from " \
        f"onnxruntime ({int(bad[ties].sum())} of the {int(ties.sum())} ties)"
    return int(ties.sum())


def int_conv(x: np.ndarray, w: np.ndarray, group: int = 1, pad: int = 1,
             stride: int = 1) -> np.ndarray:
    """Exact int64 NCHW convolution of zero-point-free operands (square kernel, equal
    padding on every side, which contributes zeros)."""
    n, _, h, wd = x.shape
    m, cg, k, _ = w.shape
    xp = np.pad(x.astype(np.int64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, m, oh, ow), np.int64)
    mg = m // group
    for g in range(group):
        xs, ws = xp[:, g * cg:(g + 1) * cg], w[g * mg:(g + 1) * mg].astype(np.int64)
        for i in range(k):
            for j in range(k):
                patch = xs[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride]
                out[:, g * mg:(g + 1) * mg] += np.einsum("nchw,mc->nmhw", patch, ws[:, :, i, j])
    return out


def per_channel(v: np.ndarray) -> np.ndarray:
    """A per-output-channel vector shaped to broadcast over NCHW."""
    return np.asarray(v).reshape(1, -1, 1, 1)


def kinds(graph: Graph) -> list[OpKind]:
    """The op kinds of ``graph`` (to assert which kernels a test exercised)."""
    return [graph.op(n).kind for n in graph.nodes()]


def ops_of(graph: Graph, kind: OpKind) -> list[OpNode]:
    return [graph.op(n) for n in graph.nodes() if graph.op(n).kind is kind]


def conv_kernel(graph: Graph, op: OpNode) -> str:
    """Which integer conv kernel ``op`` compiles to: ``vnni`` (int8 quads for vpdpbusd),
    ``pairs`` (int16 pairs for pmaddwd) or ``plain`` (the scalar NCHW one of quant.py)."""
    assert isinstance(op.attrs, QConvAttrs)
    if not op.attrs.conv.packed:
        return "plain"
    return {4: "vnni", 2: "pairs"}[graph.op(op.inputs[1]).out.shape[5]]


# --------------------------------------------------------------------- QLinearConv (QOperator)

#: xs * ws / ys: 2^-2 * {2^-3, 2^-4} / 2^-4 = {1/2, 1/4}, so odd accumulators (channels
#: with 1/2) and accumulators = 2 mod 4 (channels with 1/4) land on k + 0.5; the
#: requantization after the DQ -> Q pair multiplies by ys / ys2 = 1/2.
XS, YS, YS2 = F32(2.0**-2), F32(2.0**-4), F32(2.0**-3)
CONV_PATHS = [  # (target_cpu, activation type, group, nonzero weight zero points, kernel)
    pytest.param("host", U8, 1, False, "vnni", id="vnni-u8"),
    pytest.param("host", S8, 1, False, "vnni", id="vnni-s8"),
    pytest.param("haswell", U8, 1, False, "pairs", id="pairs-avx2-u8"),
    pytest.param("generic", S8, 1, False, "pairs", id="pairs-sse2-s8"),
    pytest.param("host", U8, 2, False, "plain", id="plain-grouped-u8"),
    pytest.param("host", S8, 1, True, "plain", id="plain-weight-zp-s8"),
]


def _conv_params(rng: np.random.Generator, c: int, m: int, group: int, wzp: bool
                 ) -> dict[str, np.ndarray]:
    """Weights (w - wz in [-4, 4]), per-channel power-of-two scales, zero points, bias."""
    wz = rng.integers(-3, 4, m).astype(S8) if wzp else np.zeros(m, S8)
    w = (rng.integers(-4, 5, (m, c // group, 3, 3)) + per_channel(wz).reshape(-1, 1, 1, 1))
    ws = np.where(np.arange(m) % 2 == 0, 2.0**-3, 2.0**-4).astype(F32)
    return {"w": w.astype(S8), "ws": ws, "wz": wz,
            "b": rng.integers(-20, 21, m).astype(I32)}


@pytest.mark.parametrize("target_cpu,xdt,group,wzp,kernel", CONV_PATHS)
def test_qlinear_conv_ties(target_cpu: str, xdt: type, group: int, wzp: bool, kernel: str,
                           tmp_path: Path) -> None:
    """QLinearConv ``ya`` and QLinearConv -> DequantizeLinear -> QuantizeLinear ``y2``
    (the DQ -> Q folds into the conv's epilogue as a second rounding) on the kernel
    ``kernel``: over a third of the outputs of both stages are exact ties."""
    if kernel == "vnni" and not host_target().has_vnni:
        pytest.skip("the vpdpbusd kernel needs an AVX512-VNNI host")
    rng = np.random.default_rng(26)
    c, m = 8, 20  # 20 channels: a full and a partial block of 16 (three blocks of 8)
    xz = xdt(131 if xdt == U8 else -5)
    yz, yz2 = (xdt(120), xdt(125)) if xdt == U8 else (xdt(3), xdt(-7))
    x = (rng.integers(-4, 5, (1, c, 6, 6)) + int(xz)).astype(xdt)
    pa, pb = (_conv_params(rng, c, m, group, wzp) for _ in range(2))
    inits: dict[str, np.ndarray] = {"xs": XS, "xz": xz, "ys": YS, "yz": yz, "ys2": YS2,
                                    "yz2": yz2}
    nodes = []
    for tag, p, out in (("a", pa, "ya"), ("b", pb, "yb")):
        inits.update({f"{k}_{tag}": v for k, v in p.items()})
        nodes.append(helper.make_node(
            "QLinearConv", ["x", "xs", "xz", f"w_{tag}", f"ws_{tag}", f"wz_{tag}", "ys", "yz",
                            f"b_{tag}"], [out], pads=[1, 1, 1, 1], group=group))
    nodes += [helper.make_node("DequantizeLinear", ["yb", "ys", "yz"], ["yb_f"]),
              helper.make_node("QuantizeLinear", ["yb_f", "ys2", "yz2"], ["y2"])]
    model = make_model(nodes, {"x": x}, inits, {"ya": xdt, "y2": xdt})
    graph, got, want = run_both(model, {"x": x}, tmp_path, target_cpu)
    convs = ops_of(graph, OpKind.QCONV)
    assert [conv_kernel(graph, op) for op in convs] == [kernel, kernel]
    assert sum(getattr(op.attrs, "requant", None) is not None for op in convs) == 1, \
        "the DQ -> Q pair was not folded into the conv's epilogue"

    info = np.iinfo(xdt)
    stage1 = []
    for p in (pa, pb):
        acc = int_conv(x.astype(np.int64) - int(xz), p["w"].astype(np.int64)
                       - p["wz"].astype(np.int64).reshape(-1, 1, 1, 1), group) \
            + per_channel(p["b"])
        stage1.append(acc * per_channel(XS * p["ws"] / YS).astype(np.float64))
    assert_half_even_ties(stage1[0], int(yz), want["ya"], got["ya"], f"{kernel} conv")
    yb = np.clip(np.rint(stage1[1]) + int(yz), info.min, info.max)
    exact2 = (yb - int(yz)) * float(YS / YS2)
    assert_half_even_ties(exact2, int(yz2), want["y2"], got["y2"], f"{kernel} requantization")


# -------------------------------------------------------------------------- QDQ convolution


def _qdq_conv_model(rng: np.random.Generator) -> tuple[onnx.ModelProto, dict, list]:
    """int8 x -> DQ -> Conv (DQ'd int8 weights, per-channel power-of-two scales, int32
    bias) -> Q, twice: 3x3 stride 1 (the MLAS-order float conv's tiled kernel) and 3x3
    stride 2 (its row kernel). Returns the model, feeds and the exact values per output."""
    xz, yz = S8(-6), S8(4)
    x = (rng.integers(-4, 5, (1, 8, 7, 7)) + int(xz)).astype(S8)
    inits: dict[str, np.ndarray] = {"xs": XS, "xz": xz, "ys": YS, "yz": yz}
    nodes, exact = [], []
    for k, (stride, m) in enumerate(((1, 20), (2, 12))):
        p = _conv_params(rng, 8, m, 1, False)
        inits.update({f"w{k}": p["w"], f"ws{k}": p["ws"], f"wz{k}": p["wz"], f"b{k}": p["b"],
                      f"bs{k}": (XS * p["ws"]).astype(F32), f"bz{k}": np.zeros(m, I32)})
        nodes += [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], [f"x{k}"]),
                  helper.make_node("DequantizeLinear", [f"w{k}", f"ws{k}", f"wz{k}"],
                                   [f"wf{k}"], axis=0),
                  helper.make_node("DequantizeLinear", [f"b{k}", f"bs{k}", f"bz{k}"],
                                   [f"bf{k}"], axis=0),
                  helper.make_node("Conv", [f"x{k}", f"wf{k}", f"bf{k}"], [f"c{k}"],
                                   kernel_shape=[3, 3], pads=[1, 1, 1, 1],
                                   strides=[stride, stride]),
                  helper.make_node("QuantizeLinear", [f"c{k}", "ys", "yz"], [f"y{k}"])]
        acc = int_conv(x.astype(np.int64) - int(xz), p["w"], stride=stride) + per_channel(p["b"])
        exact.append(acc * per_channel(XS * p["ws"] / YS).astype(np.float64))
    model = make_model(nodes, {"x": x}, inits, {"y0": S8, "y1": S8})
    return model, {"x": x}, exact


@pytest.mark.parametrize("integer", (True, False), ids=("integer", "float"))
def test_qdq_conv_ties(integer: bool, tmp_path: Path) -> None:
    """DQ -> Conv -> Q with int8 activations: fused into integer convs (sqzc's default,
    onnxruntime with ``session.qdqisint8allowed=1``), or run in float in MLAS's order
    with the QuantizeLinear in the conv's epilogue (``--no-fuse-int8-qdq``, onnxruntime's
    x86-64 default): the sums are exact, so the ties are those of the integer path."""
    model, feeds, exact = _qdq_conv_model(np.random.default_rng(261))
    graph, got, want = run_both(model, feeds, tmp_path, fuse_int8_qdq=integer)
    if integer:
        assert kinds(graph).count(OpKind.QCONV) == 2 and OpKind.CONV not in kinds(graph)
    else:  # MLAS-order float convs, each with its QuantizeLinear in the epilogue
        convs = [op.attrs for op in ops_of(graph, OpKind.CONV)]
        assert len(convs) == 2 and OpKind.QUANTIZE not in kinds(graph)
        assert all(getattr(a, "ort_order", None) and getattr(a, "quantize", None) is not None
                   for a in convs)
    for k in range(2):
        assert_half_even_ties(exact[k], 4, want[f"y{k}"], got[f"y{k}"], f"conv {k}")


# ----------------------------------------------------------------------------- QLinearMatMul


def test_qlinear_matmul_ties(tmp_path: Path) -> None:
    """QLinearMatMul per tensor (uint8 x int8) and per column (int8 x int8, scales 2^-3
    and 2^-4, column zero points): multipliers 1/2 and 1/4 of exact int32 sums."""
    rng = np.random.default_rng(262)
    az_u, az_s, yz_u, yz_s = U8(140), S8(-9), U8(121), S8(6)
    a_u = (rng.integers(-4, 5, (6, 24)) + int(az_u)).astype(U8)
    a_s = (rng.integers(-4, 5, (6, 24)) + int(az_s)).astype(S8)
    b_u, bz_u = rng.integers(-4, 5, (24, 16)).astype(S8), S8(0)
    bz_s = rng.integers(-3, 4, 16).astype(S8)
    b_s = (rng.integers(-4, 5, (24, 16)) + bz_s).astype(S8)
    bs_s = np.where(np.arange(16) % 2 == 0, 2.0**-3, 2.0**-4).astype(F32)
    bs_u = F32(2.0**-3)
    inits = {"as": XS, "az_u": az_u, "az_s": az_s, "b_u": b_u, "bs_u": bs_u, "bz_u": bz_u,
             "b_s": b_s, "bs_s": bs_s, "bz_s": bz_s, "ys": YS, "yz_u": yz_u, "yz_s": yz_s}
    nodes = [helper.make_node("QLinearMatMul", ["a_u", "as", "az_u", "b_u", "bs_u", "bz_u",
                                                "ys", "yz_u"], ["y_u"]),
             helper.make_node("QLinearMatMul", ["a_s", "as", "az_s", "b_s", "bs_s", "bz_s",
                                                "ys", "yz_s"], ["y_s"])]
    feeds = {"a_u": a_u, "a_s": a_s}
    graph, got, want = run_both(make_model(nodes, feeds, inits, {"y_u": U8, "y_s": S8}),
                                feeds, tmp_path)
    assert kinds(graph).count(OpKind.QMATMUL) == 2
    for a, az, b, bz, bs, yz, out in ((a_u, az_u, b_u, bz_u, bs_u, yz_u, "y_u"),
                                      (a_s, az_s, b_s, bz_s, bs_s, yz_s, "y_s")):
        acc = (a.astype(np.int64) - int(az)) @ (b.astype(np.int64) - bz.astype(np.int64))
        exact = acc * (XS * np.asarray(bs) / YS).astype(np.float64)
        assert_half_even_ties(exact, int(yz), want[out], got[out], out)


# ----------------------------------------------------------------- QLinearAdd / QLinearMul


def test_qlinear_add_mul_ties(tmp_path: Path) -> None:
    """QLinearAdd with A's scale half of C's (``rX = 1/2``, ``rY = 1``: ties where
    a - zA is odd; ``fixed`` holds the zero points, added before rounding) and QLinearMul
    with ``sA * sB / sC = 1/2`` (ties where both factors are odd), uint8 and int8."""
    rng = np.random.default_rng(263)
    shape = (2, 3, 6, 7)
    nodes, inits, feeds, exact, outs = [], {}, {}, {}, {}
    for dt, zs in ((U8, (131, 100, 128)), (S8, (-5, 8, 3))):
        t = np.dtype(dt).name
        za, zb, zc = (dt(z) for z in zs)
        feeds[f"a_{t}"] = (rng.integers(-60, 61, shape) + int(za)).astype(dt)
        feeds[f"b_{t}"] = (rng.integers(-30, 31, shape) + int(zb)).astype(dt)
        feeds[f"p_{t}"] = (rng.integers(-15, 16, shape) + int(za)).astype(dt)
        feeds[f"q_{t}"] = (rng.integers(-15, 16, shape) + int(zb)).astype(dt)
        inits.update({f"za_{t}": za, f"zb_{t}": zb, f"zc_{t}": zc})
        da = feeds[f"a_{t}"].astype(np.int64) - int(za)
        db = feeds[f"b_{t}"].astype(np.int64) - int(zb)
        dp = feeds[f"p_{t}"].astype(np.int64) - int(za)
        dq = feeds[f"q_{t}"].astype(np.int64) - int(zb)
        # Add: 2^-3 a' + 2^-2 b' over 2^-2; Mul: 2^-2 p' * 2^-3 q' over 2^-4
        nodes += [helper.make_node("QLinearAdd", [f"a_{t}", "s3", f"za_{t}", f"b_{t}", "s2",
                                                  f"zb_{t}", "s2", f"zc_{t}"], [f"add_{t}"],
                                   domain=MS),
                  helper.make_node("QLinearMul", [f"p_{t}", "s2", f"za_{t}", f"q_{t}", "s3",
                                                  f"zb_{t}", "s4", f"zc_{t}"], [f"mul_{t}"],
                                   domain=MS)]
        exact[f"add_{t}"] = da * 0.5 + db + int(zc)
        exact[f"mul_{t}"] = dp * dq * 0.5 + int(zc)
        outs.update({f"add_{t}": dt, f"mul_{t}": dt})
    inits.update({"s2": F32(2.0**-2), "s3": F32(2.0**-3), "s4": F32(2.0**-4)})
    graph, got, want = run_both(make_model(nodes, feeds, inits, outs), feeds, tmp_path)
    assert kinds(graph).count(OpKind.QADD) == 2 and kinds(graph).count(OpKind.QMUL) == 2
    for out, ex in exact.items():  # the zero point is in ``fixed``: added before rounding
        assert_half_even_ties(ex, 0, want[out], got[out], out)


# ------------------------------------------------------------------------------ pooling


def test_qlinear_average_pool_ties(tmp_path: Path) -> None:
    """QLinearAveragePool 2x2, stride 1, padding 1, with x_scale = y_scale: window sums
    over 1, 2 or 4 taps (count_include_pad=0, uint8) or always over 4 (=1, int8); the
    zero point is added in float before rounding."""
    rng = np.random.default_rng(264)
    nodes, inits, feeds, exact, outs = [], {"s": F32(2.0**-3)}, {}, {}, {}
    for dt, xz, yz, cip in ((U8, 129, 126, 0), (S8, -3, 7, 1)):
        t = np.dtype(dt).name
        x = (rng.integers(-40, 41, (1, 4, 6, 6)) + xz).astype(dt)
        feeds[f"x_{t}"] = x
        inits.update({f"xz_{t}": dt(xz), f"yz_{t}": dt(yz)})
        nodes.append(helper.make_node(
            "QLinearAveragePool", [f"x_{t}", "s", f"xz_{t}", "s", f"yz_{t}"], [f"y_{t}"],
            domain=MS, kernel_shape=[2, 2], strides=[1, 1], pads=[1, 1, 1, 1],
            count_include_pad=cip))
        d = np.pad(x.astype(np.int64) - xz, ((0, 0), (0, 0), (1, 1), (1, 1)))
        ones = np.pad(np.ones((6, 6)), 1)
        sums = d[..., :-1, :-1] + d[..., 1:, :-1] + d[..., :-1, 1:] + d[..., 1:, 1:]
        count = 4.0 if cip else ones[:-1, :-1] + ones[1:, :-1] + ones[:-1, 1:] + ones[1:, 1:]
        exact[f"y_{t}"] = sums / count + yz
        outs[f"y_{t}"] = dt
    graph, got, want = run_both(make_model(nodes, feeds, inits, outs), feeds, tmp_path)
    assert kinds(graph).count(OpKind.QAVGPOOL) == 2
    for out, ex in exact.items():
        assert_half_even_ties(ex, 0, want[out], got[out], out)


@pytest.mark.parametrize("blocked", (False, True), ids=("plain", "blocked"))
def test_qlinear_global_average_pool_ties(blocked: bool, tmp_path: Path) -> None:
    """QLinearGlobalAveragePool over 2x2 images with x_scale / (y_scale * 4) = 1/2: ties
    where the sum is odd. ``plain``: on graph inputs (uint8 and int8); ``blocked``: on a
    QLinearConv's channel-blocked output (the NCHW16c/8c kernel), whose bytes (also an
    output) give the exact sums."""
    rng = np.random.default_rng(265)
    gs = F32(2.0**-5)  # the pool's y_scale; its x_scale is 2^-4 (YS)
    if not blocked:
        nodes, inits, feeds, exact, outs = [], {"xs": YS, "ys": gs}, {}, {}, {}
        for dt, xz, yz in ((U8, 128, 119), (S8, -4, 5)):
            t = np.dtype(dt).name
            x = (rng.integers(-40, 41, (2, 12, 2, 2)) + xz).astype(dt)
            feeds[f"x_{t}"] = x
            inits.update({f"xz_{t}": dt(xz), f"yz_{t}": dt(yz)})
            nodes.append(helper.make_node("QLinearGlobalAveragePool",
                                          [f"x_{t}", "xs", f"xz_{t}", "ys", f"yz_{t}"],
                                          [f"y_{t}"], domain=MS))
            exact[f"y_{t}"] = (x.astype(np.int64) - xz).sum(axis=(2, 3), keepdims=True) * 0.5
            outs[f"y_{t}"] = dt
        graph, got, want = run_both(make_model(nodes, feeds, inits, outs), feeds, tmp_path)
        for out, ex in exact.items():
            zp = 119 if out == "y_uint8" else 5
            assert_half_even_ties(ex, zp, want[out], got[out], out)
        return
    xz, cz, yz = U8(130), U8(100), U8(117)
    x = (rng.integers(-6, 7, (4, 8, 2, 2)) + int(xz)).astype(U8)
    p = _conv_params(rng, 8, 20, 1, False)
    inits = {"xs": XS, "xz": xz, "w": p["w"], "ws": p["ws"], "wz": p["wz"], "cs": YS,
             "cz": cz, "b": p["b"], "ys": gs, "yz": yz}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "cs", "cz",
                                              "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("QLinearGlobalAveragePool", ["c", "cs", "cz", "ys", "yz"], ["y"],
                              domain=MS)]
    model = make_model(nodes, {"x": x}, inits, {"c": U8, "y": U8})
    graph, got, want = run_both(model, {"x": x}, tmp_path)
    pools = ops_of(graph, OpKind.QGLOBAL_AVGPOOL)
    assert len(pools) == 1 and pools[0].block > 0, "the pool does not read blocked channels"
    np.testing.assert_array_equal(got["c"], want["c"])
    exact = (want["c"].astype(np.int64) - int(cz)).sum(axis=(2, 3), keepdims=True) * 0.5
    assert_half_even_ties(exact, int(yz), want["y"], got["y"], "blocked global pool")


# -------------------------------------------------------- requantize (QLinearConcat), Q


def test_qlinear_concat_requantize_ties(tmp_path: Path) -> None:
    """QLinearConcat of inputs with scales 2^-3 and 2^-4 into 2^-2: each input becomes a
    requantize op (``Q(DQ(x))``) halving or quartering ``x - zp``, uint8 and int8."""
    rng = np.random.default_rng(266)
    nodes, inits, feeds, outs = [], {}, {}, {}
    exact: dict[str, tuple[np.ndarray, int]] = {}
    for dt, za, zb, yz in ((U8, 128, 140, 126), (S8, -7, 10, 1)):
        t = np.dtype(dt).name
        a = (rng.integers(-100, 101, (1, 4, 5, 5)) + za).astype(dt)
        b = (rng.integers(-100, 101, (1, 3, 5, 5)) + zb).astype(dt)
        feeds.update({f"a_{t}": a, f"b_{t}": b})
        inits.update({f"za_{t}": dt(za), f"zb_{t}": dt(zb), f"yz_{t}": dt(yz)})
        nodes.append(helper.make_node(
            "QLinearConcat", ["s2", f"yz_{t}", f"a_{t}", "s3", f"za_{t}", f"b_{t}", "s4",
                              f"zb_{t}"], [f"y_{t}"], domain=MS, axis=1))
        ex = np.concatenate([(a.astype(np.int64) - za) / 2, (b.astype(np.int64) - zb) / 4], 1)
        exact[f"y_{t}"] = (ex, yz)
        outs[f"y_{t}"] = dt
    inits.update({"s2": F32(2.0**-2), "s3": F32(2.0**-3), "s4": F32(2.0**-4)})
    graph, got, want = run_both(make_model(nodes, feeds, inits, outs), feeds, tmp_path)
    # one per input (int8 may add one back from uint8 at the output: unsign-activations)
    assert kinds(graph).count(OpKind.REQUANTIZE) >= 4
    for out, (ex, zp) in exact.items():
        assert_half_even_ties(ex, zp, want[out], got[out], out)


def test_quantize_linear_ties(tmp_path: Path) -> None:
    """QuantizeLinear of x = n * 2^-4: per tensor by 2^-3 (uint8; ties where n is odd),
    by 2^-2 (int8; n = 2 mod 4), and per channel by 2^-3 / 2^-2 / 2^-1 (int8)."""
    rng = np.random.default_rng(267)
    x = (rng.integers(-200, 201, (2, 4, 6, 5)) * 2.0**-4).astype(F32)
    cs = np.array([2.0**-3, 2.0**-2, 2.0**-3, 2.0**-1], F32)
    cz = np.array([0, 5, -7, 2], S8)
    inits = {"s3": F32(2.0**-3), "s2": F32(2.0**-2), "zu": U8(128), "zs": S8(-3), "cs": cs,
             "cz": cz}
    nodes = [helper.make_node("QuantizeLinear", ["x", "s3", "zu"], ["y_u"]),
             helper.make_node("QuantizeLinear", ["x", "s2", "zs"], ["y_s"]),
             helper.make_node("QuantizeLinear", ["x", "cs", "cz"], ["y_c"], axis=1)]
    model = make_model(nodes, {"x": x}, inits, {"y_u": U8, "y_s": S8, "y_c": S8})
    graph, got, want = run_both(model, {"x": x}, tmp_path)
    assert kinds(graph).count(OpKind.QUANTIZE) == 3
    x64 = x.astype(np.float64)
    assert_half_even_ties(x64 / 2.0**-3, 128, want["y_u"], got["y_u"], "per tensor, uint8")
    assert_half_even_ties(x64 / 2.0**-2, -3, want["y_s"], got["y_s"], "per tensor, int8")
    assert_half_even_ties(x64 / per_channel(cs), per_channel(cz).astype(np.int64),
                          want["y_c"], got["y_c"], "per channel")


# ----------------------------------------------------------------------------- QLinearSoftmax


def test_qlinear_softmax_ties(tmp_path: Path) -> None:
    """QLinearSoftmax rows of 8 with two maxima and six entries at least 100 steps below
    (x_scale 0.3: ``exp(-30)`` relative, far below half an ulp of any partial sum, in any
    summation order): each maximum gets ``f32(f32(E * inv) / 2E) = inv / 2`` exactly for
    an odd ``inv = floor(1 / y_scale)`` (253 and 117: 126.5 and 58.5), the others 0."""
    rng = np.random.default_rng(268)
    d, rows, xs = 8, 48, 0.3
    nodes, inits, feeds, outs = [], {"xs": F32(xs)}, {}, {}
    cases = ((U8, 253, 0), (S8, 117, -20))
    for dt, inv, yz in cases:
        t = np.dtype(dt).name
        top = int(np.iinfo(dt).max)
        x = (top - rng.integers(100, 131, (rows, d))).astype(dt)
        for r in range(rows):
            x[r, rng.choice(d, 2, replace=False)] = top
        feeds[f"x_{t}"] = x
        inits.update({f"xz_{t}": dt(0), f"ys_{t}": F32(1 / (inv + 0.5)), f"yz_{t}": dt(yz)})
        nodes.append(helper.make_node("QLinearSoftmax", [f"x_{t}", "xs", f"xz_{t}", f"ys_{t}",
                                                         f"yz_{t}"], [f"y_{t}"], domain=MS,
                                      axis=-1, opset=13))
        outs[f"y_{t}"] = dt
    graph, got, want = run_both(make_model(nodes, feeds, inits, outs), feeds, tmp_path)
    assert kinds(graph).count(OpKind.QSOFTMAX) == 2
    for dt, inv, yz in cases:
        t = np.dtype(dt).name
        x = feeds[f"x_{t}"]
        assert np.floor(F32(1) / F32(1 / (inv + 0.5))) == inv
        # the kernel's float32 arithmetic (onnxruntime's table, sum in index order)
        table = qlinear_softmax_table(xs, d, dt == S8)
        e = table[(x.astype(np.int64) - x.max(axis=1, keepdims=True) + np.iinfo(dt).max) & 0xFF]
        total = np.zeros(rows, F32)
        for k in range(d):
            total = (total + e[:, k]).astype(F32)
        v = ((e * F32(inv)).astype(F32) / total[:, None]).astype(F32)
        exact = np.where(x == np.iinfo(dt).max, inv / 2, 0.0)
        assert np.array_equal(np.rint(v), np.rint(exact)) and np.array_equal(
            v[exact > 0], exact[exact > 0]), "the maxima's quotients are not exact ties"
        assert_half_even_ties(exact, yz, want[f"y_{t}"], got[f"y_{t}"], f"softmax {t}")
