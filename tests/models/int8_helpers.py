"""Helpers for the int8 whole-model tests (``test_int8_models.py``).

* ``preprocess`` / ``photo_inputs`` / ``noise_inputs``: the SqueezeNet 1.0 input
  convention of shared/data/MANIFEST.md (PIL RGB, 224x224 bilinear, BGR, float32 0..255,
  NCHW) and seeded uniform 0..255 noise.
* ``expose_8bit``: a copy of a model whose every 8-bit node output (the ``*_quantized``
  tensors of a QOperator model, the QuantizeLinear outputs of a QDQ model) is also a graph
  output, typed by ``onnx.shape_inference`` (plus the com.microsoft ops it cannot type).
* ``layerwise``: an exposed QDQ model cut into independent groups, each fed from a new
  graph input, to compare layer by layer from a reference's tensors.
* ``QuantConfig`` / ``quantize``: ``onnxruntime.quantization.quantize_static`` of a
  ``sqzc.tools.zoo`` model with a small seeded calibration set.
* ``ExposedModels``: a per-session cache of the exposed models as files (what gets
  compiled), so quantization and surgery run once per session.
* ``OrtRunner``: onnxruntime with default session options (graph optimizations on), with
  ``ORT_DISABLE_ALL``, or with extra session config entries; returns ``{name: array}``.
* ``step_diff`` / ``step_diffs``: how 8-bit tensors differ, in quantization steps.
* ``precompile``: compile many libraries in parallel worker processes into
  ``sqz_testing``'s per-process library cache (``model_libs.compile_all``), so the
  tests' ``compile_and_load`` calls find them built.
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


def _contrib_type(node: onnx.NodeProto, vi: Mapping[str, onnx.ValueInfoProto],
                  inits: Mapping[str, onnx.TensorProto]) -> onnx.ValueInfoProto | None:
    """Output type of the com.microsoft ops onnx's shape inference does not know, from
    their inputs' types (``None`` while an input is still untyped)."""
    def dims(name: str) -> list[int] | None:
        if name not in vi:
            return None
        d = [x.dim_value for x in vi[name].type.tensor_type.shape.dim]
        return d if d and all(d) else None

    out = node.output[0]
    if node.op_type == "QLinearGlobalAveragePool":  # [N, C, H, W] -> [N, C, 1, 1], same dtype
        d = dims(node.input[0])
        if d is None:
            return None
        elem = vi[node.input[0]].type.tensor_type.elem_type
        return helper.make_tensor_value_info(out, elem, d[:2] + [1] * (len(d) - 2))
    if node.op_type == "QLinearSoftmax":  # same shape and dtype
        d = dims(node.input[0])
        if d is None:
            return None
        return helper.make_tensor_value_info(out, vi[node.input[0]].type.tensor_type.elem_type, d)
    if node.op_type == "QLinearConcat":  # (y_scale, y_zp, (x, x_scale, x_zp)...)
        xs = [dims(x) for x in node.input[2::3]]
        if any(d is None for d in xs):
            return None
        axis = next(a.i for a in node.attribute if a.name == "axis")
        shape = list(xs[0])  # type: ignore[arg-type]
        shape[axis] = sum(d[axis] for d in xs)  # type: ignore[index]
        return helper.make_tensor_value_info(out, inits[node.input[1]].data_type, shape)
    return None


def eight_bit_tensors(model: onnx.ModelProto) -> dict[str, onnx.ValueInfoProto]:
    """Every 8-bit node output (in node order) with its inferred type and shape.

    ``onnx.shape_inference`` types the ai.onnx ops. It does not know the com.microsoft
    ops ``QLinearGlobalAveragePool`` and ``QLinearConcat`` (and so leaves everything
    downstream of them untyped): their outputs are typed here from their inputs and
    inference is re-run until nothing more can be typed.
    """
    inits = {t.name: t for t in model.graph.initializer}
    work = onnx.ModelProto()
    work.CopyFrom(model)
    while True:
        inferred = shape_inference.infer_shapes(work)
        vi = {v.name: v for v in (*inferred.graph.value_info, *inferred.graph.input,
                                  *inferred.graph.output)}
        added = [t for n in inferred.graph.node if n.domain == "com.microsoft"
                 and n.output[0] not in vi and (t := _contrib_type(n, vi, inits))]
        if not added:
            break
        work.graph.value_info.extend(added)
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


