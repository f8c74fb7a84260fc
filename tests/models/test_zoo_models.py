"""Whole-model differential tests: every ``sqzc.tools.zoo`` SqueezeNet against onnxruntime.

Each (model, opset, dtype, batch, -O level) is a ``model_libs.Lib`` parameter of a
module-scoped fixture, so it is built and compiled once per session (see conftest.py),
then run on seeded random inputs and compared with onnxruntime within the tolerance of
the output dtype (``sqz_testing.TOL``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from model_libs import Lib
from sqz_testing import assert_matches_ort

import sqzc
from sqzc.driver import CompileOptions
from sqzc.tools.zoo import INPUT_NAME, OUTPUT_NAME, SQUEEZENETS, build

Compiled = tuple[Lib, onnx.ModelProto, sqzc.CompiledModel]

# Every zoo model at opset 13, float32, at -O3 and -O0; SqueezeNet 1.1 also at the oldest
# opset the zoo supports (7: MaxPool padded instead of ceil_mode, Dropout with a ratio
# attribute, flattening Softmax) and at 18.
F32_CASES = [Lib(name, opt_level=level) for name in sorted(SQUEEZENETS) for level in (3, 0)] + [
    Lib("squeezenet1.1", opset=opset, opt_level=level) for opset in (7, 18) for level in (3, 0)
]
DYNAMIC_CASES = [Lib("squeezenet1.1", batch=None, opt_level=level) for level in (3, 0)]
F16_CASES = [Lib("squeezenet1.1", dtype="float16")]
# -O0: what this covers is the import of fp16 weights in a dynamic-batch graph.
DYNAMIC_F16_CASES = [Lib("squeezenet1.1", dtype="float16", batch=None, opt_level=0)]
SEEDS = (0, 1)


def _compiled(request: pytest.FixtureRequest) -> Compiled:
    lib: Lib = request.param
    model = lib.source()
    assert isinstance(model, onnx.ModelProto)
    return lib, model, lib.load()


def test_cases_cover_the_zoo() -> None:
    """The four published variants exist and every zoo SqueezeNet is in the differential
    set (the torchvision families are not compiled here)."""
    assert {"squeezenet1.0", "squeezenet1.1", "squeezenet1.0-simple-bypass",
            "squeezenet1.0-complex-bypass"} <= set(SQUEEZENETS)
    assert {lib.model for lib in F32_CASES} == set(SQUEEZENETS)


@pytest.fixture(scope="module", params=F32_CASES, ids=lambda lib: lib.id)
def f32_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


@pytest.mark.parametrize("seed", SEEDS)
def test_float32_matches_onnxruntime(f32_model: Compiled, seed: int) -> None:
    lib, model, _ = f32_model
    got = assert_matches_ort(model, seed=seed, opt_level=lib.opt_level)
    (probs,) = got.values()
    assert probs.shape == (1, 1000, 1, 1)
    # The zoo calibrates logits so the output is neither uniform nor one-hot; comparing a
    # degenerate output would check little.
    assert 0.005 < float(probs.max()) < 0.99


def test_float32_library_interface(f32_model: Compiled) -> None:
    """The library's metadata describes the zoo graph's boundary exactly."""
    _, _, m = f32_model
    assert not m.dynamic_batch
    assert [(s.name, s.shape, s.dtype) for s in m.input_specs] == [
        (INPUT_NAME, (1, 3, 224, 224), np.dtype("float32"))]
    assert [(s.name, s.shape, s.dtype) for s in m.output_specs] == [
        (OUTPUT_NAME, (1, 1000, 1, 1), np.dtype("float32"))]


# ------------------------------------------------------------------ dynamic batch


@pytest.fixture(scope="module", params=DYNAMIC_CASES, ids=lambda lib: lib.id)
def dynamic_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


def test_dynamic_batch_metadata(dynamic_model: Compiled) -> None:
    _, _, m = dynamic_model
    assert m.dynamic_batch
    assert [s.shape for s in m.input_specs] == [(None, 3, 224, 224)]
    assert [s.shape for s in m.output_specs] == [(None, 1000, 1, 1)]


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_matches_onnxruntime(dynamic_model: Compiled, batch: int) -> None:
    lib, model, _ = dynamic_model
    got = assert_matches_ort(model, seed=10 + batch, opt_level=lib.opt_level, batch=batch)
    assert got[OUTPUT_NAME].shape == (batch, 1000, 1, 1)


# ------------------------------------------------------------------ float16


@pytest.fixture(scope="module", params=F16_CASES, ids=lambda lib: lib.id)
def f16_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


@pytest.mark.parametrize("seed", SEEDS)
def test_float16_matches_onnxruntime(f16_model: Compiled, seed: int) -> None:
    lib, model, m = f16_model
    assert [s.dtype for s in m.input_specs + m.output_specs] == [np.dtype("float16")] * 2
    got = assert_matches_ort(model, seed=seed, opt_level=lib.opt_level)
    assert got[OUTPUT_NAME].dtype == np.float16
    assert 0.005 < float(got[OUTPUT_NAME].max()) < 0.99


@pytest.fixture(scope="module", params=DYNAMIC_F16_CASES, ids=lambda lib: lib.id)
def dynamic_f16_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_float16_matches_onnxruntime(dynamic_f16_model: Compiled,
                                                   batch: int) -> None:
    """Regression: at commit 941a157 the importer widened float16 weights with runtime
    'cast' nodes that check_batch_separable rejected ("'conv1' (cast) produces
    f32[64,3,3,3] without a leading batch axis"), so no fp16 dynamic-batch model compiled."""
    lib, model, m = dynamic_f16_model
    assert m.dynamic_batch
    got = assert_matches_ort(model, seed=batch, opt_level=lib.opt_level, batch=batch)
    assert got[OUTPUT_NAME].shape == (batch, 1000, 1, 1)
    assert got[OUTPUT_NAME].dtype == np.float16


@pytest.mark.parametrize("target_cpu", ["generic", "haswell"])
def test_float32_other_targets_match_onnxruntime(target_cpu: str) -> None:
    """SqueezeNet 1.1 compiled for baseline x86-64 (SSE2, 8-float blocks as two vectors)
    and for AVX2 + FMA, run on this machine, against onnxruntime."""
    assert_matches_ort(build("squeezenet1.1"), seed=0, target_cpu=target_cpu)


def test_generic_target_convs_use_no_fused_multiply_add(tmp_path: Path) -> None:
    """Baseline x86-64 has no FMA instruction, so ``llvm.fma`` would become a libm
    ``fmaf`` call per lane (it made the generic SqueezeNet 277 ms instead of 12 ms): the
    conv kernels multiply and add instead there, and fuse on FMA targets."""
    path = tmp_path / "sq11.onnx"
    onnx.save(build("squeezenet1.1"), path)
    texts = {}
    for cpu in ("generic", "haswell"):
        out = tmp_path / f"{cpu}.ll"
        sqzc.compile(path, out, CompileOptions(emit="llvm", target_cpu=cpu))
        texts[cpu] = out.read_text()
    assert "llvm.fma.v" not in texts["generic"]
    assert "llvm.fma.v8f32" in texts["haswell"]
