"""Model-file limits and malformed names found by the fuzzer (issue 6, hardening).

Each test here reproduces one root cause behind fuzz findings with a small hand-built
model, so that it stays fixed even where the fuzzer's random mutants no longer reach it
(tests/hardening/test_hardening_fuzz.py excuses nothing: it fails on every finding). A bug
found but not yet fixed is pinned here by a strict xfail naming it (none today).

"A clean error" means a ``SqzcError`` other than ``InternalError``: the error contract
reserves ``InternalError`` for compiler bugs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hardening_support import compare, mini_squeezenet, ort_session, save

import sqzc
from sqzc.errors import InternalError, ModelError, SqzcError

#: README "Safety and limits": single tensors are limited to 2^28 elements.
MAX_TENSOR_ELEMENTS = 1 << 28


def _with_conv_pads(node: str, pads: list[int]) -> onnx.ModelProto:
    m = mini_squeezenet()
    for n in m.graph.node:
        if n.name == node:
            for a in n.attribute:
                if a.name == "pads":
                    a.ints[:] = pads
    return m


def _with_input_dims(h: int, w: int) -> onnx.ModelProto:
    m = mini_squeezenet()
    dims = m.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_value, dims[3].dim_value = h, w
    return m


OVERSIZED = {
    # conv10's output gets 2^32+3 rows: -O0 codegen then loops ~4e9 times in Python
    # (backends/llvm/emit/common/geometry.py valid_range) -> hang.
    "conv10-bottom-pad-2^32": lambda: _with_conv_pads("conv10", [0, 0, 2**32 + 1, 0]),
    # conv10's output gets 2^62 rows: workspace_bytes = 737869762948382077504 wraps to
    # 12864 in sqz_workspace_size() and the library writes out of bounds -> SIGSEGV.
    "conv10-top-pad-2^62": lambda: _with_conv_pads("conv10", [2**62, 0, 0, 0]),
    # the graph input itself is 3 x 2^62 x 17: -O3 codegen loops over the rows in Python
    # (backends/llvm/emit/common/geometry.py row_groups) -> hang.
    "input-rows-2^62": lambda: _with_input_dims(2**62, 17),
    # a 2^40 x 17 input: compiles, then sqzc.load(...)(x) raises numpy's MemoryError.
    "input-rows-2^40": lambda: _with_input_dims(2**40, 17),
}


def test_limit_models_are_valid_onnx() -> None:
    """The oversized models are well-formed: onnx's checker and shape inference accept them,
    so rejecting them is sqzc's job."""
    for make in OVERSIZED.values():
        m = make()
        onnx.checker.check_model(m)
        onnx.shape_inference.infer_shapes(m, strict_mode=True)


@pytest.mark.parametrize("case", sorted(OVERSIZED))
def test_oversized_tensors_are_rejected(case: str, tmp_path: Path) -> None:
    path = save(OVERSIZED[case](), tmp_path)
    with pytest.raises(SqzcError) as err:  # analysis only (output=None): no codegen, no hang
        result = sqzc.compile(path, None)
        biggest = max(int(np.prod(result.graph.op(n).out.shape, dtype=object))
                      for n in result.graph.nodes())
        print(f"{case}: compiled; largest tensor {biggest} elements, workspace "
              f"{result.metadata['workspace_bytes']} bytes")
    assert not isinstance(err.value, InternalError), err.value


_CHILD = """
import sys, numpy as np, sqzc
from sqzc.errors import InternalError
try:
    sqzc.compile(sys.argv[1], sys.argv[2], sqzc.CompileOptions(opt_level=0))
    m = sqzc.load(sys.argv[2], threads=1)
    print("workspace", m.workspace_size, m.metadata["workspace_bytes"], flush=True)
    y = m(np.ones((1, 3, 17, 17), np.float32))
    print("RAN", y.shape)
except InternalError as e:
    print("INTERNALERROR", e)
except sqzc.SqzcError as e:
    print("SQZCERROR", type(e).__name__, e)
"""


def test_wrapped_workspace_does_not_crash(tmp_path: Path) -> None:
    path = save(OVERSIZED["conv10-top-pad-2^62"](), tmp_path)
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(tmp_path / "w.so")],
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, (f"child died with {proc.returncode}: {proc.stdout[-500:]}"
                                  f"{proc.stderr[-1500:]}")
    assert "SQZCERROR" in proc.stdout or "RAN" in proc.stdout, proc.stdout


