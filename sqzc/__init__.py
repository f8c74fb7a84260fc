"""sqzc: an ahead-of-time compiler for small CNNs (SqueezeNet first).

``sqzc.compile(model, output)`` turns an ONNX file into a standalone shared library;
``sqzc.load(path)`` opens one (``sqzc.runtime`` needs only numpy and ctypes). Heavy stages
(onnx, llvmlite, networkx) are imported lazily so ``import sqzc.runtime`` stays light.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqzc.errors import SqzcError

# Running from a source checkout (``python -c "import sqzc"`` in the repository root puts
# the bare ``sqzc/`` folder first on sys.path, shadowing the installed package): the
# subpackages live beside it in ``frontends/``, ``backends/`` and ``runtime/``, which the
# installed distribution maps into ``sqzc.*`` (pyproject ``package-dir``). Extend the
# package path the same way; an installed copy has no such siblings and is unaffected.
_ROOT = Path(__file__).resolve().parent.parent
if (_ROOT / "pyproject.toml").is_file() and (_ROOT / "backends" / "__init__.py").is_file():
    __path__.append(str(_ROOT))  # noqa: F821  (the package's own __path__)

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
