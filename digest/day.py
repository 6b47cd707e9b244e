"""A day's run: which papers it has, what became of each, and the files written from them.

``plan_day`` decides from the day file and the source which papers need work; ``run_day``
sends those through the pipeline (``digest.pipeline``) and writes the day file and its post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from digest.errors import LLMConfigError
from digest.models import Day, PaperEntry
from digest.render import render_day
from digest.settings import Settings
from digest.sources import ArxivRef, Candidate, LocalPdf, PaperMetadata
from digest.store import OutputStore, OutputWriteFailed, dump_day, write_if_changed

if TYPE_CHECKING:
    from digest.fetch import ArxivMetadata
    from digest.summarize import Sleep

# done: digested now; cached: from the digest cache; reused: already in the day file;
# failed: no digest (the reason says why); skipped: an earlier day published it;
# stopped: not started, the --max-cost cap would have been passed.
Status = Literal["done", "cached", "reused", "failed", "skipped", "stopped"]
STATUSES: tuple[Status, ...] = ("done", "cached", "reused", "failed", "skipped", "stopped")
STAGES = ("download", "extract", "summarize")


@dataclass
class PaperResult:
    """What became of one paper: its entry, or why there is none."""

    ref: ArxivRef | LocalPdf
    entry: PaperEntry | None = None
    error: str | None = None
    status: Status = "done"
    stage_seconds: dict[str, float] = field(default_factory=dict)
    # What a paper that failed at the LLM still cost: (tokens in, tokens out, USD or None).
    spent: tuple[int, int, float | None] | None = None

    @property
    def label(self) -> str:
        return str(self.ref)


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


@dataclass
class DayPlan:
    """What a run will do for a day, decided from the day file and the source before any
    paper is fetched.

    A day only grows: a re-run keeps every paper its day file has, in its order, and takes new
    papers from the source (in the source's order, papers an earlier day published skipped)
    until the day has ``limit``. ``--force`` redoes the day from the source instead. An entry
    is redone in place when it was made from the abstract only because its PDF could not be
    had for a passing reason, or when the source names another version of it. A paper that is
    redone and fails keeps its earlier entry.
    """

    date: dt.date
    existing: Day | None
    order: list[str]  # arXiv IDs, as the day and the run's results will list them
    decided: dict[str, PaperResult]  # reused or skipped, by arXiv ID: no work to do
    todo: list[ArxivRef]
    earlier: dict[str, PaperEntry]  # the day file's entries, kept for a redo that fails

    @property
    def total(self) -> int:
        return len(self.order)


def plan_day(
    settings: Settings,
    candidates: list[Candidate],
    date: dt.date,
    *,
    limit: int | None = None,
    force: bool = False,
) -> DayPlan:
    """Which papers the day will have, and which of them need work (see ``DayPlan``)."""
    store = OutputStore.of(settings)
    existing = store.load_day(date) if store.data_path(date).exists() else None
    # An entry without an arXiv ID (none is written today, but a hand-made day may have one)
    # is kept under a name of its own.
    earlier = {
        entry.arxiv_id or f"entry {number}": entry
        for number, entry in enumerate(existing.papers if existing else [], start=1)
    }
    published = store.published_before(date) if settings.skip_published else {}
    order: list[str] = []
    decided: dict[str, PaperResult] = {}
    todo: dict[str, ArxivRef] = {}
    if not force:
        for arxiv_id, entry in earlier.items():
            order.append(arxiv_id)
            ref = ArxivRef(arxiv_id, entry.version)
            if entry.provenance.full_text_pending:
                todo[arxiv_id] = ref
            else:
                decided[arxiv_id] = PaperResult(ref, entry, status="reused")
    room = None if limit is None else limit - len(order)
    rank = {candidate.ref.arxiv_id: place for place, candidate in enumerate(candidates)}
    for candidate in candidates:
        ref = candidate.ref
        if ref.arxiv_id in order:
            entry = earlier.get(ref.arxiv_id)
            if entry and ref.version and ref.version != entry.version:
                decided.pop(ref.arxiv_id, None)  # another version asked for: redo it
                todo[ref.arxiv_id] = ref
            continue
        if room is not None and room <= 0:
            break
        order.insert(_place_in(order, ref.arxiv_id, rank), ref.arxiv_id)
        if candidate.withdrawn:
            # Hugging Face marks a paper withdrawn from arXiv (paper.withdrawnAt); it takes no
            # place, like a paper published earlier.
            decided[ref.arxiv_id] = PaperResult(ref, error="withdrawn", status="skipped")
            continue
        if ref.arxiv_id in published:
            reason = f"already published on {published[ref.arxiv_id]}"
            decided[ref.arxiv_id] = PaperResult(ref, error=reason, status="skipped")
            continue
        todo[ref.arxiv_id] = ref
        if room is not None:
            room -= 1
    return DayPlan(date, existing, order, decided, list(todo.values()), earlier)


def _place_in(order: list[str], arxiv_id: str, rank: dict[str, int]) -> int:
    """Where a new paper goes among the day's papers: after the last one the source ranks
    above it, else before the first one it ranks below it, else at the end. The papers already
    there keep their order."""
    above = [i for i, other in enumerate(order) if other in rank and rank[other] < rank[arxiv_id]]
    if above:
        return above[-1] + 1
    below = [i for i, other in enumerate(order) if other in rank and rank[other] > rank[arxiv_id]]
    return below[0] if below else len(order)


@dataclass
class DayRun:
    """A finished ``daily`` run: the day as written, every paper's result, the files."""

    day: Day
    results: list[PaperResult]
    post: Path | None
    changed: bool
    fatal: LLMConfigError | None
    started_at: dt.datetime
    seconds: float

    @property
    def did_work(self) -> bool:
        """Whether the run changed a file or tried a paper (else it leaves no report)."""
        return self.changed or any(r.status not in ("reused", "skipped") for r in self.results)


async def run_day(
    settings: Settings,
    plan: DayPlan,
    *,
    known: dict[str, PaperMetadata] | None = None,
    metadata: ArxivMetadata | None = None,
    force: bool = False,
    max_cost: float | None = None,
    progress: Progress | None = None,
    sleep: Sleep = asyncio.sleep,
    before_write: Callable[[], None] | None = None,
    deadline: float | None = None,
) -> DayRun:
    """Carry out ``plan``, then write the day file and post with every paper that has an entry.

    Files are written only when their bytes change, so re-running a finished day changes
    nothing. With ``force``, no digest comes from the cache.
    """
    started_at = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    tell = progress or Silent()
    decided = dict(plan.decided)
    for result in decided.values():
        tell.paper_done(result)
    fatal = None
    if plan.todo:
        # Imported here: the LLM client, the arXiv client and the PDF readers take most of a
        # second to import, and a finished day, re-run, needs none of them. The extraction
        # workers are started first, to start up while that import runs.
        from digest.extract import start_workers

        workers = start_workers(settings.extractor)
        from digest.pipeline import Pipeline

        async with Pipeline(
            settings,
            sleep=sleep,
            progress=tell,
            max_cost=max_cost,
            force=force,
            metadata=metadata,
            workers=workers,
            deadline=deadline,
        ) as pipeline:
            for result in await pipeline.digest_arxiv(plan.todo, known):
                decided[result.ref.arxiv_id] = result  # type: ignore[union-attr]
            fatal = pipeline.fatal
    results = [decided[arxiv_id] for arxiv_id in plan.order]

    papers = []
    for result in results:
        entry = result.entry
        kept = plan.earlier.get(result.ref.arxiv_id)  # type: ignore[union-attr]
        if entry is None and kept is not None and result.status in ("failed", "stopped"):
            entry = kept
            result.error = f"{result.error} (its earlier entry is kept)"
        if entry is not None:
            papers.append(entry)
    day = plan.existing if plan.existing is not None else settings.new_day(plan.date)
    day = day.model_copy(update={"papers": papers})
    store = OutputStore.of(settings)
    post, changed = None, False
    if day.papers:
        if before_write is not None:
            before_write()  # the lock is still ours (see OutputLock.check_held)
        post = store.post_path(plan.date)
        data = store.data_path(plan.date)
        try:
            changed = write_if_changed(data, dump_day(day))
            changed = write_if_changed(post, render_day(day)) or changed
        except OSError as error:
            made = sum(result.status == "done" for result in results)
            raise OutputWriteFailed(
                f"cannot write {error.filename or data}: {error.strerror or error} (disk full?); "
                f"free space and run again: the {made} digest{'' if made == 1 else 's'} made "
                f"now went to the cache ({settings.cache_dir}; a warning above says if one "
                "could not) and cost nothing next time"
            ) from None
    return DayRun(day, results, post, changed, fatal, started_at, time.monotonic() - clock)
