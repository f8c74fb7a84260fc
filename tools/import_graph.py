#!/usr/bin/env python3
"""The import graph of the sqzc package, read from source with ast (nothing is imported).

    python tools/import_graph.py                  # stats and import cycles
    python tools/import_graph.py --edges          # ... plus every edge with file:line
    python tools/import_graph.py --private        # ... plus cross-module _private imports
    python tools/import_graph.py --closure sqzc.runtime   # what importing a module runs
    python tools/import_graph.py --json OUT.json  # everything, machine-readable

``tests/unit/test_architecture.py`` loads this file (like ``tests/docs/test_readme.py``
loads ``gen_readme.py``) and enforces the layering rules on what it returns; this CLI is
for looking at a failure or at the state of a refactor.

Why from source, and why not importlib: importing runs code (and drags in llvmlite and
onnx), and what importlib finds in a source checkout is not necessarily what a wheel
installs (``sqzc/__init__.py`` maps ``sqzc.frontends``, ``sqzc.backends`` and
``sqzc.runtime`` to the checkout's folders; before it did that by appending the repository
root to ``sqzc.__path__``, ``sqzc.bench`` resolved to the top-level ``bench/`` folder and
a stale import of a moved module did not fail). Here module names come only from
pyproject's ``[tool.setuptools] package-dir`` (``sqzc/`` -> ``sqzc``, ``frontends/`` ->
``sqzc.frontends``, ``backends/`` -> ``sqzc.backends``, ``runtime/`` ->
``sqzc.runtime``), i.e. from what a wheel installs.

Every import of a package module is an edge ``src -> dst`` tagged with a *kind*:

* ``module``: runs when ``src`` is imported (top level, including module-level ``try``/
  ``if`` blocks and class bodies);
* ``function``: inside a ``def`` or ``lambda``; runs when that function is called. A cycle
  closed by such an import works only because of call timing;
* ``typing``: under ``if TYPE_CHECKING:``; never runs.

Importing ``a.b.c`` also runs ``a/__init__.py`` and ``a/b/__init__.py`` first. Those
*implicit* edges go from the importer to every ancestor package of the imported module,
except the importer's own ancestors (they are already initialized, or initializing, when
its body runs). Edges from a module to its own parent would turn every package whose
``__init__`` imports its children into a false cycle. With the implicit edges, a cycle
through ``backends/llvm/emit/__init__.py`` (which imports every emitter) shows up.

Not seen: ``importlib.import_module`` with a computed name (``sqzc/__init__.py``'s lazy
``__getattr__`` for ``sqzc.compile``/``sqzc.load``) and ``__import__``.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import sys
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parent.parent
#: kinds of import edges that execute (``typing`` never does).
RUNTIME_KINDS = frozenset({"module", "function"})


# ----------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """What pyproject.toml says the distribution installs."""

    package_dir: dict[str, str]  # dotted package -> repo-relative folder
    packages: tuple[str, ...]  # [tool.setuptools] packages, as listed
    scripts: dict[str, str]  # [project.scripts] name -> "module:function"

    @property
    def top_names(self) -> frozenset[str]:
        """Top-level import names the distribution provides (``sqzc``)."""
        return frozenset(k.split(".")[0] for k in self.package_dir)

    def is_internal(self, dotted: str) -> bool:
        """True if ``dotted`` names something under one of the distribution's packages."""
        return dotted.split(".")[0] in self.top_names


def read_layout(root: Path) -> Layout:
    """Read package-dir, packages and scripts from ``root/pyproject.toml``."""
    data = tomllib.loads((root / "pyproject.toml").read_text())
    st = data.get("tool", {}).get("setuptools", {})
    return Layout(dict(st.get("package-dir", {})), tuple(st.get("packages", ())),
                  dict(data.get("project", {}).get("scripts", {})))


@dataclass(frozen=True)
class Module:
    """One module of the package: its dotted name and repo-relative file."""

    name: str
    path: Path  # relative to the repository root
    is_package: bool  # an __init__.py


