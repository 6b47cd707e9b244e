"""The summarize stage: one paper's text to a validated Korean ``Digest`` through the LLM.

The request goes through Chat Completions with ``Digest`` as a strict ``json_schema``. Every
kind of trouble is handled once, in one place:

- Transient (408, 429, 5xx, connection errors, timeouts, an answer that is not a chat
  completion): retried by the shared policy (``digest.net``), waiting what the server asks up
  to ``retry_after_cap`` (the SDK gives up above 120 s), within ``llm_max_attempts`` requests
  an answer and ``llm_retry_budget`` seconds a paper, re-asks included. The SDK's own retries
  are off so the two never multiply.
- A request the server rejects for its response format (DeepSeek's 422, llama-cpp-python's
  500, others' 400): never retried as transient; ``auto`` switches to ``json_object`` once for
  the run. For a sampling or token parameter a model does not take (``temperature`` on a
  reasoning model, ``max_tokens`` where ``max_completion_tokens`` is wanted): that parameter
  is dropped once for the run, logged, and the request sent again.
- An answer that fails validation (invalid JSON, English, polite style, counts, numbers the
  paper does not state): asked again with the answer and the problems, at most ``max_reasks``
  times. A re-ask carries the paper once, the latest answer and its problems: it does not
  grow round after round (a small server's context would overflow).
- An answer cut off by ``finish_reason=length``: asked once more with twice the limit, unless
  it repeats itself (a loop, which a larger limit only makes longer): that is an invalid
  answer, "the model repeated itself".
- A refusal or a content-filter stop: asked again, counted against the same ``max_reasks``.
- A prompt the server cut (it read far fewer tokens than were sent: Ollama's 4k default
  context) or one that does not fit its context: the paper fails at once, naming the fix.

Servers without strict ``json_schema`` (``llm_mode``): ``json_object`` asks for JSON mode and
puts the schema in the prompt (and in ``response_format.schema``, which llama.cpp enforces).
Answers of both modes are read the same way, leniently about raw line breaks inside strings
(small models write them), so that the line checks run and say what to fix.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.lib._parsing import type_to_response_format_param
from openai.types import CompletionUsage

if TYPE_CHECKING:
    from openai.types.chat import ChatCompletionMessageParam
    from openai.types.shared_params import ResponseFormatJSONObject
from pydantic import BaseModel, ValidationError

from digest.errors import (
    LLMConfigError,
    MalformedAnswer,
    SummaryFailed,
    TransientAnswer,
    UsageError,
)
from digest.llm.grounding import (
    PaperNames,
    copies_example,
    find_ungrounded,
    find_ungrounded_names,
    numbers_of_source,
    repair,
    too_many_ungrounded,
)
from digest.llm.prompts import chars_for_tokens, estimate_tokens, prompt_text, render_prompt
from digest.models import CallUsage, Digest, Extractor, InputKind, Usage
from digest.net import (
    AsyncSleep,
    Attempts,
    describe,
    headers_of,
    one_line,
    server_wait,
    within,
)
from digest.options import AnswerFormat, LlmOptions
from digest.validation import describe_validation_error

log = logging.getLogger(__name__)


class PaperText(BaseModel):
    """What the LLM reads about one paper."""

    arxiv_id: str | None
    title: str
    authors: list[str]
    abstract: str = ""  # arXiv's, which names and numbers may also be found in
    identity_score: float | None = None  # how well the PDF's text matched (digest.text.identity)
    input: InputKind
    input_reason: str | None = None
    extractor: Extractor | None = None  # for full text: what read the PDF
    full_text_pending: bool = False  # the abstract only because the PDF host failed for now
    content: str


# "</paper>" as a model might read it: any case, blanks inside.
_PAPER_END = re.compile(r"<\s*/\s*paper\s*>", re.IGNORECASE)


def call_usage(raw: object) -> CallUsage:
    """One answer's tokens, read through the SDK's typed ``CompletionUsage``. A server that
    sends no usage, or a malformed one, counts as zero rather than failing a good answer."""
    if not isinstance(raw, dict):
        return CallUsage(tokens_in=0, tokens_out=0)
    # Servers leave out what they do not count (total_tokens, often), or send null for it.
    given = {name: value for name, value in raw.items() if value is not None}
    try:
        usage = CompletionUsage.model_validate(
            {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, **given}
        )
    except ValidationError:
        return CallUsage(tokens_in=0, tokens_out=0)
    cached = usage.prompt_tokens_details.cached_tokens if usage.prompt_tokens_details else None
    thinking = (
        usage.completion_tokens_details.reasoning_tokens
        if usage.completion_tokens_details
        else None
    )
    return CallUsage(
        tokens_in=max(usage.prompt_tokens, 0),
        tokens_out=max(usage.completion_tokens, 0),
        tokens_cached=max(cached or 0, 0),
        tokens_reasoning=max(thinking or 0, 0),
    )


class BatchAnswer(BaseModel):
    """Where a digest answered through the Batch API came from (``digest.llm.batch``)."""

    batch_id: str  # the batch of the answer that passed
    saved_usd: float | None  # against the same tokens at interactive prices


class Summary(BaseModel):
    digest: Digest
    usage: Usage
    attempts: int
    seconds: float
    grounding_repairs: list[str] = []
    ungrounded_names: list[str] = []  # names the paper never mentions, kept (see grounding)
    answered_by: str | None = None  # the model the server named, when not the one asked
    batch: BatchAnswer | None = None
    cost_usd: float | None = None  # priced by the batch path (the interactive one prices it)


def retry_after_seconds(error: BaseException) -> float | None:
    """The wait a server asked for (``retry-after-ms``, ``Retry-After``, ``RateLimit``)."""
    if not isinstance(error, openai.APIStatusError):
        return None
    return server_wait(headers_of(error))


def make_client(options: LlmOptions) -> AsyncOpenAI:
    """The OpenAI client, with the SDK's own retries off (the retry policy does them)."""
    key = options.api_key
    if not key:
        if options.base_url is None:
            raise UsageError(
                "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server "
                "that needs none"
            )
        key = "unused"  # local OpenAI-compatible servers accept any key
    return AsyncOpenAI(
        api_key=key, base_url=options.base_url, timeout=options.timeout, max_retries=0
    )