#: Suffix of the graph inputs ``layerwise`` adds: ``T + LAYER_INPUT`` carries tensor T.
LAYER_INPUT = "__layer_in"


def layerwise(exposed: onnx.ModelProto, names: Iterable[str]) -> onnx.ModelProto:
    """A copy of an exposed QDQ model whose groups no longer feed each other: every
    DequantizeLinear that reads one of the exposed 8-bit tensors ``names`` reads a new
    graph input ``name + LAYER_INPUT`` instead. Fed a reference's tensors, each group's
    output is then that group alone, compared from the same input (one layer, not the
    network's compounded differences)."""
    out = onnx.ModelProto()
    out.CopyFrom(exposed)
    known = set(names)
    types = {o.name: o for o in out.graph.output}
    added: dict[str, onnx.ValueInfoProto] = {}
    for node in out.graph.node:
        if node.op_type == "DequantizeLinear" and node.input[0] in known:
            name = node.input[0] + LAYER_INPUT
            if name not in added:
                added[name] = onnx.ValueInfoProto()
                added[name].CopyFrom(types[node.input[0]])
                added[name].name = name
            node.input[0] = name
    out.graph.input.extend(added.values())
    return out


# ------------------------------------------------------------------- quantization


@dataclass(frozen=True)
class QuantConfig:
    """One ``quantize_static`` setting for a ``sqzc.tools.zoo`` model."""

    model: str  # sqzc.tools.zoo name
    fmt: str  # "qdq" (QuantFormat.QDQ) or "qop" (QuantFormat.QOperator)
    per_channel: bool
    reduce_range: bool
    activation: str  # "u8" (QUInt8) or "s8" (QInt8); weights are always QInt8
    all_ops: bool = False  # quantize_static's default op types (Softmax included)

    @property
    def id(self) -> str:
        return (f"{self.model}-{self.fmt}-{'pc' if self.per_channel else 'pt'}"
                f"{'-rr' if self.reduce_range else ''}-{self.activation}"
                f"{'-allops' if self.all_ops else ''}")


#: Zoo build arguments: small images keep the int8 kernels and quantize_static fast;
#: the graph and channel counts are SqueezeNet's (100 classes instead of 1000).
ZOO_ARGS = {"opset": 13, "seed": 0, "image_size": 64, "num_classes": 100}
CALIBRATION_SEEDS = (100, 101, 102, 103)
#: Every quantizable op of the zoo graphs except Softmax: onnxruntime would turn it into
#: com.microsoft QLinearSoftmax, which sqzc does not import. (Unlike the MANIFEST's
#: derived models, Concat is quantized: QOperator gives com.microsoft QLinearConcat.)
OP_TYPES = ["Conv", "Relu", "MaxPool", "Concat", "GlobalAveragePool"]


