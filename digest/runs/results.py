"""What became of each paper of a run, and who is told as it happens.

A leaf module: the pipeline makes these, the day and the report read them, and none of those
needs the others to do so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, get_args

from digest.errors import PaperFailed, PaperStopped, SummaryFailed
from digest.models import UNFINISHED, PaperEntry, Status, Usage
from digest.sources.papers import ArxivRef, LocalPdf

STATUSES: tuple[Status, ...] = get_args(Status)
STAGES = ("download", "extract", "summarize")


@dataclass(frozen=True)
class StageTimes:
    """Seconds one paper spent in each stage it went through in this run; None for a stage
    it did not (a cached digest, the abstract for a PDF that could not be had, a batch)."""

    download: float | None = None
    extract: float | None = None
    summarize: float | None = None

    def by_stage(self) -> dict[str, float]:
        """The stages it went through, in the order they run, with their seconds."""
        return {stage: seconds for stage in STAGES if (seconds := getattr(self, stage)) is not None}

    @property
    def total(self) -> float:
        return sum(self.by_stage().values())


@dataclass
class PaperResult:
    """What became of one paper: its entry, or the failure that left it without one."""

    ref: ArxivRef | LocalPdf
    entry: PaperEntry | None = None
    status: Status = "done"
    failure: PaperFailed | None = None  # failed or stopped: why
    note: str | None = None  # skipped: why; a failed redo: that the earlier entry is kept
    times: StageTimes = field(default_factory=StageTimes)

    @classmethod
    def failed(cls, ref: ArxivRef | LocalPdf, failure: PaperFailed) -> PaperResult:
        status: Status = "stopped" if isinstance(failure, PaperStopped) else "failed"
        return cls(ref, status=status, failure=failure)

    @property
    def unfinished(self) -> bool:
        """Failed or stopped: the run meant to digest it and did not."""
        return self.status in UNFINISHED

    @property
    def label(self) -> str:
        return str(self.ref)

    @property
    def arxiv_id(self) -> str | None:
        return self.ref.arxiv_id if isinstance(self.ref, ArxivRef) else None

    @property
    def error(self) -> str | None:
        """Why the paper has no new entry (or is skipped), as the run lists it."""
        reason = str(self.failure) if self.failure is not None else None
        parts = [part for part in (reason, self.note) if part]
        if reason and self.note:
            return f"{reason} ({self.note})"
        return parts[0] if parts else None

    @property
    def spent(self) -> Usage | None:
        """What a paper that failed at the LLM still cost in tokens (its answers were paid)."""
        return self.failure.usage if isinstance(self.failure, SummaryFailed) else None

    @property
    def spent_usd(self) -> float | None:
        return self.failure.cost_usd if isinstance(self.failure, SummaryFailed) else None


class Progress(Protocol):
    """What the pipeline tells whoever shows progress."""

    def stage_done(self, paper: str, stage: str) -> None: ...

    def paper_done(self, result: PaperResult) -> None: ...


class Silent:
    """Progress that shows nothing."""

    def stage_done(self, paper: str, stage: str) -> None:
        pass

    def paper_done(self, result: PaperResult) -> None:
        pass