@dataclass
class Tree:
    """The package as a wheel would install it, found from the package-dir mapping."""

    root: Path
    layout: Layout
    modules: dict[str, Module]
    #: dotted package name -> repo-relative folder, for every folder with an __init__.py
    package_folders: dict[str, Path]
    #: .py files under a mapped folder that no package holds (a wheel would drop them)
    stray_files: list[Path]


def discover(root: Path, layout: Layout | None = None) -> Tree:
    """Map every ``.py`` file under the package-dir folders to its installed name.

    A file is a module only if every folder from the mapped root down to it has an
    ``__init__.py`` (a regular package); others are ``stray_files``. When two mappings
    cover one folder (``"a" = "src/a"``, ``"a.b" = "src/a/b"``), the longer name wins.
    """
    layout = layout or read_layout(root)
    files: dict[Path, tuple[int, str | None]] = {}  # file -> (key length, module or None)
    folders: dict[Path, tuple[int, str]] = {}  # package folder -> (key length, package)
    for pkg, folder in layout.package_dir.items():
        base = root / folder
        if not base.is_dir():
            continue
        for d in [base, *sorted(p for p in base.rglob("*") if p.is_dir())]:
            if "__pycache__" in d.parts:
                continue
            rel_parts = d.relative_to(base).parts
            name = ".".join([pkg, *rel_parts])
            chain = [base.joinpath(*rel_parts[:i]) for i in range(len(rel_parts) + 1)]
            is_pkg = all((c / "__init__.py").is_file() for c in chain)
            rank = len(pkg)
            if (d / "__init__.py").is_file() and rank >= folders.get(
                    d.relative_to(root), (-1, ""))[0]:
                folders[d.relative_to(root)] = (rank, name)
            for f in d.glob("*.py"):
                rel = f.relative_to(root)
                if rank < files.get(rel, (-1, None))[0]:
                    continue
                mod = None
                if is_pkg:
                    mod = name if f.name == "__init__.py" else f"{name}.{f.stem}"
                files[rel] = (rank, mod)
    modules = {mod: Module(mod, rel, rel.name == "__init__.py")
               for rel, (_, mod) in files.items() if mod is not None}
    return Tree(root, layout, dict(sorted(modules.items())),
                dict(sorted((name, rel) for rel, (_, name) in folders.items())),
                sorted(rel for rel, (_, mod) in files.items() if mod is None))


# ----------------------------------------------------------------------------- ast scan


@dataclass(frozen=True)
class ImportSite:
    """One imported module or name, as written in one file.

    ``module`` is the absolute dotted module of the statement (relative imports resolved);
    ``name`` is the imported name for ``from module import name`` (None for ``import``).
    """

    file: Path  # repo-relative
    line: int
    kind: str  # module | function | typing
    module: str
    name: str | None = None
    asname: str | None = None


