"""The torchvision families of ``sqzc.tools.zoo_families``: valid ONNX at opsets 13 and 17,
torchvision's exact topology (parameter counts), runnable with finite, non-degenerate
logits, deterministic. Built at 64x64 (the topology does not depend on the size) to keep
the file at a few tens of seconds; nothing here compiles them with sqzc.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from onnx import numpy_helper, shape_inference

from sqzc.errors import UsageError
from sqzc.tools.zoo import DESCRIPTIONS, ZOO, build
from sqzc.tools.zoo_families import FAMILIES, INPUT_NAME, OUTPUT_NAME

ort = pytest.importorskip("onnxruntime")

SIZE = 64
OPSETS = (13, 17)
#: sum(p.numel() for p in torchvision.models.<name>().parameters()), as torchvision's
#: model docs publish them (GoogLeNet without its aux heads, as the pretrained model).
TORCHVISION_PARAMS = {
    "resnet18": 11_689_512, "mobilenet_v2": 3_504_872, "mobilenet_v3_small": 2_542_856,
    "mobilenet_v3_large": 5_483_032, "efficientnet_b0": 5_288_548,
    "shufflenet_v2_x1_0": 2_278_604, "mnasnet0_5": 2_218_512, "regnet_x_400mf": 5_495_976,
    "googlenet": 6_624_904, "densenet121": 7_978_856,
}  # fmt: skip


@functools.cache
def _model(name: str, opset: int, batch: int | None = 1, dtype: str = "float32",
           seed: int = 0) -> onnx.ModelProto:
    return build(name, opset=opset, batch=batch, dtype=dtype, seed=seed, image_size=SIZE)


def _run(model: onnx.ModelProto, batch: int = 1, seed: int = 0) -> np.ndarray:
    dtype = np.float16 if model.graph.input[0].type.tensor_type.elem_type == \
        onnx.TensorProto.FLOAT16 else np.float32
    x = np.random.default_rng(seed).standard_normal((batch, 3, SIZE, SIZE)).astype(dtype)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    return sess.run([OUTPUT_NAME], {INPUT_NAME: x})[0]


def _assert_sane_logits(y: np.ndarray, batch: int) -> None:
    assert y.shape == (batch, 1000)
    assert np.isfinite(y).all()
    for row in y.astype(np.float64):  # far from constant, and not blown up
        assert 0.2 < row.std() < 10, row.std()
        assert len(np.unique(row)) > 900


def torchvision_count(model: onnx.ModelProto) -> int:
    """torchvision's parameter count reconstructed from the folded graph's topology.

    Every Conv with a bias input is BatchNorm-folded (torchvision: conv without bias, BN
    with weight and bias: 2 * C_out where the graph has C_out), except the squeeze-excite
    convs ``fc1`` / ``fc2`` (their own bias, no BN): those are the convs on a
    GlobalAveragePool and the convs on an activation of such a conv. A Conv without bias
    had no BN after it; a kept BatchNormalization counts weight and bias (its running
    statistics are buffers); a Gemm is a Linear with bias.
    """
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}

    def op_of(tensor: str) -> str:
        return producer[tensor].op_type if tensor in producer else ""

    def on_pool(conv: onnx.NodeProto) -> bool:
        return op_of(conv.input[0]) == "GlobalAveragePool"

    total = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            w = init[node.input[1]]
            total += w.size
            if len(node.input) > 2:
                src = producer.get(node.input[0])
                squeeze_excite = on_pool(node) or (
                    src is not None and src.op_type in ("Relu", "Mul")
                    and any(op_of(i) == "Conv" and on_pool(producer[i]) for i in src.input))
                total += w.shape[0] * (1 if squeeze_excite else 2)
        elif node.op_type == "Gemm":
            total += init[node.input[1]].size + init[node.input[2]].size
        elif node.op_type == "BatchNormalization":
            total += init[node.input[1]].size + init[node.input[2]].size
    return total


def test_registered_in_the_zoo() -> None:
    assert set(FAMILIES) == set(TORCHVISION_PARAMS)
    assert set(FAMILIES) <= set(ZOO) and set(FAMILIES) <= set(DESCRIPTIONS)
    assert all(DESCRIPTIONS[name] and "\n" not in DESCRIPTIONS[name] for name in FAMILIES)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_valid_topology_and_runs(name: str, opset: int) -> None:
    """Checker (full), strict shape inference to [1, 1000], torchvision's parameter count,
    and onnxruntime logits that are finite and far from constant."""
    model = _model(name, opset)
    onnx.checker.check_model(model, full_check=True)
    inferred = shape_inference.infer_shapes(model, strict_mode=True)
    dims = [d.dim_value for d in inferred.graph.output[0].type.tensor_type.shape.dim]
    assert dims == [1, 1000]
    assert model.opset_import[0].version == opset
    assert torchvision_count(model) == TORCHVISION_PARAMS[name]
    _assert_sane_logits(_run(model), 1)


def test_exporter_spellings() -> None:
    """What the TorchScript exporter writes: HardSwish from opset 14 (HardSigmoid+Mul at
    13), ReLU6 as Clip with min/max inputs, SiLU as Sigmoid+Mul, chunk as Split with sizes,
    DenseNet's pre-activation BatchNorms kept, node names by module scope."""
    def ops(name: str, opset: int) -> set[str]:
        return {n.op_type for n in _model(name, opset).graph.node}

    assert "HardSwish" in ops("mobilenet_v3_small", 17)
    assert "HardSwish" not in ops("mobilenet_v3_small", 13)
    assert "HardSigmoid" in ops("mobilenet_v3_small", 13)
    clip = next(n for n in _model("mobilenet_v2", 13).graph.node if n.op_type == "Clip")
    assert len(clip.input) == 3
    assert {"Sigmoid", "Mul"} <= ops("efficientnet_b0", 13)
    split = next(n for n in _model("shufflenet_v2_x1_0", 13).graph.node if n.op_type == "Split")
    assert len(split.input) == 2 and len(split.output) == 2
    assert {"Reshape", "Transpose", "ReduceMean", "MaxPool"} <= ops("shufflenet_v2_x1_0", 13)
    bns = [n for n in _model("densenet121", 13).graph.node if n.op_type == "BatchNormalization"]
    assert len(bns) == 58 + 3 + 1  # norm1 of each dense layer, transitions, norm5
    names = [n.name for n in _model("resnet18", 13).graph.node]
    assert names[0] == "/conv1/Conv" and "/layer1/layer1.0/conv1/Conv" in names


