"""The compiler driver: import -> passes -> plan -> LLVM -> object -> shared library.

This module wires the stages together and owns the options (``CompileOptions`` maps 1:1
onto the CLI flags) and the library metadata. Frontends, passes and backends never call
each other directly.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sqzc import __version__
from sqzc.errors import UsageError
from sqzc.ir import Graph
from sqzc.ir_verifier import verify
from sqzc.memory import MemoryPlan, naive_arena, schedule
from sqzc.passes.manager import Instrumentation, PassContext, PassRecord, run_pipeline

EMIT_KINDS = ("so", "obj", "llvm", "asm", "header")
#: ``--weights`` values (``CompileOptions.weights``).
WEIGHT_MODES = ("raw", "compressed", "auto")
#: ``--optimize`` goals (``CompileOptions.optimize``).
OPTIMIZE_GOALS = ("speed", "size")
#: The largest workspace (arena) a compiled model may need (README "Safety and limits").
MAX_WORKSPACE_BYTES = 1 << 32
ABI_VERSION = 2


@dataclass
class CompileOptions:
    """Everything that changes what the compiler produces or reports."""

    opt_level: int = 3
    target_cpu: str = "host"
    #: the triple to build for: ``host`` (this machine) or another architecture's, such
    #: as ``aarch64-linux-gnu`` (a cross build: ``--target-cpu`` must then name a CPU)
    target: str = "host"
    input_shapes: Mapping[str, Sequence[int]] = field(default_factory=dict)
    emit: str = "so"
    instrumentation: Instrumentation = field(default_factory=Instrumentation)
    verify_ir: bool = False
    profile: bool = False  # time every kernel into the workspace (sqzc bench --profile)
    winograd: bool = True  # let select-winograd rewrite 3x3 convs (--no-winograd: False)
    #: fuse every int8-activation QDQ conv / matmul into integer ops, as onnxruntime does
    #: with session.qdqisint8allowed=1 (its default on Arm); --no-fuse-int8-qdq fuses only
    #: what onnxruntime's default x86-64 session fuses and runs the others its float way
    fuse_int8_qdq: bool = True
    #: how the library stores its weights: ``raw`` (the kernels' layout in .rodata) or
    #: ``compressed`` (each tensor's source, losslessly coded, decoded once per process
    #: by sqz_init into the same image; issue 21); ``auto`` chooses (``compression_pays``).
    weights: str = "auto"
    #: ``size`` (``--optimize size``, for flash-limited devices): no Winograd, one shared
    #: run-time-geometry kernel for the float convs (select-compact-conv), LLVM's
    #: ``optsize``, no symbol table; ``speed`` (the default) specializes every layer
    optimize: str = "speed"

    def check(self) -> None:
        """Reject invalid values early, with a usage error naming the option: API callers
        can set any field to anything, and a wrong type (a float dimension, a string for a
        flag) would otherwise crash deep in a pass or be silently truncated or coerced."""
        if not _is_int(self.opt_level) or self.opt_level not in (0, 1, 2, 3):
            raise UsageError(f"optimization level must be 0..3, got {self.opt_level!r}")
        if not isinstance(self.emit, str) or self.emit not in EMIT_KINDS:
            raise UsageError(f"--emit must be one of {', '.join(EMIT_KINDS)}, "
                             f"got {self.emit!r}")
        for name in ("target_cpu", "target"):
            if not isinstance(getattr(self, name), str):
                raise UsageError(f"{name} must be a string, got "
                                 f"{type(getattr(self, name)).__name__}")
        if not isinstance(self.input_shapes, Mapping):
            raise UsageError(f"input_shapes must be a mapping of input name to shape, got "
                             f"{type(self.input_shapes).__name__}")
        for name, shape in self.input_shapes.items():
            if not isinstance(name, str):
                raise UsageError(f"input_shapes: input names must be strings, got {name!r}")
            if isinstance(shape, (str, bytes)) or \
                    not isinstance(shape, (Sequence, np.ndarray)) or \
                    not all(_is_int(d) for d in shape):
                raise UsageError(f"input_shapes: the shape of '{name}' must be a sequence "
                                 f"of integers, got {shape!r}")
        if not isinstance(self.instrumentation, Instrumentation):
            raise UsageError(f"instrumentation must be a sqzc.passes.manager.Instrumentation, "
                             f"got {type(self.instrumentation).__name__}")
        if self.optimize not in OPTIMIZE_GOALS:
            raise UsageError(f"--optimize must be one of {', '.join(OPTIMIZE_GOALS)}, "
                             f"got {self.optimize!r}")
        if self.weights not in WEIGHT_MODES:
            raise UsageError(f"--weights must be one of {', '.join(WEIGHT_MODES)}, "
                             f"got {self.weights!r}")
        for flag in ("verify_ir", "profile", "winograd", "fuse_int8_qdq"):
            if not isinstance(getattr(self, flag), bool):
                raise UsageError(f"{flag} must be True or False, got "
                                 f"{getattr(self, flag)!r}")


#: Code a library with compressed weights has on top of a raw one: sqz_init with the
#: container decoder and the layout steps (pack, Winograd). Measured on x86-64: 9.1 KB.
DECODER_CODE_BYTES = 10 * 1024
#: What compressing must save net of that code, in bytes and as a share of the raw weights,
#: for ``--weights auto`` to choose it: the decoded image is private memory of each
#: process (raw weights are shared file pages) and costs decode time at load.
AUTO_MIN_SAVING_BYTES = 4096
AUTO_MIN_SAVING_SHARE = 0.05


def compression_may_pay(raw_bytes: int) -> bool:
    """Whether ``--weights auto`` should try the container (encoding costs compile time)."""
    return raw_bytes > DECODER_CODE_BYTES + AUTO_MIN_SAVING_BYTES


def compression_pays(raw_bytes: int, stored_bytes: int) -> bool:
    """``--weights auto``'s rule: compressed when the stored container plus the decoder's
    code is smaller than the raw weights by at least 4 KB and 5%."""
    saving = raw_bytes - stored_bytes - DECODER_CODE_BYTES
    return saving >= max(AUTO_MIN_SAVING_BYTES, AUTO_MIN_SAVING_SHARE * raw_bytes)


def _is_int(value: object) -> bool:
    """An integer that is not a bool (``True`` would pass for opt level 1 or a dim of 1)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_path(value: object, name: str, what: str) -> None:
    """Raise a ``UsageError`` naming the argument ``name`` unless ``value`` is a path.

    Only ``str`` and ``os.PathLike`` of ``str`` are paths here: ``None``, numbers, an
    ``onnx.ModelProto`` or ``bytes`` (serialized model bytes look like a path to
    ``os.fspath``) used to escape as a ``TypeError`` from pathlib, breaking the rule that
    every error is a ``SqzcError`` naming the thing at fault.
    """
    try:
        text = os.fspath(value) if isinstance(value, os.PathLike) else value
    except TypeError:  # an __fspath__ returning neither str nor bytes
        text = None
    if isinstance(text, str):
        if not text:
            raise UsageError(f"sqzc.compile: {name} is an empty path; pass the path of {what}")
        if "\0" in text:
            raise UsageError(f"sqzc.compile: {name} {text!r} contains a NUL character")
        return
    hint = ""
    if type(value).__name__ == "ModelProto":
        hint = " (save the ModelProto with onnx.save(model, path) and pass the path)"
    elif isinstance(value, (bytes, bytearray)):
        hint = " (to compile serialized model bytes, write them to a file first)"
    raise UsageError(f"sqzc.compile: {name} must be the path of {what} (str or os.PathLike), "
                     f"got {type(value).__name__}{hint}")


