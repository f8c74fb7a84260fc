"""Fuzzing the compiler with mutated SqueezeNets (issue 6, hardening).

Every case is a deterministic mutant (``hardening_mutate.mutate(base, seed)``) of a real
SqueezeNet structure: a two-fire mini SqueezeNet v1.1 in three flavours (opset 13 fp32,
opset 7 fp16, opset 18 fp32 dynamic batch), the zoo's SqueezeNet v1.1 at
64x64, and the pretrained ``SqueezeNet_fp16.onnx`` from the shared folder (when present).

Allowed outcomes per case: a ``sqzc.SqzcError`` other than ``InternalError`` (the error
contract's answer to a bad model), or a library that loads, runs and matches onnxruntime
within the suite's tolerances (when ORT accepts the mutant; when ORT refuses a model sqzc
compiled, or crashes on it, that is listed in the summary, not failed). Anything else
fails the test, and nothing is excused as "known": an ``InternalError`` (the contract's
name for a compiler bug), another exception type, a native crash (the worker process
dies), a hang (per-case timeout), a model accepted with a tensor above sqzc's documented
2^28-element limit, or outputs that differ from onnxruntime. A bug found here gets a
hand-built reproducer in test_hardening_limits.py, as a regression test once fixed or as a
strict xfail while not; a pinned bug keeps failing this test wherever its mutants occur.

The default test fuzzes ``SQZC_FUZZ_CASES`` cases (default 510, split over the base
models in fixed proportions) from case index ``SQZC_FUZZ_START`` (default 0), so e.g.
``SQZC_FUZZ_CASES=3000 SQZC_FUZZ_START=510`` fuzzes 3000 mutants the default run never
sees. The exhaustive tier (``pytest -m exhaustive``) fuzzes the 2550 cases after the
default ones (7-16 min on two shared cores; the default 510 take ~2 min). A case is
reproducible from its name alone: ``<base>-<index>`` has seed ``1_000_003 * (b + 1) +
index`` for the b-th base (``_bases``).

Every case first compiles with ``output=None`` at -O3 (import + every pass, no LLVM), then
builds a library at -O0 (or -O3 for a quarter of the mini-model cases: LLVM at -O3 costs
~0.5 s per case).

The compiles run in worker processes (``hardening_fuzz_worker.py``), two at a time; the
summary is printed (``pytest -s``) and written to ``fuzz-summary.json`` in the test's
temporary folder; every failing mutant is kept there for reproduction.
"""

from __future__ import annotations

import collections
import json
import os
import queue
import selectors
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import hardening_mutate
import onnx
import pytest
from hardening_support import mini_squeezenet, save

pytest.importorskip("onnxruntime")

HERE = Path(__file__).resolve().parent
WORKER = HERE / "hardening_fuzz_worker.py"
#: Seconds one phase (mutate+compile+run, or ORT) of one case may take before it is a hang.
CASE_TIMEOUT = 30.0
WORKERS = 2
#: Cases per run unless SQZC_FUZZ_CASES says otherwise (the tier every CI run pays for).
DEFAULT_CASES = 510
#: Cases of the exhaustive tier (``pytest -m exhaustive``), after the default tier's.
EXHAUSTIVE_CASES = 5 * DEFAULT_CASES


