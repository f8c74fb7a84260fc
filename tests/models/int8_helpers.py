"""Helpers for the int8 whole-model tests (``test_int8_models.py``).

* ``preprocess`` / ``photo_inputs`` / ``noise_inputs``: the SqueezeNet 1.0 input
  convention of shared/data/MANIFEST.md (PIL RGB, 224x224 bilinear, BGR, float32 0..255,
  NCHW) and seeded uniform 0..255 noise.
* ``expose_8bit``: a copy of a model whose every 8-bit node output (the ``*_quantized``
  tensors of a QOperator model, the QuantizeLinear outputs of a QDQ model) is also a graph
  output, typed by ``onnx.shape_inference`` (plus the one com.microsoft op it cannot type).
* ``QuantConfig`` / ``quantize``: ``onnxruntime.quantization.quantize_static`` of a
  ``sqzc.zoo`` model with a small seeded calibration set.
* ``OrtRunner``: onnxruntime with default session options (graph optimizations on) or
  with ``ORT_DISABLE_ALL``, returning ``{output name: array}``.
* ``step_diff``: how two 8-bit tensors differ, in quantization steps.
* ``precompile``: compile many libraries in parallel worker processes into
  ``sqz_testing``'s per-process library cache (as ``model_libs.compile_all`` does for
  ``Lib`` parameters), so the tests' ``compile_and_load`` calls find them built.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, shape_inference

INPUT = "data_0"
OUTPUT = "softmaxout_1"
EIGHT_BIT = (TensorProto.UINT8, TensorProto.INT8)

#: Top-1 per photo (shared/models/MANIFEST.md: the int8 derived models agree with fp16).
TOP1 = {
    "images/dog.jpg": 207,  # golden retriever
    "images/hummingbird.jpg": 94,  # hummingbird
    "images/kitten_224.png": 281,  # tabby
    "images/chelsea.png": 285,  # Egyptian cat
    "images/coffee.png": 967,  # espresso
    "reference/fish.png": 0,  # tench
}


# ----------------------------------------------------------------------------- inputs


def preprocess(path: Path, size: int = 224) -> np.ndarray:
    """PIL open, RGB, ``size`` x ``size`` bilinear, BGR, float32 0..255, NCHW batch 1."""
    from PIL import Image

    with Image.open(path) as im:
        rgb = im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
    x = np.asarray(rgb, dtype=np.float32)[:, :, ::-1].transpose(2, 0, 1)[None]
    return np.ascontiguousarray(x)


def photo_inputs(shared_dir: Path) -> dict[str, np.ndarray]:
    """The six MANIFEST photos, preprocessed (missing files are left out)."""
    return {rel: preprocess(shared_dir / "data" / rel) for rel in TOP1
            if (shared_dir / "data" / rel).is_file()}


def noise_inputs(seeds: Iterable[int], size: int = 224) -> dict[str, np.ndarray]:
    """Seeded uniform [0, 255) float32 images, the value range of real inputs."""
    return {f"noise{s}": np.random.default_rng(s).uniform(0, 255, (1, 3, size, size))
            .astype(np.float32) for s in seeds}


# ------------------------------------------------------------------ model surgery


def eight_bit_tensors(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every 8-bit node output (in node order) with its inferred type and shape.

    ``onnx.shape_inference`` types the ai.onnx ops; it does not know com.microsoft
    ``QLinearGlobalAveragePool``, whose output is typed here: the input's dtype, shape
    ``[N, C, 1, ..., 1]``.
    """
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    vi = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input,
                              *inferred.graph.output)}
    for node in inferred.graph.node:
        if node.op_type == "QLinearGlobalAveragePool" and node.output[0] not in vi:
            src = vi[node.input[0]].type.tensor_type
            dims = [d.dim_value for d in src.shape.dim]
            assert dims and all(dims), f"{node.input[0]}: shape {dims} not inferred"
            vi[node.output[0]] = helper.make_tensor_value_info(
                node.output[0], src.elem_type, dims[:2] + [1] * (len(dims) - 2))
    graph_outputs = {o.name for o in model.graph.output}
    found = {}
    for node in model.graph.node:
        for name in node.output:
            if name in graph_outputs:
                continue
            assert name in vi, f"{name} ({node.op_type}): type not inferred"
            if vi[name].type.tensor_type.elem_type in EIGHT_BIT:
                found[name] = vi[name]
    return found


