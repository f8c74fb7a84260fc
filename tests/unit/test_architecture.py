"""Architecture rules of the package, checked from source in a few seconds (issue 20, S1).

The rules (``docs/ARCHITECTURE.md`` explains them):

1. no import cycles, except ``ALLOWED_SCCS``; no cycle at all among imports that run at
   import time. Imports under ``if TYPE_CHECKING:`` do not count: they never execute, so a
   cycle through one cannot fail (and it is how modules type across layers);
2. no package module over 500 lines unless its docstring has a ``Size:`` paragraph saying
   why (``LONG_MODULES`` lists today's exceptions);
3. pyproject's ``[tool.setuptools] packages`` lists exactly the package folders, no
   ``.py`` file sits outside a package, and the console scripts resolve;
4. every ``sqzc.*`` import (and ``python -m sqzc...`` argument) in the package, tests,
   tools, bench and examples names a real module file of the package, and a name it binds;
5. no package module imports another module's ``_private`` name, except
   ``ALLOWED_PRIVATE_IMPORTS``;
6. importing ``sqzc.runtime`` can run only ``sqzc``, ``sqzc.errors`` and ``sqzc.runtime.*``;
7. ``docs/ARCHITECTURE.md`` names every package folder and every pass, and every repo
   path and ``sqzc.*`` name it writes in backticks exists.

The import graph comes from ``tools/import_graph.py`` (ast over the package-dir folders;
run it to see the cycles, edges and private imports). The allowlists are strict both ways:
a new entry fails, and so does an entry that no longer matches the code, so they shrink as
the restructure lands and cannot go stale. Each rule's checker is a function returning the
problems, and each is tested on a small synthetic repository with planted violations (the
``test_checker_*`` tests), so none of these tests passes for want of anything to find.
"""

from __future__ import annotations

import ast
import fnmatch
import functools
import importlib.util
import re
import sys
import textwrap
from collections.abc import Iterable, Mapping
from pathlib import Path
from types import ModuleType

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "import_graph.py"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
MAX_LINES = 500
#: folders outside the package whose imports of sqzc.* must resolve (rule 4)
OUTSIDE = ("tests", "tools", "bench", "examples")
#: what importing sqzc.runtime may run (rule 6): the deployment runtime needs only numpy,
#: so it must never reach the compiler (onnx, llvmlite, networkx live behind it).
RUNTIME_MAY_RUN = ("sqzc", "sqzc.errors", "sqzc.runtime", "sqzc.runtime.*")
#: the ARCHITECTURE.md section about planned work, whose paths need not exist yet
PLAN_HEADING = "Restructure in progress"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sqzc_tools_import_graph", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while decorating
    spec.loader.exec_module(module)
    return module


ig = _load_tool()


@functools.cache
def repo_graph() -> ig.ImportGraph:
    return ig.build(ROOT)


# ----------------------------------------------------------------------------- allowlists

_EMIT = "sqzc.backends.llvm.emit."

#: Today's import cycles (strongly connected components over module- and function-level
#: imports). Each one exists only through a function-level import, i.e. works only
#: because of call timing. Value: the restructure step that removes it (plan, issue 20).
ALLOWED_SCCS: dict[frozenset[str], str] = {}  # none left (issue 20 S5 removed the last)

#: Today's uses of another package module's _private names (importer, module, name) ->
#: the reason they are allowed.
ALLOWED_PRIVATE_IMPORTS: dict[tuple[str, str, str], str] = {}

#: Modules over MAX_LINES without a "Size:" paragraph: repo path -> (line count today,
#: why). The count is a ceiling: growing fails; shrinking to MAX_LINES makes the entry stale.
LONG_MODULES: dict[str, tuple[int, str]] = {}


# ----------------------------------------------------------------------------- checkers


def _cycle_text(graph: ig.ImportGraph, scc: frozenset[str], kinds: Iterable[str]) -> str:
    cycle = graph.example_cycle(scc, kinds)
    return " -> ".join(f"{e.src} ({e.where})" for e in cycle) + f" -> {cycle[0].src}"