def quantize(cfg: QuantConfig, workdir: Path, source: Path | None = None,
             calibration: Iterable[np.ndarray] | None = None) -> Path:
    """Build the zoo model (or take the float model ``source``), ``quant_pre_process`` it
    like the MANIFEST, ``quantize_static`` with MinMax calibration on 4 seeded noise
    images (or ``calibration``); returns the quantized file."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sqzc.tools.zoo import build

    workdir.mkdir(parents=True, exist_ok=True)
    base = source or workdir / f"{cfg.model}.onnx"
    pre = workdir / f"{cfg.model}.pre.onnx"
    if not pre.exists():
        if source is None:
            onnx.save(build(cfg.model, **ZOO_ARGS), base)  # type: ignore[arg-type]
        quant_pre_process(str(base), str(pre), skip_symbolic_shape=True)
    if calibration is None:
        calibration = noise_inputs(CALIBRATION_SEEDS, int(ZOO_ARGS["image_size"])).values()
    batches = [{INPUT: x} for x in calibration]

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    out = workdir / f"{cfg.id}.onnx"
    act = QuantType.QUInt8 if cfg.activation == "u8" else QuantType.QInt8
    quantize_static(str(pre), str(out), Reader(),
                    quant_format=QuantFormat.QDQ if cfg.fmt == "qdq" else QuantFormat.QOperator,
                    op_types_to_quantize=None if cfg.all_ops else OP_TYPES,
                    per_channel=cfg.per_channel,
                    reduce_range=cfg.reduce_range, activation_type=act,
                    weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    return out


@dataclass(frozen=True)
class Exposed:
    """A model with its 8-bit intermediates exposed, saved where it is compiled from."""

    path: Path
    model: onnx.ModelProto
    names: list[str]  # the exposed 8-bit tensors, in node order


class ExposedModels:
    """Exposed copies of the shared int8 models and of quantized zoo models, made once
    per session in ``workdir`` (quantize_static takes ~0.5 s per configuration)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._cache: dict[object, Exposed] = {}

    def _save(self, key: object, stem: str, model: onnx.ModelProto) -> Exposed:
        if key not in self._cache:
            exposed, names = expose_8bit(model)
            path = self.workdir / f"{stem}.exposed.onnx"
            path.write_bytes(exposed.SerializeToString())
            self._cache[key] = Exposed(path, exposed, names)
        return self._cache[key]

    def file(self, path: Path) -> Exposed:
        return self._cache.get(path) or self._save(path, path.stem, onnx.load(path))

    def zoo(self, cfg: QuantConfig) -> Exposed:
        if cfg in self._cache:
            return self._cache[cfg]
        return self._save(cfg, cfg.id, onnx.load(quantize(cfg, self.workdir / "quantized")))

    def zoo_layerwise(self, cfg: QuantConfig) -> Exposed:
        """``layerwise`` of the exposed zoo model (same ``names``)."""
        key = ("layerwise", cfg)
        if key not in self._cache:
            e = self.zoo(cfg)
            model = layerwise(e.model, e.names)
            path = self.workdir / f"{cfg.id}.layerwise.onnx"
            path.write_bytes(model.SerializeToString())
            self._cache[key] = Exposed(path, model, e.names)
        return self._cache[key]


# ------------------------------------------------------------------------ running


class OrtRunner:
    """onnxruntime CPU session with one intra-op thread. ``optimized=False`` disables every
    graph optimization (``ORT_DISABLE_ALL``: QDQ groups run as literal float ops);
    ``config`` adds session config entries (e.g. ``session.qdqisint8allowed``)."""

    def __init__(self, model: onnx.ModelProto, optimized: bool = True,
                 config: Mapping[str, str] | None = None) -> None:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        if not optimized:
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        for key, value in (config or {}).items():
            so.add_session_config_entry(key, value)
        self.sess = ort.InferenceSession(model.SerializeToString(), so,
                                         providers=["CPUExecutionProvider"])
        self.names = [o.name for o in self.sess.get_outputs()]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return self.run({INPUT: x})

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.names, self.sess.run(None, dict(feeds))))


@dataclass(frozen=True)
class StepDiff:
    """Where two 8-bit tensors differ: element count and largest difference in steps."""

    name: str
    count: int
    max_steps: int
    size: int

    def __str__(self) -> str:
        return f"{self.name}: {self.count}/{self.size} elements, max {self.max_steps} step(s)"


def step_diff(name: str, got: np.ndarray, want: np.ndarray) -> StepDiff:
    """Compare two 8-bit tensors of the same shape and dtype, in integer steps."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    assert got.dtype in (np.uint8, np.int8), f"{name}: {got.dtype} is not 8-bit"
    d = np.abs(got.astype(np.int32) - want.astype(np.int32))
    return StepDiff(name, int(np.count_nonzero(d)), int(d.max(initial=0)), d.size)


def step_diffs(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray],
               names: Iterable[str]) -> list[StepDiff]:
    """``step_diff`` of every tensor in ``names`` that differs at all (node order)."""
    diffs = [step_diff(n, got[n], want[n]) for n in names]
    return [d for d in diffs if d.count]


def summarize(diffs: list[StepDiff]) -> tuple[int, int]:
    """(total differing elements, largest difference in steps)."""
    return sum(d.count for d in diffs), max((d.max_steps for d in diffs), default=0)


def precompile(jobs: Iterable[tuple[Path, int]]) -> None:
    """Warm ``sqz_testing``'s library cache for ``(model file, -O level)`` pairs using
    worker processes.

    Only a cache warm-up (``model_libs.compile_all``): failures are ignored here and
    reported by the test that compiles the model again. ``SQZC_TEST_SERIAL=1`` skips it.
    """
    if os.environ.get("SQZC_TEST_SERIAL") == "1":
        return
    from model_libs import Lib, compile_all

    compile_all([Lib(str(Path(p).resolve()), opt_level=level) for p, level in jobs])