@dataclass(frozen=True)
class AttrSite:
    """A ``name.attr...`` chain in a file; ``private_imports`` keeps those whose name an
    import bound (``qr.wrap_i32`` after ``from sqzc.ort.oracles import mlas as qr``)."""

    file: Path
    line: int
    chain: tuple[str, ...]  # ("qr", "_wrap_i32"), ("sqzc", "ops", "_x")


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def parse(path: Path) -> ast.Module:
    """``path`` parsed (cached while the file is unchanged: several checks read it)."""
    st = path.stat()
    return _parse(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _parse(path: Path, mtime_ns: int, size: int) -> ast.Module:
    return ast.parse(path.read_text(), str(path))


def _stmt_lists(st: ast.stmt) -> Iterator[list[ast.stmt]]:
    for name in ("body", "orelse", "finalbody"):
        block = getattr(st, name, None)
        if isinstance(block, list):
            yield block
    for h in getattr(st, "handlers", ()):
        yield h.body
    for c in getattr(st, "cases", ()):
        yield c.body


def scan(root: Path, file: Path, modname: str | None = None, is_pkg: bool = False,
         attrs: bool = True) -> tuple[list[ImportSite], list[AttrSite]]:
    """Every import statement of one file and (``attrs``) every ``name.attr`` chain.

    Imports are statements, so only statement lists are walked (fast); a ``def`` body
    makes them function-level, an ``if TYPE_CHECKING:`` body typing-only.
    """
    tree = parse(root / file)
    imports: list[ImportSite] = []

    def absolute(node: ast.ImportFrom) -> str | None:
        if not node.level:
            return node.module or ""
        if modname is None:
            return None  # a relative import outside the package: not ours to resolve
        base = modname.split(".")
        if not is_pkg:
            base = base[:-1]
        base = base[: len(base) - (node.level - 1)]
        return ".".join(base + ([node.module] if node.module else []))

    def walk(body: list[ast.stmt], kind: str) -> None:
        for st in body:
            if isinstance(st, ast.Import):
                imports.extend(ImportSite(file, st.lineno, kind, a.name, None, a.asname)
                               for a in st.names)
            elif isinstance(st, ast.ImportFrom):
                module = absolute(st)
                if module is not None:
                    imports.extend(ImportSite(file, st.lineno, kind, module, a.name, a.asname)
                                   for a in st.names)
            elif isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef):
                walk(st.body, "typing" if kind == "typing" else "function")
            elif isinstance(st, ast.If) and _is_type_checking(st.test):
                walk(st.body, "typing")
                walk(st.orelse, kind)
            else:
                for block in _stmt_lists(st):
                    walk(block, kind)

    walk(tree.body, "module")
    chains: list[AttrSite] = []
    if attrs:
        inner: set[int] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and id(node) not in inner:
                chain, v = [], node
                while isinstance(v, ast.Attribute):
                    chain.append(v.attr)
                    inner.add(id(v.value))
                    v = v.value
                if isinstance(v, ast.Name):
                    chains.append(AttrSite(file, node.lineno, (v.id, *reversed(chain))))
    return imports, chains


#: attributes every module has
MODULE_ATTRS = frozenset({"__name__", "__doc__", "__file__", "__path__", "__spec__",
                          "__loader__", "__package__", "__dict__", "__builtins__"})


def bound_names(tree: ast.Module) -> tuple[set[str], bool]:
    """Names a module binds at import time, and whether it accepts any name.

    A module ``__getattr__`` (PEP 562) provides the names its literal ``__all__`` lists
    (``sqzc/__init__.py`` provides ``compile`` and ``load`` that way); without a literal
    ``__all__``, or with a star import, any name is accepted.
    """
    names: set[str] = set(MODULE_ATTRS)
    anything = False
    lazy = False

    def targets(t: ast.expr) -> Iterator[str]:
        if isinstance(t, ast.Name):
            yield t.id
        elif isinstance(t, ast.Tuple | ast.List):
            for e in t.elts:
                yield from targets(e)
        elif isinstance(t, ast.Starred):
            yield from targets(t.value)

    def walk(body: Iterable[ast.stmt]) -> None:
        nonlocal anything, lazy
        for st in body:
            if isinstance(st, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(st.name)
                lazy |= st.name == "__getattr__"
            elif isinstance(st, ast.Assign):
                for t in st.targets:
                    names.update(targets(t))
            elif isinstance(st, ast.AnnAssign | ast.AugAssign):
                names.update(targets(st.target))
            elif isinstance(st, ast.Import):
                names.update((a.asname or a.name).split(".")[0] for a in st.names)
            elif isinstance(st, ast.ImportFrom):
                for a in st.names:
                    anything |= a.name == "*"
                    names.add(a.asname or a.name)
            elif isinstance(st, ast.For | ast.AsyncFor):
                names.update(targets(st.target))
                walk(st.body)
                walk(st.orelse)
            elif isinstance(st, ast.With | ast.AsyncWith):
                for it in st.items:
                    if it.optional_vars is not None:
                        names.update(targets(it.optional_vars))
                walk(st.body)
            elif isinstance(st, ast.If | ast.While):
                walk(st.body)
                walk(st.orelse)
            elif isinstance(st, ast.Try):
                walk(st.body)
                for h in st.handlers:
                    walk(h.body)
                walk(st.orelse)
                walk(st.finalbody)

    walk(tree.body)
    if lazy:
        exported = _literal_all(tree)
        if exported is None:
            anything = True
        else:
            names |= exported
    return names, anything


def _literal_all(tree: ast.Module) -> set[str] | None:
    """The strings of a module-level ``__all__ = [...]`` literal, or None."""
    for st in tree.body:
        if (isinstance(st, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__"
                                               for t in st.targets)
                and isinstance(st.value, ast.List | ast.Tuple)
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str)
                        for e in st.value.elts)):
            return {e.value for e in st.value.elts}
    return None


