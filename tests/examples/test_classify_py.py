"""examples/classify.py run as a user would: on a compiled library and on an .onnx file."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqzc.tools.cli import DEMO_IMAGE, DEMO_MODEL

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "classify.py"
TOP_LINE = re.compile(r"^\s+(\d+\.\d+)\s+(\d+)\s+(.*)$", re.M)


def run(*args: object) -> list[tuple[float, int, str]]:
    proc = subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return [(float(p), int(i), name) for p, i, name in TOP_LINE.findall(proc.stdout)]


def test_classify_library_on_bundled_photo(bundled_build: Path):
    rows = run(bundled_build / "libsqz.so", DEMO_IMAGE)
    assert len(rows) == 5
    assert rows[0][1] == 281 and rows[0][2] == "tabby, tabby cat"
    assert rows[0][0] > 0.5


def test_classify_onnx_compiles_first():
    rows = run(DEMO_MODEL, "--top", "3")  # image defaults to the bundled kitten
    assert [i for _, i, _ in rows][:1] == [281] and len(rows) == 3
