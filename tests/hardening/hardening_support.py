"""Small models and helpers shared by the hardening tests (tests/hardening).

``mini_squeezenet`` is SqueezeNet v1.1 shrunk to the bone but with the real structure and
the real naming (``data_0`` -> conv1/relu -> pool1 -> fire2 -> fire3 -> pool3 -> drop9 ->
conv10/relu -> pool10 (GlobalAveragePool) -> prob (Softmax) -> ``softmaxout_1``): every op
kind and every pattern the compiler's passes look for (conv+relu fusion, concat
elimination, dropout removal) is present, yet a compile takes a fraction of a second.

Only onnx and numpy are imported here, so the fuzz worker can import this module cheaply.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

_ELEM = {"float32": TensorProto.FLOAT, "float16": TensorProto.FLOAT16}


def _shape(batch: int | None, dims: list[int]) -> list[int | str]:
    return ["N" if batch is None else batch, *dims]


def mini_squeezenet(opset: int = 13, batch: int | None = 1, dtype: str = "float32",
                    image_size: int = 17, num_classes: int = 10, seed: int = 0,
                    squeeze: int = 4, expand: int = 8, conv1: int = 8) -> onnx.ModelProto:
    """A two-fire SqueezeNet v1.1 with seeded He-normal weights (see module docstring)."""
    rng = np.random.default_rng(seed)
    npd = np.dtype(dtype)
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []

    def conv(layer: str, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0,
             relu: bool = True, gain: float = 1.0) -> str:
        w = rng.standard_normal((cout, cin, k, k)) * gain * np.sqrt(2.0 / (cin * k * k))
        b = rng.standard_normal(cout) * 0.05
        inits.append(numpy_helper.from_array(w.astype(npd), f"{layer}_w_0"))
        inits.append(numpy_helper.from_array(b.astype(npd), f"{layer}_b_0"))
        nodes.append(helper.make_node("Conv", [x, f"{layer}_w_0", f"{layer}_b_0"],
                                      [f"{layer}_1"], name=layer, kernel_shape=[k, k],
                                      strides=[stride, stride], pads=[pad] * 4))
        if not relu:
            return f"{layer}_1"
        prefix, _, base = layer.rpartition("/")
        nodes.append(helper.make_node("Relu", [f"{layer}_1"], [f"{layer}_2"],
                                      name=f"{prefix}/relu_{base}" if prefix else f"relu_{base}"))
        return f"{layer}_2"

    def pool(layer: str, x: str) -> str:
        attrs: dict[str, object] = {"kernel_shape": [3, 3], "strides": [2, 2]}
        if opset >= 10:
            attrs.update(pads=[0, 0, 0, 0], ceil_mode=1)
        else:
            attrs.update(pads=[0, 0, 1, 1])
        nodes.append(helper.make_node("MaxPool", [x], [f"{layer}_1"], name=layer, **attrs))
        return f"{layer}_1"

    def fire(i: int, x: str, cin: int) -> str:
        p = f"fire{i}/"
        sq = conv(p + "squeeze1x1", x, cin, squeeze, 1)
        e1 = conv(p + "expand1x1", sq, squeeze, expand, 1)
        e3 = conv(p + "expand3x3", sq, squeeze, expand, 3, pad=1)
        nodes.append(helper.make_node("Concat", [e1, e3], [p + "concat_1"], name=p + "concat",
                                      axis=1))
        return p + "concat_1"

    x = conv("conv1", "data_0", 3, conv1, 3, stride=2)
    x = pool("pool1", x)
    x = fire(2, x, conv1)
    x = fire(3, x, 2 * expand)
    x = pool("pool3", x)
    drop_attrs = {"ratio": 0.5} if opset < 12 else {}
    nodes.append(helper.make_node("Dropout", [x], ["fire9/concat_2"], name="drop9",
                                  **drop_attrs))
    x = conv("conv10", "fire9/concat_2", 2 * expand, num_classes, 1, gain=0.5)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool10_1"], name="pool10"))
    nodes.append(helper.make_node("Softmax", ["pool10_1"], ["softmaxout_1"], name="prob",
                                  axis=1))
    elem = _ELEM[dtype]
    graph = helper.make_graph(
        nodes, "mini_squeezenet",
        [helper.make_tensor_value_info("data_0", elem, _shape(batch, [3, image_size,
                                                                       image_size]))],
        [helper.make_tensor_value_info("softmaxout_1", elem, _shape(batch, [num_classes, 1, 1]))],
        initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              producer_name="sqzc-hardening")
    model.ir_version = max(4, helper.find_min_ir_version_for([helper.make_opsetid("", opset)]))
    return model


def small_conv(batch: int | None = 1, cin: int = 3, cout: int = 8, size: int = 9,
               seed: int = 1) -> onnx.ModelProto:
    """Conv 3x3 pad 1 -> Relu -> MaxPool 2x2 -> Conv 1x1: a tiny model with a workspace."""
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((cout, cin, 3, 3)) * 0.3).astype(np.float32)
    b1 = (rng.standard_normal(cout) * 0.1).astype(np.float32)
    w2 = (rng.standard_normal((4, cout, 1, 1)) * 0.3).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2"], ["y"], name="conv2", kernel_shape=[1, 1]),
    ]
    out = size // 2
    graph = helper.make_graph(
        nodes, "small_conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, _shape(batch, [cin, size, size]))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, _shape(batch, [4, out, out]))],
        initializer=[numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(b1, "b1"),
                     numpy_helper.from_array(w2, "w2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="sqzc-hardening")
    model.ir_version = 7
    return model


def save(model: onnx.ModelProto, directory: Path, stem: str | None = None) -> Path:
    """Write ``model`` into ``directory`` (named by content hash unless ``stem`` is given)."""
    data = model.SerializeToString()
    directory.mkdir(parents=True, exist_ok=True)
    name = stem or "m-" + hashlib.sha256(data).hexdigest()[:16]
    path = directory / f"{name}.onnx"
    path.write_bytes(data)
    return path


def ort_session(model: onnx.ModelProto | bytes | Path):  # noqa: ANN201 - ort is optional
    """A single-threaded onnxruntime CPU session (raises if ORT refuses the model)."""
    import onnxruntime as ort

    if isinstance(model, onnx.ModelProto):
        data = model.SerializeToString()
    elif isinstance(model, Path):
        data = model.read_bytes()
    else:
        data = model
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def compare(got: np.ndarray, want: np.ndarray) -> str | None:
    """``None`` if ``got`` matches ``want`` within the suite's per-dtype tolerance (see
    tests/sqz_testing.py), else a one-line description of the difference."""
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype != want.dtype:
        return f"dtype {got.dtype} != {want.dtype}"
    rtol, atol = {"float32": (1e-4, 1e-6), "float16": (2.0 ** -10, 1e-3)}.get(
        str(want.dtype), (0.0, 0.0))
    g, w = got.astype(np.float64), want.astype(np.float64)
    if (np.isnan(g) != np.isnan(w)).any():
        return "NaN positions differ"
    fin = np.isfinite(w)
    if (g[~fin & ~np.isnan(w)] != w[~fin & ~np.isnan(w)]).any():
        return "inf values differ"
    if not fin.any():
        return None
    scale = np.abs(w[fin]).max()
    err = np.abs(g[fin] - w[fin]).max()
    if not err <= rtol * scale + atol:
        return f"max abs error {err:.3g} > {rtol:g} x {scale:.3g} + {atol:g}"
    return None
