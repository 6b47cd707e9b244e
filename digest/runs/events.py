"""What a run tells whoever watches it, since it prints nothing itself.

A run hands each event to its ``Watcher`` the moment it happens, and asks it for a progress
display for each day's papers. The CLI's watcher prints them; ``Unwatched`` drops them.
"""

from __future__ import annotations

import datetime as dt
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Protocol

from digest.runs.day import DayRun
from digest.runs.results import Progress, Silent


@dataclass(frozen=True)
class Warned:
    """Something to fix that does not stop the run (a run report that could not be written,
    day files a Jekyll site would publish)."""

    line: str


@dataclass(frozen=True)
class NothingFound:
    """The source has no papers for a day: nothing is written for it."""

    date: dt.date
    line: str  # the source's own words: why, and what to try


@dataclass(frozen=True)
class DayBegun:
    """A backfill begins a day of its range."""

    date: dt.date
    number: int  # from 1
    total: int


@dataclass(frozen=True)
class DayDone:
    """A day is written (or left as it was), with every paper's result; its run report too,
    when the run did something."""

    run: DayRun


@dataclass(frozen=True)
class BatchNote:
    """What the Batch API side has to say: a batch submitted, collected, found again."""

    line: str


RunEvent = Warned | NothingFound | DayBegun | DayDone | BatchNote


class Watcher(Protocol):
    def tell(self, event: RunEvent) -> None: ...

    def progress(self, total: int) -> AbstractContextManager[Progress]:
        """What shows the progress of a day's ``total`` papers, while they are digested."""
        ...


class Unwatched:
    """A watcher that shows nothing."""

    def tell(self, event: RunEvent) -> None:
        pass

    def progress(self, total: int) -> AbstractContextManager[Progress]:
        return nullcontext(Silent())
