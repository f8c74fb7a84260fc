"""``python -m sqzc``: the ``sqzc`` console script's entry point, for environments where
the script is not installed or not on PATH (the test suite falls back to it)."""

from __future__ import annotations

import sys

from sqzc.tools.cli import main

if __name__ == "__main__":
    sys.exit(main())
