"""Open a library built by ``sqzc compile`` and check it against the ABI, once, at load time.

Everything decided before the first call lives here: that the file is a complete 64-bit
ELF shared object (checked before ``dlopen``, which would map a truncated file and die of
SIGBUS later), that a recompiled file is really reloaded, that every ABI symbol exists
and gets its ctypes signature, that the metadata JSON is of the ABI version this runtime
speaks (``docs/ABI.md``), and that its inputs and outputs parse into :class:`TensorSpec`
objects consistent enough to size buffers by. It is separate from
:mod:`sqzc.runtime.loader`, which owns the call path (input validation, output and
workspace allocation, the worker pool): a library is opened once and called many times,
and nothing here touches a call's memory.

Deliberately imports only the standard library, numpy and :mod:`sqzc.errors`: a
deployment loads compiled models without onnx, llvmlite or networkx installed.
"""

from __future__ import annotations

import ctypes
import json
import os
import platform
import struct
import tempfile
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from sqzc.errors import LibraryError
from sqzc.runtime.cpu import missing_features
from sqzc.runtime.elf import METADATA_SECTION, elf_machine, section_bytes

__all__ = ["ABI_VERSION", "TensorSpec", "check_cpu", "decode_metadata", "is_foreign",
           "open_library", "parse_metadata", "read_metadata", "read_metadata_file"]

#: The only ``abi_version`` (metadata key) this runtime can call.
ABI_VERSION = 2

#: dtype names the ABI allows in metadata.
_ABI_DTYPES = frozenset({"float32", "float16", "uint8", "int8", "int32", "int64", "int4",
                         "uint4"})
#: 4-bit boundary dtypes -> (8-bit container the library reads and writes, value range).
NIBBLE_DTYPES: dict[str, tuple[str, tuple[int, int]]] = {
    "int4": ("int8", (-8, 7)), "uint4": ("uint8", (0, 15))}

#: The symbols every sqzc library exports.
_SYMBOLS = ("sqz_metadata", "sqz_workspace_size", "sqz_run", "sqz_run_pool",
            "sqz_pool_create", "sqz_pool_destroy")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape and dtype of one model input or output, as the library's metadata says.

    ``None`` in ``shape`` marks the dynamic batch dimension (only ever the leading one).
    ``nibble`` is "int4" / "uint4" for a 4-bit tensor, whose ``dtype`` is then its
    container (int8 / uint8, one value per byte).
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype
    nibble: str = ""

    def shape_str(self) -> str:
        """The shape as ``[N,3,224,224]``, with ``N`` for the dynamic batch dimension."""
        return "[" + ",".join("N" if d is None else str(d) for d in self.shape) + "]"

    def concrete_shape(self, batch: int) -> tuple[int, ...]:
        """The shape with the dynamic batch dimension (if any) replaced by ``batch``."""
        return tuple(batch if d is None else d for d in self.shape)

    def __str__(self) -> str:
        return f"{self.name}: {self.nibble or self.dtype}{self.shape_str()}"


def open_library(path: str) -> ctypes.CDLL:
    """dlopen the file and declare the ABI's signatures, or raise LibraryError."""
    if not os.path.exists(path):
        raise LibraryError(f"{path}: no such file")
    problem = _elf_problem(path)
    if problem:
        raise LibraryError(f"{path} is not a sqzc library ({problem})")
    fresh = _fresh_path(path)
    try:
        lib = ctypes.CDLL(fresh)
    except OSError as exc:
        raise LibraryError(
            f"{path} is not a sqzc library (cannot load it as a shared library: {exc})"
        ) from exc
    finally:
        if fresh != path:  # the mapping outlives the file; nothing is left in $TMPDIR
            os.unlink(fresh)
    missing = [name for name in _SYMBOLS if not hasattr(lib, name)]
    if missing:
        plural = "s" if len(missing) > 1 else ""
        raise LibraryError(
            f"{path} is not a sqzc library (missing symbol{plural} {', '.join(missing)})"
        )
    lib.sqz_metadata.argtypes = []
    lib.sqz_metadata.restype = ctypes.c_char_p
    lib.sqz_workspace_size.argtypes = []
    lib.sqz_workspace_size.restype = ctypes.c_uint64
    lib.sqz_run.argtypes = [
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.POINTER(ctypes.c_void_p),
        ctypes.c_void_p,
        ctypes.c_int64,
        ctypes.c_int32,
    ]
    lib.sqz_run.restype = ctypes.c_int32
    lib.sqz_run_pool.argtypes = [ctypes.c_void_p] + lib.sqz_run.argtypes[:4]
    lib.sqz_run_pool.restype = ctypes.c_int32
    lib.sqz_pool_create.argtypes = [ctypes.c_int32]
    lib.sqz_pool_create.restype = ctypes.c_void_p
    lib.sqz_pool_destroy.argtypes = [ctypes.c_void_p]
    lib.sqz_pool_destroy.restype = None
    return lib