def expose_8bit(model: onnx.ModelProto) -> tuple[onnx.ModelProto, list[str]]:
    """A copy of ``model`` with every 8-bit intermediate appended to the graph outputs."""
    tensors = eight_bit_tensors(model)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    out.graph.output.extend(tensors.values())
    return out, list(tensors)


# ------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class QuantConfig:
    """One ``quantize_static`` setting for a ``sqzc.zoo`` model."""

    model: str  # sqzc.zoo name
    fmt: str  # "qdq" or "qop"
    per_channel: bool
    reduce_range: bool
    activation: str  # "u8" (QUInt8) or "s8" (QInt8); weights are always QInt8

    @property
    def id(self) -> str:
        return (f"{self.model}-{self.fmt}-{'pc' if self.per_channel else 'pt'}"
                f"{'-rr' if self.reduce_range else ''}-{self.activation}")


#: Zoo build arguments: small images keep the (scalar) int8 kernels and quantize_static
#: fast; the graph and channel counts are SqueezeNet's.
ZOO_ARGS = {"opset": 13, "seed": 0, "image_size": 64, "num_classes": 100}
CALIBRATION_SEEDS = (100, 101, 102, 103)
#: Like shared/models/MANIFEST.md: Concat stays float (sqzc has no com.microsoft
#: QLinearConcat, which QOperator would otherwise produce), everything else is quantized.
OP_TYPES = ["Conv", "Relu", "MaxPool", "GlobalAveragePool"]


def quantize(cfg: QuantConfig, workdir: Path) -> Path:
    """Build the zoo model, pre-process it like the MANIFEST, quantize; returns the file."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sqzc.zoo import build

    workdir.mkdir(parents=True, exist_ok=True)
    base = workdir / f"{cfg.model}.onnx"
    pre = workdir / f"{cfg.model}.pre.onnx"
    if not pre.exists():
        onnx.save(build(cfg.model, **ZOO_ARGS), base)
        quant_pre_process(str(base), str(pre), skip_symbolic_shape=True)
    size = ZOO_ARGS["image_size"]
    batches = [{INPUT: x} for x in noise_inputs(CALIBRATION_SEEDS, size).values()]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out = workdir / f"{cfg.id}.onnx"
    act = QuantType.QUInt8 if cfg.activation == "u8" else QuantType.QInt8
    quantize_static(str(pre), str(out), Reader(),
                    quant_format=QuantFormat.QDQ if cfg.fmt == "qdq" else QuantFormat.QOperator,
                    op_types_to_quantize=OP_TYPES, per_channel=cfg.per_channel,
                    reduce_range=cfg.reduce_range, activation_type=act,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return out


# ------------------------------------------------------------------------ running


class OrtRunner:
    """onnxruntime CPU session, one intra-op thread; ``optimized=False`` disables every
    graph optimization (``ORT_DISABLE_ALL``: QDQ groups run as literal float ops)."""

    def __init__(self, model: onnx.ModelProto, optimized: bool = True) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        if not optimized:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        self.sess = ort.InferenceSession(model.SerializeToString(), so,
                                         providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.sess.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.sess.run(None, {INPUT: x})))


@dataclass(frozen=True)
class StepDiff:
    """Where two 8-bit tensors differ: element count and largest difference in steps."""

    name: str
    count: int
    max_steps: int
    size: int


def step_diff(name: str, got: np.ndarray, want: np.ndarray) -> StepDiff:
    """Compare two 8-bit tensors of the same shape and dtype, in integer steps."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    assert got.dtype in (np.uint8, np.int8), f"{name}: {got.dtype} is not 8-bit"
    d = np.abs(got.astype(np.int32) - want.astype(np.int32))
    return StepDiff(name, int(np.count_nonzero(d)), int(d.max(initial=0)), d.size)


def step_diffs(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
               names: Iterable[str]) -> list[StepDiff]:
    """``step_diff`` of every tensor in ``names`` that differs at all."""
    diffs = [step_diff(n, got[n], want[n]) for n in names]
    return [d for d in diffs if d.count]


def precompile(paths: Iterable[Path], opt_level: int = 3) -> None:
    """Warm ``sqz_testing``'s library cache for ``paths`` using worker processes.

    Only a cache warm-up (``model_libs.compile_all``): failures are ignored here and
    reported by the test that compiles the model again. ``SQZC_TEST_SERIAL=1`` skips it.
    """
    if os.environ.get("SQZC_TEST_SERIAL") == "1":
        return
    from model_libs import Lib, compile_all

    compile_all([Lib(str(Path(p).resolve()), opt_level=opt_level) for p in paths])
