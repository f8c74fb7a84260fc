"""End-to-end tests of the ``sqzc`` console script (run as a subprocess, like a user would).

Most runs use ``TINY``, a hand-built Fire-module-like model (conv/relu x3, concat, identity,
maxpool, global average pool) that compiles in well under a second. The full SqueezeNet 1.1
from ``sqzc zoo`` is compiled exactly once (module fixture ``squeezenet``) and the bundled
fp16 SqueezeNet once more by ``sqzc demo``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.passes import PIPELINE
from sqzc.tools.zoo import DESCRIPTIONS
from sqz_testing import assert_close, ort_run, sqzc_command

PASS_NAMES = [p.name for p in PIPELINE]
HEADER_RE = re.compile(r"^// ----- IR (before|after) (\S+) -----$", re.M)


def sqzc_cli(*args: object, cwd: Path | None = None, expect: int | None = 0,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the console script; assert the exit code unless ``expect`` is None."""
    proc = subprocess.run([*sqzc_command(), *(str(a) for a in args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
    if expect is not None:
        assert proc.returncode == expect, (
            f"sqzc {' '.join(map(str, args))} exited {proc.returncode}, expected {expect}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def headers(stderr: str) -> list[tuple[str, str]]:
    """``(before|after, pass)`` for every IR banner printed by the pass instrumentation."""
    return HEADER_RE.findall(stderr)


# ----------------------------------------------------------------------------- models


def tiny_model() -> onnx.ModelProto:
    """A one-Fire-module model: squeeze conv+relu, expand 1x1/3x3 conv+relu, concat,
    identity, maxpool, global average pool. Exercises every -O3 rewrite cheaply."""
    rng = np.random.default_rng(0)

    def w(name: str, shape: list[int]) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32),
                                       name)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="sq/conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="sq/relu"),
        helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="e1/conv", kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="e1/relu"),
        helper.make_node("Conv", ["r1", "w3", "b3"], ["c3"], name="e3/conv", kernel_shape=[3, 3],
                         pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c3"], ["r3"], name="e3/relu"),
        helper.make_node("Concat", ["r2", "r3"], ["cat"], name="fire/concat", axis=1),
        helper.make_node("Identity", ["cat"], ["id"], name="ident"),
        helper.make_node("MaxPool", ["id"], ["p"], name="pool", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["p"], ["y"], name="gap"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 1, 1])],
        [w("w1", [4, 3, 1, 1]), w("b1", [4]), w("w2", [4, 4, 1, 1]), w("b2", [4]),
         w("w3", [4, 4, 3, 3]), w("b3", [4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    onnx.checker.check_model(model, full_check=True)
    return model


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli")


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    p = work / "tiny.onnx"
    onnx.save(tiny_model(), p)
    return p


@pytest.fixture(scope="module")
def squeezenet(work: Path) -> dict[str, object]:
    """``sqzc zoo`` + the one full ``sqzc compile --stats`` of this module."""
    model = work / "x.onnx"
    z = sqzc_cli("zoo", "squeezenet1.1", "-o", model, "--opset", "13")
    assert model.is_file() and "wrote" in z.stdout
    m = onnx.load(model)
    assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [13]
    lib = work / "lib.so"
    c = sqzc_cli("compile", model, "-o", lib, "--stats")
    return {"model": model, "lib": lib, "stats": c.stdout}


def dump_json(model: Path, *extra: object) -> dict:
    return json.loads(sqzc_cli("dump", model, "--format", "json", *extra).stdout)


def ops_of(doc: dict) -> list[str]:
    return [n["op"] for n in doc["nodes"]]


# ----------------------------------------------------------------------------- basics


def test_sqzc_command_is_this_interpreters() -> None:
    """``sqzc_command()`` runs without the venv on PATH and belongs to the interpreter
    running pytest: before it, the CLI tests looked ``sqzc`` up on PATH and all skipped
    when the venv's pytest ran unactivated (or tested another installation)."""
    cmd = sqzc_command()
    proc = subprocess.run([*cmd, "--help"], env={**os.environ, "PATH": os.defpath},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: sqzc"), proc.stdout
    if cmd[0] == sys.executable:  # the ``python -m sqzc`` fallback
        assert cmd == [sys.executable, "-m", "sqzc"]
    else:  # the console script: its shebang names this interpreter (same venv folder)
        shebang = Path(cmd[0]).read_text(errors="replace").splitlines()[0]
        assert shebang.startswith("#!"), shebang
        interp, exe = Path(shebang[2:].split()[0]), Path(sys.executable)
        if interp.name != "sh":  # pip writes a /bin/sh wrapper for very long paths
            assert interp.parent == exe.parent or interp.resolve() == exe.resolve(), shebang


def test_version() -> None:
    r = sqzc_cli("--version")
    assert r.stdout.strip() == f"sqzc {sqzc.__version__}"


def test_passes_lists_pipeline_in_order() -> None:
    lines = [ln for ln in sqzc_cli("passes").stdout.splitlines() if ln.strip()]
    assert [ln.split()[0] for ln in lines] == PASS_NAMES
    for ln, p in zip(lines, PIPELINE):
        assert f"-O{p.min_level}+" in ln
        assert p.summary and p.summary in ln, f"pass {p.name} has no summary line"


def test_zoo_list() -> None:
    out = sqzc_cli("zoo", "--list").stdout
    listed = [ln.split()[0] for ln in out.splitlines() if ln.strip()]
    assert listed == list(DESCRIPTIONS)
    for name, desc in DESCRIPTIONS.items():
        assert desc in out, name


# ----------------------------------------------------------------------------- full SqueezeNet


def test_compile_stats(squeezenet: dict[str, object]) -> None:
    stats = str(squeezenet["stats"])
    lib = Path(str(squeezenet["lib"]))
    assert lib.is_file() and lib.read_bytes()[:4] == b"\x7fELF"
    m = re.search(r"^arena:\s+(\d+) bytes \(liveness lower bound (\d+) bytes\)$", stats, re.M)
    assert m, stats
    arena, lower = int(m.group(1)), int(m.group(2))
    assert arena == lower > 0  # the README's promise for SqueezeNet
    ws = re.search(r"^workspace:\s+(\d+) bytes", stats, re.M)
    assert ws and int(ws.group(1)) >= arena, stats  # arena + runtime scratch
    w = re.search(r"^weights:\s+(\d+) bytes(.*)$", stats, re.M)
    assert w and int(w.group(1)) > 4_000_000, stats  # 1.2M float32 parameters
    # the default build stores the weights compressed (Winograd's 6x6 filters are rebuilt
    # from the 3x3 ones at load) and says how long the decode took here
    assert re.fullmatch(r", stored compressed in \d+; decoded at load in [\d.]+ ms "
                        r"\(sqz_init, once per process, this CPU\)", w.group(2)), stats
    k = re.search(r"^kernels:\s+(\d+)$", stats, re.M)
    assert k and int(k.group(1)) > 0
    t = re.search(r"^time:\s+(.*)$", stats, re.M)
    assert t and "import" in t.group(1) and "total" in t.group(1)
    assert_times_add_up(t.group(1))


def assert_times_add_up(line: str) -> None:
    """The --stats time parts do not overlap: they add up to at most the total."""
    parts_text, _, total_text = line.partition(";")
    parts = dict(re.findall(r"(\S+) ([0-9.]+)s", parts_text))
    total = re.fullmatch(r"\s*total ([0-9.]+)s\s*", total_text)
    assert total and "total" not in parts, line
    assert {"import", "passes", "llvm", "codegen", "link"} <= set(parts), line
    # printed with 2 decimals: allow 0.01 s of rounding per part
    assert sum(map(float, parts.values())) <= float(total.group(1)) + 0.01 * len(parts), line


def test_info_text_and_json(squeezenet: dict[str, object]) -> None:
    lib, model = Path(str(squeezenet["lib"])), Path(str(squeezenet["model"]))
    sha = hashlib.sha256(model.read_bytes()).hexdigest()
    text = sqzc_cli("info", lib).stdout
    assert f"({lib.stat().st_size} bytes)" in text
    assert sha in text
    assert re.search(r"^input:\s+data_0: float32\[1,3,224,224\]", text, re.M), text
    assert re.search(r"^output:\s+softmaxout_1: float32\[1,1000,1,1\]", text, re.M), text
    assert re.search(r"^batch:\s+static", text, re.M), text

    meta = json.loads(sqzc_cli("info", lib, "--json").stdout)
    assert meta["abi_version"] == 2
    assert meta["compiler"] == f"sqzc {sqzc.__version__}"
    assert meta["model_sha256"] == sha
    assert meta["dynamic_batch"] is False
    assert meta["inputs"] == [{"name": "data_0", "dtype": "float32", "shape": [1, 3, 224, 224]}]
    assert meta["outputs"] == [{"name": "softmaxout_1", "dtype": "float32",
                                "shape": [1, 1000, 1, 1]}]
    # docs/ABI.md: workspace_bytes is what a call needs (arena + runtime scratch such as the
    # thread barrier); arena_bytes is the planned arena, which meets the liveness bound
    arena = meta.get("arena_bytes", meta["workspace_bytes"])
    assert arena == meta["arena_lower_bound"] > 0
    assert meta["workspace_bytes"] >= arena
    stats = str(squeezenet["stats"])
    m = re.search(r"^arena:\s+(\d+) bytes", stats, re.M)
    assert m and int(m.group(1)) == arena  # --stats reports the same arena
    assert meta["opt_level"] == 3
    # ... and both commands give the same figure under the same name
    for out in (text, stats):
        ws = re.search(r"^workspace:\s+(\d+) bytes", out, re.M)
        assert ws and int(ws.group(1)) == meta["workspace_bytes"], out
        a = re.search(r"^arena:\s+(\d+) bytes", out, re.M)
        assert a and int(a.group(1)) == meta["arena_bytes"], out


def test_run_matches_onnxruntime(squeezenet: dict[str, object], work: Path) -> None:
    lib, model = Path(str(squeezenet["lib"])), Path(str(squeezenet["model"]))
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    xp, yp = work / "x.npy", work / "y.npy"
    np.save(xp, x)
    r = sqzc_cli("run", lib, "--input", xp, "-o", yp)
    y = np.load(yp)
    (want,) = ort_run(model, {"data_0": x})
    assert_close(y, np.asarray(want), "softmaxout_1")
    assert f"argmax [{int(np.argmax(y))}]" in r.stdout
    # the NAME=FILE form gives the same result
    yp2 = work / "y2.npy"
    sqzc_cli("run", lib, "--input", f"data_0={xp}", "-o", yp2)
    np.testing.assert_array_equal(np.load(yp2), y)


def test_demo_classifies_tabby(work: Path) -> None:
    r = sqzc_cli("demo", cwd=work)
    lines = r.stdout.splitlines()
    i = next(i for i, ln in enumerate(lines) if "top-5" in ln)
    top = lines[i + 1 : i + 6]
    assert len(top) == 5, r.stdout
    assert "tabby" in top[0], r.stdout
    assert re.match(r"^\s+[0-9.]+\s+281\s+", top[0]), r.stdout


# ----------------------------------------------------------------------------- dump


def test_dump_text(tiny: Path) -> None:
    out = sqzc_cli("dump", tiny).stdout
    assert out.startswith("// sqzc IR graph 'tiny'")
    assert re.search(r"^%\S+ = conv\(", out, re.M)
    assert re.search(r'^return %\S+ as "y"$', out, re.M)
    # deterministic: two runs give byte-identical dumps
    assert sqzc_cli("dump", tiny).stdout == out


def test_dump_dot(tiny: Path) -> None:
    out = sqzc_cli("dump", tiny, "--format", "dot").stdout
    assert out.startswith('digraph "tiny" {')
    assert out.rstrip().endswith("}")
    assert out.count("{") == out.count("}")
    assert re.search(r'^\s+"\S+" -> "\S+";$', out, re.M)
    assert '"out:y"' in out


def test_dump_json_schema(tiny: Path) -> None:
    doc = dump_json(tiny)
    assert isinstance(doc["nodes"], list) and doc["nodes"]
    tensors = doc["tensors"]
    names = set()
    for n in doc["nodes"]:
        assert {"name", "op", "inputs", "outputs", "attrs", "origin"} <= set(n), n
        assert isinstance(n["name"], str) and isinstance(n["op"], str)
        assert isinstance(n["inputs"], list) and isinstance(n["outputs"], list)
        assert isinstance(n["attrs"], dict) and isinstance(n["origin"], list)
        names.add(n["name"])
        for t in n["outputs"]:
            assert t in tensors, t
    for name, t in tensors.items():
        assert isinstance(t["shape"], list) and all(isinstance(d, int) for d in t["shape"]), name
        assert t["dtype"] in ("float32", "float16", "int64", "int32", "int8", "uint8", "bool")
    for n in doc["nodes"]:
        assert set(n["inputs"]) <= names, n  # edges point at nodes of the dump
    assert [o["name"] for o in doc["outputs"]] == ["y"]
    assert tensors[doc["outputs"][0]["node"]]["shape"] == [1, 8, 1, 1]
    x = tensors[doc["inputs"][0]["node"]]
    assert (x["shape"], x["dtype"]) == ([1, 3, 8, 8], "float32")
    # origin points back at ONNX node names
    conv_origins = {o for n in doc["nodes"] if n["op"] == "conv" for o in n["origin"]}
    assert {"sq/conv", "e1/conv", "e3/conv"} <= conv_origins


def test_dump_to_file(tiny: Path, work: Path) -> None:
    out = work / "dump.json"
    r = sqzc_cli("dump", tiny, "--format", "json", "-o", out)
    assert r.stdout == ""
    assert json.loads(out.read_text()) == dump_json(tiny)


def test_o3_rewrites_and_o0_keeps_everything(tiny: Path) -> None:
    o3 = dump_json(tiny)
    assert "relu" not in ops_of(o3) and "identity" not in ops_of(o3)
    convs = [n for n in o3["nodes"] if n["op"] == "conv"]
    assert len(convs) == 3 and all(n["attrs"]["act"]["kind"] == "relu" for n in convs)
    (cat,) = [n for n in o3["nodes"] if n["op"] == "concat"]
    assert cat["copies"] == []

    o0 = dump_json(tiny, "-O0")
    ops = ops_of(o0)
    assert ops.count("relu") == 3 and ops.count("identity") == 1
    assert all("act" not in n["attrs"] for n in o0["nodes"] if n["op"] == "conv")
    (cat0,) = [n for n in o0["nodes"] if n["op"] == "concat"]
    assert len(cat0["copies"]) == 2 and set(cat0["copies"]) == set(cat0["inputs"])
    text0 = sqzc_cli("dump", tiny, "-O0").stdout
    assert re.search(r"= concat\(.*copies\(%\S+, %\S+\)", text0), text0
    assert re.search(r"= identity\(", text0) and re.search(r"= relu\(", text0)


# ----------------------------------------------------------------------------- emit


@pytest.mark.parametrize("kind", ["llvm", "asm", "obj", "header"])
def test_emit(kind: str, tiny: Path, work: Path) -> None:
    out = work / f"tiny.{kind}"
    sqzc_cli("compile", tiny, "-o", out, "--emit", kind)
    data = out.read_bytes()
    assert data
    if kind == "obj":
        assert data[:4] == b"\x7fELF"
        assert int.from_bytes(data[16:18], "little") == 1  # ET_REL: an object, not a .so
    else:
        text = data.decode()
        if kind == "llvm":
            assert re.search(r"^define .*@\"?sqz_run\"?\(", text, re.M), text[:2000]
            assert "target triple" in text
        elif kind == "asm":
            assert re.search(r"^\s*\.globl\s+sqz_run$", text, re.M)
            assert re.search(r"^sqz_run:", text, re.M)
        else:
            assert "sqz_run" in text and "sqz_metadata" in text and "sqz_workspace_size" in text
            cc = shutil.which("cc")
            if cc is None:
                pytest.skip("no C compiler to check the header")
            r = subprocess.run([cc, "-fsyntax-only", "-Wall", "-Werror", "-x", "c", str(out)],
                               capture_output=True, text=True)
            assert r.returncode == 0, r.stderr


# ----------------------------------------------------------------------------- instrumentation


def test_print_after_all_on_compile(tiny: Path, work: Path) -> None:
    r = sqzc_cli("compile", tiny, "-o", work / "paa.so", "--print-after-all")
    assert headers(r.stderr) == [("after", p) for p in PASS_NAMES]
    assert r.stdout == ""  # the IR goes to stderr only
    assert (work / "paa.so").is_file()
    # each banner is followed by the IR text
    for chunk in HEADER_RE.split(r.stderr)[3::3]:
        assert chunk.lstrip("\n").startswith("// sqzc IR graph"), chunk[:200]


def test_print_after_one_pass(tiny: Path) -> None:
    r = sqzc_cli("dump", tiny, "--print-after=fuse-conv-activation")
    assert headers(r.stderr) == [("after", "fuse-conv-activation")]
    body = r.stderr.split("-----\n", 1)[1]
    assert "act=relu" in body and not re.search(r"= relu\(", body)


def test_print_before_canonicalize(tiny: Path) -> None:
    r = sqzc_cli("dump", tiny, "--print-before=canonicalize")
    assert headers(r.stderr) == [("before", "canonicalize")]
    body = r.stderr.split("-----\n", 1)[1]
    # the imported graph, before any rewrite
    assert re.search(r"= identity\(", body) and len(re.findall(r"= relu\(", body)) == 3


def test_dump_dir_and_print_changed(tiny: Path, work: Path) -> None:
    d = work / "dumps"
    r = sqzc_cli("dump", tiny, "--dump-dir", d)
    files = sorted(p.name for p in d.iterdir())
    want = [f"{i:03d}_{name}.sqzir" for i, name in enumerate(PASS_NAMES, start=1)]
    assert [f for f in files if not f.startswith("000_")] == want
    texts = [(d / f).read_text() for f in files]
    assert all(t.startswith("// sqzc IR graph") for t in texts)
    assert texts[-1] == r.stdout  # the last snapshot is the final IR
    # --print-changed prints exactly the passes whose snapshot differs from the one before
    assert files[0] == "000_input.sqzir", "no snapshot of the input IR"
    changed = [PASS_NAMES[i] for i in range(len(PASS_NAMES)) if texts[i + 1] != texts[i]]
    assert "fuse-conv-activation" in changed and "canonicalize" in changed
    pc = sqzc_cli("dump", tiny, "--print-changed")
    assert headers(pc.stderr) == [("after", p) for p in changed]


def test_time_passes(tiny: Path) -> None:
    r = sqzc_cli("dump", tiny, "--time-passes")
    assert "timing report" in r.stderr
    for name in PASS_NAMES:
        assert re.search(rf"^\s+[0-9.]+\s+[0-9.]+%\s+{re.escape(name)}\b", r.stderr, re.M), name
    assert re.search(r"^\s+[0-9.]+\s+100\.0%\s+total$", r.stderr, re.M)
    assert r.stdout.startswith("// sqzc IR graph")  # the table goes to stderr only


def test_disable_pass_keeps_relu(tiny: Path) -> None:
    doc = dump_json(tiny, "--disable-pass", "fuse-conv-activation")
    assert ops_of(doc).count("relu") == 3
    assert all("act" not in n["attrs"] for n in doc["nodes"] if n["op"] == "conv")
    assert "identity" not in ops_of(doc)  # the other passes still ran
    r = sqzc_cli("dump", tiny, "--disable-pass", "fuse-conv-activation", "--print-after-all")
    assert ("after", "fuse-conv-activation") not in headers(r.stderr)


@pytest.mark.parametrize("flag", ["--disable-pass", "--print-after", "--print-before"])
def test_unknown_pass_name(flag: str, tiny: Path, work: Path) -> None:
    out = work / f"unknown{flag}.so"
    r = sqzc_cli("compile", tiny, "-o", out, flag, "fuse-everything", expect=2)
    assert r.stderr.startswith("sqzc: error:")
    assert len(r.stderr.strip().splitlines()) == 1
    assert "Traceback" not in r.stderr
    assert "fuse-everything" in r.stderr and flag in r.stderr
    for name in PASS_NAMES:
        assert name in r.stderr
    assert not out.exists()


# ----------------------------------------------------------------------------- error contract
# A user audit found these: each bad input must be exit 2 with one `sqzc: error:` line
# naming the file or option (never "internal error"), checked before any slow work.


def assert_usage_error(r: subprocess.CompletedProcess[str], *names: str,
                       prefix: str = "sqzc: error: ") -> str:
    """Exit 2, one error line starting with ``prefix``, no traceback; every name in it."""
    assert r.returncode == 2, f"exit {r.returncode}\nstdout:\n{r.stdout}\nstderr:\n{r.stderr}"
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    lines = r.stderr.strip().splitlines()
    errors = [ln for ln in lines if ln.startswith(prefix)]
    assert len(errors) == 1 and errors[0] == lines[-1], r.stderr
    for name in names:
        assert name in errors[0], f"{name!r} missing from: {errors[0]}"
    assert "None" not in errors[0], errors[0]  # no Python-isms in user messages
    return errors[0]


def two_output_model() -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in "yz"]
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="relu"),
                               helper.make_node("Add", ["x", "x"], ["z"], name="add")],
                              "two_out", [x], outs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


def two_input_model() -> onnx.ModelProto:
    ins = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 3, 4, 4]) for n in "ab"]
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"], name="add")],
                              "two_in", ins, [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)


