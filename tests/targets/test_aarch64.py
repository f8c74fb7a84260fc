"""The Arm64 target (issue 24, first part): ``--target aarch64-linux-gnu`` cross-builds an
Arm64 ELF library (zig's linker from the ``ziglang`` wheel), ``sqzc info`` describes it
on this x86 host, and qemu-user runs it (``sqzc.tools.emulate``):

* fp32 SqueezeNet 1.1 (Cortex-A76) within float32 tolerance of onnxruntime on the host;
* the int8 QOperator SqueezeNet 1.0 (Cortex-A72: no dot-product extension, so the
  integer kernels use the portable widening pair dot) bit-identical with the x86 build;
* the portable pair dot itself, on x86, bit-identical with ``pmaddwd``;
* the errors a user meets: no cross linker, no emulator, ``--target-cpu host`` for
  another architecture, an unknown triple or CPU.

Needs Debian's qemu-user and libc6-arm64-cross and the ziglang wheel (``.ci/run``
installs them); without them the emulated tests skip, saying which is missing.
"""

from __future__ import annotations

import importlib.util
import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sqz_testing import assert_close, ort_run, sqzc_command

import sqzc
from sqzc.backends.llvm.target import resolve_target
from sqzc.driver import CompileOptions
from sqzc.errors import LibraryError, ToolchainError, UsageError
from sqzc.runtime.elf import elf_machine
from sqzc.tools import emulate
from sqzc.tools.zoo import build

ARM = "aarch64-linux-gnu"
# Arm64 as a *foreign* target (cross build, qemu, "not this machine" errors): on an Arm64
# host these are native builds, which the rest of the suite covers
pytestmark = pytest.mark.skipif(platform.machine() == "aarch64",
                                reason="Arm64 is this machine's architecture, not a foreign one")
QOP = "derived/squeezenet1.0-12-int8-qoperator.derived.onnx"


def _missing_tools() -> str:
    if importlib.util.find_spec("ziglang") is None:
        return "the ziglang wheel (pip install 'sqzc[cross]')"
    if shutil.which("qemu-aarch64") is None or not Path("/usr/aarch64-linux-gnu/lib").is_dir():
        return "qemu-user and libc6-arm64-cross (apt-get install qemu-user libc6-arm64-cross)"
    return ""


needs_emulation = pytest.mark.skipif(bool(_missing_tools()),
                                     reason=f"needs {_missing_tools()}")


@pytest.mark.parametrize("cpu, dotprod", [("cortex-a53", False), ("cortex-a72", False),
                                          ("cortex-a76", True), ("neoverse-n1", True),
                                          ("generic", False)])
def test_arm64_presets(cpu: str, dotprod: bool) -> None:
    t = resolve_target(cpu, ARM)
    assert t.triple.startswith("aarch64-") and not t.is_native
    assert "+neon" in t.features and t.has_dotprod == dotprod
    assert t.vector_width == 4 and t.channel_block == 8 and t.has_fma
    assert t.cpuid_requirements == ({}, 0) and t.hwcap_requirements & 0b10  # asimd


@pytest.mark.parametrize("cpu, target, words", [
    ("host", ARM, ["--target-cpu", "cortex-a76"]),
    ("znver4", ARM, ["unknown target CPU 'znver4'", "cortex-a53"]),
    ("cortex-a76", "host", ["unknown target CPU 'cortex-a76'"]),
    ("generic", "riscv64-linux-gnu", ["unsupported target", "aarch64-linux-gnu"]),
])
def test_target_mistakes_are_usage_errors(cpu: str, target: str, words: list[str],
                                          tmp_path: Path) -> None:
    model = tmp_path / "m.onnx"
    model.write_bytes(build("squeezenet1.1").SerializeToString())
    with pytest.raises(UsageError) as ei:
        sqzc.compile(model, tmp_path / "m.so", CompileOptions(target=target, target_cpu=cpu))
    for w in words:
        assert w in str(ei.value), ei.value
    assert not (tmp_path / "m.so").exists()


def test_a_cross_build_without_ziglang_names_it(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "ziglang" else real(name, *a))
    model = tmp_path / "m.onnx"
    model.write_bytes(build("squeezenet1.1").SerializeToString())
    with pytest.raises(ToolchainError, match=r"sqzc\[cross\]"):
        sqzc.compile(model, tmp_path / "m.so", CompileOptions(target=ARM,
                                                              target_cpu="cortex-a76"))
    assert not (tmp_path / "m.so").exists()


