"""Run the mutation tier: plant each curated bug (``mutants.py``) in a private copy of the
package and check that its default-tier tests fail.

    python tests/mutation/run_mutants.py            # all mutants, a table, exit 1 if any survive
    python tests/mutation/run_mutants.py NAME ...   # only these
    python tests/mutation/run_mutants.py --list

First the listed tests run on the unmutated copy (they must pass, or a "catch" would mean
nothing); then each mutant runs with ``pytest -x``. The table gives the catch rate and, per
mutant, the first test that failed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from mutants import MUTANTS  # noqa: E402
from mutation_tree import (  # noqa: E402
    Mutant, Outcome, build_tree, imports_from, run_mutant, run_tests)


def select(names: list[str]) -> list[Mutant]:
    by_name = {m.name: m for m in MUTANTS}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise SystemExit(f"unknown mutant(s) {unknown}; --list shows them")
    return [by_name[n] for n in names] if names else list(MUTANTS)


def report(outcomes: list[Outcome]) -> str:
    caught = sum(o.caught for o in outcomes)
    lines = [f"mutation tier: {caught}/{len(outcomes)} caught", "",
             "| mutant | caught | by | seconds |", "|---|---|---|---|"]
    for o in outcomes:
        by = o.failed[0] if o.failed else f"(pytest exit {o.returncode})"
        lines.append(f"| {o.mutant.name} | {'yes' if o.caught else 'NO'} | {by} | "
                     f"{o.seconds:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("names", nargs="*", help="mutants to run (default: all)")
    ap.add_argument("--list", action="store_true", help="list the mutants and their tests")
    args = ap.parse_args(argv)
    chosen = select(args.names)
    if args.list:
        for m in chosen:
            print(f"{m.name}: {m.why}\n    {m.path}\n    tests: {' '.join(m.tests)}")
        return 0
    with tempfile.TemporaryDirectory(prefix="sqzc-mutants-") as tmp:
        tree = build_tree(Path(tmp))
        where = imports_from(tree)
        if not where.is_relative_to(tree):
            print(f"run_mutants: sqzc imports from {where}, not the copy", file=sys.stderr)
            return 2
        tests = tuple(dict.fromkeys(t for m in chosen for t in m.tests))
        code, failed, log, secs = run_tests(tree, tests, stop_first=False)
        if code != 0:
            print(log[-6000:], file=sys.stderr)
            print(f"run_mutants: the tests fail without any mutant ({failed}); "
                  "nothing can be concluded", file=sys.stderr)
            return 2
        print(f"baseline: {len(tests)} test selections pass unmutated ({secs:.0f} s)", flush=True)
        outcomes = []
        for m in chosen:
            o = run_mutant(tree, m)
            outcomes.append(o)
            print(f"  {m.name}: {'caught' if o.caught else 'SURVIVED'} "
                  f"({o.failed[0] if o.failed else 'exit ' + str(o.returncode)}, "
                  f"{o.seconds:.0f} s)", flush=True)
    print(report(outcomes))
    return 0 if all(o.caught for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
