"""sqzc: an ahead-of-time compiler for small CNNs (SqueezeNet first).

``sqzc.compile(model, output)`` turns an ONNX file into a standalone shared library;
``sqzc.load(path)`` opens one (``sqzc.runtime`` needs only numpy and ctypes). Heavy stages
(onnx, llvmlite, networkx) are imported lazily so ``import sqzc.runtime`` stays light.
"""

from __future__ import annotations

import sys
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqzc.errors import SqzcError

# Running from a source checkout (``python -c "import sqzc"`` in the repository root puts
# the bare ``sqzc/`` folder first on sys.path, shadowing the installed package): the
# subpackages live beside it in ``frontends/``, ``backends/`` and ``runtime/``, which the
# installed distribution maps into ``sqzc.*`` (pyproject ``package-dir``). A finder maps
# exactly those three names the same way; an installed copy has no such siblings and is
# unaffected. (Appending the repository root to ``__path__`` would also turn ``tools/``,
# ``bench/``, ``tests/``, ... into ``sqzc.tools``, ``sqzc.bench``, ... namespace packages,
# so a stale import of a moved module would succeed, or ``sqzc.tools`` be the wrong one.)
_ROOT = Path(__file__).resolve().parent.parent
_SIBLINGS = ("frontends", "backends", "runtime")


class _CheckoutFinder:
    """Finds ``sqzc.frontends``, ``sqzc.backends`` and ``sqzc.runtime`` in the source
    checkout ``root`` (a ``sys.meta_path`` finder, ahead of the path finder and of an
    editable install's finder, which may point at another checkout)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.folders = {f"{__name__}.{d}": root / d for d in _SIBLINGS}

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> ModuleSpec | None:
        folder = self.folders.get(fullname)
        if folder is None:
            return None
        import importlib.util

        return importlib.util.spec_from_file_location(
            fullname, folder / "__init__.py", submodule_search_locations=[str(folder)])


if (_ROOT / "pyproject.toml").is_file() and \
        all((_ROOT / d / "__init__.py").is_file() for d in _SIBLINGS) and \
        not any(getattr(f, "root", None) == _ROOT and type(f).__name__ == "_CheckoutFinder"
                for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutFinder(_ROOT))

__version__ = "0.1.0"

if TYPE_CHECKING:
    from sqzc.driver import CompileOptions, CompileResult, compile
    from sqzc.runtime import CompiledModel, load

__all__ = ["CompileOptions", "CompileResult", "CompiledModel", "SqzcError", "__version__",
           "compile", "load"]

_LAZY = {
    "compile": "sqzc.driver",
    "CompileOptions": "sqzc.driver",
    "CompileResult": "sqzc.driver",
    "load": "sqzc.runtime",
    "CompiledModel": "sqzc.runtime",
}


def __getattr__(name: str) -> Any:
    """Import the heavy stages on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sqzc' has no attribute {name!r}")
