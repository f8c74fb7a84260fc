"""What ``sqzc compile --stats`` and ``sqzc info`` print: the sizes of a build and where
its bytes go (arena, weights by tensor, code, ELF overhead), and a library's metadata.

Kept apart from the argument parsing and command dispatch of :mod:`sqzc.tools.cli`: these
are the reports, which grow as the compiler learns to explain more (issue 21's size
table), while the command line stays a thin layer.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from sqzc.errors import LibraryError, SqzcError


def print_compile_stats(result: Any, output: str | None, emit: str) -> None:
    """The ``--stats`` report of a compile (``result``: the driver's CompileResult). For
    a library of another architecture it adds the instruction mix of one run under qemu
    (``sqzc.tools.instruction_mix``) in place of the decode time."""
    from sqzc.runtime.library import is_foreign

    s = result.stats
    # CompileResult.stats['workspace_bytes'] is the planned arena; what a call needs
    # (arena + runtime scratch, as `sqzc info` prints) is the metadata's workspace_bytes
    print(f"arena:     {s['workspace_bytes']} bytes (liveness lower bound "
          f"{s['arena_lower_bound']} bytes)")
    workspace = result.metadata.get("workspace_bytes")
    if workspace is not None:
        print(f"workspace: {workspace} bytes (arena + runtime scratch)")
    compressed = result.metadata.get("weights_storage") == "compressed"
    built = output and emit == "so"
    foreign = bool(built) and is_foreign(str(output))
    print(f"weights:   {s['weights_bytes']} bytes"
          + (f", stored compressed in {result.metadata['weights_stored_bytes']}"
             if compressed else "")
          + (decode_time(output) if compressed and built and not foreign else ""))
    print(f"kernels:   {s['nodes']}")
    print(f"time:      {format_times(dict(s['seconds']))}")  # type: ignore[call-overload]
    if output and emit == "so":
        from sqzc.tools.elf import size_summary

        print(f"library:   {Path(output).stat().st_size:,} bytes: "
              f"{size_summary(output, int(result.metadata['weights_stored_bytes']))}")
    if foreign:  # no hardware to time it on: what its kernels execute, under qemu
        from sqzc.tools.bench import count_macs
        from sqzc.tools.instruction_mix import measure

        try:
            print(f"mix:       {measure(str(output)).format(count_macs(result.graph))}")
        except SqzcError as e:
            print(f"mix:       unknown ({str(e).splitlines()[0]})")
    from sqzc.weights.analysis import format_report, weight_report

    print("weights by tensor (library bytes today; the source tensor's zero-order bound "
          "and best lossless coding):")
    print(format_report(weight_report(result.graph)))


def decode_time(library: str) -> str:
    """``; decoded in X ms ...``: a library with compressed weights loaded in this process
    (its first load, so ``sqz_init`` decodes), or why it cannot run here."""
    from sqzc.runtime import load

    try:
        seconds = load(library, threads=1).decode_seconds
    except SqzcError as e:
        return f"; decode time unknown: {str(e).splitlines()[0]}"
    return f"; decoded at load in {seconds * 1e3:.1f} ms (sqz_init, once per process, this CPU)"


def format_times(seconds: dict[str, float]) -> str:
    """The ``--stats`` time line: parts that do not overlap, then the total. The driver's
    ``codegen`` clock starts with ``llvm`` (lowering + LLVM optimization), so codegen is
    shown without it (machine-code emission alone)."""
    parts = {k: v for k, v in seconds.items() if k != "total"}
    if "codegen" in parts and "llvm" in parts:
        parts["codegen"] = max(0.0, parts["codegen"] - parts["llvm"])
    text = ", ".join(f"{k} {v:.2f}s" for k, v in parts.items())
    if "total" in seconds:
        text += f"; total {seconds['total']:.2f}s"
    return text


def cmd_info(args: argparse.Namespace) -> int:
    """``sqzc info``: metadata and sizes of a compiled library."""
    from sqzc.runtime.cpu import missing_features
    from sqzc.runtime.library import (is_foreign, open_library, parse_metadata, read_metadata,
                                      read_metadata_file)
    from sqzc.tools.elf import size_summary

    # no CompiledModel: info also describes a library this CPU cannot run, and one built
    # for another architecture (read from its file, never loaded)
    path = os.path.abspath(args.library)
    if not os.path.exists(path):
        raise LibraryError(f"{args.library}: no such file")
    foreign = is_foreign(path)
    meta = dict(read_metadata_file(path) if foreign else read_metadata(open_library(path), path))
    dynamic, input_specs, output_specs = parse_metadata(meta, path)
    if args.json:
        print(json.dumps(meta, indent=1, sort_keys=True))
        return 0
    size = Path(args.library).stat().st_size
    print(f"library:    {args.library} ({size} bytes)")
    print(f"compiler:   {meta.get('compiler')} (ABI {meta.get('abi_version')}, "
          f"-O{meta.get('opt_level')}"
          + (", --optimize size" if meta.get("optimize") == "size" else "") + ")")
    print(f"model:      {meta.get('model_name')} sha256 {meta.get('model_sha256')}")
    for s in input_specs:
        print(f"input:      {s}")
    for s in output_specs:
        print(f"output:     {s}")
    print(f"batch:      {'dynamic (any N >= 1)' if dynamic else 'static'}")
    storage = meta.get("weights_storage", "raw")
    target = meta.get("target", {})
    missing = [] if foreign else missing_features(str(target.get("features", "")))
    if storage == "compressed":
        print(f"weights:    {meta.get('weights_bytes')} bytes, stored compressed in "
              f"{meta.get('weights_stored_bytes')}"
              + (decode_time(path) if not missing and not foreign else
                 " (decoded once per process by sqz_init)"))
    else:
        print(f"weights:    {meta.get('weights_bytes')} bytes")
    try:
        stored = int(meta.get("weights_stored_bytes") or meta.get("weights_bytes") or 0)
        print(f"sections:   {size_summary(args.library, stored)}")
    except SqzcError as e:  # a library sqzc can load but whose sections it cannot read
        print(f"sections:   unknown ({e})")
    if meta.get("arena_bytes") is not None:
        print(f"arena:      {meta.get('arena_bytes')} bytes (liveness lower bound "
              f"{meta.get('arena_lower_bound')} bytes)")
        print(f"workspace:  {meta.get('workspace_bytes')} bytes (arena + runtime scratch)")
    else:  # libraries from before arena_bytes was recorded
        print(f"workspace:  {meta.get('workspace_bytes')} bytes (liveness lower bound "
              f"{meta.get('arena_lower_bound')} bytes)")
    print(f"target:     {target.get('cpu')} (vector width {target.get('vector_width')} floats"
          + (f", {target.get('triple')}" if foreign else "") + ")")
    if foreign:
        print("this CPU:   another architecture: sqzc run and sqzc verify --target run it "
              "under qemu")
    if missing:
        print(f"this CPU:   cannot run it (lacks {', '.join(missing)})")
    return 0