@pytest.mark.parametrize("name", ["shufflenet_v2_x1_0", "mobilenet_v3_small", "densenet121"])
def test_symbolic_batch(name: str) -> None:
    """``batch=None``: input and output [N, ...]; batch 2 runs, each row as batch 1 does."""
    model = _model(name, 17, batch=None)
    onnx.checker.check_model(model, full_check=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    y = _run(model, batch=2, seed=3)
    _assert_sane_logits(y, 2)
    x1 = _run(_model(name, 17, batch=None), batch=1, seed=3)
    np.testing.assert_allclose(y[:1], x1, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "efficientnet_b0", "resnet18"])
def test_float16(name: str) -> None:
    model = _model(name, 17, dtype="float16")
    onnx.checker.check_model(model, full_check=True)
    _assert_sane_logits(_run(model), 1)


def test_deterministic_and_seeded() -> None:
    """Same arguments -> byte-identical model; another seed -> other weights."""
    for name in ("mobilenet_v2", "googlenet"):
        a = build(name, opset=13, image_size=SIZE).SerializeToString()
        assert a == build(name, opset=13, image_size=SIZE).SerializeToString()
        assert a != build(name, opset=13, image_size=SIZE, seed=1).SerializeToString()


@pytest.mark.parametrize("kwargs", [{"opset": 12}, {"density": 0.5}, {"codebook_bits": 4},
                                    {"weight_qdq": "int8"}, {"image_size": 8}])
def test_refused_arguments(kwargs: dict[str, object]) -> None:
    """Opsets before 13, the SqueezeNet-only options and too-small images: UsageError."""
    with pytest.raises(UsageError):
        build("densenet121", **kwargs)  # type: ignore[arg-type]