@dataclass
class CompileResult:
    """What a compilation produced, for ``--stats`` and tests."""

    graph: Graph
    plan: MemoryPlan
    metadata: dict[str, object]
    output: Path | None
    passes: list[PassRecord]
    seconds: dict[str, float]

    @property
    def stats(self) -> dict[str, object]:
        """Sizes and timings as reported by ``sqzc compile --stats``."""
        return {
            "workspace_bytes": self.plan.arena_bytes,
            "arena_lower_bound": self.plan.lower_bound,
            "weights_bytes": self.metadata["weights_bytes"],
            "nodes": sum(1 for n in self.graph.nodes()
                         if self.graph.op(n).kind.value not in ("const", "input")),
            "seconds": self.seconds,
        }


def pass_context(options: CompileOptions) -> PassContext:
    """What the passes read besides the graph: the target's layout facts (channel block,
    VNNI) and the options ``--no-winograd``, ``--no-fuse-int8-qdq`` and ``--optimize``."""
    from sqzc.backends.llvm.target import resolve_target

    target = resolve_target(options.target_cpu, options.target)
    return PassContext(target_block=target.channel_block, target_vnni=target.vnni_blocks,
                       target_sdot=target.sdot_blocks,
                       allow_winograd=options.winograd, fuse_int8_qdq=options.fuse_int8_qdq,
                       optimize_size=options.optimize == "size")


