"""The Batch API path: the LLM work of many papers as a few batch jobs, at half the price.

``digest backfill --batch`` reads every paper as ``daily`` would (``Pipeline.read_papers``);
the papers the digest cache lacks come here, as ``Deferred``. Then, round by round:

1. **Requests.** Each waiting paper's next request (the very body the interactive path sends:
   same prompts, same ``response_format``) becomes a line of a JSONL file, its ``custom_id``
   the digest cache key. Files are split at the API's limits (50,000 lines, 200 MB).
2. **Submit, saving state first.** Before a batch is created, a record of what it covers (the
   input file, each ``custom_id`` with a hash of its body) is written to the cache folder, and
   the batch's id is added the moment it is known. The paper's text waits there too, not in
   memory: a year of papers is thousands of texts.
3. **Wait.** Every open batch is looked at, then again after a wait that grows by half up to
   ``poll_max``. A kill leaves the batches running; the next run finds a request's batch by its
   ``custom_id`` and body hash, and so never submits the same work twice.
4. **Collect.** The output and error files are saved next to the record, then read line by
   line; answers come in any order and are matched by ``custom_id``. Each goes through the
   same ``Summarizer.take`` and ``Summarizer.judge`` as an interactive answer (parsing,
   validation, grounding): a digest, a re-ask (the next round, or interactive with
   ``reask_interactive``), or a failure. A request that failed or expired is sent again in
   the next round, at most ``max_retries`` times; then its paper is listed as failed.

Answers are priced at the price table's batch share; what that saved is recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError

from digest.errors import (
    STOPPED_WITH_THE_RUN,
    LLMConfigError,
    MalformedAnswer,
    PaperFailed,
    RunStopped,
    SummaryFailed,
    UsageError,
)
from digest.models import Price, Usage
from digest.net import AsyncSleep, Attempts, is_transient_status, one_line
from digest.options import BatchOptions, LlmOptions
from digest.pipeline import Deferred
from digest.store import atomic_write_text
from digest.summarize import (
    BatchAnswer,
    Conversation,
    PaperText,
    Summarizer,
    Summary,
    chat_completion,
    key_refused,
    prompt_tokens_of,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

# The Batch API's limits on one input file (OpenAI's; Gemini's OpenAI-compatible batches take
# the same format).
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
ENDPOINT: Final = "/v1/chat/completions"
FINISHED = ("completed", "expired", "failed", "cancelled", "never created")
Settled = Callable[[Deferred, "Summary | SummaryFailed"], None]


class BatchUnavailable(RunStopped):
    """The server has no Batch API (exit 2)."""


class BatchCostTooHigh(UsageError):
    """The batch's estimated cost passes --max-cost: nothing is submitted (exit 2)."""


class BatchSubmitFailed(RunStopped):
    """A batch could not be uploaded, created or downloaded (exit 2)."""


class BatchStateUnwritable(RunStopped):
    """The batches' folder cannot be written (a full disk): the run stops (exit 2); what
    was submitted is recorded, and the next run collects it."""


class BatchRecord(BaseModel):
    """What one batch covers, saved in the cache folder before the batch is created."""

    input_file_id: str
    batch_id: str | None = None  # None: the create request was sent, its answer not seen
    round: int
    model: str
    submitted_at: dt.datetime
    requests: dict[str, str]  # custom_id → hash of the request body
    status: str = "submitting"
    counts: dict[str, int] = {}
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[str] = []  # why the batch as a whole failed
    collected: bool = False  # its output and error files are saved next to this record

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclasses.dataclass
class _Paper:
    """One paper waiting on the batches: all but its text (kept on disk)."""

    deferred: Deferred
    conversation: Conversation
    twins: list[Deferred]  # the same request for another place (the same key twice)
    retries: int = 0  # requests of it that failed or expired
    batch_calls: int = 0  # answers that came through a batch (the rest were interactive)
    tried: set[str] = dataclasses.field(default_factory=set)  # batches it got an answer from
    # The request now out: its body's hash, prompt tokens and output limit.
    body_hash: str = ""
    sent: int = 0
    limit: int = 0
    batch_id: str | None = None


