"""Tests for ``sqzc.tools.zoo``: valid ONNX at every opset, the published sizes, runnable
outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper, shape_inference

from sqzc.errors import UsageError
from sqzc.tools.zoo import SQUEEZENETS, ZOO, build

NAMES = sorted(SQUEEZENETS)  # the torchvision families: tests/models/test_zoo_families.py
OPSETS = (7, 11, 13, 17, 21)
REAL_MODEL = Path(__file__).resolve().parents[3] / "shared" / "models" / "SqueezeNet_fp16.onnx"


def _dims(vi: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in vi.type.tensor_type.shape.dim]


def _conv_macs(model: onnx.ModelProto) -> int:
    """Multiply-accumulates of all Conv nodes, from weight shapes and inferred output shapes."""
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    shapes = {vi.name: _dims(vi) for vi in inferred.graph.value_info}
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            cout, cin_per_group, kh, kw = weights[node.input[1]]
            _, _, oh, ow = shapes[node.output[0]]
            total += cout * cin_per_group * kh * kw * int(oh) * int(ow)
    return total


def _run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (out,) = sess.run(None, {"data_0": x})
    return out


def _assert_probabilities(p: np.ndarray, batch: int, classes: int = 1000) -> None:
    assert p.shape == (batch, classes, 1, 1)
    rows = p.reshape(batch, classes).astype(np.float64)
    assert not np.isnan(rows).any()
    atol = 5e-3 if p.dtype == np.float16 else 1e-5
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=0, atol=atol)
    assert rows.max() < 0.999, "softmax is (nearly) one-hot: weights are badly scaled"
    assert rows.min(axis=1).max() > 0, "all-zero probabilities: logits exploded"
    assert (rows.max(axis=1) - rows.min(axis=1)).min() > 1e-5, "flat softmax: logits vanished"


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", NAMES)
def test_checker_full_check(name: str, opset: int) -> None:
    """Every spelling (opset, dtype, batch) must be valid ONNX, or importers test garbage."""
    for dtype in ("float32", "float16"):
        for batch in (1, None):
            model = build(name, opset=opset, dtype=dtype, batch=batch)
            onnx.checker.check_model(model, full_check=True)
            assert model.opset_import[0].version == opset


@pytest.mark.parametrize("name", NAMES)
def test_io_names_and_shapes(name: str) -> None:
    """IO names, symbolic batch, num_classes, image_size and dtype reach the graph IO."""
    model = build(name, batch=None, num_classes=10, image_size=227)
    (inp,) = model.graph.input
    (out,) = model.graph.output
    assert (inp.name, _dims(inp)) == ("data_0", ["N", 3, 227, 227])
    assert (out.name, _dims(out)) == ("softmaxout_1", ["N", 10, 1, 1])
    assert out.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    half = build(name, dtype="float16")
    assert half.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    assert {t.data_type for t in half.graph.initializer} == {onnx.TensorProto.FLOAT16}


@pytest.mark.parametrize("name", NAMES)
def test_fire_structure_and_names(name: str) -> None:
    """Node names follow the Caffe model; bypass Adds/convs sit where the paper puts them."""
    model = build(name)
    names = {n.name for n in model.graph.node}
    for i in range(2, 10):
        assert {f"fire{i}/squeeze1x1", f"fire{i}/expand1x1", f"fire{i}/expand3x3"} <= names
    adds = sorted(n.name for n in model.graph.node if n.op_type == "Add")
    bypass_convs = sorted(n.name for n in model.graph.node if n.name.endswith("bypass1x1"))
    if name.endswith("simple-bypass"):
        assert adds == [f"fire{i}/bypass" for i in (3, 5, 7, 9)] and not bypass_convs
    elif name.endswith("complex-bypass"):
        assert adds == [f"fire{i}/bypass" for i in range(2, 10)]
        assert bypass_convs == [f"fire{i}/bypass1x1" for i in (2, 4, 6, 8)]
    else:
        assert not adds and not bypass_convs
    ops = [n.op_type for n in model.graph.node]
    assert ops[-5:] == ["Dropout", "Conv", "Relu", "GlobalAveragePool", "Softmax"]


@pytest.mark.parametrize(("opset", "attr"), [(7, True), (11, True), (12, False), (21, False)])
def test_dropout_and_pool_spelling(opset: int, attr: bool) -> None:
    """Dropout ratio is an attribute only before opset 12; ceil_mode only from opset 10."""
    model = build("squeezenet1.0", opset=opset)
    (drop,) = [n for n in model.graph.node if n.op_type == "Dropout"]
    assert [a.name for a in drop.attribute] == (["ratio"] if attr else [])
    assert list(drop.input) == ["fire9/concat_1"]
    pools = [n for n in model.graph.node if n.op_type == "MaxPool"]
    attrs = [a for p in pools for a in p.attribute]
    ceil = [onnx.helper.get_attribute_value(a) for a in attrs if a.name == "ceil_mode"]
    assert ceil == ([1, 1, 1] if opset >= 10 else [])


@pytest.mark.parametrize(("name", "mmacs"), [("squeezenet1.0", 819), ("squeezenet1.1", 349)])
def test_published_mac_counts(name: str, mmacs: float) -> None:
    """Conv MACs match the published 819M / 349M, so the layer shapes are the real ones."""
    for opset in (7, 13):  # opset 7 emulates ceil_mode with end padding: same shapes
        macs = _conv_macs(build(name, opset=opset))
        assert macs == pytest.approx(mmacs * 1e6, rel=0.03)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_runs(name: str, opset: int) -> None:
    """A reference runtime accepts each opset and the softmax is neither one-hot nor flat."""
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    _assert_probabilities(_run(build(name, opset=opset), x), batch=1)


@pytest.mark.parametrize("name", NAMES)
def test_onnxruntime_float16(name: str) -> None:
    """The float16 variant runs in fp16 end to end without overflow."""
    x = np.random.default_rng(2).standard_normal((1, 3, 224, 224)).astype(np.float16)
    p = _run(build(name, dtype="float16", opset=13), x)
    assert p.dtype == np.float16
    _assert_probabilities(p, batch=1)
    # Caffe-style raw pixels must not overflow fp16 (65504) anywhere.
    raw = np.random.default_rng(3).uniform(0, 255, (1, 3, 224, 224)).astype(np.float16)
    assert np.isfinite(_run(build(name, dtype="float16", opset=7), raw)).all()


@pytest.mark.parametrize("name", NAMES)
def test_symbolic_batch_runs_at_3(name: str) -> None:
    """batch=None really is dynamic, and each row is computed independently."""
    model = build(name, batch=None)
    x = np.random.default_rng(4).standard_normal((3, 3, 224, 224)).astype(np.float32)
    p = _run(model, x)
    _assert_probabilities(p, batch=3)
    one = _run(model, x[1:2])  # rows are independent
    np.testing.assert_allclose(p[1:2], one, rtol=1e-4, atol=1e-7)


def test_seed_determinism() -> None:
    """Same arguments give byte-identical models; another seed gives other weights."""
    a, b = build("squeezenet1.1", seed=5), build("squeezenet1.1", seed=5)
    assert a.SerializeToString() == b.SerializeToString()
    c = build("squeezenet1.1", seed=6)
    wa, wc = (numpy_helper.to_array(m.graph.initializer[0]) for m in (a, c))
    assert not np.array_equal(wa, wc)


def test_registry_builders_match_build() -> None:
    """ZOO's builders are ``build`` with the name bound, and carry a description (the
    families' builders: tests/models/test_zoo_families.py)."""
    assert all(builder.__doc__ for builder in ZOO.values())
    for name in NAMES:
        assert ZOO[name](opset=11).SerializeToString() == build(name, opset=11).SerializeToString()


