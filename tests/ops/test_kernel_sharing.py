"""Kernels shared across layers that differ only in run-time extents (issue 21's size work).

Winograd convs of one spatial geometry share one ``ks_`` function whatever their channel
counts (``winograd_sharing`` in emit/conv/winograd.py): SqueezeNet 1.0's fire5, fire6/7
and fire8 run one function. These tests build a chain of 3x3 convs at one spatial size
with different channel counts and check:

* which layers share (the output-channel block count modulo the register tile's blocks
  is structure, so it splits groups);
* the outputs against onnxruntime (float32 tolerance), at 1 and 2 threads, both tiles;
* bit identity with a build where nothing is shared (the same arithmetic, only the
  extents become arguments), on the AVX-512 host and the 8-float generic target.
"""

from __future__ import annotations

import importlib
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand
from sqz_testing import assert_close, model_path, ort_run

import sqzc
from sqzc.backends.llvm.emit import registry
from sqzc.backends.llvm.target import resolve_target
from sqzc.driver import CompileOptions

select = importlib.import_module("sqzc.passes.select_winograd")


def conv_chain(channels: list[int], hw: tuple[int, int], seed: int = 0,
               pads: list[int] | None = None) -> object:
    """x -> 1x1 conv -> 3x3 conv (Relu) -> 3x3 conv (Relu) -> ...: with the default
    ``pads`` (1 each) every 3x3 conv has the same spatial size, and its own channels."""
    nodes = [helper.make_node("Conv", ["x", "W0"], ["t0"], kernel_shape=[1, 1])]
    inits = [init("W0", rand((channels[0], 3, 1, 1), seed, 0.5))]
    for i, (c_in, c_out) in enumerate(zip(channels, channels[1:])):
        p = 1 if pads is None else pads[i]
        nodes += [helper.make_node("Conv", [f"t{i}", f"W{i + 1}", f"B{i + 1}"], [f"c{i + 1}"],
                                   kernel_shape=[3, 3], pads=[p] * 4),
                  helper.make_node("Relu", [f"c{i + 1}"],
                                   ["y" if i + 2 == len(channels) else f"t{i + 1}"])]
        inits += [init(f"W{i + 1}", rand((c_out, c_in, 3, 3), seed + i + 1, 0.6 / c_in ** 0.5)),
                  init(f"B{i + 1}", rand((c_out,), seed + 50 + i, 0.1))]
    return make_model(nodes, {"x": [1, 3, *hw]}, ["y"], inits)


#: 16 -> 32 -> 64 -> 48 -> 40: on 16-float blocks with 2-block register tiles, the first
#: two 3x3 convs (2 and 4 output blocks) share; 48 and 40 (3 blocks each, one padded)
#: share another function.
CHANNELS = [16, 32, 64, 48, 40]


@pytest.fixture(params=[2, 4], ids=["F2x2", "F4x4"])
def forced_tile(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    monkeypatch.setattr(select, "choose_tile", lambda geo: request.param)
    yield request.param


def _build(tmp: Path, name: str, target_cpu: str = "host", **kw: object) -> Path:
    lib = tmp / f"{name}.so"
    sqzc.compile(model_path(conv_chain(CHANNELS, (11, 13)), tmp), lib,
                 CompileOptions(verify_ir=True, target_cpu=target_cpu, **kw))  # type: ignore[arg-type]
    return lib


def _functions(tmp: Path, target_cpu: str) -> list[str]:
    out = tmp / f"m-{target_cpu}.ll"
    sqzc.compile(model_path(conv_chain(CHANNELS, (11, 13)), tmp), out,
                 CompileOptions(emit="llvm", target_cpu=target_cpu))
    return re.findall(r"define internal void @\"?(k_\w+|ks_\w+)", out.read_text())


DEFINED_SHARED = r"define internal void @\"?ks_"


def test_convs_of_one_geometry_share_a_kernel(forced_tile: int, tmp_path: Path) -> None:
    """As many ``ks_`` functions as classes of (output blocks mod the tile's blocks) with
    two or more convs; on 16-float blocks with 2-block tiles that is 2."""
    target = resolve_target("host")
    block = target.vector_width
    jmax = target.winograd_tile(block).blocks
    classes = Counter((-(-c // block) % jmax, -(-c // block) >= jmax) for c in CHANNELS[1:])
    fns = _functions(tmp_path, "host")
    shared = [f for f in fns if f.startswith("ks_")]
    assert len(shared) == sum(1 for n in classes.values() if n > 1), fns
    assert shared


def test_nothing_shared_across_spatial_sizes(tmp_path: Path) -> None:
    """The spatial geometry is structure: an unpadded 3x3 conv (11x13 -> 9x11) and a
    padded one after it (9x11) with equal channels get a function each."""
    out = tmp_path / "m.ll"
    result = sqzc.compile(model_path(conv_chain([16, 32, 32], (11, 13), pads=[0, 1]), tmp_path),
                          out, CompileOptions(emit="llvm"))
    winograd = [n for n in result.graph.nodes()
                if getattr(result.graph.op(n).attrs, "winograd", 0)]
    assert len(winograd) == 2
    assert not re.findall(DEFINED_SHARED, out.read_text())


@pytest.mark.parametrize("target_cpu", ["host", "generic"])
def test_shared_kernels_match_onnxruntime_and_unshared_bits(
        forced_tile: int, target_cpu: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    shared_lib = _build(tmp_path, "shared", target_cpu)
    monkeypatch.setattr(registry, "SHARING", {})
    alone_lib = _build(tmp_path, "alone", target_cpu)
    assert not [f for f in _functions(tmp_path, target_cpu) if f.startswith("ks_")]
    x = np.random.default_rng(3).standard_normal((1, 3, 11, 13)).astype(np.float32)
    want = ort_run(conv_chain(CHANNELS, (11, 13)), {"x": x})[0]  # type: ignore[arg-type]
    alone = sqzc.load(alone_lib, threads=1)(x)
    for threads in (1, 2):
        got = sqzc.load(shared_lib, threads=threads)(x)
        assert_close(got, want)
        assert got.tobytes() == alone.tobytes()
