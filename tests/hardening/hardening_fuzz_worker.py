"""Fuzz worker process: compiles mutated models with sqzc, runs them, compares with ORT.

Run by tests/hardening/test_hardening_fuzz.py as a child process so that a native crash or
a hang in the compiler (or in a compiled library) cannot take pytest down; the parent
enforces a per-case timeout and restarts the worker after a crash.

Protocol (one JSON object per line): the parent writes
``{"case": str, "base": path, "seed": int, "opt": int}``; for each case the worker answers
with a ``{"phase": "sqzc", ...}`` line (outcome of mutate + compile + load + run) and, if
sqzc produced outputs, a ``{"phase": "ort", ...}`` line (onnxruntime's verdict). The two
phases are reported separately so that a crash inside onnxruntime is not blamed on sqzc.

sqzc outcomes: ``rejected`` (a ``sqzc.SqzcError`` other than ``InternalError``: the
error contract's answer to a bad model), ``ran`` (compiled and ran), ``too_big`` (compiled,
not run: the tensors are too large for a fuzz case), and the findings: ``internal_error``
(``sqzc.InternalError``: the compiler's own checks caught a compiler bug),
``oversize_accepted`` (compiled although a tensor exceeds sqzc's documented 2^28-element
limit; not built further, since building such a model can hang or yield a library that
writes out of bounds), ``bad_exception`` (any other exception, in compile, load or run),
``mutator_error`` (a bug in the test's mutator).
ORT outcomes: ``match``, ``mismatch`` (a bug), ``ort_rejects`` (ORT refused the model or
the inputs while sqzc accepted them: noted, not a failure).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import traceback
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import hardening_mutate  # noqa: E402
import hardening_support  # noqa: E402

import sqzc  # noqa: E402
from sqzc.driver import CompileOptions  # noqa: E402
from sqzc.errors import InternalError, SqzcError  # noqa: E402
from sqzc.ir import MAX_TENSOR_ELEMENTS  # noqa: E402 - README "Safety and limits"

#: Largest number of input+output elements a fuzz case may run with.
MAX_RUN_ELEMENTS = 1 << 22
#: Largest workspace a fuzz case may run with.
MAX_RUN_WORKSPACE = 1 << 29


_PROTO = None  # the protocol stream (the original stdout; fd 1 then points to stderr)


def _send(obj: dict) -> None:
    _PROTO.write(json.dumps(obj) + "\n")
    _PROTO.flush()


def _short(text: str, n: int = 400) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def _sqzc_phase(case: dict, workdir: Path, bases: dict[str, bytes]) -> tuple[dict, dict | None]:
    """Mutate, compile, load and run; returns the report and (feeds, outputs, model bytes)."""
    base_path = case["base"]
    if base_path not in bases:
        bases[base_path] = Path(base_path).read_bytes()
    rep: dict = {"case": case["case"], "phase": "sqzc"}
    try:
        data, desc = hardening_mutate.mutate(bases[base_path], case["seed"])
    except Exception:
        rep.update(outcome="mutator_error", detail=traceback.format_exc())
        return rep, None
    rep["mutation"] = desc
    mpath = workdir / f"{case['case']}.onnx"
    lib = workdir / f"{case['case']}.so"
    mpath.write_bytes(data)
    stage = "analyze"
    try:
        # Frontend + every pass at -O3 (no LLVM), then a full build at the case's level
        # (-O0 skips the passes but is 3-10x faster in LLVM).
        result = sqzc.compile(mpath, None, CompileOptions(opt_level=3, verify_ir=True))
        biggest = max(int(np.prod(result.graph.op(n).out.shape, dtype=object))
                      for n in result.graph.nodes())
        if biggest > MAX_TENSOR_ELEMENTS:
            # The limit is enforced when the IR is built (sqzc.ir.check_size); a tensor
            # past it here means a path around that check. Not built: that may hang.
            rep.update(outcome="oversize_accepted", stage=stage,
                       detail=f"largest tensor {biggest} elements")
            return rep, None
        stage = "compile"
        sqzc.compile(mpath, lib, CompileOptions(opt_level=case["opt"], verify_ir=True))
    except InternalError as e:  # a SqzcError, but the contract's word for a compiler bug
        rep.update(outcome="internal_error", stage=stage, error=type(e).__name__,
                   detail=traceback.format_exc()[-3000:])
        return rep, None
    except SqzcError as e:
        rep.update(outcome="rejected", stage=stage, error=type(e).__name__,
                   detail=_short(str(e)))
        mpath.unlink()
        return rep, None
    except BaseException as e:  # noqa: BLE001 - the point: anything else is a finding
        rep.update(outcome="bad_exception", stage=stage, error=type(e).__name__,
                   detail=traceback.format_exc()[-3000:])
        return rep, None
    stage = "load"
    try:
        m = sqzc.load(lib, threads=1)
        specs = m.input_specs + m.output_specs
        elems = sum(int(np.prod(s.concrete_shape(1))) for s in specs)
        if elems > MAX_RUN_ELEMENTS or m.workspace_size > MAX_RUN_WORKSPACE:
            rep.update(outcome="too_big", detail=f"{elems} elements, workspace "
                                                 f"{m.workspace_size} bytes")
            mpath.unlink()
            lib.unlink()
            return rep, None
        rng = np.random.default_rng(case["seed"])
        feeds = {s.name: rng.standard_normal(s.concrete_shape(1)).astype(s.dtype)
                 for s in m.input_specs}
        stage = "run"
        outs = m.run(feeds)
    except BaseException as e:  # noqa: BLE001 - sqzc compiled it, so it must load and run
        rep.update(outcome="bad_exception", stage=stage, error=type(e).__name__,
                   detail=traceback.format_exc()[-3000:])
        return rep, None
    rep.update(outcome="ran", outputs={k: [list(v.shape), str(v.dtype)] for k, v in outs.items()})
    lib.unlink()
    return rep, {"feeds": feeds, "outs": outs, "data": data, "mpath": mpath}


def _ort_phase(case: dict, ctx: dict) -> dict:
    rep: dict = {"case": case["case"], "phase": "ort"}
    try:
        sess = hardening_support.ort_session(ctx["data"])
        names = [o.name for o in sess.get_outputs()]
        want = sess.run(None, ctx["feeds"])
    except Exception as e:  # noqa: BLE001 - ORT's verdict on the mutant
        rep.update(outcome="ort_rejects", detail=_short(f"{type(e).__name__}: {e}", 300))
        return rep
    got = ctx["outs"]
    if list(got) != names:
        rep.update(outcome="mismatch", detail=f"output names: sqzc {list(got)}, ort {names}")
        return rep
    problems = []
    for name, w in zip(names, want):
        msg = hardening_support.compare(got[name], np.asarray(w))
        if msg:
            problems.append(f"{name}: {msg}")
    if problems:
        rep.update(outcome="mismatch", detail="; ".join(problems))
    else:
        rep.update(outcome="match")
        ctx["mpath"].unlink()
    return rep


def main() -> None:
    global _PROTO
    workdir = Path(sys.argv[1])
    # Anything a library prints on stdout must not corrupt the protocol.
    _PROTO = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    limit = int(os.environ.get("SQZC_FUZZ_MEM_LIMIT", str(8 << 30)))
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import onnxruntime  # noqa: F401 - import before answering "ready"

    bases: dict[str, bytes] = {}
    _send({"phase": "ready", "pid": os.getpid()})
    for line in sys.stdin:
        case = json.loads(line)
        rep, ctx = _sqzc_phase(case, workdir, bases)
        _send(rep)
        if ctx is not None:
            _send(_ort_phase(case, ctx))


if __name__ == "__main__":
    main()
