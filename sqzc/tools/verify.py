"""``sqzc verify``: run sqzc and onnxruntime on the same input and say where they differ.

Whole-model mode compares every output (max abs / rel error, top-1, PASS/FAIL).
Per-layer mode compiles a debug build whose every surviving kernel also copies its result
out (converted back to plain NCHW), asks onnxruntime for the same ONNX tensors as extra
graph outputs, and walks the kernels in topological order: the first one whose error
exceeds the tolerance is reported with its origin ONNX nodes, shapes and the error of its
inputs, which locates a wrong kernel without a debugger. Float tensors are compared with
``max|a-b| <= rtol * max|ref| + atol``; 8-bit tensors in integers (exact unless
``--int-tolerance``).
"""

from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sqzc.errors import UsageError
from sqzc.ir import Graph, GraphOutput
from sqzc.memory import assign_arena, naive_arena
from sqzc.ops import NoAttrs, OpKind, op_name

DEBUG_PREFIX = "sqzc_debug:"


@dataclass
class TensorDiff:
    """How one tensor compares."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    max_abs: float
    max_rel: float
    mismatches: int
    ok: bool
    top1_agree: bool | None = None


@dataclass
class LayerDiff:
    """One kernel of the debug build: its tensor, origin and inputs' errors."""

    node: str
    op: str
    origin: str
    diff: TensorDiff
    inputs: list[TensorDiff] = field(default_factory=list)


@dataclass
class VerifyReport:
    """Everything ``sqzc verify`` prints."""

    outputs: list[TensorDiff]
    layers: list[LayerDiff] | None = None
    #: the onnxruntime configuration compared with (it decides which QDQ groups it fuses)
    reference: str = ""

    @property
    def ok(self) -> bool:
        """True when every output is within tolerance."""
        return all(d.ok for d in self.outputs)

    @property
    def first_bad_layer(self) -> LayerDiff | None:
        """The first kernel (topological order) whose result is out of tolerance."""
        for layer in self.layers or []:
            if not layer.diff.ok:
                return layer
        return None


def compare(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float,
            int_tolerance: int = 0) -> TensorDiff:
    """Compare one tensor (floats with rtol/atol on max|ref|, integers exactly)."""
    if got.shape != want.shape:
        return TensorDiff(name, tuple(got.shape), str(got.dtype), float("inf"), float("inf"),
                          int(max(got.size, want.size)), False)
    g64, w64 = got.astype(np.float64), want.astype(np.float64)
    both_nan = np.isnan(g64) & np.isnan(w64)
    diff = np.where(both_nan, 0.0, np.abs(g64 - w64))
    diff = np.nan_to_num(diff, nan=np.inf)
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.nanmax(np.abs(w64))) if w64.size and np.isfinite(w64).any() else 0.0
    max_rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else float("inf"))
    if np.issubdtype(want.dtype, np.integer):
        mism = int((diff > int_tolerance).sum())
        ok = mism == 0
    else:
        mism = int((diff > rtol * scale + atol).sum())
        ok = max_abs <= rtol * scale + atol
    top1 = None
    if got.ndim >= 2 and got.shape[0] >= 1 and got[0].size > 1:
        top1 = bool((got.reshape(got.shape[0], -1).argmax(1) ==
                     want.reshape(want.shape[0], -1).argmax(1)).all())
    return TensorDiff(name, tuple(got.shape), str(got.dtype), max_abs, max_rel, mism, ok, top1)


def make_inputs(specs: list, input_path: str | None, seed: int, batch: int,
                low: float, high: float) -> dict[str, np.ndarray]:
    """The feed: a .npy (single input) / .npz file, or seeded uniform random values."""
    if input_path:
        data = np.load(input_path, allow_pickle=False)
        if isinstance(data, np.ndarray):
            if len(specs) != 1:
                raise UsageError("a .npy input needs a single-input model; use .npz")
            return {specs[0].name: data}
        return {k: data[k] for k in data.files}
    rng = np.random.default_rng(seed)
    return {s.name: rng.uniform(low, high, [batch if d is None else d for d in s.shape])
            .astype(s.dtype) for s in specs}


