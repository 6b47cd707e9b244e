"""The runs the commands start, each planned and driven here from the options the CLI split
from the settings: ``daily`` (one day), ``backfill`` (a range of days, one after the other),
``backfill_in_batches`` (a range through the Batch API), ``digest_paper`` and ``prompt_of``
(one paper), and ``saved_batches`` (``backfill --status``).

Before any of them, ``check_setup`` finds what would fail once money is spent. A run that
writes holds the output folder's lock throughout; each day's files and run report are written
the moment the day is done. Nothing here prints: a run tells its ``Watcher``
(``digest.runs.events``), and the CLI says it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from digest.blog.notify import notify_day
from digest.blog.store import OutputLock, OutputStore, remove_stale_temporaries
from digest.errors import BatchesStillRunning, RunStopped, UsageError
from digest.llm.prompts import estimate_tokens
from digest.models import RunReport
from digest.options import BatchOptions, LlmOptions, RunOptions
from digest.runs.day import DayRun, plan_day, run_day
from digest.runs.events import DayBegun, DayDone, NothingFound, Warned, Watcher
from digest.runs.report import run_report, write_report
from digest.runs.results import PaperResult
from digest.runs.setup import RunSetup, open_pipeline
from digest.sources.papers import ArxivRef, Candidate, LocalPdf, Source

if TYPE_CHECKING:
    from digest.llm.batch_folder import BatchRecord


# --- Before a run ---------------------------------------------------------------------------


def check_setup(setup: RunSetup, max_cost: float | None, watcher: Watcher) -> None:
    """What would fail after the money is spent, found before any request or token: the API
    key, the server's context, the folders, and the model's price for ``--max-cost``. Day
    files that a Jekyll site would publish are warned of."""
    check_llm(setup.llm)
    setup.store.check_writable(setup.cache_dir)
    if max_cost is not None and setup.llm.price is None:
        model = setup.llm.model
        raise UsageError(
            f"--max-cost needs the price of {model!r}; add it to DIGEST_PRICES, "
            'e.g. {"' + model + '": [0.4, 0.1, 1.6]}'
        )
    if _published_by_jekyll(setup.store):
        watcher.tell(
            Warned(
                f"this is a Jekyll site, and it would publish {setup.store.data_dir}/ (day "
                "files and run reports); run 'digest init .' to write posts to _posts/ and "
                "keep day files in _digest/, or set DIGEST_DATA_DIR to a folder starting "
                "with '_'"
            )
        )


def check_llm(llm: LlmOptions) -> None:
    """The OpenAI API needs a key (a local server, OPENAI_BASE_URL, may not); and a
    DIGEST_CONTEXT_TOKENS that leaves no room for a paper is said before any request."""
    if llm.api_key is None and llm.base_url is None:
        raise UsageError(
            "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server that needs none"
        )
    if llm.context_tokens is None:
        return
    # The LLM client takes most of a second to import; a run that needs no check, none.
    from digest.llm.summarize import Summarizer, fitted_text_budget

    fitted_text_budget(llm, Summarizer(llm, None).fixed_prompt_tokens())


def _published_by_jekyll(store: OutputStore) -> bool:
    """In a Jekyll site, day files and run reports under a plain folder (outputs/data) are
    published with the site."""
    site = Path("_config.yml").is_file()
    return site and not any(part.startswith(("_", ".")) for part in store.data_dir.parts)


# --- A day, and a range of days --------------------------------------------------------------


def daily(
    source: Source, date: dt.date, setup: RunSetup, run: RunOptions, watcher: Watcher
) -> DayRun | None:
    """The day's papers from ``source``, digested and written with the run's report; None
    when the source has none. A ``RunStopped`` met on the way is raised once what was done is
    written and told."""
    with OutputLock(setup.store.root) as lock:
        setup.store.remove_stale_temporaries(lock)
        remove_stale_temporaries(setup.cache_dir, older_than=3600)
        done = _day(source, date, setup, run, watcher, lock.check_held)
    if done is None:
        return None
    _announce(done[0], setup, watcher)
    return done[0]


def _announce(finished: DayRun, setup: RunSetup, watcher: Watcher) -> None:
    """A message about the day's post, when one was written (new or changed) and
    notifications are asked for; its failure is a warning, never the run's."""
    if setup.notify is None or finished.post is None or not finished.changed:
        return
    notify_day(setup.notify, finished.day, finished.post, lambda line: watcher.tell(Warned(line)))


