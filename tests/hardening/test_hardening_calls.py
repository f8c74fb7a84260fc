"""Call-time safety of real compiled libraries through ``sqzc.load`` (issue 6, hardening).

Every bad call must be refused with a clear ``sqzc.SqzcError`` before native code runs, or
converted safely in the documented way (non-contiguous, Fortran-ordered and misaligned
inputs are copied; read-only inputs are fine because the library only reads them). Bad
library files must give ``LibraryError``; those that might crash the process (dlopen of a
damaged ELF file) are loaded in a child process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hardening_support import save, small_conv
from sqz_testing import compile_and_load, ort_run

import sqzc
from sqzc.errors import CallError, LibraryError, UsageError


@pytest.fixture(scope="module")
def static_model() -> sqzc.CompiledModel:
    return compile_and_load(small_conv(batch=1))


@pytest.fixture(scope="module")
def dyn_model() -> sqzc.CompiledModel:
    return compile_and_load(small_conv(batch=None))


def _x(shape: tuple[int, ...] = (1, 3, 9, 9), seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_reference_result_matches_onnxruntime(static_model: sqzc.CompiledModel) -> None:
    x = _x()
    want = ort_run(small_conv(batch=1), {"x": x})[0]
    got = static_model(x)
    assert got.shape == want.shape and got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 3, 9, 8), (1, 3, 8, 9), (1, 4, 9, 9), (2, 3, 9, 9),
                                   (3, 9, 9), (1, 1, 3, 9, 9), (1, 3, 81), (0, 3, 9, 9), ()])
def test_wrong_shape_static(static_model: sqzc.CompiledModel, shape: tuple[int, ...]) -> None:
    with pytest.raises(CallError, match=r"input 'x': expected shape \[1,3,9,9\]"):
        static_model(np.zeros(shape, np.float32))


@pytest.mark.parametrize("shape", [(2, 3, 9, 8), (2, 4, 9, 9), (3, 9, 9), (1, 3, 9, 9, 1)])
def test_wrong_shape_dynamic(dyn_model: sqzc.CompiledModel, shape: tuple[int, ...]) -> None:
    with pytest.raises(CallError, match=r"expected shape \[N,3,9,9\]"):
        dyn_model(np.zeros(shape, np.float32))


def test_batch_zero_dynamic(dyn_model: sqzc.CompiledModel) -> None:
    with pytest.raises(CallError, match="batch size"):
        dyn_model(np.zeros((0, 3, 9, 9), np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32, np.int64, np.uint8,
                                   np.complex64, np.bool_, ">f4"])
def test_wrong_dtype(static_model: sqzc.CompiledModel, dtype: object) -> None:
    """No implicit casts, not even float64 -> float32 or big-endian float32 -> native."""
    with pytest.raises(CallError, match="expected dtype float32"):
        static_model(np.zeros((1, 3, 9, 9), dtype))


@pytest.mark.parametrize("value", [[[[[0.0] * 9] * 9] * 3], "abc", None, 1.0, object()])
def test_non_array_inputs(static_model: sqzc.CompiledModel, value: object) -> None:
    with pytest.raises(CallError):
        static_model(value)


def test_wrong_and_missing_names(static_model: sqzc.CompiledModel) -> None:
    x = _x()
    with pytest.raises(CallError, match="unknown input name.*'data_0'.*expected inputs: 'x'"):
        static_model.run({"data_0": x})
    with pytest.raises(CallError, match="unknown input name"):
        static_model.run({"x": x, "y": x})
    with pytest.raises(CallError, match="missing input.*'x'"):
        static_model.run({})
    with pytest.raises(CallError, match="unknown input name"):
        static_model(X=x)
    with pytest.raises(CallError, match="2 positional input"):
        static_model(x, x)
    with pytest.raises(CallError, match="mapping"):
        static_model.run([x])  # type: ignore[arg-type]


def _layouts(x: np.ndarray) -> dict[str, np.ndarray]:
    """``x`` in layouts the runtime must copy (or may read as is), all equal in value."""
    big = np.zeros((2, 6, 18, 20), np.float32)
    big[0, ::2, ::2, 1:19:2] = x[0]
    strided = big[:1, ::2, ::2, 1:19:2]
    raw = np.zeros(x.nbytes + 1, np.uint8)
    misaligned = np.frombuffer(raw.data, np.uint8, x.nbytes, 1).view(np.float32).reshape(x.shape)
    misaligned[...] = x
    readonly = x.copy()
    readonly.flags.writeable = False
    neg = np.ascontiguousarray(x[..., ::-1])[..., ::-1]
    broadcast = np.broadcast_to(x[:, :1], x.shape)  # zero strides, read-only
    return {
        "fortran": np.asfortranarray(x), "strided": strided, "misaligned": misaligned,
        "readonly": readonly, "negative_strides": neg,
        "transposed_view": np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2),
        "broadcast": broadcast,
    }


@pytest.mark.parametrize("layout", ["fortran", "strided", "misaligned", "readonly",
                                    "negative_strides", "transposed_view", "broadcast"])
def test_layouts_are_converted_safely(static_model: sqzc.CompiledModel, layout: str) -> None:
    x = _x(seed=3)
    arr = _layouts(x)[layout]
    if layout == "misaligned":
        assert not arr.flags.aligned or arr.ctypes.data % 4
    if layout != "readonly":
        assert not arr.flags.c_contiguous or layout == "misaligned"
    before = arr.copy()
    expect = static_model(np.ascontiguousarray(arr))
    got = static_model(arr)
    assert np.array_equal(got, expect), layout
    assert np.array_equal(arr, before), f"{layout}: the call modified its input"


def test_outputs_are_fresh_arrays(static_model: sqzc.CompiledModel) -> None:
    x = _x()
    a = static_model(x)
    a_copy = a.copy()
    a[...] = 1e9
    b = static_model(x)
    assert b is not a and not np.shares_memory(a, b)
    assert np.array_equal(b, a_copy)
    assert b.flags.c_contiguous and b.flags.writeable and b.flags.owndata


def test_dynamic_batches_agree_with_batch_one(dyn_model: sqzc.CompiledModel) -> None:
    x = _x((5, 3, 9, 9), seed=4)
    full = dyn_model(x)
    assert full.shape == (5, 4, 4, 4)
    for i in range(5):
        assert np.array_equal(dyn_model(x[i:i + 1]), full[i:i + 1])


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, "2"])
def test_bad_threads_argument(static_model: sqzc.CompiledModel, threads: object) -> None:
    with pytest.raises(UsageError):
        sqzc.load(static_model.path, threads=threads)  # type: ignore[arg-type]


# ------------------------------------------------------------------ bad library files

_FAKE_C = """
#include <stdint.h>
static const char META[] = %s;
const char *sqz_metadata(void) { return META; }
uint64_t sqz_workspace_size(void) { return %dULL; }
int32_t sqz_run(const void *const *in, void *const *out, void *ws, int64_t batch,
                int32_t threads) {
    const float *x = (const float *)in[0]; float *y = (float *)out[0];
    for (int i = 0; i < 4; ++i) y[i] = 2.0f * x[i];
    return 0;
}
static char POOL;
void *sqz_pool_create(int32_t threads) { return &POOL; }
void sqz_pool_destroy(void *pool) { }
int32_t sqz_run_pool(void *pool, const void *const *in, void *const *out, void *ws,
                     int64_t batch) { return sqz_run(in, out, ws, batch, 1); }