# The key check's own bound: a server that does not answer this small request at once is
# left to the papers' requests, whose timeout and retries are made for waiting.
_KEY_CHECK_SECONDS = 15.0


async def check_key(client: AsyncOpenAI, options: LlmOptions) -> bool:
    """Whether the LLM server takes the API key, asked once before a run downloads or pays for
    anything: ``GET {base_url}/models``, which the OpenAI API, vLLM, Ollama and llama-server
    answer at no cost.

    True when it lists its models; ``LLMConfigError`` when it refuses the key (401, 403).
    False when the answer tells nothing, and the first paper's request is the check instead:

    - no such route (404, 405, any other refusal that is not about the key), or an HTML page
      where the list should be: a proxy or a server that does not have it;
    - a connection error, a timeout, 429 or 5xx. These do not stop the run: a server that is
      down or busy now may answer when the papers reach it, minutes later, and their requests
      have the backoff and ``Retry-After`` this one lacks. Stopping here would turn one bad
      moment into a lost night; if the server stays down, each paper says so, and its PDF
      waits in the cache for the next run.
    """
    seconds = min(options.timeout, _KEY_CHECK_SECONDS)
    try:
        raw = await within(
            seconds,
            client.with_options(timeout=seconds).models.with_raw_response.list(),
            "the key check (GET /models)",
        )
    except openai.APIStatusError as error:
        if error.status_code in (401, 403):
            raise LLMConfigError(key_refused(error.status_code, _error_detail(error))) from None
        log.debug("key check: HTTP %d from %s/models", error.status_code, options.where)
        return False
    except (openai.APIConnectionError, TransientAnswer) as error:
        log.debug("key check: %s", describe(error))
        return False
    try:
        listed = raw.http_response.json()
    except ValueError:
        return False
    return isinstance(listed, dict) and isinstance(listed.get("data"), list)


def key_refused(status: int, detail: str) -> str:
    """The one line that says the server refused the key, and what to do about it."""
    return f"the LLM server refused the API key (HTTP {status}: {detail}); check OPENAI_API_KEY"


# Characters of an earlier answer sent back with a re-ask, per token of its limit: far more
# than any tokenizer packs into a token, so only what no model could have written is cut.
_REASK_CHARS_PER_TOKEN = 16

# OpenAI's reasoning models: the o-series and gpt-5 (not gpt-5-chat, which does not reason).
_REASONING_MODEL = re.compile(r"(?:^|/)(?:o\d+(?:-|$)|gpt-5(?!(?:\.\d+)?-chat))", re.IGNORECASE)
# Output tokens a reasoning model may think with, on top of the answer's max_output_tokens, by
# reasoning_effort: the limit bounds what is paid, and a limit that thinking uses up ends in
# finish_reason=length with no answer at all.
_REASONING_ALLOWANCE = {None: 8000, "minimal": 2000, "low": 8000, "medium": 16000, "high": 32000}
# Parameters that may be dropped when a model rejects them; the answer is the same without.
_DROPPABLE = ("temperature", "top_p", "reasoning_effort", "max_tokens")
_FORMAT_REJECTED = re.compile(
    r"response_format|json_schema|json schema|structured output|'json_object'", re.IGNORECASE
)
_CONTEXT_EXCEEDED = re.compile(
    r"context[ _](?:length|size|window)|exceeds? the (?:available )?context|maximum context",
    re.IGNORECASE,
)
# A reported prompt under this share of the tokens sent was cut by the server. The estimate
# errs high: real tokenizers count 0.75 to 1.15 of it for our prompts (English text at 4 to 5
# characters a token, the Korean instructions at under one a syllable), so 0.6 is outside
# its error and well above Ollama's cut of an 11k-token prompt to 4k (0.37).
_CUT_PROMPT_SHARE = 0.6
_CUT_PROMPT_MIN_TOKENS = 1000
# Tokens of a re-ask beyond the first question: the echoed answer is bounded by the output
# limit, the problems list and the re-ask prompt by this.
_REASK_OVERHEAD_TOKENS = 600