# ----------------------------------------------------------------------------- the graph


@dataclass(frozen=True)
class Edge:
    """``src`` imports ``dst`` (``implicit``: runs ``dst/__init__.py`` on the way)."""

    src: str
    dst: str
    file: Path
    line: int
    kind: str  # module | function | typing
    implicit: bool = False

    @property
    def where(self) -> str:
        tag = "" if self.kind == "module" else f"[{self.kind}]"
        return f"{self.file}:{self.line}{tag}{'[parent-init]' if self.implicit else ''}"


@dataclass
class ImportGraph:
    """The package's modules, import edges and the facts the architecture test checks."""

    tree: Tree
    edges: list[Edge]
    sites: dict[str, list[ImportSite]]  # module -> its import statements
    attrs: dict[str, list[AttrSite]]  # module -> its alias.attr chains
    _names: dict[str, tuple[set[str], bool]] = field(default_factory=dict)

    @property
    def modules(self) -> dict[str, Module]:
        return self.tree.modules

    # -- resolution ------------------------------------------------------------------

    def names_of(self, module: str) -> tuple[set[str], bool]:
        """Module-level names of ``module`` (cached) and whether it accepts any name."""
        if module not in self._names:
            self._names[module] = bound_names(parse(self.tree.root / self.modules[module].path))
        return self._names[module]

    def resolve(self, site: ImportSite) -> tuple[str | None, str | None]:
        """The package module an internal import statement depends on, and an error saying
        why it does not resolve (None if it does). Non-package imports give (None, None).

        ``from m import n`` depends on module ``m.n`` when that exists (``m`` itself is
        then only an ancestor that runs first), else on ``m``, which must bind ``n`` at
        module level or export it lazily (see ``bound_names``).
        """
        layout = self.tree.layout
        if not layout.is_internal(site.module):
            return None, None
        if site.module not in self.modules:
            return None, f"no module {site.module}"
        if site.name is None or site.name == "*":
            return site.module, None
        sub = f"{site.module}.{site.name}"
        if sub in self.modules:
            return sub, None
        names, anything = self.names_of(site.module)
        if site.name in names or anything:
            return site.module, None
        return site.module, f"{site.module} has no module or name {site.name!r}"

    def resolve_dotted(self, dotted: str) -> str | None:
        """Why ``pkg.mod.attr`` (a dotted reference in a string or doc) does not resolve,
        or None if it does: its longest module prefix must exist and bind the next part."""
        parts = dotted.split(".")
        for i in range(len(parts), 0, -1):
            mod = ".".join(parts[:i])
            if mod in self.modules:
                if i == len(parts):
                    return None
                names, anything = self.names_of(mod)
                if parts[i] in names or anything:
                    return None
                return f"{mod} has no module or name {parts[i]!r}"
        return f"no module {parts[0]}"

    # -- views -----------------------------------------------------------------------

    def digraph(self, kinds: Iterable[str] = RUNTIME_KINDS) -> nx.DiGraph:
        """Modules and the edges of ``kinds``; each edge keeps its ``edges`` (sites)."""
        kinds = frozenset(kinds)
        g = nx.DiGraph()
        g.add_nodes_from(self.modules)
        for e in self.edges:
            if e.kind in kinds:
                if g.has_edge(e.src, e.dst):
                    g[e.src][e.dst]["edges"].append(e)
                else:
                    g.add_edge(e.src, e.dst, edges=[e])
        return g

    def sccs(self, kinds: Iterable[str] = RUNTIME_KINDS) -> list[frozenset[str]]:
        """Strongly connected components of more than one module (the import cycles)."""
        g = self.digraph(kinds)
        return sorted((frozenset(c) for c in nx.strongly_connected_components(g)
                       if len(c) > 1), key=lambda c: (-len(c), sorted(c)))

    def example_cycle(self, scc: frozenset[str], kinds: Iterable[str] = RUNTIME_KINDS
                      ) -> list[Edge]:
        """One cycle inside ``scc``, as the edges (with file:line) that close it."""
        g = self.digraph(kinds).subgraph(scc)
        return [g[a][b]["edges"][0] for a, b in nx.find_cycle(g, source=min(scc))]

    def closure(self, module: str, kinds: Iterable[str] = RUNTIME_KINDS) -> set[str]:
        """Every package module that importing ``module`` can run (its ancestors'
        ``__init__`` files included), following edges of ``kinds``."""
        g = self.digraph(kinds)
        parts = module.split(".")
        start = {".".join(parts[:i]) for i in range(1, len(parts) + 1)} & set(g)
        seen = set(start)
        for s in start:
            seen |= nx.descendants(g, s)
        return seen

    def private_imports(self) -> dict[tuple[str, str, str], list[str]]:
        """(importer, module, private name) -> sites, for every use by one package module
        of another module's ``_private`` name (dunders are public): ``from m import _x``,
        ``alias._x`` on an imported module, and private modules (``m._impl``) used from
        outside the package that holds them."""
        out: dict[tuple[str, str, str], list[str]] = {}

        def private(n: str) -> bool:
            return n.startswith("_") and not n.startswith("__")

        def owner_ok(importer: str, module: str) -> bool:
            return importer == module or importer.startswith(module + ".")

        def add(importer: str, module: str, name: str, where: str) -> None:
            out.setdefault((importer, module, name), []).append(where)

        for importer, sites in self.sites.items():
            aliases: dict[str, str] = {}
            for s in sites:
                target, err = self.resolve(s)
                if err or target is None:
                    continue
                where = f"{s.file}:{s.line}"
                parts = target.split(".")
                for i, p in enumerate(parts):  # private modules on the path
                    if private(p) and not owner_ok(importer, ".".join(parts[:i])):
                        add(importer, ".".join(parts[:i]), p, where)
                if s.name is None:
                    if s.asname:
                        aliases[s.asname] = s.module
                    else:
                        aliases[s.module.split(".")[0]] = s.module.split(".")[0]
                elif target == f"{s.module}.{s.name}":
                    aliases[s.asname or s.name] = target
                elif private(s.name) and s.module != importer:
                    add(importer, s.module, s.name, where)
            for a in self.attrs.get(importer, []):
                if a.chain[0] not in aliases:
                    continue
                mod = aliases[a.chain[0]]
                for part in a.chain[1:]:
                    if f"{mod}.{part}" in self.modules:
                        mod = f"{mod}.{part}"
                        continue
                    if private(part) and mod in self.modules and mod != importer:
                        add(importer, mod, part, f"{a.file}:{a.line}")
                    break
        return {k: sorted(set(v), key=_site_key) for k, v in sorted(out.items())}


