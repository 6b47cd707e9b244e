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
import contextlib
import dataclasses
import datetime as dt
import fcntl
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final, TypeVar

import httpx2
import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError, field_validator

from digest import redact
from digest.errors import (
    STOPPED_WITH_THE_RUN,
    BatchesStillRunning,
    DataFileError,
    LLMConfigError,
    MalformedAnswer,
    PaperFailed,
    RunStopped,
    SummaryFailed,
    UsageError,
)
from digest.files import atomic_write_text, read_bounded
from digest.llm.summarize import (
    BatchAnswer,
    Conversation,
    PaperText,
    Summarizer,
    Summary,
    chat_completion,
    key_refused,
    prompt_tokens_of,
)
from digest.models import Price, Usage
from digest.net import AsyncSleep, Attempts, is_transient_status, one_line
from digest.options import BatchOptions, LlmOptions
from digest.runs.pipeline import Deferred

log = logging.getLogger(__name__)
T = TypeVar("T")

# The Batch API's limits on one input file (OpenAI's; Gemini's OpenAI-compatible batches take
# the same format).
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
ENDPOINT: Final = "/v1/chat/completions"
FINISHED = ("completed", "expired", "failed", "cancelled", "never created")
Settled = Callable[[Deferred, "Summary | SummaryFailed"], None]

# What a server hands back is untrusted: an id is printed, saved and sent back in a URL, so it
# is bounded and printable (Gemini's ids hold "/", OpenAI's do not); it becomes part of a
# local file's name only when it matches the strict pattern, else through its hash.
_SERVER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,255}")
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_STATUS = re.compile(r"[a-z_ ]{1,40}")
# No batch holds more requests than the API takes in one file.
_COUNT_NAMES = ("total", "completed", "failed")
# The longest output line read: a digest's answer is a few KB (32,000 output tokens would be
# some 300 KB); a line past this is no answer of ours, and is skipped as malformed rather than
# held in memory.
MAX_ANSWER_LINE_BYTES = 8 * 1024 * 1024
# An input file downloaded from the server to rebuild a lost record is one we sent: within
# the API's limit.
_RECENT_BATCHES = 100  # looked at for batches no record describes
# The input files read back and found to hold none of this folder's requests, kept so that
# they are not downloaded again.
_SEEN_INPUTS = "server-inputs-seen.json"
_SEEN_KEPT = 1000
# A run's own files carry its owner: "<pid>-<random>-<machine>".
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_OWNER = re.compile(r"(?P<pid>\d+)-[0-9a-f]{8}-(?P<host>[0-9a-f]{6})")


class BatchUnavailable(RunStopped):
    """The server has no Batch API (exit 2)."""


class BatchCostTooHigh(UsageError):
    """The batch's estimated cost passes --max-cost: nothing is submitted (exit 2)."""


class BatchSubmitFailed(RunStopped):
    """A batch could not be uploaded, created or downloaded (exit 2)."""


class BatchStateUnwritable(RunStopped):
    """The batches' folder cannot be written (a full disk): the run stops (exit 2); what
    was submitted is recorded, and the next run collects it."""


class _FileGone(Exception):
    """A batch's output or error file the server answers 404 for."""


class BadServerReply(BatchSubmitFailed):
    """The server answered with something that is not what the API gives (an id that is
    not an id): nothing is taken from it (exit 2)."""


def server_id(value: object, what: str) -> str:
    """``value`` when it is an id as a server gives one, else ``BadServerReply``."""
    if isinstance(value, str) and _SERVER_ID.fullmatch(value) and ".." not in value:
        return value
    shown = redact.redact(repr(value)[:60])
    raise BadServerReply(
        f"the server gave a {what} id that is not an id ({shown}); nothing was taken from "
        "it: check OPENAI_BASE_URL, or run again later"
    )


def file_stem(server_given: str) -> str:
    """A local file name's stem for a server's id: the id itself when it is plainly safe
    (OpenAI's "batch_abc"), else a hash of it: no id becomes a path."""
    if _SAFE_STEM.fullmatch(server_given):
        return server_given
    return "h-" + hashlib.sha256(server_given.encode()).hexdigest()[:32]