_COPIED_EXAMPLE = (
    "(root): this answer repeats the worked example of the instructions (SpAdapt, Whisper, "
    "LibriSpeech), not the paper; the example only shows the format. Digest the paper inside "
    "<paper>, with its own methods, names and numbers"
)


@dataclass
class _Answer:
    digest: Digest | None = None
    content: str | None = None
    problems: list[str] = field(default_factory=list)
    cut_off: bool = False
    looped: bool = False
    copied: bool = False  # the worked example, repeated
    refused: str | None = None  # why the model or the server's filter gave no answer


@dataclass
class _Loop:
    """The state of one paper's conversation with the model. The loop stops by ``fail``,
    which records why, with what the answers so far cost."""

    started: float
    deadline: float
    max_tokens: int
    usage: Usage = field(default_factory=Usage)
    requests: int = 0
    reasks: int = 0
    enlarged: bool = False
    last: _Answer | None = None  # the latest answer that failed validation, for the re-ask
    answered_by: str | None = None

    def fail(self, reason: str) -> SummaryFailed:
        return SummaryFailed(reason, usage=self.usage, attempts=self.requests)


@dataclass
class Conversation:
    """One paper's exchange with the model between answers: the interactive path holds one
    for as long as it waits on the server, the batch path (``digest.llm.batch``) one per paper
    for as long as a batch runs."""

    state: _Loop
    _grounding: tuple[set[Decimal], PaperNames] | None = None

    def grounding(self, paper: PaperText) -> tuple[set[Decimal], PaperNames]:
        """The numbers and names the paper states, read once."""
        if self._grounding is None:
            source = f"{paper.title}\n{paper.abstract}\n{paper.content}"
            self._grounding = numbers_of_source(source), PaperNames.of(source)
        return self._grounding

    def forget_paper(self) -> None:
        """Drop what was read from the paper (a batch holds thousands of conversations)."""
        self._grounding = None


class _RequestChanged(Exception):
    """The server rejected a parameter or the response format; the run asks without it."""


def reask_messages(
    question: list[dict[str, str]], answer: str, problems: list[str]
) -> list[dict[str, str]]:
    """The question once more with the latest answer and what is wrong with it. Only the
    latest: a second re-ask replaces the first, so the prompt stays the same size."""
    listed = "\n".join(f"- {problem}" for problem in problems)
    return [
        *question,
        {"role": "assistant", "content": answer},
        {"role": "user", "content": render_prompt("reask", problems=listed)},
    ]


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


def fitted_text_budget(options: LlmOptions, fixed_tokens: int) -> int:
    """``text_budget``, made smaller when ``context_tokens`` is set so that the prompt, a re-ask
    (the answer echoed and the problems) and the answer fit the server's context.
    ``fixed_tokens`` is the prompt without the paper."""
    if options.context_tokens is None:
        return options.text_budget
    answer = options.max_output_tokens
    room = options.context_tokens - fixed_tokens - 2 * answer - _REASK_OVERHEAD_TOKENS
    budget = min(options.text_budget, chars_for_tokens(room))
    if budget < 2000:
        raise UsageError(
            f"DIGEST_CONTEXT_TOKENS={options.context_tokens} leaves no room for the paper after "
            f"the instructions (about {fixed_tokens} tokens) and DIGEST_MAX_OUTPUT_TOKENS="
            f"{answer} for the answer and its re-ask; raise the server's context and "
            "DIGEST_CONTEXT_TOKENS, or lower DIGEST_MAX_OUTPUT_TOKENS"
        )
    return budget


