"""-O0 (no passes: the differential baseline) gives onnxruntime's results on the real models.

The zoo models are checked at -O0 and -O3 in test_zoo_models.py; this covers the pretrained
SqueezeNets and one PyTorch export of each exporter, so every model of the float issue is
compared at both levels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sqz_testing import assert_matches_ort

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "torch"


@pytest.mark.parametrize("rel", ["SqueezeNet_fp16.onnx",
                                 "derived/squeezenet1.0-7-fp32.derived.onnx"])
def test_pretrained_at_o0(rel: str, shared_dir: Path) -> None:
    model = shared_dir / "models" / rel
    if not model.exists():
        pytest.skip(f"{model} missing")
    rng = np.random.default_rng(7)
    dtype = np.float16 if "fp16" in rel else np.float32
    x = (rng.random((1, 3, 224, 224)) * 255).astype(dtype)
    assert_matches_ort(model, {"data_0": x}, opt_level=0)


@pytest.mark.parametrize("name", ["squeezenet1_1_w4_torchscript_op13",
                                  "squeezenet1_1_w4_dynamo_op18"])
def test_torch_export_at_o0(name: str) -> None:
    assert_matches_ort(FIXTURES / f"{name}.onnx", opt_level=0, batch=3)
