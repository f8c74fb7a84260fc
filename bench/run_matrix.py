#!/usr/bin/env python3
"""Run the benchmark matrix and write bench/RESULTS.md.

Models: SqueezeNet 1.0 and 1.1 in float32 (seeded weights from ``sqzc zoo``; the 1.1 also
with the pretrained weights from ../shared when present), the int8 QOperator/QDQ u8s8
SqueezeNets from ../shared, and an s8s8 QDQ one made here the way onnxruntime's
quantizer does by default (``quantize_static`` of the pretrained fp32 model, int8
activations and weights, MinMax calibration on the shared photos); the torchvision
families of ``sqzc zoo`` (MobileNet, EfficientNet, ShuffleNet, MNASNet, ResNet, RegNet,
GoogLeNet, DenseNet) in float32 at 224x224, opset 17 (``--no-families`` skips them);
1 and 2 threads;
sqzc, onnxruntime and (when installed) OpenVINO timed in the same process, interleaved,
medians of many rounds (see ``sqzc.tools.bench``). Usage:

    python bench/run_matrix.py [--rounds 200] [--threads 1,2] [--no-families]
                               [--out bench/RESULTS.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from sqzc.tools.bench import cpu_name, run_bench
from sqzc.tools.zoo import build
from sqzc.tools.zoo_families import FAMILIES

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "models"
PHOTOS = ROOT.parent / "shared" / "data" / "images"
FP32 = "derived/squeezenet1.0-7-fp32.derived.onnx"  # structurally SqueezeNet 1.1


def quantize_s8s8(fp32: Path, out: Path) -> Path | None:
    """onnxruntime's default static quantization (QDQ, int8 activations and weights),
    calibrated on the shared photos; ``None`` without pillow or photos."""
    try:
        from onnxruntime.quantization import (
            CalibrationDataReader,
            QuantFormat,
            QuantType,
            quantize_static,
        )
        from onnxruntime.quantization.shape_inference import quant_pre_process
        from PIL import Image
    except ImportError:
        return None
    photos = sorted(PHOTOS.glob("*.*"))
    if not photos:
        return None
    batches = []
    for p in photos:
        with Image.open(p) as im:
            rgb = im.convert("RGB").resize((224, 224), Image.Resampling.BILINEAR)
        x = np.asarray(rgb, np.float32)[:, :, ::-1].transpose(2, 0, 1)[None]
        batches.append({"data_0": np.ascontiguousarray(x)})

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(batches)

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self._it, None)

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre), skip_symbolic_shape=True)
    quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return out


#: The s8s8 QDQ model again, compiled with ``--no-fuse-int8-qdq`` (the convs onnxruntime's
#: default x86-64 session runs in float run sqzc's MLAS-order float path: its results bit
#: for bit, slower than sqzc's default integer convs).
FLOAT_PATH_S8S8 = "squeezenet1.1 int8 QDQ s8s8 --no-fuse-int8-qdq"


def models(tmp: Path, families: bool = True) -> list[tuple[str, Path]]:
    """(label, path) of every model in the matrix that exists here."""
    out = []
    for name in ("squeezenet1.0", "squeezenet1.1"):
        p = tmp / f"{name}.onnx"
        p.write_bytes(build(name, opset=13).SerializeToString())
        out.append((f"{name} fp32 (zoo, seeded)", p))
    for label, rel in (
        ("squeezenet1.1 fp32 (pretrained)", FP32),
        ("squeezenet1.1 int8 QOperator u8s8", "derived/squeezenet1.0-12-int8-qoperator.derived.onnx"),
        ("squeezenet1.1 int8 QDQ u8s8", "derived/squeezenet1.0-12-int8-qdq.derived.onnx"),
    ):
        if (SHARED / rel).exists():
            out.append((label, SHARED / rel))
    if (SHARED / FP32).exists():
        q = quantize_s8s8(SHARED / FP32, tmp / "squeezenet1.1-s8s8-qdq.onnx")
        if q is not None:
            out.append(("squeezenet1.1 int8 QDQ s8s8", q))
            out.append((FLOAT_PATH_S8S8, q))
    if families:
        for name in FAMILIES:
            p = tmp / f"{name}.onnx"
            p.write_bytes(build(name, opset=17).SerializeToString())
            out.append((f"{name} fp32 (zoo, seeded)", p))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--no-families", action="store_true",
                    help="only the SqueezeNets (the families add ~10 minutes)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS.md"))
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label, path in models(Path(tmp), families=not args.no_families):
            for t in (int(x) for x in args.threads.split(",")):
                b, _ = run_bench(str(path), threads=t, rounds=args.rounds, openvino=True,
                                 fuse_int8_qdq=label != FLOAT_PATH_S8S8)
                r = b.row()
                problem = b.peer_problems.get("openvino", "")
                ov = (f"{b.peer_ms('openvino'):.2f} | **{r['sqzc_ms'] / b.peer_ms('openvino'):.2f}**"
                      if "openvino" in b.peer_times else
                      "not installed | -" if problem.startswith("ModuleNotFoundError") else
                      "cannot load it | -" if problem else "- | -")
                rows.append((label, t, r, b.compile_seconds, ov))
                print(f"{label:<38} {t}T  sqzc {r['sqzc_ms']:.2f} ms  ort {r['ort_ms']:.2f} ms  "
                      f"ratio {r['ratio']:.3f}  openvino {ov}", flush=True)
    date = datetime.date.today().isoformat()
    lines = [
        f"# Benchmark: sqzc vs onnxruntime ({date})", "",
        f"CPU: {cpu_name()} ({os.cpu_count()} CPUs). Batch 1, median of {args.rounds} interleaved "
        "rounds after 20 warm-up rounds, same process, same input, same thread count (with 2 threads the engines alternate in blocks of 10 runs after a 50 ms pause, since onnxruntime's idle pool spins for ~33 ms after each run); "
        "onnxruntime with all graph optimizations, sequential execution; OpenVINO "
        "(when installed) with f32 precision, latency hint, one stream. "
        "Ratio = sqzc median / peer median (below 1: sqzc is faster). "
        "GFLOP/s counts direct-convolution work (Winograd does fewer multiplies). "
        "Produced by `python bench/run_matrix.py`.", "",
        "| model | threads | sqzc ms (p90) | onnxruntime ms (p90) | ratio | OpenVINO ms | ratio "
        "| sqzc GFLOP/s | compile s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, t, r, cs, ov in rows:
        lines.append(f"| {label} | {t} | {r['sqzc_ms']:.2f} ({r['sqzc_p90_ms']:.2f}) | "
                     f"{r['ort_ms']:.2f} ({r['ort_p90_ms']:.2f}) | **{r['ratio']:.2f}** | {ov} | "
                     f"{r['sqzc_gflops']:.0f} | {cs:.1f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