def cycle_problems(graph: ig.ImportGraph, allowed: Mapping[frozenset[str], str]) -> list[str]:
    """Rule 1: the SCCs over imports that run (module and function level) are exactly
    ``allowed``. TYPE_CHECKING imports never run (and ``from __future__ import
    annotations`` keeps annotations unevaluated), so a cycle through one cannot fail; it is
    the intended way to type across layers, e.g. ``sqzc/__init__.py`` <-> ``sqzc.driver``."""
    found = set(graph.sccs(ig.RUNTIME_KINDS))
    problems = [
        f"new import cycle: {_cycle_text(graph, c, ig.RUNTIME_KINDS)}. Break it by moving "
        f"the shared code down a layer; only a temporary, planned cycle belongs in "
        f"ALLOWED_SCCS (with the step that removes it)"
        for c in sorted(found - set(allowed), key=sorted)]
    problems += [
        f"ALLOWED_SCCS entry {sorted(c)} ({allowed[c]}) is no longer a cycle of exactly "
        f"these modules; today's cycles: {[sorted(x) for x in graph.sccs()]}. Delete the "
        f"entry (or replace it by the cycle it became)"
        for c in sorted(set(allowed) - found, key=sorted)]
    return problems


def import_time_cycle_problems(graph: ig.ImportGraph) -> list[str]:
    """Rule 1b, no allowlist: a cycle among module-level imports fails (or half-works)
    depending on which module is imported first."""
    return [f"import-time cycle: {_cycle_text(graph, c, {'module'})}"
            for c in graph.sccs({"module"})]


def _has_size_paragraph(path: Path) -> bool:
    doc = ast.get_docstring(ig.parse(path)) or ""
    return any(p.strip().startswith("Size:") and len(p.strip()) > len("Size:") + 10
               for p in re.split(r"\n\s*\n", doc))


def size_problems(tree: ig.Tree, allowed: Mapping[str, tuple[int, str]],
                  limit: int = MAX_LINES) -> list[str]:
    """Rule 2: a module over ``limit`` lines is hard to review and usually mixes concerns;
    one that must stay long says why in a docstring paragraph starting "Size:"."""
    files = [m.path for m in tree.modules.values()] + list(tree.stray_files)
    problems = []
    long = {}
    for rel in sorted(files):
        n = len((tree.root / rel).read_text().splitlines())
        if n > limit and not _has_size_paragraph(tree.root / rel):
            long[rel.as_posix()] = n
    for rel, n in long.items():
        if rel not in allowed:
            problems.append(f"{rel} has {n} lines (> {limit}): split it, or add a docstring "
                            f"paragraph starting 'Size:' that says why it stays long")
        elif n > allowed[rel][0]:
            problems.append(f"{rel} grew to {n} lines (LONG_MODULES allows {allowed[rel][0]} "
                            f"while it is split up: {allowed[rel][1]})")
    problems += [f"LONG_MODULES entry {rel} is stale (the file is gone, is at most {limit} "
                 f"lines or has a Size: paragraph): delete it" for rel in allowed
                 if rel not in long]
    return problems


def packaging_problems(tree: ig.Tree) -> list[str]:
    """Rule 3: the editable install finds every folder, but CI installs a real wheel
    (``pip install .``), which holds only the listed packages: a missing entry breaks only
    CI, and a listed package that does not exist breaks the build."""
    layout = tree.layout
    folders = tree.package_folders
    listed = set(layout.packages)
    problems = [f"package folder {folders[p]}/ ({p}) is not in pyproject.toml "
                f"[tool.setuptools] packages, so a wheel would not install it"
                for p in sorted(set(folders) - listed)]
    problems += [f"pyproject.toml [tool.setuptools] packages lists {p}, but no folder with "
                 f"an __init__.py maps to it" for p in sorted(listed - set(folders))]
    problems += [f"package-dir maps {k} to {v}/, which does not exist"
                 for k, v in layout.package_dir.items() if not (tree.root / v).is_dir()]
    problems += [f"{f} is in a folder without __init__.py: no wheel installs it"
                 for f in tree.stray_files]
    graph = ig.ImportGraph(tree, [], {}, {})
    for name, ref in layout.scripts.items():
        module, _, func = ref.partition(":")
        why = graph.resolve_dotted(f"{module}.{func}" if func else module)
        if why or module not in tree.modules:
            problems.append(f"console script {name} = {ref!r}: {why or f'no module {module}'}")
    return problems


