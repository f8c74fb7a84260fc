#!/usr/bin/env python3
"""Regenerate the generated sections of README.md from the code.

    python tools/gen_readme.py           # rewrite README.md in place
    python tools/gen_readme.py --check   # exit 1 (with a diff) if README.md is stale

Each generated section sits between marker comments, e.g.::

    <!-- BEGIN cli-reference -->
    ...generated...
    <!-- END cli-reference -->

and everything outside the markers is left alone. Sections:

* ``cli-reference``: every ``sqzc`` subcommand and option, from ``sqzc.tools.cli.build_parser()``
  (subcommands added later show up automatically). Rendered from the parser's actions,
  not from argparse's help text, so the output does not depend on the Python version or
  the terminal width.
* ``supported-ops``: the ONNX op table, from ``sqzc.frontends.onnx.converters.supported_ops()``.
* ``pass-pipeline``: one line per pass, from ``sqzc.passes.PIPELINE`` (the first line of
  each pass's docstring, as ``sqzc passes`` prints it).
"""

from __future__ import annotations

import argparse
import difflib
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
REGEN = "python tools/gen_readme.py"


# ----------------------------------------------------------------------------- helpers


def _md(text: str) -> str:
    """Escape text for a markdown table cell."""
    for ch in ("\\", "|", "*"):
        text = text.replace(ch, "\\" + ch)
    return text.replace("<", "&lt;").replace(">", "&gt;").replace("\n", " ")


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise SystemExit("gen_readme: sqzc.tools.cli.build_parser() has no subcommands")


def _metavar(a: argparse.Action) -> str:
    if a.nargs == 0:
        return ""
    if a.metavar is not None:
        return str(a.metavar if isinstance(a.metavar, str) else " ".join(a.metavar))
    if a.choices is not None and not isinstance(a.choices, range):
        return "{" + ",".join(str(c) for c in a.choices) + "}"
    return a.dest if not a.option_strings else a.dest.upper()


def _flags(a: argparse.Action) -> str:
    mv = _metavar(a)
    if not a.option_strings:
        return f"`{mv}`" + (" (optional)" if a.nargs == "?" else "")
    names = [f"`{o}`" for o in a.option_strings]
    if mv:
        names[-1] = f"`{a.option_strings[-1]} {mv}`"
    return ", ".join(names)


def _description(a: argparse.Action) -> str:
    text = (a.help or "").strip()
    if "%(" in text:
        try:
            text = text % {"default": a.default, "dest": a.dest, "choices": a.choices}
        except (KeyError, ValueError, TypeError):
            pass
    notes = []
    if a.option_strings and a.required:
        notes.append("required")
    if isinstance(a, argparse._AppendAction):
        notes.append("repeatable")
    if isinstance(a.choices, range) and a.metavar is not None:
        span = f"{a.choices.start}-{a.choices.stop - 1}"
        if span not in text:
            notes.append(span)
    trivial = (a.default is None or isinstance(a.default, bool) or a.default == []
               or a.default == argparse.SUPPRESS)
    if a.option_strings and a.nargs != 0 and not trivial and "default" not in text:
        notes.append(f"default {a.default}")
    if notes:
        text = f"{text} ({'; '.join(notes)})" if text else "; ".join(notes)
    return _md(text)


def _usage(name: str, p: argparse.ArgumentParser) -> str:
    parts = ["sqzc", name]
    if any(a.option_strings for a in p._actions if not isinstance(a, argparse._HelpAction)):
        parts.append("[options]")
    for a in p._actions:
        if not a.option_strings:
            mv = _metavar(a)
            parts.append(f"[{mv}]" if a.nargs == "?" else f"{mv} ..." if a.nargs in ("*", "+")
                         else mv)
    return " ".join(parts)


def _table(actions: list[argparse.Action]) -> list[str]:
    lines = ["| Argument | Description |", "|---|---|"]
    lines += [f"| {_flags(a)} | {_description(a)} |" for a in actions]
    return lines


# ----------------------------------------------------------------------------- sections


