"""The one differential-testing helper and tolerance table used by every test.

``assert_matches_ort(model, inputs)`` compiles an ONNX model with sqzc, runs it and
onnxruntime on the same inputs, and checks shape, then dtype, then values.

Tolerances (per dtype):
* float32: max |sqzc - ort| <= RTOL_F32 * max|ort| + ATOL_F32 (reassociation of sums
  differs between kernels; 1e-4 relative to the tensor's largest magnitude is the bound
  the project promises, tests use it unless stated otherwise).
* float16 outputs: one float16 ulp at the output's magnitude (2**-10 relative).
* int8 / uint8: exact.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import pytest

import sqzc
from sqzc.driver import CompileOptions

RTOL_F32 = 1e-4
ATOL_F32 = 1e-6
TOL: dict[str, tuple[float, float]] = {
    "float32": (RTOL_F32, ATOL_F32),
    "float16": (2.0 ** -10, 1e-3),
    "int8": (0.0, 0.0),
    "uint8": (0.0, 0.0),
    "int32": (0.0, 0.0),
}
#: Compiled libraries are cached per test process only: a cache that outlived a compiler
#: change would test stale code.
_CACHE = Path(tempfile.mkdtemp(prefix="sqzc-test-"))
#: ``TRIPLE:CPU`` (e.g. ``aarch64-linux-gnu:cortex-a76``): ``compile_and_load`` then
#: cross-builds for that target and runs the library under qemu (``sqzc.tools.emulate``),
#: so the op tests that go through it check another architecture against onnxruntime on
#: this host (.ci/run's Arm64 op tier). Tests that pin their own ``target_cpu`` stay here.
TEST_TARGET = os.environ.get("SQZC_TEST_TARGET", "")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)


def ort_run(model: onnx.ModelProto | str | Path, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run onnxruntime (skips the test when it is not installed)."""
    ort = pytest.importorskip("onnxruntime")
    data = model.SerializeToString() if isinstance(model, onnx.ModelProto) else \
        Path(model).read_bytes()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    return sess.run(None, dict(feeds))