def outside_files(root: Path) -> list[Path]:
    """The .py files of tests, tools, bench and examples (repo-relative)."""
    return sorted(f.relative_to(root) for d in OUTSIDE if (root / d).is_dir()
                  for f in (root / d).rglob("*.py") if "__pycache__" not in f.parts)


def unresolved_imports(graph: ig.ImportGraph, files: Iterable[Path]) -> list[str]:
    """Rule 4: every ``sqzc.*`` import statement (any level, TYPE_CHECKING included) and
    every ``"-m", "sqzc..."`` argument resolves through package-dir, i.e. in what a wheel
    installs, not in whatever importlib finds in this checkout (``sqzc/__init__.py`` maps
    only the package-dir folders there, but an import found that way proves nothing about
    the wheel), and without running any module."""
    problems = []
    sites = [s for ss in graph.sites.values() for s in ss] + ig.scan_files(graph.tree.root,
                                                                             files)
    for s in sites:
        _, why = graph.resolve(s)
        if why:
            what = f"from {s.module} import {s.name}" if s.name else f"import {s.module}"
            problems.append(f"{s.file}:{s.line}: {what}: {why}")
    for f, line, target in ig.module_run_targets(graph.tree.root, files):
        if not graph.tree.layout.is_internal(target):
            continue
        runnable = target if target not in graph.modules or not graph.modules[
            target].is_package else f"{target}.__main__"
        if runnable not in graph.modules:
            problems.append(f"{f}:{line}: python -m {target}: no module {runnable}")
    return problems


def private_problems(graph: ig.ImportGraph,
                     allowed: Mapping[tuple[str, str, str], str]) -> list[str]:
    """Rule 5: a leading underscore says "only this module relies on me", which is what
    lets a refactor change it; a cross-module use must make the name public instead."""
    found = graph.private_imports()
    problems = [f"{imp} uses {mod}.{name} ({', '.join(where)}): make the name public (or "
                f"move the user into {mod})"
                for (imp, mod, name), where in found.items() if (imp, mod, name) not in allowed]
    problems += [f"ALLOWED_PRIVATE_IMPORTS entry {key} ({step}) is no longer used: delete it"
                 for key, step in allowed.items() if key not in found]
    return problems


def runtime_problems(graph: ig.ImportGraph, module: str = "sqzc.runtime",
                     may_run: Iterable[str] = RUNTIME_MAY_RUN) -> list[str]:
    """Rule 6: everything importing ``module`` (and calling its functions) can run, over
    module- and function-level imports and the parent ``__init__`` files, stays inside
    ``may_run``. ``sqzc/__init__.py`` imports only ``sqzc.errors`` eagerly;
    ``sqzc.compile``/``sqzc.load`` import the driver/runtime lazily through ``__getattr__``
    (importlib, not an import statement), which ``sqzc.runtime`` never touches."""
    may_run = tuple(may_run)

    def allowed(m: str) -> bool:
        return any(fnmatch.fnmatchcase(m, p) for p in may_run)

    reached = graph.closure(module)
    bad = {m for m in reached if not allowed(m)}
    g = graph.digraph()
    # report the edges that leave the allowed set, each with what it drags in
    return [f"importing {module} can run {b} via {g[a][b]['edges'][0].where} "
            f"({a} -> {b}), and with it {len(nx.descendants(g, b) & bad)} more module(s)"
            for a, b in sorted(g.edges(reached - bad)) if b in bad]