@pytest.mark.parametrize(
    "kwargs",
    [{"opset": 6}, {"dtype": "int8"}, {"batch": 0}, {"num_classes": 0}, {"image_size": 16}],
)
def test_bad_arguments_raise_usage_error(kwargs: dict[str, object]) -> None:
    """Bad options are the user's error (UsageError), not an onnx or numpy crash."""
    with pytest.raises(UsageError):
        build("squeezenet1.0", **kwargs)  # type: ignore[arg-type]


def test_unknown_name_lists_valid_names() -> None:
    """The error for a typo tells the user what the valid names are."""
    with pytest.raises(UsageError) as info:
        build("resnet50")
    for name in NAMES:
        assert name in str(info.value)


def test_matches_real_caffe2_model() -> None:
    """The shared pretrained file is the v1.1 graph (conv1 64 3x3/2) despite its 1.0 label."""
    if not REAL_MODEL.exists():
        pytest.skip(f"shared model not found: {REAL_MODEL}")
    real = onnx.load(str(REAL_MODEL))
    ours = build("squeezenet1.1", opset=7, dtype="float16")
    assert len(real.graph.node) == len(ours.graph.node)
    for r, o in zip(real.graph.node, ours.graph.node, strict=True):
        assert (r.op_type, list(r.input), r.output[0]) == (o.op_type, list(o.input), o.output[0])
        if r.op_type in ("Conv", "MaxPool"):
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in r.attribute}
            mine = {a.name: onnx.helper.get_attribute_value(a) for a in o.attribute}
            assert attrs == mine, o.name
    shapes = {t.name: list(t.dims) for t in real.graph.initializer}
    assert shapes == {t.name: list(t.dims) for t in ours.graph.initializer}


@pytest.mark.parametrize("kind", ["int8", "int4", "int4-blocked"])
def test_weight_qdq_codes_and_scales(kind: str) -> None:
    """``quantize_weights``: codes in the type's range, zeros kept, every weight within
    half a step of its dequantized code, and the scale tensor ONNX's blocked shape."""
    from sqzc.tools.zoo import QDQ_BLOCK, quantize_weights

    w = np.random.default_rng(1).standard_normal((8, 40, 3, 3))
    w[0, :5] = 0.0
    codes, scale, axis, block = quantize_weights(w, kind)
    qmax = 127 if kind == "int8" else 7
    assert codes.min() >= -qmax - 1 and codes.max() <= qmax and not codes[0, :5].any()
    if block:
        assert (axis, block, scale.shape) == (1, QDQ_BLOCK, (8, 3, 3, 3))
        step = np.repeat(scale, QDQ_BLOCK, axis=1)[:, :40]
    else:
        assert (axis, scale.shape) == (0, (8,))
        step = scale.reshape(-1, 1, 1, 1)
    assert np.all(np.abs(w - codes * step) <= step / 2 * (1 + 1e-6))
    model = build("squeezenet1.1", opset=21, weight_qdq=kind, num_classes=10, image_size=64)
    onnx.checker.check_model(model, full_check=True)


@pytest.mark.parametrize("kwargs", [{"weight_qdq": "int4", "opset": 13},
                                    {"weight_qdq": "int2", "opset": 21},
                                    {"weight_qdq": "int8", "dtype": "float16"}])
def test_weight_qdq_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        build("squeezenet1.1", **kwargs)  # type: ignore[arg-type]