def read_metadata(lib: ctypes.CDLL, path: str) -> dict[str, Any]:
    """Decode the metadata JSON and check the ABI version before anything else.

    The version is checked first because a library of another ABI version may use a
    metadata layout this runtime does not understand.
    """
    raw = lib.sqz_metadata()
    if raw is None:
        raise LibraryError(f"{path} is not a sqzc library (sqz_metadata returned NULL)")
    return decode_metadata(raw, path)


def read_metadata_file(path: str) -> dict[str, Any]:
    """The metadata of a library read from its file (its ``.sqz_metadata`` section),
    without loading it: how a library built for another architecture is described."""
    raw = section_bytes(path, METADATA_SECTION)
    return decode_metadata(raw.split(b"\0", 1)[0], path)


def is_foreign(path: str) -> bool:
    """True when the library at ``path`` is for another CPU architecture than this
    process's (a cross build: it runs under an emulator, never through dlopen). A file
    that is not ELF is not foreign: ``open_library`` says what is wrong with it."""
    try:
        return elf_machine(path) != platform.machine()
    except (LibraryError, OSError):
        return False


def decode_metadata(raw: bytes, path: str) -> dict[str, Any]:
    """Parse metadata JSON and check the ABI version before anything else."""
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise LibraryError(
            f"{path} is not a sqzc library (metadata is not valid JSON: {exc})"
        ) from exc
    if not isinstance(meta, dict):
        raise LibraryError(
            f"{path} is not a sqzc library (metadata is not a JSON object)"
        )
    version = meta.get("abi_version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise LibraryError(
            f"{path} is not a sqzc library (metadata has no integer abi_version)"
        )
    if version != ABI_VERSION:
        raise LibraryError(
            f"{path} was built for ABI version {version}, "
            f"this runtime supports {ABI_VERSION}"
        )
    return meta


def check_cpu(meta: dict[str, Any], path: str) -> None:
    """Refuse a library built for CPU features this machine lacks (it would die of
    SIGILL at its first such instruction), naming them (:mod:`sqzc.runtime.cpu`)."""
    target = meta.get("target")
    features = target.get("features") if isinstance(target, dict) else None
    if not isinstance(features, str):
        return  # nothing recorded: nothing to check
    missing = missing_features(features)
    if missing:
        cpu = target.get("cpu", "?")
        raise LibraryError(
            f"{path} was compiled for {cpu} and needs CPU features this machine lacks: "
            f"{', '.join(missing)}; recompile it here (--target-cpu host) or for a CPU "
            "this machine has (sqzc compile --target-cpu ...)")


def _bad_meta(path: str, problem: str) -> LibraryError:
    return LibraryError(f"{path} has malformed sqzc metadata ({problem})")


def parse_metadata(meta: dict[str, Any], path: str
                   ) -> tuple[bool, list[TensorSpec], list[TensorSpec]]:
    """Turn metadata into specs, rejecting anything the call path could misuse.

    Shapes and dtypes decide how many bytes are allocated for outputs, so a library
    whose metadata is inconsistent is refused here rather than trusted later.
    """
    dynamic = meta.get("dynamic_batch")
    if not isinstance(dynamic, bool):
        raise _bad_meta(path, "dynamic_batch must be true or false")
    inputs = _parse_specs(meta, "inputs", dynamic, path)
    outputs = _parse_specs(meta, "outputs", dynamic, path)
    return dynamic, inputs, outputs


