"""The summarize stage: one paper's text to a validated Korean ``Digest`` through the LLM.

The request goes through ``chat.completions.parse`` with ``Digest`` as a strict
``json_schema``. Three kinds of trouble, each handled once and in one place:

- Transient (429, 5xx, connection errors, timeouts): retried by tenacity with exponential
  jitter, waiting what ``Retry-After`` asks up to ``retry_after_cap`` (the SDK gives up above
  120 s), within ``llm_max_attempts`` requests an answer and ``llm_retry_budget`` seconds a
  paper (re-asks included). The SDK's own retries
  are off so the two never multiply. 400, 401, 403 and 404 are never retried.
- An answer that fails validation (invalid JSON, English, polite style, counts): asked again
  with the answer and the validation messages, at most ``max_reasks`` times.
- An answer cut off by ``finish_reason=length``: asked once more with twice the token limit.
- A refusal or a content-filter stop: asked again (a summary of a published paper is rarely
  refused twice), counted against the same ``max_reasks``; then the paper fails with it.
- A number the paper does not state (see ``grounding``): sent back like a validation error;
  if it survives the re-asks, its line is dropped or the number removed, and noted.

Servers without strict ``json_schema`` (``llm_mode``): ``json_object`` asks for JSON mode and
puts the schema in the prompt (and in ``response_format.schema``, which llama.cpp enforces);
``auto`` starts with ``json_schema`` and, on a 400 that rejects the response format, switches
to ``json_object`` once for the rest of the run. Both go through the same validation.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import openai
from openai import AsyncOpenAI
from pydantic import BaseModel, ValidationError
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from digest.errors import LLMConfigError, UsageError
from digest.grounding import find_ungrounded, numbers_of_source, repair
from digest.models import CallUsage, Digest
from digest.net import retry_after
from digest.prompts import prompt_text, render_prompt
from digest.settings import Settings
from digest.validation import describe_validation_error

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PaperText(BaseModel):
    """What the LLM reads about one paper."""

    arxiv_id: str | None
    title: str
    authors: list[str]
    input: Literal["full-text", "abstract"]
    input_reason: str | None = None
    extractor: Literal["pypdf", "pypdfium2"] | None = None  # for full text: what read the PDF
    full_text_pending: bool = False  # the abstract only because the PDF host failed for now
    content: str


# "</paper>" as a model might read it: any case, blanks inside.
_PAPER_END = re.compile(r"<\s*/\s*paper\s*>", re.IGNORECASE)


class Usage(BaseModel):
    """Tokens of every answer of one paper, in total and per call."""

    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    calls: list[CallUsage] = []

    def add(self, usage: dict[str, Any] | None) -> CallUsage:
        usage = usage or {}
        details = usage.get("prompt_tokens_details") or {}
        call = CallUsage(
            tokens_in=int(usage.get("prompt_tokens") or 0),
            tokens_out=int(usage.get("completion_tokens") or 0),
            tokens_cached=int(details.get("cached_tokens") or 0),
        )
        self.tokens_in += call.tokens_in
        self.tokens_out += call.tokens_out
        self.tokens_cached += call.tokens_cached
        self.calls.append(call)
        return call

    def cost_usd(self, settings: Settings) -> float | None:
        """What these tokens cost at the model's prices; None when its prices are unknown."""
        price = settings.price_of(settings.model)
        if price is None:
            return None
        per_input, per_cached, per_output = price
        uncached = self.tokens_in - self.tokens_cached
        total = (
            uncached * per_input + self.tokens_cached * per_cached + self.tokens_out * per_output
        )
        return round(total / 1_000_000, 6)


class Summary(BaseModel):
    digest: Digest
    usage: Usage
    attempts: int
    seconds: float
    grounding_repairs: list[str] = []


class SummaryFailed(Exception):
    """The LLM gave no usable digest; the message says why."""


class _MalformedAnswer(Exception):
    """HTTP 200 whose body is not a chat completion (a proxy's error page, say)."""


_TRANSIENT = (
    openai.APIConnectionError,  # includes APITimeoutError
    openai.RateLimitError,
    openai.InternalServerError,
    openai.ConflictError,
    _MalformedAnswer,
)


def _is_request_timeout(error: BaseException) -> bool:
    """HTTP 408, which the SDK raises as a plain APIStatusError: the server timed out."""
    return isinstance(error, openai.APIStatusError) and error.status_code == 408


