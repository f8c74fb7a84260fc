"""Whole-model differential tests of the torchvision families (``sqzc.tools.zoo_families``:
MobileNet v2/v3, EfficientNet-B0, ShuffleNetV2, MNASNet, ResNet-18, RegNetX, GoogLeNet,
DenseNet-121) against onnxruntime, float32 within ``sqz_testing.TOL``.

Built at 96x96: the graphs, kernels and layouts are those of 224x224 (every stage keeps
at least a 3x3 map), at a ninth of the run time. Opset 17 is what torch.onnx writes
today; opset 13 changes the spelling of MobileNetV3's HardSwish (HardSigmoid and Mul)
and of Split (its sizes as an input), so those families run at both. The default tier
samples the cases (``tests/conftest.py``); the exhaustive tier runs them all and the
dynamic-batch ones.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from model_libs import Lib
from sqz_testing import assert_matches_ort

import sqzc
from sqzc.tools.zoo_families import FAMILIES, OUTPUT_NAME

SIZE = 96
#: Families whose opset-13 export differs from the opset-17 one.
SPELLED_BY_OPSET = ("mobilenet_v3_small", "mobilenet_v3_large", "shufflenet_v2_x1_0")
CASES = [Lib(name, opset=17, image_size=SIZE) for name in sorted(FAMILIES)] + \
    [Lib(name, opset=13, image_size=SIZE) for name in SPELLED_BY_OPSET]
DYNAMIC_CASES = [Lib(name, opset=17, batch=None, image_size=SIZE)
                 for name in ("mobilenet_v2", "shufflenet_v2_x1_0", "resnet18")]

Compiled = tuple[Lib, onnx.ModelProto, sqzc.CompiledModel]


def _compiled(request: pytest.FixtureRequest) -> Compiled:
    lib: Lib = request.param
    model = lib.source()
    assert isinstance(model, onnx.ModelProto)
    return lib, model, lib.load()


def test_cases_cover_the_families() -> None:
    assert {lib.model for lib in CASES} == set(FAMILIES)


@pytest.fixture(scope="module", params=CASES, ids=lambda lib: lib.id)
def family_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


def test_family_matches_onnxruntime(family_model: Compiled) -> None:
    """Logits within the float32 tolerance of onnxruntime's, on two seeded inputs."""
    lib, model, _ = family_model
    for seed in (0, 1):
        got = assert_matches_ort(model, seed=seed, opt_level=lib.opt_level)
        logits = got[OUTPUT_NAME]
        assert logits.shape == (1, 1000)
        assert float(np.std(logits)) > 0.05  # the zoo's calibration: not a flat output


@pytest.fixture(scope="module", params=DYNAMIC_CASES, ids=lambda lib: lib.id)
def dynamic_family_model(request: pytest.FixtureRequest) -> Compiled:
    return _compiled(request)


@pytest.mark.exhaustive
@pytest.mark.parametrize("batch", [1, 3])
def test_dynamic_batch_family_matches_onnxruntime(dynamic_family_model: Compiled,
                                                  batch: int) -> None:
    lib, model, m = dynamic_family_model
    assert m.dynamic_batch
    got = assert_matches_ort(model, seed=20 + batch, opt_level=lib.opt_level, batch=batch)
    assert got[OUTPUT_NAME].shape == (batch, 1000)