@pytest.fixture(scope="module")
def tiny_dynamic(work: Path) -> Path:
    """TINY with a symbolic batch ``N``."""
    m = tiny_model()
    for vi in (*m.graph.input, *m.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_param = "N"
    p = work / "tiny_dyn.onnx"
    onnx.save(m, p)
    return p


@pytest.fixture(scope="module")
def tiny_lib(tiny: Path, work: Path) -> Path:
    lib = work / "tiny.so"
    sqzc_cli("compile", tiny, "-o", lib)
    return lib


@pytest.fixture(scope="module")
def two_out_lib(work: Path) -> Path:
    model, lib = work / "two_out.onnx", work / "two_out.so"
    onnx.save(two_output_model(), model)
    sqzc_cli("compile", model, "-o", lib)
    return lib


@pytest.fixture(scope="module")
def tiny_x(work: Path) -> Path:
    p = work / "tiny_x.npy"
    np.save(p, np.random.default_rng(3).standard_normal((1, 3, 8, 8)).astype(np.float32))
    return p


@pytest.mark.parametrize("command", ["verify", "bench"])
def test_batch_of_a_static_model_is_refused(command: str, tiny: Path) -> None:
    """A static batch-1 model used to run batch 1 silently (bench printed "batch 4")."""
    r = sqzc_cli(command, tiny, "--batch", "4", expect=None)
    msg = assert_usage_error(r, "tiny.onnx", "fixed at 1", "--batch 4", "--batch dynamic")
    assert r.stdout == "", msg


def test_bench_batch_of_a_dynamic_model(tiny_dynamic: Path, tiny: Path) -> None:
    r = sqzc_cli("bench", tiny_dynamic, "--batch", "2", "--rounds", "1", "--warmup", "0")
    assert "batch 2," in r.stdout.splitlines()[0], r.stdout
    r = sqzc_cli("bench", tiny, "--rounds", "1", "--warmup", "0")  # static: its own batch
    assert "batch 1," in r.stdout.splitlines()[0], r.stdout


def test_bench_reports_decode_time_and_times_the_raw_build(tiny: Path) -> None:
    """Issue 21: decode time in ``sqzc bench``; ``--compare-raw`` times a raw-weights
    build interleaved with the compressed one. A raw library has nothing to compare."""
    r = sqzc_cli("bench", tiny, "--weights", "compressed", "--compare-raw", "--rounds", "2",
                 "--warmup", "0")
    assert re.search(r"^weights compressed, [\d,]+ bytes stored; decoded at load in "
                     r"[\d.]+ ms", r.stdout, re.M), r.stdout
    assert re.search(r"^sqzc raw weights +[\d.]+", r.stdout, re.M), r.stdout
    assert "ratio sqzc/sqzc raw weights (median): " in r.stdout
    r = sqzc_cli("bench", tiny, "--weights", "raw", "--compare-raw", "--rounds", "2",
                 "--warmup", "0")
    assert re.search(r"^weights raw, [\d,]+ bytes stored$", r.stdout, re.M), r.stdout
    assert "raw weights" not in r.stdout


def test_verify_batch_of_a_dynamic_model(tiny_dynamic: Path) -> None:
    r = sqzc_cli("verify", tiny_dynamic, "--batch", "2")
    assert re.search(r"^output y: float32\[2, 8, 1, 1\]", r.stdout, re.M), r.stdout


def bad_array_files(work: Path) -> dict[str, Path]:
    files = {"missing": work / "nosuch.npy", "empty": Path("/dev/null"),
             "not-numpy": work / "garbage.onnx", "objects": work / "objects.npy",
             "folder": work}
    files["not-numpy"].write_bytes(b"\x08\x07\x12\x04onnx-ish bytes")
    np.save(files["objects"], np.array([{"a": 1}], dtype=object), allow_pickle=True)
    return files


@pytest.mark.parametrize("kind", ["missing", "empty", "not-numpy", "objects", "folder"])
def test_unreadable_input_files(kind: str, tiny: Path, tiny_lib: Path, work: Path) -> None:
    """run and verify read .npy/.npz inputs through one checked helper (these gave
    FileNotFoundError, EOFError or numpy's allow_pickle ValueError as internal errors)."""
    path = bad_array_files(work)[kind]
    for args in (("run", tiny_lib, "--input", path), ("verify", tiny, "--input", path),
                 ("run", tiny_lib, "--input", f"x={path}")):
        r = sqzc_cli(*args, expect=None)
        assert_usage_error(r, "--input", str(path))
        assert r.stdout == ""


@pytest.mark.parametrize("args, names", [
    (("--low", "5", "--high", "1"), ("--low", "--high")),
    (("--rtol", "-1"), ("--rtol",)),
    (("--atol", "-0.5"), ("--atol",)),
    (("--rtol", "nan"), ("--rtol",)),
    (("--seed", "-1"), ("--seed",)),
    (("--batch", "0"), ("--batch",)),
])
def test_verify_bad_numbers(args: tuple[str, ...], names: tuple[str, ...], tiny_dynamic: Path
                            ) -> None:
    assert_usage_error(sqzc_cli("verify", tiny_dynamic, *args, expect=None), *names)


@pytest.mark.parametrize("args, names", [
    (("--rounds", "0"), ("--rounds",)), (("--rounds", "-3"), ("--rounds",)),
    (("--warmup", "-1"), ("--warmup",)), (("--threads", "0"), ("--threads",)),
    (("--batch", "0"), ("--batch",)),
])
def test_bench_bad_counts(args: tuple[str, ...], names: tuple[str, ...], tiny_dynamic: Path
                          ) -> None:
    assert_usage_error(sqzc_cli("bench", tiny_dynamic, *args, expect=None), *names)


def test_demo_unreadable_image(work: Path) -> None:
    text = work / "some.txt"
    text.write_text("not an image\n")
    for image in (work / "nosuch.png", text):
        r = sqzc_cli("demo", "--image", image, "--keep", work / "demo_kept.so", expect=None)
        assert_usage_error(r, "--image", str(image))
        assert r.stdout == "" and not (work / "demo_kept.so").exists()


def test_dump_dir_is_a_file(tiny: Path, work: Path) -> None:
    afile = work / "afile"
    afile.write_text("keep me")
    assert_usage_error(sqzc_cli("dump", tiny, "--dump-dir", afile, expect=None),
                       "--dump-dir", str(afile))
    assert afile.read_text() == "keep me"


def test_run_several_outputs_need_npz(two_out_lib: Path, work: Path) -> None:
    x = work / "x4.npy"
    np.save(x, np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4))
    out = work / "two.npy"
    r = sqzc_cli("run", two_out_lib, "--input", x, "-o", out, expect=None)
    assert_usage_error(r, str(out), "2 outputs", ".npz")
    assert r.stdout == "" and not out.exists()
    npz = work / "two.npz"
    sqzc_cli("run", two_out_lib, "--input", x, "-o", npz)
    with np.load(npz) as d:
        assert sorted(d.files) == ["y", "z"]
        np.testing.assert_array_equal(d["z"], 2 * np.load(x))