def doc_body(text: str) -> str:
    """The document without fenced code blocks and without the planned-work section."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)
    m = re.search(rf"^(#+) [^\n]*{re.escape(PLAN_HEADING)}[^\n]*$", text, re.M)
    if m:
        end = re.search(rf"^#{{1,{len(m.group(1))}}} ", text[m.end():], re.M)
        text = text[:m.start()] + (text[m.end() + end.start():] if end else "")
    return text


_PATHLIKE = re.compile(r"^[\w.\-]+(/[\w.\-*]*)+$|^[\w.\-]+\.(py|md|toml)$")
_DOTTED = re.compile(r"^sqzc(\.[A-Za-z_]\w*)+$")


def pass_names(graph: ig.ImportGraph) -> list[str]:
    """The names of every ``PassInfo("name", ...)`` in the package (wherever PIPELINE
    lives: it moves in S3)."""
    out = []
    for m in graph.modules.values():
        if "PassInfo(" not in (graph.tree.root / m.path).read_text():
            continue
        for node in ast.walk(ig.parse(graph.tree.root / m.path)):
            if (isinstance(node, ast.Call) and node.args
                    and getattr(node.func, "id", getattr(node.func, "attr", "")) == "PassInfo"
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                out.append(node.args[0].value)
    return out


def doc_problems(text: str, graph: ig.ImportGraph) -> list[str]:
    """Rule 7: the architecture doc must stay true at every commit of the restructure:
    every package folder is named (as ``folder/`` in backticks), so is every pass, and
    every repo path and ``sqzc.*`` name in backticks exists, outside the section headed
    PLAN_HEADING (planned paths). A path token may carry ``:line`` suffixes and ``*``
    globs."""
    root = graph.tree.root
    body = doc_body(text)
    tokens = [t.strip(".,;:()") for span in re.findall(r"`([^`\n]+)`", body)
              for t in span.split()]
    top = {p.name for p in root.iterdir()}
    names = {m.path.name for m in graph.modules.values()}
    problems = [f"ARCHITECTURE.md does not mention the package folder `{p.as_posix()}/`"
                for p in graph.tree.package_folders.values()
                if f"{p.as_posix()}/" not in tokens]
    problems += [f"ARCHITECTURE.md does not mention the pass {name}"
                 for name in pass_names(graph) if not re.search(rf"\b{re.escape(name)}\b(?!-)",
                                                                  body)]
    for tok in dict.fromkeys(tokens):
        path = re.sub(r"(:\d+(-\d+)?)+(,\d+(-\d+)?)*$", "", tok)
        if not _PATHLIKE.match(path):
            exists = True
        elif "/" not in path:  # a bare file name (`conv.py`): some module's, or top-level
            exists = (root / path).exists() or path in names
        elif path.split("/")[0] in top or path.endswith(("/", ".py", ".md", ".toml")):
            exists = (any(root.glob(path.rstrip("/"))) if "*" in path else
                      (root / path).is_dir() if path.endswith("/") else (root / path).exists())
        else:
            exists = True  # `uint8/int8`: not a path
        if not exists:
            problems.append(f"ARCHITECTURE.md names `{tok}`, which does not exist")
        if _DOTTED.match(tok.removesuffix("()")):
            why = graph.resolve_dotted(tok.removesuffix("()"))
            if why:
                problems.append(f"ARCHITECTURE.md names `{tok}`: {why}")
    return problems


# ----------------------------------------------------------------------------- the rules


def test_the_graph_sees_the_package() -> None:
    """Every rule would pass vacuously on an empty graph (say, pyproject's package-dir
    unread): the real layout must be found, with its edges and outside imports."""
    graph = repo_graph()
    assert {"sqzc", "sqzc.ir", "sqzc.frontends.onnx.importer", "sqzc.backends.llvm.module",
            "sqzc.runtime.loader"} <= set(graph.modules)
    assert len({(e.src, e.dst) for e in graph.edges}) > 200
    assert {e.kind for e in graph.edges} == {"module", "function", "typing"}
    assert any(e.implicit for e in graph.edges)
    outside = ig.scan_files(ROOT, outside_files(ROOT))
    assert sum(graph.tree.layout.is_internal(s.module) for s in outside) > 100
    assert ig.module_run_targets(ROOT, outside_files(ROOT))  # tests run python -m sqzc...


def test_no_import_cycles_beyond_the_allowlist() -> None:
    problems = cycle_problems(repo_graph(), ALLOWED_SCCS)
    assert not problems, "\n".join(problems)


def test_no_import_cycle_runs_at_import_time() -> None:
    problems = import_time_cycle_problems(repo_graph())
    assert not problems, "\n".join(problems)


def test_modules_stay_under_500_lines_or_say_why() -> None:
    problems = size_problems(repo_graph().tree, LONG_MODULES)
    assert not problems, "\n".join(problems)


def test_pyproject_installs_every_package() -> None:
    problems = packaging_problems(repo_graph().tree)
    assert not problems, "\n".join(problems)


def test_every_sqzc_import_resolves() -> None:
    graph = repo_graph()
    files = outside_files(ROOT)
    assert any(f.parts[0] == "tests" for f in files) and any(s for s in graph.sites.values())
    problems = unresolved_imports(graph, files)
    assert not problems, "\n".join(problems)


def test_no_private_imports_beyond_the_allowlist() -> None:
    problems = private_problems(repo_graph(), ALLOWED_PRIVATE_IMPORTS)
    assert not problems, "\n".join(problems)


def test_runtime_does_not_reach_the_compiler() -> None:
    graph = repo_graph()
    assert {"sqzc.runtime.loader", "sqzc.errors", "sqzc"} <= graph.closure("sqzc.runtime")
    problems = runtime_problems(graph)
    assert not problems, "\n".join(problems)


def test_architecture_doc_is_true() -> None:
    problems = doc_problems(DOC.read_text(), repo_graph())
    assert not problems, "\n".join(problems)


# ----------------------------------------------------------------------------- self-tests


_PYPROJECT = """\
[project]
name = "sqzc"
[project.scripts]
sqzc = "sqzc.cli:main"
[tool.setuptools]
package-dir = {{ "sqzc" = "sqzc", "sqzc.runtime" = "runtime" }}
packages = {packages}
"""


def make_repo(root: Path, files: Mapping[str, str],
              packages: Iterable[str] = ("sqzc", "sqzc.runtime")) -> ig.ImportGraph:
    """A tiny repository with sqzc's package-dir shape; returns its import graph."""
    base = {"sqzc/__init__.py": "", "sqzc/errors.py": "class E(Exception): ...\n",
            "sqzc/cli.py": "def main(): ...\n", "runtime/__init__.py": ""}
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text(_PYPROJECT.format(packages=list(packages))
                                         .replace("'", '"'))
    for rel, text in {**base, **files}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text))
    return ig.build(root)


