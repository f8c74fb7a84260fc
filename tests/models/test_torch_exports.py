"""PyTorch-exported SqueezeNets (tests/fixtures/torch): compile, run at batch 1 and 3.

Each ``<name>.onnx`` has a dynamic batch axis and a ``<name>.expected.npy`` holding torch's
own float32 output ``[3, 100]`` for the README's standard input (regenerated here from
the seed). sqzc must match both that and onnxruntime within the float32 tolerance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from model_libs import Lib
from sqz_testing import assert_close, ort_run

import sqzc

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torch"
MODELS = sorted(FIXTURES.glob("*.onnx"))


def standard_input() -> np.ndarray:
    """The README's input convention (batch-b checks use the first b samples)."""
    return np.random.default_rng(0).standard_normal((3, 3, 224, 224), dtype=np.float32)


def test_fixture_set_is_complete() -> None:
    """Every fixture has its expected output (and the glob found the README's 10 files)."""
    assert len(MODELS) == 10, [p.name for p in MODELS]
    for p in MODELS:
        assert p.with_name(p.stem + ".expected.npy").is_file(), p.name


@pytest.fixture(scope="module", params=[Lib(str(p)) for p in MODELS],
                ids=lambda lib: Path(lib.model).stem)
def torch_model(request: pytest.FixtureRequest) -> tuple[Path, sqzc.CompiledModel, np.ndarray]:
    lib: Lib = request.param
    path = Path(lib.model)
    expected = np.load(path.with_name(path.stem + ".expected.npy"))
    assert expected.shape == (3, 100) and expected.dtype == np.float32
    return path, lib.load(), expected


def test_library_interface(torch_model: tuple[Path, sqzc.CompiledModel, np.ndarray]) -> None:
    """Dynamic batch is kept; the output's non-batch dim is 100 even when the exporter
    named it symbolically (the mean-head TorchScript file)."""
    path, m, _ = torch_model
    assert m.dynamic_batch
    want_in = "x" if "_dynamo_" in path.name else "input"
    want_out = "view" if "_dynamo_" in path.name else "output"
    assert [(s.name, s.shape, s.dtype) for s in m.input_specs] == [
        (want_in, (None, 3, 224, 224), np.dtype("float32"))]
    assert [(s.name, s.shape, s.dtype) for s in m.output_specs] == [
        (want_out, (None, 100), np.dtype("float32"))]


@pytest.mark.parametrize("batch", [1, 3])
def test_matches_torch_and_onnxruntime(
    torch_model: tuple[Path, sqzc.CompiledModel, np.ndarray], batch: int
) -> None:
    path, m, expected = torch_model
    feeds = {m.input_specs[0].name: standard_input()[:batch]}
    (got,) = m.run(feeds).values()
    assert_close(got, expected[:batch], "vs torch")
    (want,) = ort_run(path, feeds)
    assert_close(got, want, "vs onnxruntime")
