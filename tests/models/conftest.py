"""Whole-model tests: compile every library the selected tests need, in parallel, once.

Test modules here parametrize their module-scoped fixtures with ``model_libs.Lib``
values. After collection (and ``-k``/``-m`` deselection) this file gathers the ``Lib``
parameters of the selected tests; before the first of them runs, ``compile_all`` builds
them in worker processes. Set ``SQZC_TEST_SERIAL=1`` to skip that and compile lazily in
the test process (e.g. to debug a compiler crash, or on a machine with one free core).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model_libs import Lib, compile_all  # noqa: E402

_LIBS = pytest.StashKey[list[Lib]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    libs: dict[Lib, None] = {}
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is None or HERE not in Path(str(item.path)).resolve().parents:
            continue
        libs.update((v, None) for v in callspec.params.values() if isinstance(v, Lib))
    session.config.stash[_LIBS] = list(libs)


@pytest.fixture(scope="session", autouse=True)
def _precompile_model_libraries(request: pytest.FixtureRequest) -> None:
    if os.environ.get("SQZC_TEST_SERIAL") != "1":
        compile_all(request.config.stash.get(_LIBS, []))
