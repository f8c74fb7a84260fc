"""Call a library built by ``sqzc compile`` safely from Python.

This module owns the call side of the C ABI described in ``docs/ABI.md``: turning a
Python call into one ``sqz_run_pool`` call on the model's worker pool. Opening the shared
object, checking that it is a sqzc library of the ABI version this runtime speaks and
parsing its metadata into :class:`~sqzc.runtime.library.TensorSpec` objects happen once,
at load time, in :mod:`sqzc.runtime.library`.

The native code trusts its caller completely (it reads and writes raw pointers), so every
check that protects memory happens here, *before* any native call: input names, dtypes,
ranks, static dimensions and the batch size are all validated, inputs are made contiguous
and aligned, outputs are freshly allocated with exactly the size the library will write,
and each thread gets its own 64-byte aligned workspace.

Deliberately imports only the standard library, numpy and :mod:`sqzc.errors` (and
:mod:`sqzc.runtime.library`, which holds to the same rule): a deployment loads compiled
models without onnx, llvmlite or networkx installed.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from sqzc.errors import CallError, LibraryError, UsageError
from sqzc.runtime.library import (
    NIBBLE_DTYPES,
    TensorSpec,
    check_cpu,
    open_library,
    parse_metadata,
    read_metadata,
)

__all__ = ["CompiledModel", "load"]

#: Alignment the ABI requires for the workspace pointer.
_WORKSPACE_ALIGN = 64

#: Decoded meaning of the non-zero return codes of ``sqz_run``.
_RUN_ERRORS: dict[int, str] = {
    1: "SQZ_ERR_BATCH: batch < 1, or batch != 1 for a static-batch model",
    2: "SQZ_ERR_NULL: an input/output pointer (or a needed workspace) is NULL",
    3: "SQZ_ERR_ALIGN: workspace is not 64-byte aligned",
    4: "SQZ_ERR_CPU: this CPU lacks an instruction-set extension the library was built for",
    5: "SQZ_ERR_WEIGHTS: the compressed weights failed to decode (damaged library)",
}


def _shape_str(shape: tuple[int, ...]) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


def _names(specs: list[TensorSpec]) -> str:
    return ", ".join(repr(s.name) for s in specs)


class CompiledModel:
    """A loaded sqzc library: call it like a function on numpy arrays.

    ``m.run({"x": a})`` always returns a dict ``{output name: array}``. ``m(a)``,
    ``m(a, b)`` (positional, in input order), ``m(x=a)`` (keyword) and ``m({"x": a})``
    return the single output array when the model has exactly one output, else the same
    dict as :meth:`run`.

    Input conversion is strict on purpose, because silent conversions hide bugs and
    cost time: the dtype must equal the input's dtype exactly (a float64 array for a
    float32 input is an error, not a cast). The only conversion done is the *safe*
    one that changes no value: an array that is not C-contiguous (e.g. Fortran-ordered
    or a strided slice) is copied with :func:`numpy.ascontiguousarray`, and a
    misaligned one (address not a multiple of its itemsize) is copied to a fresh,
    aligned array, because the library reads inputs as dense, aligned C buffers.

    Instances are safe to call from several threads at once: each thread gets its own
    workspace and every call gets fresh output arrays, which is what the ABI requires
    for concurrent calls. ctypes releases the GIL during the native call, so such
    calls really run in parallel.
    """

    path: str
    metadata: dict[str, Any]
    input_specs: list[TensorSpec]
    output_specs: list[TensorSpec]
    dynamic_batch: bool
    workspace_size: int
    threads: int | None

    def __init__(self, path: str | os.PathLike[str], threads: int | None = None) -> None:
        """Open and check the library at ``path``.

        ``threads`` is the number of threads one call uses: the calling thread plus
        ``threads - 1`` workers of a pool the library starts at the first call and stops
        when this object is collected; each kernel's work is split among them. ``None``
        means the CPUs this process may run on. Results are identical for every thread
        count. A call that finds the pool busy (another Python thread is calling the same
        model) runs on its own thread instead of waiting.

        Loading runs the library's initialisers, so only load files you trust.

        Raises:
            UsageError: ``path`` is not a path (str, bytes or os.PathLike), or
                ``threads`` is not ``None`` or an int >= 1.
            LibraryError: the file cannot be loaded, is not a sqzc library, was built
                for another ABI version, or needs CPU features this machine lacks.
        """
        path = _library_path(path)
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise UsageError(f"threads must be an integer >= 1 (or omitted for all usable "
                             f"CPUs), got {threads!r}")
        self.threads = threads if threads is not None else default_threads()
        # An absolute path makes dlopen load exactly this file instead of searching the
        # library path for a bare name.
        self.path = os.path.abspath(path)
        self._lib = open_library(self.path)
        self.metadata = read_metadata(self._lib, self.path)
        check_cpu(self.metadata, self.path)  # before any call that runs the library's code
        self.dynamic_batch, self.input_specs, self.output_specs = parse_metadata(
            self.metadata, self.path)
        self.decode_seconds = _init_weights(self._lib, self.path)
        self.workspace_size = int(self._lib.sqz_workspace_size())
        declared = self.metadata.get("workspace_bytes")
        if declared is not None and declared != self.workspace_size:
            raise LibraryError(f"{self.path}: inconsistent library (metadata says a "
                               f"{declared}-byte workspace, sqz_workspace_size says "
                               f"{self.workspace_size})")
        self._tls = threading.local()
        self._pool: int | None = None
        self._pool_pid = 0
        self._pool_lock = threading.Lock()

    # ------------------------------------------------------------------ calling

    def _worker_pool(self) -> int | None:
        """The library's worker pool for this process (made at first use; ``None`` for
        one thread). A forked child gets its own: the parent's workers do not exist in
        it."""
        if self.threads <= 1:
            return None
        pid = os.getpid()
        if self._pool is not None and self._pool_pid == pid:
            return self._pool
        with self._pool_lock:
            if self._pool is None or self._pool_pid != pid:
                pool = self._lib.sqz_pool_create(min(self.threads, 256))
                if not pool:
                    return None  # no memory for a pool: calls run on the caller's thread
                weakref.finalize(self, _destroy_pool, self._lib, pool, pid)
                self._pool, self._pool_pid = pool, pid
        return self._pool

    def __call__(
        self, *args: ArrayLike, **kwargs: ArrayLike
    ) -> np.ndarray | dict[str, np.ndarray]:
        """Run the model; see the class docstring for the accepted call forms."""
        feeds: Mapping[str, ArrayLike]
        if args and kwargs:
            raise CallError("pass the inputs either positionally or by keyword, not both")
        if len(args) == 1 and isinstance(args[0], Mapping):
            feeds = args[0]
        elif args:
            if len(args) != len(self.input_specs):
                raise CallError(
                    f"{len(args)} positional input(s) given, the model takes "
                    f"{len(self.input_specs)}: {_names(self.input_specs)}"
                )
            feeds = {spec.name: value for spec, value in zip(self.input_specs, args)}
        else:
            feeds = kwargs
        results = self.run(feeds)
        if len(self.output_specs) == 1:
            return results[self.output_specs[0].name]
        return results

    def run(self, inputs: Mapping[str, ArrayLike]) -> dict[str, np.ndarray]:
        """Run the model on ``inputs`` (name -> array) and return ``{output name: array}``.

        Everything is validated before the native call, because the library itself
        cannot detect a wrong shape or dtype: it would read or write out of bounds.
        Outputs are new arrays owned by the caller (never views of shared memory).

        Raises:
            CallError: bad names, dtypes, shapes or batch size, or a non-zero code
                returned by the library.
        """
        arrays, batch = self._prepare_inputs(inputs)
        outputs = {
            spec.name: np.empty(spec.concrete_shape(batch), dtype=spec.dtype)
            for spec in self.output_specs
        }
        workspace = self._workspace()
        in_ptrs = (ctypes.c_void_p * max(len(arrays), 1))(*(a.ctypes.data for a in arrays))
        out_ptrs = (ctypes.c_void_p * max(len(outputs), 1))(
            *(a.ctypes.data for a in outputs.values())
        )
        ws_ptr = None if workspace is None else workspace.ctypes.data
        # ``arrays``, ``outputs`` and ``workspace`` are local names that stay alive
        # until the call returns, so no buffer can be freed while native code uses it.
        code = self._lib.sqz_run_pool(self._worker_pool(), in_ptrs, out_ptrs, ws_ptr, batch)
        if code != 0:
            meaning = _RUN_ERRORS.get(code, "unknown error code")
            raise CallError(
                f"{self.path}: sqz_run_pool failed with code {code} ({meaning}; batch={batch})"
            )
        return outputs

    def _prepare_inputs(self, inputs: Mapping[str, ArrayLike]) -> tuple[list[np.ndarray], int]:
        """Check every input and return them as dense aligned arrays, plus the batch."""
        if not isinstance(inputs, Mapping):
            raise CallError(
                f"inputs must be a mapping from input name to array, got {type(inputs).__name__}"
            )
        expected = [spec.name for spec in self.input_specs]
        unknown = [name for name in inputs if name not in expected]
        if unknown:
            raise CallError(
                f"unknown input name(s) {', '.join(repr(n) for n in unknown)}; "
                f"expected inputs: {_names(self.input_specs)}"
            )
        missing = [name for name in expected if name not in inputs]
        if missing:
            raise CallError(
                f"missing input(s) {', '.join(repr(n) for n in missing)}; "
                f"expected inputs: {_names(self.input_specs)}"
            )

        arrays: list[np.ndarray] = []
        batch: int | None = None
        batch_from = ""
        for spec in self.input_specs:
            arr = self._check_input(spec, inputs[spec.name])
            if self.dynamic_batch:
                lead = arr.shape[0]
                if lead < 1:
                    raise CallError(
                        f"input {spec.name!r}: the batch size (leading dimension) must be "
                        f">= 1, got {lead}"
                    )
                if batch is None:
                    batch, batch_from = lead, spec.name
                elif lead != batch:
                    raise CallError(
                        "inputs disagree on the batch size (leading dimension): "
                        f"{batch_from!r} has {batch}, {spec.name!r} has {lead}"
                    )
            arrays.append(self._dense(arr))
        return arrays, (batch if batch is not None else 1)

    @staticmethod
    def _check_input(spec: TensorSpec, value: ArrayLike) -> np.ndarray:
        """Check one input's dtype, rank and static dimensions; never casts."""
        if isinstance(value, np.ndarray):
            arr = value
        else:
            try:
                arr = np.asarray(value)
            except Exception as exc:  # ragged lists etc.; the message says which input
                raise CallError(
                    f"input {spec.name!r}: cannot convert {type(value).__name__} to an "
                    f"array: {exc}"
                ) from exc
        if spec.nibble:
            arr = CompiledModel._nibbles(spec, arr)
        if arr.dtype != spec.dtype:
            hint = ""
            if not isinstance(value, np.ndarray):
                hint = f" (converted from {type(value).__name__})"
            raise CallError(
                f"input {spec.name!r}: expected dtype {spec.dtype}, got {arr.dtype}{hint}; "
                f"sqzc does not cast implicitly, convert with .astype(np.{spec.dtype})"
            )
        if arr.ndim != len(spec.shape) or any(
            d is not None and d != got for d, got in zip(spec.shape, arr.shape)
        ):
            raise CallError(
                f"input {spec.name!r}: expected shape {spec.shape_str()}, "
                f"got {_shape_str(arr.shape)}"
            )
        return arr

    @staticmethod
    def _nibbles(spec: TensorSpec, arr: np.ndarray) -> np.ndarray:
        """A 4-bit input as its 8-bit container: an ml_dtypes int4/uint4 array (recognized
        by its dtype name, ml_dtypes is no dependency) is converted value by value (its
        bytes are not the container's: -1 is 0x0F); a container array must hold only
        values of the 4-bit range."""
        lo, hi = NIBBLE_DTYPES[spec.nibble][1]
        if arr.dtype.name == spec.nibble:
            return arr.astype(spec.dtype)
        if arr.dtype == spec.dtype and arr.size and (arr.min() < lo or arr.max() > hi):
            raise CallError(f"input {spec.name!r} is {spec.nibble}: its {spec.dtype} values "
                            f"must lie in [{lo}, {hi}]")
        return arr

    @staticmethod
    def _dense(arr: np.ndarray) -> np.ndarray:
        """Return ``arr`` as a C-contiguous, itemsize-aligned array (copying only if needed)."""
        if not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr)
        if arr.ctypes.data % arr.dtype.itemsize != 0 or not arr.flags.aligned:
            # ascontiguousarray keeps an already-contiguous misaligned array as is.
            arr = np.array(arr, order="C", copy=True)
        return arr

    def _workspace(self) -> np.ndarray | None:
        """This thread's 64-byte aligned scratch buffer (``None`` if the library needs none).

        Cached per thread because concurrent calls must not share scratch memory, and
        allocating it on every call would cost time for large models.
        """
        size = self.workspace_size
        if size == 0:
            return None
        view: np.ndarray | None = getattr(self._tls, "view", None)
        if view is None or view.nbytes < size:
            try:
                raw = np.empty(size + _WORKSPACE_ALIGN, dtype=np.uint8)
            except (MemoryError, ValueError):
                raise CallError(f"{self.path}: cannot allocate the {size}-byte workspace") \
                    from None
            offset = (-raw.ctypes.data) % _WORKSPACE_ALIGN
            view = raw[offset : offset + size]  # a view keeps ``raw`` alive
            self._tls.view = view
        return view

    def profile(self) -> list[dict[str, object]]:
        """Per-kernel wall time of this thread's last call (libraries built with profiling).

        Each entry has ``node``, ``origin`` (the ONNX nodes fused into it), ``op``, ``macs``
        (per sample) and ``seconds`` (summed over the batch, including the barrier that
        follows the kernel when several threads run).
        """
        info = self.metadata.get("profile")
        if not isinstance(info, dict):
            raise CallError(f"{self.path}: not built with profiling (sqzc bench --profile)")
        view: np.ndarray | None = getattr(self._tls, "view", None)
        if view is None:
            raise CallError(f"{self.path}: no call has run on this thread yet")
        kernels = list(info["kernels"])
        off = int(info["offset"])
        ns = np.frombuffer(view[off:off + 8 * len(kernels)].tobytes(), dtype=np.int64)
        return [dict(k, seconds=float(t) * 1e-9) for k, t in zip(kernels, ns)]

    # ------------------------------------------------------------------ display

    def __repr__(self) -> str:
        ins = ", ".join(str(s) for s in self.input_specs)
        outs = ", ".join(str(s) for s in self.output_specs)
        return (
            f"CompiledModel({self.path!r}, inputs=[{ins}], outputs=[{outs}], "
            f"workspace_size={self.workspace_size}, threads={self.threads})"
        )