def cli_reference() -> str:
    """Every subcommand with its arguments, from ``sqzc.tools.cli.build_parser()``."""
    from sqzc.tools.cli import build_parser

    parser = build_parser()
    sub = _subparsers(parser)
    summaries = {ca.dest: (ca.help or "") for ca in sub._choices_actions}
    top = [a for a in parser._actions
           if a.option_strings and not isinstance(a, (argparse._HelpAction,))]
    top_flags = {o for a in top for o in a.option_strings}
    out = [
        "`sqzc COMMAND --help` prints the same information. Global options (also accepted "
        "after the command):",
        "",
        *_table(top),
        "",
        "| Command | What it does |",
        "|---|---|",
    ]
    out += [f"| [`{name}`](#sqzc-{name}) | {_md(summaries.get(name, ''))} |"
            for name in sub.choices]
    for name, p in sub.choices.items():
        out += ["", f"### sqzc {name}", ""]
        if summaries.get(name):
            out += [summaries[name][0].upper() + summaries[name][1:] + ".", ""]
        out += ["```", _usage(name, p), "```"]
        general: list[argparse.Action] = []  # positionals and ungrouped options: one table
        grouped: list[tuple[str, list[argparse.Action]]] = []
        for group in p._action_groups:
            actions = [a for a in group._group_actions
                       if not isinstance(a, argparse._HelpAction)
                       and not (a.option_strings and set(a.option_strings) <= top_flags)]
            title = group.title or ""
            if title in ("positional arguments", "options", "optional arguments", ""):
                general += actions
            elif actions:
                grouped.append((title[0].upper() + title[1:], actions))
        if general:
            out += ["", *_table(general)]
        for title, actions in grouped:
            out += ["", f"*{title}:*", "", *_table(actions)]
    return "\n".join(out)


def supported_ops() -> str:
    """The ONNX op table, from ``supported_ops()``."""
    from sqzc.frontends.onnx import converters

    merged: dict[tuple[str, str], int] = {}
    for domain, op, since in converters.supported_ops():
        key = (domain, op)
        merged[key] = min(since, merged.get(key, since))
    fold_only = set(getattr(converters, "FOLD_ONLY", ()))
    registered = set(getattr(converters, "CONVERTERS", {}))
    compiled = [k for k in merged if not (k[0] == "" and k[1] in fold_only
                                          and k not in registered)]
    folded = [k for k in merged if k not in compiled]

    def domain_name(d: str) -> str:
        return d or "ai.onnx"

    out = [
        f"{len(compiled)} ops are converted to IR ops (\"since\" is the lowest opset version "
        "the converter handles; each opset's semantics changes are handled):",
        "",
        "| ONNX op | Domain | Since opset |",
        "|---|---|---|",
    ]
    out += [f"| {op} | {domain_name(d)} | {merged[(d, op)]} |" for d, op in sorted(compiled)]
    if folded:
        out += ["", f"{len(folded)} more are evaluated at compile time only (every input must be "
                "a constant, as in shape arithmetic): "
                + ", ".join(op for _, op in sorted(folded)) + "."]
    return "\n".join(out)


def pass_pipeline() -> str:
    """One line per pass, from ``sqzc.passes.PIPELINE``."""
    from sqzc.passes import PIPELINE

    out = ["The passes run in this order (`sqzc passes` prints the same list; `-O0` runs "
           "none):", ""]
    out += [f"{i}. `{p.name}` (-O{p.min_level} and up): {p.summary}"
            for i, p in enumerate(PIPELINE, start=1)]
    return "\n".join(out)


SECTIONS: dict[str, Callable[[], str]] = {
    "cli-reference": cli_reference,
    "supported-ops": supported_ops,
    "pass-pipeline": pass_pipeline,
}


# ----------------------------------------------------------------------------- rewrite


def render(text: str) -> str:
    """``text`` (README contents) with every generated section rewritten."""
    for name, fn in SECTIONS.items():
        begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
        start, stop = text.find(begin), text.find(end)
        if start < 0 or stop < start or text.count(begin) != 1 or text.count(end) != 1:
            raise SystemExit(f"gen_readme: README.md needs exactly one '{begin}' line followed "
                             f"by one '{end}' line")
        body = (f"\n<!-- generated by tools/gen_readme.py; edit the code, then run {REGEN} -->"
                f"\n\n{fn().rstrip()}\n\n")
        text = text[:start + len(begin)] + body + text[stop:]
    return text


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Regenerate README.md's generated sections.")
    p.add_argument("--check", action="store_true",
                   help="do not write; exit 1 with a diff if README.md is out of date")
    p.add_argument("--readme", type=Path, default=README, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    current = args.readme.read_text(encoding="utf-8")
    fresh = render(current)
    if args.check:
        if fresh == current:
            print(f"{args.readme.name} is up to date")
            return 0
        diff = difflib.unified_diff(current.splitlines(keepends=True),
                                    fresh.splitlines(keepends=True),
                                    "README.md (current)", "README.md (generated)")
        sys.stdout.writelines(list(diff)[:200])
        print(f"\n{args.readme.name} is out of date: run `{REGEN}` and commit the result.")
        return 1
    if fresh != current:
        args.readme.write_text(fresh, encoding="utf-8")
        print(f"rewrote {args.readme}")
    else:
        print(f"{args.readme.name} is already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
