"""The optimization pipeline: small named passes, run in order by the pass manager.

Each pass is ``fn(graph, ctx) -> changed`` and mutates the graph in place; ``ctx`` is the
``PassContext`` (target facts and compile options; ``manager.py``, which also runs the
pipeline with its instrumentation), and the docstring's first line is what ``sqzc passes``
prints. The order is ``PIPELINE`` in ``pipeline.py``; one module per pass.

This ``__init__`` imports nothing: the names below load on first use (PEP 562), so a
module that needs only the manager (every pass, the driver) does not load the whole
pipeline, and the pipeline can import pass packages that import the manager without an
import cycle. The pass functions are not re-exported: most share their module's name
(``sqzc.passes.canonicalize``), which the import system binds on this package as soon as
the pipeline is loaded; import them from their modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqzc.passes.manager import (
        DEFAULT_CONTEXT,
        Instrumentation,
        PassContext,
        PassInfo,
        PassRecord,
        run_pipeline,
    )
    from sqzc.passes.pipeline import PIPELINE

__all__ = ["DEFAULT_CONTEXT", "PIPELINE", "Instrumentation", "PassContext", "PassInfo",
           "PassRecord", "run_pipeline"]

_LAZY = {
    "PIPELINE": "sqzc.passes.pipeline",
    "DEFAULT_CONTEXT": "sqzc.passes.manager",
    "Instrumentation": "sqzc.passes.manager",
    "PassContext": "sqzc.passes.manager",
    "PassInfo": "sqzc.passes.manager",
    "PassRecord": "sqzc.passes.manager",
    "run_pipeline": "sqzc.passes.manager",
}


def __getattr__(name: str) -> Any:
    """Import the pipeline or the manager on first use (PEP 562)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'sqzc.passes' has no attribute {name!r}")