def _parse_specs(meta: dict[str, Any], key: str, dynamic: bool, path: str
                 ) -> list[TensorSpec]:
    entries = meta.get(key)
    if not isinstance(entries, list):
        raise _bad_meta(path, f"{key!r} must be a list")
    specs: list[TensorSpec] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = f"{key}[{i}]"
        if not isinstance(entry, dict):
            raise _bad_meta(path, f"{where} must be an object")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise _bad_meta(path, f"{where} has no name")
        if name in seen:
            raise _bad_meta(path, f"duplicate name {name!r} in {key!r}")
        seen.add(name)
        dtype_name = entry.get("dtype")
        if dtype_name not in _ABI_DTYPES:
            raise _bad_meta(path, f"{key} {name!r} has unsupported dtype {dtype_name!r}")
        shape = entry.get("shape")
        if not isinstance(shape, list):
            raise _bad_meta(path, f"{key} {name!r} has no shape list")
        for axis, dim in enumerate(shape):
            if dim is None:
                if axis != 0 or not dynamic:
                    raise _bad_meta(
                        path,
                        f"{key} {name!r}: null dimension only allowed as the leading "
                        "dimension of a dynamic-batch model"
                    )
            elif isinstance(dim, bool) or not isinstance(dim, int) or dim < 0:
                raise _bad_meta(path, f"{key} {name!r} has invalid dimension {dim!r}")
        if dynamic and (not shape or shape[0] is not None):
            raise _bad_meta(
                path,
                f"{key} {name!r} must have a null leading dimension in a dynamic-batch model"
            )
        if dtype_name in NIBBLE_DTYPES:
            specs.append(TensorSpec(name, tuple(shape), np.dtype(NIBBLE_DTYPES[dtype_name][0]),
                                    dtype_name))
        else:
            specs.append(TensorSpec(name, tuple(shape), np.dtype(dtype_name)))
    return specs


def _elf_problem(path: str) -> str | None:
    """Why ``path`` cannot be a loadable 64-bit ELF shared object, checked before dlopen.

    dlopen maps a truncated file without complaint and the process then dies of SIGBUS
    on first touch, so every loadable segment must lie inside the file.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            size = os.fstat(f.fileno()).st_size
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                return "not a 64-bit little-endian ELF file"
            if struct.unpack_from("<H", head, 16)[0] != 3:
                return "not an ELF shared object"
            machine = elf_machine(path)
            if machine != platform.machine():
                return (f"it is built for {machine}, this machine is {platform.machine()}: "
                        f"'sqzc info' describes it, 'sqzc run' runs it under an emulator")
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            if phentsize < 56 or phoff + phnum * phentsize > size:
                return "truncated ELF file (program headers)"
            f.seek(phoff)
            table = f.read(phnum * phentsize)
    except OSError as e:
        return f"cannot read it: {e.strerror}"
    for i in range(phnum):
        p_type, = struct.unpack_from("<I", table, i * phentsize)
        p_offset, = struct.unpack_from("<Q", table, i * phentsize + 8)
        p_filesz, = struct.unpack_from("<Q", table, i * phentsize + 32)
        if p_type == 1 and p_offset + p_filesz > size:  # PT_LOAD beyond the end of the file
            return "truncated ELF file (a loadable segment extends past its end)"
    return None


#: path -> (device, inode, mtime, size) of the file when it was first dlopen'ed
_LOADED: dict[str, tuple[int, int, int, int]] = {}
_LOADED_LOCK = threading.Lock()


def _fresh_path(path: str) -> str:
    """A path that makes dlopen load the file as it is now.

    dlopen returns the already-loaded object for a path it has seen, so after a library
    is recompiled in place the old code would run. A changed file is loaded through a
    private temporary copy instead, which ``open_library`` deletes once it is mapped.
    """
    st = os.stat(path)
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    with _LOADED_LOCK:
        seen = _LOADED.setdefault(path, key)
        if seen == key:
            return path
        fd, copy = tempfile.mkstemp(prefix="sqzc-lib-", suffix=".so")
        with os.fdopen(fd, "wb") as out, open(path, "rb") as src:
            out.write(src.read())
        return copy
