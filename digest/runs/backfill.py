"""``digest backfill --batch``: every day of a range read first, as ``daily`` reads a day; the
LLM work of all of them sent through the Batch API (``digest.llm.batch``); each day written the
moment its last paper is settled.

The days are planned in date order, each against the papers the days before it have (written
or only planned), so that a paper is digested once, on its first day. A day whose papers all
come from its file or the digest cache is written at once.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import partial

from digest.errors import SummaryFailed
from digest.llm.batch import BatchRun
from digest.llm.batch_folder import BatchFolder
from digest.llm.conversation import Outcome
from digest.llm.price import CostGuard
from digest.llm.summarize import Summary
from digest.net import AsyncSleep
from digest.options import BatchOptions, RunOptions
from digest.runs.day import DayPlan, DayRun, DaySetup, day_pipeline, plan_day, write_day
from digest.runs.results import PaperResult, Silent
from digest.sources.papers import Source


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
    setup: DaySetup,
    run: RunOptions,
    options: BatchOptions,
    *,
    on_day: Callable[[DayRun], None],
    tell: Callable[[str], None],
    before_write: Callable[[], None] | None = None,
    sleep: AsyncSleep = asyncio.sleep,
) -> int:
    """Every day of ``days``; ``on_day`` is given each day as it is written. The requests
    sent again after a batch failed or expired them are counted. A configuration error met in
    the answers (``LLMConfigError``) is raised once every day is written."""
    from digest.runs.pipeline import Deferred

    # --max-cost is the batch's to check, on the whole range's estimate, before it submits.
    pipeline = day_pipeline(setup, replace(run, max_cost=None), Silent(), sleep)
    async with pipeline:
        server = pipeline.summarizer.server
        costs = CostGuard(
            setup.llm.price, setup.llm.max_output_tokens, run.max_cost, run.spent_before
        )
        batches = BatchRun(
            server,
            BatchFolder(setup.cache_dir / "batches"),
            options,
            costs,
            deadline=run.deadline,
            sleep=sleep,
            tell=tell,
        )
        await batches.api.check_available()  # before any paper is read
        owner: dict[int, _OpenDay] = {}

        def finish(day: _OpenDay) -> None:
            seconds = time.monotonic() - day.clock
            on_day(write_day(day.plan, setup, day.decided, day.started_at, seconds, before_write))

        def concluded(deferred: Deferred, answer: Outcome | SummaryFailed) -> None:
            day = owner.pop(id(deferred))
            assert isinstance(answer, Summary | SummaryFailed)
            result = pipeline.conclude(deferred, answer)
            day.decided[str(result.arxiv_id)] = result
            day.waiting -= 1
            if day.waiting == 0:
                finish(day)

        published = setup.store.published_before(days[0]) if run.skip_published else {}
        for date in days:
            candidates = await source.candidates(date)
            if not candidates:
                tell(source.nothing_found(date))
                continue
            plan = plan_day(setup.store, candidates, date, run, published)
            for arxiv_id in plan.order:
                published.setdefault(arxiv_id, date)
            day = _OpenDay(plan, dict(plan.decided))

            def hand_over(deferred: Deferred, day: _OpenDay = day) -> None:
                conversation = pipeline.summarizer.begin(deferred.paper)
                batches.add(deferred.key, conversation, partial(concluded, deferred))
                deferred.drop_text()  # kept on disk by the batches, not in memory here
                owner[id(deferred)] = day
                day.waiting += 1

            for result in await pipeline.read_papers(plan.todo, hand_over):
                if result is not None:
                    day.decided[str(result.arxiv_id)] = result
            # What the source said of each paper (its abstract, mostly) is read; a year of
            # days waiting on their batches need not hold it.
            plan.todo = []
            tell(
                f"{date}: {plan.total} paper{'' if plan.total == 1 else 's'}, "
                f"{day.waiting} for the batch"
            )
            if day.waiting == 0:
                finish(day)

        await batches.run()
    if batches.stop is not None:
        raise batches.stop
    return batches.resubmitted