def test_run_npz_input_and_npz_output(tiny_lib: Path, tiny_x: Path, work: Path) -> None:
    want = work / "want.npy"
    sqzc_cli("run", tiny_lib, "--input", tiny_x, "-o", want)
    xz = work / "x_in.npz"
    np.savez(xz, x=np.load(tiny_x))
    got = work / "got.npz"
    sqzc_cli("run", tiny_lib, "--input", xz, "-o", got)  # a single output can go to .npz too
    with np.load(got) as d:
        np.testing.assert_array_equal(d["y"], np.load(want))
    # NAME=FILE is for .npy files; a .npz names its arrays itself
    assert_usage_error(sqzc_cli("run", tiny_lib, "--input", f"x={xz}", expect=None),
                       "NAME=FILE", ".npy")
    assert_usage_error(sqzc_cli("run", tiny_lib, "--input", f"nope={tiny_x}", expect=None),
                       "'nope'", "x")


def test_run_checks_output_folder_before_running(tiny_lib: Path, tiny_x: Path,
                                                 work: Path) -> None:
    r = sqzc_cli("run", tiny_lib, "--input", tiny_x, "-o", work / "nodir" / "y.npy",
                 expect=None)
    assert_usage_error(r, "nodir")
    assert r.stdout == ""  # the model did not run