def _is_transient(error: BaseException) -> bool:
    """What the retrying below retries."""
    return isinstance(error, _TRANSIENT) or _is_request_timeout(error)


def retry_after_seconds(error: BaseException) -> float | None:
    """The wait a server asked for in ``retry-after-ms`` or ``Retry-After``, if any."""
    if not isinstance(error, openai.APIStatusError):
        return None
    return retry_after(error.response.headers)


def make_client(settings: Settings) -> AsyncOpenAI:
    """The OpenAI client, with the SDK's own retries off (tenacity does them)."""
    key = settings.api_key.get_secret_value() if settings.api_key else None
    if not key:
        if settings.base_url is None:
            raise UsageError(
                "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server "
                "that needs none"
            )
        key = "unused"  # local OpenAI-compatible servers accept any key
    return AsyncOpenAI(
        api_key=key, base_url=settings.base_url, timeout=settings.llm_timeout, max_retries=0
    )


@dataclass
class _Answer:
    digest: Digest | None = None
    content: str | None = None
    problems: list[str] = field(default_factory=list)
    cut_off: bool = False
    refused: str | None = None  # why the model or the server's filter gave no answer
    switched_mode: bool = False  # the server rejected json_schema; ask again in json_object


class Summarizer:
    def __init__(
        self, settings: Settings, client: AsyncOpenAI | None, sleep: Sleep = asyncio.sleep
    ) -> None:
        self.settings = settings
        self.client = client
        self.sleep = sleep
        self._backoff = wait_exponential_jitter(
            multiplier=settings.retry_backoff, jitter=settings.retry_backoff, max=60
        )
        self.mode: Literal["json_schema", "json_object"] = (
            "json_object" if settings.llm_mode == "json_object" else "json_schema"
        )

    def messages_for(self, paper: PaperText) -> list[dict[str, str]]:
        """System prompt, the worked example, then the paper: what the model is sent."""
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
        if self.mode == "json_object":
            schema = json.dumps(Digest.model_json_schema(), ensure_ascii=False)
            system += "\n" + render_prompt("json-mode", schema=schema)
        return [
            {"role": "system", "content": system},
            {"role": "user", "content": prompt_text("example-user.md")},
            {"role": "assistant", "content": prompt_text("example-assistant.json").strip()},
            {"role": "user", "content": user},
        ]

    async def summarize(self, paper: PaperText) -> Summary:
        started = time.monotonic()
        usage = Usage()
        grounded = numbers_of_source(f"{paper.title}\n{paper.content}")
        messages = self.messages_for(paper)
        max_tokens = self.settings.max_output_tokens
        requests = 0
        enlarged = False
        reasks = 0
        while True:
            elapsed = time.monotonic() - started
            if elapsed >= self.settings.llm_retry_budget:
                raise SummaryFailed(
                    f"gave up after {elapsed:.0f} s at the LLM, more than "
                    f"DIGEST_LLM_RETRY_BUDGET={self.settings.llm_retry_budget:g} s"
                )
            answer, request_count = await self._ask(messages, max_tokens, usage, started)
            requests += request_count
            if answer.switched_mode:
                messages = self.messages_for(paper)  # the json_object prompt carries the schema
                continue
            if answer.digest is not None:
                ungrounded = find_ungrounded(answer.digest, grounded)
                summary = Summary(
                    digest=answer.digest,
                    usage=usage,
                    attempts=requests,
                    seconds=round(time.monotonic() - started, 3),
                )
                if not ungrounded:
                    return summary
                if reasks == self.settings.max_reasks:
                    repaired, notes = repair(answer.digest, ungrounded)
                    if repaired is None:
                        problems = "; ".join(item.problem() for item in ungrounded)
                        raise SummaryFailed(
                            f"numbers the paper does not state survived {reasks + 1} answers "
                            f"and could not be taken out: {problems}"
                        )
                    log.warning("published without ungrounded numbers: %s", "; ".join(notes))
                    return summary.model_copy(
                        update={"digest": repaired, "grounding_repairs": notes}
                    )
                usage.calls[-1].outcome = "ungrounded"
                answer.problems = [item.problem() for item in ungrounded]
            if answer.cut_off:
                if enlarged:
                    raise SummaryFailed(
                        f"the answer was cut off at {max_tokens} output tokens even after one "
                        "retry with twice the limit (raise DIGEST_MAX_OUTPUT_TOKENS)"
                    )
                enlarged = True
                max_tokens *= 2
                continue
            if reasks == self.settings.max_reasks:
                if answer.refused:
                    raise SummaryFailed(f"{answer.refused} ({reasks + 1} times)")
                raise SummaryFailed(
                    f"the digest failed validation {reasks + 1} times; last problems: "
                    + "; ".join(answer.problems)
                )
            reasks += 1
            if answer.refused:
                log.info("asking again (%d): %s", reasks, answer.refused)
                continue  # the same question again; a refusal is no answer to correct
            log.info("re-asking (%d): %s", reasks, "; ".join(answer.problems))
            problems = "\n".join(f"- {problem}" for problem in answer.problems)
            messages = [
                *messages,
                {"role": "assistant", "content": answer.content or ""},
                {"role": "user", "content": render_prompt("reask", problems=problems)},
            ]

    async def _ask(
        self, messages: list[dict[str, str]], max_tokens: int, usage: Usage, started: float
    ) -> tuple[_Answer, int]:
        """One answer from the model, transient failures retried within the paper's time
        budget (counted from ``started``). Returns it and the requests it took."""
        requests = 0

        async def post() -> tuple[Any, dict[str, Any]]:
            nonlocal requests
            requests += 1
            return await self._post(messages, max_tokens)

        retrying = AsyncRetrying(
            retry=(retry_if_exception_type(_TRANSIENT) | retry_if_exception(_is_request_timeout))
            & retry_if_exception(self._wait_is_allowed),
            wait=self._wait,
            stop=stop_after_attempt(self.settings.llm_max_attempts) | self._out_of_time(started),
            sleep=self.sleep,
            before_sleep=self._log_retry,
            reraise=True,
        )
        mode = self.mode
        try:
            raw, body = await retrying(post)
        except openai.BadRequestError as error:
            if self._falls_back(error, mode):
                return _Answer(switched_mode=True), requests
            raise self._status_failure(error, requests) from None
        except openai.APIStatusError as error:
            raise self._status_failure(error, requests) from None
        except (openai.APIConnectionError, _MalformedAnswer) as error:
            where = self.settings.base_url or "the OpenAI API"
            raise SummaryFailed(
                f"no answer from {where} after {requests} attempts ({error})"
            ) from None
        call = usage.add(body.get("usage"))
        answer = self._read(raw, body) if mode == "json_schema" else self._read_json_object(body)
        call.outcome = (
            "ok" if answer.digest else "cut off" if answer.cut_off
            else "refused" if answer.refused else "invalid"
        )  # fmt: skip
        return answer, requests

    def _falls_back(self, error: openai.BadRequestError, mode: str) -> bool:
        """In auto mode, whether a 400 rejects json_schema; then switch to json_object (once)."""
        if self.settings.llm_mode != "auto" or mode != "json_schema":
            return False
        detail = _error_detail(error).lower()
        if not any(
            word in detail for word in ("response_format", "json_schema", "schema", "structured")
        ):
            return False
        if self.mode == "json_schema":
            self.mode = "json_object"
            log.warning(
                "the server rejected response_format json_schema (%s); using json_object "
                "with the schema in the prompt for the rest of this run",
                _error_detail(error),
            )
        return True

    async def _post(
        self, messages: list[dict[str, str]], max_tokens: int
    ) -> tuple[Any, dict[str, Any]]:
        options: dict[str, Any] = {}
        if self.settings.temperature is not None:
            options["temperature"] = self.settings.temperature
        if self.client is None:
            raise RuntimeError("this Summarizer only builds prompts: it has no client")
        if self.mode == "json_schema":
            raw = await self.client.chat.completions.with_raw_response.parse(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                response_format=Digest,
                max_completion_tokens=max_tokens,
                **options,
            )
        else:
            # Servers with JSON mode but no json_schema (llama.cpp, older vLLM, Ollama) know
            # max_tokens; llama.cpp also constrains its output to response_format.schema.
            raw = await self.client.chat.completions.with_raw_response.create(
                model=self.settings.model,
                messages=messages,  # type: ignore[arg-type]
                response_format={"type": "json_object", "schema": Digest.model_json_schema()},  # type: ignore[typeddict-unknown-key]
                max_tokens=max_tokens,
                **options,
            )
        try:
            body = raw.http_response.json()
            if not isinstance(body, dict) or not body.get("choices"):
                raise ValueError("no choices")
            choice = body["choices"][0]
            if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
                raise ValueError("its first choice has no message")
        except ValueError as error:
            raise _MalformedAnswer(
                f"the server's answer is not a chat completion: {error}"
            ) from None
        return raw, body

    def _read(self, raw: Any, body: dict[str, Any]) -> _Answer:
        content = (body["choices"][0].get("message") or {}).get("content")
        try:
            completion = raw.parse()
        except openai.LengthFinishReasonError:
            return _Answer(cut_off=True, content=content)
        except openai.ContentFilterFinishReasonError:
            return _Answer(refused="the answer was blocked by the server's content filter")
        except ValidationError as error:
            return _Answer(content=content, problems=describe_validation_error(error))
        message = completion.choices[0].message
        if message.refusal:
            return _Answer(refused=f"the model refused: {message.refusal}")
        if message.parsed is None:
            return _Answer(
                content=content, problems=["(root): the answer is empty; return the digest as JSON"]
            )
        return _Answer(digest=message.parsed, content=content)

    def _read_json_object(self, body: dict[str, Any]) -> _Answer:
        """Read a JSON-mode answer the way ``parse`` reads a json_schema one."""
        choice = body["choices"][0]
        message = choice.get("message") or {}
        content = message.get("content")
        if choice.get("finish_reason") == "length":
            return _Answer(cut_off=True, content=content)
        if choice.get("finish_reason") == "content_filter":
            return _Answer(refused="the answer was blocked by the server's content filter")
        if message.get("refusal"):
            return _Answer(refused=f"the model refused: {message['refusal']}")
        if not content:
            return _Answer(problems=["(root): the answer is empty; return the digest as JSON"])
        try:
            return _Answer(digest=Digest.model_validate_json(content), content=content)
        except ValidationError as error:
            return _Answer(content=content, problems=describe_validation_error(error))

    def _out_of_time(self, started: float) -> Callable[[RetryCallState], bool]:
        """Stop retrying when the next wait would take the paper past ``llm_retry_budget``."""

        def stop(state: RetryCallState) -> bool:
            after_wait = time.monotonic() - started + (state.upcoming_sleep or 0.0)
            return after_wait >= self.settings.llm_retry_budget

        return stop

    def _wait_is_allowed(self, error: BaseException) -> bool:
        wait = retry_after_seconds(error)
        return wait is None or wait <= self.settings.retry_after_cap

    def _wait(self, state: RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        asked = retry_after_seconds(error) if error else None
        return asked if asked is not None else self._backoff(state)

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0
        log.warning("LLM request failed (%s); retrying in %.1f s", type(error).__name__, wait)

    def _status_failure(self, error: openai.APIStatusError, requests: int) -> Exception:
        status = error.status_code
        detail = _error_detail(error)
        if status in (401, 403):
            return LLMConfigError(
                f"the LLM server refused the API key (HTTP {status}: {detail}); "
                "check OPENAI_API_KEY"
            )
        if status == 404:
            return LLMConfigError(
                f"model {self.settings.model!r} not found (HTTP 404: {detail}); "
                "check DIGEST_MODEL and OPENAI_BASE_URL"
            )
        asked = retry_after_seconds(error)
        if asked is not None and asked > self.settings.retry_after_cap:
            return SummaryFailed(
                f"rate limited (HTTP {status}): the server asks to wait {asked:.0f} s, more than "
                f"DIGEST_RETRY_AFTER_CAP={self.settings.retry_after_cap:g} s"
            )
        transient = _is_transient(error)
        if transient and asked is not None and requests < self.settings.llm_max_attempts:
            return SummaryFailed(
                f"rate limited (HTTP {status}): the server asks to wait {asked:.0f} s, more than "
                f"is left of DIGEST_LLM_RETRY_BUDGET={self.settings.llm_retry_budget:g} s"
            )
        if transient:
            return SummaryFailed(
                f"HTTP {status} from the LLM server after {requests} attempts: {detail}"
            )
        return SummaryFailed(f"the LLM server rejected the request (HTTP {status}): {detail}")


def _error_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return body["message"]
    return error.message