def test_checker_cycles(tmp_path: Path) -> None:
    graph = make_repo(tmp_path, {
        # a hidden cycle closed by a function-level import
        "sqzc/a.py": "from sqzc import b\n",
        "sqzc/b.py": "def f():\n    from sqzc import a\n",
        # TYPE_CHECKING only: never runs, not a cycle
        "sqzc/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                     "    from sqzc.d import D\n",
        "sqzc/d.py": "import sqzc.c\nD = 1\n",
        # through a package __init__: q imports p.y, which runs p/__init__ -> p.x -> q
        "sqzc/p/__init__.py": "from sqzc.p import x\n",
        "sqzc/p/x.py": "import sqzc.q\n",
        "sqzc/p/y.py": "Y = 1\n",
        "sqzc/q.py": "from sqzc.p.y import Y\n",
        # a package __init__ importing its children is not a cycle
        "sqzc/r/__init__.py": "from sqzc.r import s\n",
        "sqzc/r/s.py": "import sqzc.errors\nfrom sqzc.r import t\n",
        "sqzc/r/t.py": "",
    }, packages=["sqzc", "sqzc.p", "sqzc.r", "sqzc.runtime"])
    ab = frozenset({"sqzc.a", "sqzc.b"})
    pxq = frozenset({"sqzc.p", "sqzc.p.x", "sqzc.q"})
    assert set(graph.sccs()) == {ab, pxq}
    assert frozenset({"sqzc.c", "sqzc.d"}) in graph.sccs(ig.RUNTIME_KINDS | {"typing"})
    assert len(cycle_problems(graph, {})) == 2
    assert "sqzc/b.py:2[function]" in "".join(cycle_problems(graph, {pxq: "S0"}))
    assert cycle_problems(graph, {ab: "S0", pxq: "S0"}) == []
    gone = cycle_problems(graph, {ab: "S0", pxq: "S0", frozenset({"sqzc.c", "sqzc.d"}): "S9"})
    assert len(gone) == 1 and "no longer" in gone[0]
    grown = cycle_problems(graph, {ab | {"sqzc.c"}: "S0", pxq: "S0"})
    assert len(grown) == 2  # the real SCC is new, the listed one is gone
    problems = import_time_cycle_problems(graph)
    assert len(problems) == 1 and "[parent-init]" in problems[0]


