"""A day's run: which papers it has, what became of each, and the files written from them.

``plan_day`` decides from the day file and the source which papers need work; ``run_day``
sends those through the pipeline (``digest.runs.pipeline``) and writes the day file and its post.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from digest.blog.render import render_day
from digest.blog.store import OutputStore, dump_day, write_if_changed
from digest.errors import OutputWriteFailed, RunStopped
from digest.models import CandidateScore, Day, PaperEntry, RankingTotals
from digest.net import AsyncSleep
from digest.options import RunOptions
from digest.runs.results import PaperResult, Progress, Silent
from digest.runs.setup import RunSetup, open_pipeline
from digest.sources.papers import ArxivRef, Candidate


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
    todo: list[Candidate]  # with what the source said of each
    earlier: dict[str, PaperEntry]  # the day file's entries, kept for a redo that fails
    # With interests: every candidate's score and fate, and the ranking's figures.
    candidates: list[CandidateScore] | None = None
    ranking: RankingTotals | None = None
    # What the source said of each paper's upvotes (Hugging Face), for the entries made now.
    upvotes: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.order)


def plan_day(
    store: OutputStore,
    candidates: list[Candidate],
    date: dt.date,
    run: RunOptions,
    published: Mapping[str, dt.date] | None = None,
) -> DayPlan:
    """Which papers the day will have, and which of them need work (see ``DayPlan``).
    ``published`` (arXiv ID → its day) stands for the day files before ``date`` when the
    caller knows better (a backfill whose earlier days are planned, not yet written)."""
    existing = store.load_day(date) if store.data_path(date).exists() else None
    # An entry without an arXiv ID (none is written today, but a hand-made day may have one)
    # is kept under a name of its own.
    earlier = {
        entry.arxiv_id or f"entry {number}": entry
        for number, entry in enumerate(existing.papers if existing else [], start=1)
    }
    if not run.skip_published:
        published = {}
    elif published is None:
        published = store.published_before(date)
    draft = _Draft() if run.force else _keep_earlier(earlier, candidates)
    draft.take_new(candidates, earlier, published, run.limit)
    upvotes = {c.ref.arxiv_id: c.upvotes for c in candidates if c.upvotes is not None}
    todo = list(draft.todo.values())
    return DayPlan(date, existing, draft.order, draft.decided, todo, earlier, upvotes=upvotes)


@dataclass
class _Draft:
    """A day's plan as it is made: its papers in order, those decided, those to do."""

    order: list[str] = field(default_factory=list)
    decided: dict[str, PaperResult] = field(default_factory=dict)
    todo: dict[str, Candidate] = field(default_factory=dict)

    def take_new(
        self,
        candidates: list[Candidate],
        earlier: dict[str, PaperEntry],
        published: Mapping[str, dt.date],
        limit: int | None,
    ) -> None:
        """The source's papers the day has not, in the source's order, until it has
        ``limit``; a paper it has, asked for in another version, is redone."""
        room = None if limit is None else limit - len(self.order)
        rank = {candidate.ref.arxiv_id: place for place, candidate in enumerate(candidates)}
        for candidate in candidates:
            arxiv_id = candidate.ref.arxiv_id
            if arxiv_id in self.order:
                self._redo_if_another_version(candidate, earlier.get(arxiv_id))
                continue
            if room is not None and room <= 0:
                break
            self.order.insert(_place_in(self.order, arxiv_id, rank), arxiv_id)
            skipped = _why_skipped(candidate, published)
            if skipped is not None:
                self.decided[arxiv_id] = PaperResult(candidate.ref, status="skipped", note=skipped)
                continue
            self.todo[arxiv_id] = candidate
            if room is not None:
                room -= 1

    def _redo_if_another_version(self, candidate: Candidate, had: PaperEntry | None) -> None:
        ref = candidate.ref
        if had and ref.version and ref.version != had.version:
            self.decided.pop(ref.arxiv_id, None)  # another version asked for: redo it
            self.todo[ref.arxiv_id] = candidate


def _why_skipped(candidate: Candidate, published: Mapping[str, dt.date]) -> str | None:
    """Why a new paper takes no place in the day: withdrawn from arXiv (Hugging Face marks it,
    paper.withdrawnAt), or published by an earlier day."""
    if candidate.withdrawn:
        return "withdrawn"
    if candidate.ref.arxiv_id in published:
        return f"already published on {published[candidate.ref.arxiv_id]}"
    return None


