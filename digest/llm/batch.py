"""The batch transport: many conversations' requests as a few Batch API jobs, at half the price.

Any kind of conversation (``digest.llm.conversation``) can go this way: ``add`` it under a key
of the caller's (the digest cache key, for a paper) with a receiver for its outcome, then
``run``. Round by round:

1. **Requests.** Each waiting conversation's ``next_request().body``, written by
   ``LlmServer.encode`` (the very bytes an interactive request posts), becomes a line of a
   JSONL file under its key. A request found in a saved batch (a run before this one sent
   it) is waited on there instead. Files are split at the API's limits.
2. **Money.** ``--max-cost`` is checked on what is to be uploaded, at the batch share of the
   price; a later round leaves out what would pass the cap, and the spool keeps only what is
   allowed.
3. **Submit, saving state first** (``digest.llm.batch_folder``): the record of what a batch
   covers is saved before the batch is created, and its id the moment it is known. The
   conversations' subjects wait on disk, not in memory.
4. **Wait**, within the run's deadline: every open batch is looked at, then again after a
   wait that grows by half up to ``poll_max``.
5. **Collect** (``digest.llm.batch_answers``): the answers are matched by key and each goes
   to its conversation's ``take``, as an interactive answer would: a result, a re-ask (the
   next round, or interactive with ``reask_interactive``), or a failure. A request that
   failed or expired is sent again in the next round, at most ``max_retries`` times.

Answers are priced at the batch share (``digest.llm.price``); what that saved is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import time
from collections.abc import Callable, Iterator
from typing import Any

from digest.errors import BatchesStillRunning, LLMConfigError, SummaryFailed
from digest.llm.batch_answers import AnyConversation, Carried, Receiver, Waiting
from digest.llm.batch_api import BatchApi, line_hash, request_line
from digest.llm.batch_folder import (
    MAX_FILE_BYTES,
    MAX_REQUESTS,
    BatchCostTooHigh,
    BatchFolder,
    BatchRecord,
    BatchStateUnwritable,
    sane_status,
    unwritable,
)
from digest.llm.price import CostGuard
from digest.llm.server import LlmServer
from digest.net import AsyncSleep
from digest.options import BatchOptions


@dataclasses.dataclass
class _Round:
    number: int
    # the saved batch (its record's key, the input file's id) → what it answers
    waiting_on: dict[str, list[Waiting]] = dataclasses.field(default_factory=dict)
    new: list[Waiting] = dataclasses.field(default_factory=list)
    sizes: list[int] = dataclasses.field(default_factory=list)  # of each new request's line


class BatchRun:
    """The Batch API side of one backfill. ``add`` each conversation, then ``run``."""

    def __init__(
        self,
        server: LlmServer,
        folder: BatchFolder,
        options: BatchOptions,
        costs: CostGuard,
        *,
        deadline: float | None = None,
        sleep: AsyncSleep = asyncio.sleep,
        tell: Callable[[str], None] = lambda line: None,
    ) -> None:
        self.server = server
        self.folder = folder
        self.api = BatchApi(server, folder, tell)
        self.options = options
        self.costs = costs
        self.deadline = deadline  # time.monotonic() past which no batch is waited on
        self.sleep = sleep
        self.tell = tell
        self.carried = Carried(server, folder, costs.price, options.max_retries)
        self.waiting = self.carried.waiting  # by key (custom_id)
        self._recovered = False  # the server's batches that no record describes looked up
        self._tidied = False  # the files of runs that are gone removed

    def add(self, key: str, conversation: AnyConversation, receiver: Receiver) -> None:
        """A conversation to be answered through batches; its subject goes to the folder.
        A key already waiting only gets another receiver."""
        self.carried.add(key, conversation, receiver)

    @property
    def stop(self) -> LLMConfigError | None:
        """A configuration error met in an answer, raised by the caller once all is written."""
        return self.carried.stop

    @property
    def resubmitted(self) -> int:
        """Requests sent again after they failed or expired."""
        return self.carried.resubmitted

    # -- The rounds -----------------------------------------------------------------------

    async def run(self) -> None:
        """Round after round until every conversation added has ended; each receiver is told
        the moment its conversation does (its result, or why it failed)."""
        try:
            await self._rounds()
        except OSError as error:
            raise BatchStateUnwritable(
                f"{unwritable(error)}; free space and run again: the batches submitted are "
                f"recorded in {self.folder.folder}, and the next run collects them and sends "
                "nothing twice"
            ) from None
        finally:
            with contextlib.suppress(OSError), self.folder.exclusive_now() as records:
                records.release(self.carried.failed)
            self.carried.failed.clear()
            self.folder.close()

    async def _rounds(self) -> None:
        number = 0
        while self.waiting:
            number += 1
            if number > 1 and self.options.reask_interactive:
                # A conversation the batches answered and that is to be asked again; one they
                # never answered (a request that failed) goes on through the batches.
                answered = [i for i in self.waiting.values() if i.conversation.batch_calls]
                await self.carried.reask_interactively(self._affordable_interactively(answered))
                if not self.waiting:
                    return
            async with self.folder.exclusive(self.tell):
                this_round = await self._plan_and_submit(number)
            await self._wait(list(this_round.waiting_on))
            async with self.folder.exclusive(self.tell) as records:
                for key, items in this_round.waiting_on.items():
                    record = records.maybe(key)
                    if record is None or record.batch_id is None:
                        # Saved, then never created (a kill between the two): nothing was sent.
                        for item in items:
                            item.tried.add(key)
                        continue
                    await self.api.collect(record)
                    self.carried.read_answers(record, items)
                records.release(self.carried.failed)
                self.carried.failed.clear()

    async def _plan_and_submit(self, number: int) -> _Round:
        if not self._tidied:
            self.folder.remove_leftovers()
            self._tidied = True
        this_round = self._plan_round(number)
        # Before paying for requests, once: are some in a batch whose record is lost?
        if this_round.new and not self._recovered:
            self._recovered = True
            if await self.api.recover(self.waiting):
                this_round = self._plan_round(number)
        if this_round.new:
            self._check_cost(this_round)
            await self._submit(this_round)
        return this_round

    def _plan_round(self, number: int) -> _Round:
        """Each waiting conversation's next request: found in a saved batch, else new. New
        requests go to the round's spool file, one line each, so that no request's text stays
        in memory."""
        this_round = _Round(number)
        records = self.folder.records
        with self.folder.spool.open("wb") as spool:
            for item in list(self.waiting.values()):
                try:
                    with self.carried.subject_of(item):
                        request = item.conversation.next_request()
                except SummaryFailed as failure:
                    self.carried.conclude(item, failure)
                    continue
                # Only its size is kept: the request's text goes to the spool, not to memory.
                item.prompt_tokens = request.prompt_tokens
                line = request_line(item.key, self.server.encode(request.body))
                item.line_hash = line_hash(line)
                saved = records.find(item.key, item.line_hash, exclude=item.tried)
                if saved is not None:
                    this_round.waiting_on.setdefault(saved, []).append(item)
                    continue
                spool.write(line)
                this_round.new.append(item)
                this_round.sizes.append(len(line))
        return this_round

    # -- Money ----------------------------------------------------------------------------

    def _estimate(self, item: Waiting, *, batched: bool = True) -> float:
        price = self.costs.price
        if price is None:
            return 0.0
        share = price.for_batch() if batched else None
        return self.costs.estimate(item.prompt_tokens, share)

    def _check_cost(self, this_round: _Round) -> None:
        """--max-cost, against the estimate of the round at batch prices, before anything is
        sent. The first round is refused whole; a later round (re-asks of what is already
        paid for) leaves out what would pass the cap, and the spool keeps only the requests
        allowed: what is uploaded is what was checked."""
        estimate = sum(self._estimate(item) for item in this_round.new)
        if self.costs.reserve(estimate):
            return
        if this_round.number == 1:
            spent, cap, count = self.costs.committed, self.costs.cap, len(this_round.new)
            raise BatchCostTooHigh(
                f"the batch's estimated cost, {estimate:.4f} USD for {count} "
                f"request{'' if count == 1 else 's'} at batch prices"
                + (f" after {spent:.4f} USD already spent" if spent else "")
                + f", would pass --max-cost {cap:g} USD; nothing was submitted. "
                "Raise --max-cost, or backfill a shorter range"
            )
        kept = self._affordable(this_round.new, batched=True)
        self._keep_in_spool(this_round, {id(item) for item in kept})

    def _affordable(self, items: list[Waiting], *, batched: bool) -> list[Waiting]:
        """The items whose next request fits what --max-cost leaves; the others fail, with
        what their answers so far cost."""
        kept = []
        for item in items:
            if self.costs.reserve(self._estimate(item, batched=batched)):
                kept.append(item)
                continue
            cap = self.costs.cap
            reason = f"not asked again: the estimated spend would pass --max-cost {cap:g} USD"
            self.carried.conclude(item, item.conversation.fail(reason))
        return kept

    def _affordable_interactively(self, items: list[Waiting]) -> list[Waiting]:
        if self.costs.price is None or self.costs.cap is None:
            return items
        for item in items:
            with self.carried.subject_of(item):
                item.prompt_tokens = item.conversation.next_request().prompt_tokens
        return self._affordable(items, batched=False)

    def _keep_in_spool(self, this_round: _Round, kept: set[int]) -> None:
        """The round's spool with only the lines of the items ``kept`` (by ``id``)."""
        spool = self.folder.spool
        shorter = spool.with_name(spool.name + ".kept")
        items, sizes = [], []
        with spool.open("rb") as lines, shorter.open("wb") as target:
            for item, size in zip(this_round.new, this_round.sizes, strict=True):
                line = lines.read(size)
                if id(item) in kept:
                    target.write(line)
                    items.append(item)
                    sizes.append(size)
        shorter.replace(spool)
        this_round.new, this_round.sizes = items, sizes

    # -- Submitting and waiting -----------------------------------------------------------

    async def _submit(self, this_round: _Round) -> None:
        """The round's new requests, in files within the API's limits, each uploaded and made
        a batch, with its record saved before the batch is created."""
        with self.folder.spool.open("rb") as lines:
            for part, (start, end) in enumerate(_parts(this_round.sizes), start=1):
                path = self.folder.input_file(this_round.number, part)
                with path.open("wb") as file:
                    for size in this_round.sizes[start:end]:
                        file.write(lines.read(size))
                await self._submit_file(path, this_round.new[start:end], this_round)
        self.folder.spool.unlink(missing_ok=True)

    async def _submit_file(self, path: Any, items: list[Waiting], this_round: _Round) -> None:
        file_id = await self.api.upload(path)
        record = BatchRecord(
            input_file_id=file_id,
            round=this_round.number,
            model=self.server.options.model,
            submitted_at=dt.datetime.now(dt.UTC),
            requests={item.key: item.line_hash for item in items},
        )
        self.folder.records.save(record)  # before the batch exists: a kill now loses nothing
        batch = await self.api.create(file_id)
        record.batch_id, record.status = batch.id, sane_status(batch.status)
        self.folder.records.save(record)
        path.unlink(missing_ok=True)  # uploaded; the record says what it held
        this_round.waiting_on.setdefault(file_id, []).extend(items)
        count = len(items)
        self.tell(
            f"submitted batch {batch.id}: {count} request{'' if count == 1 else 's'} (round "
            f"{this_round.number}); it runs for up to 24 h, and Ctrl-C leaves it running: "
            "'digest backfill' again collects it"
        )

    async def _wait(self, keys: list[str]) -> None:
        """Look at every open batch, then again after a wait that grows by half each time,
        until all are finished, or the run's deadline: ``BatchesStillRunning`` then, the
        batches saved for the next run. A status the API does not have counts as unfinished.
        ``keys`` are the records'."""
        open_keys = [key for key in keys if not self._finished(key)]
        delay = self.options.poll_first
        while open_keys:
            async with self.folder.exclusive(self.tell) as records:
                for key in open_keys:
                    if not self._finished(key):
                        await self.api.look(records.get(key))
            open_keys = [key for key in open_keys if not self._finished(key)]
            if not open_keys:
                return
            left = None if self.deadline is None else self.deadline - time.monotonic()
            if left is not None and left <= 0:
                raise self._still_running(open_keys)
            await self.sleep(delay if left is None else min(delay, left))
            delay = min(delay * 1.5, self.options.poll_max)

    def _finished(self, key: str) -> bool:
        record = self.folder.records.maybe(key)
        return record is None or record.finished  # None: forgotten, never created

    def _still_running(self, keys: list[str]) -> BatchesStillRunning:
        running = [self.folder.records.get(key) for key in keys]
        shown = ", ".join(f"{r.batch_id or r.input_file_id} {r.status}" for r in running[:3])
        more = f" and {len(running) - 3} more" if len(running) > 3 else ""
        return BatchesStillRunning(
            f"the run's deadline passed with {len(running)} batch"
            f"{'' if len(running) == 1 else 'es'} still running ({shown}{more}); "
            "they are saved and keep running on the server: run the same "
            "'digest backfill --batch' again to collect them ('digest backfill --status' "
            "shows them)"
        )

    # -- Answers --------------------------------------------------------------------------


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