"""


def _c_literal(text: str) -> str:
    return json.dumps(text)  # a JSON string literal is a valid C string literal here


def _fake_meta(abi: object = 2) -> str:
    return json.dumps({
        "abi_version": abi, "compiler": "fake", "model_name": "fake", "dynamic_batch": False,
        "inputs": [{"name": "x", "dtype": "float32", "shape": [4]}],
        "outputs": [{"name": "y", "dtype": "float32", "shape": [4]}], "workspace_bytes": 0,
    })


@pytest.fixture(scope="module")
def cc_build(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    cc = shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler 'cc' on PATH: cannot build fake libraries")
    out = tmp_path_factory.mktemp("fake")

    def build(name: str, meta: str, workspace: int = 0, source: str | None = None) -> Path:
        c = out / f"{name}.c"
        c.write_text(source if source is not None else _FAKE_C % (_c_literal(meta), workspace))
        so = out / f"lib{name}.so"
        proc = subprocess.run([cc, "-shared", "-fPIC", "-o", str(so), str(c)],
                              capture_output=True, text=True, check=False)
        assert proc.returncode == 0, proc.stderr
        return so

    return build


def test_fake_library_abi2_works(cc_build) -> None:
    """The fake library itself is fine: only the property under test makes it fail below."""
    m = sqzc.load(cc_build("abi2", _fake_meta(2)))
    assert np.array_equal(m(np.arange(4, dtype=np.float32)), 2 * np.arange(4, dtype=np.float32))


@pytest.mark.parametrize("abi", [1, 3, 0, "2", 2.0, None])
def test_abi_version_mismatch(cc_build, abi: object) -> None:
    so = cc_build(f"abi_{abi!s}".replace(".", "_"), _fake_meta(abi))
    with pytest.raises(LibraryError) as info:
        sqzc.load(so)
    if abi in (1, 3, 0):
        assert f"ABI version {abi}" in str(info.value) and "supports 2" in str(info.value)
    else:
        assert "abi_version" in str(info.value)


def test_metadata_not_json(cc_build) -> None:
    with pytest.raises(LibraryError, match="not valid JSON"):
        sqzc.load(cc_build("nojson", "{not json"))


def test_library_without_sqz_symbols(cc_build, tmp_path: Path) -> None:
    so = cc_build("nosyms", "", source="int f(void) { return 1; }\n")
    with pytest.raises(LibraryError, match="missing symbols sqz_metadata, sqz_workspace_size, "
                                           "sqz_run"):
        sqzc.load(so)


def test_system_library_is_not_a_sqzc_library() -> None:
    import ctypes.util

    name = ctypes.util.find_library("m")
    if name is None:
        pytest.skip("libm not found")
    with pytest.raises(LibraryError, match="no such file"):
        sqzc.load(name)  # a bare name is made absolute (cwd), never searched for
    for d in ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64"):
        p = Path(d) / name
        if p.exists():
            with pytest.raises(LibraryError, match="missing symbols"):
                sqzc.load(p)
            break


@pytest.mark.parametrize("content", [b"", b"hello", b"\x7fELF" + bytes(60),
                                     bytes(range(256)) * 40, b"#!/bin/sh\necho hi\n"])
def test_garbage_files(tmp_path: Path, content: bytes) -> None:
    p = tmp_path / "garbage.so"
    p.write_bytes(content)
    with pytest.raises(LibraryError, match="not a sqzc library"):
        sqzc.load(p)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(LibraryError, match="no such file"):
        sqzc.load(tmp_path / "nope.so")
    with pytest.raises(LibraryError):
        sqzc.load(tmp_path)


_LOAD_CHILD = """
import sys, sqzc
try:
    sqzc.load(sys.argv[1])
    print("LOADED")
