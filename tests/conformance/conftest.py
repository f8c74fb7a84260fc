"""End-of-session summary for the ONNX conformance suite: passed / excluded / failed per op.

The test module in this folder defines ``op_of(test_name)`` and
``exclusion_reason(test_name)``; this file records every conformance test's outcome and
prints one table per session (only when conformance tests ran), followed by the
exclusions grouped by reason, the failures by op, and the compile-cache statistics of
:class:`sqzc.tools.onnx_backend.SqzcBackend`.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent

#: nodeid -> (op, test name, exclusion reason or None), filled at collection.
_TESTS: dict[str, tuple[str, str, str | None]] = {}
#: nodeid -> "passed" | "excluded" | "failed".
_OUTCOMES: dict[str, str] = {}
_START: list[float] = []


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Remember which collected items are conformance tests and which op each tests."""
    for item in items:
        if Path(str(item.path)).resolve().parent != HERE:
            continue
        module: Any = getattr(item, "module", None)
        op_of = getattr(module, "op_of", None)
        reason_of = getattr(module, "exclusion_reason", None)
        if op_of is None or reason_of is None:
            continue
        name = item.name  # node tests end in _cpu; constant-parameter reruns do not
        reason = reason_of(name) if name.endswith("_cpu") else None
        _TESTS[item.nodeid] = (op_of(name), name, reason)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Fold setup/call/teardown reports into one outcome per conformance test."""
    if report.nodeid not in _TESTS:
        return
    if not _START:
        _START.append(time.perf_counter())
    previous = _OUTCOMES.get(report.nodeid)
    if report.failed:
        _OUTCOMES[report.nodeid] = "failed"
    elif report.skipped and previous != "failed":
        _OUTCOMES[report.nodeid] = "excluded"
    elif report.passed and report.when == "call" and previous is None:
        _OUTCOMES[report.nodeid] = "passed"


def _row(label: str, c: Counter[str]) -> str:
    reruns = ""
    if c["rerun_passed"] or c["rerun_failed"]:
        reruns = f"   {c['rerun_passed']:>3} / {c['rerun_failed']}"
    return f"{label}{c['passed']:>8}{c['excluded']:>10}{c['failed']:>8}{reruns}"


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    """Print the per-op table (and the details behind it) after the run."""
    if not _OUTCOMES:
        return
    tr = terminalreporter
    per_op: dict[str, Counter[str]] = defaultdict(Counter)
    reasons: Counter[str] = Counter()
    failed: dict[str, list[str]] = defaultdict(list)
    for nodeid, outcome in _OUTCOMES.items():
        op, name, reason = _TESTS[nodeid]
        rerun = not name.endswith("_cpu")
        per_op[op][f"rerun_{outcome}" if rerun else outcome] += 1
        if outcome == "excluded":
            reasons[reason or "skipped (no exclusion group)"] += 1
        elif outcome == "failed":
            failed[op].append(name)

    tr.write_sep("=", "sqzc ONNX backend conformance (node tests)")
    width = max(len(op) for op in per_op) + 2
    tr.write_line(f"{'op'.ljust(width)}{'passed':>8}{'excluded':>10}{'failed':>8}"
                  f"   const-param reruns passed/failed")
    total: Counter[str] = Counter()
    for op in sorted(per_op):
        c = per_op[op]
        total.update(c)
        tr.write_line(_row(op.ljust(width), c))
    tr.write_line(_row("TOTAL".ljust(width), total))
    if reasons:
        tr.write_line("")
        tr.write_line("excluded, by reason:")
        for reason, n in reasons.most_common():
            tr.write_line(f"  {n:4d}  {reason}")
    if failed:
        tr.write_line("")
        tr.write_line("FAILED (not excluded: a regression or a new bug):", red=True)
        for op in sorted(failed):
            tr.write_line(f"  {op}: {', '.join(sorted(failed[op]))}")
    try:
        from sqzc.tools.onnx_backend import SqzcBackend
    except ImportError:  # pragma: no cover - the test module imported it already
        return
    s = SqzcBackend.stats
    elapsed = time.perf_counter() - _START[0] if _START else 0.0
    tr.write_line("")
    tr.write_line(f"sqzc backend: {s.compiles} libraries compiled, {s.compile_failures} "
                  f"compiles failed, {s.cache_hits} cache hits, {s.compile_seconds:.1f} s "
                  f"compiling (opt level {SqzcBackend.default_opt_level()}); "
                  f"{elapsed:.1f} s running conformance tests")
