"""``sqzc info``'s size split comes from the library's ELF section table (a ``struct``
reader, no binutils): the parts must add up to the file size, and agree with the
metadata's weights and with ``readelf``-style facts (code is the executable sections)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import sqzc
from sqzc.errors import LibraryError
from sqzc.tools.elf import read_sections, size_summary


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("elf")
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 3, 3, 3))
                                .astype(np.float32), "w")
    g = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 1, 1, 1])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])],
                          [w])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)]), d / "m.onnx")
    sqzc.compile(d / "m.onnx", d / "m.so")
    return d / "m.so"


def test_sections_add_up_to_the_file(library: Path) -> None:
    weights = int(sqzc.load(library).metadata["weights_bytes"])
    text = size_summary(library, weights)
    parts = [int(v.replace(",", "")) for v in re.findall(r"(\d[\d,]*)", text)]
    assert sum(parts) == library.stat().st_size, text
    names = {s.name for s in read_sections(library)}
    assert {".text", ".rodata", ".dynsym"} <= names
    text_size = next(s.size for s in read_sections(library) if s.name == ".text")
    assert parts[0] >= text_size > 0


def test_a_file_that_is_not_elf_is_a_library_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.so"
    bad.write_bytes(b"not an elf file at all" * 4)
    with pytest.raises(LibraryError, match="not a 64-bit ELF"):
        read_sections(bad)


def test_sqzc_info_prints_the_split(library: Path) -> None:
    from sqz_testing import sqzc_command

    out = subprocess.run([*sqzc_command(), "info", str(library)], capture_output=True,
                         text=True, check=True).stdout
    assert re.search(r"^sections:   code [\d,]+, weights [\d,]+, other data", out, re.M), out


def test_the_body_is_not_cloned(tmp_path: Path) -> None:
    """``sqz_body`` is ``noduplicate``: LLVM's function specialization would otherwise
    clone it for the callers that pass worker 0 (14 KB of code on SqueezeNet 1.0)."""
    from sqzc.driver import CompileOptions
    from sqzc.tools.zoo import build

    model = tmp_path / "m.onnx"
    model.write_bytes(build("squeezenet1.1").SerializeToString())
    asm = tmp_path / "m.s"
    sqzc.compile(model, asm, CompileOptions(emit="asm", target_cpu="znver4"))
    text = asm.read_text()
    assert "sqz_body:" in text and "sqz_body.specialized" not in text
