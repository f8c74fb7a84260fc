"""Plant one bug in a private copy of the package and run tests against that copy.

The mutation tier must never touch the checkout other processes import (editable
installs, CI's ``pip install .``), so each run builds the *installed* layout of the
package in a temporary folder, laid out by ``pyproject.toml``'s ``package-dir`` table
(``sqzc/``, with ``frontends/``, ``backends/`` and ``runtime/`` under it), and puts it
first on ``PYTHONPATH``. That shadows both a site-packages install and setuptools'
editable finder (appended to ``sys.meta_path`` after the path finder), and the
``sqzc`` console script run by the CLI tests imports the same copy because the
environment variable is inherited.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Mutant:
    """One planted bug: replace ``old`` by ``new`` in ``path`` (repo-relative).

    ``old`` must occur exactly ``occurrences`` times (all are replaced), so a refactor that
    moves the code fails the mutant list's own check instead of silently planting nothing.
    ``tests`` are default-tier pytest node ids (or files) written to catch this bug.
    """

    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str
    occurrences: int = 1


@dataclass(frozen=True)
class Outcome:
    """What running a mutant's tests gave: ``caught`` when pytest reported failures."""

    mutant: Mutant
    returncode: int
    failed: tuple[str, ...]
    seconds: float
    log: str

    @property
    def caught(self) -> bool:
        return self.returncode == 1 and bool(self.failed)


def package_dirs(root: Path = ROOT) -> dict[str, Path]:
    """Dotted package name -> source folder, from ``[tool.setuptools] package-dir``."""
    meta = tomllib.loads((root / "pyproject.toml").read_text())
    mapping = meta["tool"]["setuptools"]["package-dir"]
    return {pkg: root / src for pkg, src in mapping.items()}


def installed_path(repo_relative: str, root: Path = ROOT) -> Path:
    """Where a repo file lands in the installed layout (``backends/x.py`` ->
    ``sqzc/backends/x.py``)."""
    src = (root / repo_relative).resolve()
    best: tuple[int, Path] | None = None
    for pkg, folder in package_dirs(root).items():
        folder = folder.resolve()
        if src.is_relative_to(folder):
            rel = Path(*pkg.split(".")) / src.relative_to(folder)
            depth = len(folder.parts)
            if best is None or depth > best[0]:
                best = (depth, rel)
    if best is None:
        raise ValueError(f"{repo_relative} is not inside any package folder of pyproject.toml")
    return best[1]


def build_tree(dest: Path, root: Path = ROOT) -> Path:
    """Copy the package into ``dest`` in its installed layout; returns ``dest``."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    # Outer packages first, so nested package folders overwrite nothing of theirs.
    for pkg, folder in sorted(package_dirs(root).items(), key=lambda kv: kv[0].count(".")):
        target = dest / Path(*pkg.split("."))
        if target.exists() and pkg.count(".") == 0:
            shutil.rmtree(target)
        shutil.copytree(folder, target, ignore=ignore, dirs_exist_ok=True)
    return dest


def count_in_source(m: Mutant, root: Path = ROOT) -> int:
    """How often the mutant's ``old`` text occurs in its file of the checkout."""
    return (root / m.path).read_text().count(m.old)


def plant(tree: Path, m: Mutant, root: Path = ROOT) -> str:
    """Write the mutated file into ``tree``; returns the original text for ``restore``."""
    target = tree / installed_path(m.path, root)
    original = target.read_text()
    found = original.count(m.old)
    if found != m.occurrences:
        raise ValueError(f"mutant {m.name}: {m.old!r} occurs {found} times in {m.path}, "
                         f"expected {m.occurrences}")
    target.write_text(original.replace(m.old, m.new))
    return original


def restore(tree: Path, m: Mutant, original: str, root: Path = ROOT) -> None:
    (tree / installed_path(m.path, root)).write_text(original)


#: ``-rfE`` summary lines: "FAILED <node id> - <message>" (node ids may contain spaces).
FAILED_RE = re.compile(r"^(?:FAILED|ERROR) (.+?)(?: - .*)?$", re.M)


def run_tests(tree: Path, tests: tuple[str, ...], stop_first: bool = True,
              timeout: float = 1800, root: Path = ROOT) -> tuple[int, tuple[str, ...], str, float]:
    """``pytest`` on ``tests`` importing sqzc from ``tree``: (exit code, failed ids, log, s)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(tree), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PYTHONSAFEPATH"] = "1"  # `python -m` would otherwise put the checkout first
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE",
           "-m", "not exhaustive", *(["-x"] if stop_first else []), *tests]
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=root, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    log = proc.stdout + proc.stderr
    return proc.returncode, tuple(FAILED_RE.findall(log)), log, time.monotonic() - t0


def imports_from(tree: Path, root: Path = ROOT) -> Path:
    """The folder ``sqzc`` is imported from with ``tree`` on PYTHONPATH (a sanity check)."""
    env = dict(os.environ, PYTHONPATH=str(tree), PYTHONSAFEPATH="1")
    out = subprocess.run([sys.executable, "-c", "import sqzc.backends; "
                          "print(sqzc.backends.__file__)"], cwd=root, env=env,
                         capture_output=True, text=True, check=True).stdout.strip()
    return Path(out).parent


def run_mutant(tree: Path, m: Mutant, root: Path = ROOT) -> Outcome:
    """Plant ``m`` in ``tree``, run its tests, restore the file."""
    original = plant(tree, m, root)
    try:
        code, failed, log, secs = run_tests(tree, m.tests, root=root)
    finally:
        restore(tree, m, original, root)
    return Outcome(m, code, failed, secs, log)
