"""Small models and helpers shared by the hardening tests (tests/hardening).

``mini_squeezenet`` is SqueezeNet v1.1 shrunk to the bone but with the real structure and
the real naming (``data_0`` -> conv1/relu -> pool1 -> fire2 -> fire3 -> pool3 -> drop9 ->
conv10/relu -> pool10 (GlobalAveragePool) -> prob (Softmax) -> ``softmaxout_1``): every op
kind and every pattern the compiler's passes look for (conv+relu fusion, concat
elimination, dropout removal) is present, yet a compile takes a fraction of a second.
``mini_squeezenet_int8`` is the same network quantized (QOperator or QDQ, uint8 or int8
activations), so the integer kernels get the same treatment.

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


def _qparams(lo: float, hi: float, dtype: str) -> tuple[float, int]:
    """Asymmetric (scale, zero point) covering [lo, hi] and 0, as onnxruntime's MinMax
    calibration computes them for activations."""
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    scale = max(hi - lo, 1e-6) / 255.0
    if dtype == "uint8":
        return scale, int(np.clip(np.round(-lo / scale), 0, 255))
    return scale, int(np.clip(np.round(-128.0 - lo / scale), -128, 127))


def mini_squeezenet_int8(fmt: str = "qop", activation: str = "uint8",
                         batch: int | None = 1, image_size: int = 17,
                         per_channel: bool = False, seed: int = 0, squeeze: int = 4,
                         expand: int = 16, conv1: int = 8, num_classes: int = 10
                         ) -> onnx.ModelProto:
    """``mini_squeezenet`` quantized the way ``onnxruntime.quantization.quantize_static``
    does it (int8 weights, per tensor or per output channel; ``activation`` uint8 or int8
    activations with MinMax ranges from 4 seeded standard-normal images, the inputs the
    hardening tests feed), without onnxruntime, so the model is the same whatever
    onnxruntime version is installed.

    ``fmt="qop"`` (QOperator): QuantizeLinear -> QLinearConv (Relu folded into its output
    range) -> uint8/int8 MaxPool -> com.microsoft QLinearConcat / QLinearGlobalAveragePool
    -> DequantizeLinear -> Softmax. ``fmt="qdq"``: the float graph with every activation
    passed through QuantizeLinear -> DequantizeLinear and DequantizeLinear-ed int8 weights
    and int32 biases, which sqzc's fold-qdq turns into the same integer kernels. Both have
    a second output, the 8-bit ``pool10`` tensor, so an integer kernel's stores reach a
    caller's buffer directly. ``expand`` 16 makes the Fire concats channel-block aligned
    on every target (8 or 16 channels per block); ``squeeze`` 4 and ``num_classes`` 10
    leave padded blocks.
    """
    from onnx.reference import ReferenceEvaluator

    if fmt not in ("qop", "qdq") or activation not in ("uint8", "int8"):
        raise ValueError(f"fmt {fmt!r} / activation {activation!r}")
    opset = 13
    base = mini_squeezenet(opset=opset, batch=batch, image_size=image_size, seed=seed,
                           squeeze=squeeze, expand=expand, conv1=conv1,
                           num_classes=num_classes)
    inits = {t.name: numpy_helper.to_array(t) for t in base.graph.initializer}
    float_nodes = [n for n in base.graph.node if n.op_type != "Dropout"]
    alias = {n.output[0]: n.input[0] for n in base.graph.node if n.op_type == "Dropout"}

    # MinMax calibration: every float tensor's range over 4 seeded images.
    probe = onnx.ModelProto()
    probe.CopyFrom(base)
    names = ["data_0", *(o for n in base.graph.node for o in n.output)]
    del probe.graph.output[:]
    probe.graph.output.extend(helper.make_tensor_value_info(t, TensorProto.FLOAT, None)
                              for t in names[1:])
    calib = np.random.default_rng(seed + 100).standard_normal(
        (4, 3, image_size, image_size)).astype(np.float32)
    values = [calib, *ReferenceEvaluator(probe).run(None, {"data_0": calib})]
    ranges = {t: (float(v.min()), float(v.max())) for t, v in zip(names, values)}

    act = TensorProto.UINT8 if activation == "uint8" else TensorProto.INT8
    npa = np.dtype(activation)
    nodes: list[onnx.NodeProto] = []
    out_inits: list[onnx.TensorProto] = []
    qp: dict[str, tuple[str, str]] = {}  # float tensor -> (scale, zero point) initializers
    scales: dict[str, float] = {}

    def const(name: str, value: np.ndarray) -> str:
        out_inits.append(numpy_helper.from_array(value, name))
        return name

    def params(t: str, like: str | None = None) -> tuple[str, str]:
        if like is not None:
            qp[t], scales[t] = qp[like], scales[like]
        elif t not in qp:
            scale, zp = _qparams(*ranges[t], activation)
            scales[t] = float(np.float32(scale))
            qp[t] = (const(f"{t}_scale", np.array(scale, np.float32)),
                     const(f"{t}_zero_point", np.array(zp, npa)))
        return qp[t]

    def weights(node: onnx.NodeProto, x: str) -> tuple[str, str, str, str, np.ndarray]:
        """(int8 weight, its scale, its zero point, int32 bias, bias scale): symmetric
        int8 weights, the bias in steps of x_scale * w_scale (zero point 0)."""
        w, b = inits[node.input[1]], inits[node.input[2]]
        amax = np.abs(w).max(axis=(1, 2, 3)) if per_channel else np.array(np.abs(w).max())
        ws = (np.maximum(amax, 1e-8) / 127.0).astype(np.float32)
        wq = np.clip(np.round(w / ws.reshape(-1, 1, 1, 1)), -127, 127).astype(np.int8)
        bs = (scales[x] * ws.astype(np.float64)).astype(np.float32)
        stem = node.input[1]
        return (const(f"{stem}_quantized", wq), const(f"{stem}_scale", ws),
                const(f"{stem}_zero_point", np.zeros(ws.shape, np.int8)),
                const(f"{node.input[2]}_quantized", np.round(b / bs).astype(np.int32)), bs)

    relu_of = {n.input[0]: n for n in float_nodes if n.op_type == "Relu"}
    def src(t: str) -> str:  # a Dropout's output is its input
        return alias.get(t, t)

    if fmt == "qop":
        s, z = params("data_0")
        nodes.append(helper.make_node("QuantizeLinear", ["data_0", s, z],
                                      ["data_0_quantized"], name="data_0_QuantizeLinear"))
        for n in float_nodes:
            ins = [src(i) for i in n.input]
            if n.op_type == "Conv":
                relu = relu_of[n.output[0]]
                y = relu.output[0]
                xs, xz = qp[ins[0]]
                wq, ws, wz, bq, _ = weights(n, ins[0])
                ys, yz = params(y)
                nodes.append(helper.make_node(
                    "QLinearConv", [f"{ins[0]}_quantized", xs, xz, wq, ws, wz, ys, yz, bq],
                    [f"{y}_quantized"], name=f"{n.name}_quant",
                    **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
            elif n.op_type == "MaxPool":
                params(n.output[0], like=ins[0])
                nodes.append(helper.make_node(
                    "MaxPool", [f"{ins[0]}_quantized"], [f"{n.output[0]}_quantized"],
                    name=n.name, **{a.name: helper.get_attribute_value(a)
                                    for a in n.attribute}))
            elif n.op_type == "Concat":
                ys, yz = params(n.output[0])
                args = [ys, yz]
                for i in ins:
                    args += [f"{i}_quantized", *qp[i]]
                nodes.append(helper.make_node("QLinearConcat", args,
                                              [f"{n.output[0]}_quantized"],
                                              name=f"{n.name}_quant", domain="com.microsoft",
                                              axis=1))
            elif n.op_type == "GlobalAveragePool":
                ys, yz = params(n.output[0])
                nodes.append(helper.make_node(
                    "QLinearGlobalAveragePool", [f"{ins[0]}_quantized", *qp[ins[0]], ys, yz],
                    [f"{n.output[0]}_quantized"], name=f"{n.name}_quant",
                    domain="com.microsoft", channels_last=0))
            elif n.op_type == "Softmax":
                nodes.append(helper.make_node(
                    "DequantizeLinear", [f"{ins[0]}_quantized", *qp[ins[0]]],
                    [ins[0]], name=f"{ins[0]}_DequantizeLinear"))
                nodes.append(n)
            else:
                assert n.op_type == "Relu", n.op_type  # folded into its QLinearConv
        extra = "pool10_1_quantized"
    else:
        def qdq(t: str, like: str | None = None) -> str:
            s, z = params(t, like)
            nodes.append(helper.make_node("QuantizeLinear", [t, s, z], [f"{t}_q"],
                                          name=f"{t}_QuantizeLinear"))
            nodes.append(helper.make_node("DequantizeLinear", [f"{t}_q", s, z],
                                          [f"{t}_dq"], name=f"{t}_DequantizeLinear"))
            return f"{t}_dq"

        read = {"data_0": qdq("data_0")}
        for n in float_nodes:
            ins = [read[src(i)] for i in n.input[:1 if n.op_type == "Conv" else None]]
            out = n.output[0]
            if n.op_type == "Conv":
                x = src(n.input[0])
                wq, ws, wz, bq, bs = weights(n, x)
                axis = {"axis": 0} if per_channel else {}
                nodes.append(helper.make_node("DequantizeLinear", [wq, ws, wz],
                                              [f"{n.input[1]}_dq"], **axis))
                nodes.append(helper.make_node(
                    "DequantizeLinear", [bq, const(f"{n.input[2]}_scale", bs),
                                         const(f"{n.input[2]}_zero_point",
                                               np.zeros(bs.shape, np.int32))],
                    [f"{n.input[2]}_dq"], **axis))
                nodes.append(helper.make_node(
                    "Conv", [ins[0], f"{n.input[1]}_dq", f"{n.input[2]}_dq"], [out],
                    name=n.name, **{a.name: helper.get_attribute_value(a)
                                    for a in n.attribute}))
                read[out] = out  # its Relu follows; the Relu output is quantized
            elif n.op_type == "Softmax":
                nodes.append(helper.make_node("Softmax", ins, n.output, name=n.name, axis=1))
            else:
                nodes.append(helper.make_node(
                    n.op_type, ins, [out], name=n.name,
                    **{a.name: helper.get_attribute_value(a) for a in n.attribute}))
                like = src(n.input[0]) if n.op_type == "MaxPool" else None
                read[out] = qdq(out, like)
        extra = "pool10_1_q"

    pool10 = [d for d in base.graph.output[0].type.tensor_type.shape.dim]
    graph = helper.make_graph(
        nodes, f"mini_squeezenet_int8_{fmt}_{activation}",
        list(base.graph.input),
        [base.graph.output[0],
         helper.make_tensor_value_info(extra, act, [d.dim_param or d.dim_value
                                                    for d in pool10])],
        initializer=out_inits)
    imports = [helper.make_opsetid("", opset)]
    if fmt == "qop":
        imports.append(helper.make_opsetid("com.microsoft", 1))
    model = helper.make_model(graph, opset_imports=imports, producer_name="sqzc-hardening")
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