def _with_raw_bytes(model: onnx.ModelProto, old: bytes, new: bytes) -> bytes:
    """``model`` serialized with every ``old`` replaced by ``new``: bytes that are not
    UTF-8, which the protobuf API refuses to set but a file can hold."""
    data = model.SerializeToString()
    assert len(old) == len(new) and data.count(old) >= 1
    return data.replace(old, new)


def _with_free_text(model: onnx.ModelProto) -> onnx.ModelProto:
    model.doc_string = "model doc"
    model.graph.doc_string = "graph doc"
    model.graph.node[0].doc_string = "node doc"
    onnx.helper.set_model_props(model, {"meta key": "meta value"})
    return model


def _with_external_data(model: onnx.ModelProto) -> onnx.ModelProto:
    t = model.graph.initializer[0]
    t.data_location = onnx.TensorProto.EXTERNAL
    entry = t.external_data.add()
    entry.key, entry.value = "location", "weights.bin"
    return model


def _with_named_batch(model: onnx.ModelProto) -> onnx.ModelProto:
    for vi in list(model.graph.input) + list(model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "batchsize"
    return model


#: Text that is only shown (node names, doc strings, producer, metadata): a model whose
#: free text is not UTF-8 compiles and runs (the text is shown with replacement characters).
FREE_TEXT = {
    "node name": (mini_squeezenet, b"fire2/relu_squeeze1x1", b"fire2/relu_squeeze1x\xf2"),
    "producer": (mini_squeezenet, b"sqzc-hardening", b"sqzc-hardenin\xf2"),
    "doc strings": (lambda: _with_free_text(mini_squeezenet()), b" doc", b" do\xf2"),
    "metadata": (lambda: _with_free_text(mini_squeezenet()), b"meta ", b"met\xf2 "),
}

#: Names sqzc matches or builds identifiers from, refused by the loader's UTF-8 check.
#: Before it, a model with one of these not UTF-8 raised TypeError in the IR's name
#: sanitizer (tensor, input, output and initializer names), in json.dumps of the library
#: metadata (graph name) or in pathlib (external data location); onnx's checker refused
#: op_type and attribute names; a dim_param compiled.
IDENTIFIERS = {
    "tensor name": (mini_squeezenet, b"conv1_2", b"conv1\xf2\xf2"),
    "graph input": (mini_squeezenet, b"data_0", b"data\xf2\xf2"),
    "graph output": (mini_squeezenet, b"softmaxout_1", b"softmaxout\xf2\xf2"),
    "initializer": (mini_squeezenet, b"conv10_w_0", b"conv10_w\xf2\xf2"),
    "graph name": (mini_squeezenet, b"mini_squeezenet", b"mini_squeezene\xf2"),
    "op_type": (mini_squeezenet, b"Softmax", b"Softma\xf2"),
    "attribute name": (mini_squeezenet, b"kernel_shape", b"kernel_shap\xf2"),
    "external data location": (lambda: _with_external_data(mini_squeezenet()),
                               b"weights.bin", b"weights\xf2bin"),
    "dim_param": (lambda: _with_named_batch(mini_squeezenet(opset=18, batch=None)),
                  b"batchsize", b"batchsiz\xf2"),
}


@pytest.mark.parametrize("case", sorted(FREE_TEXT))
def test_non_utf8_free_text_compiles_and_runs(case: str, tmp_path: Path) -> None:
    make, old, new = FREE_TEXT[case]
    path = tmp_path / "badtext.onnx"
    path.write_bytes(_with_raw_bytes(make(), old, new))
    onnx.checker.check_model(onnx.load(str(path)))  # onnx accepts it
    sqzc.compile(path, tmp_path / "badtext.so", sqzc.CompileOptions(opt_level=0))
    x = np.random.default_rng(0).standard_normal((1, 3, 17, 17)).astype(np.float32)
    assert sqzc.load(tmp_path / "badtext.so")(x).shape == (1, 10, 1, 1)


@pytest.mark.parametrize("case", sorted(IDENTIFIERS))
def test_non_utf8_identifier_is_a_model_error(case: str, tmp_path: Path) -> None:
    make, old, new = IDENTIFIERS[case]
    path = tmp_path / "badname.onnx"
    path.write_bytes(_with_raw_bytes(make(), old, new))
    with pytest.raises(ModelError, match="not valid UTF-8"):
        sqzc.compile(path, tmp_path / "badname.so", sqzc.CompileOptions(opt_level=0))



def _single(op: str, x_shape: list[int], out_rank: int, opset: int = 13,
            inits: tuple[onnx.TensorProto, ...] = (), **attrs: object) -> onnx.ModelProto:
    extra = [t.name for t in inits]
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node(op, ["x", *extra], ["y"], **attrs)], op.lower(),
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [None] * out_rank)],
        initializer=list(inits))
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


