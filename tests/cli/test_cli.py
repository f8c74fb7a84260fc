"""End-to-end tests of the ``sqzc`` console script (run as a subprocess, like a user would).

Most runs use ``TINY``, a hand-built Fire-module-like model (conv/relu x3, concat, identity,
maxpool, global average pool) that compiles in well under a second. The full SqueezeNet 1.1
from ``sqzc zoo`` is compiled exactly once (module fixture ``squeezenet``) and the bundled
fp16 SqueezeNet once more by ``sqzc demo``.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.passes import PIPELINE
from sqzc.zoo import DESCRIPTIONS
from sqz_testing import assert_close, ort_run

SQZC = shutil.which("sqzc")
pytestmark = pytest.mark.skipif(SQZC is None, reason="console script 'sqzc' is not installed")

PASS_NAMES = [p.name for p in PIPELINE]
HEADER_RE = re.compile(r"^// ----- IR (before|after) (\S+) -----$", re.M)


def sqzc_cli(*args: object, cwd: Path | None = None, expect: int | None = 0,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the console script; assert the exit code unless ``expect`` is None."""
    assert SQZC is not None
    proc = subprocess.run([SQZC, *(str(a) for a in args)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
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
    m = re.search(r"^workspace: (\d+) bytes \(liveness lower bound (\d+) bytes\)$", stats, re.M)
    assert m, stats
    workspace, lower = int(m.group(1)), int(m.group(2))
    assert workspace == lower > 0  # the README's promise for SqueezeNet
    w = re.search(r"^weights:\s+(\d+) bytes$", stats, re.M)
    assert w and int(w.group(1)) > 4_000_000  # 1.2M float32 parameters
    k = re.search(r"^kernels:\s+(\d+)$", stats, re.M)
    assert k and int(k.group(1)) > 0
    t = re.search(r"^time:\s+(.*)$", stats, re.M)
    assert t and "import" in t.group(1) and "total" in t.group(1)


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
    m = re.search(r"^workspace: (\d+) bytes", str(squeezenet["stats"]), re.M)
    assert m and int(m.group(1)) == arena  # --stats reports the same arena
    assert meta["opt_level"] == 3
    ws = re.search(r"^workspace:\s+(\d+) bytes", text, re.M)
    assert ws and int(ws.group(1)) == meta["workspace_bytes"]


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
