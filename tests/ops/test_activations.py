"""Float activations against onnxruntime, one table, every path an activation can take.

Each row of ``ACTIVATIONS`` (an ONNX op, its attribute variant, its opset) is run:

1. standalone on a 2-D and a 4-D graph input (the plain elementwise kernel);
2. after a Conv at -O1 (plain direct conv, activation fused as the conv's epilogue);
3. after a Conv at -O3 (channel-blocked conv, activation fused);
4. after a 3x3 stride-1 pad-1 Conv at -O3 that select-winograd rewrites (fused into the
   Winograd output transform);
5. after Conv -> MaxPool at -O3 (nothing to fuse into: a standalone op on a blocked
   tensor);
6. standalone on special values (NaN, +-inf, +-0, denormals, +-1e30, +-FLT_MAX and each
   row's kinks with their float32 neighbours);
7. with a symbolic batch dim, run at batch 3 (standalone and fused after a Conv).

Where a path is claimed (fused, blocked, Winograd, plain), the IR dump of the very
compilation that produced the tested library says so: a wrong fusion or layout decision
can still produce right numbers through a fallback, and then the path the test names is
not the one it tests.

Tolerances (float32):

* After a Conv: ``sqz_testing``'s float32 bound, ``max |sqzc - ort| <= RTOL_F32 (1e-4) x
  max|ort| + ATOL_F32 (1e-6)``; the conv's summation order differs from onnxruntime's
  and dominates any activation rounding.
* Standalone (and the special values, element by element with ``equal_nan``):
  per row, ``Act.rtol``/``Act.atol``:

  - Relu, LeakyRelu, Clip: exact, bit for bit including the sign of zero (each element
    is one IEEE max/min/multiply, so there is nothing to round differently);
  - Sigmoid, HardSigmoid, HardSwish: exact too, because sqzc computes them in
    onnxruntime's order: MLAS's logistic (a rational approximation up to 1.7e-7 off the
    true value, exactly 0 below about -17) with fused multiply-adds, ``alpha * x +
    beta`` rounded twice, ``x * HardSigmoid(x, 1/6, 0.5)`` (``x * relu6(x + 3) / 6``
    would overflow to inf at FLT_MAX, and differ by an ulp elsewhere). On a host
    without FMA, Sigmoid gets ``atol = 2**-22`` (4 ulps at 1.0; relative error is
    meaningless in the tails). HardSwish(-inf) is NaN (-inf * 0) in the spec and in
    onnxruntime.

Inputs come from fixed seeds; sizes are small (the default test tier is near its time
budget) and odd, so vector kernels also run their scalar tails.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand, with_dynamic_batch
from sqz_testing import assert_close, model_path, ort_run

import sqzc
from sqzc.backends.llvm.target import host_target
from sqzc.driver import CompileOptions
from sqzc.ir_text import print_ir

#: The name every activation node gets: its origin in the IR dump (``# conv+act``) shows
#: where it went, whatever sqzc calls the activation in its own attributes.
ACT_NODE = "act"

EXACT = (0.0, 0.0)


@dataclass(frozen=True)
class Act:
    """One row of the table: how to build the activation node and how close to
    onnxruntime it must be."""

    op: str
    opset: int
    attrs: Mapping[str, float] = field(default_factory=dict)
    #: Clip's bounds, given as constant inputs (opset >= 11 form: PyTorch ReLU6)
    clip: tuple[float, float] | None = None
    #: points where the function changes formula; tested with their float32 neighbours
    kinks: tuple[float, ...] = ()
    rtol: float = 0.0
    atol: float = 0.0
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.op}{'-' + self.label if self.label else ''}-op{self.opset}"

    @property
    def exact(self) -> bool:
        return (self.rtol, self.atol) == EXACT

    def node(self, src: str, dst: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
        """The activation node reading ``src`` and writing ``dst`` (named ``ACT_NODE``),
        with the initializers it needs."""
        if self.clip is None:
            return helper.make_node(self.op, [src], [dst], name=ACT_NODE, **self.attrs), []
        lo, hi = self.clip
        inits = [init("clip_lo", np.array(lo, np.float32)),
                 init("clip_hi", np.array(hi, np.float32))]
        return helper.make_node(self.op, [src, "clip_lo", "clip_hi"], [dst], name=ACT_NODE,
                                **self.attrs), inits


#: sqzc follows onnxruntime's operation order for all three (MLAS's logistic with fused
#: multiply-adds; HardSigmoid's multiply and add rounded separately; HardSwish as
#: x * HardSigmoid(x, 1/6, 0.5)), so standalone results are bit-exact. Only a host
#: without FMA (where sqzc's logistic multiplies and adds) gets Sigmoid's bound.
SIGMOID_TOL = EXACT if host_target().has_fma else (0.0, 2.0 ** -22)
HARD_SIGMOID_TOL = EXACT
HARD_SWISH_TOL = EXACT

ACTIVATIONS: list[Act] = [
    Act("Relu", 14, kinks=(0.0,)),
    Act("LeakyRelu", 16, kinks=(0.0,), label="default"),
    Act("LeakyRelu", 16, {"alpha": 0.3}, kinks=(0.0,), label="a0.3"),
    Act("Clip", 13, clip=(0.0, 6.0), kinks=(0.0, 6.0), label="0,6"),
    Act("Sigmoid", 13, kinks=(0.0, -17.0, -18.0, 18.0, -88.0, 88.0, 89.0, -104.0),
        rtol=SIGMOID_TOL[0], atol=SIGMOID_TOL[1]),
    *[Act("HardSigmoid", opset, attrs, kinks=kinks, rtol=HARD_SIGMOID_TOL[0],
          atol=HARD_SIGMOID_TOL[1], label=label)
      for opset in (6, 22)
      for attrs, kinks, label in (({}, (-2.5, 2.5), "default"),
                                  ({"alpha": 0.3, "beta": 0.4}, (-4 / 3, 2.0), "a0.3b0.4"))],
    *[Act("HardSwish", opset, kinks=(-3.0, 3.0), rtol=HARD_SWISH_TOL[0],
          atol=HARD_SWISH_TOL[1]) for opset in (14, 22)],
]

assert len({a.id for a in ACTIVATIONS}) == len(ACTIVATIONS), "duplicate row ids"

ACTIVE = [pytest.param(a, id=a.id) for a in ACTIVATIONS]


# ---------------------------------------------------------------- models


def conv_act(act: Act, c_in: int = 3, c_out: int = 12, hw: tuple[int, int] = (7, 9),
             pool: bool = False, seed: int = 1) -> onnx.ModelProto:
    """x -> Conv 3x3 pad 1 (c_out = 12: not a multiple of any channel block, so blocked
    layouts have padding lanes) [-> MaxPool 2x2/2] -> act."""
    inits = [init("W", rand((c_out, c_in, 3, 3), seed, 0.5)), init("B", rand((c_out,), seed + 1))]
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["c"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    src = "c"
    if pool:
        nodes.append(helper.make_node("MaxPool", ["c"], ["p"], kernel_shape=[2, 2],
                                      strides=[2, 2]))
        src = "p"
    node, extra = act.node(src, "y")
    return make_model([*nodes, node], {"x": [1, c_in, *hw]}, ["y"], inits + extra, act.opset)


def winograd_act(act: Act, c_in: int = 3, c_mid: int = 16, c_out: int = 16,
                 hw: tuple[int, int] = (8, 8), seed: int = 3) -> onnx.ModelProto:
    """x -> 1x1 Conv -> 3x3 stride-1 pad-1 Conv -> act.

    The 1x1 conv is there because select-winograd takes only convs reading a
    channel-blocked tensor (a graph input is plain). 16 -> 16 channels at 8x8 is where
    ``winograd.choose_tile`` picks F(4x4) with both 8- and 16-float blocks (its cost
    model, not a monkeypatch, as a user's compile would)."""
    inits = [init("W0", rand((c_mid, c_in, 1, 1), seed, 0.5)),
             init("W", rand((c_out, c_mid, 3, 3), seed + 1, 0.3)),
             init("B", rand((c_out,), seed + 2))]
    nodes = [helper.make_node("Conv", ["x", "W0"], ["t"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["t", "W", "B"], ["c"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1])]
    node, extra = act.node("c", "y")
    return make_model([*nodes, node], {"x": [1, c_in, *hw]}, ["y"], inits + extra, act.opset)


def standalone(act: Act, shape: Sequence[int | str]) -> onnx.ModelProto:
    """The activation alone on a graph input."""
    node, extra = act.node("x", "y")
    return make_model([node], {"x": list(shape)}, ["y"], extra, act.opset)


# ---------------------------------------------------------------- compile, run, dump


@dataclass(frozen=True)
class DumpNode:
    """One compute line of sqzc's IR dump (``%c = conv(%x, ...) {...} : f32[..] nchw16c
    # origin``)."""

    name: str
    kind: str
    attrs: str
    layout: str
    origin: tuple[str, ...]

    @property
    def blocked(self) -> bool:
        return re.fullmatch(r"nchw\d+c", self.layout) is not None

    def has_activation(self) -> bool:
        """Carries a fused activation epilogue (``act=...``; absent or ``none`` = none)."""
        return re.search(r"(?:^|, )act=(?!none\b)", self.attrs) is not None


_LINE = re.compile(r"^%(?P<name>\S+) = (?P<kind>\w+)\([^)]*\)(?: \{(?P<attrs>.*)\})? : "
                   r"(?P<type>\S+)(?: (?P<layout>\w+))?(?:  # (?P<origin>.*))?$")


def parse_dump(text: str) -> list[DumpNode]:
    """The compute nodes of a dump (constants have no parenthesized operands and no
    origin; they are not needed here)."""
    nodes = []
    for line in text.splitlines():
        m = _LINE.match(line)
        if m and m["kind"] not in ("const", "input"):
            nodes.append(DumpNode(m["name"], m["kind"], m["attrs"] or "", m["layout"] or "",
                                  tuple((m["origin"] or "").split("+"))))
    return nodes


def compile_with_dump(model: onnx.ModelProto, tmp: Path, opt_level: int = 3
                      ) -> tuple[sqzc.CompiledModel, str]:
    """Compile (IR verified after every pass) and load; also return the IR dump of the
    graph that compilation produced, so the assertions about the path are about the
    library that is run, not about a second pipeline run."""
    lib = tmp / f"lib-O{opt_level}-{len(list(tmp.glob('lib-*.so')))}.so"
    result = sqzc.compile(model_path(model, tmp), lib,
                          CompileOptions(opt_level=opt_level, verify_ir=True))
    return sqzc.load(lib), print_ir(result.graph)


def check_against_ort(lib: sqzc.CompiledModel, model: onnx.ModelProto,
                      feeds: Mapping[str, np.ndarray], rtol: float | None = None,
                      atol: float | None = None) -> None:
    """``assert_matches_ort`` on an already compiled library: shape, dtype, values."""
    got = lib.run(dict(feeds))
    want = ort_run(model, feeds)
    assert list(got) == [o.name for o in model.graph.output]
    for (name, g), w in zip(got.items(), want):
        assert_close(g, np.asarray(w), name, rtol, atol)


def activation_owner(dump: str) -> DumpNode:
    """The one node (reorders aside) that computes the activation, found by the ONNX
    node's name in its origin: the activation itself, or the conv it was fused into."""
    owners = [n for n in parse_dump(dump) if ACT_NODE in n.origin and n.kind != "reorder"]
    assert len(owners) == 1, f"expected one node computing the activation:\n{dump}"
    return owners[0]


def assert_fused_into_conv(dump: str, *, blocked: bool, winograd: bool = False) -> None:
    """The activation is the epilogue of the (last) conv, with the stated layout/kernel."""
    conv = activation_owner(dump)
    assert conv.kind == "conv", f"activation not fused into the conv:\n{dump}"
    assert conv.has_activation(), f"fused conv has no act= attribute:\n{dump}"
    assert conv.blocked == blocked and ("packed=" in conv.attrs) == blocked, \
        f"conv layout is not {'blocked' if blocked else 'plain'}:\n{dump}"
    assert (re.search(r"\bwinograd=[1-9]", conv.attrs) is not None) == winograd, \
        f"winograd {'not ' if winograd else ''}selected:\n{dump}"


# ---------------------------------------------------------------- 1. standalone


@pytest.mark.parametrize("act", ACTIVE)
@pytest.mark.parametrize("shape", [[3, 37], [2, 3, 5, 7]], ids=["2d", "4d"])
def test_standalone(act: Act, shape: list[int], tmp_path: Path) -> None:
    """The plain elementwise kernel (a graph input is never blocked), 2-D and 4-D, odd
    sizes; inputs scaled by 4 so every row's kinks (+-2.5, +-3, 6) are straddled."""
    model = standalone(act, shape)
    lib, dump = compile_with_dump(model, tmp_path)
    node = activation_owner(dump)
    assert node.kind != "conv" and not node.blocked, dump
    check_against_ort(lib, model, {"x": rand(shape, 11, 4.0)}, act.rtol, act.atol)


# ---------------------------------------------------------------- 2-4. fused into a conv


@pytest.mark.parametrize("opt_level, blocked", [(1, False), (3, True)],
                         ids=["O1-plain", "O3-blocked"])
@pytest.mark.parametrize("act", ACTIVE)
def test_conv_act_fused(act: Act, opt_level: int, blocked: bool, tmp_path: Path) -> None:
    """-O1 runs fuse-conv-activation but not assign-layout: a plain direct conv with the
    activation as its epilogue. -O3: packed weights, NCHW[b]c output with padding lanes
    (12 channels), the activation fused, then a reorder back to NCHW for the output."""
    model = conv_act(act)
    lib, dump = compile_with_dump(model, tmp_path, opt_level=opt_level)
    assert_fused_into_conv(dump, blocked=blocked)
    check_against_ort(lib, model, {"x": rand((1, 3, 7, 9), 20 + (opt_level + 1) // 2, 2.0)})


@pytest.mark.parametrize("act", ACTIVE)
def test_conv_act_O3_winograd_fused(act: Act, tmp_path: Path) -> None:
    """-O3 on a 3x3 stride-1 pad-1 conv that the cost model sends to Winograd: the
    activation runs in the output transform's epilogue."""
    model = winograd_act(act)
    lib, dump = compile_with_dump(model, tmp_path, opt_level=3)
    assert_fused_into_conv(dump, blocked=True, winograd=True)
    check_against_ort(lib, model, {"x": rand((1, 3, 8, 8), 23, 2.0)})


# ---------------------------------------------------------------- 5. standalone, blocked


@pytest.mark.parametrize("act", ACTIVE)
def test_conv_maxpool_act_O3_blocked_standalone(act: Act, tmp_path: Path) -> None:
    """Conv -> MaxPool -> act: the pool stands between, so the activation is its own node,
    kept channel-blocked (the pool's output is) instead of reordered to plain first."""
    model = conv_act(act, hw=(8, 10), pool=True)
    lib, dump = compile_with_dump(model, tmp_path, opt_level=3)
    node = activation_owner(dump)
    assert node.kind not in ("conv", "maxpool"), f"activation fused somewhere:\n{dump}"
    assert node.blocked, f"standalone activation is not channel-blocked:\n{dump}"
    check_against_ort(lib, model, {"x": rand((1, 3, 8, 10), 24, 2.0)})


# ---------------------------------------------------------------- 6. special values


#: Values every activation must treat like onnxruntime: NaN, infinities, signed zeros,
#: denormals, the smallest normal, huge values (1e30 * alpha must not overflow; FLT_MAX
#: must not become inf through an x * (x + 3) spelling), and the usual kinks.
SPECIALS = (np.nan, -np.inf, np.inf, -0.0, 0.0, 1e-45, -1e-45, 1e-40, -1e-40,
            1.1754944e-38, -1.1754944e-38, 1e-30, -1e-30, 1e30, -1e30,
            3.4028235e38, -3.4028235e38, 0.5, -0.5, 1.0, -1.0, 2.5, -2.5, 3.0, -3.0,
            6.0, -6.0, 20.0, -20.0, 100.0, -100.0)


def special_input(act: Act) -> np.ndarray:
    """SPECIALS plus the row's kinks and their float32 neighbours, written both at the
    start and (reversed) at the end of a [2, n] tensor of seeded values, so they go
    through the vector loop and through its scalar tail."""
    kinks = np.array(act.kinks, np.float32)
    values = np.concatenate([np.array(SPECIALS, np.float32), kinks,
                             np.nextafter(kinks, np.float32(-np.inf)),
                             np.nextafter(kinks, np.float32(np.inf))]).astype(np.float32)
    cols = values.size + 5
    if (2 * cols) % 8 == 0:
        cols += 1
    x = rand((2, cols), 31, 4.0)
    flat = x.reshape(-1)
    flat[:values.size] = values
    flat[-values.size:] = values[::-1]
    return x


@pytest.mark.parametrize("act", ACTIVE)
def test_special_values(act: Act, tmp_path: Path) -> None:
    """Element by element: NaN where onnxruntime has NaN, the same infinities, finite
    values within the row's tolerance; the exact rows bit for bit (sign of zero too)."""
    x = special_input(act)
    model = standalone(act, x.shape)
    lib, _ = compile_with_dump(model, tmp_path)
    got = lib.run({"x": x})["y"]
    want = np.asarray(ort_run(model, {"x": x})[0])
    assert got.shape == want.shape and got.dtype == want.dtype
    bad = ~((got == want) | (np.isnan(got) & np.isnan(want)))
    detail = "\n".join(f"  x={x.flat[i]!r}: sqzc {got.flat[i]!r}, onnxruntime {want.flat[i]!r}"
                       for i in np.flatnonzero(bad)[:12])
    np.testing.assert_allclose(got, want, rtol=act.rtol, atol=act.atol, equal_nan=True,
                               err_msg=f"{act.id} on special values:\n{detail}")
    if act.exact:
        keep = ~np.isnan(want)
        np.testing.assert_array_equal(got[keep].view(np.uint32), want[keep].view(np.uint32),
                                      err_msg=f"{act.id}: not bit-identical:\n{detail}")


# ---------------------------------------------------------------- 7. dynamic batch


@pytest.mark.parametrize("act", ACTIVE)
@pytest.mark.parametrize("where", ["standalone", "after_conv"])
def test_dynamic_batch_3(act: Act, where: str, tmp_path: Path) -> None:
    """A symbolic leading dim (``dynamic_axes={'x': {0: 'N'}}``) run at batch 3, every
    sample different: standalone (its own tolerance) and fused after a blocked conv."""
    if where == "standalone":
        model = with_dynamic_batch(standalone(act, [1, 3, 5, 7]))
        x = rand((3, 3, 5, 7), 41, 4.0)
        tol: tuple[float | None, float | None] = (act.rtol, act.atol)
    else:
        model = with_dynamic_batch(conv_act(act))
        x = rand((3, 3, 7, 9), 42, 2.0)
        tol = (None, None)
    lib, dump = compile_with_dump(model, tmp_path)
    assert lib.input_specs[0].shape[0] is None and lib.output_specs[0].shape[0] is None
    if where == "after_conv":
        assert_fused_into_conv(dump, blocked=True)
    check_against_ort(lib, model, {"x": x}, *tol)


# ---------------------------------------------------------------- 8. QDQ groups

#: (row, the lookup-table op onnxruntime fuses ``DQ -> act -> Q`` into, or None when it
#: keeps the group float: HardSigmoid has no QLinear op, HardSwish becomes HardSigmoid + Mul)
QDQ_ROWS = [("Sigmoid", "QLinearSigmoid"), ("LeakyRelu", "QLinearLeakyRelu"),
            ("HardSigmoid", None), ("HardSwish", None)]


@pytest.mark.parametrize("dtype", [np.uint8, np.int8], ids=["u8", "s8"])
@pytest.mark.parametrize("op, qlinear", QDQ_ROWS, ids=[r[0] for r in QDQ_ROWS])
def test_qdq_group_is_bit_exact(op: str, qlinear: str | None, dtype: type,
                                tmp_path: Path) -> None:
    """``DQ -> act -> Q`` on every input byte: where onnxruntime fuses the group into its
    lookup-table op, sqzc folds it into the same table (``ORT_ACTIVATIONS``); where it
    keeps it float, sqzc's float activation rounds as onnxruntime's does. Either way the
    bytes agree."""
    from onnx import numpy_helper

    from sqz_testing import compile_beside_ort, ort_optimized_op_types

    t = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    zp = dtype(3 if dtype == np.uint8 else -5)
    inits = [numpy_helper.from_array(np.float32(0.043), "xs"), numpy_helper.from_array(zp, "xz"),
             numpy_helper.from_array(np.float32(0.0061), "ys"),
             numpy_helper.from_array(zp, "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node(op, ["xf"], ["o"]),
             helper.make_node("QuantizeLinear", ["o", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", t, [1, 2, 16, 8])],
                              [helper.make_tensor_value_info("y", t, [1, 2, 16, 8])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    result, lib, sess = compile_beside_ort(model, tmp_path)
    kinds = {result.graph.op(v).kind.value for v in result.graph.nodes()}
    ort_ops = ort_optimized_op_types(model, tmp_path, True)
    assert (qlinear in ort_ops) if qlinear else not any(o.startswith("QLinear") for o in ort_ops)
    assert ("lookup" in kinds) == (qlinear is not None), kinds
    x = np.arange(256, dtype=np.uint8).view(dtype).reshape(1, 2, 16, 8)
    np.testing.assert_array_equal(lib(x), sess.run(None, {"x": x})[0])
