"""The library's own CPU check (for C callers, who have no Python runtime in front of it):
``sqz_run`` and ``sqz_run_pool`` return ``SQZ_ERR_CPU`` (4) on a CPU without an extension
the library was compiled for, before any kernel runs, instead of dying of SIGILL. Simulated
with a target that needs XOP, an extension no current CPU has (AMD dropped it after
Bulldozer); the Python runtime's own check is bypassed to reach the library's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sqzc
import sqzc.runtime.library as library
from sqzc.backends.llvm.target import x86_64
from sqzc.driver import CompileOptions
from sqzc.errors import CallError, LibraryError
from sqzc.runtime.cpu import missing_features


def _model(path: Path) -> Path:
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 40])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]), path)
    return path


def test_a_cpu_without_a_required_extension_gets_sqz_err_cpu(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not missing_features("+xop"):
        pytest.skip("this CPU has XOP: the simulation needs an extension it lacks")
    monkeypatch.setitem(x86_64.KNOWN_CPUS, "x86-64-v3", "+avx2,+fma,+f16c,+xop")
    sqzc.compile(_model(tmp_path / "m.onnx"), tmp_path / "m.so",
                 CompileOptions(target_cpu="x86-64-v3"))
    with pytest.raises(LibraryError, match="needs CPU features this machine lacks: xop"):
        sqzc.load(tmp_path / "m.so")  # the runtime's check comes first ...
    monkeypatch.setattr(library, "missing_features", lambda features: [])
    m = sqzc.load(tmp_path / "m.so", threads=2)  # ... without it, the library's own answers
    x = np.ones((2, 40), np.float32)
    for _ in range(2):  # computed, then cached
        with pytest.raises(CallError, match="SQZ_ERR_CPU"):
            m(x)


def test_a_cpu_with_the_extensions_runs(tmp_path: Path) -> None:
    sqzc.compile(_model(tmp_path / "m.onnx"), tmp_path / "m.so")
    x = np.linspace(-1, 1, 80, dtype=np.float32).reshape(2, 40)
    np.testing.assert_array_equal(sqzc.load(tmp_path / "m.so")(x), np.maximum(x, 0))


def test_the_check_reads_the_bits_of_the_features(tmp_path: Path) -> None:
    """The target description's CPUID table: what znver4's features need."""
    masks, xcr0 = x86_64.cpuid_requirements(x86_64.KNOWN_CPUS["znver4"])
    assert masks[(7, 0, 1)] & (1 << 16) and masks[(7, 0, 2)] & (1 << 11)  # avx512f, vnni
    assert masks[(1, 0, 2)] & (1 << 12) and xcr0 == 0xE6  # fma; OS saves zmm/opmask
    assert x86_64.cpuid_requirements("") == ({}, 0)
    assert x86_64.cpuid_requirements("-avx512f,+sse2") == ({(1, 0, 3): 1 << 26}, 0)
