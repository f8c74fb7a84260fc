"""``sqzc.tools.onnx_export`` / ``sqzc dump --format onnx``: the optimized IR as a valid ONNX file.

* zoo SqueezeNet 1.1 (float32) and the int8 QOperator SqueezeNet from ../shared (skipped
  when missing): ``onnx.checker`` passes (full check), one ONNX node per IR op, constants
  as initializers with their packed shapes, the model's input/output names, and the
  ``sqzc``-domain nodes carry every IR attribute plus origin/layout/placement.
* at -O0 on a small model with only standard-equivalent ops, onnxruntime gives the same
  results on the export as on the original (so the standard mappings mean what they say).
"""

from __future__ import annotations

import re
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc.driver as driver
from sqzc.ir import Graph
from sqzc.tools.onnx_export import SQZC_DOMAIN, STANDARD_OPSET, Exporter, flatten_attrs, to_onnx
from sqzc.ops import OpKind
from sqzc.tools.zoo import build
from sqz_testing import sqzc_command

QOPERATOR = "models/derived/squeezenet1.0-12-int8-qoperator.derived.onnx"
PLACEMENT_RE = re.compile(r"^into %\S+\[c=(\d+):(\d+)\]$")


def optimized(model: onnx.ModelProto | Path, tmp: Path, opt_level: int = 3) -> Graph:
    """The IR after the pipeline, as ``sqzc dump`` sees it."""
    if isinstance(model, onnx.ModelProto):
        path = tmp / "model.onnx"
        onnx.save(model, path)
    else:
        path = model
    options = driver.CompileOptions(opt_level=opt_level)
    graph = driver.load_graph(path, options)
    driver.optimize(graph, options)
    return graph


def op_ids(graph: Graph) -> list[str]:
    return [n for n in graph.nodes()
            if graph.op(n).kind not in (OpKind.CONST, OpKind.INPUT)]


