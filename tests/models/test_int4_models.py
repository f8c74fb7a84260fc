"""INT4 / UINT4 weights against onnxruntime (issue 21, S8).

A two-conv model (and one with a MatMul head) quantized by onnxruntime's
``quantize_static`` with ``QuantType.QInt4`` / ``QUInt4`` weights and uint8 activations:
at opset 13 it writes every Q/DQ in the com.microsoft domain, at opset 21 in ai.onnx.
onnxruntime 1.32 on x86-64 fuses no int4-weight conv (DequantizeLinear, float Conv,
QuantizeLinear), so:

* ``--no-fuse-int8-qdq``: the int4 convs run the MLAS-order float path, bit-exact with it
  (asserted on the model output, whose last QuantizeLinear makes any flip a whole step);
* default (fused): the int8 kernels run them, exact integer sums, within one quantization
  step of onnxruntime's float path (asserted in steps of the output's scale).

MatMul heads: onnxruntime keeps int4 MatMuls float too, and sqzc does not reproduce its
float matmul order, so both modes are held to one step. A blocked int4 DequantizeLinear
-> MatMul becomes onnxruntime's MatMulNBits: compared within the float tolerance.

The stored size: a fused int4 conv's source is its int8-held codes, at most 16 values, so
the library stores them in at most 4 bits a weight plus small tables.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.driver import CompileOptions
from sqzc.ops import ConstAttrs
from sqzc.weights.analysis import kernel_constants

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

SIZE = 12


def float_model(opset: int, matmul: bool, channels: int = 16) -> onnx.ModelProto:
    """x [1, 3, 12, 12] -> Conv 3x3 -> Relu -> Conv 3x3 [-> Flatten -> MatMul], seeded."""
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32)
    w2 = rng.normal(0, 0.3, (channels, 8, 3, 3)).astype(np.float32)
    inits = {"w1": w1, "b1": rng.normal(0, 0.1, 8).astype(np.float32),
             "w2": w2, "b2": rng.normal(0, 0.1, channels).astype(np.float32)}
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["y"], pads=[1, 1, 1, 1])]
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, channels, SIZE, SIZE])
    if matmul:
        inits["wm"] = rng.normal(0, 0.05, (channels * SIZE * SIZE, 32)).astype(np.float32)
        nodes += [helper.make_node("Flatten", ["y"], ["f"]),
                  helper.make_node("MatMul", ["f", "wm"], ["z"])]
        out = helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 32])
    graph = helper.make_graph(
        nodes, "int4", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                      [1, 3, SIZE, SIZE])],
        [out], [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def _inputs(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, 3, SIZE, SIZE)).astype(np.float32)


class _Calibration(quantization.CalibrationDataReader):  # type: ignore[misc]
    def __init__(self) -> None:
        self.feeds = iter([{"x": _inputs(i)} for i in range(4)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantized(tmp: Path, opset: int, weights: str, per_channel: bool,
              matmul: bool = False) -> Path:
    """``quantize_static`` QDQ of ``float_model`` with ``weights`` (QInt4 / QUInt4)."""
    src, dst = tmp / "float.onnx", tmp / "q.onnx"
    onnx.save(float_model(opset, matmul), src)
    quantization.quantize_static(
        str(src), str(dst), _Calibration(), quant_format=quantization.QuantFormat.QDQ,
        per_channel=per_channel, weight_type=getattr(quantization.QuantType, weights),
        activation_type=quantization.QuantType.QUInt8)
    return dst


def ort_output(path: Path, x: np.ndarray) -> np.ndarray:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def output_scale(model: onnx.ModelProto) -> float:
    """The scale of the model output's DequantizeLinear (one quantization step)."""
    out = model.graph.output[0].name
    dq = next(n for n in model.graph.node if out in n.output)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    return float(inits[dq.input[1]])


def compile_run(path: Path, fuse: bool, x: np.ndarray, tag: str) -> tuple[np.ndarray, object]:
    lib = path.parent / f"{tag}.so"
    result = sqzc.compile(path, lib, CompileOptions(fuse_int8_qdq=fuse))
    out = sqzc.load(lib, threads=1).run({"x": x})
    return next(iter(out.values())), result


CASES = [(13, "QInt4", True), (21, "QUInt4", False),
         pytest.param(13, "QUInt4", True, marks=pytest.mark.exhaustive),
         pytest.param(13, "QInt4", False, marks=pytest.mark.exhaustive),
         pytest.param(21, "QInt4", True, marks=pytest.mark.exhaustive),
         pytest.param(21, "QUInt4", True, marks=pytest.mark.exhaustive),
         pytest.param(21, "QInt4", False, marks=pytest.mark.exhaustive),
         pytest.param(13, "QUInt4", False, marks=pytest.mark.exhaustive)]


