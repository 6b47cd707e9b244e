"""The conversation: one subject asked about until an answer passes its checks.

A ``Conversation`` is the re-ask protocol, whatever is asked. A subclass says what is asked
(``question``), how an answer is read (``read``) and what makes it pass (``judge``), and the
schema the answer is given in; this class does the rest, the same way for every kind:

- an answer that fails its checks is asked again with the answer and the problems, at most
  ``max_reasks`` times. A re-ask carries the subject once, the latest answer (bounded) and its
  problems: it does not grow round after round (a small server's context would overflow);
- an answer cut off by ``finish_reason=length`` is asked once more with twice the limit,
  unless it repeats itself (a loop, which a larger limit only makes longer);
- a refusal or a content-filter stop is asked again, counted against the same re-asks;
- a prompt the server cut (it read far fewer tokens than were sent) fails at once;
- the whole conversation is bounded in time (``llm_retry_budget``).

Its state is its own. Two transports carry its requests and answers: ``converse`` here (one
request at a time, through ``LlmServer.send``) and the Batch API (``digest.llm.batch``),
which writes ``next_request().body`` into a file and hands each answer to ``take``. Either
way the request is the one ``LlmServer.body`` builds.
"""

from __future__ import annotations

import logging
import re
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, NoReturn, TypeVar

import openai
from pydantic import BaseModel

from digest.errors import LLMConfigError, MalformedAnswer, SummaryFailed
from digest.llm.prompts import estimate_tokens, render_prompt
from digest.llm.server import LlmServer, Messages, RequestChanged, call_usage
from digest.models import CallOutcome, Usage
from digest.net import Attempts

log = logging.getLogger(__name__)

# Characters of an earlier answer sent back with a re-ask, per token of its limit: far more
# than any tokenizer packs into a token, so only what no model could have written is cut (a
# server's 50 MB "answer" must not become a 50 MB request, paid for as prompt tokens and past
# --max-cost's estimate).
REASK_CHARS_PER_TOKEN = 16


class BatchAnswer(BaseModel):
    """Where an answer that came through the Batch API came from (``digest.llm.batch``)."""

    batch_id: str  # the batch of the answer that passed
    saved_usd: float | None  # against the same tokens at interactive prices


class Outcome(BaseModel):
    """What a conversation ends with, whatever was asked: what its answers cost, how many
    requests, how long, and who answered."""

    usage: Usage
    attempts: int
    seconds: float
    answered_by: str | None = None  # the model the server named, when not the one asked
    batch: BatchAnswer | None = None
    cost_usd: float | None = None  # priced by the batch path (the interactive one prices it)


Subject = TypeVar("Subject", bound=BaseModel)
Result = TypeVar("Result", bound=Outcome)


@dataclass
class Answer:
    """One answer, as read: what it holds (``parsed``), or why it is no answer yet."""

    parsed: Any = None
    content: str | None = None
    problems: list[str] = field(default_factory=list)
    cut_off: bool = False
    looped: bool = False
    copied: bool = False  # the prompt's worked example, repeated
    refused: str | None = None  # why the model or the server's filter gave no answer


@dataclass(frozen=True)
class Request:
    """The next request of a conversation: its messages, their estimated tokens, the output
    limit, and the body the server is sent."""

    messages: Messages
    prompt_tokens: int
    limit: int
    body: dict[str, Any]


@dataclass(frozen=True)
class Sent:
    """What a conversation keeps of its request while the answer is out: what the answer is
    checked against. Not the messages: a batch holds thousands of conversations at once, and
    their texts wait on disk."""

    prompt_tokens: int
    limit: int


def prompt_tokens_of(messages: Messages) -> int:
    """The estimated prompt tokens of a request's messages."""
    return sum(estimate_tokens(message["content"]) for message in messages)


def reask_messages(question: Messages, answer: str, problems: list[str]) -> Messages:
    """The question once more with the latest answer and what is wrong with it. Only the
    latest: a second re-ask replaces the first, so the prompt stays the same size."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return [
        *question,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": render_prompt("reask", problems=listed)},
    ]


_FENCED = re.compile(r"```(?:json)?\s*\n(.*)\n```", re.DOTALL)


def unfenced(content: str) -> str:
    """An answer's JSON without the Markdown code fence some models put around it."""
    text = content.strip()
    fenced = _FENCED.fullmatch(text)
    return fenced.group(1) if fenced else text