#: 0/1 attributes set to something else. Fuzz case mini13-744 (seed 1000747, pool3's
#: ceil_mode -> 3) compiled with ceil and differed from onnxruntime, which floors: onnx's
#: shape inference and onnxruntime test ``== 1`` for ceil_mode and keepdims, ``!= 0`` for
#: transA/transB and count_include_pad, and disagree on noop_with_empty_axes; sqzc took
#: Python truth. Now every such flag must be 0 or 1.
FLAGS = {
    "MaxPool ceil_mode=3": lambda: _single("MaxPool", [1, 2, 8, 8], 4, kernel_shape=[3, 3],
                                           strides=[2, 2], ceil_mode=3),
    "AveragePool count_include_pad=2": lambda: _single(
        "AveragePool", [1, 2, 8, 8], 4, kernel_shape=[3, 3], pads=[1, 1, 1, 1],
        count_include_pad=2),
    "ReduceMean keepdims=2": lambda: _single("ReduceMean", [1, 2, 4, 4], 3, axes=[1],
                                             keepdims=2),
    "ReduceMean noop_with_empty_axes=-1": lambda: _single(
        "ReduceMean", [1, 2, 4, 4], 4, opset=18, noop_with_empty_axes=-1),
    "Gemm transB=2": lambda: _single(
        "Gemm", [2, 3], 2, inits=(onnx.numpy_helper.from_array(np.ones((4, 3), np.float32),
                                                               "w"),), transB=2),
    "Reshape allowzero=2": lambda: _single(
        "Reshape", [2, 4], 2, opset=14, inits=(onnx.numpy_helper.from_array(
            np.array([4, 2], np.int64), "shape"),), allowzero=2),
}


@pytest.mark.parametrize("case", sorted(FLAGS))
def test_flag_attribute_must_be_0_or_1(case: str, tmp_path: Path) -> None:
    model = FLAGS[case]()
    onnx.checker.check_model(model)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)  # onnx accepts the value
    name = case.split()[1].split("=")[0]
    with pytest.raises(ModelError, match=f"attribute '{name}' must be 0 or 1"):
        sqzc.compile(save(model, tmp_path), None)

def _maxpool(channels: int, pads: list[int], ceil_mode: int, size: int = 8, stride: int = 2,
             conv_first: bool = False) -> onnx.ModelProto:
    """A float MaxPool 3x3 over ``channels`` channels; with ``conv_first`` the input has one
    channel, copied to each of them by a 1x1 conv of ones (every value passes through, NaN
    and infinities included), which puts the pool in sqzc's channel-blocked layout at -O3."""
    oh, ow = ((size + pads[i] + pads[i + 2] - 3 + ceil_mode * (stride - 1)) // stride + 1
              for i in (0, 1))
    nodes, inits, pooled = [], [], "x"
    if conv_first:
        ones = np.ones((channels, 1, 1, 1), np.float32)
        inits.append(onnx.numpy_helper.from_array(ones, "w"))
        nodes.append(onnx.helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[1, 1]))
        pooled = "c"
    nodes.append(onnx.helper.make_node("MaxPool", [pooled], ["y"], kernel_shape=[3, 3],
                                       strides=[stride, stride], pads=pads,
                                       ceil_mode=ceil_mode))
    graph = onnx.helper.make_graph(
        nodes, "maxpool",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT,
                                            [1, 1 if conv_first else channels, size, size])],
        [onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT,
                                            [1, channels, oh, ow])], inits)
    m = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


