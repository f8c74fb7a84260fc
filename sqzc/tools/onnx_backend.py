"""An ``onnx.backend.base.Backend`` that runs ONNX models through sqzc.

This adapter lets ONNX's conformance machinery (``onnx.backend.test.BackendTest``, the
node tests in particular) drive sqzc the way it drives any other runtime::

    from sqzc.tools.onnx_backend import SqzcBackend
    rep = SqzcBackend.prepare(model)          # save -> sqzc.compile -> sqzc.load
    outputs = rep.run([x, w])                 # positional, in graph-input order

``prepare`` saves the model into a per-process temporary folder, compiles it with
:func:`sqzc.compile` into a shared library there and loads it with :func:`sqzc.load`.
Libraries are cached by the SHA-256 of the serialized model (plus the compile options)
for the lifetime of the process, so preparing the same model again (same bytes, same
options) reuses its library; the folder is removed when the interpreter exits.

Nothing here hides a sqzc failure: an unsupported op or dtype raises the
``sqzc.SqzcError`` the compiler raised (with a note naming the model), so a test harness
reports it as a failure or error rather than a silent skip. Inputs are passed to the
library unchanged -- sqzc never casts implicitly, so a wrong dtype is an error, too
(the one conversion: INT4/UINT4 tensors, ml_dtypes arrays here, travel in an int8/uint8
container, a value a byte, and outputs are converted back).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep, Device, DeviceType, namedtupledict

import sqzc
from sqzc.driver import CompileOptions
from sqzc.errors import CallError
from sqzc.runtime import CompiledModel

__all__ = ["BackendStats", "SqzcBackend", "SqzcBackendRep", "prepare", "run_model",
           "run_node", "supports_device"]

#: Environment variable that sets the default LLVM optimization level (0..3) of
#: :class:`SqzcBackend` when ``prepare`` gets no ``opt_level``.
OPT_LEVEL_ENV = "SQZC_BACKEND_OPT_LEVEL"


def _model_inputs(model: onnx.ModelProto) -> list[str]:
    """Names of the graph inputs a caller feeds: graph inputs that are not initializers."""
    inits = {t.name for t in model.graph.initializer}
    inits |= {t.values.name for t in model.graph.sparse_initializer}
    return [vi.name for vi in model.graph.input if vi.name not in inits]


def _model_outputs(model: onnx.ModelProto) -> list[str]:
    """Names of the graph outputs, in graph order."""
    return [vo.name for vo in model.graph.output]


class SqzcBackendRep(BackendRep):
    """A compiled, loaded model: ``run`` it on positional (or named) numpy inputs.

    ``input_names`` are the model's graph inputs without initializers, in graph order;
    ``output_names`` its graph outputs in graph order. Outputs come back as a namedtuple
    (``onnx.backend.base.namedtupledict``), indexable by position or by output name.
    """

    def __init__(self, compiled: CompiledModel, input_names: Sequence[str],
                 output_names: Sequence[str], model_label: str = "model") -> None:
        """Wrap ``compiled``; the name lists come from the ONNX model it was built from."""
        self.compiled = compiled
        self.input_names = list(input_names)
        self.output_names = list(output_names)
        self.model_label = model_label
        self._outputs_type = namedtupledict("Outputs", self.output_names)
        lib_outputs = {spec.name for spec in compiled.output_specs}
        missing = [n for n in self.output_names if n not in lib_outputs]
        if missing:  # the library must return every graph output; anything else is a bug
            raise CallError(f"{model_label}: compiled library does not return graph "
                            f"output(s) {missing}; it returns {sorted(lib_outputs)}")

    def _feeds(self, inputs: Any) -> dict[str, Any]:
        """Map ``inputs`` (sequence, mapping or one array) to ``{input name: array}``."""
        if isinstance(inputs, Mapping):
            return dict(inputs)
        if isinstance(inputs, np.ndarray) or not isinstance(inputs, Sequence):
            inputs = [inputs]
        if len(inputs) != len(self.input_names):
            raise CallError(f"{self.model_label}: {len(inputs)} input(s) given, the model "
                            f"takes {len(self.input_names)}: {self.input_names}")
        return dict(zip(self.input_names, inputs))

    def run(self, inputs: Any, **kwargs: Any) -> tuple[Any, ...]:
        """Run the model and return its outputs in graph-output order.

        ``inputs`` is a sequence in graph-input order (initializers excluded), a mapping
        from input name to array, or a single array for a one-input model. Arrays are
        passed unchanged (no dtype conversion). ``kwargs`` are accepted for API
        compatibility and ignored.
        """
        results = self.compiled.run(self._feeds(inputs))
        return self._outputs_type(*(self._onnx_typed(name, results[name])
                                    for name in self.output_names))

    def _onnx_typed(self, name: str, value: np.ndarray) -> np.ndarray:
        """An INT4/UINT4 output (an int8/uint8 container, a value a byte) as the ml_dtypes
        array onnx's references hold, so that comparisons see one dtype."""
        nibble = next((s.nibble for s in self.compiled.output_specs if s.name == name), "")
        if not nibble:
            return value
        import ml_dtypes  # onnx's own dependency, for its 4-bit types

        return value.astype(getattr(ml_dtypes, nibble))


