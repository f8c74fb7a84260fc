#!/usr/bin/env python3
"""The paper's Deep Compression SqueezeNet end to end: library sizes, decode time, latency
and top-1 on the photos, for the README's "Compressed models" section (issue 21).

Builds ../shared/models/deepcomp/squeezenet1.0-deepcompression.onnx with ``--weights raw``,
with the default (``--weights auto``, which compresses it) and with ``--optimize size``
(compressed too), then reports for each:

* the file size split into code, stored weights, other data and ELF overhead
  (``sqzc.tools.elf``), against the authors' compressed weight file (675,763 bytes);
* the stored weights against the per-tensor zero-order bound (``sqzc.weights.analysis``);
* ``sqz_init``'s decode time: the median over fresh processes pinned to one core;
* the latency, interleaved with onnxruntime in one process, 1 thread, medians;
* top-1 on the photos with Caffe preprocessing (``sqzc.tools.imageio.caffe_input``).

Usage: ``python bench/compressed_model.py [--rounds 200] [--out bench/RESULTS-compressed.md]``
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import sqzc
from sqzc.driver import CompileOptions
from sqzc.tools.bench import cpu_name, time_engines
from sqzc.tools.elf import read_sections
from sqzc.tools.imageio import caffe_input
from sqzc.weights.analysis import zero_order_bound

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
MODEL = SHARED / "models" / "deepcomp" / "squeezenet1.0-deepcompression.onnx"
PAPER_FILE = SHARED / "models" / "deepcomp" / "compressed_SqueezeNet.net"
PHOTOS = {"dog.jpg": 207, "kitten_224.png": 281, "coffee.png": 967}
#: label -> CompileOptions fields of each build in the table
BUILDS: dict[str, dict[str, str]] = {
    "raw weights (`--weights raw`)": {"weights": "raw"},
    "default (`--weights auto`)": {},
    "size-optimized (`--optimize size`)": {"optimize": "size"},
}

DECODE_PROBE = """
import sys, sqzc
m = sqzc.load(sys.argv[1], threads=1)
print(m.decode_seconds)
"""


def sizes(lib: Path, stored: int) -> dict[str, int]:
    """File bytes split as ``sqzc info`` splits them."""
    sections = read_sections(lib)
    total = lib.stat().st_size
    code = sum(s.size for s in sections if s.exec)
    data = sum(s.size for s in sections if s.alloc and not s.exec and s.in_file)
    return {"file": total, "code": code, "weights": stored, "other": data - stored,
            "elf": total - code - data}


def paper_bound() -> float:
    """The issue's zero-order bound: conv weights at their bound, biases raw."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(MODEL))
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    return sum(zero_order_bound(inits[n.input[1]]).total + inits[n.input[2]].nbytes
               for n in convs)


def decode_ms(lib: Path, runs: int = 7) -> float:
    """Median ``sqz_init`` time over fresh processes on one core (``taskset -c 0``)."""
    times = []
    for _ in range(runs):
        cmd = [sys.executable, "-c", DECODE_PROBE, str(lib)]
        if os.path.exists("/usr/bin/taskset"):
            cmd = ["taskset", "-c", "0", *cmd]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        times.append(float(out.strip().splitlines()[-1]) * 1e3)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-compressed.md"))
    args = ap.parse_args()
    import onnxruntime as ort

    photos = {name: caffe_input(SHARED / "data" / "images" / name) for name in PHOTOS}
    x = photos["dog.jpg"]
    rows, engines = [], {}
    with tempfile.TemporaryDirectory(prefix="sqzc-dc-") as tmp:
        for i, (label, fields) in enumerate(BUILDS.items()):
            lib = Path(tmp) / f"build{i}.so"
            t0 = time.perf_counter()
            result = sqzc.compile(MODEL, lib, CompileOptions(**fields))  # type: ignore[arg-type]
            compile_s = time.perf_counter() - t0
            meta = result.metadata
            m = sqzc.load(lib, threads=1)
            top1 = {name: int(np.argmax(m(p))) for name, p in photos.items()}
            rows.append({"label": label, "storage": meta["weights_storage"],
                         "compile_s": compile_s, "decoded": int(meta["weights_bytes"]),
                         **sizes(lib, int(meta["weights_stored_bytes"])),
                         "decode_ms": decode_ms(lib) if meta["weights_storage"] ==
                         "compressed" else 0.0, "top1": top1})
            engines[label] = (lambda m=m: m.run({"data": x}))
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        sess = ort.InferenceSession(str(MODEL), so, providers=["CPUExecutionProvider"])
        ort_top1 = {name: int(np.argmax(sess.run(None, {"data": p})[0])) for name, p in
                    photos.items()}
        engines["onnxruntime"] = lambda: sess.run(None, {"data": x})
        times = time_engines(engines, 1, args.rounds)
    ms = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    bound = paper_bound()
    paper = PAPER_FILE.stat().st_size if PAPER_FILE.exists() else 675_763
    out = [
        f"# The paper's Deep Compression SqueezeNet, raw and compressed ({datetime.date.today()})",
        "",
        f"CPU: {cpu_name()}. Model: `{MODEL.relative_to(SHARED.parent)}`; the authors' "
        f"compressed weight file is {paper:,} bytes. Latency: batch 1, 1 thread, median of "
        f"{args.rounds} rounds interleaved with onnxruntime {ort.__version__} in one process. "
        "Decode: `sqz_init`, median of 7 fresh processes on one core. Top-1 with Caffe "
        "preprocessing (short side 256, centre crop 227, BGR minus [104, 117, 123]). "
        "Produced by `python bench/compressed_model.py`.",
        "",
        "| build | library bytes | code | stored weights | other data | ELF overhead "
        "| weights in memory | decode ms | latency ms | / onnxruntime | "
        + " | ".join(f"top-1 {n}" for n in PHOTOS) + " |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(PHOTOS),
    ]
    for r in rows:
        out.append(
            f"| {r['label']} | **{r['file']:,}** | {r['code']:,} | {r['weights']:,} | "
            f"{r['other']:,} | {r['elf']:,} | {r['decoded']:,} | "
            + (f"{r['decode_ms']:.1f}" if r["decode_ms"] else "-")
            + f" | {ms[r['label']]:.2f} | {ms[r['label']] / ms['onnxruntime']:.2f} | "
            + " | ".join(str(r["top1"][n]) for n in PHOTOS) + " |")
    out.append(f"| onnxruntime | | | | | | | | {ms['onnxruntime']:.2f} | 1.00 | "
               + " | ".join(str(ort_top1[n]) for n in PHOTOS) + " |")
    stored = next(r["weights"] for r in rows if r["storage"] == "compressed")
    default = next(r for r in rows if r["label"].startswith("default"))
    small = next(r for r in rows if r["label"].startswith("size"))
    out += [
        "",
        f"Stored weights {stored:,} bytes = {stored / bound:.3f} x the zero-order bound "
        f"({bound:,.0f} bytes: sum over tensors of nnz x H(nonzero values) + n x H_b(density), "
        "plus codebooks and biases raw). Default library / the authors' weight file: "
        f"{default['file'] / paper:.3f} (target 1); size-optimized library "
        f"{small['file']:,} bytes (target 600,000), its latency "
        f"{ms[small['label']] / ms[default['label']]:.2f} x the default build's. Expected top-1: "
        + ", ".join(f"{n} {c}" for n, c in PHOTOS.items()) + ".",
    ]
    text = "\n".join(out) + "\n"
    Path(args.out).write_text(text)
    print(text)
    print(json.dumps({r["label"]: r["file"] for r in rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