#: Fuzz case mini13-1317 (seed 1001320: LogSoftmax over a conv whose bias holds -inf, so a
#: whole channel is -inf before pool1) reduced to one MaxPool of an all -inf input.
MAXPOOL_ALL_NEG_INF = {
    "no-pads": lambda: _maxpool(3, [0, 0, 0, 0], 0),
    "pads": lambda: _maxpool(3, [1, 1, 1, 1], 0),
    "ceil-mode": lambda: _maxpool(1, [0, 0, 0, 0], 1),
}


@pytest.mark.parametrize("opt_level", [0, 3])
@pytest.mark.parametrize("case", sorted(MAXPOOL_ALL_NEG_INF))
def test_maxpool_of_neg_inf_matches_onnxruntime(case: str, opt_level: int,
                                                tmp_path: Path) -> None:
    """onnxruntime's vectorized MlasPool kernel gives -inf for a window of -inf unless the
    window reaches a left/right pad column (only its row buffer's pad slots hold -FLT_MAX);
    sqzc's max pool used to start every window at -FLT_MAX, as MLAS's generic kernel."""
    model = MAXPOOL_ALL_NEG_INF[case]()
    x = np.full([d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim],
                -np.inf, np.float32)
    want = ort_session(model).run(None, {"x": x})[0]
    assert np.isneginf(want).any()  # the windows inside the input columns
    path = save(model, tmp_path)
    sqzc.compile(path, tmp_path / "pool.so", sqzc.CompileOptions(opt_level=opt_level))
    got = sqzc.load(tmp_path / "pool.so", threads=1)(x)
    assert compare(got, want) is None, (got[0, 0], want[0, 0])


def _same_bits(got: np.ndarray, want: np.ndarray) -> bool:
    """Bit for bit, except that any NaN matches any NaN (payloads are not compared)."""
    nan = np.isnan(got)
    return bool(np.array_equal(nan, np.isnan(want)) and np.array_equal(
        np.where(nan, 0, got).view(np.uint32), np.where(nan, 0, want).view(np.uint32)))


@pytest.mark.parametrize("layout", ["plain", "blocked"])
@pytest.mark.parametrize("stride,size,pads,ceil_mode", [
    (1, 9, [1, 1, 1, 1], 0),   # width 9: column 8 takes MLAS's scalar max
    (2, 8, [1, 1, 1, 1], 0),
    (2, 10, [0, 1, 0, 0], 1),  # a left pad only, ceil overhang on the right
    (2, 7, [1, 0, 1, 0], 0),   # width 7: 4 vector + 3 scalar columns
])
def test_maxpool_special_values_match_onnxruntime(layout: str, stride: int, size: int,
                                                  pads: list[int], ceil_mode: int,
                                                  tmp_path: Path) -> None:
    """NaN, +-inf, -FLT_MAX and signed zeros through a max pool onnxruntime runs with
    MLAS's vector kernel (3 channels: no NCHWc), in sqzc's plain and blocked kernels: the
    start value, the pad slots and MLAS's vector/scalar max (NaN kept or dropped by side,
    which of two equal zeros wins) must all agree."""
    model = _maxpool(3, pads, ceil_mode, size=size, stride=stride,
                     conv_first=layout == "blocked")
    rng = np.random.default_rng(size * 10 + stride)
    specials = np.array([np.nan, np.inf, -np.inf, -np.inf, -np.inf, -3.4028235e38, 0.0, -0.0,
                         1.0, -1.0], np.float32)
    x = rng.choice(specials, size=(1, 1 if layout == "blocked" else 3, size, size))
    x[0, -1, :3] = -np.inf  # whole windows of -inf
    want = ort_session(model).run(None, {"x": x})[0]
    path = save(model, tmp_path)
    opt = 3 if layout == "blocked" else 1
    result = sqzc.compile(path, tmp_path / "pool.so", sqzc.CompileOptions(opt_level=opt))
    g = result.graph
    pool_blocks = [g.op(n).block for n in g.nodes() if g.op(n).kind.name == "MAXPOOL"]
    assert len(pool_blocks) == 1 and bool(pool_blocks[0]) == (layout == "blocked")
    got = sqzc.load(tmp_path / "pool.so", threads=1)(x)
    assert _same_bits(got, want), (got, want)