def optimize(graph: Graph, options: CompileOptions) -> tuple[MemoryPlan, list[PassRecord]]:
    """Run the pass pipeline for ``options.opt_level`` (in the ``pass_context`` of
    ``options``) and return the memory plan."""
    from sqzc.passes.pipeline import PIPELINE

    ctx = pass_context(options)
    inst = options.instrumentation
    if options.verify_ir:
        inst.verify_each = True
        verify(graph)
    records = run_pipeline(graph, PIPELINE, options.opt_level, inst, ctx)
    plan = graph.memory_plan if graph.memory_plan is not None else naive_arena(graph)
    graph.memory_plan = plan
    if plan.arena_bytes > MAX_WORKSPACE_BYTES:
        from sqzc.errors import ModelError

        raise ModelError(f"the model needs a {plan.arena_bytes}-byte workspace, above the "
                         f"limit of {MAX_WORKSPACE_BYTES} bytes")
    return plan, records


def load_graph(model: str | os.PathLike[str], options: CompileOptions) -> Graph:
    """Import an ONNX file with the user's input shapes. The target is resolved first, so
    an unknown ``--target`` or ``--target-cpu`` is reported before the model is read."""
    from sqzc.backends.llvm.target import resolve_target
    from sqzc.frontends.onnx.importer import ImportOptions, import_model

    resolve_target(options.target_cpu, options.target)
    return import_model(model, ImportOptions(dict(options.input_shapes)))


def _spec(graph: Graph, nid: str, name: str) -> dict[str, object]:
    t = graph.op(nid).out
    shape: list[int | None] = list(t.shape)
    if graph.dynamic_batch:
        shape[0] = None
    return {"name": name, "dtype": graph.nibbles.get(name, t.dtype), "shape": shape}


def workspace_bytes(plan: MemoryPlan, graph: Graph, profile: bool) -> int:
    """Bytes a call needs: arena, thread barrier and profile counters (backends.llvm.abi)."""
    from sqzc.backends.llvm.abi import workspace_bytes as ws

    return ws(plan, len(schedule(graph)), profile)


def profile_table(graph: Graph) -> list[dict[str, object]]:
    """One entry per kernel in schedule order: what ``CompiledModel.profile`` reports."""
    from sqzc.ops import macs, op_name

    rows = []
    for nid in schedule(graph):
        op = graph.op(nid)
        rows.append({"node": nid, "origin": op.origin_str, "op": op_name(op),
                     "macs": macs(op.kind, op.attrs, [graph.op(i).out for i in op.inputs],
                                  op.out)})
    return rows


def build_metadata(graph: Graph, plan: MemoryPlan, model_sha256: str, weights_bytes: int,
                   target: object, opt_level: int, profile: bool = False) -> dict[str, object]:
    """The JSON metadata embedded in the library (docs/ABI.md)."""
    meta: dict[str, object] = {
        "abi_version": ABI_VERSION,
        "compiler": f"sqzc {__version__}",
        "model_sha256": model_sha256,
        "model_name": graph.name,
        "dynamic_batch": graph.dynamic_batch,
        "inputs": [_spec(graph, n, graph.input_names[n]) for n in graph.inputs],
        "outputs": [_spec(graph, o.node, o.name) for o in graph.outputs],
        "workspace_bytes": workspace_bytes(plan, graph, profile),
        "arena_bytes": plan.arena_bytes,
        "arena_lower_bound": plan.lower_bound,
        "weights_bytes": weights_bytes,
        "target": target.to_json(),  # type: ignore[attr-defined]
        "opt_level": opt_level,
    }
    if profile:
        from sqzc.backends.llvm.abi import profile_offset

        meta["profile"] = {"offset": profile_offset(plan, len(schedule(graph))),
                           "kernels": profile_table(graph)}
    return meta