def repeats_itself(text: str, window: int = 600) -> bool:
    """Whether ``text`` ends in a loop: its last ``window`` characters repeat with some period
    of at most a third of the window (a line, a phrase, a run of one token)."""
    tail = text[-window:]
    if len(tail) < 200:
        return False
    for period in range(1, len(tail) // 3 + 1):
        same = sum(tail[i] == tail[i + period] for i in range(len(tail) - period))
        if same >= 0.95 * (len(tail) - period):
            return True
    return False


class Conversation(ABC, Generic[Subject, Result]):
    """One subject's exchange with the model. See the module docstring."""

    schema: ClassVar[type[BaseModel]]  # what the model answers with
    noun: ClassVar[str] = "answer"  # what the answer is called in a failure's reason

    def __init__(self, server: LlmServer, subject: Subject) -> None:
        self.server = server
        self._subject: Subject | None = subject
        self._usage = Usage()
        self._requests = 0
        self._reasks = 0
        self._enlarged = False
        self._max_tokens = server.options.max_output_tokens
        self._last: Answer | None = None  # the latest answer that failed, for the re-ask
        self._answered_by: str | None = None
        self._batch_calls = 0
        self._out: Sent | None = None  # the request the next answer answers
        self.restart_clock()

    # -- What a kind of conversation says ------------------------------------------------

    @abstractmethod
    def question(self) -> Messages:
        """The first question about the subject, in the server's format now in use."""

    @abstractmethod
    def read(self, content: str) -> tuple[Any, list[str]]:
        """What an answer's text holds, or None and the problems to send back."""

    @abstractmethod
    def judge(self, answer: Answer, last_chance: bool) -> Result | None:
        """The result when ``answer`` passes the subject's checks; None, with the problems on
        ``answer``, when it is to be asked again; ``fail`` when the subject is done for.
        ``last_chance``: no re-ask is left, so what can still be mended is mended here."""

    def reask(self, question: Messages, answer: str, problems: list[str]) -> Messages:
        """The question once more with the latest answer and its problems (``reask_messages``:
        the digest's wording, unless a kind of conversation words it its own way)."""
        return reask_messages(question, answer, problems)

    # -- The subject ---------------------------------------------------------------------

    @property
    def subject(self) -> Subject:
        if self._subject is None:
            raise RuntimeError("the conversation's subject is detached (see detach)")
        return self._subject

    def detach(self) -> Subject:
        """Hand the subject over to be kept elsewhere (a batch holds thousands of
        conversations, and their texts wait on disk); ``attach`` gives it back."""
        subject = self.subject
        self._subject = None
        return subject

    def attach(self, subject: Subject) -> None:
        self._subject = subject

    # -- The protocol ---------------------------------------------------------------------

    @property
    def usage(self) -> Usage:
        return self._usage

    @property
    def requests(self) -> int:
        return self._requests

    @property
    def batch_calls(self) -> int:
        """How many of the answers came through a batch (the first ones): priced at the
        batch share."""
        return self._batch_calls

    @property
    def deadline(self) -> float:
        """The ``time.monotonic()`` past which no request of this conversation is sent."""
        return self._started + self.server.options.retry.max_seconds

    def restart_clock(self) -> None:
        """From now, the conversation's time (a batch's wait was not its own)."""
        self._started = time.monotonic()

    def check_time(self) -> None:
        budget = self.server.options.retry.max_seconds
        elapsed = time.monotonic() - self._started
        if elapsed >= budget:
            raise self.fail(
                f"gave up after {elapsed:.0f} s at the LLM, more than "
                f"DIGEST_LLM_RETRY_BUDGET={budget:g} s"
            )

    def next_request(self) -> Request:
        """The next question, as the request the server is sent: the subject, with the
        latest answer and its problems when it is a re-ask."""
        messages = self.question()
        last = self._last
        if last is not None:
            cap = REASK_CHARS_PER_TOKEN * self._max_tokens
            messages = self.reask(messages, (last.content or "")[:cap], last.problems)
        sent = prompt_tokens_of(messages)
        limit = self.server.fitted_limit(sent, self._max_tokens)
        if isinstance(limit, str):
            raise self.fail(limit)
        self._out = Sent(sent, limit)
        return Request(messages, sent, limit, self.server.body(messages, limit, self.schema))

    def count_requests(self, count: int) -> None:
        self._requests += count

    def take(self, completion: dict[str, Any], *, via_batch: bool = False) -> Result | None:
        """The result when ``completion`` (the answer to ``next_request``) passes; None when
        the model is to be asked again; ``SummaryFailed`` when the subject is done for."""
        sent = self._out
        assert sent is not None, "take() answers next_request()"
        answer = self._answer(completion, sent)
        self._batch_calls += via_batch
        result = self.judge(answer, self._reasks == self.server.options.max_reasks)
        if result is not None:
            return result
        self._again(answer)
        return None

    def refused(self, error: openai.APIStatusError, attempts: Attempts) -> None:
        """An error status for the request: returns when it can be sent another way (the
        next request is built without what was refused); else raises why the subject
        (``SummaryFailed``) or the run (``LLMConfigError``) stops."""
        meaning = self.server.classify(error, attempts)
        if isinstance(meaning, RequestChanged):
            return
        if isinstance(meaning, LLMConfigError):
            raise meaning
        raise self.fail(meaning.reason)

    def fail(self, reason: str) -> SummaryFailed:
        """The subject's failure, with what its answers so far cost."""
        return SummaryFailed(reason, usage=self._usage, attempts=self._requests)

    def outcome_fields(self) -> dict[str, Any]:
        """What every result carries (see ``Outcome``)."""
        return {
            "usage": self._usage,
            "attempts": self._requests,
            "seconds": round(time.monotonic() - self._started, 3),
            "answered_by": self._answered_by,
        }

    def mark(self, outcome: CallOutcome) -> None:
        """What became of the latest answer, for its provenance."""
        self._usage.calls[-1].outcome = outcome

    @property
    def reasks(self) -> int:
        return self._reasks

    # -- Inside -------------------------------------------------------------------------

    def _answer(self, completion: dict[str, Any], sent: Sent) -> Answer:
        call = self._usage.add(call_usage(completion.get("usage")))
        choice = completion["choices"][0]
        log.info(
            "answer %d (%s): %d tokens in, %d out, finish_reason %s",
            len(self._usage.calls),
            self.server.mode,
            call.tokens_in,
            call.tokens_out,
            choice.get("finish_reason"),
        )
        cut = self.server.prompt_cut(call.tokens_in, sent.prompt_tokens)
        if cut is not None:
            raise self.fail(cut)
        self._answered_by = self.server.note_model(completion.get("model")) or self._answered_by
        answer = self._read_choice(choice)
        if answer.cut_off and answer.content and repeats_itself(answer.content):
            answer.looped = True
            answer.problems = [
                "(root): the answer repeated itself until it was cut off; write each line "
                "once and close the JSON"
            ]
            log.warning("the model repeated itself until it was cut off at %d tokens", sent.limit)
        call.outcome = (
            "ok" if answer.parsed is not None else "looped" if answer.looped
            else "cut off" if answer.cut_off else "refused" if answer.refused else "invalid"
        )  # fmt: skip
        return answer

    def _read_choice(self, choice: dict[str, Any]) -> Answer:
        message = choice["message"]
        content = message.get("content")
        content = content if isinstance(content, str) else None
        if choice.get("finish_reason") == "length":
            return Answer(cut_off=True, content=content)
        if choice.get("finish_reason") == "content_filter":
            return Answer(refused="the answer was blocked by the server's content filter")
        if message.get("refusal"):
            return Answer(refused=f"the model refused: {message['refusal']}")
        if not content or not content.strip():
            return Answer(problems=[f"(root): the answer is empty; return the {self.noun} as JSON"])
        parsed, problems = self.read(content)
        return Answer(parsed=parsed, content=content, problems=problems)

    def _again(self, answer: Answer) -> None:
        """After an answer that did not pass: a larger limit, a re-ask, or the end."""
        if answer.cut_off and not answer.looped:
            self._enlarge()
            return
        if self._reasks == self.server.options.max_reasks:
            raise self.fail(self._final_problem(answer))
        self._reasks += 1
        if answer.refused:
            log.info("asking again (%d): %s", self._reasks, answer.refused)
            return  # the same question again; a refusal is no answer to correct
        log.info("re-asking (%d): %s", self._reasks, "; ".join(answer.problems))
        self._last = answer

    def _enlarge(self) -> None:
        """Once per conversation, twice the output limit for an answer that was cut off."""
        if self._enlarged:
            raise self.fail(
                f"the answer was cut off at {self.server.output_limit(self._max_tokens)} output "
                "tokens even after one retry with twice the limit (raise "
                "DIGEST_MAX_OUTPUT_TOKENS)"
            )
        self._enlarged = True
        self._max_tokens *= 2
        log.warning(
            "the answer was cut off at the output limit; asking once more with %d tokens",
            self.server.output_limit(self._max_tokens),
        )

    def _final_problem(self, answer: Answer) -> str:
        answers = self._reasks + 1
        times = "once" if answers == 1 else f"{answers} times"
        if answer.refused:
            return f"{answer.refused} ({times})"
        if answer.copied:
            return (
                f"the answer repeated the prompt's worked example instead of digesting the "
                f"paper ({answers} answer{'' if answers == 1 else 's'}); a larger model may not"
            )
        if answer.looped:
            return (
                "the model repeated itself until it was cut off at "
                f"{self.server.output_limit(self._max_tokens)} output tokens "
                f"({answers} answer{'' if answers == 1 else 's'}); a larger model, or a lower "
                "temperature, may not loop"
            )
        problems = "; ".join(answer.problems)
        return f"the {self.noun} failed validation {times}; last problems: {problems}"


async def converse(conversation: Conversation[Subject, Result]) -> Result:
    """The interactive transport: ask, take the answer, ask again, until ``conversation``
    ends, one request at a time. Transient failures are retried within its time."""
    server = conversation.server
    while True:
        conversation.check_time()
        request = conversation.next_request()
        attempts = Attempts()
        try:
            completion = await server.send(
                request.body, attempts=attempts, deadline=conversation.deadline
            )
        except openai.APIStatusError as error:
            conversation.count_requests(attempts.count)
            conversation.refused(error, attempts)
            continue
        except (openai.APIConnectionError, MalformedAnswer) as error:
            conversation.count_requests(attempts.count)
            _unanswered(conversation, server.no_answer(error, attempts))
        conversation.count_requests(attempts.count)
        result = conversation.take(completion)
        if result is not None:
            return result


def _unanswered(conversation: Conversation[Any, Any], reason: str) -> NoReturn:
    raise conversation.fail(reason) from None