@dataclasses.dataclass
class _Round:
    number: int
    # the saved batch (its record's key, the input file's id) → the papers it answers
    waiting_on: dict[str, list[_Paper]] = dataclasses.field(default_factory=dict)
    new: list[_Paper] = dataclasses.field(default_factory=list)
    sizes: list[int] = dataclasses.field(default_factory=list)  # of each new request's line


class BatchRun:
    """The Batch API side of one backfill. ``add`` each deferred paper, then ``run``."""

    def __init__(
        self,
        summarizer: Summarizer,
        client: AsyncOpenAI,
        folder: Path,
        options: BatchOptions,
        llm: LlmOptions,
        *,
        max_cost: float | None = None,
        spent_before: float = 0.0,
        sleep: AsyncSleep = asyncio.sleep,
        tell: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.summarizer = summarizer
        self.client = client
        self.folder = folder
        self.options = options
        self.llm = llm
        self.price = llm.price
        self.max_cost = max_cost
        self.spent = spent_before  # USD, of the range so far
        self.sleep = sleep
        self.tell = tell
        self.waiting: dict[str, _Paper] = {}  # by custom_id
        self.records = _Records(folder)
        self.stop: LLMConfigError | None = None  # a configuration error met in an answer
        self.resubmitted = 0  # requests sent again after they failed or expired
        # Papers that failed: their requests are taken out of the saved batches at the end of
        # the round, so that the next run asks again rather than replays the same answers.
        self._failed: set[str] = set()
        (folder / "papers").mkdir(parents=True, exist_ok=True)

    # -- Before the batches ---------------------------------------------------------------

    async def check_available(self) -> None:
        """One cheap request that a server without a Batch API answers 404, before any paper
        is read: ``BatchUnavailable`` then."""
        try:
            await self._call(lambda: self.client.batches.list(limit=1))
        except openai.NotFoundError:
            raise BatchUnavailable(
                f"{self.llm.where} has no Batch API (HTTP 404 on /v1/batches); run "
                "'digest backfill' without --batch"
            ) from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise LLMConfigError(key_refused(error.status_code, one_line(error.message))) from None

    def add(self, deferred: Deferred) -> None:
        """A paper whose digest is to come from a batch; its text goes to the folder."""
        known = self.waiting.get(deferred.key)
        if known is not None:
            deferred.drop_text()
            known.twins.append(deferred)
            return
        try:
            atomic_write_text(self._paper_path(deferred.key), deferred.paper.model_dump_json())
        except OSError as error:
            raise PaperFailed(
                f"its text could not be kept for the batch: {_unwritable(error)}",
                transient=True,
            ) from None
        conversation = self.summarizer.begin(deferred.paper)
        deferred.drop_text()
        self.waiting[deferred.key] = _Paper(deferred, conversation, [])

    # -- The rounds -----------------------------------------------------------------------

    async def run(self, settled: Settled) -> None:
        """Round after round until every paper added is settled; ``settled`` is told of each
        paper the moment it is (its summary, or why it failed)."""
        try:
            await self._rounds(settled)
        except OSError as error:
            raise BatchStateUnwritable(
                f"{_unwritable(error)}; free space and run again: the batches submitted are "
                f"recorded in {self.folder}, and the next run collects them and sends nothing "
                "twice"
            ) from None
        finally:
            self.records.release(self._failed)
            self._failed.clear()

    async def _rounds(self, settled: Settled) -> None:
        number = 0
        while self.waiting:
            number += 1
            if number > 1 and self.options.reask_interactive:
                # A paper the batches answered and that is to be asked again; one they never
                # answered (a request that failed) goes on through the batches.
                answered = [paper for paper in self.waiting.values() if paper.batch_calls]
                if self.price is not None:
                    for paper in answered:
                        text = self._load_paper(paper)
                        paper.sent = prompt_tokens_of(
                            self.summarizer.messages_now(text, paper.conversation)
                        )
                    answered = self._affordable(answered, self.price, settled)
                await self._reask_interactively(answered, settled)
                if not self.waiting:
                    return
            this_round = self._plan_round(number, settled)
            if this_round.new:
                self._check_cost(this_round, settled)
                await self._submit(this_round)
            await self._wait(list(this_round.waiting_on))
            for key, papers in this_round.waiting_on.items():
                record = self.records.maybe(key)
                if record is None or record.batch_id is None:
                    # Saved, then never created (a kill between the two): nothing was sent.
                    for paper in papers:
                        paper.tried.add(key)
                    continue
                await self._collect(record)
                self._read_answers(record, papers, settled)
            self.records.release(self._failed)
            self._failed.clear()

    def _plan_round(self, number: int, settled: Settled) -> _Round:
        """Each waiting paper's next request: found in a saved batch (a run before this one
        sent it), else new. New requests go to the round's spool file, one line each, so that
        no request's text stays in memory."""
        this_round = _Round(number)
        with self._spool_path(number).open("wb") as spool:
            for paper in list(self.waiting.values()):
                try:
                    body = self._next_body(paper)
                except SummaryFailed as failure:
                    self._settle(paper, failure, settled)
                    continue
                key = paper.deferred.key
                line = _request_line(key, body)
                paper.body_hash = hashlib.sha256(line).hexdigest()[:24]
                saved = self.records.find(key, paper.body_hash, exclude=paper.tried)
                if saved is not None:
                    this_round.waiting_on.setdefault(saved, []).append(paper)
                    continue
                spool.write(line)
                this_round.new.append(paper)
                this_round.sizes.append(len(line))
        return this_round

    def _next_body(self, paper: _Paper) -> dict[str, Any]:
        text = self._load_paper(paper)
        messages = self.summarizer.messages_now(text, paper.conversation)
        paper.sent = prompt_tokens_of(messages)
        paper.limit = self.summarizer.fit_limit(paper.sent, paper.conversation.state)
        return self.summarizer.request_body(messages, paper.limit)

    def _check_cost(self, this_round: _Round, settled: Settled) -> None:
        """--max-cost, against the estimate of the round at batch prices, before anything is
        sent. The first round is refused whole; a later round (re-asks of papers already
        paid for) leaves out the papers that would pass the cap."""
        if self.max_cost is None or self.price is None:
            return
        price = self.price.for_batch()
        half_answer = self.llm.max_output_tokens // 2
        estimate = sum(price.estimate(p.sent, half_answer) for p in this_round.new)
        if self.spent + estimate <= self.max_cost:
            self.spent += estimate
            return
        if this_round.number == 1:
            raise BatchCostTooHigh(
                f"the batch's estimated cost, {estimate:.4f} USD for {len(this_round.new)} "
                f"request{'' if len(this_round.new) == 1 else 's'} at batch prices"
                + (f" after {self.spent:.4f} USD already spent" if self.spent else "")
                + f", would pass --max-cost {self.max_cost:g} USD; nothing was submitted. "
                "Raise --max-cost, or backfill a shorter range"
            )
        this_round.new = self._affordable(this_round.new, price, settled)

    def _affordable(self, papers: list[_Paper], price: Price, settled: Settled) -> list[_Paper]:
        """The papers whose next request (``sent`` tokens) fits what --max-cost leaves, at
        ``price``; the others fail, with what their answers so far cost."""
        if self.max_cost is None:
            return papers
        half_answer = self.llm.max_output_tokens // 2
        kept = []
        for paper in papers:
            cost = price.estimate(paper.sent, half_answer)
            if self.spent + cost > self.max_cost:
                reason = (
                    "not asked again: the estimated spend would pass "
                    f"--max-cost {self.max_cost:g} USD"
                )
                self._settle(paper, paper.conversation.state.fail(reason), settled)
            else:
                self.spent += cost
                kept.append(paper)
        return kept

    async def _submit(self, this_round: _Round) -> None:
        """The round's new requests, in files within the API's limits, each uploaded and made
        a batch, with its record saved before the batch is created."""
        spool = self._spool_path(this_round.number)
        with spool.open("rb") as lines:
            for part, (start, end) in enumerate(_parts(this_round.sizes), start=1):
                papers = this_round.new[start:end]
                path = self.folder / f"input-round{this_round.number}-{part}.jsonl"
                with path.open("wb") as file:
                    for size in this_round.sizes[start:end]:
                        file.write(lines.read(size))
                    file.flush()
                    os.fsync(file.fileno())
                await self._submit_file(path, papers, this_round)
        spool.unlink(missing_ok=True)

    async def _submit_file(self, path: Path, papers: list[_Paper], this_round: _Round) -> None:
        file_id = await self._upload(path)
        record = BatchRecord(
            input_file_id=file_id,
            round=this_round.number,
            model=self.llm.model,
            submitted_at=dt.datetime.now(dt.UTC),
            requests={paper.deferred.key: paper.body_hash for paper in papers},
        )
        self.records.save(record)  # before the batch exists: a kill now loses nothing
        batch = await self._create(file_id)
        record.batch_id, record.status = batch.id, batch.status
        self.records.save(record)
        path.unlink(missing_ok=True)  # uploaded; the record says what it held
        this_round.waiting_on.setdefault(file_id, []).extend(papers)
        self.tell(
            f"submitted batch {batch.id}: {len(papers)} request"
            f"{'' if len(papers) == 1 else 's'} (round {this_round.number}); it runs for up "
            "to 24 h, and Ctrl-C leaves it running: 'digest backfill' again collects it"
        )

    async def _upload(self, path: Path) -> str:
        async def upload() -> str:
            with path.open("rb") as file:
                # An open file streams: the SDK would read a path whole into memory.
                uploaded = await self.client.files.create(file=(path.name, file), purpose="batch")
            return uploaded.id

        try:
            return await self._call(upload)
        except openai.NotFoundError:
            raise BatchUnavailable(
                f"{self.llm.where} has no Files API (HTTP 404 on /v1/files); run "
                "'digest backfill' without --batch"
            ) from None
        except (openai.APIError, OSError) as error:
            raise BatchSubmitFailed(
                f"could not upload the batch input file {path.name}: {one_line(str(error))}; "
                "run again later (nothing was submitted)"
            ) from None

    async def _create(self, file_id: str) -> openai.types.Batch:
        try:
            return await self._call(
                lambda: self.client.batches.create(
                    input_file_id=file_id,
                    endpoint=ENDPOINT,
                    completion_window="24h",
                    metadata={"digest_input_file": file_id},
                )
            )
        except openai.NotFoundError:
            raise BatchUnavailable(
                f"{self.llm.where} has no Batch API (HTTP 404 on /v1/batches); run "
                "'digest backfill' without --batch"
            ) from None
        except openai.APIError as error:
            raise BatchSubmitFailed(
                f"could not create the batch for {file_id}: {one_line(str(error))}; run again "
                "later (the next run looks for it before it submits anything)"
            ) from None

    # -- Waiting --------------------------------------------------------------------------

    async def _wait(self, keys: list[str]) -> None:
        """Look at every open batch, then again after a wait that grows by half each time,
        until all are finished. ``keys`` are the records' (their input files)."""
        open_keys = [key for key in keys if not self.records.get(key).finished]
        delay = self.options.poll_first
        while open_keys:
            still: list[str] = []
            for key in open_keys:
                record = await self._look(key)
                if not record.finished:
                    still.append(key)
            open_keys = still
            if open_keys:
                await self.sleep(delay)
                delay = min(delay * 1.5, self.options.poll_max)

    async def look_once(self, record: BatchRecord) -> BatchRecord:
        """``record``'s batch as the server has it now (``digest backfill --status``)."""
        return await self._look(self.records.key_of(record))

    async def _look(self, key: str) -> BatchRecord:
        record = self.records.get(key)
        if record.batch_id is None:
            await self._adopt(record)
            if record.batch_id is None:
                return record  # never created, or the server could not be asked: next look
        batch_id = record.batch_id
        try:
            batch = await self._call(lambda: self.client.batches.retrieve(batch_id))
        except openai.NotFoundError:
            record.status, record.errors = "failed", ["the server no longer knows this batch"]
            self.records.save(record)
            return record
        except openai.APIError as error:
            log.warning("could not look at batch %s: %s", batch_id, one_line(str(error)))
            return record
        counts = batch.request_counts
        record.status = batch.status
        record.counts = counts.model_dump() if counts else {}
        record.output_file_id = batch.output_file_id
        record.error_file_id = batch.error_file_id
        if batch.errors and batch.errors.data:
            record.errors = [
                one_line(
                    f"{e.code or 'error'}: {e.message or ''}"
                    + (f" (line {e.line})" if e.line else "")
                )
                for e in batch.errors.data
            ]
        self.records.save(record)
        if counts:
            self.tell(
                f"batch {batch_id}: {batch.status}, {counts.completed} of {counts.total} "
                f"answered, {counts.failed} failed"
            )
        else:
            self.tell(f"batch {batch_id}: {batch.status}")
        return record

    async def _adopt(self, record: BatchRecord) -> None:
        """A record whose create request was sent but whose answer was never seen (a kill at
        that moment): the batch is looked for among the server's latest by the input file it
        names; without one, nothing was submitted and the requests are free to go again."""
        try:
            page = await self._call(lambda: self.client.batches.list(limit=100))
        except openai.APIError:
            return
        for batch in page.data:
            if batch.input_file_id == record.input_file_id:
                record.batch_id, record.status = batch.id, batch.status
                self.records.save(record)
                return
        record.status = "never created"
        self.records.forget(record)

    # -- Collecting -----------------------------------------------------------------------

    async def _collect(self, record: BatchRecord) -> None:
        """Save a finished batch's output and error files next to its record, once."""
        if record.collected or record.batch_id is None:
            return
        for file_id, path in (
            (record.output_file_id, self.records.output_path(record.batch_id)),
            (record.error_file_id, self.records.errors_path(record.batch_id)),
        ):
            if file_id is None:
                continue
            await self._download(file_id, path)
        record.collected = True
        self.records.save(record)

    async def _download(self, file_id: str, path: Path) -> None:
        async def download() -> None:
            partial = path.with_suffix(".partial")
            response = self.client.files.with_streaming_response.content(file_id)
            async with response as streamed:
                with partial.open("wb") as file:
                    async for chunk in streamed.iter_bytes():
                        file.write(chunk)
                    file.flush()
                    os.fsync(file.fileno())
            partial.replace(path)

        try:
            await self._call(download)
        except openai.APIError as error:
            raise BatchSubmitFailed(
                f"could not download {file_id}: {one_line(str(error))}; run again later "
                "(the batch's answers stay on the server for 30 days)"
            ) from None

    def _read_answers(self, record: BatchRecord, papers: list[_Paper], settled: Settled) -> None:
        """Every answer of the batch for ``papers``, matched by ``custom_id``, judged as an
        interactive answer is; a paper the batch has no answer for is retried."""
        assert record.batch_id is not None
        batch_id, key = record.batch_id, self.records.key_of(record)
        wanted = {paper.deferred.key: paper for paper in papers}
        for line in self.records.answers(batch_id):
            paper = wanted.pop(str(line.get("custom_id")), None)
            if paper is not None:
                paper.tried.add(key)
                paper.batch_id = batch_id
                self._answer(paper, line, batch_id, settled)
        why = "; ".join(record.errors) or f"the batch ended {record.status} without an answer"
        for paper in wanted.values():
            paper.tried.add(key)
            self._retry(paper, f"batch {batch_id}: {why}", settled)

    def _answer(self, paper: _Paper, line: dict[str, Any], batch_id: str, settled: Settled) -> None:
        state = paper.conversation.state
        response = line.get("response")
        error = line.get("error")
        if not isinstance(response, dict):
            message = error.get("message") if isinstance(error, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            self._retry(paper, f"batch {batch_id}: {code or 'error'}: {message}", settled)
            return
        status = response.get("status_code")
        body = response.get("body")
        state.requests += 1
        if not isinstance(status, int) or not 200 <= status < 300:
            self._refused(paper, _status_error(status, body), batch_id, settled)
            return
        try:
            completion = chat_completion(body)
        except MalformedAnswer as malformed:
            self._retry(paper, f"batch {batch_id}: {malformed}", settled)
            return
        paper.batch_calls += 1
        text = self._load_paper(paper)
        try:
            answer = self.summarizer.take(completion, paper.sent, paper.limit, state)
            summary = self.summarizer.judge(answer, text, paper.conversation)
        except SummaryFailed as failure:
            self._settle(paper, failure, settled)
            return
        finally:
            paper.conversation.forget_paper()
        if summary is not None:
            self._settle(paper, self._priced(paper, summary, batch_id), settled)
        # else: asked again in the next round, with the problems the judge found

    def _refused(
        self,
        paper: _Paper,
        error: openai.APIStatusError,
        batch_id: str,
        settled: Settled,
    ) -> None:
        """A request the server answered with an error status, as the interactive path
        would take it: sent another way, retried when it may pass, else the paper fails."""
        if error.status_code in (408, 409) or is_transient_status(error.status_code):
            self._retry(
                paper, f"batch {batch_id}: HTTP {error.status_code}: {error.message}", settled
            )
            return
        outcome = self.summarizer.refusal(error, Attempts(count=1), paper.conversation.state)
        if isinstance(outcome, SummaryFailed):
            self._settle(paper, outcome, settled)
        elif isinstance(outcome, LLMConfigError):
            self.stop = self.stop or outcome
            self._settle(paper, paper.conversation.state.fail(STOPPED_WITH_THE_RUN), settled)
        # else: the request changed (a parameter dropped, JSON mode): sent again next round

    def _retry(self, paper: _Paper, why: str, settled: Settled) -> None:
        if paper.retries >= self.options.max_retries:
            tries = paper.retries + 1
            failure = paper.conversation.state.fail(
                f"{why} ({tries} time{'' if tries == 1 else 's'}); run again to retry, or "
                "without --batch"
            )
            failure.transient = True
            self._settle(paper, failure, settled)
            return
        paper.retries += 1
        self.resubmitted += 1
        log.info("%s: sent again in the next batch (%s)", paper.deferred.ref, why)

    # -- Re-asks, interactively -----------------------------------------------------------

    async def _reask_interactively(self, papers: list[_Paper], settled: Settled) -> None:
        """What the first round did not settle, finished through interactive requests (at
        interactive prices), ``concurrency`` papers at a time."""
        slots = asyncio.Semaphore(self.llm.concurrency)

        async def one(paper: _Paper) -> None:
            async with slots:
                text = self._load_paper(paper)
                state = paper.conversation.state
                state.started = time.monotonic()  # the batch's wait is not the paper's time
                state.deadline = state.started + self.llm.retry.max_seconds
                try:
                    summary = await self.summarizer.converse(text, paper.conversation)
                except SummaryFailed as failure:
                    self._settle(paper, failure, settled)
                    return
                except LLMConfigError as error:
                    self.stop = self.stop or error
                    self._settle(paper, state.fail(STOPPED_WITH_THE_RUN), settled)
                    return
                batch_id = paper.batch_id or "interactive"
                self._settle(paper, self._priced(paper, summary, batch_id), settled)

        await asyncio.gather(*(one(paper) for paper in papers))

    # -- Settling -------------------------------------------------------------------------

    def _priced(self, paper: _Paper, summary: Summary, batch_id: str) -> Summary:
        """The summary with its cost: batch answers at the batch price, interactive ones at
        the list price, and what the batch saved against the list price."""
        if self.price is None:
            return summary.model_copy(
                update={"batch": BatchAnswer(batch_id=batch_id, saved_usd=None)}
            )
        calls = summary.usage.calls
        batch_part = Usage.of(calls[: paper.batch_calls])
        rest = Usage.of(calls[paper.batch_calls :])
        cost = self.price.for_batch().cost(batch_part) + self.price.cost(rest)
        saved = self.price.cost(summary.usage) - cost
        return summary.model_copy(
            update={
                "cost_usd": round(cost, 6),
                "batch": BatchAnswer(batch_id=batch_id, saved_usd=round(saved, 6)),
            }
        )

    def _settle(self, paper: _Paper, outcome: Summary | SummaryFailed, settled: Settled) -> None:
        if isinstance(outcome, SummaryFailed) and outcome.usage and self.price is not None:
            calls = outcome.usage.calls
            outcome.cost_usd = self.price.for_batch().cost(
                Usage.of(calls[: paper.batch_calls])
            ) + self.price.cost(Usage.of(calls[paper.batch_calls :]))
        self.waiting.pop(paper.deferred.key, None)
        self._paper_path(paper.deferred.key).unlink(missing_ok=True)
        if isinstance(outcome, SummaryFailed):
            self._failed.add(paper.deferred.key)
        for place in [paper.deferred, *paper.twins]:
            settled(place, outcome)

    # -- Helpers --------------------------------------------------------------------------

    def _spool_path(self, number: int) -> Path:
        return self.folder / f"spool-round{number}.jsonl"

    def _paper_path(self, key: str) -> Path:
        return self.folder / "papers" / f"{key}.json"

    def _load_paper(self, paper: _Paper) -> PaperText:
        return PaperText.model_validate_json(self._paper_path(paper.deferred.key).read_bytes())

    async def _call(self, function: Callable[[], Awaitable[T]]) -> T:
        """A Batch or Files API request, retried as the LLM's are (429, 5xx, connections)."""
        policy = self.summarizer.policy
        return await policy.call(function, sleep=self.sleep)


class _Records:
    """The saved batches: one JSON record each in the folder, with the answers beside it."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._records: dict[str, BatchRecord] = {}  # by batch id, or input file id
        self._index: dict[str, list[tuple[str, str]]] = {}  # custom_id → [(hash, record key)]
        for path in sorted(folder.glob("*.record.json")):
            try:
                record = BatchRecord.model_validate_json(path.read_bytes())
            except (OSError, ValidationError):
                log.warning("%s cannot be read; the requests it covered may be sent again", path)
                continue
            self._remember(record)

    @staticmethod
    def key_of(record: BatchRecord) -> str:
        # The input file's id: known before the batch's, and the same for its whole life.
        return record.input_file_id

    def _remember(self, record: BatchRecord) -> None:
        key = self.key_of(record)
        self._records[key] = record
        for custom_id, body_hash in record.requests.items():
            self._index.setdefault(custom_id, []).append((body_hash, key))

    def all(self) -> list[BatchRecord]:
        return sorted(self._records.values(), key=lambda record: record.submitted_at)

    def get(self, key: str) -> BatchRecord:
        return self._records[key]

    def maybe(self, key: str) -> BatchRecord | None:
        return self._records.get(key)

    def find(self, custom_id: str, body_hash: str, *, exclude: set[str]) -> str | None:
        """The saved batch that was sent this very request and has not answered it yet for
        this run, oldest first."""
        for saved_hash, key in self._index.get(custom_id, []):
            if saved_hash == body_hash and key not in exclude and key in self._records:
                return key
        return None

    def save(self, record: BatchRecord) -> None:
        key = self.key_of(record)
        if key not in self._records:
            self._remember(record)
        self._records[key] = record
        atomic_write_text(self.folder / f"{key}.record.json", record.model_dump_json() + "\n")

    def release(self, custom_ids: set[str]) -> None:
        """Take ``custom_ids`` out of every saved batch, so that no later run finds them."""
        touched = {key for custom_id in custom_ids for _, key in self._index.pop(custom_id, [])}
        for key in touched:
            record = self._records.get(key)
            if record is not None:
                for custom_id in custom_ids:
                    record.requests.pop(custom_id, None)
                self.save(record)

    def forget(self, record: BatchRecord) -> None:
        key = self.key_of(record)
        self._records.pop(key, None)
        (self.folder / f"{key}.record.json").unlink(missing_ok=True)

    def output_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.output.jsonl"

    def errors_path(self, batch_id: str) -> Path:
        return self.folder / f"{batch_id}.errors.jsonl"

    def answers(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """The lines of a collected batch's output and error files, one at a time."""
        for path in (self.output_path(batch_id), self.errors_path(batch_id)):
            if not path.exists():
                continue
            with path.open("rb") as file:
                for raw in file:
                    if not raw.strip():
                        continue
                    try:
                        line = json.loads(raw)
                    except ValueError:
                        log.warning("%s: a line that is not JSON is skipped", path.name)
                        continue
                    if isinstance(line, dict):
                        yield line


def _unwritable(error: OSError) -> str:
    where = error.filename or "the batch folder"
    return f"cannot write {where}: {error.strerror or error} (disk full?)"


def _request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    return json.dumps(line, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def _parts(sizes: list[int]) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of the runs of request lines that each fit one input file."""
    start, size = 0, 0
    for index, line in enumerate(sizes):
        if index > start and (index - start >= MAX_REQUESTS or size + line > MAX_FILE_BYTES):
            yield start, index
            start, size = index, 0
        size += line
    if start < len(sizes):
        yield start, len(sizes)


def _status_error(status: object, body: object) -> openai.APIStatusError:
    """A batch's error line as the SDK raises the same answer to an interactive request."""
    code = status if isinstance(status, int) else 500
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    response = httpx2.Response(code, request=httpx2.Request("POST", f"https://batch{ENDPOINT}"))
    return openai.APIStatusError(str(message or f"HTTP {code}"), response=response, body=error)


def describe_records(folder: Path) -> list[BatchRecord]:
    """The saved batches, oldest first (``digest backfill --status``)."""
    return _Records(folder).all() if folder.is_dir() else []