def test_messages_do_not_mention_none(tiny_lib: Path, tiny_x: Path, work: Path) -> None:
    msg = assert_usage_error(sqzc_cli("run", tiny_lib, "--input", tiny_x, "--threads", "0",
                                      expect=None), "threads", ">= 1")
    assert "omitted" in msg
    msg = assert_usage_error(sqzc_cli("zoo", "squeezenet1.1", "-o", work / "b.onnx", "--batch",
                                      "0", expect=None), "batch", "'dynamic'")
    assert not (work / "b.onnx").exists()


def test_tiny_stats_times_and_sizes(tiny: Path, work: Path) -> None:
    lib = work / "tiny_stats.so"
    stats = sqzc_cli("compile", tiny, "-o", lib, "--stats").stdout
    t = re.search(r"^time:\s+(.*)$", stats, re.M)
    assert t, stats
    assert_times_add_up(t.group(1))
    meta = json.loads(sqzc_cli("info", lib, "--json").stdout)
    a = re.search(r"^arena:\s+(\d+) bytes", stats, re.M)
    ws = re.search(r"^workspace:\s+(\d+) bytes", stats, re.M)
    assert a and int(a.group(1)) == meta["arena_bytes"], stats
    assert ws and int(ws.group(1)) == meta["workspace_bytes"], stats


