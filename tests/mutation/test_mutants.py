"""The mutation tier (issue 26): every curated planted bug must fail a default-tier test.

Two layers:
* default tier: the mutant list itself is checked on every run (each planted text is still
  in its file as often as stated; each catching test names a test function that exists),
  so a refactor that moves code fails here instead of quietly disarming a mutant;
* ``exhaustive`` tier (``pytest -m exhaustive``, run by ``.ci/run``): each mutant is planted
  in a private copy of the package (``mutation_tree.py``) and its tests must fail. The same
  run as a table: ``python tests/mutation/run_mutants.py``.
"""

from __future__ import annotations

import ast
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from mutants import MUTANTS
from mutation_tree import ROOT, Mutant, build_tree, count_in_source, imports_from, run_mutant, \
    run_tests


def _test_functions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {n.name for n in ast.walk(tree)
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name.startswith("test")}


def test_mutant_names_are_unique() -> None:
    names = [m.name for m in MUTANTS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_still_armed(mutant: Mutant) -> None:
    """The planted text is where the mutant says, as often as it says."""
    assert count_in_source(mutant) == mutant.occurrences, (
        f"{mutant.path} no longer contains {mutant.old!r} {mutant.occurrences} time(s): "
        "update tests/mutation/mutants.py to where the code went")
    assert mutant.old != mutant.new and mutant.tests


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_names_existing_tests(mutant: Mutant) -> None:
    for node in mutant.tests:
        file, _, rest = node.partition("::")
        path = ROOT / file
        assert path.is_file(), f"{mutant.name}: no test file {file}"
        if rest:
            func = rest.split("::")[-1].split("[")[0]
            assert func in _test_functions(path), f"{mutant.name}: no test {func} in {file}"


@pytest.fixture(scope="module")
def mutant_tree() -> Iterator[Path]:
    """A private copy of the package whose catching tests pass unmutated."""
    with tempfile.TemporaryDirectory(prefix="sqzc-mutants-") as tmp:
        tree = build_tree(Path(tmp))
        assert imports_from(tree).is_relative_to(tree)
        tests = tuple(dict.fromkeys(t for m in MUTANTS for t in m.tests))
        code, failed, log, _ = run_tests(tree, tests, stop_first=False)
        assert code == 0, f"the catching tests fail without a mutant: {failed}\n{log[-4000:]}"
        yield tree


@pytest.mark.exhaustive
@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_mutant_is_caught(mutant: Mutant, mutant_tree: Path) -> None:
    outcome = run_mutant(mutant_tree, mutant)
    assert outcome.caught, (f"mutant {mutant.name} ({mutant.why}) survived "
                            f"{' '.join(mutant.tests)} (pytest exit {outcome.returncode})\n"
                            f"{outcome.log[-3000:]}")