except sqzc.SqzcError as e:
    print("SQZCERROR", type(e).__name__, e)
"""


def _load_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _LOAD_CHILD, str(path)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_truncated_header_gives_library_error(static_model: sqzc.CompiledModel,
                                              tmp_path: Path) -> None:
    data = Path(static_model.path).read_bytes()
    for n in (1, 16, 63, 200):
        p = tmp_path / f"trunc{n}.so"
        p.write_bytes(data[:n])
        proc = _load_in_child(p)
        assert proc.returncode == 0 and proc.stdout.startswith("SQZCERROR LibraryError"), \
            (n, proc.returncode, proc.stdout, proc.stderr[-500:])


def _load_segments(data: bytes) -> list[tuple[int, int]]:
    """(file offset, file size) of the ELF64 PT_LOAD segments of ``data``."""
    import struct

    assert data[:4] == b"\x7fELF" and data[4] == 2, "not an ELF64 file"
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    segs = []
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data,
                                                                phoff + i * phentsize)
        if p_type == 1 and p_filesz:
            segs.append((p_offset, p_filesz))
    return segs


def test_truncated_body_gives_library_error(static_model: sqzc.CompiledModel,
                                            tmp_path: Path) -> None:
    """Cut the file in the middle of each loadable segment (past the headers)."""
    data = Path(static_model.path).read_bytes()
    cuts = sorted({off + size // 2 for off, size in _load_segments(data) if off + size // 2 > 4096})
    if not cuts:
        raise RuntimeError("test precondition: no loadable segment beyond the first page")
    bad = []
    for n in cuts:
        p = tmp_path / f"trunc{n}.so"
        p.write_bytes(data[:n])
        proc = _load_in_child(p)
        if not (proc.returncode == 0 and proc.stdout.startswith("SQZCERROR LibraryError")):
            bad.append((n, proc.returncode, proc.stdout.strip()[:200]))
    assert not bad, f"truncated libraries did not give LibraryError: {bad}"


def test_reload_after_recompile_to_same_path(tmp_path: Path, monkeypatch) -> None:
    """The changed file loads through a private copy, which is gone once it is mapped."""
    scratch = tmp_path / "tmpdir"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    a = save(small_conv(seed=11), tmp_path, "a")
    b = save(small_conv(seed=12), tmp_path, "b")
    lib = tmp_path / "same.so"
    x = _x()
    sqzc.compile(a, lib, sqzc.CompileOptions(opt_level=0))
    ya = sqzc.load(lib)(x)
    sqzc.compile(b, lib, sqzc.CompileOptions(opt_level=0))
    mb = sqzc.load(lib)
    import hashlib

    assert mb.metadata["model_sha256"] == hashlib.sha256(b.read_bytes()).hexdigest()
    assert not np.array_equal(mb(x), ya)
    assert not list(scratch.glob("sqzc-lib-*")), list(scratch.iterdir())


def test_absurd_workspace_size_is_a_sqzc_error(cc_build) -> None:
    meta = json.loads(_fake_meta(2))
    meta["workspace_bytes"] = 1 << 60
    m = sqzc.load(cc_build("hugews", json.dumps(meta), workspace=1 << 60))
    if m.workspace_size != 1 << 60:
        raise RuntimeError(f"fake library reports {m.workspace_size}")
    with pytest.raises(sqzc.SqzcError):
        m(np.zeros(4, np.float32))


def test_errors_carry_sqzc_base_class() -> None:
    for cls in (CallError, LibraryError, UsageError):
        assert issubclass(cls, sqzc.SqzcError)


def test_env_does_not_matter_for_abspath(static_model: sqzc.CompiledModel, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path is resolved against the cwd, never searched on LD_LIBRARY_PATH."""
    link = tmp_path / "rel.so"
    os.symlink(static_model.path, link)
    monkeypatch.chdir(tmp_path)
    m = sqzc.load("rel.so")
    assert m.path == str(link)
    assert np.array_equal(m(_x()), static_model(_x()))