def sane_status(value: object) -> str:
    return value if isinstance(value, str) and _STATUS.fullmatch(value) else "unknown"


def sane_counts(counts: object) -> dict[str, int]:
    """A batch's ``request_counts`` when they are counts (whole, not negative, no more than
    one file's requests, the parts within the total); else none at all: a count the server
    made up is neither saved nor shown."""
    values = {}
    for name in _COUNT_NAMES:
        value = counts.get(name) if isinstance(counts, dict) else getattr(counts, name, None)
        if type(value) is not int or not 0 <= value <= MAX_REQUESTS:
            return {}
        values[name] = value
    if values["completed"] + values["failed"] > values["total"]:
        return {}
    return values


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

    @field_validator("input_file_id")
    @classmethod
    def _an_input_id(cls, value: str) -> str:
        return _valid_id(value)

    @field_validator("batch_id", "output_file_id", "error_file_id")
    @classmethod
    def _an_id(cls, value: str | None) -> str | None:
        return None if value is None else _valid_id(value)

    @field_validator("status", mode="before")
    @classmethod
    def _a_status(cls, value: object) -> str:
        return sane_status(value)

    @field_validator("counts", mode="before")
    @classmethod
    def _counts(cls, value: object) -> dict[str, int]:
        # A record saved with counts a server made up (an older digest kept them) still reads.
        return sane_counts(value)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


