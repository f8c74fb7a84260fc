"""From LLVM IR text to a standalone shared library: optimize, emit object, link.

The system C compiler driver (``cc``) links the object into a ``.so`` that needs only
libc and libm; for another architecture, zig's ``cc`` from the ``ziglang`` wheel does. Outputs are written to a temporary file in the target directory and
renamed into place, so a failure never leaves a partial file.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import llvmlite.binding as llvm

from sqzc.backends.llvm.target import Target, init_llvm
from sqzc.errors import InternalError, ToolchainError


def parse_and_optimize(ir_text: str, target: Target, opt_level: int,
                       verify: bool = True) -> llvm.ModuleRef:
    """Parse the module, verify it, and run LLVM's -O pipeline at ``opt_level``."""
    init_llvm()
    try:
        mod = llvm.parse_assembly(ir_text)
        if verify:
            mod.verify()
    except RuntimeError as e:
        raise InternalError(f"generated LLVM IR is invalid: {e}") from None
    if opt_level > 0:
        tm = target.machine(opt_level)
        pto = llvm.create_pipeline_tuning_options(speed_level=opt_level)
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
    return mod


def emit_object(mod: llvm.ModuleRef, target: Target, opt_level: int) -> bytes:
    """Machine code for the module as an ELF object."""
    return target.machine(opt_level).emit_object(mod)


def emit_assembly(mod: llvm.ModuleRef, target: Target, opt_level: int) -> str:
    """Assembly text for the module."""
    return target.machine(opt_level).emit_assembly(mod)


class Linker(NamedTuple):
    """A C compiler driver that links (and builds small C programs) for one target: the
    command prefix and the environment to run it in."""

    command: list[str]
    env: dict[str, str]


def find_linker(target: Target | None = None) -> Linker:
    """The driver that links an object for ``target`` into a shared library, or a clear
    error if there is none: the system C compiler driver for this machine's architecture;
    for another one (a cross build) zig's bundled clang and libc stubs from PyPI's
    ``ziglang`` wheel (``pip install 'sqzc[cross]'``), so no system cross toolchain is
    needed. Zig keeps a cache of its libc stubs, so its environment names a writable one."""
    if target is not None and not target.is_native:
        if importlib.util.find_spec("ziglang") is None:
            raise ToolchainError(
                f"linking for {target.triple} needs a cross linker: install the ziglang "
                f"wheel with pip install 'sqzc[cross]' (or pip install ziglang)")
        zig_target = target.triple.replace("-unknown-", "-")
        env = dict(os.environ)
        env.setdefault("ZIG_GLOBAL_CACHE_DIR", str(Path(tempfile.gettempdir()) / "sqzc-zig"))
        return Linker([sys.executable, "-m", "ziglang", "cc", "-target", zig_target], env)
    for name in (os.environ.get("CC", ""), "cc", "gcc", "clang"):
        found = shutil.which(name) if name else None
        if found:
            return Linker([found], dict(os.environ))
    raise ToolchainError("no C compiler driver found to link the shared library (looked for "
                         "$CC, cc, gcc, clang); install one, e.g. 'apt-get install gcc'")


def link_shared(obj: bytes, out_path: Path, workdir: Path, target: Target | None = None,
                strip: bool = False, extra_inputs: Sequence[Path] = ()) -> None:
    """Link ``obj`` into a shared library at ``out_path`` (atomically); ``strip`` drops the
    symbol table (``--optimize size``: the exported ``sqz_*`` symbols stay in .dynsym, only
    the names of internal kernels, which profilers show, go)."""
    linker = find_linker(target)
    obj_path = workdir / "model.o"
    obj_path.write_bytes(obj)
    tmp_so = workdir / "model.so"
    cmd = [*linker.command, "-shared", "-o", str(tmp_so), str(obj_path), *map(str, extra_inputs),
           "-lm", "-pthread",
           "-Wl,-z,noexecstack", "-Wl,--hash-style=gnu", "-Wl,--build-id=sha1"]
    if strip:
        cmd.append("-Wl,--strip-all")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=linker.env)
    if proc.returncode != 0:
        raise ToolchainError(f"linking failed ({' '.join(cmd)}):\n{proc.stderr.strip()}")
    write_atomically(out_path, tmp_so.read_bytes())


def output_path_problem(path: Path) -> str | None:
    """Why ``path`` cannot be written atomically (its folder is missing, or it is a folder
    itself), or None. The CLI asks before any work, ``write_atomically`` before writing."""
    directory = path.parent if str(path.parent) else Path(".")
    if not directory.is_dir():
        return f"output directory '{directory}' does not exist"
    if path.is_dir():
        return f"output path '{path}' is a directory"
    return None


def write_atomically(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` via a temp file in the same directory and a rename."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    from sqzc.errors import UsageError

    problem = output_path_problem(path)
    if problem:
        raise UsageError(problem)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    except OSError as e:
        raise UsageError(f"cannot write into '{directory}': {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
        os.chmod(tmp, 0o755 if path.suffix == ".so" else 0o644)
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise UsageError(f"cannot write '{path}': {e.strerror or e}") from None
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
