"""float16 models (the Windows ML / onnxmltools ``convert_float_to_float16`` pattern:
float16 inputs, outputs and weights) and float32<->float16 Cast, compared with the
float16 tolerance of the table in sqz_testing (one float16 ulp at the output's magnitude)."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper
from onnx_builders import F16, F32, init, make_model, rand, single
from sqz_testing import assert_matches_ort


def _f16(shape: list[int] | tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return rand(shape, seed, scale).astype(np.float16)


X = [1, 3, 6, 6]

#: (op, attributes, float16 initializers) for one-node float16 models.
F16_OPS = [
    ("Relu", {}, []),
    ("LeakyRelu", {"alpha": 0.1}, []),
    ("Clip", {}, [("lo", np.array(0, np.float16)), ("hi", np.array(1, np.float16))]),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, []),
    ("MaxPool", {"kernel_shape": [2, 2], "pads": [1, 1, 0, 0]}, []),
    ("AveragePool", {"kernel_shape": [2, 2], "strides": [2, 2]}, []),
    ("GlobalAveragePool", {}, []),
    ("GlobalMaxPool", {}, []),
    ("Transpose", {"perm": [0, 2, 3, 1]}, []),
    ("Flatten", {"axis": 1}, []),
    ("Add", {}, [("c", None)]),
    ("Mul", {}, [("c", None)]),
    ("Conv", {"pads": [1, 1, 1, 1]}, [("W", (4, 3, 3, 3)), ("B", (4,))]),
    ("Conv", {"kernel_shape": [1, 1]}, [("W", (2, 3, 1, 1))]),
    ("Softmax", {"axis": -1}, []),
    ("ReduceMean", {"axes": [2, 3], "keepdims": 1}, []),
]


@pytest.mark.parametrize("op,attrs,inits", F16_OPS,
                         ids=[f"{o}-{i}" for i, (o, _, _) in enumerate(F16_OPS)])
def test_float16_io_one_op(op: str, attrs: dict, inits: list) -> None:
    """float16 in, float16 weights, float16 out (sqzc widens to float32 inside and rounds
    once at the output; onnxruntime computes in float16)."""
    tensors = []
    for i, (name, v) in enumerate(inits):
        if v is None:
            v = _f16((3, 1, 1), 10 + i)
        elif isinstance(v, tuple):
            v = _f16(v, 10 + i, 0.3)
        tensors.append(init(name, v))
    m = single(op, [("x", X, F16)], initializers=tensors, out_type=F16, **attrs)
    assert_matches_ort(m, inputs={"x": _f16(X, 1)})


def test_float16_squeezenet_fire() -> None:
    """A float16 SqueezeNet Fire module (Conv1x1 -> Relu -> [Conv1x1, Conv3x3] -> Relu ->
    Concat) like ``squeezenet1.1_fp16.onnx``."""
    w = {"Ws": _f16((2, 3, 1, 1), 2, 0.5), "We1": _f16((3, 2, 1, 1), 3, 0.5),
         "We3": _f16((3, 2, 3, 3), 4, 0.3), "Bs": _f16((2,), 5, 0.1)}
    nodes = [helper.make_node("Conv", ["x", "Ws", "Bs"], ["s"]),
             helper.make_node("Relu", ["s"], ["sr"]),
             helper.make_node("Conv", ["sr", "We1"], ["e1"]),
             helper.make_node("Conv", ["sr", "We3"], ["e3"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["e1"], ["r1"]),
             helper.make_node("Relu", ["e3"], ["r3"]),
             helper.make_node("Concat", ["r1", "r3"], ["y"], axis=1)]
    m = make_model(nodes, [("x", [1, 3, 5, 5], F16)], [("y", F16)],
                   [init(k, v) for k, v in w.items()])
    assert_matches_ort(m, inputs={"x": _f16([1, 3, 5, 5], 6)})


@pytest.mark.parametrize("opset", [6, 13, 19, 21])
@pytest.mark.parametrize("direction", ["f32->f16", "f16->f32"])
def test_cast_float32_float16(opset: int, direction: str) -> None:
    """Cast between float32 and float16 at the model boundary (mixed-precision exports
    keep float32 IO and Cast around a float16 body, or vice versa); values include
    float16 overflow (-> inf), subnormals, ties and +-0."""
    src, dst = (F32, F16) if direction == "f32->f16" else (F16, F32)
    x = rand((2, 16), 3, 100.0)
    x[0, :8] = [70000.0, -70000.0, 65504.0, 6e-8, -3e-5, 1.0 + 2 ** -11, 0.0, -0.0]
    with np.errstate(over="ignore"):  # +-70000 overflow float16 on purpose
        x = x.astype(np.float32 if src == F32 else np.float16)
    if src == F16:
        x[0, :2] = [np.inf, -np.inf]
    m = single("Cast", [("x", [2, 16], src)], opset=opset, out_type=dst, to=dst)
    assert_matches_ort(m, inputs={"x": x})


def test_cast_sandwich() -> None:
    """float16 IO with the body in float32: Cast(f32) -> Conv -> Relu -> Cast(f16)."""
    nodes = [helper.make_node("Cast", ["x"], ["xf"], to=F32),
             helper.make_node("Conv", ["xf", "W"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("Cast", ["r"], ["y"], to=F16)]
    m = make_model(nodes, [("x", [1, 3, 5, 5], F16)], [("y", F16)],
                   [init("W", rand((4, 3, 3, 3), 7, 0.4))])
    assert_matches_ort(m, inputs={"x": _f16([1, 3, 5, 5], 8)})


def test_cast_to_same_type() -> None:
    """Cast to the input's own type is a no-op copy."""
    m = single("Cast", {"x": [1, 3, 2, 2]}, to=F32)
    assert_matches_ort(m)


def test_float32_model_float16_weights() -> None:
    """float32 IO, float16 initializer upcast by a Cast node (onnxconverter-common's
    ``keep_io_types=True``)."""
    nodes = [helper.make_node("Cast", ["W16"], ["W"], to=F32),
             helper.make_node("Conv", ["x", "W"], ["y"], pads=[0, 1, 0, 1])]
    m = make_model(nodes, {"x": [1, 3, 5, 5]}, ["y"], [init("W16", _f16((2, 3, 3, 3), 9))])
    assert_matches_ort(m)


@pytest.mark.parametrize("opset,bounds", [(6, {"min": -1.0}), (6, {}), (13, "lo"),
                                          (13, None)], ids=str)
def test_float16_clip_missing_bound_infinities(opset: int, bounds: object) -> None:
    """Clip on float16 with a missing bound. Clip-13's default is float16 lowest/max, so
    +-inf inputs clip to +-65504; Clip-6's bounds are float attributes defaulting to the
    float32 range, so +-inf stays +-inf in float16."""
    x = _f16([1, 8], 24)
    x[0, :3] = [np.inf, -np.inf, 60000.0]
    if opset == 6:
        m = single("Clip", [("x", [1, 8], F16)], opset=6, out_type=F16, **bounds)
    else:
        inits = [init("lo", np.array(-1, np.float16))] if bounds == "lo" else []
        m = single("Clip", [("x", [1, 8], F16)], opset=opset, out_type=F16,
                   initializers=inits)
    assert_matches_ort(m, inputs={"x": x})