@dataclass
class BackfillOutcome:
    """What a backfill did to its range, summed over its days."""

    days_written: int = 0
    papers: int = 0
    unfinished: int = 0
    cost: float = 0.0
    saved: float = 0.0  # by the batch price, against interactive prices
    stop: RunStopped | None = None  # with --batch: met in the answers, every day written
    left: int = 0  # days not begun: the run's deadline passed
    still_running: BatchesStillRunning | None = None  # at the deadline, saved for the next run
    resubmitted: int = 0  # with --batch: requests sent again after a batch failed them

    @property
    def did_anything(self) -> bool:
        return bool(self.days_written or self.papers or self.unfinished or self.cost)

    def add(self, finished: DayRun, report: RunReport | None) -> None:
        if report is not None:
            self.cost += report.totals.cost_usd
        self.days_written += finished.post is not None
        self.papers += sum(r.status in ("done", "cached") for r in finished.results)
        self.unfinished += sum(r.unfinished for r in finished.results)
        self.saved += sum(
            r.entry.provenance.saved_usd or 0.0
            for r in finished.results
            if r.status == "done" and r.entry is not None
        )


def backfill(
    source: Source, days: list[dt.date], setup: RunSetup, run: RunOptions, watcher: Watcher
) -> BackfillOutcome:
    """Each day in turn, as ``daily`` does it, the spend of the days before counted against
    ``--max-cost`` and the run's deadline counted from the start of the range. A
    ``RunStopped`` ends the range once its day is written and told."""
    outcome = BackfillOutcome()
    with OutputLock(setup.store.root) as lock:
        setup.store.remove_stale_temporaries(lock)
        # The papers of the days before, read once and kept up to date, rather than every
        # earlier day file read again for each day.
        published = setup.store.published_before(days[0])
        for number, date in enumerate(days, start=1):
            if run.past_deadline():
                outcome.left = len(days) - number + 1
                break
            this_day = replace(run, spent_before=outcome.cost)
            watcher.tell(DayBegun(date, number, len(days)))
            done = _day(source, date, setup, this_day, watcher, lock.check_held, published)
            if done is not None:
                outcome.add(*done)
    return outcome


def backfill_in_batches(
    source: Source,
    days: list[dt.date],
    setup: RunSetup,
    run: RunOptions,
    options: BatchOptions,
    watcher: Watcher,
) -> BackfillOutcome:
    """Every day read first, the LLM work as batches, each day written and told once it is
    settled (in no order). A configuration error met in the answers, or batches still running
    at the run's deadline, end up in the outcome, every day that could be written written."""
    # The LLM and PDF clients take most of a second to import: see open_pipeline.
    from digest.runs.backfill import backfill_batch

    outcome = BackfillOutcome()

    def on_day(finished: DayRun) -> None:
        outcome.add(finished, _conclude_day(finished, source.name, setup, watcher))

    with OutputLock(setup.store.root) as lock:
        setup.store.remove_stale_temporaries(lock)
        try:
            outcome.resubmitted = asyncio.run(
                backfill_batch(
                    source,
                    days,
                    setup,
                    run,
                    options,
                    watcher,
                    on_day=on_day,
                    before_write=lock.check_held,
                )
            )
        except RunStopped as stop:
            outcome.stop = stop
        except BatchesStillRunning as running:
            outcome.still_running = running
    return outcome


def _day(
    source: Source,
    date: dt.date,
    setup: RunSetup,
    run: RunOptions,
    watcher: Watcher,
    before_write: Callable[[], None],
    published: dict[str, dt.date] | None = None,
) -> tuple[DayRun, RunReport | None] | None:
    """One day, written and told, with its report when it did something; None when the
    source has no papers for it."""
    try:
        finished = asyncio.run(
            _plan_and_run(source, date, setup, run, watcher, before_write, published)
        )
    except RunStopped as stop:
        if stop.run is not None:
            _conclude_day(stop.run, source.name, setup, watcher)
        raise
    if finished is None:
        return None
    return finished, _conclude_day(finished, source.name, setup, watcher)


