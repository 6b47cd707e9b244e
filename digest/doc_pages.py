"""The generated parts of the docs pages: text between two markers that a generator rewrites.

A page such as ``docs/settings.md`` is written by hand except between its markers, where the
text is made from the code (the settings' fields, the commands' ``--help``). Each generator
module (``digest.settings_doc``, ``digest.cli_doc``) describes its part with a ``Generated``
and runs its ``main``; a test fails when the committed page is out of date::

    python -m digest.settings_doc --write   # rewrite the part in its page
    python -m digest.settings_doc --check   # exit 1, in one line, when it is out of date

The docs are a checkout's, not an installed package's: ``DOCS`` is the ``docs/`` folder next
to the package, and ``--page`` names another file.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


@dataclass(frozen=True)
class Generated:
    """The part of ``page`` between ``start`` and ``end``, made by ``generate``."""

    what: str  # how messages name it: "the settings table"
    page: Path
    start: str
    end: str
    module: str  # the generator, as "python -m" runs it
    generate: Callable[[], str]

    @property
    def regenerate(self) -> str:
        return f"python -m {self.module} --write"

    def filled(self, text: str) -> str:
        """``text`` with its part between the markers replaced by the generated one."""
        start = text.find(self.start)
        end = text.find(self.end)
        if start < 0 or end < start:
            raise ValueError(f"no {self.start} ... {self.end} in the page")
        # Blank lines around the part: markdown next to an HTML comment would join it.
        return f"{text[:start]}{self.start}\n\n{self.generate()}\n{text[end:]}"

    def problem(self, text: str) -> str | None:
        """Why ``text``'s part is out of date, in one line; None when it is current."""
        try:
            current = self.filled(text) == text
        except ValueError as error:
            return f"{error}; add the markers around {self.what}, then run {self.regenerate}"
        if current:
            return None
        return f"{self.what} is out of date; run {self.regenerate}"

    def main(self, argv: Sequence[str] | None = None) -> int:
        parser = argparse.ArgumentParser(
            prog=f"python -m {self.module}",
            description=f"Write {self.what} into {self.page.name} between its markers.",
        )
        mode = parser.add_mutually_exclusive_group(required=True)
        mode.add_argument("--write", action="store_true", help="Update the page.")
        mode.add_argument("--check", action="store_true", help="Exit 1 if it is out of date.")
        parser.add_argument("--page", type=Path, default=self.page, help="Default: the checkout's.")
        args = parser.parse_args(argv)
        path: Path = args.page
        text = path.read_text(encoding="utf-8")
        if args.check:
            problem = self.problem(text)
            if problem is not None:
                print(f"{path}: {problem}", file=sys.stderr)
                return 1
            return 0
        try:
            updated = self.filled(text)
        except ValueError as error:
            print(f"{path}: {error}; add the markers around {self.what}", file=sys.stderr)
            return 2
        if updated != text:
            from digest.files import atomic_write_text

            atomic_write_text(path, updated)
            print(f"updated: {path}")
        return 0
