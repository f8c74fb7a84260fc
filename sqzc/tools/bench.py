"""``sqzc bench``: time sqzc against onnxruntime in one process, interleaved.

Both engines get the same input and the same thread count; rounds alternate sqzc and
onnxruntime so machine noise hits both alike, and the report gives medians, p90s and
the ratio of medians (sqzc / onnxruntime: below 1 means sqzc is faster). With several
threads the alternation is in short blocks after a pause (``BLOCK_RUNS``), so no engine
is timed while another one's idle workers still spin. OpenVINO joins
the rotation as a second peer when asked for and installed (``pip install openvino``;
f32 inference precision, latency hint, one stream, the same thread count). Wall time is
never asserted in tests; this is the only place sqzc measures speed.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqzc.errors import UsageError
from sqzc.ir import Graph
from sqzc.ops import macs


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
    peer_times: dict[str, list[float]] = field(default_factory=dict)  # e.g. "openvino"
    peer_problems: dict[str, str] = field(default_factory=dict)  # peers that could not run
    weights_storage: str = "raw"
    weights_stored_bytes: int = 0
    decode_seconds: float = 0.0  # sqz_init at load (compressed weights), once per process

    def peer_ms(self, name: str) -> float:
        """Median time of a peer in milliseconds."""
        return float(np.median(self.peer_times[name]) * 1e3)

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
            # x86: "model name"; Arm64 kernels name no CPU, a board may ("Model")
            if line.startswith(("model name", "Model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


#: With several threads, engines alternate in blocks of this many timed runs, each block
#: after a pause and one untimed run: onnxruntime's pool keeps spinning for ~33 ms after
#: a run (measured here), and a run timed while the other engine's workers still spin
#: measures the contention, not the engine.
BLOCK_RUNS = 10
SETTLE_SECONDS = 0.05


def openvino_runner(model: str, feeds: dict[str, np.ndarray], threads: int
                    ) -> Callable[[], object]:
    """A no-argument callable running ``model`` once on OpenVINO's CPU plugin (f32
    precision, latency hint, one stream, ``threads`` threads); raises if OpenVINO is
    missing or cannot compile the model."""
    import openvino as ov  # type: ignore[import-not-found]

    core = ov.Core()
    compiled = core.compile_model(core.read_model(model), "CPU", {
        "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "NUM_STREAMS": "1", "INFERENCE_NUM_THREADS": str(threads)})
    request = compiled.create_infer_request()
    inputs = {p.get_any_name(): p for p in compiled.inputs}
    feed = {inputs[name]: value for name, value in feeds.items()}
    return lambda: request.infer(feed)


def fixed_batch(graph: Graph) -> int | None:
    """The batch a model with a static batch always runs (the first input's leading
    dimension; 1 for a scalar input); None for a model with a symbolic batch."""
    if graph.dynamic_batch or not graph.inputs:
        return None
    shape = graph.op(graph.inputs[0]).out.shape
    return int(shape[0]) if shape else 1


def resolve_batch(graph: Graph, batch: int | None, label: str) -> int:
    """The batch to run ``graph`` at: ``batch`` (default 1) for a model with a symbolic
    batch; a model with a static batch runs only its own, so any other ``batch`` is a
    ``UsageError`` (silently running another batch would misreport the results)."""
    if batch is not None and (isinstance(batch, bool) or not isinstance(batch, int)
                              or batch < 1):
        raise UsageError(f"--batch must be an integer >= 1, got {batch!r}")
    fixed = fixed_batch(graph)
    if fixed is None:
        return batch or 1
    if batch is not None and batch != fixed:
        first = graph.inputs[0]
        shape = "x".join(str(d) for d in graph.op(first).out.shape)
        raise UsageError(
            f"{label}: the model's batch is fixed at {fixed} (input "
            f"'{graph.input_names[first]}' is {shape}), so --batch {batch} cannot be used; "
            "only models with a symbolic batch dimension accept --batch (`sqzc zoo NAME "
            "--batch dynamic` makes one)")
    return fixed


def check_bench_args(threads: int, rounds: int, warmup: int) -> None:
    """Reject counts that cannot be timed, with a ``UsageError`` naming the option."""
    for option, value, least in (("--threads", threads, 1), ("--rounds", rounds, 1),
                                 ("--warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise UsageError(f"{option} must be an integer >= {least}, got {value!r}")


def time_engines(engines: dict[str, Callable[[], object]], threads: int, rounds: int,
                 warmup: int = 20) -> dict[str, list[float]]:
    """Seconds per run of each engine, ``rounds`` runs each, interleaved after ``warmup``
    untimed rounds. With several threads each engine runs blocks of ``BLOCK_RUNS`` after a
    pause and one untimed run, so the other engine's spinning workers have gone to sleep
    and this one's are awake (``sqzc bench``, bench/compare_revisions.py)."""
    for _ in range(warmup):
        for run in engines.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in engines}
    block = BLOCK_RUNS if threads > 1 else 1
    for _ in range(-(-rounds // block)):
        for name, run in engines.items():
            if block > 1:
                time.sleep(SETTLE_SECONDS)
                run()
            for _ in range(block):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
    return times


def run_bench(model: str, threads: int = 1, batch: int | None = None, rounds: int = 200,
              warmup: int = 20, opt_level: int = 3, target_cpu: str = "host",
              profile: bool = False, winograd: bool = True, openvino: bool = False,
              fuse_int8_qdq: bool = True, weights: str = "auto", compare_raw: bool = False,
              optimize: str = "speed") -> tuple[BenchResult, list[dict[str, object]] | None]:
    """Compile ``model``, then time the engines in turn ``rounds`` times.

    ``batch`` (default 1) applies to models with a symbolic batch; a model with a static
    batch runs its own, and any other ``batch`` is a ``UsageError``. ``compare_raw``:
    when the library stores its weights compressed, a raw-weights build of the model is
    timed too (peer ``sqzc raw weights``): issue 21 wants the two within 3%.
    """
    check_bench_args(threads, rounds, warmup)
    try:
        import onnxruntime as ort
    except ImportError:
        raise UsageError("sqzc bench needs onnxruntime (pip install 'sqzc[test]')") from None
    import sqzc.driver as driver
    from sqzc.runtime import load

    with tempfile.TemporaryDirectory(prefix="sqzc-bench-") as tmp:
        lib = Path(tmp) / "bench.so"
        t0 = time.perf_counter()
        options = driver.CompileOptions(opt_level=opt_level, target_cpu=target_cpu,
                                        profile=profile, winograd=winograd,
                                        fuse_int8_qdq=fuse_int8_qdq, weights=weights,
                                        optimize=optimize)
        options.check()
        graph = driver.load_graph(model, options)
        batch = resolve_batch(graph, batch, str(model))  # before the slow part
        plan, _ = driver.optimize(graph, options)
        result = driver.build_library(graph, plan, lib, options)
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
        engines: dict[str, Callable[[], object]] = {
            "sqzc": lambda: m.run(feeds), "onnxruntime": lambda: sess.run(None, feeds)}
        problems: dict[str, str] = {}
        storage = str(result.metadata.get("weights_storage", "raw"))
        if compare_raw and storage == "compressed":
            raw_lib = Path(tmp) / "bench-raw.so"
            driver.build_library(graph, plan, raw_lib, dataclasses.replace(options, weights="raw"))
            raw_model = load(raw_lib, threads=threads)
            engines["sqzc raw weights"] = lambda: raw_model.run(feeds)
        if openvino:
            try:
                engines["openvino"] = openvino_runner(str(model), feeds, threads)
            except Exception as e:  # noqa: BLE001 - any failure means "cannot run it"
                problems["openvino"] = f"{type(e).__name__}: {str(e).splitlines()[0][:120]}"
        times = time_engines(engines, threads, rounds, warmup)
        layers = m.profile() if profile else None
        if layers and result.graph.dynamic_batch:  # times cover every sample of the call
            layers = [dict(x, macs=int(x["macs"]) * batch) for x in layers]  # type: ignore[call-overload]
    peers = {k: v for k, v in times.items() if k not in ("sqzc", "onnxruntime")}
    # a static-batch graph's MACs cover its whole batch; the report counts per sample
    per_sample = count_macs(result.graph) // (fixed_batch(result.graph) or 1)
    bench = BenchResult(str(model), threads, batch, times["sqzc"], times["onnxruntime"],
                        compile_s, per_sample, peers, problems, storage,
                        int(result.metadata.get("weights_stored_bytes", 0)), m.decode_seconds)
    return bench, layers


def format_report(b: BenchResult, layers: list[dict[str, object]] | None) -> str:
    """The table ``sqzc bench`` prints."""
    r = b.row()
    w = max([12, *(len(name) for name in [*b.peer_times, *b.peer_problems])])
    lines = [
        f"model {Path(b.model).name}, batch {b.batch}, threads {b.threads}, "
        f"{len(b.sqzc_times)} interleaved rounds; {cpu_name()} ({os.cpu_count()} CPUs)",
        f"compile time {b.compile_seconds:.2f} s; {b.macs / 1e6:.0f} M MACs per sample",
        f"weights {b.weights_storage}, {b.weights_stored_bytes:,} bytes stored"
        + (f"; decoded at load in {b.decode_seconds * 1e3:.1f} ms (once per process)"
           if b.weights_storage == "compressed" else ""),
        f"{'engine':<{w}} {'median ms':>10} {'p90 ms':>9} {'GFLOP/s':>9}",
        f"{'sqzc':<{w}} {r['sqzc_ms']:>10.3f} {r['sqzc_p90_ms']:>9.3f} {r['sqzc_gflops']:>9.1f}",
        f"{'onnxruntime':<{w}} {r['ort_ms']:>10.3f} {r['ort_p90_ms']:>9.3f} {r['ort_gflops']:>9.1f}",
    ]
    for name, ts in b.peer_times.items():
        med, p90 = float(np.median(ts)), float(np.percentile(ts, 90))
        gf = 2 * b.macs * b.batch / med / 1e9
        lines.append(f"{name:<{w}} {med * 1e3:>10.3f} {p90 * 1e3:>9.3f} {gf:>9.1f}")
    for name, why in b.peer_problems.items():
        lines.append(f"{name:<{w}} cannot run this model ({why})")
    lines.append(f"ratio sqzc/onnxruntime (median): {r['ratio']:.3f}")
    for name in b.peer_times:
        lines.append(f"ratio sqzc/{name} (median): "
                     f"{r['sqzc_ms'] / b.peer_ms(name):.3f}")
    if layers:
        lines += ["", *format_layers(layers)]
    return "\n".join(lines)


def format_layers(layers: list[dict[str, object]]) -> list[str]:
    """The ``--profile`` table, slowest kernel first: the fixed-width columns first (the
    op column as wide as its longest entry) and the full, uncut layer name last."""
    total = sum(float(x["seconds"]) for x in layers) or 1e-12  # type: ignore[arg-type]
    op_w = max(len("op"), *(len(str(x["op"])) for x in layers))
    out = [f"{'op':<{op_w}} {'us':>9} {'GFLOP/s':>8} {'share':>6}  layer"]
    for x in sorted(layers, key=lambda x: -float(x["seconds"])):  # type: ignore[arg-type]
        sec = float(x["seconds"])  # type: ignore[arg-type]
        gf = 2 * int(x["macs"]) / sec / 1e9 if sec > 0 else 0.0  # type: ignore[call-overload]
        out.append(f"{str(x['op']):<{op_w}} {sec * 1e6:>9.1f} {gf:>8.1f} {sec / total:>6.1%}"
                   f"  {x['origin']}")
    return out