def test_checker_sizes(tmp_path: Path) -> None:
    filler = "x = 1\n" * 501
    graph = make_repo(tmp_path, {
        "sqzc/big.py": filler,
        "sqzc/big_ok.py": '"""Tables.\n\nSize: one generated table per opset; splitting it '
                          'would scatter one table.\n"""\n' + filler,
        "sqzc/big_bad.py": '"""Tables. Size: said in passing, not a paragraph."""\n' + filler,
        "sqzc/small.py": "x = 1\n",
    })
    problems = size_problems(graph.tree, {})
    assert [p.split(" (")[0] for p in problems] == ["sqzc/big.py has 501 lines",
                                                    "sqzc/big_bad.py has 502 lines"]
    allowed = {"sqzc/big.py": (501, "S9"), "sqzc/big_bad.py": (502, "S9")}
    assert size_problems(graph.tree, allowed) == []
    assert size_problems(graph.tree, {**allowed, "sqzc/big.py": (500, "S9")}) == [
        "sqzc/big.py grew to 501 lines (LONG_MODULES allows 500 while it is split up: S9)"]
    assert size_problems(graph.tree, {**allowed, "sqzc/small.py": (600, "S9")}) == [
        "LONG_MODULES entry sqzc/small.py is stale (the file is gone, is at most 500 lines "
        "or has a Size: paragraph): delete it"]


def test_checker_packaging(tmp_path: Path) -> None:
    files = {"sqzc/p/__init__.py": "", "sqzc/p/m.py": ""}
    assert packaging_problems(make_repo(tmp_path / "ok", files, [
        "sqzc", "sqzc.p", "sqzc.runtime"]).tree) == []
    problems = packaging_problems(make_repo(tmp_path / "bad", {
        **files,
        "sqzc/nopkg/m.py": "",  # a folder without __init__.py
    }, ["sqzc", "sqzc.runtime", "sqzc.gone"]).tree)
    text = "\n".join(problems)
    assert len(problems) == 3, text
    assert "sqzc/p/ (sqzc.p) is not in" in text and "lists sqzc.gone" in text
    assert "sqzc/nopkg/m.py is in a folder without __init__.py" in text
    (tmp_path / "bad" / "sqzc" / "cli.py").write_text("def other(): ...\n")
    assert "console script sqzc" in "".join(packaging_problems(ig.discover(tmp_path / "bad")))


def test_checker_unresolved_imports(tmp_path: Path) -> None:
    graph = make_repo(tmp_path, {
        # lazy names (PEP 562) count as bound when the literal __all__ lists them
        "sqzc/__init__.py": "__all__ = ['compile']\ndef __getattr__(name): ...\n",
        "sqzc/__main__.py": "",
        "sqzc/a.py": "A = 1\n\ndef f():\n    from sqzc.gone import g\n",
        "tools/zoo.py": "",  # importlib would resolve sqzc.tools.zoo to this (H1)
        "tests/test_x.py": """\
            import subprocess, sys
            import numpy
            import sqzc.tools.zoo
            from sqzc import a, compile
            from sqzc.a import A
            from sqzc.a import nope
            subprocess.run([sys.executable, "-m", "sqzc"])
            subprocess.run([sys.executable, "-m", "sqzc.gone_cli"])
            subprocess.run([sys.executable, "-m", "pytest"])
            from sqzc import tools
            """,
    })
    problems = unresolved_imports(graph, outside_files(tmp_path))
    assert problems == [
        "sqzc/a.py:4: from sqzc.gone import g: no module sqzc.gone",
        "tests/test_x.py:3: import sqzc.tools.zoo: no module sqzc.tools.zoo",
        "tests/test_x.py:6: from sqzc.a import nope: sqzc.a has no module or name 'nope'",
        "tests/test_x.py:10: from sqzc import tools: sqzc has no module or name 'tools'",
        "tests/test_x.py:8: python -m sqzc.gone_cli: no module sqzc.gone_cli",
    ]


