"""Runs the pass pipeline with LLVM-style instrumentation.

Per pass: skip if disabled or above the optimization level -> print-before -> run ->
verify -> time -> print-after / print-changed / dump-dir. Every exception escaping a
pass gets the pass name prepended, so a failure says where in the pipeline it happened.

Every pass is ``fn(graph, ctx) -> changed``: ``ctx`` is the ``PassContext``, the compile
options and target facts passes may read (the driver builds it from ``CompileOptions``
and the target: ``sqzc.driver.pass_context``). The graph holds only the model.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from sqzc.errors import InternalError, SqzcError, UsageError
from sqzc.ir import Graph
from sqzc.ir_text import print_ir
from sqzc.ir_verifier import verify


@dataclass(frozen=True)
class PassContext:
    """What passes may know besides the graph: target facts and compile options. The
    defaults (a 16-channel block without VNNI, every rewrite allowed) are what a pass
    called directly, without a driver, assumes."""

    target_block: int = 16  # channel block of the NCHW[b]c layouts assign-layout makes
    target_vnni: bool = False  # blocked integer convs use AVX512-VNNI's 4-byte groups
    target_sdot: bool = False  # ... or Arm's signed dot product (SDOT) on 4-byte groups
    allow_winograd: bool = True  # select-winograd may run (--no-winograd clears it)
    #: ``--optimize size``: no Winograd, one shared run-time-geometry kernel per conv kind
    optimize_size: bool = False
    fuse_int8_qdq: bool = True  # fold-qdq fuses int8 QDQ groups too (--no-fuse-int8-qdq)


#: The context of a pass called without one (tests, tools).
DEFAULT_CONTEXT = PassContext()


@dataclass(frozen=True)
class PassInfo:
    """A named pass: ``fn(graph, ctx) -> changed``, run at ``min_level`` and above."""

    name: str
    fn: Callable[[Graph, PassContext], bool]
    min_level: int = 1

    @property
    def summary(self) -> str:
        """The first docstring line: what ``sqzc passes`` prints."""
        doc = (self.fn.__doc__ or "").strip()
        return doc.splitlines()[0] if doc else ""


@dataclass
class Instrumentation:
    """What to print, dump, time and check around passes (CLI flags map 1:1)."""

    print_before: frozenset[str] = frozenset()
    print_after: frozenset[str] = frozenset()
    print_after_all: bool = False
    print_changed: bool = False
    dump_dir: Path | None = None
    time_passes: bool = False
    verify_each: bool = False
    disabled: frozenset[str] = frozenset()
    stream: TextIO = field(default_factory=lambda: sys.stderr)


@dataclass
class PassRecord:
    """How one pass went: whether it ran, changed the graph, and how long it took."""

    name: str
    ran: bool
    changed: bool
    seconds: float


def check_pass_names(names: frozenset[str] | set[str], pipeline: tuple[PassInfo, ...],
                     flag: str) -> None:
    """Raise a UsageError for unknown pass names, listing the valid ones."""
    valid = [p.name for p in pipeline]
    unknown = sorted(set(names) - set(valid))
    if unknown:
        raise UsageError(f"{flag}: unknown pass {', '.join(repr(u) for u in unknown)}; "
                         f"valid passes: {', '.join(valid)}")


def run_pipeline(graph: Graph, pipeline: tuple[PassInfo, ...], opt_level: int,
                 inst: Instrumentation | None = None,
                 ctx: PassContext = DEFAULT_CONTEXT) -> list[PassRecord]:
    """Run ``pipeline`` over ``graph`` in place, every pass with ``ctx``; returns one
    record per pass."""
    inst = inst or Instrumentation()
    for flag, names in (("--print-before", inst.print_before),
                        ("--print-after", inst.print_after),
                        ("--disable-pass", inst.disabled)):
        check_pass_names(names, pipeline, flag)
    if inst.dump_dir is not None:
        inst.dump_dir.mkdir(parents=True, exist_ok=True)
        (inst.dump_dir / "000_input.sqzir").write_text(print_ir(graph))
    records = []
    for number, p in enumerate(pipeline, start=1):
        if p.name in inst.disabled or opt_level < p.min_level:
            records.append(PassRecord(p.name, False, False, 0.0))
            continue
        if p.name in inst.print_before:
            _print(inst.stream, f"IR before {p.name}", graph)
        before = print_ir(graph) if inst.print_changed else ""
        t0 = time.perf_counter()
        try:
            changed = bool(p.fn(graph, ctx))
        except SqzcError as e:
            raise type(e)(f"in pass '{p.name}': {e}") from e
        except Exception as e:
            raise InternalError(f"in pass '{p.name}': {type(e).__name__}: {e}") from e
        seconds = time.perf_counter() - t0
        if inst.verify_each:
            try:
                verify(graph)
            except SqzcError as e:
                raise InternalError(f"IR verification failed after pass '{p.name}': {e}") from e
        records.append(PassRecord(p.name, True, changed, seconds))
        text = None
        if inst.print_after_all or p.name in inst.print_after:
            text = print_ir(graph)
            _print(inst.stream, f"IR after {p.name}", graph, text)
        elif inst.print_changed and changed:
            text = print_ir(graph)
            if text != before:
                _print(inst.stream, f"IR after {p.name}", graph, text)
        if inst.dump_dir is not None:
            (inst.dump_dir / f"{number:03d}_{p.name}.sqzir").write_text(text or print_ir(graph))
    if inst.time_passes:
        report_times(records, inst.stream)
    return records


def _print(stream: TextIO, title: str, graph: Graph, text: str | None = None) -> None:
    stream.write(f"// ----- {title} -----\n")
    stream.write(text if text is not None else print_ir(graph))
    stream.flush()


def report_times(records: list[PassRecord], stream: TextIO) -> None:
    """An LLVM ``-time-passes``-style table."""
    total = sum(r.seconds for r in records) or 1e-12
    stream.write("===== sqzc pass execution timing report =====\n")
    stream.write(f"  {'wall (ms)':>10}  {'share':>6}  pass\n")
    for r in records:
        if r.ran:
            stream.write(f"  {r.seconds * 1e3:10.3f}  {r.seconds / total:6.1%}  {r.name}"
                         f"{'  (changed)' if r.changed else ''}\n")
    stream.write(f"  {total * 1e3:10.3f}  100.0%  total\n")
    stream.flush()
