"""The real pretrained SqueezeNet (WinML ``SqueezeNet_fp16.onnx``) and its fp32 derivative.

Models and photos live in the shared folder (``shared_dir`` fixture: these tests skip when
it is missing), except the packaged copy in ``sqzc/data`` which is always present. The
input convention is NCHW, BGR, float 0..255, no scaling (see shared/data/MANIFEST.md).

Checks: sqzc matches onnxruntime (within the output dtype's tolerance of ``sqz_testing``)
on random and real images; the WinML golden output on ``fish.csv`` is reproduced; top-1
labels on every photo equal the MANIFEST's and top-5 sets equal onnxruntime's.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

import numpy as np
import pytest
from int8_helpers import TOP1  # top-1 per photo (shared/models/MANIFEST.md)
from model_libs import Lib
from sqz_testing import assert_close, assert_matches_ort, ort_run

import sqzc

INPUT, OUTPUT = "data_0", "softmaxout_1"
MODELS = {
    "fp16": "models/SqueezeNet_fp16.onnx",
    "fp32": "models/derived/squeezenet1.0-7-fp32.derived.onnx",
}


def preprocess(path: Path, dtype: np.dtype) -> np.ndarray:
    """PIL open, RGB, 224x224 bilinear, BGR, float 0..255, NCHW with batch 1."""
    image_mod = pytest.importorskip("PIL.Image")
    with image_mod.open(path) as im:
        rgb = im.convert("RGB").resize((224, 224), image_mod.Resampling.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32)[:, :, ::-1].transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x).astype(dtype)  # 0..255 integers are exact in fp16


def top_k(p: np.ndarray, k: int) -> list[int]:
    return [int(i) for i in np.argsort(-p.astype(np.float64).ravel(), kind="stable")[:k]]


def _data_file(shared_dir: Path, rel: str) -> Path:
    path = shared_dir / rel
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    return path


LIBS = {kind: Lib(rel, shared=True) for kind, rel in MODELS.items()}
PACKAGE_DATA = importlib.resources.files("sqzc.data")
PACKAGED = Lib(str(PACKAGE_DATA / "squeezenet1.1_fp16.onnx"))


def _load(lib: Lib, shared_dir: Path) -> tuple[Path, sqzc.CompiledModel]:
    return _data_file(shared_dir, lib.model), lib.load(shared_dir)


# The fixtures' params are ``Lib`` values so that conftest.py can compile them early.
@pytest.fixture(scope="module", params=[LIBS["fp16"], LIBS["fp32"]], ids=["fp16", "fp32"])
def pretrained(request: pytest.FixtureRequest, shared_dir: Path) -> tuple[Path, sqzc.CompiledModel]:
    return _load(request.param, shared_dir)


@pytest.fixture(scope="module", params=[LIBS["fp16"]], ids=["fp16"])
def fp16(request: pytest.FixtureRequest, shared_dir: Path) -> sqzc.CompiledModel:
    return _load(request.param, shared_dir)[1]


@pytest.fixture(scope="module", params=[LIBS["fp32"]], ids=["fp32"])
def fp32(request: pytest.FixtureRequest, shared_dir: Path) -> sqzc.CompiledModel:
    return _load(request.param, shared_dir)[1]


@pytest.fixture(scope="module", params=[PACKAGED], ids=["packaged"])
def packaged(request: pytest.FixtureRequest) -> sqzc.CompiledModel:
    return request.param.load()


def test_library_interface(pretrained: tuple[Path, sqzc.CompiledModel]) -> None:
    path, m = pretrained
    dtype = np.dtype("float16" if "fp16" in path.name else "float32")
    assert not m.dynamic_batch
    # IR-3 style: the 52 initializers are also graph inputs but are constants, not inputs.
    assert [(s.name, s.shape, s.dtype) for s in m.input_specs] == [(INPUT, (1, 3, 224, 224), dtype)]
    assert [(s.name, s.shape, s.dtype) for s in m.output_specs] == [
        (OUTPUT, (1, 1000, 1, 1), dtype)]


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_onnxruntime_on_random_images(
    pretrained: tuple[Path, sqzc.CompiledModel], seed: int
) -> None:
    """Uniform 0..255 noise: the value range of real photos."""
    path, m = pretrained
    x = np.random.default_rng(seed).uniform(0, 255, (1, 3, 224, 224))
    assert_matches_ort(path, {INPUT: x.astype(m.input_specs[0].dtype)})


@pytest.mark.parametrize("photo", sorted(TOP1))
def test_photo_labels(pretrained: tuple[Path, sqzc.CompiledModel], shared_dir: Path,
                      photo: str) -> None:
    """Top-1 equals the MANIFEST's, top-5 set equals onnxruntime's, values match it."""
    path, m = pretrained
    x = preprocess(_data_file(shared_dir, "data/" + photo), m.input_specs[0].dtype)
    got = m(x)
    (want,) = ort_run(path, {INPUT: x})
    assert_close(got, want, OUTPUT)
    assert top_k(got, 1) == [TOP1[photo]]
    assert set(top_k(got, 5)) == set(top_k(want, 5))


def test_fish_csv_is_fish_png(shared_dir: Path) -> None:
    """The WinML input tensor is fish.png preprocessed as above (so our preprocessing is
    the convention the golden outputs were made with)."""
    csv = np.loadtxt(_data_file(shared_dir, "data/reference/fish.csv"), delimiter=",")
    png = preprocess(_data_file(shared_dir, "data/reference/fish.png"), np.dtype("float32"))
    np.testing.assert_array_equal(csv.reshape(1, 3, 224, 224), png)


def test_winml_golden_output(fp16: sqzc.CompiledModel, shared_dir: Path) -> None:
    """``SqueezeNet_fp16.onnx`` on ``fish.csv`` reproduces WinML's CPU output.

    Compared like onnxruntime is in the MANIFEST: golden values (6 significant digits in
    the CSV) against the fp16 output. onnxruntime's max |diff| is 1.9e-6, one fp16 ulp of
    one small probability; sqzc must be within one fp16 ulp of the golden value (rounded
    to fp16) for every class, and within the fp16 tolerance overall.
    """
    m = fp16
    x = np.loadtxt(_data_file(shared_dir, "data/reference/fish.csv"), delimiter=",")
    x = x.reshape(1, 3, 224, 224).astype(np.float16)
    gold = np.loadtxt(_data_file(shared_dir, "data/reference/Squeezenet_fp16_fish_input_CPU.csv"),
                      delimiter=",", skiprows=1)
    assert gold.shape == (1000, 2) and (gold[:, 0] == np.arange(1000)).all()
    want = gold[:, 1].astype(np.float16).reshape(1, 1000, 1, 1)
    got = m(x)
    assert_close(got, want, OUTPUT)
    ulps = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want)).astype(np.float64)
    worst = int(ulps.argmax())
    assert ulps.max() <= 1.0, (f"class {worst}: sqzc {got.ravel()[worst]} vs golden "
                               f"{gold[worst, 1]} ({ulps.max():.1f} fp16 ulps)")
    assert top_k(got, 1) == [0]  # tench, p = 0.7378
    assert abs(float(got.ravel()[0]) - 0.7378) < 1e-3


def test_fp32_derived_top5_matches_winml_fp32_golden(fp32: sqzc.CompiledModel,
                                                     shared_dir: Path) -> None:
    """The fp32 model's top-5 on fish equals WinML's fp32 SqueezeNet's (its weights are the
    fp16 ones widened, so values differ by up to ~8e-4 but the ranking does not)."""
    m = fp32
    x = np.loadtxt(_data_file(shared_dir, "data/reference/fish.csv"), delimiter=",")
    got = m(x.reshape(1, 3, 224, 224).astype(np.float32))
    gold = np.loadtxt(_data_file(shared_dir, "data/reference/Squeezenet_fish_input_CPU.csv"),
                      delimiter=",", skiprows=1)
    assert top_k(got, 5) == top_k(gold[:, 1], 5)


def test_packaged_model_classifies_packaged_kitten(packaged: sqzc.CompiledModel) -> None:
    """``sqzc/data``'s bundled model + photo (used by ``sqzc demo``) give 281 "tabby"."""
    kitten = Path(str(PACKAGE_DATA / "kitten_224.png"))
    got = packaged(preprocess(kitten, np.dtype("float16")))
    assert got.shape == (1, 1000, 1, 1) and got.dtype == np.float16
    assert top_k(got, 1) == [281]
    labels = (PACKAGE_DATA / "synset.txt").read_text().splitlines()
    assert "tabby" in labels[281]
    assert float(got.ravel()[281]) > 0.5  # MANIFEST: 0.932