def ort_optimized_op_types(model: onnx.ModelProto, workdir: Path,
                           int8_allowed: bool = True) -> list[str]:
    """The op types of onnxruntime's optimized graph, i.e. which QDQ groups it fused: what
    sqzc's fold-qdq must reproduce. ``int8_allowed`` (``session.qdqisint8allowed=1``) is
    the reference for sqzc's default; without it, onnxruntime's default x86-64 session
    options, the reference for ``--no-fuse-int8-qdq``."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    if int8_allowed:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    so.optimized_model_filepath = str(workdir / "ort-optimized.onnx")
    so.log_severity_level = 3
    ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return [n.op_type for n in onnx.load(so.optimized_model_filepath).graph.node]


#: The two ways sqzc treats int8-activation QDQ groups, each checked against the
#: onnxruntime configuration it reproduces: fused as with ``session.qdqisint8allowed=1``
#: (sqzc's default) and ``--no-fuse-int8-qdq``, onnxruntime's default x86-64 choice.
QDQ_MODES = [pytest.param(True, id="int8-fused"), pytest.param(False, id="ort-x86-default")]


@functools.cache
def sqzc_command() -> list[str]:
    """The argv prefix that runs the ``sqzc`` installed for the interpreter running pytest.

    Not ``shutil.which("sqzc")``: that finds whatever is first on PATH (nothing when the
    venv's pytest runs without the venv activated, so every CLI test skipped silently;
    another installation's ``sqzc`` otherwise, so the tests checked the wrong code). The
    console script beside ``sys.executable`` (or in this interpreter's scripts folder) is
    preferred because it is what users run; ``python -m sqzc`` is the fallback. A missing
    command fails the test: the CLI is part of what the suite promises to check.
    """
    for folder in (Path(sys.executable).parent, Path(sysconfig.get_path("scripts"))):
        script = folder / "sqzc"
        if script.is_file() and os.access(script, os.X_OK):
            return [str(script)]
    fallback = [sys.executable, "-m", "sqzc"]
    probe = subprocess.run([*fallback, "--version"], capture_output=True, text=True,
                           timeout=120)
    if probe.returncode == 0:
        return fallback
    pytest.fail(f"cannot run sqzc: no console script 'sqzc' beside {sys.executable} and "
                f"'{sys.executable} -m sqzc --version' exited {probe.returncode}:\n"
                f"{probe.stderr}", pytrace=False)


def model_path(model: onnx.ModelProto | str | Path, tmp: Path | None = None) -> Path:
    """A file holding ``model`` (protos are saved under a content-hash name)."""
    if not isinstance(model, onnx.ModelProto):
        return Path(model)
    data = model.SerializeToString()
    d = tmp or _CACHE
    d.mkdir(parents=True, exist_ok=True)
    p = d / f"m-{hashlib.sha256(data).hexdigest()[:16]}.onnx"
    if not p.exists():
        p.write_bytes(data)
    return p


def compile_and_load(model: onnx.ModelProto | str | Path, opt_level: int = 3,
                     target_cpu: str = "host", **kw: object) -> sqzc.CompiledModel:
    """Compile (cached by model bytes + options) and load a library (under qemu for
    ``SQZC_TEST_TARGET``)."""
    emulated = bool(TEST_TARGET) and target_cpu == "host"
    if emulated:
        triple, _, cpu = TEST_TARGET.partition(":")
        kw = {**kw, "target": triple}
        target_cpu = cpu or "generic"
    path = model_path(model)
    key = hashlib.sha256(path.read_bytes() + repr((opt_level, target_cpu, sorted(kw.items())))
                         .encode()).hexdigest()[:20]
    _CACHE.mkdir(parents=True, exist_ok=True)
    lib = _CACHE / f"lib-{key}.so"
    if not lib.exists():
        sqzc.compile(path, lib, CompileOptions(opt_level=opt_level, target_cpu=target_cpu,
                                               verify_ir=True, **kw))  # type: ignore[arg-type]
    if emulated:
        from sqzc.tools.emulate import EmulatedModel

        return EmulatedModel(lib)  # type: ignore[return-value]
    return sqzc.load(lib)


def compile_beside_ort(model: onnx.ModelProto, workdir: Path, fuse_int8_qdq: bool = True
                       ) -> tuple[object, sqzc.CompiledModel, object]:
    """(sqzc's compile result, the loaded library, an onnxruntime session) for a QDQ
    differential test: both single-threaded; onnxruntime with
    ``session.qdqisint8allowed=1`` when sqzc fuses int8 QDQ groups (its default), with
    its default x86-64 options for ``--no-fuse-int8-qdq``."""
    import onnxruntime as ort

    path = workdir / "m.onnx"
    onnx.save(model, path)
    result = sqzc.compile(path, workdir / "m.so",
                          CompileOptions(opt_level=3, fuse_int8_qdq=fuse_int8_qdq))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    if fuse_int8_qdq:
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return result, sqzc.load(workdir / "m.so", threads=1), sess


def random_inputs(m: sqzc.CompiledModel, seed: int = 0, batch: int = 1,
                  scale: float = 1.0) -> dict[str, np.ndarray]:
    """Seeded standard-normal inputs for every model input (dynamic batch -> ``batch``)."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in m.input_specs:
        shape = [batch if d is None else d for d in spec.shape]
        feeds[spec.name] = np.asarray((rng.standard_normal(shape) * scale).astype(spec.dtype))
    return feeds


def assert_close(got: np.ndarray, want: np.ndarray, name: str = "output",
                 rtol: float | None = None, atol: float | None = None) -> None:
    """Shape, then dtype, then values within the dtype's tolerance."""
    assert got.shape == want.shape, f"{name}: shape {got.shape} != {want.shape}"
    assert got.dtype == want.dtype, f"{name}: dtype {got.dtype} != {want.dtype}"
    r, a = TOL[str(want.dtype)]
    r = r if rtol is None else rtol
    a = a if atol is None else atol
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    same_nan = np.isnan(g64) == np.isnan(w64)
    assert same_nan.all(), f"{name}: NaN positions differ"
    infs = np.isinf(w64)
    assert (g64[infs] == w64[infs]).all(), f"{name}: inf values differ"
    finite = np.isfinite(w64)
    if not finite.any():
        return
    scale = np.abs(w64[finite]).max()
    err = np.abs(g64[finite] - w64[finite]).max()
    assert err <= r * scale + a, (f"{name}: max abs error {err:.3g} exceeds "
                                  f"{r:g} x max|ref| ({scale:.3g}) + {a:g}")


def assert_matches_ort(model: onnx.ModelProto | str | Path,
                       inputs: Mapping[str, np.ndarray] | None = None, seed: int = 0,
                       opt_level: int = 3, batch: int = 1, target_cpu: str = "host",
                       rtol: float | None = None, atol: float | None = None,
                       **compile_kw: object) -> dict[str, np.ndarray]:
    """Compile ``model``, run both engines on the same inputs, compare every output."""
    m = compile_and_load(model, opt_level=opt_level, target_cpu=target_cpu, **compile_kw)
    feeds = dict(inputs) if inputs is not None else random_inputs(m, seed, batch)
    got = m.run(feeds)
    want = ort_run(model, feeds)
    assert [s.name for s in m.output_specs] == list(got)
    for (name, g), w in zip(got.items(), want):
        assert_close(g, np.asarray(w), name, rtol, atol)
    return got
