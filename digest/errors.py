"""Errors a user can hit. Each one names the thing that is wrong and how to fix it.

The CLI prints ``str(error)`` on one line and exits with ``error.exit_code``;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

from pathlib import Path


class DigestError(Exception):
    """Base class of every error digest reports to a user."""

    exit_code = 1


class UsageError(DigestError):
    """Bad usage, bad input or bad configuration (exit code 2)."""

    exit_code = 2


class DataFileError(UsageError):
    """A day file in ``outputs/data`` that cannot be read or does not validate."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class PostFormatError(UsageError):
    """A post ``digest import`` cannot parse: names the file, the line and what was expected."""

    def __init__(
        self, path: Path, line_number: int, expected: str, found: str | None = None
    ) -> None:
        message = f"{path}:{line_number}: expected {expected}"
        if found is not None:
            shown = found if len(found) <= 80 else found[:77] + "..."
            message += f", found {shown!r}"
        super().__init__(message)
        self.path = path
        self.line_number = line_number


class PaperFailed(DigestError):
    """One paper could not be digested; the run goes on without it and lists the reason."""

    def __init__(self, paper: str, reason: str) -> None:
        super().__init__(f"{paper}: {reason}")
        self.paper = paper
        self.reason = reason


class LLMConfigError(UsageError):
    """The LLM server refuses every request (bad key, unknown model): no paper can succeed."""