def _site_key(where: str) -> tuple[str, int]:
    f, _, line = where.rpartition(":")
    return f, int(line)


def build(root: Path = ROOT) -> ImportGraph:
    """Scan the package under ``root`` (a repository checkout) into an ``ImportGraph``."""
    tree = discover(root)
    graph = ImportGraph(tree, [], {}, {})
    for name, mod in tree.modules.items():
        graph.sites[name], graph.attrs[name] = scan(root, mod.path, name, mod.is_package)
    for src, sites in graph.sites.items():
        for s in sites:
            dst, _ = graph.resolve(s)
            if dst is None:
                continue
            if dst != src:
                graph.edges.append(Edge(src, dst, s.file, s.line, s.kind))
            parts = dst.split(".")
            for i in range(1, len(parts)):
                anc = ".".join(parts[:i])
                if anc != src and not src.startswith(anc + ".") and anc in tree.modules:
                    graph.edges.append(Edge(src, anc, s.file, s.line, s.kind, implicit=True))
    graph.edges = list(dict.fromkeys(graph.edges))  # one edge per (src, dst, line, kind)
    return graph


def scan_files(root: Path, files: Iterable[Path]) -> list[ImportSite]:
    """Import statements of files outside the package (tests, tools, ...)."""
    out: list[ImportSite] = []
    for f in files:
        out += scan(root, f.relative_to(root) if f.is_absolute() else f, attrs=False)[0]
    return out


