"""Running a library built for another architecture under qemu-user (``sqzc run``,
``sqzc verify --target``, the Arm64 tests).

A cross-built library cannot be loaded into this process. ``EmulatedModel`` reads its
metadata from the file (``sqzc.runtime.library.read_metadata_file``), writes the inputs
to files, and runs a small C runner (``sqzc/data/emulated_runner.c``, cross-built once
with the library's own linker, zig, and cached) under the architecture's qemu-user with
the Debian cross sysroot; the runner calls ``sqz_init`` and ``sqz_run`` and writes the
outputs back. Each call is a process: this is for checking results, not for timing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sqzc.errors import LibraryError, ToolchainError, UsageError
from sqzc.runtime.elf import elf_machine
from sqzc.runtime.library import TensorSpec, parse_metadata, read_metadata_file

RUNNER_SOURCE = Path(__file__).resolve().parent.parent / "data" / "emulated_runner.c"
#: Architecture -> (zig target, qemu-user program, Debian cross sysroot and its package).
EMULATION = {
    "aarch64": ("aarch64-linux-gnu", "qemu-aarch64", "/usr/aarch64-linux-gnu",
                "libc6-arm64-cross"),
}
#: sqz_run's error codes (docs/ABI.md), for messages.
RUN_ERRORS = {1: "SQZ_ERR_BATCH", 2: "SQZ_ERR_NULL", 3: "SQZ_ERR_ALIGN", 4: "SQZ_ERR_CPU",
              5: "SQZ_ERR_WEIGHTS"}


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sqzc"


def emulator(arch: str) -> tuple[str, str]:
    """(qemu-user program path, sysroot) for ``arch``, or a ToolchainError saying what to
    install."""
    if arch not in EMULATION:
        raise ToolchainError(f"no emulator known for {arch} libraries")
    _, program, sysroot, package = EMULATION[arch]
    path = shutil.which(program)
    if path is None:
        raise ToolchainError(f"running a {arch} library here needs {program}: install "
                             f"Debian's qemu-user and {package} (apt-get install qemu-user "
                             f"{package})")
    if not Path(sysroot, "lib").is_dir():
        raise ToolchainError(f"running a {arch} library here needs the {arch} C library in "
                             f"{sysroot}: apt-get install {package}")
    return path, sysroot


def runner(arch: str) -> Path:
    """The runner executable for ``arch``, cross-built on first use (cached by source
    hash under ~/.cache/sqzc)."""
    zig_target = EMULATION[arch][0]
    source = RUNNER_SOURCE.read_bytes()
    digest = hashlib.sha256(source + zig_target.encode()).hexdigest()[:16]
    exe = _cache_dir() / f"emulated_runner-{zig_target}-{digest}"
    if exe.exists():
        return exe
    from sqzc.backends.llvm.link import find_linker
    from sqzc.backends.llvm.target import resolve_target

    linker = find_linker(resolve_target("generic", zig_target))
    exe.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=exe.parent) as tmp:
        built = Path(tmp) / "runner"
        cmd = [*linker.command, "-O2", "-o", str(built), str(RUNNER_SOURCE), "-ldl"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=linker.env,
                              check=False)
        if proc.returncode != 0:
            raise ToolchainError(f"building the {arch} runner failed ({' '.join(cmd)}):\n"
                                 f"{proc.stderr.strip()}")
        os.replace(built, exe)
    return exe


class EmulatedModel:
    """A library of another architecture, called through qemu-user: ``run`` and
    ``__call__`` as ``sqzc.CompiledModel``'s, one process per call."""

    def __init__(self, path: str | os.PathLike[str], threads: int = 1) -> None:
        self.path = os.path.abspath(path)
        if not os.path.exists(self.path):
            raise LibraryError(f"{path}: no such file")
        self.arch = elf_machine(self.path)
        self.metadata: dict[str, Any] = read_metadata_file(self.path)
        self.dynamic_batch, self.input_specs, self.output_specs = parse_metadata(
            self.metadata, self.path)
        self.threads = threads
        self.program, self.sysroot = emulator(self.arch)

    def _batch(self, feeds: Mapping[str, np.ndarray]) -> int:
        if not self.input_specs or not self.dynamic_batch:  # a model of constants has none
            return 1
        first = feeds[self.input_specs[0].name]
        return int(first.shape[0]) if first.ndim else 1

    def _check(self, spec: TensorSpec, value: object, batch: int) -> np.ndarray:
        arr = np.asarray(value)
        if arr.dtype != spec.dtype:
            raise UsageError(f"input '{spec.name}' must be {spec.dtype}, got {arr.dtype}")
        if arr.shape != spec.concrete_shape(batch):
            raise UsageError(f"input '{spec.name}' must have shape "
                             f"{list(spec.concrete_shape(batch))}, got {list(arr.shape)}")
        return np.ascontiguousarray(arr)

    def run(self, feeds: Mapping[str, object]) -> dict[str, np.ndarray]:
        """Run once under the emulator; outputs by name."""
        return self.invoke(feeds)[0]

    def invoke(self, feeds: Mapping[str, object], qemu_args: Sequence[str] = (),
               env: Mapping[str, str] | None = None) -> tuple[dict[str, np.ndarray], str]:
        """Run once under the emulator with extra ``qemu_args`` (tracing, for
        ``sqzc.tools.instruction_mix``) and extra ``env`` for the runner; the outputs by
        name and the runner's standard output."""
        names = [s.name for s in self.input_specs]
        unknown = set(feeds) - set(names)
        missing = [n for n in names if n not in feeds]
        if unknown or missing:
            raise UsageError(f"inputs are {', '.join(names)}; missing {missing or 'none'}, "
                             f"unknown {sorted(unknown) or 'none'}")
        arrays = {k: np.asarray(v) for k, v in feeds.items()}
        batch = self._batch(arrays)
        with tempfile.TemporaryDirectory(prefix="sqzc-emu-") as tmp:
            ins = []
            for i, spec in enumerate(self.input_specs):
                path = Path(tmp) / f"in{i}.bin"
                path.write_bytes(self._check(spec, arrays[spec.name], batch).tobytes())
                ins.append(str(path))
            outs = []
            for j, spec in enumerate(self.output_specs):
                nbytes = int(np.prod(spec.concrete_shape(batch))) * spec.dtype.itemsize
                outs.append((Path(tmp) / f"out{j}.bin", nbytes))
            cmd = [self.program, "-L", self.sysroot, *qemu_args, str(runner(self.arch)),
                   self.path, str(self.threads), str(batch), str(len(ins)), str(len(outs)),
                   *ins, *(f"{p}:{n}" for p, n in outs)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                                  env={**os.environ, **(env or {})})
            if proc.returncode != 0:
                code = RUN_ERRORS.get(proc.returncode, f"exit status {proc.returncode}")
                raise LibraryError(f"{self.path} under {Path(self.program).name}: {code}: "
                                   f"{proc.stderr.strip()[-500:]}")
            outputs = {spec.name: np.frombuffer(path.read_bytes(), spec.dtype)
                       .reshape(spec.concrete_shape(batch)).copy()
                       for spec, (path, _) in zip(self.output_specs, outs)}
            return outputs, proc.stdout

    def __call__(self, x: object) -> np.ndarray:
        """Single-input, single-output models: ``m(x) -> y``."""
        if len(self.input_specs) != 1 or len(self.output_specs) != 1:
            raise UsageError("m(x) needs a model with one input and one output; use m.run()")
        return next(iter(self.run({self.input_specs[0].name: x}).values()))


__all__ = ["EMULATION", "EmulatedModel", "emulator", "runner"]
