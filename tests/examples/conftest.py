"""The bundled fp16 SqueezeNet compiled once (library + header) for the example tests."""

from __future__ import annotations

from pathlib import Path

import pytest

import sqzc
from sqzc.tools.cli import DEMO_MODEL
from sqzc.driver import CompileOptions


@pytest.fixture(scope="session")
def bundled_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with ``libsqz.so`` and ``model.h`` for ``sqzc/data``'s SqueezeNet."""
    out = tmp_path_factory.mktemp("bundled")
    sqzc.compile(DEMO_MODEL, out / "libsqz.so")
    sqzc.compile(DEMO_MODEL, out / "model.h", CompileOptions(emit="header"))
    return out
