"""Winograd 3x3 convolutions (select-winograd + emit/conv/winograd.py) against onnxruntime.

The kernel only runs on channel-blocked inputs, so every model here puts a 1x1 conv in
front of the 3x3 one. Both tile sizes are forced in turn (the cost model alone would
pick F(4x4) for most shapes), over odd sizes that leave partial tiles, asymmetric pads,
channel counts that are not multiples of the block, fused activations, 1 and 2
threads, the generic (8-wide) target, and a Fire module whose expand convs write into
a concat slice. Tolerance: the float32 one (1e-4 x max|ref|), like every other op.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand
from sqz_testing import assert_close, model_path, ort_run

import sqzc
import sqzc.driver as driver
from sqzc.driver import CompileOptions
from sqzc.ir_text import print_ir
from sqzc.ops import ConvAttrs

# the module, not the pass function that sqzc.passes re-exports under the same name
select = importlib.import_module("sqzc.passes.select_winograd")


def blocked_3x3(c_in: int, c_mid: int, c_out: int, hw: tuple[int, int],
                pads: list[int], act: str | None = "Relu", seed: int = 0) -> object:
    """x -> 1x1 conv (so the 3x3 conv reads a blocked tensor) -> 3x3 conv [-> act]."""
    nodes = [helper.make_node("Conv", ["x", "W0"], ["t"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["t", "W", "B"], ["c" if act else "y"],
                              kernel_shape=[3, 3], pads=pads)]
    if act == "Relu":
        nodes.append(helper.make_node("Relu", ["c"], ["y"]))
    elif act == "LeakyRelu":
        nodes.append(helper.make_node("LeakyRelu", ["c"], ["y"], alpha=0.1))
    elif act == "Clip":
        nodes.append(helper.make_node("Clip", ["c", "lo", "hi"], ["y"]))
    inits = [init("W0", rand((c_mid, c_in, 1, 1), seed, 0.5)),
             init("W", rand((c_out, c_mid, 3, 3), seed + 1, 0.3)),
             init("B", rand((c_out,), seed + 2)),
             init("lo", np.float32(-0.5)), init("hi", np.float32(1.5))]
    return make_model(nodes, {"x": [1, c_in, *hw]}, ["y"], inits)


@pytest.fixture(params=[2, 4], ids=["F2x2", "F4x4"])
def forced_tile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Make select-winograd choose F(m x m, 3x3) for every eligible conv."""
    monkeypatch.setattr(select, "choose_tile", lambda geo: request.param)
    yield request.param


def _compile(model: object, tmp: Path, **kw: object) -> tuple[sqzc.CompiledModel, list[int]]:
    path = model_path(model, tmp)
    lib = tmp / f"lib{len(list(tmp.glob('lib*.so')))}.so"
    result = sqzc.compile(path, lib, CompileOptions(verify_ir=True, **kw))  # type: ignore[arg-type]
    tiles = [result.graph.op(n).attrs.winograd for n in result.graph.nodes()
             if isinstance(result.graph.op(n).attrs, ConvAttrs)]
    return sqzc.load(lib, threads=1), tiles


def _check(model: object, tmp: Path, threads: tuple[int, ...] = (1, 2), seed: int = 0,
           **kw: object) -> list[int]:
    m, tiles = _compile(model, tmp, **kw)
    x = np.random.default_rng(seed).standard_normal(m.input_specs[0].shape).astype(np.float32)
    want = ort_run(model, {"x": x})[0]  # type: ignore[arg-type]
    outs = []
    for t in threads:
        got = sqzc.load(m.path, threads=t)(x)
        assert_close(got, want)
        outs.append(got.tobytes())
    assert all(o == outs[0] for o in outs), "results depend on the thread count"
    return tiles


@pytest.mark.parametrize("hw", [(1, 1), (2, 3), (5, 5), (7, 9), (13, 13), (16, 16), (23, 17)],
                         ids=str)
def test_sizes_and_partial_tiles(forced_tile: int, hw: tuple[int, int], tmp_path: Path) -> None:
    tiles = _check(blocked_3x3(3, 16, 32, hw, [1, 1, 1, 1]), tmp_path)
    assert tiles == [0, forced_tile]


@pytest.mark.parametrize("pads", [[0, 0, 0, 0], [0, 1, 2, 0], [2, 0, 0, 1], [2, 2, 2, 2]],
                         ids=str)
def test_pads(forced_tile: int, pads: list[int], tmp_path: Path) -> None:
    tiles = _check(blocked_3x3(4, 16, 16, (9, 10), pads), tmp_path)
    assert tiles == [0, forced_tile]


