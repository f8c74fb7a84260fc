"""``sqzc verify``: whole-model PASS/FAIL and per-layer divergence with an injected fault."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from sqzc.tools.verify import compare, format_report, verify_model
from sqzc.tools.zoo import build
from sqz_testing import sqzc_command

pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def small_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("verify") / "sq11.onnx"
    p.write_bytes(build("squeezenet1.1", image_size=64, num_classes=10).SerializeToString())
    return p


def test_clean_model_passes_per_layer(small_model: Path) -> None:
    report = verify_model(small_model, per_layer=True, high=1.0)
    assert report.ok and report.layers and report.first_bad_layer is None
    assert all(d.top1_agree for d in report.outputs)


SHARED_FP16 = Path(__file__).resolve().parents[3] / "shared" / "models" / "SqueezeNet_fp16.onnx"


@pytest.mark.skipif(not SHARED_FP16.exists(), reason=f"{SHARED_FP16} not present")
def test_per_layer_keeps_the_verdict_on_a_float16_model() -> None:
    """Per-layer mode asks onnxruntime for every intermediate, which changes its float16
    graph (and final result); the outputs' verdict still comes from the model as given,
    and float16 intermediates are compared at float16 tolerance: the pretrained float16
    SqueezeNet passes with and without --per-layer (it once failed only with it)."""
    plain = verify_model(SHARED_FP16, high=1.0)
    layered = verify_model(SHARED_FP16, per_layer=True, high=1.0)
    assert plain.ok and layered.ok and layered.first_bad_layer is None
    assert [d.max_abs for d in plain.outputs] == [d.max_abs for d in layered.outputs]


@pytest.mark.parametrize("layer", ["fire3/expand3x3", "fire7/squeeze1x1"])
def test_per_layer_names_the_faulty_kernel(small_model: Path, layer: str) -> None:
    """A perturbed bias in one conv: the first divergence is exactly that layer."""
    report = verify_model(small_model, per_layer=True, fault=layer, high=1.0)
    bad = report.first_bad_layer
    assert bad is not None and layer in bad.origin
    assert all(i.ok for i in bad.inputs)  # its inputs were still right
    text = format_report(report, 1e-4, 1e-6)
    assert "first divergence" in text and layer in text and text.endswith("FAIL")


def test_int8_per_layer_fault(shared_dir: Path) -> None:
    model = shared_dir / "models/derived/squeezenet1.0-12-int8-qoperator.derived.onnx"
    if not model.exists():
        pytest.skip(f"{model} missing")
    clean = verify_model(model, per_layer=True)
    assert clean.first_bad_layer is None
    bad = verify_model(model, per_layer=True, fault="fire4/squeeze").first_bad_layer
    assert bad is not None and "fire4/squeeze1x1" in bad.origin and bad.diff.dtype == "uint8"


def test_compare_rules() -> None:
    a = np.array([1.0, 2.0], np.float32)
    assert compare("t", a, a, 1e-4, 0).ok
    assert not compare("t", a + np.float32(1e-3), a, 1e-4, 0).ok
    q = np.array([3, 4], np.uint8)
    assert not compare("q", q + np.uint8(1), q, 1e-4, 0).ok
    assert compare("q", q + np.uint8(1), q, 1e-4, 0, int_tolerance=1).ok


def test_cli_exit_codes(small_model: Path, tmp_path: Path) -> None:
    exe = sqzc_command()
    ok = subprocess.run([*exe, "verify", str(small_model), "--random", "--seed", "3",
                         "--high", "1"], capture_output=True, text=True)
    assert ok.returncode == 0 and "PASS" in ok.stdout
    x = np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    tight = subprocess.run([*exe, "verify", str(small_model), "--input", str(tmp_path / "x.npy"),
                            "--rtol", "0", "--atol", "0", "--per-layer"],
                           capture_output=True, text=True)
    assert tight.returncode in (0, 1) and ("PASS" in tight.stdout or "FAIL" in tight.stdout)


def _s8_qdq_conv(path: Path) -> Path:
    """int8 x -> DQ -> Conv (int8 weights) -> Q int8: onnxruntime's default session runs
    it in float, with session.qdqisint8allowed=1 as a QLinearConv."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    inits = [numpy_helper.from_array(np.float32(0.04), "xs"), numpy_helper.from_array(np.int8(2), "xz"),
             numpy_helper.from_array(rng.integers(-127, 128, (24, 16, 3, 3), dtype=np.int8), "w"),
             numpy_helper.from_array(np.float32(0.003), "ws"),
             numpy_helper.from_array(np.int8(0), "wz"),
             numpy_helper.from_array(np.float32(0.01), "ys"), numpy_helper.from_array(np.int8(-5), "yz")]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"]),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"]),
             helper.make_node("Conv", ["xf", "wf"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("QuantizeLinear", ["c", "ys", "yz"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.INT8, [1, 16, 12, 12])], [helper.make_tensor_value_info(
            "y", TensorProto.INT8, [1, 24, 12, 12])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    return path


def test_verify_fused_int8_qdq_compares_with_int8_allowed_onnxruntime(tmp_path: Path) -> None:
    """The default (int8 QDQ groups fused) is checked against onnxruntime with
    session.qdqisint8allowed=1 (bit-exact), ``--no-fuse-int8-qdq`` against its default
    session (bit-exact too)."""
    model = _s8_qdq_conv(tmp_path / "s8.onnx")
    for fused in (False, True):
        report = verify_model(model, fuse_int8_qdq=fused, low=-128, high=128)
        assert report.ok and all(d.max_abs == 0 for d in report.outputs), (fused, report)
        assert ("qdqisint8allowed=1" in report.reference) == fused, report.reference
        assert format_report(report, 1e-4, 1e-6).startswith(f"reference: {report.reference}\n")
