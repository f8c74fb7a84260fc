"""A library never dies of SIGILL in the runtime's hands: before calling into it, the
runtime compares the CPU features it was compiled for (metadata ``target.features``) with
this machine's, and refuses with the missing feature's name (``sqzc.runtime.cpu``).
The machine is simulated here by replacing the host's flag set."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import sqzc
import sqzc.runtime.cpu as cpu
from sqzc.driver import CompileOptions
from sqzc.errors import LibraryError
from sqzc.runtime.cpu import missing_features

AVX2_ONLY = frozenset({"lm", "sse", "sse2", "pni", "ssse3", "sse4_1", "sse4_2", "avx", "avx2",
                       "fma", "f16c", "bmi1", "bmi2", "popcnt", "movbe", "abm", "cx16"})


def test_llvm_names_map_to_cpuinfo_flags() -> None:
    have = AVX2_ONLY
    x86 = "x86_64"  # x86 names whatever machine runs the test
    assert missing_features("+avx2,+fma,+sse4.2,+crc32,+lzcnt,+bmi,+64bit,+sse3", have, x86) == []
    assert missing_features("+avx512f,+avx512vnni,+avx2,-avx512bw", have, x86) == \
        ["avx512f", "avx512vnni"]
    assert missing_features("+amx-int8,+avxvnni", have, x86) == ["amx-int8", "avxvnni"]
    # tuning / system features no cpuinfo flag reports are not checkable: skipped
    assert missing_features("+prefer-256-bit,+fast-gather,+kl", have, x86) == []
    assert missing_features("+avx512f", None if cpu.host_cpu_flags() is None
                            else cpu.host_cpu_flags() | {"avx512f"}) == []


@pytest.fixture(scope="module")
def znver4_library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if platform.machine() != "x86_64":
        pytest.skip("an x86-64 library is built and loaded on an x86-64 host only")
    d = tmp_path_factory.mktemp("cpu")
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 40])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 40])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)]), d / "m.onnx")
    sqzc.compile(d / "m.onnx", d / "m.so", CompileOptions(target_cpu="znver4"))
    return d / "m.so"


def test_loading_on_a_cpu_without_avx512_names_the_feature(
        znver4_library: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cpu, "host_cpu_flags", lambda: AVX2_ONLY)
    with pytest.raises(LibraryError, match=r"compiled for znver4 and needs CPU features this "
                                           r"machine lacks: avx512f, avx512bw.*--target-cpu"):
        sqzc.load(znver4_library)


def test_a_cpu_with_the_features_runs_it(znver4_library: Path) -> None:
    if missing_features("+avx512f,+avx512bw,+avx512vl,+avx512dq,+avx512vnni"):
        pytest.skip("this machine has no AVX-512 VNNI: the znver4 library cannot run here")
    x = np.linspace(-1, 1, 80, dtype=np.float32).reshape(2, 40)
    np.testing.assert_array_equal(sqzc.load(znver4_library)(x), np.maximum(x, 0))


def test_info_describes_a_library_this_cpu_cannot_run(znver4_library: Path) -> None:
    """``sqzc info`` reads the metadata without running the library's code, and says so."""
    code = ("import sqzc.runtime.cpu as c, sys; "
            f"c.host_cpu_flags = lambda: frozenset({sorted(AVX2_ONLY)!r}); "
            "from sqzc.tools.cli import main; sys.exit(main(['info', sys.argv[1]]))")
    out = subprocess.run([sys.executable, "-c", code, str(znver4_library)],
                         capture_output=True, text=True, check=True).stdout
    assert "target:     znver4" in out and "this CPU:   cannot run it (lacks avx512f" in out


def test_arm64_host_features_add_what_llvm_does_not_map(monkeypatch: pytest.MonkeyPatch
                                                        ) -> None:
    """LLVM's Linux host detection maps only asimd, fp, crc32, atomics, sve and the
    crypto words: on a Raspberry Pi 5 (Cortex-A76) its host features lack dotprod and
    fullfp16, so ``--target-cpu host`` would skip SDOT. The Features line adds them."""
    from sqzc.backends.llvm.target import aarch64

    pi5 = frozenset("fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid "
                    "asimdrdm lrcpc dcpop asimddp".split())
    monkeypatch.setattr(cpu, "host_cpu_flags", lambda: pi5)
    got = aarch64.host_features("+aes,+crc,+fp-armv8,+lse,+neon,-sve").split(",")
    assert {"+dotprod", "+fullfp16", "+neon", "-sve"} <= set(got)
    a72 = frozenset("fp asimd evtstrm crc32 cpuid".split())  # a Pi 4: neither
    monkeypatch.setattr(cpu, "host_cpu_flags", lambda: a72)
    assert aarch64.host_features("+crc,+fp-armv8,+neon") == "+crc,+fp-armv8,+neon"


def test_an_x86_target_on_an_arm64_host_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The x86 CPU check is inline assembly, which LLVM can emit only with the x86 assembly
    parser llvmlite initializes on x86 hosts: elsewhere it would abort the process, so
    the request is a UsageError."""
    import llvmlite.binding as llvm

    from sqzc.backends.llvm.target import resolve_target
    from sqzc.errors import UsageError

    monkeypatch.setattr(llvm, "get_process_triple", lambda: "aarch64-unknown-linux-gnu")
    with pytest.raises(UsageError, match="x86-64 libraries can be built on an x86-64 host"):
        resolve_target("haswell", "x86_64-linux-gnu")
