"""Whole-model differential tests of the torchvision families (``sqzc.tools.zoo_families``:
MobileNet v2/v3, EfficientNet-B0, ShuffleNetV2, MNASNet, ResNet-18, RegNetX, GoogLeNet,
DenseNet-121) against onnxruntime, float32 within ``sqz_testing.TOL``.

Built at 96x96: the graphs, kernels and layouts are those of 224x224 (every stage keeps
at least a 3x3 map), at a ninth of the run time. Opset 17 is what torch.onnx writes
today (opset 13's spellings, HardSigmoid and Mul for HardSwish and Split's sizes as an
input, have their op tests). The default tier
samples the cases (``tests/conftest.py``); the exhaustive tier runs them all, the
dynamic-batch ones, and int8 QDQ versions made with onnxruntime's quantizer, which must
match onnxruntime bit for bit.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from model_libs import Lib
from sqz_testing import assert_matches_ort, compile_and_load

import sqzc
from sqzc.tools.zoo import build
from sqzc.tools.zoo_families import FAMILIES, INPUT_NAME, OUTPUT_NAME

SIZE = 96
CASES = [Lib(name, opset=17, image_size=SIZE) for name in sorted(FAMILIES)]
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


# ------------------------------------------------------------------ int8 QDQ

#: Families quantized here the way onnxruntime's quantizer does by default (QDQ, int8
#: activations and weights, per channel): depthwise convs and inverted residuals (Adds),
#: channel split and shuffle. (EfficientNet-B0, ResNet-18, MobileNetV3 and DenseNet-121
#: were exact too when checked by hand; each adds 20-75 s of compiling.)
INT8_FAMILIES = ("mobilenet_v2", "shufflenet_v2_x1_0")


def _quantize_s8s8(model: onnx.ModelProto, tmp: Path) -> Path:
    """``quantize_static`` with its defaults but per channel, calibrated on 4 seeded
    normal images."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    rng = np.random.default_rng(0)
    images = [{INPUT_NAME: rng.standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)}
              for _ in range(4)]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(images)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    fp32, pre, out = tmp / "fp32.onnx", tmp / "pre.onnx", tmp / "int8.onnx"
    onnx.save(model, fp32)
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    per_channel=True)
    return out


@pytest.mark.exhaustive
@pytest.mark.parametrize("name", INT8_FAMILIES)
def test_int8_qdq_family_is_bit_exact(name: str, tmp_path: Path) -> None:
    """The int8 QDQ model's logits equal onnxruntime's bit for bit (its int8 QDQ fusion on,
    as for the SqueezeNets), on two seeded inputs."""
    import onnxruntime as ort

    path = _quantize_s8s8(build(name, opset=17, image_size=SIZE), tmp_path)
    m = compile_and_load(path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for seed in (5, 6):
        x = np.random.default_rng(seed).standard_normal((1, 3, SIZE, SIZE)).astype(np.float32)
        want = sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]
        got = m.run({INPUT_NAME: x})[OUTPUT_NAME]
        assert got.tobytes() == want.tobytes(), float(np.abs(got - want).max())