@pytest.mark.parametrize("c_mid,c_out", [(5, 7), (17, 33), (40, 64), (64, 48)], ids=str)
def test_channel_counts(forced_tile: int, c_mid: int, c_out: int, tmp_path: Path) -> None:
    tiles = _check(blocked_3x3(3, c_mid, c_out, (11, 12), [1, 1, 1, 1]), tmp_path)
    assert tiles == [0, forced_tile]


@pytest.mark.parametrize("act", [None, "LeakyRelu", "Clip"])
def test_fused_activations(forced_tile: int, act: str | None, tmp_path: Path) -> None:
    tiles = _check(blocked_3x3(3, 16, 20, (8, 8), [1, 1, 1, 1], act=act), tmp_path)
    assert tiles == [0, forced_tile]


def test_generic_target(forced_tile: int, tmp_path: Path) -> None:
    """No AVX-512: 8-float blocks, baseline x86-64 code."""
    tiles = _check(blocked_3x3(3, 12, 20, (9, 7), [1, 1, 1, 1]), tmp_path,
                   target_cpu="generic")
    assert tiles == [0, forced_tile]


def fire(c_in: int, squeeze: int, expand: int, hw: int) -> object:
    """A Fire module: squeeze 1x1 -> (expand 1x1 | expand 3x3) -> concat."""
    nodes = [helper.make_node("Conv", ["x", "Ws", "Bs"], ["s0"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["s0"], ["s"]),
             helper.make_node("Conv", ["s", "We1", "Be1"], ["e1"], kernel_shape=[1, 1]),
             helper.make_node("Relu", ["e1"], ["r1"]),
             helper.make_node("Conv", ["s", "We3", "Be3"], ["e3"], kernel_shape=[3, 3],
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e3"], ["r3"]),
             helper.make_node("Concat", ["r1", "r3"], ["y"], axis=1)]
    inits = [init("Ws", rand((squeeze, c_in, 1, 1), 1, 0.3)), init("Bs", rand((squeeze,), 2)),
             init("We1", rand((expand, squeeze, 1, 1), 3, 0.3)), init("Be1", rand((expand,), 4)),
             init("We3", rand((expand, squeeze, 3, 3), 5, 0.2)), init("Be3", rand((expand,), 6))]
    return make_model(nodes, {"x": [1, c_in, hw, hw]}, ["y"], inits)


def test_fire_module_writes_into_the_concat_slice(forced_tile: int, tmp_path: Path) -> None:
    model = fire(32, 16, 64, 13)
    _, tiles = _compile(model, tmp_path)
    assert sorted(tiles) == [0, 0, forced_tile]
    _check(model, tmp_path)
    options = CompileOptions()
    graph = driver.load_graph(model_path(model, tmp_path), options)
    driver.optimize(graph, options)
    lines = [ln for ln in print_ir(graph).splitlines() if "winograd=" in ln]
    assert len(lines) == 1 and "into %" in lines[0], lines


def test_no_winograd_keeps_direct_convolution(tmp_path: Path) -> None:
    model = fire(32, 16, 64, 13)
    _, tiles = _compile(model, tmp_path, winograd=False)
    assert tiles == [0, 0, 0]
    _, tiles = _compile(model, tmp_path)
    assert any(tiles), "the cost model should pick Winograd for a 13x13 Fire expand"


def test_batch_of_three(forced_tile: int, tmp_path: Path) -> None:
    from onnx_builders import with_dynamic_batch

    model = with_dynamic_batch(blocked_3x3(3, 16, 32, (10, 11), [1, 1, 1, 1]))
    m, tiles = _compile(model, tmp_path)
    assert tiles == [0, forced_tile]
    x = np.random.default_rng(3).standard_normal((3, 3, 10, 11)).astype(np.float32)
    for t in (1, 2):
        assert_close(sqzc.load(m.path, threads=t)(x), ort_run(model, {"x": x})[0])  # type: ignore[arg-type]


@pytest.mark.parametrize("channels, size, tile", [
    (64, 56, 4),    # ResNet-18 layer1: 0.6 MB of F(4x4) weights stay in cache
    (64, 13, 4),    # SqueezeNet fire9's expand (64 -> 256 below): 2.4 MB
    (256, 14, 2),   # layer3: F(4x4)'s 9.4 MB would stream 4 times; F(2x2)'s 4 MB fit
    (512, 7, 0),    # layer4: 37.7 MB of F(4x4) weights twice, against 9.4 MB once direct
])
def test_winograd_is_chosen_only_while_its_weights_stay_cached(channels: int, size: int,
                                                                tile: int) -> None:
    """The cost model counts weight traffic: Winograd re-reads its transformed weights
    once per row of tiles, so on deep, small maps (ResNet's last stages) direct wins."""
    from sqzc.winograd import ConvGeometry, choose_tile

    out = 256 if channels == 64 and size == 13 else channels
    assert choose_tile(ConvGeometry(channels, out, size, size, 16)) == tile
