"""``--optimize size``: float convs run one kernel with run-time geometry (issue 21, S7).

``select-compact-conv`` marks the packed float convs ``compact``; all of them with the
same activation and input layout share one ``ks_`` function (``compact_sharing`` in
emit/conv/compact.py) that takes every extent (channels, spatial sizes, kernel size,
strides, pads, dilations, operand strides) as an argument. One model here holds a 7x7
stride-2 first layer (plain input) and, on its blocked output, convs of many geometries:
1x1, 3x3 with and without padding, stride 2, 5x5 with dilation 2 and asymmetric pads,
pads wider than the kernel (output pixels that see only padding), a 1x3 kernel, and
output channels that fill neither a block nor a register tile. They all run the same
code, so an extent baked in as a constant breaks the others. Checked:

* the blocked-input convs share two ``ks_`` functions, one per activation (the first
  layer, alone with its plain input, gets its own kernel);
* bit identity with the speed build without Winograd (the same summation order), at 1
  and 2 threads, on the host (AVX-512 here) and the generic 8-float target;
* agreement with onnxruntime (float32 tolerance).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from onnx import helper
from onnx_builders import init, make_model, rand
from sqz_testing import assert_close, model_path, ort_run

import sqzc
from sqzc.driver import CompileOptions

#: (name, output channels, kernel, strides, pads (t, l, b, r), dilations) of the convs
#: reading the first layer's 12x10 output.
BRANCHES = [
    ("c3", 48, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    ("c1", 20, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    ("c3s2", 16, (3, 3), (2, 2), (0, 0, 0, 0), (1, 1)),
    ("c5d2", 100, (5, 5), (1, 1), (2, 1, 3, 0), (2, 2)),
    ("wide_pad", 33, (3, 3), (1, 2), (3, 4, 3, 4), (1, 1)),
    ("c13", 24, (1, 3), (1, 1), (0, 1, 0, 1), (1, 1)),
]
HW = (23, 19)


def compact_model(seed: int = 0) -> object:
    """x (1x3x23x19) -> 7x7/2 conv (40 channels) + Relu -> six convs of other geometries,
    each a graph output (Relu on every other one: the activation is structure, so the
    six share two kernels, one per activation)."""
    nodes = [helper.make_node("Conv", ["x", "W0", "B0"], ["c0"], kernel_shape=[7, 7],
                              strides=[2, 2], pads=[3, 3, 3, 3]),
             helper.make_node("Relu", ["c0"], ["t0"])]
    inits = [init("W0", rand((40, 3, 7, 7), seed, 0.1)), init("B0", rand((40,), seed + 1, 0.1))]
    for i, (name, oc, k, s, p, d) in enumerate(BRANCHES):
        relu = i % 2 == 0
        nodes.append(helper.make_node("Conv", ["t0", f"W_{name}", f"B_{name}"],
                                      [f"r_{name}" if relu else name], kernel_shape=list(k),
                                      strides=list(s), pads=list(p), dilations=list(d)))
        if relu:
            nodes.append(helper.make_node("Relu", [f"r_{name}"], [name]))
        inits += [init(f"W_{name}", rand((oc, 40, *k), seed + 10 + i, 0.6 / (40 * k[0] * k[1]) ** 0.5)),
                  init(f"B_{name}", rand((oc,), seed + 30 + i, 0.1))]
    return make_model(nodes, {"x": [1, 3, *HW]}, [b[0] for b in BRANCHES], inits)


def _build(tmp: Path, name: str, target_cpu: str, **kw: object) -> Path:
    lib = tmp / f"{name}-{target_cpu}.so"
    sqzc.compile(model_path(compact_model(), tmp), lib,
                 CompileOptions(verify_ir=True, target_cpu=target_cpu, **kw))  # type: ignore[arg-type]
    return lib


def test_compact_convs_share_one_kernel_per_input_layout(tmp_path: Path) -> None:
    out = tmp_path / "m.ll"
    result = sqzc.compile(model_path(compact_model(), tmp_path), out,
                          CompileOptions(emit="llvm", optimize="size"))
    convs = [n for n in result.graph.nodes() if result.graph.op(n).kind.value == "conv"]
    assert len(convs) == 1 + len(BRANCHES)
    assert all(result.graph.op(n).attrs.compact for n in convs)  # type: ignore[attr-defined]
    text = out.read_text()
    shared = re.findall(r"define internal void @\"?(ks_\w+)", text)
    # blocked-input convs with and without Relu; the 7x7 plain-input layer is alone
    assert len(shared) == 2, shared
    assert "optsize" in text
    assert result.metadata["optimize"] == "size"


@pytest.mark.parametrize("target_cpu", [
    "host", pytest.param("generic", marks=pytest.mark.exhaustive)])
def test_compact_convs_are_bit_identical_to_the_direct_kernels(target_cpu: str,
                                                               tmp_path: Path) -> None:
    small = _build(tmp_path, "size", target_cpu, optimize="size")
    fast = _build(tmp_path, "speed", target_cpu, winograd=False)
    x = np.random.default_rng(5).standard_normal((1, 3, *HW)).astype(np.float32)
    want = ort_run(compact_model(), {"x": x})  # type: ignore[arg-type]
    direct = sqzc.load(fast, threads=1).run({"x": x})
    for threads in (1, 2):
        got = sqzc.load(small, threads=threads).run({"x": x})
        for (name, *_), ref in zip(BRANCHES, want):
            assert_close(got[name], ref, name)
            assert got[name].tobytes() == direct[name].tobytes(), name


def test_size_build_at_o1_matches_onnxruntime(tmp_path: Path) -> None:
    """--optimize size combines with -O1 (no layout pass, so no compact convs): the build
    still matches onnxruntime."""
    lib = _build(tmp_path, "o1", "host", optimize="size", opt_level=1)
    x = np.random.default_rng(6).standard_normal((1, 3, *HW)).astype(np.float32)
    got = sqzc.load(lib).run({"x": x})
    for (name, *_), ref in zip(BRANCHES, ort_run(compact_model(), {"x": x})):  # type: ignore[arg-type]
        assert_close(got[name], ref, name)
