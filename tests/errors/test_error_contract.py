"""The error contract (DESIGN.md "Errors", README "Safety and limits").

Every bad model is checked twice:

* through the Python API: ``sqzc.compile`` raises a ``sqzc.SqzcError`` whose message names
  the file and, where the failure belongs to a node, that node and its op;
* through the console script: exit status 2, stderr is one line ``sqzc: error: ...``, no
  traceback (a traceback appears only with ``--debug``), and the ``-o`` file (or a stray
  temp file next to it) never appears.

The first run of these tests found six violations (node names dropped from onnx checker
and shape-inference messages, unguarded external-data fields, output paths that are
directories, a bad ``--batch``); they are fixed and the cases stay here as regressions.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.driver import CompileOptions
from sqzc.errors import CallError, ModelError, SqzcError, UnsupportedError, UsageError
from sqz_testing import sqzc_command


F32 = TensorProto.FLOAT

def vi(name: str, shape: list[int | str] | None) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, F32, shape)


def ones(name: str, shape: list[int]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.ones(shape, np.float32), name)


def model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto],
          outputs: list[onnx.ValueInfoProto], inits: list[onnx.TensorProto] = (),  # type: ignore[assignment]
          opsets: tuple[tuple[str, int], ...] = (("", 13),)) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    return helper.make_model(graph, ir_version=7,
                             opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def small_squeezenet_bytes() -> bytes:
    from sqzc.tools.zoo import build

    return build("squeezenet1.1", image_size=32, num_classes=10).SerializeToString()


# ----------------------------------------------------------------------------- cases


@dataclass
class Case:
    """One bad model: ``make(dir) -> path``; ``names`` must all appear in the message."""

    id: str
    make: Callable[[Path], Path]
    names: list[str]
    exc: type[SqzcError] = SqzcError
    multiline: bool = False  # a message listing several problems, one per line


def _write(data: bytes | onnx.ModelProto, name: str) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        p = d / name
        p.write_bytes(data if isinstance(data, bytes) else data.SerializeToString())
        return p

    return make


def _lazy(name: str, fn: Callable[[], bytes | onnx.ModelProto]) -> Callable[[Path], Path]:
    def make(d: Path) -> Path:
        return _write(fn(), name)(d)

    return make


LSTM = model([helper.make_node("LSTM", ["x", "W", "R"], ["y"], name="lstm_1", hidden_size=4)],
             [vi("x", [2, 1, 3])], [vi("y", [2, 1, 1, 4])],
             [ones("W", [1, 16, 3]), ones("R", [1, 16, 4])], opsets=(("", 14),))

THREE = model(
    [helper.make_node("LSTM", ["x", "W", "R"], ["y1"], name="seq_a", hidden_size=4),
     helper.make_node("GRU", ["x", "Wg", "Rg"], ["y2"], name="seq_b", hidden_size=4),
     helper.make_node("RNN", ["x", "Wr", "Rr"], ["y3"], name="seq_c", hidden_size=4)],
    [vi("x", [2, 1, 3])], [vi("y1", [2, 1, 1, 4]), vi("y2", [2, 1, 1, 4]), vi("y3", [2, 1, 1, 4])],
    [ones("W", [1, 16, 3]), ones("R", [1, 16, 4]), ones("Wg", [1, 12, 3]),
     ones("Rg", [1, 12, 4]), ones("Wr", [1, 4, 3]), ones("Rr", [1, 4, 4])],
    opsets=(("", 14),))

MADE_UP = model([helper.make_node("Frobnicate", ["x"], ["y"], name="frob_7")],
                [vi("x", [1, 3])], [vi("y", [1, 3])])

DANGLING = model([helper.make_node("Relu", ["ghost"], ["y"], name="act_dangle")],
                 [vi("x", [1, 3])], [vi("y", [1, 3])])

DUPLICATE = model([helper.make_node("Relu", ["x"], ["t"], name="first_t"),
                   helper.make_node("Sigmoid", ["x"], ["t"], name="second_t"),
                   helper.make_node("Relu", ["t"], ["y"], name="final")],
                  [vi("x", [1, 3])], [vi("y", [1, 3])])

CYCLE = model([helper.make_node("Relu", ["b"], ["a"], name="loop_a"),
               helper.make_node("Add", ["x", "a"], ["b"], name="loop_b"),
               helper.make_node("Relu", ["b"], ["y"], name="loop_out")],
              [vi("x", [1, 3])], [vi("y", [1, 3])])

CONV_MISMATCH = model(
    [helper.make_node("Conv", ["x", "w"], ["y"], name="stem_7", kernel_shape=[3, 3])],
    [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 6, 6])], [ones("w", [4, 5, 3, 3])])

CONCAT_MISMATCH = model(
    [helper.make_node("Concat", ["x", "x2"], ["y"], name="merge_3", axis=1)],
    [vi("x", [1, 3, 8, 8]), vi("x2", [1, 3, 7, 8])], [vi("y", [1, 6, 8, 8])])

CONCAT_MISMATCH_INNER = model(
    [helper.make_node("Concat", ["x", "x2"], ["c"], name="merge_3", axis=1),
     helper.make_node("Relu", ["c"], ["y"], name="after_merge")],
    [vi("x", [1, 3, 8, 8]), vi("x2", [1, 3, 7, 8])], [vi("y", ["a", "b", "c", "d"])])

RESHAPE = model(
    [helper.make_node("Reshape", ["x", "s"], ["y"], name="head_view")],
    [vi("x", [1, 3, 8, 8])], [vi("y", [1, 5, 7])],
    [numpy_helper.from_array(np.array([1, 5, 7], np.int64), "s")])

ATTR_TYPE = model(
    [helper.make_node("Conv", ["x", "w"], ["y"], name="stem_2", kernel_shape=[3, 3],
                      strides=[1.0, 1.0])],
    [vi("x", [1, 3, 8, 8])], [vi("y", [1, 4, 6, 6])], [ones("w", [4, 3, 3, 3])])

DOMAIN = model([helper.make_node("Warp", ["x"], ["y"], name="warp_1", domain="com.example")],
               [vi("x", [1, 3])], [vi("y", [1, 3])], opsets=(("", 13), ("com.example", 1)))

DOMAIN_NOT_IMPORTED = model(
    [helper.make_node("Warp", ["x"], ["y"], name="warp_2", domain="com.example")],
    [vi("x", [1, 3])], [vi("y", [1, 3])])


def _q(name: str, value: object, dtype: type) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, dtype), name)


PER_AXIS_SHORT = model(  # 3 weight scales for 8 output channels
    [helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["y"], name="w_deq", axis=0)],
    [vi("x", [1, 3])], [vi("y", [8, 4, 3, 3])],
    [_q("w", np.ones((8, 4, 3, 3)), np.int8), _q("ws", [0.1, 0.2, 0.3], np.float32),
     _q("wz", [0, 0, 0], np.int8)])


HUGE_INPUT = model([helper.make_node("Relu", ["x"], ["y"], name="act_h")],
                   [vi("x", [1, 3, 20000, 20000])], [vi("y", [1, 3, 20000, 20000])])


def _qsoftmax(inputs: list[str]) -> onnx.ModelProto:
    node = helper.make_node("QLinearSoftmax", inputs, ["y"], name="q_soft",
                            domain="com.microsoft", axis=-1, opset=13)
    u8 = [helper.make_tensor_value_info(n, TensorProto.UINT8, [2, 5]) for n in ("x", "y")]
    return model([node], u8[:1], u8[1:],
                 [_q("xs", 0.1, np.float32), _q("xz", 0, np.uint8), _q("ys", 1 / 256, np.float32),
                  _q("yz", 0, np.uint8)], opsets=(("", 13), ("com.microsoft", 1)))


def _no_opset() -> onnx.ModelProto:
    m = model([helper.make_node("Relu", ["x"], ["y"], name="act_1")], [vi("x", [1, 3])],
              [vi("y", [1, 3])])
    del m.opset_import[:]
    return m


def _no_graph() -> onnx.ModelProto:
    m = onnx.ModelProto()
    m.ir_version = 7
    m.producer_name = "not-a-graph"
    m.opset_import.add(domain="", version=13)
    return m


SYMBOLIC = model([helper.make_node("Relu", ["x"], ["y"], name="act_s")],
                 [vi("x", ["N", 3, "H", 4])], [vi("y", ["N", 3, "H", 4])])

CASES = [
    Case("unsupported-op", _write(LSTM, "lstm.onnx"), ["lstm.onnx", "'LSTM'", "'lstm_1'",
                                                       "opset 14"], UnsupportedError),
    Case("three-unsupported", _write(THREE, "three.onnx"),
         ["three.onnx", "'LSTM'", "'GRU'", "'RNN'", "'seq_a'", "'seq_b'", "'seq_c'"],
         UnsupportedError, multiline=True),
    Case("made-up-op", _write(MADE_UP, "frob.onnx"), ["frob.onnx", "Frobnicate", "13", "frob_7"]),
    Case("empty-file", _write(b"", "empty.onnx"), ["empty.onnx", "empty"]),
    Case("random-bytes", _write(np.random.default_rng(1).bytes(4096), "random.onnx"),
         ["random.onnx"]),
    Case("truncated", _lazy("trunc.onnx", lambda: small_squeezenet_bytes()[:1_000_000]),
         ["trunc.onnx"]),
    Case("tensor-not-model",
         _write(numpy_helper.from_array(np.arange(1000, dtype=np.float32), "t")
                .SerializeToString(), "tensor.onnx"), ["tensor.onnx"]),
    Case("no-graph", _lazy("nograph.onnx", _no_graph), ["nograph.onnx", "graph"]),
    Case("dangling-input", _write(DANGLING, "dangling.onnx"), ["dangling.onnx", "'ghost'", "act_dangle"]),
    Case("duplicate-output", _write(DUPLICATE, "dup.onnx"), ["dup.onnx", "'t'", "second_t"]),
    Case("cycle", _write(CYCLE, "cycle.onnx"), ["cycle.onnx", "'b'", "loop_a"]),
    Case("conv-channels", _write(CONV_MISMATCH, "convmis.onnx"),
         ["convmis.onnx", "'stem_7'", "Conv", "3", "5"], ModelError),
    Case("concat-shapes", _write(CONCAT_MISMATCH, "catmis.onnx"),
         ["catmis.onnx", "merge_3", "Concat"], ModelError),
    Case("concat-shapes-inner", _write(CONCAT_MISMATCH_INNER, "catmis2.onnx"),
         ["catmis2.onnx", "merge_3", "Concat"], ModelError),
    Case("reshape-impossible", _write(RESHAPE, "reshape.onnx"),
         ["reshape.onnx", "'head_view'", "Reshape", "[1, 5, 7]"], ModelError),
    Case("attribute-type", _write(ATTR_TYPE, "attr.onnx"), ["attr.onnx", "stem_2", "strides", "Conv"]),
    Case("unknown-domain", _write(DOMAIN, "domain.onnx"),
         ["domain.onnx", "com.example", "Warp", "'warp_1'"], UnsupportedError),
    Case("domain-not-imported", _write(DOMAIN_NOT_IMPORTED, "domain2.onnx"),
         ["domain2.onnx", "com.example", "warp_2", "Warp"]),
    Case("no-opset-import", _lazy("noopset.onnx", _no_opset), ["noopset.onnx", "opset_import"]),
    Case("symbolic-dim", _write(SYMBOLIC, "symbolic.onnx"),
         ["symbolic.onnx", "'x'", "--input-shape", "'H'"]),
    Case("missing-file", lambda d: d / "does-not-exist.onnx", ["does-not-exist.onnx"]),
    Case("input-too-large", _write(HUGE_INPUT, "huge.onnx"),
         ["huge.onnx", "'x'", "[1, 3, 20000, 20000]", "limit"], ModelError),
    Case("per-axis-scale-count", _write(PER_AXIS_SHORT, "peraxis.onnx"),
         ["peraxis.onnx", "'w_deq'", "DequantizeLinear", "3 per-axis scales", "size 8"],
         ModelError),
    Case("contrib-missing-input", _lazy("qsm4.onnx", lambda: _qsoftmax(["x", "xs", "xz", "ys"])),
         ["qsm4.onnx", "'q_soft'", "QLinearSoftmax", "5 inputs, got 4"], ModelError),
    Case("contrib-extra-input",
         _lazy("qsm6.onnx", lambda: _qsoftmax(["x", "xs", "xz", "ys", "yz", "yz"])),
         ["qsm6.onnx", "'q_soft'", "QLinearSoftmax", "got 6"], ModelError),
]
DEBUG_CASES = {"unsupported-op", "empty-file", "conv-channels", "symbolic-dim"}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad-models")
    return {c.id: c.make(d) for c in CASES}


def _ids(cases: list[Case]) -> list[str]:
    return [c.id for c in cases]


def listing(d: Path) -> set[str]:
    return {p.name for p in d.iterdir()}


def sqzc_cli(*args: object, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run this interpreter's ``sqzc`` (fails, never skips, when it is missing)."""
    return subprocess.run([*sqzc_command(), *(str(a) for a in args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def assert_cli_error(r: subprocess.CompletedProcess[str], *, multiline: bool = False,
                     code: int = 2) -> str:
    """The CLI side of the contract; returns the message after ``sqzc: error: ``."""
    assert r.returncode == code, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("sqzc: error: "), r.stderr
    assert r.stderr.count("sqzc: error:") == 1, r.stderr
    if not multiline:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "internal error" not in r.stderr
    return r.stderr[len("sqzc: error: "):]


# ----------------------------------------------------------------------------- model errors


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_api_error(case: Case, models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "lib.so"
    with pytest.raises(case.exc) as ei:
        sqzc.compile(models[case.id], out)
    msg = str(ei.value)
    for name in case.names:
        assert name in msg, f"{name!r} missing from: {msg}"
    assert listing(tmp_path) == set(), "compile left files behind"
    if case.multiline:  # ONE error for all problems, not one per problem
        assert "3 unsupported" in msg


@pytest.fixture(scope="module")
def relu_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid one-node model for the output-path cases."""
    p = tmp_path_factory.mktemp("relu") / "relu.onnx"
    p.write_bytes(model([helper.make_node("Relu", ["x"], ["y"], name="act")],
                        [vi("x", [1, 3, 4, 4])], [vi("y", [1, 3, 4, 4])]).SerializeToString())
    return p


def test_output_in_missing_directory_api(relu_model: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        sqzc.compile(relu_model, tmp_path / "nope" / "lib.so")


def test_output_is_a_directory(relu_model: Path, tmp_path: Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    r = sqzc_cli("compile", relu_model, "-o", target, "--emit", "header")
    assert_cli_error(r)
    assert listing(target) == set() and listing(tmp_path) == {"out"}


def test_failed_compile_keeps_previous_output(tmp_path: Path, models: dict[str, Path]) -> None:
    out = tmp_path / "lib.so"
    out.write_bytes(b"previous build")
    assert_cli_error(sqzc_cli("compile", models["unsupported-op"], "-o", out))
    assert out.read_bytes() == b"previous build"
    assert listing(tmp_path) == {"lib.so"}


def test_zoo_bad_batch(tmp_path: Path) -> None:
    assert_cli_error(sqzc_cli("zoo", "squeezenet1.1", "-o", tmp_path / "z.onnx",
                              "--batch", "abc"))
    assert listing(tmp_path) == set()


# ----------------------------------------------------------------------------- API arguments

#: ``sqzc.compile`` arguments of the wrong kind: ``make(model path, tmp dir) -> (model,
#: output, options)`` and the words the ``UsageError`` must contain. Before the checks the
#: non-path ones escaped as ``TypeError`` / ``ValueError`` / ``AttributeError`` from
#: pathlib or ``options.check``, ``{}`` passed as default options, and a float dimension
#: or a string flag was silently truncated or taken as true.
BAD_COMPILE_ARGS: list = [
    pytest.param(lambda m, d: (None, d / "lib.so", None), ["model", "NoneType"],
                 id="model-None"),
    pytest.param(lambda m, d: (5, d / "lib.so", None), ["model", "int"], id="model-int"),
    pytest.param(lambda m, d: (onnx.load(m), d / "lib.so", None), ["model", "onnx.save"],
                 id="model-proto"),
    pytest.param(lambda m, d: (m.read_bytes(), d / "lib.so", None), ["model", "bytes"],
                 id="model-bytes"),
    pytest.param(lambda m, d: ("", d / "lib.so", None), ["model", "empty"], id="model-empty"),
    pytest.param(lambda m, d: (f"{m}\0x", d / "lib.so", None), ["model", "NUL"],
                 id="model-nul"),
    pytest.param(lambda m, d: (m, 5, None), ["output", "int"], id="output-int"),
    pytest.param(lambda m, d: (m, "", None), ["output", "empty"], id="output-empty"),
    pytest.param(lambda m, d: (m, f"{d}/lib\0.so", None), ["output", "NUL"], id="output-nul"),
    pytest.param(lambda m, d: (m, d / "lib.so", 3), ["options", "int"], id="options-int"),
    pytest.param(lambda m, d: (m, d / "lib.so", {}), ["options", "dict"], id="options-dict"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(opt_level=True)),
                 ["optimization level", "True"], id="opt-level-bool"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(opt_level="3")),
                 ["optimization level", "'3'"], id="opt-level-str"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(emit=None)),
                 ["--emit", "None"], id="emit-None"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(target_cpu=None)),
                 ["target_cpu"], id="target-None"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(input_shapes=[1, 3, 4, 4])),
                 ["input_shapes", "list"], id="shapes-list"),
    pytest.param(lambda m, d: (m, d / "lib.so",
                               CompileOptions(input_shapes={"x": [1.5, 3, 4, 4]})),
                 ["input_shapes", "'x'", "1.5"], id="shapes-float-dim"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(input_shapes={"x": "1,3"})),
                 ["input_shapes", "'x'"], id="shapes-str"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(input_shapes={"x": None})),
                 ["input_shapes", "'x'"], id="shapes-None"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(instrumentation=None)),
                 ["instrumentation"], id="instrumentation-None"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(verify_ir="no")),
                 ["verify_ir", "'no'"], id="flag-str"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(optimize="small")),
                 ["--optimize", "'small'", "speed, size"], id="optimize-unknown"),
    pytest.param(lambda m, d: (m, d / "lib.so", CompileOptions(weights="zip")),
                 ["--weights", "'zip'"], id="weights-unknown"),
]


@pytest.mark.parametrize("make, names", BAD_COMPILE_ARGS)
def test_api_bad_compile_arguments(make: Callable[[Path, Path], tuple], names: list[str],
                                   relu_model: Path, tmp_path: Path) -> None:
    """A wrong argument is a ``UsageError`` naming it, raised before anything is written."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    model_arg, output, options = make(relu_model, out_dir)
    with pytest.raises(UsageError) as ei:
        sqzc.compile(model_arg, output, options)
    for name in names:
        assert name in str(ei.value), f"{name!r} missing from: {ei.value}"
    assert listing(out_dir) == set(), "compile left files behind"


def test_api_good_compile_arguments(relu_model: Path, tmp_path: Path) -> None:
    """The counterpart of the bad cases: str and os.PathLike paths, options ``None``, and
    numpy integers for the opt level and a dimension are all accepted."""
    sqzc.compile(str(relu_model), str(tmp_path / "a.h"), CompileOptions(emit="header"))
    sqzc.compile(relu_model, tmp_path / "b.h", CompileOptions(
        emit="header", opt_level=np.int64(2), input_shapes={"x": np.array([1, 3, 4, 4])}))
    assert sqzc.compile(relu_model, None, None).output is None
    assert listing(tmp_path) == {"a.h", "b.h"}


# ----------------------------------------------------------------------------- external data

# Paths opened by this process while ``_OPENED`` is a list (an audit hook sees every
# open() from Python, including onnx's Python helpers).
_OPENED: list[str] | None = None


def _audit(event: str, args: tuple) -> None:
    if event == "open" and _OPENED is not None and isinstance(args[0], str | bytes | Path):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)

SECRET = np.arange(4, dtype=np.float32) + 100


def external_model(location: str, offset: int | None = None,
                   length: int | None = None) -> onnx.ModelProto:
    t = onnx.TensorProto()
    t.name, t.data_type = "w", F32
    t.dims.extend([4])
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        if value is not None:
            e = t.external_data.add()
            e.key, e.value = key, str(value)
    return model([helper.make_node("Add", ["x", "w"], ["y"], name="add_w")],
                 [vi("x", [1, 4])], [vi("y", [1, 4])], [t])


@pytest.fixture()
def ext(tmp_path: Path) -> dict[str, Path]:
    """A model folder with data.bin inside, secret.bin outside and a symlink to it."""
    outside = tmp_path / "secret.bin"
    outside.write_bytes(SECRET.tobytes())
    d = tmp_path / "model"
    d.mkdir()
    (d / "data.bin").write_bytes(np.full(4, 2.0, np.float32).tobytes())
    os.symlink(outside, d / "link.bin")
    return {"dir": d, "secret": outside, "link": d / "link.bin"}


EXTERNAL = {
    "absolute": lambda e: external_model(str(e["secret"])),
    "dotdot": lambda e: external_model("../secret.bin"),
    "dotdot-inner": lambda e: external_model("sub/../../secret.bin"),
    "symlink-outside": lambda e: external_model("link.bin"),
    "offset-length-beyond": lambda e: external_model("data.bin", offset=8, length=16),
    "offset-beyond": lambda e: external_model("data.bin", offset=32),
    "length-beyond": lambda e: external_model("data.bin", length=17),
    "missing-file": lambda e: external_model("nope.bin"),
}


def _secret_reads(opened: list[str], e: dict[str, Path]) -> list[str]:
    """Opens of the outside file, directly or through the symlink."""
    secret = os.path.realpath(e["secret"])
    return [p for p in opened if os.path.realpath(p) == secret]


def test_external_data_inside_folder_is_used(ext: dict[str, Path]) -> None:
    """Positive control: the same construction with a valid location compiles and runs."""
    p = ext["dir"] / "ok.onnx"
    p.write_bytes(external_model("data.bin").SerializeToString())
    out = ext["dir"] / "ok.so"
    global _OPENED
    _OPENED = []
    try:
        sqzc.compile(p, out)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    # the audit hook that guards the refusal tests below does see external-data reads
    assert os.path.realpath(ext["dir"] / "data.bin") in {os.path.realpath(o) for o in opened}
    x = np.ones((1, 4), np.float32)
    np.testing.assert_array_equal(sqzc.load(out).run({"x": x})["y"], x + 2)


@pytest.mark.parametrize("kind", list(EXTERNAL))
def test_external_data_refused(kind: str, ext: dict[str, Path]) -> None:
    global _OPENED
    p = ext["dir"] / f"{kind}.onnx"
    p.write_bytes(EXTERNAL[kind](ext).SerializeToString())
    _OPENED = []
    try:
        with pytest.raises(ModelError) as ei:
            sqzc.compile(p, None)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    msg = str(ei.value)
    assert p.name in msg and "'w'" in msg, msg
    assert _secret_reads(opened, ext) == []
    assert str(SECRET[0]) not in msg and "100.0" not in msg


@pytest.mark.parametrize("offset, length", [(-4, 4), (0, -4)], ids=["offset", "length"])
def test_external_data_negative_bounds_api(offset: int, length: int,
                                           ext: dict[str, Path]) -> None:
    p = ext["dir"] / "neg.onnx"
    p.write_bytes(external_model("data.bin", offset=offset, length=length).SerializeToString())
    with pytest.raises(ModelError, match="neg.onnx"):
        sqzc.compile(p, None)


def test_external_data_negative_offset_cli(ext: dict[str, Path]) -> None:
    p = ext["dir"] / "neg.onnx"
    p.write_bytes(external_model("data.bin", offset=-4, length=4).SerializeToString())
    assert_cli_error(sqzc_cli("compile", p, "-o", ext["dir"] / "neg.so"))


@pytest.mark.parametrize("kind", ["absolute", "dotdot", "symlink-outside",
                                  "offset-length-beyond"])
def test_external_data_refused_cli(kind: str, ext: dict[str, Path]) -> None:
    p = ext["dir"] / f"{kind}.onnx"
    p.write_bytes(EXTERNAL[kind](ext).SerializeToString())
    before = listing(ext["dir"])
    msg = assert_cli_error(sqzc_cli("compile", p, "-o", ext["dir"] / "lib.so"))
    assert p.name in msg and "external data" in msg
    assert listing(ext["dir"]) == before


# ----------------------------------------------------------------------------- call errors


@pytest.fixture(scope="module")
def relu_lib(relu_model: Path) -> sqzc.CompiledModel:
    out = relu_model.parent / "relu.so"
    sqzc.compile(relu_model, out)
    return sqzc.load(out)


def test_call_ok(relu_lib: sqzc.CompiledModel) -> None:
    x = np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    np.testing.assert_array_equal(relu_lib(x), np.maximum(x, 0))


def test_call_wrong_dtype(relu_lib: sqzc.CompiledModel) -> None:
    with pytest.raises(CallError, match=r"'x'.*float32.*float64"):
        relu_lib(np.zeros((1, 3, 4, 4), np.float64))
    with pytest.raises(CallError, match=r"'x'"):
        relu_lib.run({"x": np.zeros((1, 3, 4, 4), np.int32)})


@pytest.mark.parametrize("path, names", [
    (None, ["path", "NoneType"]), (5, ["path", "int"]), ("", ["path", "empty"]),
    ("relu\0.so", ["path", "NUL"]), (b"\x7fELF\0\0\0", ["path", "NUL", "contents"]),
], ids=["None", "int", "empty", "nul", "library-bytes"])
def test_api_bad_load_path(path: object, names: list[str]) -> None:
    """``sqzc.load`` of something that is not a path: a ``UsageError`` naming ``path``,
    not the ``TypeError`` from ``os.fspath`` it used to be."""
    with pytest.raises(UsageError) as ei:
        sqzc.load(path)  # type: ignore[arg-type]
    for name in names:
        assert name in str(ei.value), f"{name!r} missing from: {ei.value}"


@pytest.mark.parametrize("threads", ["x", 0, -1, 1.0, True])
def test_api_bad_load_threads(threads: object, relu_lib: sqzc.CompiledModel) -> None:
    with pytest.raises(UsageError, match="threads"):
        sqzc.load(relu_lib.path, threads=threads)  # type: ignore[arg-type]


def test_api_load_path_kinds(relu_lib: sqzc.CompiledModel) -> None:
    """str, os.PathLike and bytes paths all open the same library (bytes decoded)."""
    for path in (relu_lib.path, Path(relu_lib.path), os.fsencode(relu_lib.path)):
        m = sqzc.load(path, threads=1)
        assert m.path == relu_lib.path and isinstance(m.path, str)


@pytest.mark.parametrize("shape", [(1, 3, 4, 5), (1, 3, 4), (2, 3, 4, 4), (1, 48)])
def test_call_wrong_shape(shape: tuple[int, ...], relu_lib: sqzc.CompiledModel) -> None:
    with pytest.raises(CallError, match=r"'x'.*shape") as ei:
        relu_lib(np.zeros(shape, np.float32))
    assert "[1,3,4,4]" in str(ei.value).replace(" ", "")


def test_call_wrong_names(relu_lib: sqzc.CompiledModel) -> None:
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(CallError, match=r"'nope'") as ei:
        relu_lib.run({"nope": x})
    assert "'x'" in str(ei.value)
    with pytest.raises(CallError, match=r"'x'"):
        relu_lib.run({})
    with pytest.raises(CallError, match=r"'extra'"):
        relu_lib.run({"x": x, "extra": x})


def test_cli_run_wrong_dtype(relu_lib: sqzc.CompiledModel, relu_model: Path,
                             tmp_path: Path) -> None:
    xp = tmp_path / "x.npy"
    np.save(xp, np.zeros((1, 3, 4, 4), np.float64))
    out = tmp_path / "y.npy"
    r = sqzc_cli("run", relu_model.parent / "relu.so", "--input", xp, "-o", out)
    msg = assert_cli_error(r)
    assert "'x'" in msg and "float64" in msg
    assert not out.exists()