class Summarizer:
    """Digests papers through one LLM server; what the server refused is remembered for the
    run (the response format, parameters), so that only the first paper pays for it."""

    def __init__(
        self, options: LlmOptions, client: AsyncOpenAI | None, sleep: AsyncSleep = asyncio.sleep
    ) -> None:
        self.options = options
        self.client = client
        self.sleep = sleep
        self.policy = replace(options.retry, connection_errors=(openai.APIConnectionError,))
        self.mode: AnswerFormat = "json_object" if options.mode == "json_object" else "json_schema"
        self.reasoning = bool(_REASONING_MODEL.search(options.model))
        self.dropped: set[str] = set()  # parameters the server rejected, not sent again
        self.token_parameter = "max_completion_tokens"
        self._warned_models: set[str] = set()

    def messages_for(self, paper: PaperText, mode: str | None = None) -> list[dict[str, str]]:
        """System prompt, the worked example, then the paper: what the model is sent (in
        ``mode``, by default the one in use)."""
        kind = "full text (abridged)" if paper.input == "full-text" else "abstract only"
        user = render_prompt(
            "user",
            title=paper.title,
            authors=", ".join(paper.authors) or "unknown",
            arxiv_id=paper.arxiv_id or "none (local PDF)",
            input_kind=kind,
            # A closing tag inside the paper must not end the untrusted block early.
            content=_PAPER_END.sub("</ paper>", paper.content),
        )
        system = render_prompt("system")
        if (mode or self.mode) == "json_object":
            schema = json.dumps(Digest.model_json_schema(), ensure_ascii=False)
            system += "\n" + render_prompt("json-mode", schema=schema)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt_text("example-user.md")},
            {"role": "assistant", "content": prompt_text("example-assistant.json").strip()},
            {"role": "user", "content": user},
        ]

    def fixed_prompt_tokens(self) -> int:
        """The prompt's tokens without the paper, in the larger of the modes it may use."""
        empty = PaperText(arxiv_id=None, title="", authors=[], input="full-text", content="")
        modes = {self.mode, "json_object" if self.options.mode == "auto" else self.mode}
        return max(prompt_tokens_of(self.messages_for(empty, mode)) for mode in modes)

    def output_limit(self, answer_tokens: int) -> int:
        """The token limit sent: the answer's, and a reasoning model's thinking on top."""
        if not self.reasoning:
            return answer_tokens
        return answer_tokens + _REASONING_ALLOWANCE[self.options.reasoning_effort]

    async def summarize(self, paper: PaperText) -> Summary:
        """The paper's digest; SummaryFailed (with what its answers cost) when there is none."""
        return await self.converse(paper, self.begin(paper))

    def begin(self, paper: PaperText) -> Conversation:
        """A new conversation about ``paper``, before its first question."""
        started = time.monotonic()
        state = _Loop(
            started=started,
            deadline=started + self.options.retry.max_seconds,
            max_tokens=self.options.max_output_tokens,
        )
        return Conversation(state)

    async def converse(self, paper: PaperText, conversation: Conversation) -> Summary:
        """Ask, judge the answer, ask again, until a digest passes or the paper fails; from
        wherever ``conversation`` is (the batch path hands a re-ask over to it)."""
        state = conversation.state
        budget = self.options.retry.max_seconds
        while True:
            elapsed = time.monotonic() - state.started
            if elapsed >= budget:
                raise state.fail(
                    f"gave up after {elapsed:.0f} s at the LLM, more than "
                    f"DIGEST_LLM_RETRY_BUDGET={budget:g} s"
                )
            try:
                answer = await self._ask(self.messages_now(paper, conversation), state)
            except _RequestChanged:
                continue
            summary = self.judge(answer, paper, conversation)
            if summary is not None:
                return summary

    def messages_now(self, paper: PaperText, conversation: Conversation) -> list[dict[str, str]]:
        """The next question: the paper (in the mode now in use), with the latest answer and
        its problems when it is a re-ask."""
        question = self.messages_for(paper)
        state = conversation.state
        last = state.last
        if last is None:
            return question
        # The answer goes back with the re-ask, so it is bounded: an honest answer is within
        # its token limit; a server's 50 MB "answer" must not become a 50 MB request (paid
        # for as prompt tokens, and past --max-cost's estimate of a digest).
        cap = _REASK_CHARS_PER_TOKEN * state.max_tokens
        answer = last.content or ""
        if len(answer) > cap:
            answer = answer[:cap]
        return reask_messages(question, answer, last.problems)

    def judge(
        self, answer: _Answer, paper: PaperText, conversation: Conversation
    ) -> Summary | None:
        """The summary when ``answer`` passes; None when the model is to be asked again (the
        problems are on the conversation); ``SummaryFailed`` when the paper is done for."""
        state = conversation.state
        if answer.digest is not None and copies_example(answer.digest):
            state.usage.calls[-1].outcome = "copied"
            answer.copied, answer.digest = True, None
            answer.problems = [_COPIED_EXAMPLE]
        if answer.digest is not None:
            grounded, names = conversation.grounding(paper)
            summary = self._grounded(answer, answer.digest, grounded, names, state)
            if summary is not None:
                return summary
        if answer.cut_off and not answer.looped:
            self._enlarge(state)
            return None
        if state.reasks == self.options.max_reasks:
            raise state.fail(self._final_problem(answer, state))
        state.reasks += 1
        if answer.refused:
            log.info("asking again (%d): %s", state.reasks, answer.refused)
            return None  # the same question again; a refusal is no answer to correct
        log.info("re-asking (%d): %s", state.reasks, "; ".join(answer.problems))
        state.last = answer
        return None

    def _grounded(
        self,
        answer: _Answer,
        digest: Digest,
        grounded: set[Decimal],
        names: PaperNames,
        state: _Loop,
    ) -> Summary | None:
        """The summary when every number and name of ``digest`` is in the paper; else None,
        with the problems on ``answer`` for the re-ask. After the last re-ask, the numbers the
        paper does not state are taken out where the line still reads (or the paper fails),
        and the names are kept and listed, unless there are so many that the digest is of
        another paper (it then fails)."""
        ungrounded = find_ungrounded(digest, grounded)
        strangers = find_ungrounded_names(digest, names)
        if not ungrounded and not strangers:
            return self._summary(digest, state)
        if state.reasks < self.options.max_reasks:
            state.usage.calls[-1].outcome = "ungrounded"
            answer.problems = [item.problem() for item in ungrounded]
            answer.problems += [item.problem() for item in strangers]
            return None
        answers = state.reasks + 1
        if too_many_ungrounded(digest, strangers):
            listed = ", ".join(dict.fromkeys(item.name for item in strangers))
            raise state.fail(
                f"names the paper never mentions survived {answers} answers: {listed}; "
                "the digest reads as one of another paper"
            )
        notes: list[str] = []
        if ungrounded:
            repaired, notes = repair(digest, ungrounded)
            if repaired is None:
                problems = "; ".join(item.problem() for item in ungrounded)
                raise state.fail(
                    f"numbers the paper does not state survived {answers} answers and could "
                    f"not be taken out and leave a readable line: {problems}"
                )
            log.warning("published without ungrounded numbers: %s", "; ".join(notes))
            digest = repaired
        kept = list(dict.fromkeys(item.name for item in strangers))
        if kept:
            log.warning(
                "published with names the paper does not mention (listed in its provenance): %s",
                ", ".join(kept),
            )
        summary = self._summary(digest, state)
        return summary.model_copy(update={"grounding_repairs": notes, "ungrounded_names": kept})

    def _summary(self, digest: Digest, state: _Loop) -> Summary:
        return Summary(
            digest=digest,
            usage=state.usage,
            attempts=state.requests,
            seconds=round(time.monotonic() - state.started, 3),
            answered_by=state.answered_by,
        )

    def _enlarge(self, state: _Loop) -> None:
        """Once per paper, twice the output limit for an answer that was cut off."""
        if state.enlarged:
            raise state.fail(
                f"the answer was cut off at {self.output_limit(state.max_tokens)} output tokens "
                "even after one retry with twice the limit (raise DIGEST_MAX_OUTPUT_TOKENS)"
            )
        state.enlarged = True
        state.max_tokens *= 2
        log.warning(
            "the answer was cut off at the output limit; asking once more with %d tokens",
            self.output_limit(state.max_tokens),
        )

    def _final_problem(self, answer: _Answer, state: _Loop) -> str:
        answers = state.reasks + 1
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
                f"{self.output_limit(state.max_tokens)} output tokens "
                f"({answers} answer{'' if answers == 1 else 's'}); a larger model, or a lower "
                "temperature, may not loop"
            )
        problems = "; ".join(answer.problems)
        return f"the digest failed validation {times}; last problems: {problems}"

    async def _ask(self, messages: list[dict[str, str]], state: _Loop) -> _Answer:
        """One answer from the model, transient failures retried within the paper's time."""
        sent = prompt_tokens_of(messages)
        limit = self.fit_limit(sent, state)
        attempts = Attempts()
        try:
            body = await self.policy.call(
                lambda: self._post_within_timeout(messages, limit),
                attempts=attempts,
                sleep=self.sleep,
                deadline=state.deadline,
                retry_if=lambda error: not self._rejects_request(error),
            )
        except openai.APIStatusError as error:
            state.requests += attempts.count
            raise self.refusal(error, attempts, state) from None
        except (openai.APIConnectionError, MalformedAnswer) as error:
            state.requests += attempts.count
            raise state.fail(self._no_answer(error, attempts)) from None
        state.requests += attempts.count
        return self.take(body, sent, limit, state)

    def refusal(self, error: openai.APIStatusError, attempts: Attempts, state: _Loop) -> Exception:
        """What an error status means for the paper: ``_RequestChanged`` when the request can
        be sent another way (asked again at once), else why the paper or the run stops."""
        if self._change_request(error):
            return _RequestChanged()
        return self._status_failure(error, attempts, state)

    def take(self, body: dict[str, Any], sent: int, limit: int, state: _Loop) -> _Answer:
        """A chat completion ``body`` read as the answer to a question of ``sent`` prompt
        tokens asked with the output ``limit``: its usage counted, its digest parsed."""
        usage = state.usage
        call = usage.add(call_usage(body.get("usage")))
        log.info(
            "answer %d (%s): %d tokens in, %d out, finish_reason %s",
            len(usage.calls),
            self.mode,
            call.tokens_in,
            call.tokens_out,
            body["choices"][0].get("finish_reason"),
        )
        self._check_prompt_read(call.tokens_in, sent, state)
        self._note_model(body.get("model"), state)
        answer = self._read(body)
        if answer.cut_off and answer.content and repeats_itself(answer.content):
            answer.looped = True
            answer.problems = [
                "(root): the answer repeated itself until it was cut off; write each line "
                "once and close the JSON"
            ]
            log.warning("the model repeated itself until it was cut off at %d tokens", limit)
        call.outcome = (
            "ok" if answer.digest else "looped" if answer.looped
            else "cut off" if answer.cut_off else "refused" if answer.refused else "invalid"
        )  # fmt: skip
        return answer

    def request_body(self, messages: list[dict[str, str]], limit: int) -> dict[str, Any]:
        """The body of the chat completion request ``_post`` sends, as JSON: what the batch
        path writes into its input file."""
        response_format = (
            cast("dict[str, Any]", type_to_response_format_param(Digest))
            if self.mode == "json_schema"
            else _json_mode_format()
        )
        body = {
            "model": self.options.model,
            "messages": messages,
            "response_format": response_format,
            **self._options(limit),
        }
        if self.mode == "json_schema":
            body["stream"] = False  # as the SDK's parse() sends it
        return body

    def fit_limit(self, prompt: int, state: _Loop) -> int:
        """The output limit for this request, within ``context_tokens`` when it is set; a
        prompt that leaves no room for an answer fails before it is sent."""
        limit = self.output_limit(state.max_tokens)
        context = self.options.context_tokens
        if context is None:
            return limit
        room = context - prompt
        if room < min(limit, self.options.max_output_tokens):
            raise state.fail(
                f"the request (about {prompt} prompt tokens and {limit} for the answer) does not "
                f"fit DIGEST_CONTEXT_TOKENS={context}; lower DIGEST_TEXT_BUDGET "
                f"(now {self.options.text_budget}) or DIGEST_MAX_OUTPUT_TOKENS"
            )
        return min(limit, room)

    def _check_prompt_read(self, read: int, sent: int, state: _Loop) -> None:
        if sent >= _CUT_PROMPT_MIN_TOKENS and 0 < read < _CUT_PROMPT_SHARE * sent:
            raise state.fail(
                f"the server read only {read} of about {sent} prompt tokens: it cut the prompt "
                "to fit its context, or its chat template dropped part of it (a template "
                "without a system role). Raise the server's context size "
                "(OLLAMA_CONTEXT_LENGTH for Ollama, --ctx-size for llama-server) and set "
                "DIGEST_CONTEXT_TOKENS to it, or lower DIGEST_TEXT_BUDGET "
                f"(now {self.options.text_budget}); or use a chat template that keeps "
                "system messages"
            )

    def _note_model(self, answered: object, state: _Loop) -> None:
        if not isinstance(answered, str) or not answered:
            return
        if _same_model(self.options.model, answered):
            return
        state.answered_by = answered
        if answered not in self._warned_models:
            self._warned_models.add(answered)
            log.warning(
                "asked for model %r, but the server answered as %r; its provenance records it",
                self.options.model,
                answered,
            )

    def _rejects_request(self, error: BaseException) -> bool:
        """A rejection of the request's form: no retry mends it (see ``_change_request``)."""
        if not isinstance(error, openai.APIStatusError) or error.status_code in (401, 403, 404):
            return False
        return (
            _rejected_parameter(error, self._sent_parameters()) is not None
            or bool(_FORMAT_REJECTED.search(_error_detail(error)))
            or bool(_CONTEXT_EXCEEDED.search(_error_detail(error)))
        )

    def _sent_parameters(self) -> set[str]:
        return set(self._options(1)) - {"model", "messages", "response_format"}

    def _change_request(self, error: openai.APIStatusError) -> bool:
        """Whether the request can be sent another way: without a parameter the model does
        not take, or (``auto``) in json_object mode. Remembered for the rest of the run."""
        if error.status_code in (401, 403, 404):
            return False
        parameter = _rejected_parameter(error, self._sent_parameters())
        if parameter == "max_completion_tokens":
            self.token_parameter = "max_tokens"
            log.warning(
                "the server does not take max_completion_tokens (%s); sending max_tokens",
                _error_detail(error),
            )
            return True
        if parameter is not None:
            self.dropped.add(parameter)
            log.warning(
                "the server does not take %s for model %s (%s); not sending it for the rest "
                "of this run",
                parameter,
                self.options.model,
                _error_detail(error),
            )
            return True
        if not _FORMAT_REJECTED.search(_error_detail(error)):
            return False
        if self.options.mode == "auto" and self.mode == "json_schema":
            self.mode = "json_object"
            log.warning(
                "the server rejected response_format json_schema (HTTP %d: %s); using "
                "json_object with the schema in the prompt for the rest of this run",
                error.status_code,
                _error_detail(error),
            )
            return True
        return False

    def _options(self, limit: int) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self.options.temperature is not None:
            options["temperature"] = self.options.temperature
        if self.reasoning and self.options.reasoning_effort is not None:
            options["reasoning_effort"] = self.options.reasoning_effort
        options[self.token_parameter] = limit
        if self.mode == "json_object" and self.token_parameter == "max_completion_tokens":
            # Servers with JSON mode but no json_schema (llama-cpp-python, older vLLM) know
            # only max_tokens; a model that rejects it has it dropped after the first 400.
            options["max_tokens"] = limit
        return {name: value for name, value in options.items() if name not in self.dropped}

    async def _post_within_timeout(
        self, messages: list[dict[str, str]], limit: int
    ) -> dict[str, Any]:
        """``_post`` bounded in all by ``llm_timeout``: the SDK's timeout measures the gaps
        between bytes, which a trickling server never lets run out."""
        try:
            return await asyncio.wait_for(self._post(messages, limit), self.options.timeout)
        except TimeoutError:
            url = f"{self.options.base_url or 'https://api.openai.com/v1'}/chat/completions"
            raise openai.APITimeoutError(request=httpx2.Request("POST", url)) from None

    async def _post(self, messages: list[dict[str, str]], limit: int) -> dict[str, Any]:
        if self.client is None:
            raise RuntimeError("this Summarizer only builds prompts: it has no client")
        options = self._options(limit)
        # Our messages are plain role/content dicts: the SDK's message types, as it reads them.
        sent = cast("list[ChatCompletionMessageParam]", messages)
        if self.mode == "json_schema":
            raw = await self.client.chat.completions.with_raw_response.parse(
                model=self.options.model, messages=sent, response_format=Digest, **options
            )
        else:
            json_mode = cast("ResponseFormatJSONObject", _json_mode_format())
            raw = await self.client.chat.completions.with_raw_response.create(
                model=self.options.model, messages=sent, response_format=json_mode, **options
            )
        try:
            body = raw.http_response.json()
        except ValueError as error:
            raise MalformedAnswer(
                f"the server's answer is not a chat completion: {error}"
            ) from None
        return chat_completion(body)

    def _read(self, body: dict[str, Any]) -> _Answer:
        """An answer of either mode, read the same way."""
        choice = body["choices"][0]
        message = choice["message"]
        content = message.get("content")
        content = content if isinstance(content, str) else None
        if choice.get("finish_reason") == "length":
            return _Answer(cut_off=True, content=content)
        if choice.get("finish_reason") == "content_filter":
            return _Answer(refused="the answer was blocked by the server's content filter")
        if message.get("refusal"):
            return _Answer(refused=f"the model refused: {message['refusal']}")
        if not content or not content.strip():
            return _Answer(problems=["(root): the answer is empty; return the digest as JSON"])
        digest, problems = parse_digest(content)
        return _Answer(digest=digest, content=content, problems=problems)

    def _no_answer(self, error: BaseException, attempts: Attempts) -> str:
        where = self.options.where
        if isinstance(error, openai.APITimeoutError):
            timeout = self.options.timeout
            return (
                f"no answer from {where} after {attempts.plural} (each timed out after "
                f"{timeout:g} s; raise DIGEST_LLM_TIMEOUT={timeout:g})"
            )
        return f"no answer from {where} after {attempts.plural} ({one_line(str(error))})"

    def _status_failure(
        self, error: openai.APIStatusError, attempts: Attempts, state: _Loop
    ) -> Exception:
        status = error.status_code
        detail = _error_detail(error)
        if status in (401, 403):
            return LLMConfigError(key_refused(status, detail))
        if status == 404:
            return LLMConfigError(
                f"model {self.options.model!r} not found (HTTP 404: {detail}); "
                "check DIGEST_MODEL and OPENAI_BASE_URL"
            )
        if _FORMAT_REJECTED.search(detail):
            return LLMConfigError(
                f"the LLM server rejects response_format {self.mode} (HTTP {status}: {detail}); "
                + (
                    "set DIGEST_LLM_MODE=auto or json_object"
                    if self.mode == "json_schema"
                    else "use a server with JSON mode"
                )
            )
        if _CONTEXT_EXCEEDED.search(detail):
            return state.fail(
                f"the request does not fit the server's context (HTTP {status}: {detail}); "
                f"lower DIGEST_TEXT_BUDGET (now {self.options.text_budget}), or set "
                "DIGEST_CONTEXT_TOKENS to the server's context size"
            )
        if attempts.stopped == "server-wait" and attempts.asked is not None:
            cap = self.policy.server_wait_cap
            if attempts.asked > cap:
                return state.fail(
                    f"rate limited (HTTP {status}): the server asks to wait "
                    f"{attempts.asked:.0f} s, more than DIGEST_RETRY_AFTER_CAP={cap:g} s"
                )
            return state.fail(
                f"rate limited (HTTP {status}): the server asks to wait {attempts.asked:.0f} s, "
                f"more than is left of DIGEST_LLM_RETRY_BUDGET="
                f"{self.policy.max_seconds:g} s"
            )
        if self.policy.is_transient(error):
            return state.fail(
                f"HTTP {status} from the LLM server after {attempts.plural}: {detail}"
            )
        return state.fail(f"the LLM server rejected the request (HTTP {status}): {detail}")


