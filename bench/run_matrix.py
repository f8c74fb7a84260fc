#!/usr/bin/env python3
"""Run the benchmark matrix and write bench/RESULTS.md.

Models: SqueezeNet 1.0 and 1.1 in float32 (seeded weights from ``sqzc zoo``; the 1.1 also
with the pretrained weights from ../shared when present) and the int8 QOperator/QDQ
SqueezeNets from ../shared; 1 and 2 threads; sqzc and onnxruntime timed in the same
process, interleaved, medians of many rounds (see ``sqzc.bench``). Usage:

    python bench/run_matrix.py [--rounds 200] [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

from sqzc.bench import cpu_name, run_bench
from sqzc.zoo import build

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"


def models(tmp: Path) -> list[tuple[str, Path]]:
    """(label, path) of every model in the matrix that exists here."""
    out = []
    for name in ("squeezenet1.0", "squeezenet1.1"):
        p = tmp / f"{name}.onnx"
        p.write_bytes(build(name, opset=13).SerializeToString())
        out.append((f"{name} fp32 (zoo, seeded)", p))
    for label, rel in (
        ("squeezenet1.1 fp32 (pretrained)", "derived/squeezenet1.0-7-fp32.derived.onnx"),
        ("squeezenet1.1 int8 QOperator u8s8", "derived/squeezenet1.0-12-int8-qoperator.derived.onnx"),
        ("squeezenet1.1 int8 QDQ u8s8", "derived/squeezenet1.0-12-int8-qdq.derived.onnx"),
    ):
        if (SHARED / rel).exists():
            out.append((label, SHARED / rel))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models(Path(tmp)):
            for t in (int(x) for x in args.threads.split(",")):
                b, _ = run_bench(str(path), threads=t, rounds=args.rounds)
                r = b.row()
                rows.append((label, t, r, b.compile_seconds))
                print(f"{label:<38} {t}T  sqzc {r['sqzc_ms']:.2f} ms  ort {r['ort_ms']:.2f} ms  "
                      f"ratio {r['ratio']:.3f}", flush=True)
    date = datetime.date.today().isoformat()
    lines = [
        f"# Benchmark: sqzc vs onnxruntime ({date})", "",
        f"CPU: {cpu_name()} ({os.cpu_count()} CPUs). Batch 1, median of {args.rounds} interleaved "
        "rounds after 20 warm-up rounds, same process, same input, same thread count; "
        "onnxruntime with all graph optimizations, sequential execution. "
        "Ratio = sqzc median / onnxruntime median (below 1: sqzc is faster). "
        "Produced by `python bench/run_matrix.py`.", "",
        "| model | threads | sqzc ms (p90) | onnxruntime ms (p90) | ratio | sqzc GFLOP/s | compile s |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, t, r, cs in rows:
        lines.append(f"| {label} | {t} | {r['sqzc_ms']:.2f} ({r['sqzc_p90_ms']:.2f}) | "
                     f"{r['ort_ms']:.2f} ({r['ort_p90_ms']:.2f}) | **{r['ratio']:.2f}** | "
                     f"{r['sqzc_gflops']:.0f} | {cs:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