@pytest.fixture(scope="module")
def arm_squeezenet(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if _missing_tools():
        pytest.skip(f"needs {_missing_tools()}")
    d = tmp_path_factory.mktemp("arm")
    model = d / "sq11.onnx"
    model.write_bytes(build("squeezenet1.1").SerializeToString())
    lib = d / "sq11-a76.so"
    sqzc.compile(model, lib, CompileOptions(target=ARM, target_cpu="cortex-a76"))
    return model, lib


@needs_emulation
def test_fp32_squeezenet_runs_under_qemu(arm_squeezenet: tuple[Path, Path]) -> None:
    model, lib = arm_squeezenet
    assert elf_machine(lib) == "aarch64"
    m = emulate.EmulatedModel(lib)
    assert m.metadata["target"]["cpu"] == "cortex-a76"
    x = np.random.default_rng(0).random(m.input_specs[0].concrete_shape(1)).astype(np.float32)
    assert_close(m(x), ort_run(model, {m.input_specs[0].name: x})[0])


@needs_emulation
def test_sqzc_info_and_run_take_an_arm64_library(arm_squeezenet: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    _, lib = arm_squeezenet
    info = subprocess.run([*sqzc_command(), "info", str(lib)], capture_output=True,
                          text=True, check=True).stdout
    assert "cortex-a76" in info and "aarch64" in info and "qemu" in info, info
    x = np.random.default_rng(1).random((1, 3, 224, 224)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = subprocess.run([*sqzc_command(), "run", str(lib), "--input", str(tmp_path / "x.npy"),
                          "-o", str(tmp_path / "y.npy")], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert np.load(tmp_path / "y.npy").shape == (1, 1000, 1, 1)


@needs_emulation
def test_loading_an_arm64_library_here_says_what_to_do(arm_squeezenet: tuple[Path, Path]
                                                        ) -> None:
    with pytest.raises(LibraryError, match="aarch64.*sqzc run"):
        sqzc.load(arm_squeezenet[1])


@needs_emulation
def test_no_emulator_is_a_toolchain_error(arm_squeezenet: tuple[Path, Path],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ToolchainError, match="apt-get install qemu-user libc6-arm64-cross"):
        emulate.EmulatedModel(arm_squeezenet[1])


@needs_emulation
@pytest.mark.exhaustive
def test_int8_qoperator_is_bit_identical_with_x86(shared_dir: Path, tmp_path: Path) -> None:
    model = shared_dir / "models" / QOP
    arm, x86 = tmp_path / "arm.so", tmp_path / "x86.so"
    sqzc.compile(model, arm, CompileOptions(target=ARM, target_cpu="cortex-a72"))
    sqzc.compile(model, x86)
    here = sqzc.load(x86)
    x = (np.random.default_rng(2).random(here.input_specs[0].concrete_shape(1)) * 255
         ).astype(np.float32)
    assert emulate.EmulatedModel(arm)(x).tobytes() == here(x).tobytes()


@pytest.mark.exhaustive
def test_the_portable_pair_dot_equals_pmaddwd(shared_dir: Path, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """On AVX2 (no VNNI) the int8 kernels pair int16 products with ``pmaddwd``; the
    portable form Arm64 uses gives the same bits."""
    from sqzc.backends.llvm.target import x86_64

    model = shared_dir / "models" / QOP
    native, portable = tmp_path / "native.so", tmp_path / "portable.so"
    sqzc.compile(model, native, CompileOptions(target_cpu="haswell"))
    monkeypatch.setattr(x86_64, "pair_dot", lambda features, lanes: (lanes, ""))
    sqzc.compile(model, portable, CompileOptions(target_cpu="haswell"))
    a, b = sqzc.load(native), sqzc.load(portable)
    x = (np.random.default_rng(3).random(a.input_specs[0].concrete_shape(1)) * 255
         ).astype(np.float32)
    assert a(x).tobytes() == b(x).tobytes()


#: Every SqueezeNet the x86 tests use: the zoo's four architectures (64x64 inputs, 100
#: classes, to keep qemu's time down), an int4 weight-QDQ zoo model, the bundled float16
#: model, the derived fp32 / int8 QOperator / int8 QDQ models and the paper's model.
PRESET_MODELS = ["zoo:squeezenet1.0", "zoo:squeezenet1.1", "zoo:squeezenet1.0-simple-bypass",
                 "zoo:squeezenet1.0-complex-bypass", "zoo-int4:squeezenet1.1",
                 "bundled", "derived/squeezenet1.0-7-fp32.derived.onnx",
                 "derived/squeezenet1.0-12-int8-qoperator.derived.onnx",
                 "derived/squeezenet1.0-12-int8-qdq.derived.onnx",
                 "deepcomp/squeezenet1.0-deepcompression.onnx"]
PRESETS = ["cortex-a53", "cortex-a72", "cortex-a76", "neoverse-n1", "generic"]


@needs_emulation
@pytest.mark.parametrize("cpu", PRESETS)
@pytest.mark.parametrize("model", PRESET_MODELS)
def test_every_squeezenet_on_every_preset(model: str, cpu: str, shared_dir: Path,
                                          tmp_path: Path) -> None:
    """Issue 24's matrix: each model compiles for each Arm64 CPU preset and agrees with
    onnxruntime under qemu (the default tier samples one case in 5: tests/conftest.py) (``sqzc verify --target``: fp32 within 1e-4 x max|ref|, float16
    within its tolerance, int8 exactly)."""
    from sqzc.tools.verify import verify_model

    if model.startswith("zoo"):
        kind, _, name = model.partition(":")
        path = tmp_path / "m.onnx"
        extra = {"weight_qdq": "int4", "opset": 21} if kind == "zoo-int4" else {}
        path.write_bytes(build(name, num_classes=100, image_size=64, **extra)
                         .SerializeToString())
    elif model == "bundled":
        from sqzc.tools.cli import DEMO_MODEL

        path = Path(str(DEMO_MODEL))
    else:
        path = shared_dir / "models" / model
    report = verify_model(path, target=ARM, target_cpu=cpu)
    assert report.ok, [(d.name, d.max_abs, d.max_rel) for d in report.outputs]


def test_arm64_cpuinfo_features_are_checked() -> None:
    """On an Arm64 host the runtime reads /proc/cpuinfo's Features (asimd, asimddp ...)."""
    from sqzc.runtime.cpu import missing_features

    host = frozenset("fp asimd evtstrm crc32 cpuid".split())  # a Cortex-A72's
    assert missing_features("+neon,+fp-armv8,+dotprod,+fullfp16", host, "aarch64") == \
        ["dotprod", "fullfp16"]
    assert missing_features("+neon,+fp-armv8", host, "aarch64") == []


@needs_emulation
@pytest.mark.exhaustive
def test_dynamic_batch_under_qemu_matches_onnxruntime(tmp_path: Path) -> None:
    """``sqzc verify --target aarch64-linux-gnu --batch 2`` on a symbolic-batch model:
    fp32 within 1e-4 x max|ref| (every preset's fixed-batch models are in
    ``test_every_squeezenet_on_every_preset``)."""
    from sqzc.tools.verify import verify_model

    path = tmp_path / "m.onnx"
    path.write_bytes(build("squeezenet1.1", batch=None).SerializeToString())
    report = verify_model(path, target=ARM, target_cpu="generic", batch=2)
    assert report.ok, [(d.name, d.max_abs, d.max_rel) for d in report.outputs]


def test_dot_product_words_are_recognized() -> None:
    """qemu 7.2 prints SDOT/UDOT as ``.byte``: the encodings are matched on the word."""
    from sqzc.tools.instruction_mix import _weight

    assert _weight(0x4E839498, ".byte", "") == ("dot", 16)  # sdot v24.4s, v4.16b, v3.16b
    assert _weight(0x6E839498, ".byte", "") == ("dot", 16)  # udot
    assert _weight(0x4F80E000, ".byte", "") == ("dot", 16)  # sdot v0.4s, v0.16b, v0.4b[0]
    assert _weight(0x0E839498, ".byte", "") == ("dot", 8)   # 2 lanes
    assert _weight(0x4E20CC20, "fmla", "v0.4s, v1.4s, v0.4s") == ("vector_fma", 4)
    assert _weight(0x9B000000, "madd", "x0, x0, x0, x0") is None  # address arithmetic
    assert _weight(0x9B000000, "mul", "x0, x1, x2") is None
    assert _weight(0x1F000000, "fmadd", "s0, s1, s2, s3") == ("scalar_fma", 1)


@needs_emulation
def test_instruction_mix_counts_every_conv_mac(tmp_path: Path) -> None:
    """A 3x3 conv (8 -> 16 channels, pad 1, 10x10, plain input: the direct kernel) does
    16 x 8 x 28 x 28 multiply-accumulates once the padded taps are skipped (28 valid
    (row, tap) pairs per axis): the mix must count exactly those, all in NEON fmla."""
    from onnx import TensorProto, helper, numpy_helper

    from sqzc.tools.instruction_mix import measure

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((16, 8, 3, 3))
                                .astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])],
                          "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                              [1, 8, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                         [1, 16, 10, 10])], [w])
    model = tmp_path / "conv.onnx"
    model.write_bytes(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
                      .SerializeToString())
    lib = tmp_path / "conv.so"
    sqzc.compile(model, lib, CompileOptions(target=ARM, target_cpu="cortex-a76"))
    mix = measure(lib)
    assert mix.vector_macs == 16 * 8 * 28 * 28, mix
    assert mix.scalar_fma == 0 and mix.dot == 0 and mix.vector_share == 1.0
    out = subprocess.run([*sqzc_command(), "compile", str(model), "--target", ARM,
                          "--target-cpu", "cortex-a76", "--stats", "-o", str(lib)],
                         capture_output=True, text=True, check=True).stdout
    assert "mix:" in out and "100,352 multiply-accumulates" in out, out
