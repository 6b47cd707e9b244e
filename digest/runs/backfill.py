"""``digest backfill --batch``: every day of a range read first, as ``daily`` reads a day; the
LLM work of all of them sent through the Batch API (``digest.llm.batch``); each day written the
moment its last paper is settled.

The days are planned in date order, each against the papers the days before it have (written
or only planned), so that a paper is digested once, on its first day. A day whose papers all
come from its file or the digest cache is written at once. With interests, the days' rankings
go through a batch of their own first (``digest.runs.batch_ranking``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from digest.errors import SummaryFailed
from digest.llm.batch import BatchRun
from digest.llm.batch_folder import BatchFolder
from digest.llm.conversation import Outcome
from digest.llm.price import CostGuard
from digest.llm.summarize import Summary
from digest.net import AsyncSleep
from digest.options import BatchOptions, RunOptions
from digest.runs.batch_ranking import BatchRanking, DaysWaiting
from digest.runs.day import DayPlan, DayRun, plan_day, write_day
from digest.runs.events import BatchNote, NothingFound, Watcher
from digest.runs.results import PaperResult
from digest.runs.setup import RunSetup, open_pipeline
from digest.sources.papers import Candidate, Source

if TYPE_CHECKING:
    from digest.runs.pipeline import Deferred, Pipeline


@dataclass
class _OpenDay:
    """A day read and planned, some of its papers still at the batches."""

    plan: DayPlan
    decided: dict[str, PaperResult]
    started_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    clock: float = field(default_factory=time.monotonic)
    waiting: int = 0


async def backfill_batch(
    source: Source,
    days: list[dt.date],
    setup: RunSetup,
    run: RunOptions,
    options: BatchOptions,
    watcher: Watcher,
    *,
    on_day: Callable[[DayRun], None],
    before_write: Callable[[], None] | None = None,
    sleep: AsyncSleep = asyncio.sleep,
) -> int:
    """Every day of ``days``; ``on_day`` is given each day as it is written. The requests
    sent again after a batch failed or expired them are counted. A configuration error met in
    the answers (``LLMConfigError``) is raised once every day is written."""
    # --max-cost is the batch's to check, on the whole range's estimate, before it submits.
    async with open_pipeline(setup, replace(run, max_cost=None), sleep=sleep) as pipeline:
        costs = CostGuard(
            setup.llm.price, setup.llm.max_output_tokens, run.max_cost, run.spent_before
        )

        def batch_run() -> BatchRun:
            return BatchRun(
                pipeline.summarizer.server,
                BatchFolder(setup.cache_dir / "batches"),
                options,
                costs,
                deadline=run.deadline,
                sleep=sleep,
                tell=lambda line: watcher.tell(BatchNote(line)),
            )

        batches = batch_run()
        await batches.api.check_available()  # before any paper is read
        waiting = _Days(pipeline, batches, setup, on_day, before_write)
        published = setup.store.published_before(days[0]) if run.skip_published else {}
        read = _days_read(source, days, watcher)
        ranking: BatchRanking | None = None
        if setup.rank is not None and source.name != "ids":
            ranking = BatchRanking(batch_run(), setup, run, costs)
            read = _each(await ranking.ask(read, published, watcher))
        async with contextlib.aclosing(read):
            async for date, candidates in read:
                plan = await _plan(candidates, date, setup, run, published, ranking, watcher)
                for arxiv_id in plan.order:
                    published.setdefault(arxiv_id, date)
                day = await waiting.read(plan)
                count = f"{plan.total} paper{'' if plan.total == 1 else 's'}"
                watcher.tell(BatchNote(f"{date}: {count}, {day.waiting} for the batch"))
                if day.waiting == 0:
                    waiting.finish(day)
        await batches.run()
    stop = batches.stop or (ranking.batches.stop if ranking is not None else None)
    if stop is not None:
        raise stop
    return batches.resubmitted + (ranking.batches.resubmitted if ranking is not None else 0)


async def _days_read(
    source: Source, days: list[dt.date], watcher: Watcher
) -> AsyncGenerator[tuple[dt.date, list[Candidate]]]:
    """Each day's candidates from the source, in date order; a day without any is told."""
    for date in days:
        candidates = await source.candidates(date)
        if not candidates:
            watcher.tell(NothingFound(date, source.nothing_found(date)))
            continue
        yield date, candidates


async def _each(
    waiting: DaysWaiting,
) -> AsyncGenerator[tuple[dt.date, list[Candidate]]]:
    """The days kept by the ranking's first pass, read back; their file closed at the end."""
    try:
        for day in waiting:
            yield day
    finally:
        waiting.close()


async def _plan(
    candidates: list[Candidate],
    date: dt.date,
    setup: RunSetup,
    run: RunOptions,
    published: dict[str, dt.date],
    ranking: BatchRanking | None,
    watcher: Watcher,
) -> DayPlan:
    """The day's plan; with interests, from the candidates they choose (their scores asked
    through the batch before: ``digest.runs.batch_ranking``)."""
    if ranking is None:
        return plan_day(setup.store, candidates, date, run, published)
    chosen = await ranking.choose(date, candidates, published, watcher)
    plan = plan_day(setup.store, chosen.candidates, date, chosen.run, published)
    plan.candidates, plan.ranking = chosen.scores, chosen.totals
    return plan


class _Days:
    """The days read, their papers the cache does not have handed to the batches; each day
    written the moment its last paper is settled."""

    def __init__(
        self,
        pipeline: Pipeline,
        batches: BatchRun,
        setup: RunSetup,
        on_day: Callable[[DayRun], None],
        before_write: Callable[[], None] | None,
    ) -> None:
        self.pipeline = pipeline
        self.batches = batches
        self.setup = setup
        self.on_day = on_day
        self.before_write = before_write
        self._owner: dict[int, _OpenDay] = {}  # by id() of each paper at the batches

    async def read(self, plan: DayPlan) -> _OpenDay:
        """The day's papers read, and those the cache does not have handed to the batches."""
        day = _OpenDay(plan, dict(plan.decided))

        def hand_over(deferred: Deferred) -> None:
            conversation = self.pipeline.summarizer.begin(deferred.paper)
            self.batches.add(deferred.key, conversation, partial(self._concluded, deferred))
            deferred.drop_text()  # kept on disk by the batches, not in memory here
            self._owner[id(deferred)] = day
            day.waiting += 1

        for result in await self.pipeline.read_papers(plan.todo, hand_over):
            if result is not None:
                day.decided[str(result.arxiv_id)] = result
        # What the source said of each paper (its abstract, mostly) is read; a year of days
        # waiting on their batches need not hold it.
        plan.todo = []
        return day

    def _concluded(self, deferred: Deferred, answer: Outcome | SummaryFailed) -> None:
        day = self._owner.pop(id(deferred))
        assert isinstance(answer, Summary | SummaryFailed)
        result = self.pipeline.conclude(deferred, answer)
        day.decided[str(result.arxiv_id)] = result
        day.waiting -= 1
        if day.waiting == 0:
            self.finish(day)

    def finish(self, day: _OpenDay) -> None:
        seconds = time.monotonic() - day.clock
        finished = write_day(
            day.plan, self.setup, day.decided, day.started_at, seconds, self.before_write
        )
        self.on_day(finished)
