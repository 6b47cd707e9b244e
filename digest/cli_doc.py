"""The CLI reference, ``docs/cli.md``: every command's ``--help``, as a user sees it.

The page's text between the markers below is the output of ``digest --help`` and of
``digest COMMAND --help`` for each command, in the order ``digest --help`` lists them, and
``tests/test_cli_doc.py`` fails when it differs from the live help::

    python -m digest.cli_doc --write   # update docs/cli.md
    python -m digest.cli_doc --check   # exit 1 when docs/cli.md is out of date

The help is rendered as a terminal of ``WIDTH`` columns would show it, without colour or
styles (they are taken out where rich adds them anyway, as it does under GitHub Actions) and
without the spaces rich pads each line with, so the page is the same on every machine.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence

import typer.main
from typer.core import TyperGroup
from typer.testing import CliRunner

from digest.cli import app
from digest.doc_pages import DOCS, Generated

START_MARKER = "<!-- cli-help start -->"
END_MARKER = "<!-- cli-help end -->"
PROGRAM = "digest"
WIDTH = 100

_STYLE = re.compile(r"\x1b\[[0-9;]*m")


def commands() -> list[str]:
    """The subcommands, in the order ``digest --help`` lists them."""
    group = typer.main.get_command(app)
    if not isinstance(group, TyperGroup):
        raise TypeError("the digest app is not a group of commands")
    return list(group.commands)  # typer keeps them in the order they were added


def help_text(args: Sequence[str] = ()) -> str:
    """``digest ARGS --help`` as a terminal of ``WIDTH`` columns shows it, in plain text."""
    # COLUMNS sets rich's width; NO_COLOR and the removal of escapes make it plain text.
    environment = {"COLUMNS": str(WIDTH), "NO_COLOR": "1"}
    result = CliRunner().invoke(app, [*args, "--help"], prog_name=PROGRAM, env=environment)
    if result.exit_code != 0:
        raise RuntimeError(f"{PROGRAM} {' '.join(args)} --help exited {result.exit_code}")
    lines = [line.rstrip() for line in _STYLE.sub("", result.output).splitlines()]
    text = "\n".join(lines).strip("\n")
    if "```" in text:  # it would end the code block early
        raise ValueError(f"{PROGRAM} {' '.join(args)} --help holds ```")
    return text


def _section(args: Sequence[str]) -> str:
    name = " ".join([PROGRAM, *args])
    return f"## {name}\n\n```text\n{help_text(args)}\n```\n"


def reference() -> str:
    """The generated part of the page: the root help, then each command's."""
    return "\n".join(_section(args) for args in [[], *([name] for name in commands())])


PAGE = Generated(
    what="the CLI reference",
    page=DOCS / "cli.md",
    start=START_MARKER,
    end=END_MARKER,
    module="digest.cli_doc",
    generate=reference,
)


def main(argv: Sequence[str] | None = None) -> int:
    return PAGE.main(argv)


if __name__ == "__main__":
    sys.exit(main())