def _keep_earlier(earlier: dict[str, PaperEntry], candidates: list[Candidate]) -> _Draft:
    """The day file's papers, in its order: reused, or redone when only their PDF was missing
    for a passing reason (with what the source says of them, when it lists them again)."""
    listed = {candidate.ref.arxiv_id: candidate for candidate in candidates}
    draft = _Draft(order=list(earlier))
    for arxiv_id, entry in earlier.items():
        ref = ArxivRef(arxiv_id, entry.version)
        if entry.provenance.full_text_pending:
            source = listed.get(arxiv_id)
            draft.todo[arxiv_id] = Candidate(ref, metadata=source.metadata if source else None)
        else:
            draft.decided[arxiv_id] = PaperResult(ref, entry, status="reused")
    return draft


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
    started_at: dt.datetime
    seconds: float
    ranking: RankingTotals | None = None  # when the day was chosen by interests

    @property
    def did_work(self) -> bool:
        """Whether the run changed a file or tried a paper (else it leaves no report)."""
        asked = self.ranking is not None and self.ranking.requests > 0
        return (
            asked
            or self.changed
            or any(r.status not in ("reused", "skipped") for r in self.results)
        )


async def run_day(
    plan: DayPlan,
    setup: RunSetup,
    run: RunOptions,
    *,
    progress: Progress | None = None,
    sleep: AsyncSleep = asyncio.sleep,
    before_write: Callable[[], None] | None = None,
) -> DayRun:
    """Carry out ``plan``, then write the day file and post with every paper that has an entry.

    Files are written only when their bytes change, so re-running a finished day changes
    nothing. With ``run.force``, no digest comes from the cache. A ``RunStopped`` met on the
    way (the LLM server refused the configuration) is raised once what was done is written,
    with this ``DayRun`` attached; one met before any paper (the key check) at once, with none.
    """
    started_at = dt.datetime.now(dt.UTC)
    clock = time.monotonic()
    tell = progress or Silent()
    decided = dict(plan.decided)
    for result in decided.values():
        tell.paper_done(result)
    stopped: RunStopped | None = None
    if plan.todo:
        try:
            done = await _digest(plan.todo, setup, run, tell, sleep)
        except RunStopped as error:
            if not error.results:
                raise  # before any paper was begun (the key check): the day is as it was
            stopped, done = error, error.results
        for result in done:
            decided[str(result.arxiv_id)] = result
    seconds = time.monotonic() - clock
    finished = write_day(plan, setup, decided, started_at, seconds, before_write)
    if stopped is not None:
        stopped.run = finished
        raise stopped
    return finished


def write_day(
    plan: DayPlan,
    setup: RunSetup,
    decided: Mapping[str, PaperResult],
    started_at: dt.datetime,
    seconds: float,
    before_write: Callable[[], None] | None = None,
) -> DayRun:
    """Write the day file and post with every paper of ``plan`` that has an entry, from
    every paper's result (by arXiv ID); a redo that failed keeps the earlier entry."""
    results = [decided[arxiv_id] for arxiv_id in plan.order]
    day = plan.existing if plan.existing is not None else setup.new_day(plan.date)
    day = day.model_copy(update={"papers": _entries(plan, results)})
    if plan.candidates is not None:
        day = day.model_copy(update={"candidates": plan.candidates})
    post, changed = None, False
    if day.papers:
        if before_write is not None:
            before_write()  # the lock is still ours (see OutputLock.check_held)
        made = sum(result.status == "done" for result in results)
        post, changed = _write(day, setup, made)
    return DayRun(day, results, post, changed, started_at, seconds, plan.ranking)


def _entries(plan: DayPlan, results: list[PaperResult]) -> list[PaperEntry]:
    """Every paper's entry, in order; a redo that failed keeps its earlier one (and says so).
    A paper digested now carries the upvotes its source gave it."""
    upvotes = plan.upvotes
    papers = []
    for result in results:
        entry = result.entry
        kept = plan.earlier.get(str(result.arxiv_id))
        if entry is None and kept is not None and result.unfinished:
            entry = kept
            result.note = "its earlier entry is kept"
        elif entry is not None and entry is not kept and entry.arxiv_id in upvotes:
            entry = entry.model_copy(update={"upvotes": upvotes[entry.arxiv_id]})
        if entry is not None:
            papers.append(entry)
    return papers


def _write(day: Day, setup: RunSetup, made: int) -> tuple[Path, bool]:
    """Write the day file and its post where their bytes change: the post's path, and whether
    either changed. ``made`` digests wait in the cache if the disk refuses them."""
    post = setup.store.post_path(day.date)
    data = setup.store.data_path(day.date)
    try:
        changed = write_if_changed(data, dump_day(day))
        return post, write_if_changed(post, render_day(day)) or changed
    except OSError as error:
        raise OutputWriteFailed(
            f"cannot write {error.filename or data}: {error.strerror or error} (disk full?); "
            f"free space and run again: the {made} digest{'' if made == 1 else 's'} made "
            f"now went to the cache ({setup.cache_dir}; a warning above says if one "
            "could not) and cost nothing next time"
        ) from None


async def _digest(
    todo: list[Candidate], setup: RunSetup, run: RunOptions, progress: Progress, sleep: AsyncSleep
) -> list[PaperResult]:
    async with open_pipeline(setup, run, progress=progress, sleep=sleep) as pipeline:
        return await pipeline.digest_papers(todo)