@pytest.mark.parametrize("opset, weights, per_channel", CASES)
def test_int4_conv_matches_onnxruntime(opset: int, weights: str, per_channel: bool,
                                       tmp_path: Path) -> None:
    path = quantized(tmp_path, opset, weights, per_channel)
    model = onnx.load(path)
    domains = {n.domain for n in model.graph.node if "Quantize" in n.op_type}
    assert domains == ({"com.microsoft"} if opset < 21 else {""})
    step = output_scale(model)
    for seed in (7, 8):
        x = _inputs(seed)
        want = ort_output(path, x)
        exact, _ = compile_run(path, False, x, f"float{seed}")
        assert exact.tobytes() == want.tobytes(), np.abs(exact - want).max() / step
        fused, _ = compile_run(path, True, x, f"fused{seed}")
        assert np.abs(fused - want).max() <= step * 1.0001


@pytest.mark.parametrize("opset, weights, per_channel", [
    (21, "QInt4", True),
    pytest.param(13, "QUInt4", False, marks=pytest.mark.exhaustive)])
def test_int4_matmul_within_one_step(opset: int, weights: str, per_channel: bool,
                                     tmp_path: Path) -> None:
    path = quantized(tmp_path, opset, weights, per_channel, matmul=True)
    step = output_scale(onnx.load(path))
    x = _inputs(9)
    want = ort_output(path, x)
    for fuse in (False, True):
        got, _ = compile_run(path, fuse, x, f"mm{fuse}")
        assert np.abs(got - want).max() <= step * 1.0001, (fuse, np.abs(got - want).max())


def test_int4_weights_stored_in_four_bits(tmp_path: Path) -> None:
    """The fused int4 convs keep their codes as the stored source (int8-held, at most
    16 values); ``--weights compressed`` stores them in at most 4 bits a weight, plus the
    other constants (biases) raw and 256 bytes of tables per tensor; outputs are
    bit-identical to ``--weights raw``'s, which stores the packed int8 layout, a byte a
    weight. (This model is small enough for ``auto`` to choose raw: the decoder's code
    would outweigh the 2.8 KB it saves.)"""
    onnx.save(float_model(21, False, channels=64), tmp_path / "float.onnx")
    path = tmp_path / "q.onnx"
    quantization.quantize_static(
        str(tmp_path / "float.onnx"), str(path), _Calibration(),
        quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        weight_type=quantization.QuantType.QInt4,
        activation_type=quantization.QuantType.QUInt8)
    lib, raw = tmp_path / "auto.so", tmp_path / "raw.so"
    result = sqzc.compile(path, lib, CompileOptions(weights="compressed"))
    sqzc.compile(path, raw, CompileOptions(weights="raw"))
    graph = result.graph
    codes, others, tensors = 0, 0, 0
    for nid in kernel_constants(graph):
        attrs = graph.op(nid).attrs
        assert isinstance(attrs, ConstAttrs)
        source = np.asarray(attrs.recipe.source if attrs.recipe is not None else attrs.value)
        tensors += 1
        if source.ndim == 4:
            assert source.dtype == np.int8 and -8 <= source.min() and source.max() <= 7
            codes += source.size
        else:
            others += source.nbytes
    assert codes == 8 * 3 * 9 + 64 * 8 * 9
    stored = int(result.metadata["weights_stored_bytes"])  # type: ignore[call-overload]
    assert stored <= codes / 2 + others + 256 * tensors, (stored, codes, others)
    x = _inputs(3)
    assert sqzc.load(lib).run({"x": x})["y"].tobytes() == \
        sqzc.load(raw).run({"x": x})["y"].tobytes()


def test_blocked_int4_matmul_within_float_tolerance(tmp_path: Path) -> None:
    """DequantizeLinear(int4 [64, 32], block_size 16 along K) -> MatMul. onnxruntime makes
    it MatMulNBits; with ``session.qdq_matmulnbits_accuracy_level=0`` that computes in
    float (within 1e-5 of the largest output); its default (level 4) quantizes A to int8
    first, 0.3% of the largest output away here (held to 1%)."""
    rng = np.random.default_rng(4)
    codes = rng.integers(-8, 8, (64, 32))
    scale = rng.uniform(0.01, 0.1, (4, 32)).astype(np.float32)
    zp = rng.integers(-2, 3, (4, 32))
    int4 = helper.make_tensor("wq", TensorProto.INT4, [64, 32], codes.reshape(-1).tolist())
    zpt = helper.make_tensor("wz", TensorProto.INT4, [4, 32], zp.reshape(-1).tolist())
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0,
                          block_size=16),
         helper.make_node("MatMul", ["a", "w"], ["y"])], "blocked",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [2, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])],
        [int4, numpy_helper.from_array(scale, "ws"), zpt])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    path = tmp_path / "m.onnx"
    onnx.save(model, path)
    a = rng.standard_normal((2, 64)).astype(np.float32)
    sqzc.compile(path, tmp_path / "m.so", CompileOptions())
    got = sqzc.load(tmp_path / "m.so").run({"a": a})["y"]
    w = (codes - np.repeat(zp, 16, axis=0)).astype(np.float32) * np.repeat(scale, 16, axis=0)
    np.testing.assert_allclose(got, a.astype(np.float64) @ w.astype(np.float64),
                               rtol=1e-5, atol=1e-5)
    for level, tol in (("0", 1e-5), (None, 1e-2)):
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        if level is not None:
            so.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", level)
        want = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(
            None, {"a": a})[0]
        np.testing.assert_allclose(got, want, rtol=0, atol=tol * np.abs(want).max() + 1e-6)
