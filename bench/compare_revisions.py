#!/usr/bin/env python3
"""Time the libraries two revisions of sqzc build for the benchmark matrix, in one run.

A refactor must not change speed, and machines drift between runs, so "before" and
"after" are measured in the same process: the libraries of revision ``--before`` (built
by that revision's own code, checked out in a temporary directory) and of the working
tree are loaded side by side with an onnxruntime session, and the three engines are timed
in turn, interleaved, round after round (``sqzc.tools.bench``'s scheme: with 2 threads
each engine runs blocks of 10 after a pause, so idle worker pools settle). The models are
``bench/run_matrix.py``'s. Reported: medians, each sqzc build's ratio to onnxruntime, and
after / before. Usage:

    python bench/compare_revisions.py --before 857fe5c [--rounds 200] [--threads 1,2]
        [--out bench/RESULTS-restructure.md]
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_matrix import FLOAT_PATH_S8S8, models  # noqa: E402

from sqzc.runtime import load  # noqa: E402
from sqzc.tools.bench import cpu_name, time_engines  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def checkout(rev: str, where: Path) -> Path:
    """The source tree of ``rev`` (``git archive``), for building with that revision."""
    where.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def build(tree: Path, model: Path, out: Path, fuse_int8_qdq: bool) -> None:
    """Compile ``model`` with the sqzc of source tree ``tree`` (its own process)."""
    args = [sys.executable, "-m", "sqzc", "compile", str(model), "-o", str(out)]
    if not fuse_int8_qdq:
        args.append("--no-fuse-int8-qdq")
    env = dict(os.environ, PYTHONPATH=str(tree))
    subprocess.run(args, check=True, env=env, cwd=tree, capture_output=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", required=True, help="git revision to compare against")
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--out", default=str(ROOT / "bench" / "RESULTS-restructure.md"))
    args = ap.parse_args()
    import onnxruntime as ort

    rev = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", args.before],
                         check=True, capture_output=True, text=True).stdout.strip()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          check=True, capture_output=True, text=True).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        old_tree = checkout(rev, tmp / "before")
        for label, path in models(tmp):
            fuse = label != FLOAT_PATH_S8S8
            libs = {}
            for name, tree in (("before", old_tree), ("after", ROOT)):
                libs[name] = tmp / f"{name}-{len(rows)}.so"
                build(tree, path, libs[name], fuse)
            for t in (int(x) for x in args.threads.split(",")):
                before, after = load(libs["before"], threads=t), load(libs["after"], threads=t)
                rng = np.random.default_rng(0)
                feeds = {s.name: (rng.random([1 if d is None else d for d in s.shape]) * 255)
                         .astype(s.dtype) for s in after.input_specs}
                outs = [before.run(feeds), after.run(feeds)]
                same = all(np.array_equal(a, b) for a, b in zip(*(o.values() for o in outs)))
                so = ort.SessionOptions()
                so.intra_op_num_threads, so.inter_op_num_threads = t, 1
                so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
                sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
                times = time_engines({"before": lambda: before.run(feeds),
                                      "after": lambda: after.run(feeds),
                                      "onnxruntime": lambda: sess.run(None, feeds)},
                                     t, args.rounds)
                med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
                rows.append((label, t, med, same))
                print(f"{label:<38} {t}T before {med['before']:.2f} after {med['after']:.2f} "
                      f"ort {med['onnxruntime']:.2f} ms  after/before "
                      f"{med['after'] / med['before']:.3f}  identical outputs {same}", flush=True)
    lines = [
        f"# sqzc before and after a refactor, one run ({datetime.date.today().isoformat()})", "",
        f"CPU: {cpu_name()} ({os.cpu_count()} CPUs). Before: {rev}; after: {head} (working "
        f"tree). Batch 1, median of {args.rounds} interleaved rounds after 20 warm-up rounds, "
        "same process and input; onnxruntime with all graph optimizations, sequential "
        "execution, the same thread count. Produced by `python bench/compare_revisions.py "
        f"--before {args.before}`.", "",
        "| model | threads | before ms | after ms | onnxruntime ms | before / ort | after / ort "
        "| after / before | same outputs |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, t, med, same in rows:
        o = med["onnxruntime"]
        lines.append(f"| {label} | {t} | {med['before']:.2f} | {med['after']:.2f} | {o:.2f} | "
                     f"{med['before'] / o:.2f} | {med['after'] / o:.2f} | "
                     f"**{med['after'] / med['before']:.3f}** | {'yes' if same else 'NO'} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