def _library_path(path: object) -> str:
    """``path`` as a ``str``, or a ``UsageError`` naming the argument.

    ``None`` or a number used to escape as a ``TypeError`` from ``os.fspath`` (every error
    must be a ``SqzcError``), and a NUL character, which no file name can hold, was
    reported as a missing file under a garbled name. Bytes paths are decoded as the file
    system does, so messages show a readable path.
    """
    try:
        text = os.fsdecode(path)  # type: ignore[arg-type]
    except TypeError:
        raise UsageError(f"sqzc.load: path must be the path of a sqzc library (str, bytes "
                         f"or os.PathLike), got {type(path).__name__}") from None
    if not text:
        raise UsageError("sqzc.load: path is an empty path; pass the path of a sqzc library")
    if "\0" in text:  # shortened: bytes holding a whole library end up here
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise UsageError(f"sqzc.load: path {shown} contains a NUL character (pass the "
                         f"library's path, not its contents)")
    return text


def default_threads() -> int:
    """The CPUs this process may run on (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _destroy_pool(lib: ctypes.CDLL, pool: int, pid: int) -> None:
    """Stop a pool's workers (only in the process that started them)."""
    if os.getpid() == pid:
        lib.sqz_pool_destroy(pool)


def _init_weights(lib: object, path: str) -> float:
    """Run the library's ``sqz_init`` (decodes compressed weights, once per process) and
    return the seconds it took; libraries from before ``sqz_init`` need nothing."""
    init = getattr(lib, "sqz_init", None)
    if init is None:
        return 0.0
    init.argtypes, init.restype = [], ctypes.c_int32
    start = time.perf_counter()
    code = init()
    if code != 0:
        raise LibraryError(f"{path}: its weights failed to decode (sqz_init returned {code}: "
                           f"{_RUN_ERRORS.get(code, 'unknown error code')}); the file is "
                           "damaged, rebuild it")
    return time.perf_counter() - start


def load(path: str | os.PathLike[str], threads: int | None = None) -> CompiledModel:
    """Load the sqzc library at ``path``; see :class:`CompiledModel` for how to call it."""
    return CompiledModel(path, threads=threads)