def chat_completion(body: object) -> dict[str, Any]:
    """``body`` if it is a chat completion with a message to read; else ``MalformedAnswer``."""
    problem = None
    if not isinstance(body, dict) or not body.get("choices"):
        problem = "no choices"
    else:
        choice = body["choices"][0]
        if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
            problem = "its first choice has no message"
    if problem is not None:
        raise MalformedAnswer(f"the server's answer is not a chat completion: {problem}")
    return cast("dict[str, Any]", body)


def prompt_tokens_of(messages: list[dict[str, str]]) -> int:
    """The estimated prompt tokens of a request's messages."""
    return sum(estimate_tokens(message["content"]) for message in messages)


def _json_mode_format() -> dict[str, Any]:
    # llama.cpp also constrains its output to response_format.schema, a key the SDK's type
    # for JSON mode does not name.
    return {"type": "json_object", "schema": Digest.model_json_schema()}


def parse_digest(content: str) -> tuple[Digest | None, list[str]]:
    """The digest in an answer, or the problems to send back.

    Lenient where weak models stumble and the fix is certain: raw line breaks and tabs inside
    JSON strings (JSON forbids them; the line checks then say that a line must be one line),
    and a Markdown code fence around the JSON."""
    text = content.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*\n(.*)\n```", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        return Digest.model_validate_json(text), []
    except ValidationError as error:
        if not any(item["type"] == "json_invalid" for item in error.errors()):
            return None, describe_validation_error(error)
        strict_error = error
    try:
        data = json.loads(text, strict=False)
    except ValueError:
        return None, describe_validation_error(strict_error)
    try:
        return Digest.model_validate(data), []
    except ValidationError as error:
        return None, describe_validation_error(error)


def _same_model(asked: str, answered: str) -> bool:
    """Whether the server answered with the model asked for: the same name, or a dated
    snapshot of it (gpt-4.1-mini → gpt-4.1-mini-2025-04-14), a tag (llama3.2:latest), or the
    same name under a provider's prefix (openai/gpt-4.1-mini)."""
    asked_name = asked.rsplit("/", 1)[-1].lower()
    answered_name = answered.rsplit("/", 1)[-1].lower()
    snapshot_or_tag = answered_name.startswith((f"{asked_name}-", f"{asked_name}:"))
    return answered_name == asked_name or snapshot_or_tag


def _rejected_parameter(error: openai.APIStatusError, sent: set[str]) -> str | None:
    """The parameter a 400 says the model does not take, if it is one we may do without.

    OpenAI names it in ``param`` ("Unsupported value: 'temperature' does not support 0.2 with
    this model"; "Unsupported parameter: 'max_tokens' is not supported with this model");
    other servers only in the message."""
    if error.status_code != 400:
        return None
    body = error.body if isinstance(error.body, dict) else {}
    detail = _error_detail(error)
    named = body.get("param")
    candidates = [named] if isinstance(named, str) else []
    candidates += re.findall(r"['\"`]?\b([a-z_]+)\b['\"`]?", detail)
    unsupported = re.search(
        r"unsupported|not supported|does not support|unrecognized|unknown|not allowed|"
        r"not permitted|extra inputs",
        detail,
        re.IGNORECASE,
    )
    if not unsupported:
        return None
    for name in candidates:
        if name in sent and (name in _DROPPABLE or name == "max_completion_tokens"):
            if name == "max_tokens" and "max_completion_tokens" not in sent:
                continue  # the only limit there is: never dropped
            return str(name)
    return None


def _error_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return one_line(body["message"])
    return one_line(error.message)
