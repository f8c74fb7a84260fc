"""Compiled libraries under valgrind memcheck (issue 6, hardening).

Runs tests/hardening/valgrind_check.py (see its docstring: a C driver dlopens the library
and calls ``sqz_run`` on exactly-sized heap buffers, under ``valgrind --error-exitcode=1
--leak-check=no``), and checks that the same setup does catch a one-element overflow, so
the clean result means something. Skips when valgrind or a C compiler is missing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hardening_support import save, small_conv

import sqzc

SCRIPT = Path(__file__).resolve().parent / "valgrind_check.py"

pytestmark = [
    pytest.mark.skipif(shutil.which("valgrind") is None,
                       reason="valgrind is not installed (apt-get install valgrind)"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler 'cc' for the driver"),
]


def test_valgrind_check_script_is_clean() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-6000:]
    assert "valgrind_check: all clean" in proc.stdout
    assert proc.stdout.count(": clean, outputs identical") == 12, proc.stdout


def test_valgrind_setup_catches_an_overflow(tmp_path: Path) -> None:
    """Negative control: an output buffer one float short must be reported."""
    sys.path.insert(0, str(SCRIPT.parent))
    import valgrind_check

    driver = valgrind_check._build_driver(tmp_path)
    lib = tmp_path / "lib.so"
    sqzc.compile(save(small_conv(batch=1), tmp_path), lib,
                 sqzc.CompileOptions(target_cpu="generic", opt_level=0))
    m = sqzc.load(lib)
    x = np.zeros(m.input_specs[0].shape, np.float32)
    (tmp_path / "in.bin").write_bytes(x.tobytes())
    out_bytes = int(np.prod(m.output_specs[0].shape)) * 4
    cmd = ["valgrind", "--error-exitcode=1", "--leak-check=no", str(driver), str(lib), "1",
           "1", "1", "1", str(tmp_path / "in.bin"), str(tmp_path / "out.bin"), str(x.nbytes)]
    ok = subprocess.run(cmd + [str(out_bytes)], capture_output=True, text=True, timeout=600,
                        check=False)
    assert ok.returncode == 0, ok.stderr[-3000:]
    short = subprocess.run(cmd + [str(out_bytes - 4)], capture_output=True, text=True,
                           timeout=600, check=False)
    assert short.returncode == 1 and "Invalid write" in short.stderr, short.stderr[-3000:]