def module_run_targets(root: Path, files: Iterable[Path]) -> list[tuple[Path, int, str]]:
    """``python -m NAME`` targets written as ``"-m", "NAME"`` in list or tuple displays
    (subprocess argument lists): (file, line, NAME)."""
    out = []
    for f in files:
        rel = f.relative_to(root) if f.is_absolute() else f
        text = (root / rel).read_text()
        if '"-m"' not in text and "'-m'" not in text:
            continue
        for node in ast.walk(parse(root / rel)):
            if isinstance(node, ast.List | ast.Tuple):
                elts = node.elts
                for a, b in zip(elts, elts[1:]):
                    if (isinstance(a, ast.Constant) and a.value == "-m"
                            and isinstance(b, ast.Constant) and isinstance(b.value, str)):
                        out.append((rel, b.lineno, b.value))
    return out


# ----------------------------------------------------------------------------- CLI


def _report(graph: ImportGraph, args: argparse.Namespace) -> None:
    pairs = {(e.src, e.dst, e.kind, e.implicit) for e in graph.edges}
    by_kind = {k: sum(p[2] == k and not p[3] for p in pairs)
               for k in ("module", "function", "typing")}
    implicit = sum(p[3] for p in pairs)
    print(f"{len(graph.modules)} modules in {len(graph.tree.package_folders)} packages; "
          f"{len(pairs)} distinct import edges (module pairs by kind): "
          f"{by_kind['module']} module-level, {by_kind['function']} function-level, "
          f"{by_kind['typing']} TYPE_CHECKING, {implicit} implicit parent-__init__ "
          f"at {len(graph.edges)} import sites")
    if args.edges:
        for e in sorted(graph.edges, key=lambda e: (e.src, e.dst, e.line)):
            print(f"  {e.src} -> {e.dst}  {e.where}")
    for title, kinds in (("module-level imports only", {"module"}),
                         ("module- and function-level imports", RUNTIME_KINDS),
                         ("all imports, TYPE_CHECKING included",
                          RUNTIME_KINDS | {"typing"})):
        sccs = graph.sccs(kinds)
        print(f"\nimport cycles over {title}: {len(sccs)} strongly connected components")
        for c in sccs:
            print(f"  SCC({len(c)}): {', '.join(sorted(c))}")
            for e in graph.example_cycle(c, kinds):
                print(f"      {e.src} -> {e.dst}   {e.where}")
    private = graph.private_imports()
    print(f"\ncross-module _private imports: {len(private)} (importer, module, name), "
          f"{sum(map(len, private.values()))} sites")
    if args.private:
        for (imp, mod, name), where in private.items():
            print(f"  {imp}: {mod}.{name}   {', '.join(where)}")
    if graph.tree.stray_files:
        print(f"\n.py files outside any package: {', '.join(map(str, graph.tree.stray_files))}")
    for m in args.closure:
        print(f"\nimporting {m} (and calling its functions) can run: "
              f"{', '.join(sorted(graph.closure(m)))}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("root", nargs="?", type=Path, default=ROOT, help="repository checkout")
    p.add_argument("--edges", action="store_true", help="print every edge")
    p.add_argument("--private", action="store_true", help="print every _private import")
    p.add_argument("--closure", action="append", default=[], metavar="MODULE",
                   help="print what importing MODULE runs (repeatable)")
    p.add_argument("--json", type=Path, metavar="OUT", help="write the graph as JSON")
    args = p.parse_args(argv)
    graph = build(args.root.resolve())
    _report(graph, args)
    if args.json:
        args.json.write_text(json.dumps({
            "modules": {m: str(x.path) for m, x in graph.modules.items()},
            "edges": [[e.src, e.dst, str(e.file), e.line, e.kind, e.implicit]
                      for e in graph.edges],
            "sccs": [sorted(c) for c in graph.sccs()],
            "private_imports": [[*k, v] for k, v in graph.private_imports().items()],
        }, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