def add_debug_outputs(graph: Graph, opt_level: int) -> list[tuple[str, str]]:
    """Copy every kernel's result out as an extra graph output (plain layout); returns
    (node, ONNX tensor) pairs in topological order. Re-plans memory afterwards."""
    pairs = []
    for nid in list(graph.nodes()):
        op = graph.op(nid)
        if op.kind in (OpKind.CONST, OpKind.INPUT) or nid not in graph.tensor_names:
            continue
        src = nid
        if op.block:
            src = graph.add_op(OpKind.REORDER, NoAttrs(), [nid], f"{nid}_dbg_plain", op.origin)
        copy = graph.add_op(OpKind.IDENTITY, NoAttrs(), [src], f"{nid}_dbg", op.origin)
        graph.outputs.append(GraphOutput(DEBUG_PREFIX + graph.tensor_names[nid], copy))
        pairs.append((nid, graph.tensor_names[nid]))
    graph.memory_plan = assign_arena(graph) if opt_level > 0 else naive_arena(graph)
    return pairs


def inject_fault(graph: Graph, origin_substring: str) -> str:
    """Test hook: perturb the bias of the first conv whose origin contains the string.

    Returns the node id. Exists only so tests can check that ``--per-layer`` names the
    faulty layer; not reachable from the CLI.
    """
    for nid in graph.nodes():
        op = graph.op(nid)
        if op.kind in (OpKind.CONV, OpKind.QCONV) and origin_substring in op.origin_str \
                and len(op.inputs) > 2 and graph.is_const(op.inputs[2]):
            bias = graph.const_value(op.inputs[2])
            delta = np.ones_like(bias) * (7 if bias.dtype.kind == "i" else 0.5)
            new_b = graph.add_const(bias + delta, op.inputs[2] + "_fault", op.origin)
            graph.set_op(nid, dataclasses.replace(op, inputs=op.inputs[:2] + (new_b,)))
            return nid
    raise UsageError(f"no conv with a constant bias matches '{origin_substring}'")


#: Relative tolerance for a float16 output: float16's spacing is 2^-11 relative (4.9e-4),
#: so one rounding step apart is within 1e-3, a float32 tolerance of 1e-4 is not.
FLOAT16_RTOL = 1e-3
#: Per-layer tolerance for a tensor onnxruntime holds in float16 (see verify_model).
FLOAT16_LAYER_RTOL = 4e-3


def _ort_session(model: Path, extra: list[str] | None,  # type: ignore[no-untyped-def]
                 int8_allowed: bool = False):
    try:
        import onnx
        import onnxruntime as ort
    except ImportError:
        raise UsageError("sqzc verify needs onnxruntime (pip install 'sqzc[test]')") from None
    data = model.read_bytes()
    if extra:
        m = onnx.load_model_from_string(data)
        known = {o.name for o in m.graph.output}
        for name in extra:
            if name not in known:
                m.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
        data = m.SerializeToString()
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if int8_allowed:  # the reference for fused int8 QDQ groups (sqzc's default)
        so.add_session_config_entry("session.qdqisint8allowed", "1")
    return ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])


def _reference_name(int8_allowed: bool) -> str:
    """How ``sqzc verify`` names the onnxruntime it compares with."""
    import onnxruntime as ort

    config = ("session.qdqisint8allowed=1, as sqzc fuses int8 QDQ groups" if int8_allowed
              else "default session options (--no-fuse-int8-qdq)")
    return f"onnxruntime {ort.__version__}, CPU, {config}"


