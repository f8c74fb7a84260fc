"""``sqzc compile --stats`` explains a library's weight bytes per tensor (issue 21): the
bytes stored today, the source tensor's density, alphabet and zero-order bound, and what
the best lossless codec reaches. On the paper's Deep Compression SqueezeNet the coded
total must stay within 1.05x of the bound (the issue's target for stored weights)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import sqzc.driver as drv
from sqz_testing import sqzc_command
from sqzc.weights.analysis import kernel_constants, weight_report

DEEPCOMP = "deepcomp/squeezenet1.0-deepcompression.onnx"


def test_report_of_the_papers_model(shared_dir: Path) -> None:
    opts = drv.CompileOptions(target_cpu="znver4")
    g = drv.load_graph(str(shared_dir / "models" / DEEPCOMP), opts)
    drv.optimize(g, opts)
    rows = weight_report(g)
    assert [r.name for r in rows] == kernel_constants(g)
    convs = [r for r in rows if r.n > 1000]
    assert len(convs) == 26 and all(r.alphabet == 256 for r in convs)
    assert sum(r.nnz for r in convs) == 415_921 and sum(r.n for r in convs) == 1_244_448
    bound = sum(r.bound_bytes for r in rows)
    coded = sum(r.compressed_bytes for r in rows)
    assert coded <= 1.05 * bound, (coded, bound)
    assert sum(r.library_bytes for r in rows) > 20 * coded  # Winograd-expanded float32 today


def test_stats_prints_the_table(shared_dir: Path, tmp_path: Path) -> None:
    out = subprocess.run([*sqzc_command(), "compile", str(shared_dir / "models" / DEEPCOMP),
                          "-o", str(tmp_path / "m.so"), "--stats"],
                         capture_output=True, text=True, check=True).stdout
    assert "weights by tensor" in out and "sparse_cb, Winograd" in out, out
    assert "library:" in out and "code " in out