def test_profile_table_keeps_full_names_and_aligns() -> None:
    from sqzc.tools.bench import BenchResult, format_report

    stem = "fire9/expand3x3+fire9/relu_expand3x3+fire9/concat_"
    layers = [{"origin": stem + "a", "op": "conv", "macs": 1000, "seconds": 3e-6},
              {"origin": stem + "b", "op": "conv", "macs": 1000, "seconds": 2e-6},
              {"origin": "pool10", "op": "qglobal_avgpool", "macs": 0, "seconds": 1e-6}]
    b = BenchResult("m.onnx", 1, 1, [1e-3], [1e-3], 0.1, 1000)
    text = format_report(b, layers)
    rows = text.split("\n\n", 1)[1].splitlines()
    for x in layers:  # full names: rows that differ only after 44 characters stay apart
        assert sum(str(x["origin"]) in row for row in rows) == 1, text
    # the numeric columns line up whatever the op name's length
    ends = {row.index("%") for row in rows[1:]}
    assert len(ends) == 1, text
    us = [re.search(r"\d+\.\d (?= )", row) for row in rows[1:]]
    assert all(us) and len({m.end() for m in us if m}) == 1, text


def test_demo_resizes_to_the_model_input(tiny: Path, work: Path) -> None:
    """TINY takes 8x8 images: the bundled 224x224 photo is resized, not rejected."""
    pytest.importorskip("PIL")
    r = sqzc_cli("demo", "--model", tiny, cwd=work)
    assert "top-5" in r.stdout and len(TOP_ROW.findall(r.stdout)) == 5, r.stdout


