"""``sqzc bench``: time sqzc against onnxruntime in one process, interleaved.

Both engines get the same input and the same thread count; rounds alternate sqzc and
onnxruntime so machine noise hits both alike, and the report gives medians, p90s and
the ratio of medians (sqzc / onnxruntime: below 1 means sqzc is faster). Wall time is
never asserted in tests; this is the only place sqzc measures speed.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sqzc.errors import UsageError
from sqzc.ir import Graph
from sqzc.semantics import macs


def count_macs(graph: Graph) -> int:
    """Multiply-accumulates of one sample: convolutions and matrix products."""
    return sum(macs(graph.op(n).kind, graph.op(n).attrs,
                    [graph.op(i).out for i in graph.op(n).inputs], graph.op(n).out)
               for n in graph.nodes())


@dataclass
class BenchResult:
    """Timings (seconds) of both engines and what the report needs."""

    model: str
    threads: int
    batch: int
    sqzc_times: list[float]
    ort_times: list[float]
    compile_seconds: float
    macs: int

    @property
    def ratio(self) -> float:
        """Median sqzc time / median onnxruntime time."""
        return float(np.median(self.sqzc_times) / np.median(self.ort_times))

    def row(self) -> dict[str, float]:
        """The numbers of one report line."""
        s, o = np.array(self.sqzc_times), np.array(self.ort_times)
        return {
            "sqzc_ms": float(np.median(s) * 1e3), "sqzc_p90_ms": float(np.percentile(s, 90) * 1e3),
            "ort_ms": float(np.median(o) * 1e3), "ort_p90_ms": float(np.percentile(o, 90) * 1e3),
            "ratio": self.ratio,
            "sqzc_gflops": 2 * self.macs * self.batch / float(np.median(s)) / 1e9,
            "ort_gflops": 2 * self.macs * self.batch / float(np.median(o)) / 1e9,
        }


def cpu_name() -> str:
    """The CPU model string (for the report header)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def run_bench(model: str, threads: int = 1, batch: int = 1, rounds: int = 200,
              warmup: int = 20, opt_level: int = 3, target_cpu: str = "host",
              profile: bool = False) -> tuple[BenchResult, list[dict[str, object]] | None]:
    """Compile ``model``, then time both engines alternately ``rounds`` times."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("sqzc bench needs onnxruntime (pip install 'sqzc[test]')") from None
    import sqzc.driver as driver
    from sqzc.runtime import load

    with tempfile.TemporaryDirectory(prefix="sqzc-bench-") as tmp:
        lib = Path(tmp) / "bench.so"
        t0 = time.perf_counter()
        result = driver.compile(model, lib, driver.CompileOptions(
            opt_level=opt_level, target_cpu=target_cpu, profile=profile))
        compile_s = time.perf_counter() - t0
        m = load(lib, threads=threads)
        feeds = {}
        rng = np.random.default_rng(0)
        for spec in m.input_specs:
            shape = [batch if d is None else d for d in spec.shape]
            feeds[spec.name] = (rng.random(shape) * 255).astype(spec.dtype)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(model), so, providers=["CPUExecutionProvider"])
        for _ in range(warmup):
            m.run(feeds)
            sess.run(None, feeds)
        st, ot = [], []
        for _ in range(rounds):
            t = time.perf_counter()
            m.run(feeds)
            st.append(time.perf_counter() - t)
            t = time.perf_counter()
            sess.run(None, feeds)
            ot.append(time.perf_counter() - t)
        layers = m.profile() if profile else None
    bench = BenchResult(str(model), threads, batch, st, ot, compile_s, count_macs(result.graph))
    return bench, layers


def format_report(b: BenchResult, layers: list[dict[str, object]] | None) -> str:
    """The table ``sqzc bench`` prints."""
    r = b.row()
    lines = [
        f"model {Path(b.model).name}, batch {b.batch}, threads {b.threads}, "
        f"{len(b.sqzc_times)} interleaved rounds; {cpu_name()} ({os.cpu_count()} CPUs)",
        f"compile time {b.compile_seconds:.2f} s; {b.macs / 1e6:.0f} M MACs per sample",
        f"{'engine':<12} {'median ms':>10} {'p90 ms':>9} {'GFLOP/s':>9}",
        f"{'sqzc':<12} {r['sqzc_ms']:>10.3f} {r['sqzc_p90_ms']:>9.3f} {r['sqzc_gflops']:>9.1f}",
        f"{'onnxruntime':<12} {r['ort_ms']:>10.3f} {r['ort_p90_ms']:>9.3f} {r['ort_gflops']:>9.1f}",
        f"ratio sqzc/onnxruntime (median): {r['ratio']:.3f}",
    ]
    if layers:
        total = sum(float(x["seconds"]) for x in layers) or 1e-12  # type: ignore[arg-type]
        lines += ["", f"{'layer':<44} {'op':<10} {'us':>9} {'GFLOP/s':>8} {'share':>6}"]
        for x in sorted(layers, key=lambda x: -float(x["seconds"])):  # type: ignore[arg-type]
            sec = float(x["seconds"])  # type: ignore[arg-type]
            gf = 2 * int(x["macs"]) / sec / 1e9 if sec > 0 else 0.0  # type: ignore[call-overload]
            lines.append(f"{str(x['origin'])[:44]:<44} {str(x['op']):<10} {sec * 1e6:>9.1f} "
                         f"{gf:>8.1f} {sec / total:>6.1%}")
    return "\n".join(lines)
