"""Reproducible builds and atomic outputs (issue 6, hardening).

* Compiling the same model twice gives byte-identical files, whatever the output
  directory, the output file name and the temporary directory (TMPDIR) are, for every
  ``--emit`` kind.
* A failing compile never leaves a partial output: an existing output file keeps its
  bytes, no temporary file is left in the output directory, and the compiler's own
  temporary folder is removed (also when linking fails).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from hardening_support import mini_squeezenet, save, small_conv

import sqzc
from sqzc.errors import SqzcError


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save(mini_squeezenet(batch=None), tmp_path_factory.mktemp("src"), "mini")


def _compile_in(model: Path, out: Path, tmpdir: Path, monkeypatch: pytest.MonkeyPatch,
                **opts: object) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmpdir.mkdir(parents=True, exist_ok=True)
    monkeypatch.setattr(tempfile, "tempdir", str(tmpdir))
    sqzc.compile(model, out, sqzc.CompileOptions(**opts))  # type: ignore[arg-type]
    monkeypatch.setattr(tempfile, "tempdir", None)


@pytest.mark.parametrize(("emit", "opt_level"), [
    ("so", 3), ("so", 0), ("obj", 3), ("asm", 0), ("header", 3),
    ("llvm", 3),
])
def test_same_model_gives_identical_bytes(model_file: Path, tmp_path: Path, emit: str,
                                          opt_level: int,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    a = tmp_path / "a" / f"libsqz.{emit}"
    b = tmp_path / "deeper" / "dir with space" / f"other_name.{emit}"
    _compile_in(model_file, a, tmp_path / "tmp1", monkeypatch, opt_level=opt_level, emit=emit)
    _compile_in(model_file, b, tmp_path / "tmp-two" / "x", monkeypatch, opt_level=opt_level,
                emit=emit)
    assert a.stat().st_size > 0
    assert a.read_bytes() == b.read_bytes(), f"--emit {emit} -O{opt_level} is not reproducible"
    text = a.read_bytes()
    for leaked in (str(tmp_path).encode(), b"tmp-two", b"sqzc-"):
        assert leaked not in text, f"the output embeds a build path ({leaked!r})"


_BUILD_LL = """
import sys
import llvmlite.binding as llvm
from sqzc.backends.llvm.target import init_llvm, resolve_target
init_llvm()
mod = llvm.parse_assembly(open(sys.argv[1]).read())
obj = resolve_target("host").machine(0).emit_object(mod)
print("OBJECT", len(obj))
"""


def test_emitted_llvm_ir_is_self_contained(model_file: Path, tmp_path: Path) -> None:
    ll = tmp_path / "model.ll"
    sqzc.compile(model_file, ll, sqzc.CompileOptions(emit="llvm"))
    proc = subprocess.run([sys.executable, "-c", _BUILD_LL, str(ll)], capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0 and "OBJECT" in proc.stdout, proc.stderr[-600:]


def test_model_copy_in_other_folder_gives_identical_library(model_file: Path, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """The model's own path does not leak into the library either (only its sha256)."""
    copy = tmp_path / "elsewhere" / "renamed.onnx"
    copy.parent.mkdir()
    copy.write_bytes(model_file.read_bytes())
    a, b = tmp_path / "a.so", tmp_path / "b.so"
    _compile_in(model_file, a, tmp_path / "t1", monkeypatch)
    _compile_in(copy, b, tmp_path / "t2", monkeypatch)
    assert a.read_bytes() == b.read_bytes()


def test_in_a_fresh_process_too(model_file: Path, tmp_path: Path) -> None:
    """Hash seeds, dict order and lazily initialised state differ between processes."""
    outs = []
    for i, seed in enumerate(("0", "12345")):
        out = tmp_path / f"p{i}" / "lib.so"
        out.parent.mkdir()
        env = dict(os.environ, PYTHONHASHSEED=seed, TMPDIR=str(out.parent))
        proc = subprocess.run([sys.executable, "-m", "sqzc", "compile", str(model_file),
                               "-o", str(out)], capture_output=True, text=True, env=env,
                              timeout=300, check=False)
        if proc.returncode != 0 and "No module named sqzc" in proc.stderr:
            pytest.skip("sqzc is not runnable with -m")
        assert proc.returncode == 0, proc.stderr
        outs.append(out)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    in_proc = tmp_path / "inproc.so"
    sqzc.compile(model_file, in_proc)
    assert in_proc.read_bytes() == outs[0].read_bytes()


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


@pytest.mark.parametrize("emit", ["so", "header", "llvm"])
def test_failing_compile_keeps_old_output(tmp_path: Path, emit: str,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / f"model.{emit}"
    good = save(small_conv(), tmp_path, "good")
    tmp = tmp_path / "tmp"
    _compile_in(good, out, tmp, monkeypatch, emit=emit, opt_level=0)
    before = out.read_bytes()
    bad_models = {
        "garbage": b"\x08\x07garbage",
        "truncated": good.read_bytes()[:200],
        "unsupported": save(_unsupported(), tmp_path, "unsup").read_bytes(),
    }
    for kind, data in bad_models.items():
        bad = tmp_path / f"bad-{kind}.onnx"
        bad.write_bytes(data)
        with pytest.raises(SqzcError):
            _compile_in(bad, out, tmp, monkeypatch, emit=emit, opt_level=0)
        monkeypatch.setattr(tempfile, "tempdir", None)
        assert out.read_bytes() == before, f"{kind}: the old output changed"
        assert _listing(out_dir) == [out.name], f"{kind}: left {_listing(out_dir)}"
    assert _listing(tmp) == [], f"temporary files left behind: {_listing(tmp)}"


def _unsupported():  # noqa: ANN202
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Sin", ["x"], ["y"], name="sin_1")], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    m.ir_version = 8
    return m


def test_link_failure_keeps_old_output_and_cleans_up(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """The linker fails after all the work: still no partial file, no temp dir left."""
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "model.so"
    out.write_bytes(b"previous library")
    fake_cc = tmp_path / "failing-cc"
    fake_cc.write_text("#!/bin/sh\n# write a partial output, then fail\n"
                       "for a; do case $prev in -o) printf partial > \"$a\";; esac; prev=$a; "
                       "done\necho 'ld: simulated failure' >&2\nexit 1\n")
    fake_cc.chmod(0o755)
    monkeypatch.setenv("CC", str(fake_cc))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.raises(SqzcError, match="simulated failure"):
        _compile_in(save(small_conv(), tmp_path, "m"), out, tmp, monkeypatch, opt_level=0)
    monkeypatch.setattr(tempfile, "tempdir", None)
    assert out.read_bytes() == b"previous library"
    assert _listing(out_dir) == ["model.so"]
    assert _listing(tmp) == [], f"temporary files left behind: {_listing(tmp)}"


def test_cli_failure_exit_code_and_old_output(tmp_path: Path) -> None:
    out = tmp_path / "lib.so"
    out.write_bytes(b"old")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.run([sys.executable, "-m", "sqzc", "compile", str(bad), "-o",
                           str(out)], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("sqzc: error:") and "Traceback" not in proc.stderr
    assert out.read_bytes() == b"old"
    assert _listing(tmp_path) == ["bad.onnx", "lib.so"]
