"""examples/c: the C program builds with ``cc`` against a library compiled from the bundled
model and classifies the bundled photo (top-1 281 "tabby"); float32 models work too."""

from __future__ import annotations

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
from sqzc.tools.cli import DEMO_IMAGE, LABELS
from sqzc.driver import CompileOptions

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "c"
CC = shutil.which("cc")
pytestmark = pytest.mark.skipif(CC is None, reason="no C compiler ('cc') on PATH")
TOP_LINE = re.compile(r"^\s+(\d+\.\d+)\s+(\d+)\s+(.*)$", re.M)


def build(workdir: Path) -> Path:
    """cc classify.c against workdir/{model.h,libsqz.so}; returns the program."""
    exe = workdir / "classify"
    proc = subprocess.run(
        [CC, "-O2", "-std=c11", "-Wall", "-Wextra", f"-I{workdir}", str(EXAMPLE / "classify.c"),
         "-o", str(exe), f"-L{workdir}", "-lsqz", "-Wl,-rpath,$ORIGIN"],
        capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    return exe


def top5(stdout: str) -> list[tuple[float, int, str]]:
    rows = [(float(p), int(i), name) for p, i, name in TOP_LINE.findall(stdout)]
    assert len(rows) == 5, stdout
    return rows


@pytest.fixture(scope="module")
def fp16_program(bundled_build: Path, tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("c_fp16")
    shutil.copy(bundled_build / "libsqz.so", work)
    shutil.copy(bundled_build / "model.h", work)
    return build(work)


def test_classifies_the_bundled_kitten(fp16_program: Path, tmp_path: Path):
    ppm = tmp_path / "kitten.ppm"
    subprocess.run([sys.executable, str(EXAMPLE / "decode_image.py"), str(DEMO_IMAGE),
                    "-o", str(ppm)], check=True, timeout=60)
    proc = subprocess.run([str(fp16_program), str(ppm), str(LABELS)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    rows = top5(proc.stdout)
    assert rows[0][1] == 281 and rows[0][2].startswith("tabby"), proc.stdout
    assert [p for p, _, _ in rows] == sorted((p for p, _, _ in rows), reverse=True)

    # the same result through the raw float32 path, with 2 threads
    raw = tmp_path / "kitten.f32"
    subprocess.run([sys.executable, str(EXAMPLE / "decode_image.py"), str(DEMO_IMAGE),
                    "-o", str(raw), "--raw"], check=True, timeout=60)
    proc2 = subprocess.run([str(fp16_program), "-t", "2", str(raw), str(LABELS)],
                           capture_output=True, text=True, timeout=60)
    assert proc2.returncode == 0, proc2.stderr
    assert top5(proc2.stdout) == rows


def test_matches_the_python_runtime(fp16_program: Path, bundled_build: Path, tmp_path: Path):
    from sqzc.tools.imageio import load_rgb, squeezenet_input

    x = squeezenet_input(load_rgb(DEMO_IMAGE), "float32")
    raw = tmp_path / "x.f32"
    x.astype("<f4").tofile(raw)
    proc = subprocess.run([str(fp16_program), str(raw), str(LABELS)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    probs = np.asarray(sqzc.load(bundled_build / "libsqz.so")(x.astype(np.float16)),
                       dtype=np.float32).reshape(-1)
    rows = top5(proc.stdout)
    assert [i for _, i, _ in rows] == list(np.argsort(-probs, kind="stable")[:5])
    assert [p for p, _, _ in rows] == pytest.approx([probs[i] for _, i, _ in rows], abs=6e-4)


def test_rejects_an_image_of_the_wrong_size(fp16_program: Path, tmp_path: Path):
    ppm = tmp_path / "small.ppm"
    ppm.write_bytes(b"P6\n4 4\n255\n" + bytes(48))
    proc = subprocess.run([str(fp16_program), str(ppm), str(LABELS)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "the model wants 224x224" in proc.stderr


def tiny_float32_model() -> onnx.ModelProto:
    """A float32 classifier with one [1,3,8,8] input and 10 classes (compiles in ~1 s)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.standard_normal((10, 3, 3, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(10).astype(np.float32), "b")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Softmax", ["g"], ["y"], axis=1)]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10, 1, 1])], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 7
    return model


def test_float32_model(tmp_path: Path):
    src = tmp_path / "tiny.onnx"
    onnx.save(tiny_float32_model(), src)
    sqzc.compile(src, tmp_path / "libsqz.so")
    sqzc.compile(src, tmp_path / "model.h", CompileOptions(emit="header"))
    exe = build(tmp_path)  # a float32 header compiles as generated
    x = np.random.default_rng(1).uniform(0, 255, (1, 3, 8, 8)).astype(np.float32)
    x.astype("<f4").tofile(tmp_path / "x.f32")
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"n{i:08d} class {i}\n" for i in range(10)))
    proc = subprocess.run([str(exe), str(tmp_path / "x.f32"), str(labels)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    probs = sqzc.load(tmp_path / "libsqz.so")(x).reshape(-1)
    rows = top5(proc.stdout)
    assert [i for _, i, _ in rows] == list(np.argsort(-probs, kind="stable")[:5])
    assert rows[0][2] == f"class {rows[0][1]}"


@pytest.mark.skipif(shutil.which("make") is None, reason="no 'make' on PATH")
def test_makefile_run(bundled_build: Path, tmp_path: Path):
    """``make run`` with the library and header already built (copied newer than the
    model, so make does not recompile them)."""
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    for name in ("libsqz.so", "model.h"):
        shutil.copy(bundled_build / name, build_dir)
    proc = subprocess.run(["make", "-C", str(EXAMPLE), "run", f"BUILD={build_dir}",
                           f"PYTHON={sys.executable}", f"CC={CC}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sqzc compile" not in proc.stdout  # reused the prebuilt library
    assert top5(proc.stdout)[0][1] == 281


def test_generated_fp16_header_compiles_as_is(bundled_build: Path, tmp_path: Path):
    src = tmp_path / "t.c"
    src.write_text('#include "model.h"\nint main(void) { return sqz_workspace_size() > 0; }\n')
    shutil.copy(bundled_build / "model.h", tmp_path)
    proc = subprocess.run([CC, "-c", f"-I{tmp_path}", str(src), "-o", str(tmp_path / "t.o")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_header_macros_stay_distinct_when_names_collide(tmp_path: Path) -> None:
    """Tensor names 'a.b' and 'a_b' spell the same C identifier: the header gives the
    second its index instead of redefining the first's macros (cc only warns about that)."""
    from sqzc.backends.llvm.header import render_header

    spec = {"dtype": "float32", "shape": [1, 3]}
    meta = {"compiler": "sqzc", "model_name": "m", "model_sha256": "0", "abi_version": 2,
            "dynamic_batch": False, "workspace_bytes": 64,
            "inputs": [dict(spec, name="a.b"), dict(spec, name="a_b")],
            "outputs": [dict(spec, name="y")]}
    text = render_header(meta)
    defines = re.findall(r"^#define (\S+)", text, re.M)
    assert len(defines) == len(set(defines)), text
    assert "SQZ_INPUT_A_B_INDEX 0" in text and "SQZ_INPUT_A_B_1_INDEX 1" in text
    (tmp_path / "model.h").write_text(text)
    src = tmp_path / "t.c"
    src.write_text('#include "model.h"\nint main(void) { return SQZ_INPUT_A_B_1_INDEX; }\n')
    proc = subprocess.run([CC, "-c", "-Werror", f"-I{tmp_path}", str(src), "-o",
                           str(tmp_path / "t.o")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.exhaustive
def test_the_example_cross_built_for_arm64_runs_under_qemu(tmp_path: Path) -> None:
    """``make run ARCH=aarch64``: the library and the program cross-built for Arm64
    (Cortex-A76, zig's cc), run under qemu-user: the same top-1 (issue 24)."""
    import importlib.util

    if importlib.util.find_spec("ziglang") is None or shutil.which("qemu-aarch64") is None \
            or not Path("/usr/aarch64-linux-gnu/lib").is_dir() or shutil.which("make") is None:
        pytest.skip("needs make, the ziglang wheel, qemu-user and libc6-arm64-cross")
    from sqz_testing import sqzc_command

    sqzc_cmd = " ".join(sqzc_command())
    proc = subprocess.run(["make", "-s", "-C", str(EXAMPLE), "run", "ARCH=aarch64",
                           f"BUILD={tmp_path}", f"SQZC={sqzc_cmd}", f"PYTHON={sys.executable}"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    rows = top5(proc.stdout)
    assert rows[0][1] == 281 and rows[0][2].startswith("tabby"), proc.stdout
    head = (tmp_path / "classify").read_bytes()[:20]
    assert head[18] == 183, "not an Arm64 program"  # e_machine EM_AARCH64