def _env_int(name: str, default: int, minimum: int) -> int:
    """An integer setting from the environment; a typo fails loudly instead of silently
    running the default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise pytest.UsageError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise pytest.UsageError(f"{name}={value} is below {minimum}")
    return value


class _Worker:
    """One worker process and a line reader with timeouts over its protocol pipe."""

    def __init__(self, workdir: Path, index: int) -> None:
        self.workdir = workdir
        self.index = index
        self.restarts = -1
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.restarts += 1
        self.log = self.workdir / f"worker{self.index}-{self.restarts}.log"
        self._buf = b""
        with open(self.log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, str(WORKER), str(self.workdir)], stdin=subprocess.PIPE,
                stdout=subprocess.PIPE, stderr=err, cwd=str(self.workdir))
        hello = self.read(120.0)
        assert isinstance(hello, dict) and hello.get("phase") == "ready", \
            f"fuzz worker did not start: {hello}; log: {self.log_tail()}"

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def read(self, timeout: float) -> dict | str:
        """The next JSON line, or ``"timeout"`` / ``"died"``."""
        assert self.proc is not None and self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while b"\n" not in self._buf:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout"
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    return "died"
                self._buf += chunk
        line, _, self._buf = self._buf.partition(b"\n")
        return json.loads(line)

    def send(self, case: dict) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write((json.dumps(case) + "\n").encode())
        self.proc.stdin.flush()

    def kill(self) -> int | None:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.kill()
        code = self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            if f is not None:
                f.close()
        return code

    def close(self) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


@dataclass
class _Results:
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: collections.Counter = field(default_factory=collections.Counter)
    failures: list[dict] = field(default_factory=list)
    notes: list[dict] = field(default_factory=list)
    driver_errors: list[BaseException] = field(default_factory=list)
    slowest: list[tuple[float, str]] = field(default_factory=list)

    def add(self, outcome: str, case: dict, failure: bool = False, note: bool = False,
            **info: object) -> None:
        entry = {"case": case["case"], "base": case["base"], "seed": case["seed"],
                 "opt": case["opt"], "outcome": outcome, **info}
        with self.lock:
            self.outcomes[outcome] += 1
            if failure:
                self.failures.append(entry)
            if note:
                self.notes.append(entry)


def _drive(worker: _Worker, cases: queue.Queue, results: _Results) -> None:
    try:
        _drive_cases(worker, cases, results)
    except BaseException as e:  # noqa: BLE001 - re-raised by the test in the main thread
        with results.lock:
            results.driver_errors.append(e)


def _drive_cases(worker: _Worker, cases: queue.Queue, results: _Results) -> None:
    while True:
        try:
            case = cases.get_nowait()
        except queue.Empty:
            return
        t0 = time.monotonic()
        worker.send(case)
        rep = worker.read(CASE_TIMEOUT)
        if not isinstance(rep, dict):
            code = worker.kill()
            what = "hang" if rep == "timeout" else "crash"
            results.add(what, case, failure=True, phase="sqzc", returncode=code,
                        log=worker.log_tail(), kept=str(worker.workdir / f"{case['case']}.onnx"))
            worker.start()
            continue
        outcome = rep["outcome"]
        info = {k: rep[k] for k in ("mutation", "error", "detail", "stage") if k in rep}
        if outcome == "rejected":
            results.add("rejected", case, **info)
        elif outcome in ("internal_error", "oversize_accepted", "bad_exception",
                         "mutator_error"):
            kept = worker.workdir / f"{case['case']}.onnx"
            results.add(outcome, case, failure=True, **info,
                        **({"kept": str(kept)} if kept.exists() else {}))
        elif outcome == "too_big":
            results.add("too_big", case, note=True, **info)
        else:
            assert outcome == "ran", rep
            ort = worker.read(CASE_TIMEOUT)
            if not isinstance(ort, dict):
                # onnxruntime crashed or hung on a model sqzc compiled and ran: not sqzc's fault.
                worker.kill()
                results.add("ort_crashed", case, note=True, **info)
                worker.start()
            elif ort["outcome"] == "match":
                results.add("match", case)
            elif ort["outcome"] == "ort_rejects":
                results.add("ort_rejects", case, note=True, ort=ort["detail"], **info)
            else:
                results.add("mismatch", case, failure=True, ort=ort["detail"], **info)
        with results.lock:
            results.slowest.append((time.monotonic() - t0, case["case"]))


def _bases(tmp: Path, shared: Path | None) -> list[tuple[str, Path, int, tuple[int, ...]]]:
    """(name, file, share of the cases, opt levels cycled through) per base model.

    The shares sum to DEFAULT_CASES, so a default run fuzzes each base share times.
    """
    from sqzc.tools.zoo import build

    extra = 0 if shared is not None else 90  # the same total without the shared model
    bases = [
        ("mini13", save(mini_squeezenet(opset=13), tmp, "base-mini13"), 230 + extra,
         (0, 0, 0, 3)),
        ("mini7h", save(mini_squeezenet(opset=7, dtype="float16"), tmp, "base-mini7h"), 70,
         (0, 0, 0, 3)),
        ("mini18d", save(mini_squeezenet(opset=18, batch=None), tmp, "base-mini18d"), 70,
         (0, 0, 0, 3)),
        ("zoo11", save(build("squeezenet1.1", image_size=64, num_classes=10), tmp,
                       "base-zoo11"), 50, (0,)),
    ]
    if shared is not None:
        bases.append(("fp16", shared / "models" / "SqueezeNet_fp16.onnx", 90, (0,)))
    assert sum(b[2] for b in bases) == DEFAULT_CASES
    return bases


def _case_range(share: int, start: int, cases: int) -> range:
    """The case indices of one base for a run of ``cases`` cases from index ``start``:
    runs [0, n) and [n, n + m) together fuzz the same mutants as one run [0, n + m)."""
    return range(share * start // DEFAULT_CASES, share * (start + cases) // DEFAULT_CASES)


def _shared() -> Path | None:
    root = HERE.parents[1]
    for candidate in (root.parent / "shared", root / "shared"):
        if (candidate / "models" / "SqueezeNet_fp16.onnx").is_file():
            return candidate
    return None


def test_fuzz_mutated_squeezenets(tmp_path: Path) -> None:
    _fuzz(tmp_path, _env_int("SQZC_FUZZ_CASES", DEFAULT_CASES, minimum=20),
          _env_int("SQZC_FUZZ_START", 0, minimum=0))


@pytest.mark.exhaustive
def test_fuzz_mutated_squeezenets_exhaustive(tmp_path: Path) -> None:
    """EXHAUSTIVE_CASES mutants the default tier never sees (they start where it stops)."""
    _fuzz(tmp_path, EXHAUSTIVE_CASES, DEFAULT_CASES)


def _fuzz(tmp_path: Path, requested: int, start: int) -> None:
    """Fuzz ``requested`` cases from case index ``start`` (see the module docstring)."""
    shared = _shared()
    cases: queue.Queue = queue.Queue()
    total = 0
    bases = _bases(tmp_path, shared)
    for b, (name, path, share, levels) in enumerate(bases):
        onnx.checker.check_model(onnx.load(str(path)))  # the unmutated base is valid
        for i in _case_range(share, start, requested):
            seed = 1_000_003 * (b + 1) + i
            cases.put({"case": f"{name}-{i:03d}", "base": str(path), "seed": seed,
                       "opt": levels[i % len(levels)]})
            total += 1
    assert abs(total - requested) < len(bases), (total, requested)  # rounding per base
    results = _Results()
    t0 = time.monotonic()
    workers = [_Worker(tmp_path, i) for i in range(WORKERS)]
    threads = [threading.Thread(target=_drive, args=(w, cases, results)) for w in workers]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        for w in workers:
            w.close()
    elapsed = time.monotonic() - t0
    if results.driver_errors:
        raise results.driver_errors[0]
    assert sum(results.outcomes.values()) == total

    summary = {
        "cases": total, "start": start, "seconds": round(elapsed, 1),
        "outcomes": dict(results.outcomes), "notes": results.notes,
        "failures": results.failures,
        "slowest": sorted(results.slowest, reverse=True)[:5],
    }
    (tmp_path / "fuzz-summary.json").write_text(json.dumps(summary, indent=1))
    print(f"\nfuzz: {total} cases from index {start} in {elapsed:.1f} s: "
          f"{dict(results.outcomes)}")
    print(f"fuzz: {len(results.failures)} failures, {len(results.notes)} notes; summary in "
          f"{tmp_path / 'fuzz-summary.json'}")
    for n in results.notes:
        print(f"  note {n['case']} seed={n['seed']} {n['outcome']}: {n.get('mutation')} "
              f"| {n.get('ort', n.get('detail', ''))[:200]}")
    # Guard against a fuzzer that tests nothing: both kinds of outcome must be common.
    assert results.outcomes["rejected"] >= total // 10, results.outcomes
    assert results.outcomes["match"] >= total // 10, results.outcomes
    assert not results.failures, "fuzz failures:\n" + "\n".join(
        json.dumps(f)[:3000] for f in results.failures)


def test_mutator_is_deterministic_and_varied() -> None:
    base = mini_squeezenet().SerializeToString()
    a = [hardening_mutate.mutate(base, seed) for seed in range(40)]
    b = [hardening_mutate.mutate(base, seed) for seed in range(40)]
    assert a == b
    assert len({data for data, _ in a}) >= 38
    assert all(data != base for data, desc in a if "too few" not in desc and "no " not in desc)
    kinds = {desc.split(":")[0] for _, desc in a}
    assert len(kinds) >= 8, kinds
