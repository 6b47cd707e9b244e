"""What the batches' answers mean for the conversations they carry.

Each conversation waits under its key, its subject (a paper's text) kept on disk by the
batch folder, not in memory. An answer found in a batch's output is taken by its conversation
as an interactive answer would be: a result, a re-ask (the next round), or a failure. An error
status is read by the server's one rule (``LlmServer.classify`` through the conversation): a
transient one, or a request that failed or expired in the batch, is sent again in the next
round, at most ``max_retries`` times. Every conversation's end, with its cost at the batch
share of the price, is told to its receivers the moment it comes.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator
from typing import Any

from digest.errors import (
    STOPPED_WITH_THE_RUN,
    LLMConfigError,
    MalformedAnswer,
    PaperFailed,
    SummaryFailed,
)
from digest.llm.batch_folder import BatchFolder, BatchRecord, unwritable
from digest.llm.conversation import BatchAnswer, Conversation, Outcome, converse
from digest.llm.price import batch_priced
from digest.llm.server import LlmServer, chat_completion, status_error
from digest.models import Price
from digest.net import Attempts

log = logging.getLogger(__name__)

AnyConversation = Conversation[Any, Any]
Receiver = Callable[[Outcome | SummaryFailed], None]


@dataclasses.dataclass
class Waiting:
    """One conversation waiting on the batches; its subject is kept on disk."""

    key: str
    conversation: AnyConversation
    receivers: list[Receiver]  # the same request for another place gets the same outcome
    subject_type: type[Any]
    retries: int = 0  # requests of it that failed or expired
    tried: set[str] = dataclasses.field(default_factory=set)  # batches it got an answer from
    prompt_tokens: int = 0  # of the request now out, for its estimated cost
    line_hash: str = ""
    batch_id: str | None = None


class Carried:
    """The conversations one batch run carries, by key (the requests' ``custom_id``)."""

    def __init__(
        self, server: LlmServer, folder: BatchFolder, price: Price | None, max_retries: int
    ) -> None:
        self.server = server
        self.folder = folder
        self.price = price
        self.max_retries = max_retries
        self.concurrency = server.options.concurrency  # of interactive re-asks
        self.waiting: dict[str, Waiting] = {}  # by key
        self.stop: LLMConfigError | None = None  # a configuration error met in an answer
        self.resubmitted = 0  # requests sent again after they failed or expired
        # Keys that failed: taken out of the saved batches at the end of the round, so that
        # the next run asks again rather than replays the same answers.
        self.failed: set[str] = set()

    def add(self, key: str, conversation: AnyConversation, receiver: Receiver) -> None:
        """A conversation to be answered through batches; its subject goes to the folder.
        A key already waiting only gets another receiver."""
        known = self.waiting.get(key)
        if known is not None:
            known.receivers.append(receiver)
            return
        subject = conversation.detach()
        try:
            self.folder.keep_text(key, subject)
        except OSError as error:
            raise PaperFailed(
                f"its text could not be kept for the batch: {unwritable(error)}",
                transient=True,
            ) from None
        self.waiting[key] = Waiting(key, conversation, [receiver], type(subject))

    @contextlib.contextmanager
    def subject_of(self, item: Waiting) -> Iterator[None]:
        """The conversation with its subject back from disk, for as long as it is needed."""
        subject = item.subject_type.model_validate_json(self.folder.text_of(item.key))
        item.conversation.attach(subject)
        try:
            yield
        finally:
            item.conversation.detach()

    def read_answers(self, record: BatchRecord, items: list[Waiting]) -> None:
        """Every answer of the batch for ``items``, matched by key and taken as an
        interactive answer is; an item the batch has no answer for is retried."""
        assert record.batch_id is not None
        batch_id = record.batch_id
        wanted = {item.key: item for item in items}
        for line in self.folder.records.answers(batch_id):
            item = wanted.pop(str(line.get("custom_id")), None)
            if item is not None:
                item.tried.add(record.key)
                item.batch_id = batch_id
                self._answer(item, line, batch_id)
        why = "; ".join(record.errors) or f"the batch ended {record.status} without an answer"
        for item in wanted.values():
            item.tried.add(record.key)
            self._retry(item, f"batch {batch_id}: {why}")

    def _answer(self, item: Waiting, line: dict[str, Any], batch_id: str) -> None:
        response, error = line.get("response"), line.get("error")
        if not isinstance(response, dict):
            message = error.get("message") if isinstance(error, dict) else None
            code = error.get("code") if isinstance(error, dict) else None
            self._retry(item, f"batch {batch_id}: {code or 'error'}: {message}")
            return
        status, body = response.get("status_code"), response.get("body")
        item.conversation.count_requests(1)
        if not isinstance(status, int) or not 200 <= status < 300:
            self._refused(item, status_error(status, body), batch_id)
            return
        try:
            completion = chat_completion(body)
        except MalformedAnswer as malformed:
            self._retry(item, f"batch {batch_id}: {malformed}")
            return
        try:
            with self.subject_of(item):
                result = item.conversation.take(completion, via_batch=True)
        except SummaryFailed as failure:
            self.conclude(item, failure)
            return
        if result is not None:
            self.conclude(item, self._priced(item, result, batch_id))
        # else: asked again in the next round, with the problems its checks found

    def _refused(self, item: Waiting, error: Any, batch_id: str) -> None:
        """A request the server answered with an error status, as the interactive path
        would take it: retried when it may pass, sent another way, else the item fails."""
        if self.server.is_transient(error):
            self._retry(item, f"batch {batch_id}: HTTP {error.status_code}: {error.message}")
            return
        try:
            item.conversation.refused(error, Attempts(count=1))
        except SummaryFailed as failure:
            self.conclude(item, failure)
        except LLMConfigError as config:
            self.stop = self.stop or config
            self.conclude(item, item.conversation.fail(STOPPED_WITH_THE_RUN))
        # else: the request changed (a parameter dropped, JSON mode): sent again next round

    def _retry(self, item: Waiting, why: str) -> None:
        if item.retries >= self.max_retries:
            tries = item.retries + 1
            failure = item.conversation.fail(
                f"{why} ({tries} time{'' if tries == 1 else 's'}); run again to retry, or "
                "without --batch"
            )
            failure.transient = True
            self.conclude(item, failure)
            return
        item.retries += 1
        self.resubmitted += 1
        log.info("%s: sent again in the next batch (%s)", item.key, why)

    async def reask_interactively(self, items: list[Waiting]) -> None:
        """What the first round did not settle, finished through interactive requests (at
        interactive prices), ``concurrency`` at a time."""
        slots = asyncio.Semaphore(self.concurrency)

        async def one(item: Waiting) -> None:
            async with slots:
                conversation = item.conversation
                conversation.restart_clock()  # the batch's wait is not the conversation's time
                try:
                    with self.subject_of(item):
                        result = await converse(conversation)
                except SummaryFailed as failure:
                    self.conclude(item, failure)
                    return
                except LLMConfigError as error:
                    self.stop = self.stop or error
                    self.conclude(item, conversation.fail(STOPPED_WITH_THE_RUN))
                    return
                self.conclude(item, self._priced(item, result, item.batch_id or "interactive"))

        await asyncio.gather(*(one(item) for item in items))

    def _priced(self, item: Waiting, result: Outcome, batch_id: str) -> Outcome:
        """The result with its cost: batch answers at the batch price, interactive ones at
        the list price, and what the batch saved against the list price."""
        price = self.price
        if price is None:
            answer = BatchAnswer(batch_id=batch_id, saved_usd=None)
            return result.model_copy(update={"batch": answer})
        priced = batch_priced(price, result.usage, item.conversation.batch_calls)
        return result.model_copy(
            update={
                "cost_usd": priced.cost_usd,
                "batch": BatchAnswer(batch_id=batch_id, saved_usd=priced.saved_usd),
            }
        )

    def conclude(self, item: Waiting, outcome: Outcome | SummaryFailed) -> None:
        price = self.price
        if isinstance(outcome, SummaryFailed):
            if outcome.usage and price is not None:
                calls = item.conversation.batch_calls
                outcome.cost_usd = batch_priced(price, outcome.usage, calls).cost_usd
            self.failed.add(item.key)
        self.waiting.pop(item.key, None)
        self.folder.drop_text(item.key)
        for receiver in item.receivers:
            receiver(outcome)