def attrs_of(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def check_structure(graph: Graph, model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    """Checks common to every export; returns the nodes by name."""
    onnx.checker.check_model(model)
    onnx.checker.check_model(model, full_check=True)
    ops = op_ids(graph)
    assert len(model.graph.node) == len(ops)
    nodes = {n.name: n for n in model.graph.node}
    assert set(nodes) == set(ops)
    assert [n.name for n in model.graph.node] == ops  # same (topological) order
    # graph inputs/outputs keep the model's names
    assert [i.name for i in model.graph.input] == [graph.input_names[n] for n in graph.inputs]
    assert [o.name for o in model.graph.output] == [o.name for o in graph.outputs]
    # every IR constant is an initializer with the IR's (packed) shape and dtype
    consts = [n for n in graph.nodes() if graph.op(n).kind is OpKind.CONST]
    inits = {t.name: t for t in model.graph.initializer}
    for nid in consts:
        value = graph.const_value(nid)
        t = inits[nid]  # no renames here: IR ids never collide with the I/O names
        assert tuple(t.dims) == value.shape, nid
        assert numpy_helper.to_array(t).dtype == value.dtype, nid
    assert {op.domain for op in model.opset_import} == {"", SQZC_DOMAIN}
    return nodes


def check_common_custom_attrs(graph: Graph, node: onnx.NodeProto) -> dict[str, object]:
    a = attrs_of(node)
    op = graph.op(node.name)
    assert a["origin"] == op.origin_str.encode()
    assert a["layout"] == (f"nchw{op.block}c" if op.block else "plain").encode()
    if op.into is not None:
        m = PLACEMENT_RE.match(a["placement"].decode())  # type: ignore[union-attr]
        assert m, a["placement"]
        start, stop = int(m[1]), int(m[2])
        assert (start, stop - start) == (op.into.start, op.out.shape[op.into.axis])
    else:
        assert "placement" not in a
    return a


# ----------------------------------------------------------------------------- float


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Graph, onnx.ModelProto]:
    graph = optimized(build("squeezenet1.1"), tmp_path_factory.mktemp("zoo"))
    return graph, to_onnx(graph)


def test_float_squeezenet_exports_one_node_per_op(squeezenet):
    graph, model = squeezenet
    nodes = check_structure(graph, model)
    kinds = Counter(n.op_type for n in nodes.values() if n.domain == SQZC_DOMAIN)
    assert kinds["Conv"] == 26  # every conv has a fused ReLU -> custom domain
    standard = Counter(n.op_type for n in nodes.values() if n.domain == "")
    assert standard["Concat"] == 8 and standard["MaxPool"] == 3 and standard["Softmax"] == 1
    assert [i.name for i in model.graph.input] == ["data_0"]
    assert [o.name for o in model.graph.output] == ["softmaxout_1"]


def test_float_conv_attributes(squeezenet):
    graph, model = squeezenet
    placed = winograd = 0
    for node in model.graph.node:
        if node.domain != SQZC_DOMAIN or node.op_type != "Conv":
            continue
        a = check_common_custom_attrs(graph, node)
        conv = graph.op(node.name).attrs
        assert a["activation"] == b"relu"
        assert a["kernel_shape"] == list(conv.kernel)
        assert a["strides"] == list(conv.strides)
        assert a["pads"] == list(conv.pads)
        assert a["dilations"] == list(conv.dilations)
        assert a["group"] == conv.group
        assert a["packed"] == conv.packed and a["out_channels"] == conv.out_channels
        assert a["winograd"] == conv.winograd
        w = next(t for t in model.graph.initializer if t.name == node.input[1])
        if conv.winograd:  # transformed weights U: [alpha^2, OC/b, IC, b]
            winograd += 1
            assert list(w.dims)[0] == (conv.winograd + 2) ** 2 and w.dims[-1] == conv.packed
        elif conv.packed:  # the weight initializer keeps the packed 5-D shape
            assert len(w.dims) == 5 and w.dims[-1] == conv.packed
        placed += "placement" in a
    assert placed == 16  # both expand convs of all 8 Fire modules write into their concat
    assert winograd == 8  # every expand3x3 runs as Winograd


def test_standard_nodes_keep_notes_out_of_attributes(squeezenet):
    graph, model = squeezenet
    for node in model.graph.node:
        if node.domain:
            continue
        schema = onnx.defs.get_schema(node.op_type, STANDARD_OPSET)
        assert set(attrs_of(node)) <= set(schema.attributes), node.name
        assert f"origin: {graph.op(node.name).origin_str}" in node.doc_string
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    assert "eliminated" in concat.doc_string


# ----------------------------------------------------------------------------- int8


@pytest.fixture(scope="module")
def qoperator(shared_dir: Path, tmp_path_factory) -> tuple[Graph, onnx.ModelProto]:
    path = shared_dir / QOPERATOR
    if not path.is_file():
        pytest.skip(f"{QOPERATOR} is not in ../shared")
    graph = optimized(path, tmp_path_factory.mktemp("q"))
    return graph, to_onnx(graph)


def test_int8_qoperator_export(qoperator):
    graph, model = qoperator
    nodes = check_structure(graph, model)
    custom = Counter(n.op_type for n in nodes.values() if n.domain == SQZC_DOMAIN)
    assert custom["QConv"] == 26 and custom["QGlobalAveragePool"] == 1
    standard = Counter(n.op_type for n in nodes.values() if n.domain == "")
    assert standard["QuantizeLinear"] == 1 and standard["DequantizeLinear"] == 1
    requant = 0
    for node in nodes.values():
        if node.domain != SQZC_DOMAIN:
            continue
        a = check_common_custom_attrs(graph, node)
        op = graph.op(node.name)
        if node.op_type == "QConv":
            q = op.attrs
            assert a["x_zero_point"] == q.x_zp
            assert a["w_zero_point"] == list(q.w_zp)
            assert np.allclose(a["multiplier"], q.multiplier, rtol=1e-7, atol=0)
            assert a["out_scale"] == pytest.approx(list(q.out.scale), rel=1e-7)
            assert a["out_zero_point"] == list(q.out.zero_point)
            assert a["out_dtype"] == q.out.dtype.encode()
            assert a["kernel_shape"] == list(q.conv.kernel)
            assert a["activation"] == b"none"
            if q.requant is not None:
                requant += 1
                assert a["requant_scale"] == pytest.approx(list(q.requant.scale), rel=1e-7)
                assert a["requant_zero_point"] == list(q.requant.zero_point)
            else:
                assert "requant_scale" not in a
        elif node.op_type == "QGlobalAveragePool":
            for side, qa in (("x_", op.attrs.x), ("y_", op.attrs.y)):
                assert a[side + "scale"] == pytest.approx(list(qa.scale), rel=1e-7)
                assert a[side + "zero_point"] == list(qa.zero_point)
                assert a[side + "dtype"] == qa.dtype.encode()
        elif node.op_type == "Reorder":  # plain <-> blocked
            src = graph.op(op.inputs[0])
            assert a["src_layout"] == (f"nchw{src.block}c" if src.block else "plain").encode()
            assert a["src_layout"] != a["layout"]
    assert requant > 0  # Q(DQ(conv)) into a concat got fused
    q = next(n for n in nodes.values() if n.op_type == "QuantizeLinear")
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    attrs = graph.op(q.name).attrs
    assert inits[q.input[1]].reshape(-1).tolist() == pytest.approx(list(attrs.scale))
    assert inits[q.input[2]].dtype == np.dtype(attrs.dtype)


def test_generic_mapping_covers_every_kind(qoperator, squeezenet, monkeypatch):
    """Kinds added to the IR later fall back to a flattened sqzc-domain node: exporting
    every op that way still gives a valid model with one node per op."""
    monkeypatch.setattr(Exporter, "op_node", Exporter.generic)
    for graph, _ in (qoperator, squeezenet):
        model = to_onnx(graph)
        onnx.checker.check_model(model, full_check=True)
        assert len(model.graph.node) == len(op_ids(graph))
        assert {n.domain for n in model.graph.node} == {SQZC_DOMAIN}
    conv = next(n for n in model.graph.node if n.op_type == "Conv")  # squeezenet's
    assert attrs_of(conv)["activation"] == b"relu"


def test_flatten_attrs():
    from sqzc.ops import QPoolAttrs, QuantAttrs

    q = QPoolAttrs(QuantAttrs((0.5,), (3,), "uint8"), QuantAttrs((0.25, 0.5), (0, 1), "int8", 0))
    assert flatten_attrs(q) == {
        "x_scale": [0.5], "x_zero_point": [3], "x_dtype": "uint8", "x_axis": 1, "x_bits": 8,
        "y_scale": [0.25, 0.5], "y_zero_point": [0, 1], "y_dtype": "int8", "y_axis": 0,
        "y_bits": 8}


# ----------------------------------------------------------------------------- semantics


def small_model() -> onnx.ModelProto:
    """Every standard-mapped kind (no reduce): conv, relu, clip, leaky relu, max/avg pool,
    concat, reshape, transpose, add/sub/mul/div, matmul, cast, identity, softmax, Q/DQ."""
    rng = np.random.default_rng(0)

    def init(name: str, value: np.ndarray) -> TensorProto:
        return numpy_helper.from_array(value.astype(np.float32), name)

    inits = [
        init("w", rng.standard_normal((4, 3, 3, 3)) * 0.3), init("b", rng.standard_normal(4)),
        init("w2", rng.standard_normal((4, 3, 1, 1)) * 0.3),
        init("k", rng.standard_normal((128, 5)) * 0.1), init("c", rng.standard_normal(5)),
        init("two", np.array(2.0)), init("lo", np.array(-1.0)), init("hi", np.array(1.5)),
        init("qs", np.array(0.05)),
        numpy_helper.from_array(np.array(128, np.uint8), "qz"),
        numpy_helper.from_array(np.array([1, 128], np.int64), "shape"),
    ]
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "w", "b"], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        n("Relu", ["c1"], ["r1"]),
        n("Conv", ["x", "w2"], ["c2"], strides=[2, 2]),
        n("LeakyRelu", ["c2"], ["r2"], alpha=0.2),
        n("Concat", ["r1", "r2"], ["cat"], axis=1),
        n("Clip", ["cat", "lo", "hi"], ["cl"]),
        n("QuantizeLinear", ["cl", "qs", "qz"], ["q"]),
        n("DequantizeLinear", ["q", "qs", "qz"], ["dq"]),
        n("MaxPool", ["dq"], ["mp"], kernel_shape=[2, 2], strides=[2, 2]),
        n("AveragePool", ["mp"], ["ap"], kernel_shape=[3, 3], pads=[1, 1, 1, 1],
          count_include_pad=0),
        n("Transpose", ["ap"], ["tp"], perm=[0, 1, 3, 2]),
        n("Reshape", ["tp", "shape"], ["flat"]),
        n("MatMul", ["flat", "k"], ["mm"]),
        n("Add", ["mm", "c"], ["a"]),
        n("Mul", ["a", "two"], ["m"]),
        n("Sub", ["m", "c"], ["s"]),
        n("Div", ["s", "two"], ["d"]),
        n("Cast", ["d"], ["h"], to=TensorProto.FLOAT16),
        n("Cast", ["h"], ["f"], to=TensorProto.FLOAT),
        n("Identity", ["f"], ["i"]),
        n("Softmax", ["i"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    onnx.checker.check_model(model)
    return model


def test_O0_export_runs_in_onnxruntime_like_the_original(tmp_path):
    from sqz_testing import ort_run

    model = small_model()
    graph = optimized(model, tmp_path, opt_level=0)
    exported = to_onnx(graph)
    check_structure(graph, exported)
    assert {n.domain for n in exported.graph.node} == {""}  # all standard at -O0
    x = np.random.default_rng(1).standard_normal((1, 3, 16, 16)).astype(np.float32)
    want, = ort_run(model, {"x": x})
    got, = ort_run(exported, {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_graph_output_that_is_an_input_gets_an_identity(tmp_path):
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])], "passthrough",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])]),
        opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    graph = optimized(model, tmp_path)  # canonicalize removes the Identity
    exported = to_onnx(graph)
    onnx.checker.check_model(exported, full_check=True)
    assert [i.name for i in exported.graph.input] == ["x"]
    assert [o.name for o in exported.graph.output] == ["y"]
    assert [(n.op_type, list(n.input), list(n.output)) for n in exported.graph.node] == \
        [("Identity", ["x"], ["y"])]


# ----------------------------------------------------------------------------- CLI


def test_cli_dump_format_onnx(tmp_path):
    src = tmp_path / "small.onnx"
    onnx.save(small_model(), src)
    out = tmp_path / "optimized.onnx"
    proc = subprocess.run([*sqzc_command(), "dump", str(src), "--format", "onnx", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    model = onnx.load(out)
    onnx.checker.check_model(model, full_check=True)
    assert any(n.domain == SQZC_DOMAIN for n in model.graph.node)  # fused conv at -O3
    assert not list(tmp_path.glob(".optimized.onnx.*"))  # no temp file left behind
    proc = subprocess.run([*sqzc_command(), "dump", str(src), "--format", "onnx"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "needs -o" in proc.stderr