def compile(model: str | os.PathLike[str], output: str | os.PathLike[str] | None,
            options: CompileOptions | None = None) -> CompileResult:
    """Compile the ONNX file ``model`` to ``output`` (a .so unless ``options.emit`` says
    otherwise). With ``output=None`` nothing is written (useful for ``--stats``).

    Raises:
        UsageError: ``model`` or ``output`` is not a path (str or os.PathLike), or
            ``options`` is neither ``None`` nor a valid ``CompileOptions``.
        ModelError, UnsupportedError, ToolchainError: see ``sqzc.errors``.
    """
    _check_path(model, "model", "an ONNX file")
    if output is not None:
        _check_path(output, "output", "the file to write")
    if options is None:
        options = CompileOptions()
    elif not isinstance(options, CompileOptions):
        raise UsageError(f"sqzc.compile: options must be a sqzc.CompileOptions or None, got "
                         f"{type(options).__name__}")
    options.check()
    t0 = time.perf_counter()
    if output is not None and options.emit == "so":
        from sqzc.backends.llvm.link import find_linker
        from sqzc.backends.llvm.target import resolve_target

        find_linker(resolve_target(options.target_cpu, options.target))
    model_bytes = Path(model).read_bytes() if Path(model).is_file() else b""
    graph = load_graph(model, options)
    seconds = {"import": time.perf_counter() - t0}
    t1 = time.perf_counter()
    plan, records = optimize(graph, options)
    if options.verify_ir:
        verify(graph)
    seconds["passes"] = time.perf_counter() - t1
    result = build_library(graph, plan, output, options,
                           hashlib.sha256(model_bytes).hexdigest(), seconds)
    result.passes = records
    seconds["total"] = time.perf_counter() - t0
    return result


def build_library(graph: Graph, plan: MemoryPlan, output: str | os.PathLike[str] | None,
                  options: CompileOptions, model_sha256: str = "",
                  seconds: dict[str, float] | None = None) -> CompileResult:
    """Lower an optimized, planned graph and write what ``options.emit`` asks for."""
    from sqzc.backends.llvm.link import (
        emit_assembly,
        emit_object,
        link_shared,
        parse_and_optimize,
        write_atomically,
    )
    from sqzc.backends.llvm.module import lower, pack_weights
    from sqzc.backends.llvm.target import resolve_target

    seconds = seconds if seconds is not None else {}
    target = resolve_target(options.target_cpu, options.target)
    weights, const_offsets = pack_weights(graph)
    wplan = None
    if options.weights == "compressed" or \
            options.weights == "auto" and compression_may_pay(len(weights)):
        from sqzc.backends.llvm.weights_init import plan_compressed

        wplan = plan_compressed(graph, const_offsets)
        if options.weights == "auto" and not compression_pays(len(weights), wplan.stored_bytes):
            wplan = None
    meta = build_metadata(graph, plan, model_sha256, len(weights), target, options.opt_level,
                          options.profile)
    meta["optimize"] = options.optimize
    meta["weights_storage"] = "compressed" if wplan is not None else "raw"
    meta["weights_stored_bytes"] = wplan.stored_bytes if wplan is not None else len(weights)
    result = CompileResult(graph, plan, meta, Path(output) if output else None, [], seconds)
    if output is None:
        return result
    out = Path(output)
    if options.emit == "header":
        from sqzc.backends.llvm.header import render_header

        write_atomically(out, render_header(meta))
        return result
    t2 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sqzc-") as tmp:
        wpath = Path(tmp) / "weights.bin"
        meta_json = json.dumps(meta, sort_keys=True)
        # a cross build's assembly (the weights' .incbin) cannot go through llvmlite, which
        # parses only the native architecture's: the linker assembles it (--emit so), or
        # the weights become an IR constant (--emit obj / asm, self-contained)
        cross = not target.is_native
        lowered = lower(graph, plan, target, meta_json, str(wpath), options.profile,
                        inline_weights=options.emit == "llvm" or (cross and options.emit != "so"),
                        compressed=wplan, optimize_size=options.optimize == "size",
                        separate_weights_asm=cross and options.emit == "so")
        wpath.write_bytes(lowered.weights)
        if options.emit == "llvm":
            write_atomically(out, lowered.ir_text)
            return result
        mod = parse_and_optimize(lowered.ir_text, target, options.opt_level)
        seconds["llvm"] = time.perf_counter() - t2
        if options.emit == "asm":
            write_atomically(out, emit_assembly(mod, target, options.opt_level))
            return result
        obj = emit_object(mod, target, options.opt_level)
        seconds["codegen"] = time.perf_counter() - t2
        if options.emit == "obj":
            write_atomically(out, obj)
            return result
        t3 = time.perf_counter()
        extra = []
        if lowered.weights_asm:
            extra.append(Path(tmp) / "weights.s")
            extra[0].write_text(lowered.weights_asm)
        link_shared(obj, out, Path(tmp), target, strip=options.optimize == "size",
                    extra_inputs=extra)
        seconds["link"] = time.perf_counter() - t3
    return result


def numpy_dtype(name: str) -> np.dtype:
    """numpy dtype from an IR/metadata dtype name."""
    return np.dtype(name)
