"""Shared pytest fixtures: paths to the shared models/data and a compile-and-load helper."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (skip tests that need it when it is missing)."""
    for candidate in (ROOT.parent / "shared", ROOT / "shared"):
        if (candidate / "models").is_dir():
            return candidate
    pytest.skip("../shared (models and photos) is not present")
