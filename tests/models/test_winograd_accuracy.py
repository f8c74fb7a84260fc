"""Whole-model error of Winograd convolutions against a float64 reference.

Issue 9's bound: with Winograd on, the max abs error of the whole model against float64
stays within 1e-4 x max|reference|. Checked on the logits (the softmax is cut off, since
it would hide errors) of SqueezeNet 1.0 and 1.1 from ``sqzc.tools.zoo`` (seeded weights) and of
the pretrained fp32 SqueezeNet 1.0 on a real photo when the shared folder is present.
The float64 reference is onnx's own evaluator on a float64 copy of the model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from int8_helpers import preprocess
from model_libs import find_shared_dir
from onnx import TensorProto, numpy_helper
from onnx.reference import ReferenceEvaluator

import sqzc
from sqzc.driver import CompileOptions
from sqzc.ops import ConvAttrs
from sqzc.tools.zoo import build

RTOL = 1e-4


def logits_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` without its final Softmax: the output is the softmax's input."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    last = model.graph.node[-1]
    assert last.op_type == "Softmax", last.op_type
    out = model.graph.output[0]
    del model.graph.node[-1]
    out.name = last.input[0]
    return model


def float64_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    m = onnx.ModelProto.FromString(model.SerializeToString())
    for t in m.graph.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float64),
                                               t.name))
    for v in list(m.graph.input) + list(m.graph.output):
        v.type.tensor_type.elem_type = TensorProto.DOUBLE
    del m.graph.value_info[:]
    weights = {t.name for t in m.graph.initializer}
    data = next(v.name for v in m.graph.input if v.name not in weights)
    return ReferenceEvaluator(m).run(None, {data: x.astype(np.float64)})[0]


def _sources() -> list[object]:
    # the pretrained "1.0" file has SqueezeNet 1.1's graph: zoo-1.1 is the exhaustive tier's
    out: list[object] = [
        ("zoo-1.0", "squeezenet1.0"),
        pytest.param("zoo-1.1", "squeezenet1.1", marks=pytest.mark.exhaustive)]
    shared = find_shared_dir()
    if shared is not None:
        path = shared / "models/derived/squeezenet1.0-7-fp32.derived.onnx"
        if path.is_file():
            out.append(("pretrained-1.0", path))
    return out


@pytest.mark.parametrize("name,source", _sources(),
                         ids=[p.values[0] if hasattr(p, "values") else p[0] for p in _sources()])
def test_whole_model_error_against_float64(name: str, source: object, tmp_path: Path) -> None:
    if isinstance(source, Path):
        model = onnx.load(source)
        pytest.importorskip("PIL.Image")
        x = preprocess(source.parents[2] / "data/images/dog.jpg")
    else:
        model = build(str(source))
        x = np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)
    model = logits_model(model)
    path = tmp_path / "logits.onnx"
    onnx.save(model, path)
    want = float64_reference(model, x)
    scale = np.abs(want).max()
    errors = {}
    for winograd in (True, False):
        lib = tmp_path / f"lib-{winograd}.so"
        result = sqzc.compile(path, lib, CompileOptions(winograd=winograd))
        tiles = [result.graph.op(n).attrs.winograd for n in result.graph.nodes()
                 if isinstance(result.graph.op(n).attrs, ConvAttrs)]
        assert any(tiles) == winograd
        got = sqzc.load(lib, threads=1)(x).astype(np.float64)
        errors[winograd] = np.abs(got - want).max() / scale
    print(f"{name}: max abs error / max|ref|: winograd {errors[True]:.2e}, "
          f"direct {errors[False]:.2e}")
    assert errors[True] <= RTOL, errors
    assert errors[False] <= RTOL, errors
