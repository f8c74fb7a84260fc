"""Compiled libraries under valgrind memcheck (issue 6, hardening; issue 26 item 4).

Runs tests/hardening/valgrind_check.py (see its docstring: a C driver dlopens the library
and calls ``sqz_run`` on exactly-sized heap buffers, under ``valgrind --error-exitcode=1
--leak-check=no``) on float and int8 models (QOperator uint8, QDQ int8) for ``haswell``
(AVX2 + FMA; int8 convs as ``vpmaddwd ymm``) and ``generic`` (SSE2; ``pmaddwd xmm``),
and checks that the same setup does catch a one-element overflow and an output byte left
unwritten, so the clean result means something. Skips when valgrind or a C compiler is
missing.

AVX-512, this machine's default code path, cannot run under valgrind: valgrind 3.19 (the
only version apt offers on Debian bookworm; newer releases do not decode AVX-512 either,
as far as KDE bug 383010 shows) has no EVEX decoder and its virtual CPU reports no
AVX-512, so sqzc's AVX-512 libraries refuse to run there (``SQZ_ERR_CPU``, their CPU
check); without that check they stopped at their first EVEX instruction: ``vmovaps zmm`` (62 d1 7c 48 28 ..) in float models,
``vpmovdb ymm -> m64`` (62 b2 7e 28 31 ..) in int8 models on the Intel targets, before
their ``vpdpbusd zmm`` (AVX512-VNNI) or ``vpmaddwd zmm`` (AVX-512BW) conv kernels, which
are undecodable too.
``test_valgrind_still_cannot_decode_avx512`` pins that down, so a valgrind that learns
AVX-512 makes it fail and the AVX-512 targets get added to the check. Until then the
host's AVX-512 float and int8 (VNNI) kernels, and skylake-avx512's AVX-512BW int8
kernels, are covered by test_hardening_guard_bytes.py, natively.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hardening_support import mini_squeezenet_int8, save, small_conv

import sqzc

SCRIPT = Path(__file__).resolve().parent / "valgrind_check.py"
sys.path.insert(0, str(SCRIPT.parent))
import valgrind_check  # noqa: E402

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None,
                       reason="valgrind is not installed (apt-get install valgrind)"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler 'cc' for the driver"),
]



#: A sweep (28 library runs under valgrind, about 30 s): exhaustive tier, which .ci/run
#: runs too; the default tier keeps the setup check and the AVX-512 pin below.
@pytest.mark.exhaustive
def test_valgrind_check_script_is_clean() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]
    assert "valgrind_check: all clean" in proc.stdout
    # per target: 4 runs of each of the 3 dynamic-batch models, 2 of the static one
    assert proc.stdout.count(": clean, outputs identical") == 28, proc.stdout
    for target in valgrind_check.DEFAULT_TARGETS:
        for name in ("mini-dyn", "conv-static", "int8-qop-u8-dyn", "int8-qdq-s8-dyn"):
            assert f"  {name}-{target} batch=1 threads=1: clean" in proc.stdout, (name, target)


def _run(driver: Path, lib: Path, work: Path, extra: tuple[int, ...] = ()
         ) -> subprocess.CompletedProcess:
    """One batch-1 run of a one-input library on a zero input, output ``j``'s buffer
    ``extra[j]`` bytes longer than the output (0 where not given)."""
    m = sqzc.load(lib)
    x = np.zeros(m.input_specs[0].concrete_shape(1), m.input_specs[0].dtype)
    (work / "in.bin").write_bytes(x.tobytes())
    sizes = [int(np.prod(s.concrete_shape(1))) * np.dtype(s.dtype).itemsize
             for s in m.output_specs]
    sizes = [n + (extra[j] if j < len(extra) else 0) for j, n in enumerate(sizes)]
    cmd = ["valgrind", "--error-exitcode=1", "--leak-check=no", str(driver), str(lib), "1",
           str(len(sizes)), "1", "1", str(work / "in.bin"), str(work / "out.bin"),
           str(x.nbytes), *map(str, sizes)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)


def test_valgrind_setup_catches_an_overflow_and_an_unwritten_output(tmp_path: Path) -> None:
    """Negative controls: an output buffer one float short must be reported as an invalid
    write, and one a float too long (4 bytes the library never writes) as uninitialised
    output; the exact size must be clean. Then the same for the 8-bit output of an int8
    model on haswell, one byte off."""
    driver = valgrind_check._build_driver(tmp_path)
    lib = tmp_path / "lib.so"
    sqzc.compile(save(small_conv(batch=1), tmp_path), lib,
                 sqzc.CompileOptions(target_cpu="generic", opt_level=0))
    qlib = tmp_path / "libq.so"
    sqzc.compile(save(mini_squeezenet_int8("qop", "uint8", batch=1, image_size=19), tmp_path),
                 qlib, sqzc.CompileOptions(target_cpu="haswell"))
    assert sqzc.load(qlib).output_specs[1].dtype == "uint8"
    for path, extra in ((lib, (0,)), (qlib, (0, 0))):
        ok = _run(driver, path, tmp_path, extra)
        assert ok.returncode == 0, ok.stderr[-3000:]
    for path, extra in ((lib, (-4,)), (qlib, (0, -1))):
        short = _run(driver, path, tmp_path, extra)
        assert short.returncode == 1 and "Invalid write" in short.stderr, short.stderr[-3000:]
    for path, extra in ((lib, (4,)), (qlib, (0, 1))):
        overlong = _run(driver, path, tmp_path, extra)
        assert overlong.returncode == 1 and "Uninitialised byte(s)" in overlong.stderr, \
            overlong.stderr[-3000:]


@pytest.mark.parametrize("target, kind", [("skylake-avx512", "float"),
                                          ("icelake-server", "int8")])
def test_valgrind_still_cannot_decode_avx512(tmp_path: Path, target: str, kind: str) -> None:
    """valgrind cannot run an AVX-512 library, float or int8 (VNNI): its virtual CPU
    reports no AVX-512, so the library's CPU check refuses the first call with
    SQZ_ERR_CPU (before it, valgrind stopped at the first EVEX-encoded instruction). That
    is why valgrind_check.py leaves those targets to the guard-byte tests. If this fails,
    the installed valgrind runs AVX-512 code: add the AVX-512 targets to
    ``valgrind_check.DEFAULT_TARGETS``."""
    driver = valgrind_check._build_driver(tmp_path)
    model = small_conv(batch=1) if kind == "float" else \
        mini_squeezenet_int8("qop", "uint8", batch=1, image_size=19)
    lib = tmp_path / "lib.so"
    sqzc.compile(save(model, tmp_path), lib, sqzc.CompileOptions(target_cpu=target))
    m = sqzc.load(lib)
    assert m.metadata["target"]["vector_width"] == 16
    assert m.metadata["target"]["vnni"] is (target == "icelake-server")
    proc = _run(driver, lib, tmp_path)
    # valgrind's virtual CPU reports no AVX-512 (CPUID), so the library's own CPU check
    # refuses the first call with SQZ_ERR_CPU (4) before any EVEX instruction runs
    assert proc.returncode != 0 and "sqz_run returned 4" in proc.stderr, \
        f"valgrind ran {target} code (exit {proc.returncode}): add it to the check\n" \
        + proc.stderr[-2000:]
    assert valgrind_check.unhandled_instruction(proc.stderr) is None, proc.stderr[-2000:]
    sqzc.compile(save(model, tmp_path), tmp_path / "lib.s",
                 sqzc.CompileOptions(target_cpu=target, emit="asm"))
    text = (tmp_path / "lib.s").read_text()
    assert "%zmm" in text and "cpuid" in text, "an AVX-512 build checks the CPU first"