@dataclass
class BackendStats:
    """Counters of the process-wide compile cache (printed by the conformance suite)."""

    compiles: int = 0
    cache_hits: int = 0
    compile_failures: int = 0
    compile_seconds: float = 0.0


class SqzcBackend(Backend):
    """ONNX backend that compiles each model ahead of time with sqzc (CPU only).

    Class attributes set the defaults ``prepare`` uses when not given as keywords:
    ``opt_level`` (LLVM -O level, default 3 or ``$SQZC_BACKEND_OPT_LEVEL``),
    ``target_cpu`` (``"host"``) and ``threads`` (``None``: the library's default).
    """

    opt_level: int | None = None
    target_cpu: str = "host"
    threads: int | None = None
    stats: BackendStats = BackendStats()

    _lock = threading.Lock()
    _cache: dict[str, CompiledModel] = {}
    _key_locks: dict[str, threading.Lock] = {}
    _workdir: Path | None = None

    # ------------------------------------------------------------------ helpers

    @classmethod
    def _dir(cls) -> Path:
        """The per-process folder holding saved models and compiled libraries."""
        if cls._workdir is None:
            path = Path(tempfile.mkdtemp(prefix="sqzc-backend-"))
            atexit.register(shutil.rmtree, path, True)
            cls._workdir = path
        return cls._workdir

    @classmethod
    def default_opt_level(cls) -> int:
        """The -O level ``prepare`` uses without ``opt_level``: the class attribute if
        set, else ``$SQZC_BACKEND_OPT_LEVEL``, else 3."""
        if cls.opt_level is not None:
            return cls.opt_level
        return int(os.environ.get(OPT_LEVEL_ENV, "3"))

    @classmethod
    def compile_cached(cls, model: onnx.ModelProto, options: CompileOptions,
                       threads: int | None = None) -> CompiledModel:
        """Compile ``model`` (or reuse this process's library for identical bytes+options).

        Raises whatever :func:`sqzc.compile` or :func:`sqzc.load` raises (usually a
        ``sqzc.SqzcError``); failures are not cached, so a later call retries.
        """
        data = model.SerializeToString(deterministic=True)
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest}-O{options.opt_level}-{options.target_cpu}-t{threads}"
        with cls._lock:
            key_lock = cls._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # one compile per key, even when threads prepare the same model
            return cls._compile_locked(key, digest, data, model, options, threads)

    @classmethod
    def _compile_locked(cls, key: str, digest: str, data: bytes, model: onnx.ModelProto,
                        options: CompileOptions, threads: int | None) -> CompiledModel:
        with cls._lock:
            hit = cls._cache.get(key)
            if hit is not None:
                cls.stats.cache_hits += 1
                return hit
            workdir = cls._dir()
        name = model.graph.name or "model"
        onnx_path = workdir / f"{digest[:24]}.onnx"
        target = re.sub(r"[^\w.+-]", "_", options.target_cpu)
        lib_path = workdir / f"{digest[:24]}-O{options.opt_level}-{target}-t{threads}.so"
        if not onnx_path.exists():
            tmp = onnx_path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, onnx_path)
        t0 = time.perf_counter()
        try:
            sqzc.compile(onnx_path, lib_path, options)
            compiled = sqzc.load(lib_path, threads=threads)
        except BaseException as exc:
            with cls._lock:
                cls.stats.compile_failures += 1
                cls.stats.compile_seconds += time.perf_counter() - t0
            if hasattr(exc, "add_note"):
                exc.add_note(f"(sqzc backend: while compiling ONNX graph {name!r}, "
                             f"saved as {onnx_path})")
            raise
        with cls._lock:
            cls.stats.compiles += 1
            cls.stats.compile_seconds += time.perf_counter() - t0
            cls._cache[key] = compiled
        return compiled

    # ------------------------------------------------------------------ Backend API

    @classmethod
    def is_compatible(cls, model: onnx.ModelProto, device: str = "CPU",
                      **kwargs: Any) -> bool:
        """True for CPU: whether sqzc supports the model is only known by compiling it
        (and an unsupported model must fail loudly, not be skipped)."""
        return cls.supports_device(device)

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU",
                **kwargs: Any) -> SqzcBackendRep:
        """Compile ``model`` with sqzc and load it.

        Keywords: ``opt_level`` (0..3), ``target_cpu``, ``threads``, ``input_shapes``
        (``{input name: shape}`` for symbolic dims); any other keyword (e.g. the
        ``rtol``/``atol`` that ``BackendTest`` forwards) is ignored.

        Raises:
            ValueError: ``device`` is not a CPU device.
            sqzc.SqzcError: sqzc cannot compile or load the model (unsupported op or
                dtype, invalid model, toolchain failure, ...).
        """
        if not cls.supports_device(device):
            raise ValueError(f"sqzc backend runs on CPU only, got device {device!r}")
        if not isinstance(model, onnx.ModelProto):
            raise TypeError(f"prepare() needs an onnx.ModelProto, got {type(model).__name__}")
        opt_level = kwargs.get("opt_level")
        options = CompileOptions(
            opt_level=cls.default_opt_level() if opt_level is None else int(opt_level),
            target_cpu=str(kwargs.get("target_cpu", cls.target_cpu)),
            input_shapes=dict(kwargs.get("input_shapes") or {}),
        )
        threads = kwargs.get("threads", cls.threads)
        if options.input_shapes:
            # Shapes change what is compiled, so they must be part of the cache key.
            model = _with_input_shapes(model, options.input_shapes)
            options.input_shapes = {}
        compiled = cls.compile_cached(model, options, threads)
        return SqzcBackendRep(compiled, _model_inputs(model), _model_outputs(model),
                              model.graph.name or "model")

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU",
                  **kwargs: Any) -> tuple[Any, ...]:
        """Compile (or reuse) ``model`` and run it once on ``inputs``."""
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def run_node(cls, node: onnx.NodeProto, inputs: Any, device: str = "CPU",
                 outputs_info: Sequence[tuple[np.dtype, tuple[int, ...]]] | None = None,
                 **kwargs: Any) -> tuple[Any, ...]:
        """Run one node by wrapping it in a single-node model (inputs become graph inputs).

        ``inputs`` is a sequence matching ``node.input`` (or a mapping by name);
        ``kwargs["opset_version"]`` picks the default-domain opset (default: the onnx
        package's current opset).
        """
        super().run_node(node, inputs, device=device, outputs_info=outputs_info, **kwargs)
        names = [n for n in node.input if n]
        feeds = dict(inputs) if isinstance(inputs, Mapping) else dict(zip(names, inputs))
        graph_inputs = [
            onnx.helper.make_tensor_value_info(
                n, onnx.helper.np_dtype_to_tensor_dtype(np.asarray(v).dtype),
                np.asarray(v).shape)
            for n, v in feeds.items()
        ]
        if outputs_info is not None:
            graph_outputs = [
                onnx.helper.make_tensor_value_info(
                    o, onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dt)), shape)
                for o, (dt, shape) in zip(node.output, outputs_info)
            ]
        else:
            graph_outputs = _inferred_outputs(node, graph_inputs, kwargs.get("opset_version"))
        opset = kwargs.get("opset_version") or onnx.defs.onnx_opset_version()
        model = onnx.helper.make_model(
            onnx.helper.make_graph([node], f"run_node_{node.op_type}", graph_inputs,
                                   graph_outputs),
            opset_imports=[onnx.helper.make_opsetid("", int(opset))])
        rest = {k: v for k, v in kwargs.items() if k != "opset_version"}
        return cls.prepare(model, device, **rest).run(feeds)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        """True for ``"CPU"`` (sqzc emits host CPU code), False for anything else."""
        try:
            return Device(device).type == DeviceType.CPU
        except (AttributeError, ValueError):
            return False