def test_checker_private_imports(tmp_path: Path) -> None:
    graph = make_repo(tmp_path, {
        "sqzc/m.py": "_x = 1\n__version__ = '1'\ny = _x\n",
        "sqzc/u1.py": "from sqzc.m import _x\n",
        "sqzc/u2.py": "import sqzc.m as mm\nprint(mm._x)\n",
        "sqzc/u3.py": "import sqzc.m\nprint(sqzc.m._x)\n",
        "sqzc/u4.py": "from sqzc import m\nfrom sqzc.m import __version__\nprint(m._x, m.y)\n",
        "sqzc/p/__init__.py": "from sqzc.p import _impl\n",  # its own private module: fine
        "sqzc/p/_impl.py": "",
        "sqzc/u5.py": "from sqzc.p import _impl\n",
        "sqzc/ok.py": "from sqzc.m import y\nclass K:\n    def f(self):\n        self._x = 1\n",
    })
    expected = {("sqzc.u1", "sqzc.m", "_x"), ("sqzc.u2", "sqzc.m", "_x"),
                ("sqzc.u3", "sqzc.m", "_x"), ("sqzc.u4", "sqzc.m", "_x"),
                ("sqzc.u5", "sqzc.p", "_impl")}
    assert set(graph.private_imports()) == expected
    assert graph.private_imports()[("sqzc.u2", "sqzc.m", "_x")] == ["sqzc/u2.py:2"]
    assert len(private_problems(graph, {})) == 5
    allowed = dict.fromkeys(expected, "S0")
    assert private_problems(graph, allowed) == []
    stale = private_problems(graph, {**allowed, ("sqzc.u9", "sqzc.m", "_x"): "S0"})
    assert len(stale) == 1 and "no longer used" in stale[0]


def test_checker_runtime_closure(tmp_path: Path) -> None:
    clean = {"runtime/__init__.py": "from sqzc.runtime.loader import load\n",
             "runtime/loader.py": "from sqzc.errors import E\ndef load(): ...\n",
             "sqzc/driver.py": "import sqzc.runtime\n",
             "sqzc/__init__.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                 "    from sqzc.driver import compile\n"}
    assert runtime_problems(make_repo(tmp_path / "clean", clean)) == []
    lazy_call = make_repo(tmp_path / "fn", {**clean, "runtime/loader.py": (
        "def load():\n    from sqzc.driver import compile\n")})
    assert runtime_problems(lazy_call) == [
        "importing sqzc.runtime can run sqzc.driver via runtime/loader.py:2[function] "
        "(sqzc.runtime.loader -> sqzc.driver), and with it 0 more module(s)"]
    eager_init = make_repo(tmp_path / "init", {**clean, "sqzc/__init__.py": "import sqzc.driver\n"})
    assert runtime_problems(eager_init) == [
        "importing sqzc.runtime can run sqzc.driver via sqzc/__init__.py:1 "
        "(sqzc -> sqzc.driver), and with it 0 more module(s)"]


def test_checker_doc(tmp_path: Path) -> None:
    graph = make_repo(tmp_path, {"sqzc/a.py": "A = 1\n", "sqzc/p/__init__.py": (
        "from sqzc.pass_manager import PassInfo\nPIPELINE = (PassInfo('fold-foo', f),)\n")},
                      ["sqzc", "sqzc.p", "sqzc.runtime"])
    good = textwrap.dedent("""\
        # Architecture
        `sqzc/` holds `sqzc/a.py:1` (`sqzc.a.A`, `sqzc.a`, `a.py`), `sqzc/p/` and `runtime/`;
        run `python sqzc/a.py` on `uint8/int8` data in `sqzc/*.py`. Passes: fold-foo.
        ```
        sqzc/nowhere.py in a code block is not checked
        ```
        ## Restructure in progress (plan)
        `sqzc/future/` and `sqzc.future.X` are planned.
        ## After the plan
        """)
    assert doc_problems(good, graph) == []
    bad = good.replace("`sqzc/p/`", "`sqzc/pp/`").replace("sqzc.a.A", "sqzc.a.B").replace(
        "`a.py`", "`b.py`").replace("fold-foo.", "fold-foo-bar.") + (
        "`sqzc/future/` is not planned here.\n")
    assert doc_problems(bad, graph) == [
        "ARCHITECTURE.md does not mention the package folder `sqzc/p/`",
        "ARCHITECTURE.md does not mention the pass fold-foo",
        "ARCHITECTURE.md names `sqzc.a.B`: sqzc.a has no module or name 'B'",
        "ARCHITECTURE.md names `b.py`, which does not exist",
        "ARCHITECTURE.md names `sqzc/pp/`, which does not exist",
        "ARCHITECTURE.md names `sqzc/future/`, which does not exist",
    ]