def _valid_id(value: str) -> str:
    try:
        return server_id(value, "saved")
    except BadServerReply as error:
        raise ValueError(str(error)) from None


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
        deadline: float | None = None,
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
        self.deadline = deadline  # time.monotonic() past which no batch is waited on
        # This run's own names in the folder, which other backfills (another blog's, with the
        # same cache folder) may be using at the same time: its spool and input files, and
        # the texts of its papers.
        self.run_token = f"{os.getpid()}-{secrets.token_hex(4)}-{_HOST}"
        self.texts = folder / "papers" / self.run_token
        self.texts.mkdir(parents=True, exist_ok=True)
        self._recovered = False  # the server's batches that no record describes looked up
        self._tidied = False  # the files of runs that are gone removed

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
            with contextlib.suppress(OSError), self._exclusive_now():
                self.records.release(self._failed)
            self._failed.clear()
            shutil.rmtree(self.texts, ignore_errors=True)
            self._spool_path().unlink(missing_ok=True)

    @contextlib.contextmanager
    def _exclusive_now(self) -> Iterator[None]:
        """The folder's lock, waited for without an event loop (at the end of a run)."""
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.records.reload()
            yield

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """The batches folder to this run alone, with the records as they are on disk now.

        Two backfills (two blogs) may share a cache folder. Whatever reads the records and
        then submits, or changes a record, holds this lock, so that the second run finds the
        first's batches by their requests and waits on them rather than paying for them
        again. Waiting on a batch holds no lock."""
        with (self.folder / ".lock").open("a") as lock:
            told = False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        self.tell(
                            f"waiting for another backfill that is submitting or collecting "
                            f"batches in {self.folder}"
                        )
                        told = True
                    await asyncio.sleep(0.2)
            try:
                self.records.reload()
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

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
            async with self._exclusive():
                if not self._tidied:
                    self._remove_leftovers()
                    self._tidied = True
                this_round = self._plan_round(number, settled)
                # Before paying for requests, once: are some in a batch whose record is lost?
                if this_round.new and not self._recovered and await self._recover():
                    this_round = self._plan_round(number, settled)
                if this_round.new:
                    self._check_cost(this_round, settled)
                    await self._submit(this_round)
            await self._wait(list(this_round.waiting_on))
            async with self._exclusive():
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
        with self._spool_path().open("wb") as spool:
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
        paid for) leaves out the papers that would pass the cap, and the spool keeps only the
        requests allowed: what is uploaded is what was checked."""
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
        kept = self._affordable(this_round.new, price, settled)
        self._keep_in_spool(this_round, {id(paper) for paper in kept})

    def _keep_in_spool(self, this_round: _Round, kept: set[int]) -> None:
        """The round's spool with only the lines of the papers ``kept`` (by ``id``)."""
        spool = self._spool_path()
        shorter = spool.with_name(spool.name + ".kept")
        papers, sizes = [], []
        with spool.open("rb") as lines, shorter.open("wb") as target:
            for paper, size in zip(this_round.new, this_round.sizes, strict=True):
                line = lines.read(size)
                if id(paper) in kept:
                    target.write(line)
                    papers.append(paper)
                    sizes.append(size)
        shorter.replace(spool)
        this_round.new, this_round.sizes = papers, sizes

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
        spool = self._spool_path()
        with spool.open("rb") as lines:
            for part, (start, end) in enumerate(_parts(this_round.sizes), start=1):
                papers = this_round.new[start:end]
                path = self.folder / f"input-{self.run_token}-round{this_round.number}-{part}.jsonl"
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
        record.batch_id, record.status = batch.id, sane_status(batch.status)
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
            return server_id(uploaded.id, "file")

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
            batch = await self._call(
                lambda: self.client.batches.create(
                    input_file_id=file_id,
                    endpoint=ENDPOINT,
                    completion_window="24h",
                    # What marks a batch as digest's when no record describes it (see
                    # _recover): its input file is then read back to know its requests.
                    metadata={"digest_input_file": file_id},
                )
            )
            server_id(batch.id, "batch")
            return batch
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

    # -- Batches no record describes ------------------------------------------------------

    async def _recover(self) -> bool:
        """Before this run first pays for requests: the server's latest batches that digest
        made (their metadata names their input file) and that no record here describes,
        because a record was deleted or cannot be read, are read back from their input files
        and recorded again, so that their requests are waited on, not paid for twice. Whether
        any was. An input file read back and found to be another folder's (another blog's,
        with the same key) is noted, and not read again."""
        self._recovered = True
        try:
            page = await self._call(lambda: self.client.batches.list(limit=_RECENT_BATCHES))
        except openai.APIError as error:
            if self.records.unreadable:
                names = ", ".join(sorted(path.name for path in self.records.unreadable))
                self.tell(
                    f"cannot look for the batches of unreadable records ({names}) on the "
                    f"server ({one_line(str(error))}): the requests they covered are sent "
                    "again, and paid for again"
                )
            return False
        seen = self._seen_inputs()
        found = 0
        for batch in page.data:
            found += await self._recovered_record(batch, seen)
        self._save_seen_inputs(seen)
        if found:
            self.tell(
                f"{found} batch{'' if found == 1 else 'es'} on the server had no readable "
                f"record in {self.folder}; read back from {'its' if found == 1 else 'their'} "
                "input file, so that no request in it is paid for again"
            )
        return found > 0

    async def _recovered_record(self, batch: openai.types.Batch, seen: list[str]) -> bool:
        metadata = batch.metadata or {}
        if "digest_input_file" not in metadata:
            return False
        try:
            batch_id = server_id(batch.id, "batch")
            input_file = server_id(batch.input_file_id, "file")
        except BadServerReply:
            return False
        status = sane_status(batch.status)
        known = self.records.maybe(input_file) is not None or input_file in seen
        if known or status in ("failed", "cancelled"):
            return False
        requests = await self._requests_in(input_file)
        wanted = {key for key in requests if key in self.waiting}
        if not wanted:
            seen.append(input_file)  # none of ours: not read again
            return False
        record = BatchRecord(
            input_file_id=input_file,
            batch_id=batch_id,
            round=0,
            model=self.llm.model,
            submitted_at=dt.datetime.fromtimestamp(_timestamp(batch.created_at), dt.UTC),
            requests=requests,
        )
        self._take_batch(record, batch)
        self.records.save(record)
        return True

    async def _requests_in(self, file_id: str) -> dict[str, str]:
        """custom_id → body hash of each request line of an input file we uploaded, read
        back from the server (at most one file's worth, a line at a time)."""
        path = self.folder / f"recovered-{self.run_token}.jsonl"
        requests: dict[str, str] = {}
        try:
            response = self.client.files.with_streaming_response.content(file_id)
            async with response as streamed:
                with path.open("wb") as file:
                    async for chunk in streamed.iter_bytes():
                        if file.tell() + len(chunk) > MAX_FILE_BYTES:
                            return {}
                        file.write(chunk)
            with path.open("rb") as file:
                for raw in bounded_lines(file, MAX_FILE_BYTES):
                    line = _json_object(raw) if raw else None
                    custom_id = line.get("custom_id") if line else None
                    if isinstance(custom_id, str) and raw is not None:
                        # The hash of the line as written, as _plan_round takes it.
                        requests[custom_id] = hashlib.sha256(raw).hexdigest()[:24]
        except openai.APIError as error:
            log.warning("could not read back %s: %s", file_id, one_line(str(error)))
            return {}
        finally:
            path.unlink(missing_ok=True)
        return requests

    def _seen_inputs(self) -> list[str]:
        path = self.folder / _SEEN_INPUTS
        try:
            seen = json.loads(read_bounded(path, folder=self.folder, max_bytes=1_000_000))
        except (OSError, DataFileError, ValueError, RecursionError):
            return []
        if not isinstance(seen, list):
            return []
        return [item for item in seen if isinstance(item, str)][-_SEEN_KEPT:]

    def _save_seen_inputs(self, seen: list[str]) -> None:
        atomic_write_text(self.folder / _SEEN_INPUTS, json.dumps(seen[-_SEEN_KEPT:]) + "\n")

    def _remove_leftovers(self) -> None:
        """The spool, input, download and text files of runs on this machine that are gone
        (killed). Each run's own names carry its process id and its machine; a live run's,
        and another machine's sharing the folder, are left alone."""
        candidates = [
            *self.folder.glob("spool-*"),
            *self.folder.glob("input-*"),
            *self.folder.glob("recovered-*"),
            *self.folder.glob("*.partial"),
            *self.folder.glob("*.redacted"),
            *(self.folder / "papers").iterdir(),
        ]
        for path in candidates:
            if not _left_behind(path):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)

    # -- Waiting --------------------------------------------------------------------------

    async def _wait(self, keys: list[str]) -> None:
        """Look at every open batch, then again after a wait that grows by half each time,
        until all are finished, or the run's deadline: ``BatchesStillRunning`` then, the
        batches saved for the next run. A status the API does not have counts as unfinished.
        ``keys`` are the records' (their input files)."""
        open_keys = [key for key in keys if not self._finished(key)]
        delay = self.options.poll_first
        while open_keys:
            async with self._exclusive():
                for key in open_keys:
                    if not self._finished(key):
                        await self._look(key)
            open_keys = [key for key in open_keys if not self._finished(key)]
            if not open_keys:
                return
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                raise self._still_running(open_keys)
            await self.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, self.options.poll_max)

    def _finished(self, key: str) -> bool:
        record = self.records.maybe(key)
        return record is None or record.finished  # None: forgotten, never created

    def _still_running(self, keys: list[str]) -> BatchesStillRunning:
        running = [self.records.get(key) for key in keys]
        shown = ", ".join(f"{r.batch_id or r.input_file_id} {r.status}" for r in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        return BatchesStillRunning(
            f"the run's deadline passed with {len(running)} batch"
            f"{'' if len(running) == 1 else 'es'} still running ({shown}{more}); "
            "they are saved and keep running on the server: run the same "
            "'digest backfill --batch' again to collect them ('digest backfill --status' "
            "shows them)"
        )

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
        self._take_batch(record, batch)
        self.records.save(record)
        counts = record.counts
        if counts:
            self.tell(
                f"batch {batch_id}: {record.status}, {counts['completed']} of {counts['total']} "
                f"answered, {counts['failed']} failed"
            )
        else:
            self.tell(f"batch {batch_id}: {record.status}")
        return record

    @staticmethod
    def _take_batch(record: BatchRecord, batch: openai.types.Batch) -> None:
        """What the server says of ``record``'s batch, each field checked: a status it made
        up is "unknown" (unfinished, looked at again within the run's bounds), counts that
        are not counts are dropped, a file id that is not an id is no file."""
        record.status = sane_status(batch.status)
        record.counts = sane_counts(batch.request_counts)
        for field in ("output_file_id", "error_file_id"):
            given = getattr(batch, field)
            try:
                setattr(record, field, None if given is None else server_id(given, "file"))
            except BadServerReply as error:
                setattr(record, field, None)
                record.errors = [*record.errors, str(error)][-5:]
        if batch.errors and batch.errors.data:
            # Saved and shown: a server may echo the key or a URL's password in a message.
            record.errors = [
                redact.redact(
                    one_line(
                        f"{e.code or 'error'}: {e.message or ''}"
                        + (f" (line {e.line})" if e.line else "")
                    )[:500]
                )
                for e in batch.errors.data[:5]
            ]

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
                try:
                    record.batch_id = server_id(batch.id, "batch")
                except BadServerReply:
                    continue
                record.status = sane_status(batch.status)
                self.records.save(record)
                return
        record.status = "never created"
        self.records.forget(record)

    # -- Collecting -----------------------------------------------------------------------

    async def _collect(self, record: BatchRecord) -> None:
        """Save a finished batch's output and error files next to its record, once.

        A file the server no longer has (404) is not asked for forever: the batch is looked
        at once more (its file ids may have changed), and a file still missing is noted on
        the record, which is then collected as it is: the papers whose answers were in it are
        sent again."""
        if record.collected or record.batch_id is None:
            return
        for kind in ("output_file_id", "error_file_id"):
            await self._collect_file(record, kind)
        record.collected = True
        self.records.save(record)

    async def _collect_file(self, record: BatchRecord, kind: str) -> None:
        assert record.batch_id is not None
        path = (
            self.records.output_path(record.batch_id)
            if kind == "output_file_id"
            else self.records.errors_path(record.batch_id)
        )
        for look_again in (True, False):
            file_id = getattr(record, kind)
            if file_id is None:
                return
            try:
                await self._download(file_id, path)
                return
            except _FileGone:
                if look_again:
                    await self._look(self.records.key_of(record))
        record.errors = [
            *record.errors,
            f"its {kind.removesuffix('_id').replace('_', ' ')} {getattr(record, kind)} is gone "
            "from the server (HTTP 404); the requests it answered are sent again",
        ][-5:]
        setattr(record, kind, None)

    async def _download(self, file_id: str, path: Path) -> None:
        async def download() -> None:
            # A name of this run's own: another backfill sharing the folder may be saving the
            # same file.
            partial = path.with_name(f"{path.name}.{self.run_token}.partial")
            try:
                response = self.client.files.with_streaming_response.content(file_id)
                async with response as streamed:
                    with partial.open("wb") as file:
                        async for chunk in streamed.iter_bytes():
                            file.write(chunk)
                _save_redacted(partial, path)
            finally:
                partial.unlink(missing_ok=True)

        try:
            await self._call(download)
        except openai.NotFoundError:
            raise _FileGone() from None
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

    def _spool_path(self) -> Path:
        return self.folder / f"spool-{self.run_token}.jsonl"

    def _paper_path(self, key: str) -> Path:
        return self.texts / f"{key}.json"

    def _load_paper(self, paper: _Paper) -> PaperText:
        path = self._paper_path(paper.deferred.key)
        return PaperText.model_validate_json(read_bounded(path, folder=self.texts))

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
        self.unreadable: set[Path] = set()  # record files that could not be read
        self.reload()

    def reload(self) -> None:
        """The records as they are on disk now: another backfill sharing the folder may
        have saved some since."""
        self._records.clear()
        self._index.clear()
        for path in sorted(self.folder.glob("*.record.json")):
            record = _read_record(path)
            if record is None:
                if path not in self.unreadable:
                    log.warning(
                        "%s cannot be read; its batch is looked for on the server before "
                        "anything is sent",
                        path,
                    )
                self.unreadable.add(path)
                continue
            self.unreadable.discard(path)
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
        # Every string in it masked: a server's message may echo the key or a URL's password.
        atomic_write_text(self.record_path(key), redact.redact(record.model_dump_json()) + "\n")

    def record_path(self, key: str) -> Path:
        return self.folder / f"{file_stem(key)}.record.json"

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
        self.record_path(key).unlink(missing_ok=True)

    def output_path(self, batch_id: str) -> Path:
        return self.folder / f"{file_stem(batch_id)}.output.jsonl"

    def errors_path(self, batch_id: str) -> Path:
        return self.folder / f"{file_stem(batch_id)}.errors.jsonl"

    def answers(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """The lines of a collected batch's output and error files, one at a time. A line
        that is not a JSON object (too long, nested past what a parser can follow, cut off)
        is skipped, saying so: its paper is asked again, and no saved file can block a run."""
        for path in (self.output_path(batch_id), self.errors_path(batch_id)):
            if not path.is_file():
                continue
            skipped = 0
            with path.open("rb") as file:
                for raw in bounded_lines(file, MAX_ANSWER_LINE_BYTES):
                    line = _json_object(raw) if raw is not None else None
                    if line is None:
                        skipped += raw is None or bool(raw.strip())
                        continue
                    yield line
            if skipped:
                log.warning(
                    "%s: %d line%s that %s no answer (too long, or not JSON) skipped; their "
                    "papers are asked again",
                    path.name,
                    skipped,
                    "" if skipped == 1 else "s",
                    "is" if skipped == 1 else "are",
                )


# A record lists its requests' ids and hashes (some 80 bytes each): a file's worth of them
# is some 4 MB. A record file larger than this is no record of ours.
_MAX_RECORD_BYTES = 64 * 1024 * 1024


def _read_record(path: Path) -> BatchRecord | None:
    """The record in ``path``, or None: not a regular file in the folder (a link out of it, a
    FIFO), too large, or not a record (the JSON parser bounds its own nesting)."""
    try:
        raw = read_bounded(path, folder=path.parent, max_bytes=_MAX_RECORD_BYTES)
        return BatchRecord.model_validate_json(raw)
    except (OSError, DataFileError, ValidationError, ValueError):
        return None


def _save_redacted(downloaded: Path, path: Path) -> None:
    """``downloaded`` saved as ``path`` a line at a time with every secret masked: a server
    may echo the key or a URL's password in an error line, and these files are kept."""
    temporary = path.with_name(f"{downloaded.name}.redacted")
    try:
        with downloaded.open("rb") as source, temporary.open("wb") as target:
            for raw in bounded_lines(source, MAX_ANSWER_LINE_BYTES):
                if raw is None:
                    target.write(b"\n")  # too long to be an answer: read as a skipped line
                    continue
                text = raw.decode("utf-8", "replace")
                target.write(redact.redact(text).encode())
            target.flush()
            os.fsync(target.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def bounded_lines(file: IO[bytes], cap: int) -> Iterator[bytes | None]:
    """The lines of ``file``; None for each one longer than ``cap`` bytes, which is read past
    in pieces of ``cap``, never held whole."""
    while raw := file.readline(cap + 1):
        if len(raw) <= cap or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := file.readline(cap + 1)) and not rest.endswith(b"\n"):
            pass
        yield None


def _json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object, or None: not JSON, not an object, or nested deeper than the
    parser can follow (RecursionError: a hostile line of a thousand "[" is malformed, not a
    crash)."""
    try:
        line = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return line if isinstance(line, dict) else None


def _timestamp(value: object) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    return float(number) if math.isfinite(number) and 0 <= number < 2**33 else 0.0


def _left_behind(path: Path) -> bool:
    """Whether ``path`` belongs to a run that is gone: one of this machine whose process is
    no more, or an older digest's (whose names, "spool-round1", carry no owner)."""
    owner = _OWNER.search(path.name)
    if owner is None:
        return True
    if owner["host"] != _HOST:
        return False  # another machine's, sharing the folder: its runs tidy their own
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # someone else's process: alive
    return False


def _unwritable(error: OSError) -> str:
    where = error.filename or "the batch folder"
    return f"cannot write {where}: {error.strerror or error} (disk full?)"


# Line breaks to Unicode that JSON leaves raw inside strings: a JSONL reader that splits on
# every line break (Python's str.splitlines, for one) would cut the line in two there. JSON's
# own escapes say the same characters.
_RAW_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})


def _request_line(custom_id: str, body: dict[str, Any]) -> bytes:
    line = {"custom_id": custom_id, "method": "POST", "url": ENDPOINT, "body": body}
    text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
    return text.translate(_RAW_BREAKS).encode() + b"\n"


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