def _with_input_shapes(model: onnx.ModelProto,
                       shapes: Mapping[str, Sequence[int]]) -> onnx.ModelProto:
    """A copy of ``model`` whose named graph inputs have the given static shapes."""
    fixed = onnx.ModelProto()
    fixed.CopyFrom(model)
    known = {vi.name: vi for vi in fixed.graph.input}
    for name, shape in shapes.items():
        if name not in known:
            raise CallError(f"input_shapes names {name!r}, but the model inputs are "
                            f"{sorted(known)}")
        tt = known[name].type.tensor_type
        tt.ClearField("shape")
        for d in shape:
            tt.shape.dim.add().dim_value = int(d)
    return fixed


def _inferred_outputs(node: onnx.NodeProto, graph_inputs: list[onnx.ValueInfoProto],
                      opset: int | None) -> list[onnx.ValueInfoProto]:
    """Output value infos of ``node`` from onnx shape inference (typed, possibly shaped)."""
    probe = onnx.helper.make_model(
        onnx.helper.make_graph([node], "probe", graph_inputs,
                               [onnx.helper.make_empty_tensor_value_info(o)
                                for o in node.output if o]),
        opset_imports=[onnx.helper.make_opsetid("", int(opset or
                                                        onnx.defs.onnx_opset_version()))])
    inferred = onnx.shape_inference.infer_shapes(probe, strict_mode=True)
    by_name = {vi.name: vi for vi in inferred.graph.value_info}
    by_name.update({vi.name: vi for vi in inferred.graph.output
                    if vi.type.tensor_type.elem_type})
    return [by_name.get(o) or onnx.helper.make_empty_tensor_value_info(o)
            for o in node.output if o]


# Module-level aliases, the form ``onnx.backend`` tooling also accepts.
prepare = SqzcBackend.prepare
run_model = SqzcBackend.run_model
run_node = SqzcBackend.run_node
supports_device = SqzcBackend.supports_device