TOP_ROW = re.compile(r"^\s+[0-9.]+\s+\d+\s+\S", re.M)


def test_demo_needs_one_image_input(work: Path) -> None:
    model = work / "two_in.onnx"
    onnx.save(two_input_model(), model)
    r = sqzc_cli("demo", "--model", model, expect=None)
    msg = assert_usage_error(r, str(model), "one image input")
    assert "positional" not in msg


@pytest.mark.parametrize("args, command", [
    (("compile",), "compile"), (("bench", "m.onnx", "--rounds", "many"), "bench"),
    (("verify",), "verify"), (("run", "lib.so"), "run"),
])
def test_argparse_errors_say_sqzc_error(args: tuple[str, ...], command: str) -> None:
    assert_usage_error(sqzc_cli(*args, expect=None), prefix=f"sqzc: error: {command}: ")


def test_target_cpu_help_lists_what_is_accepted() -> None:
    from sqzc.backends.llvm.target import aarch64, x86_64
    from sqzc.tools.cli import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in ("compile", "dump", "bench", "verify"):
        (opt,) = [a for a in sub.choices[command]._actions if "--target-cpu" in a.option_strings]
        x86, arm = opt.help.split("one of", 1)[1].split("(x86-64)")
        assert set(re.findall(r"[a-z][a-z0-9-]+", x86)) == set(x86_64.KNOWN_CPUS), opt.help
        arm_listed = set(re.findall(r"[a-z][a-z0-9-]+", arm.split("(with")[0]))
        assert arm_listed == set(aarch64.KNOWN_CPUS), (command, opt.help)
        assert "host" in opt.help and "generic" in opt.help and "LLVM" not in opt.help