def verify_model(model: str | Path, input_path: str | None = None, seed: int = 0,
                 batch: int | None = None, rtol: float = 1e-4, atol: float = 1e-6,
                 opt_level: int = 3, per_layer: bool = False, target_cpu: str = "host",
                 low: float = 0.0, high: float = 255.0, int_tolerance: int = 0,
                 fault: str | None = None, winograd: bool = True,
                 fuse_int8_qdq: bool = True, optimize: str = "speed",
                 target: str = "host") -> VerifyReport:
    """Compile ``model`` (optionally a per-layer debug build), run both engines, compare.
    With ``fuse_int8_qdq`` (the default) onnxruntime runs with
    ``session.qdqisint8allowed=1``, the configuration whose results sqzc then reproduces;
    without it (``--no-fuse-int8-qdq``), with its default x86-64 session options.
    ``batch`` (default 1) is the random input's batch for a model with a symbolic batch;
    a static-batch model takes only its own (``bench.resolve_batch``). With ``target``
    another architecture's triple (``--target aarch64-linux-gnu``), the library is
    cross-built and run under qemu-user (``sqzc.tools.emulate``); onnxruntime runs here."""
    import sqzc.driver as driver
    from sqzc.tools.bench import resolve_batch
    from sqzc.runtime import load
    from sqzc.runtime.library import is_foreign

    model = Path(model)
    options = driver.CompileOptions(opt_level=opt_level, target_cpu=target_cpu,
                                    winograd=winograd, fuse_int8_qdq=fuse_int8_qdq,
                                    optimize=optimize, target=target)
    graph = driver.load_graph(model, options)
    batch = resolve_batch(graph, batch, str(model))
    plan, _ = driver.optimize(graph, options)
    if fault is not None:
        inject_fault(graph, fault)
    pairs = add_debug_outputs(graph, opt_level) if per_layer else []
    plan = graph.memory_plan if per_layer else plan
    with tempfile.TemporaryDirectory(prefix="sqzc-verify-") as tmp:
        lib = Path(tmp) / "verify.so"
        driver.build_library(graph, plan, lib, options)
        if is_foreign(str(lib)):
            from sqzc.tools.emulate import EmulatedModel

            m: Any = EmulatedModel(lib)
        else:
            m = load(lib)
        feeds = make_inputs(m.input_specs, input_path, seed, batch, low, high)
        got = m.run(feeds)
    # The verdict on the model's outputs always comes from onnxruntime running the model
    # as given: asking it for every intermediate as well changes its graph optimizations
    # (fusions stop at tensors that became outputs), and with them its float16 results.
    sess = _ort_session(model, None, fuse_int8_qdq)
    want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
    outputs = []
    for o in graph.outputs:
        if not o.name.startswith(DEBUG_PREFIX):
            ref = np.asarray(want[o.name])
            out_rtol = max(rtol, FLOAT16_RTOL) if ref.dtype == np.float16 else rtol
            outputs.append(compare(o.name, got[o.name], ref, out_rtol, atol, int_tolerance))
    report = VerifyReport(outputs, reference=_reference_name(fuse_int8_qdq))
    if per_layer:
        sess = _ort_session(model, [t for _, t in pairs], fuse_int8_qdq)
        want = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))
        diffs: dict[str, TensorDiff] = {}
        layers = []
        for nid, tensor in pairs:
            if tensor not in want:
                continue
            ref = np.asarray(want[tensor])
            # sqzc keeps float16 models' intermediates in float32; onnxruntime's are
            # float16, rounded at every layer: the gap grows with depth (measured on the
            # bundled float16 SqueezeNet: up to 1.2e-3 x max|ref|; 4e-3 allows 8 ulp)
            layer_rtol = max(rtol, FLOAT16_LAYER_RTOL) if ref.dtype == np.float16 else rtol
            d = compare(tensor, got[DEBUG_PREFIX + tensor], ref, layer_rtol, atol,
                        int_tolerance)
            diffs[nid] = d
            op = graph.op(nid)
            layers.append(LayerDiff(nid, op_name(op), op.origin_str, d,
                                    [diffs[i] for i in op.inputs if i in diffs]))
        report.layers = layers
    return report


def format_report(report: VerifyReport, rtol: float, atol: float) -> str:
    """The text ``sqzc verify`` prints."""
    f16 = max(rtol, FLOAT16_RTOL)
    lines = [f"reference: {report.reference}"] if report.reference else []
    lines.append(f"tolerance: float |sqzc - onnxruntime| <= {rtol:g} * max|ref| + {atol:g} "
                 f"({f16:g} * max|ref| for float16); integers exact")
    for d in report.outputs:
        top1 = "" if d.top1_agree is None else f"  top-1 {'agrees' if d.top1_agree else 'DIFFERS'}"
        lines.append(f"output {d.name}: {d.dtype}{list(d.shape)}  max abs {d.max_abs:.3g}  "
                     f"max rel {d.max_rel:.3g}{top1}  {'PASS' if d.ok else 'FAIL'}")
    if report.layers is not None:
        bad = report.first_bad_layer
        lines.append(f"per-layer: {len(report.layers)} tensors compared")
        if bad is None:
            lines.append("per-layer: every layer within tolerance")
        else:
            lines.append(f"first divergence: kernel %{bad.node} ({bad.op}) from ONNX node(s) "
                         f"{bad.origin}")
            lines.append(f"  tensor {bad.diff.name}: {bad.diff.dtype}{list(bad.diff.shape)}  "
                         f"max abs {bad.diff.max_abs:.3g}  max rel {bad.diff.max_rel:.3g}  "
                         f"{bad.diff.mismatches} elements out of tolerance")
            for i in bad.inputs:
                lines.append(f"  input {i.name}: max abs {i.max_abs:.3g} "
                             f"({'ok' if i.ok else 'out of tolerance'})")
    lines.append("PASS" if report.ok else "FAIL")
    return "\n".join(lines)