async def _plan_and_run(
    source: Source,
    date: dt.date,
    setup: RunSetup,
    run: RunOptions,
    watcher: Watcher,
    before_write: Callable[[], None],
    published: dict[str, dt.date] | None,
) -> DayRun | None:
    """The day's candidates from the source, then the run; None when the source has none.
    ``published`` (a backfill's): the papers of the days before, kept up to date here."""
    candidates = await source.candidates(date)
    if not candidates:
        watcher.tell(NothingFound(date, source.nothing_found(date)))
        return None
    ranking = None
    if setup.rank is not None and source.name != "ids":
        # The LLM client takes most of a second to import: see open_pipeline.
        from digest.runs.ranking import choose_by_interests

        ranking = await choose_by_interests(candidates, date, setup, run, published)
        if ranking.warning is not None:
            watcher.tell(Warned(ranking.warning))
        candidates, run = ranking.candidates, ranking.run
    plan = plan_day(setup.store, candidates, date, run, published)
    if ranking is not None:
        plan.candidates, plan.ranking = ranking.scores, ranking.totals
    if published is not None:
        for arxiv_id in plan.order:
            published.setdefault(arxiv_id, date)
    with watcher.progress(plan.total) as progress:
        return await run_day(plan, setup, run, progress=progress, before_write=before_write)


def _conclude_day(
    finished: DayRun, source: str, setup: RunSetup, watcher: Watcher
) -> RunReport | None:
    """The day's run report, written when the run did something; then the day is told."""
    report = None
    if finished.did_work:
        report = run_report(finished, source, setup.llm)
        problem = write_report(setup.store.report_path(finished.day.date), report)
        if problem is not None:
            watcher.tell(Warned(problem))
    watcher.tell(DayDone(finished))
    return report


# --- One paper -------------------------------------------------------------------------------


def digest_paper(setup: RunSetup, run: RunOptions, target: ArxivRef | LocalPdf) -> PaperResult:
    """One paper's digest (``digest paper``), written nowhere: its entry, or why it has none."""
    return asyncio.run(_digest_one(setup, run, target))


async def _digest_one(setup: RunSetup, run: RunOptions, target: ArxivRef | LocalPdf) -> PaperResult:
    async with open_pipeline(setup, run) as pipeline:
        if isinstance(target, ArxivRef):
            (result,) = await pipeline.digest_papers([Candidate(target)])
            return result
        return await pipeline.digest_local_pdf(target)


def prompt_of(setup: RunSetup, run: RunOptions, target: ArxivRef | LocalPdf) -> str:
    """The messages the LLM would get for ``target``, each with its size in tokens, and what
    the paper's part of them is (``digest paper --show-prompt``); no LLM is called."""
    return asyncio.run(_prompt_of(setup, run, target))


async def _prompt_of(setup: RunSetup, run: RunOptions, target: ArxivRef | LocalPdf) -> str:
    async with open_pipeline(setup, run, uses_llm=False) as pipeline:
        paper = await pipeline.paper_text(target)
        messages = pipeline.summarizer.messages_for(paper)
    parts = []
    for message in messages:
        tokens = estimate_tokens(message["content"])
        parts.append(f"--- {message['role']} (about {tokens} tokens) ---\n{message['content']}\n")
    fixed = sum(estimate_tokens(m["content"]) for m in messages[:-1])
    total = fixed + estimate_tokens(messages[-1]["content"])
    reason = f", because {paper.input_reason}" if paper.input_reason else ""
    parts.append(
        f"--- about {total} tokens: {fixed} of instructions and example, the rest the paper "
        f"({paper.input}{reason}) ---\n"
    )
    return "\n".join(parts)


# --- Saved batches ---------------------------------------------------------------------------


def saved_batches(llm: LlmOptions, folder: Path) -> list[BatchRecord]:
    """The batches saved in ``folder``, oldest first, each open one looked at once on the
    server first when there is one to ask (a key, or a local server)."""
    from digest.llm.batch_folder import describe_records

    records = describe_records(folder)
    if records and (llm.api_key or llm.base_url):
        asyncio.run(_look_at_open_batches(llm, folder))
        records = describe_records(folder)
    return records


async def _look_at_open_batches(llm: LlmOptions, folder: Path) -> None:
    from digest.llm.batch_api import BatchApi
    from digest.llm.batch_folder import BatchFolder
    from digest.llm.server import LlmServer, make_client

    client = make_client(llm)
    batches = BatchFolder(folder)
    try:
        api = BatchApi(LlmServer(llm, client), batches, lambda line: None)
        async with batches.exclusive(lambda line: None) as records:
            for record in records.all():
                if not record.finished:
                    await api.look(record)
    finally:
        batches.close()
        await client.close()