def test_target_cpu_outside_the_list_is_a_usage_error(tiny: Path, work: Path) -> None:
    out = work / "skylake.h"
    r = sqzc_cli("compile", tiny, "-o", out, "--emit", "header", "--target-cpu", "skylake",
                 expect=None)
    assert_usage_error(r, "skylake", "skylake-avx512")
    assert not out.exists()


def test_classify_example_missing_image(tiny_lib: Path, work: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "examples" / "classify.py"
    r = subprocess.run([sys.executable, str(script), str(tiny_lib), str(work / "nosuch.jpg")],
                       capture_output=True, text=True, timeout=120)
    assert_usage_error(r, "nosuch.jpg", prefix="classify.py: error: ")


def test_sigterm_during_compile_leaves_nothing(tmp_path: Path) -> None:
    """SIGTERM while the build folder exists: exit 143, the folder removed, no output."""
    import os
    import signal
    import time

    model = tmp_path / "sq10.onnx"
    model.write_bytes(sqzc.tools.zoo.build("squeezenet1.0").SerializeToString())
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    out = tmp_path / "lib.so"
    proc = subprocess.Popen([*sqzc_command(), "compile", str(model), "-o", str(out)],
                            env={**os.environ, "TMPDIR": str(scratch)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(scratch.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    if proc.poll() is not None:
        pytest.skip("the compile finished before it could be interrupted")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "terminated" in err
    assert not any(scratch.iterdir()), list(scratch.iterdir())
    assert not out.exists()
