"""README.md: the generated sections (CLI reference, supported ops, pass pipeline) must
match the code. When this fails, regenerate them with ``python tools/gen_readme.py``."""

from __future__ import annotations

import argparse
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
GEN = ROOT / "tools" / "gen_readme.py"


def load_generator():
    spec = importlib.util.spec_from_file_location("sqzc_gen_readme", GEN)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def test_generated_sections_are_up_to_date():
    proc = subprocess.run([sys.executable, str(GEN), "--check"], capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, (
        "README.md's generated sections are stale; regenerate them with\n\n"
        "    python tools/gen_readme.py\n\n" + proc.stdout[-6000:] + proc.stderr[-2000:])


def test_first_commands_stay_first():
    text = README.read_text()
    first_block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert first_block is not None
    assert first_block.group(1).splitlines() == [
        "pip install . && sqzc demo", "pip install '.[test]' && pytest -q"]
    assert text.index("## CLI reference") > text.index("## What it is")
    assert text.index("## CLI reference") < text.index("## Data")


def test_every_subcommand_and_pass_is_documented():
    from sqzc.tools.cli import build_parser
    from sqzc.passes import PIPELINE

    text = README.read_text()
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name in sub.choices:
        assert f"### sqzc {name}\n" in text, f"sqzc {name}: run python tools/gen_readme.py"
    for p in PIPELINE:
        assert f"`{p.name}`" in text, f"pass {p.name}: run python tools/gen_readme.py"
    for section in ("## Python API", "## C ABI"):
        assert section in text
    assert "docs/ABI.md" in text and "examples/c" in text


def test_generator_picks_up_new_subcommands(monkeypatch):
    """A subcommand added later (with options and a group) appears without touching the
    generator, and a stale README is reported."""
    import sqzc.tools.cli

    real = sqzc.tools.cli.build_parser

    def extended() -> argparse.ArgumentParser:
        p = real()
        sub = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        x = sub.add_parser("frobnicate", help="frobnicate a model")
        x.add_argument("model", help="ONNX model file")
        g = x.add_argument_group("tuning")
        g.add_argument("--knob", type=int, default=7, help="how far to turn it")
        return p

    monkeypatch.setattr(sqzc.tools.cli, "build_parser", extended)
    gen = load_generator()
    current = README.read_text()
    fresh = gen.render(current)
    assert fresh != current
    assert "### sqzc frobnicate" in fresh and "Frobnicate a model." in fresh
    assert "| `--knob KNOB` | how far to turn it (default 7) |" in fresh
    assert "*Tuning:*" in fresh
    assert gen.render(fresh) == fresh  # idempotent


def test_check_mode_fails_on_a_stale_readme(tmp_path):
    stale = tmp_path / "README.md"
    gen = load_generator()
    fresh = gen.render(README.read_text())
    stale.write_text(fresh.replace("`canonicalize`", "`canonicalise`"))
    assert gen.main(["--check", "--readme", str(stale)]) == 1
    assert gen.main(["--readme", str(stale)]) == 0
    assert gen.main(["--check", "--readme", str(stale)]) == 0
    assert stale.read_text() == fresh


def test_missing_markers_are_an_error(tmp_path):
    broken = tmp_path / "README.md"
    broken.write_text("# no markers\n")
    gen = load_generator()
    with pytest.raises(SystemExit, match="BEGIN cli-reference"):
        gen.main(["--check", "--readme", str(broken)])
