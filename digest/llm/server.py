"""How an OpenAI-compatible Chat Completions server is spoken to: one object per run.

``LlmServer`` owns everything that depends on the server rather than on what is asked:

- the request body. ``body`` builds it and ``encode`` writes it, once: the interactive path
  posts those very bytes and the batch path writes them into its JSONL file, so the two are
  the same request by construction;
- the answer format: strict ``json_schema``, or ``json_object`` with the schema in the prompt
  (and in ``response_format.schema``, which llama.cpp enforces); ``auto`` switches to
  ``json_object`` once for the run when the server rejects the format (DeepSeek's 422,
  llama-cpp-python's 500, others' 400);
- parameters: a sampling or token parameter a model does not take (``temperature`` on a
  reasoning model, ``max_tokens`` where ``max_completion_tokens`` is wanted) is dropped, or the
  other one sent, once for the run; a reasoning model gets room to think on top of the
  answer's limit; with ``context_tokens`` the limit is fitted into the server's context;
- the SDK call: posted with the SDK's own retries off and retried by the shared policy
  (``digest.net``: connection errors, timeouts, 408, 409, 429, 5xx, an answer that is not a
  chat completion), bounded in all by ``llm_timeout``;
- reading what comes back: the usage, which model answered, and what an error status means
  (``classify``): a request to send another way, the run's configuration (a refused key, an
  unknown model, a format the server cannot give), or one request's failure.

The format, the parameters and the limits, which the server may teach the run, are kept by
its ``RequestForm``. What is asked, and what an answer must be, is the conversation's
(``digest.llm.conversation``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, replace
from typing import Any, cast

import httpx2
import openai
from openai import AsyncOpenAI
from openai.lib._parsing import type_to_response_format_param
from openai.types import CompletionUsage
from pydantic import BaseModel, ValidationError

from digest.errors import LLMConfigError, MalformedAnswer, TransientAnswer, UsageError
from digest.models import CallUsage
from digest.net import AsyncSleep, Attempts, describe, headers_of, one_line, server_wait, within
from digest.options import AnswerFormat, LlmOptions

log = logging.getLogger(__name__)

Messages = list[dict[str, str]]

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
# Line breaks to Unicode that JSON leaves raw inside strings: a JSONL reader that splits on
# every line break (Python's str.splitlines, for one) would cut a batch line in two there.
# JSON's own escapes say the same characters.
_RAW_BREAKS = str.maketrans({"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"})
# The key check's own bound: a server that does not answer this small request at once is
# left to the papers' requests, whose timeout and retries are made for waiting.
_KEY_CHECK_SECONDS = 15.0


class RequestChanged(Exception):
    """The server rejected a parameter or the response format; the request is to be built
    again (``LlmServer.body``) without it, and sent at once."""


@dataclass(frozen=True)
class Refusal:
    """What an error status means for one request that is not the run's configuration: the
    reason its conversation fails with."""

    reason: str


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


def key_refused(status: int, detail: str) -> str:
    """The one line that says the server refused the key, and what to do about it."""
    return f"the LLM server refused the API key (HTTP {status}: {detail}); check OPENAI_API_KEY"


def retry_after_seconds(error: BaseException) -> float | None:
    """The wait a server asked for (``retry-after-ms``, ``Retry-After``, ``RateLimit``)."""
    if not isinstance(error, openai.APIStatusError):
        return None
    return server_wait(headers_of(error))


class LlmServer:
    """One OpenAI-compatible server for one run. What it refused (the response format, a
    parameter) is remembered for the run, so that only the first request pays for it."""

    def __init__(
        self, options: LlmOptions, client: AsyncOpenAI | None, sleep: AsyncSleep = asyncio.sleep
    ) -> None:
        self.options = options
        self.client = client
        self.sleep = sleep
        self.policy = replace(options.retry, connection_errors=(openai.APIConnectionError,))
        self.form = RequestForm(options)
        self._warned_models: set[str] = set()

    @property
    def where(self) -> str:
        return self.options.where

    @property
    def mode(self) -> AnswerFormat:
        """The answer format in use (``auto`` may have fallen back to ``json_object``)."""
        return self.form.mode

    # -- The request --------------------------------------------------------------------

    def body(self, messages: Messages, limit: int, schema: type[BaseModel]) -> dict[str, Any]:
        """The request: ``messages`` answered as ``schema`` in the format now in use, with at
        most ``limit`` output tokens."""
        return self.form.body(messages, limit, schema)

    @staticmethod
    def encode(body: dict[str, Any]) -> bytes:
        """``body`` as the bytes that are posted, and written into a batch's file."""
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return text.translate(_RAW_BREAKS).encode("utf-8")

    def output_limit(self, answer_tokens: int) -> int:
        """The token limit sent: the answer's, and a reasoning model's thinking on top."""
        return self.form.output_limit(answer_tokens)

    def fitted_limit(self, prompt_tokens: int, answer_tokens: int) -> int | str:
        """The output limit of a request of ``prompt_tokens`` (see ``RequestForm``)."""
        return self.form.fitted_limit(prompt_tokens, answer_tokens)

    # -- Sending ------------------------------------------------------------------------

    async def send(
        self, body: dict[str, Any], *, attempts: Attempts, deadline: float
    ) -> dict[str, Any]:
        """The chat completion ``body`` is answered with, transient failures retried by the
        policy until ``deadline`` (a ``time.monotonic()``). A rejection of the request's form
        is not retried (``classify`` says what it means)."""
        data = self.encode(body)
        return await self.policy.call(
            lambda: self._post_within_timeout(data),
            attempts=attempts,
            sleep=self.sleep,
            deadline=deadline,
            retry_if=lambda error: not self.form.rejects(error),
        )

    async def _post_within_timeout(self, data: bytes) -> dict[str, Any]:
        """``_post`` bounded in all by ``llm_timeout``: the SDK's timeout measures the gaps
        between bytes, which a trickling server never lets run out."""
        try:
            return await asyncio.wait_for(self._post(data), self.options.timeout)
        except TimeoutError:
            url = f"{self.options.base_url or 'https://api.openai.com/v1'}/chat/completions"
            raise openai.APITimeoutError(request=httpx2.Request("POST", url)) from None

    async def _post(self, data: bytes) -> dict[str, Any]:
        if self.client is None:
            raise RuntimeError("this LlmServer only builds requests: it has no client")
        response = await self.client.post(
            "/chat/completions",
            cast_to=httpx2.Response,
            content=data,
            options={"headers": {"Content-Type": "application/json"}},
        )
        try:
            body = response.json()
        except ValueError as error:
            raise MalformedAnswer(
                f"the server's answer is not a chat completion: {error}"
            ) from None
        return chat_completion(body)

    async def check_key(self) -> bool:
        """Whether the server takes the API key, asked once before a run downloads or pays
        for anything: ``GET {base_url}/models``, which the OpenAI API, vLLM, Ollama and
        llama-server answer at no cost.

        True when it lists its models; ``LLMConfigError`` when it refuses the key (401, 403).
        False when the answer tells nothing, and the first paper's request is the check
        instead:

        - no such route (404, 405, any other refusal that is not about the key), or an HTML
          page where the list should be: a proxy or a server that does not have it;
        - a connection error, a timeout, 429 or 5xx. These do not stop the run: a server that
          is down or busy now may answer when the papers reach it, minutes later, and their
          requests have the backoff and ``Retry-After`` this one lacks. Stopping here would
          turn one bad moment into a lost night; if the server stays down, each paper says
          so, and its PDF waits in the cache for the next run.
        """
        if self.client is None:
            return False
        seconds = min(self.options.timeout, _KEY_CHECK_SECONDS)
        try:
            raw = await within(
                seconds,
                self.client.with_options(timeout=seconds).models.with_raw_response.list(),
                "the key check (GET /models)",
            )
        except openai.APIStatusError as error:
            if error.status_code in (401, 403):
                raise LLMConfigError(key_refused(error.status_code, error_detail(error))) from None
            log.debug("key check: HTTP %d from %s/models", error.status_code, self.where)
            return False
        except (openai.APIConnectionError, TransientAnswer) as error:
            log.debug("key check: %s", describe(error))
            return False
        try:
            listed = raw.http_response.json()
        except ValueError:
            return False
        return isinstance(listed, dict) and isinstance(listed.get("data"), list)

    # -- Reading what came back ---------------------------------------------------------

    def note_model(self, answered: object) -> str | None:
        """The model the server named in an answer, when it is not the one asked for
        (warned once a run); None when it is."""
        if not isinstance(answered, str) or not answered:
            return None
        if _same_model(self.options.model, answered):
            return None
        if answered not in self._warned_models:
            self._warned_models.add(answered)
            log.warning(
                "asked for model %r, but the server answered as %r; its provenance records it",
                self.options.model,
                answered,
            )
        return answered

    def prompt_cut(self, read: int, sent: int) -> str | None:
        """Why an answer whose server read ``read`` of about ``sent`` prompt tokens is of no
        use (the server cut the prompt), or None."""
        if sent < _CUT_PROMPT_MIN_TOKENS or not 0 < read < _CUT_PROMPT_SHARE * sent:
            return None
        return (
            f"the server read only {read} of about {sent} prompt tokens: it cut the prompt "
            "to fit its context, or its chat template dropped part of it (a template "
            "without a system role). Raise the server's context size "
            "(OLLAMA_CONTEXT_LENGTH for Ollama, --ctx-size for llama-server) and set "
            "DIGEST_CONTEXT_TOKENS to it, or lower DIGEST_TEXT_BUDGET "
            f"(now {self.options.text_budget}); or use a chat template that keeps "
            "system messages"
        )

    def is_transient(self, error: BaseException) -> bool:
        """The one rule of what another try may mend, for both paths."""
        return self.policy.is_transient(error)

    def classify(
        self, error: openai.APIStatusError, attempts: Attempts
    ) -> RequestChanged | LLMConfigError | Refusal:
        """What an error status means: the request can be sent another way (asked again at
        once), the run's configuration is wrong (it stops), or this request failed."""
        if self.form.change(error):
            return RequestChanged()
        status = error.status_code
        detail = error_detail(error)
        config = self._configuration_problem(status, detail)
        if config is not None:
            return config
        if _CONTEXT_EXCEEDED.search(detail):
            return Refusal(
                f"the request does not fit the server's context (HTTP {status}: {detail}); "
                f"lower DIGEST_TEXT_BUDGET (now {self.options.text_budget}), or set "
                "DIGEST_CONTEXT_TOKENS to the server's context size"
            )
        return Refusal(self._failure(error, attempts))

    def _configuration_problem(self, status: int, detail: str) -> LLMConfigError | None:
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
        return None

    def _failure(self, error: openai.APIStatusError, attempts: Attempts) -> str:
        status, detail = error.status_code, error_detail(error)
        if attempts.stopped == "server-wait" and attempts.asked is not None:
            cap = self.policy.server_wait_cap
            if attempts.asked > cap:
                return (
                    f"rate limited (HTTP {status}): the server asks to wait "
                    f"{attempts.asked:.0f} s, more than DIGEST_RETRY_AFTER_CAP={cap:g} s"
                )
            return (
                f"rate limited (HTTP {status}): the server asks to wait {attempts.asked:.0f} s, "
                f"more than is left of DIGEST_LLM_RETRY_BUDGET={self.policy.max_seconds:g} s"
            )
        if self.is_transient(error):
            return f"HTTP {status} from the LLM server after {attempts.plural}: {detail}"
        return f"the LLM server rejected the request (HTTP {status}): {detail}"

    def no_answer(self, error: BaseException, attempts: Attempts) -> str:
        """Why a request got no answer at all (connections, timeouts, malformed answers)."""
        if isinstance(error, openai.APITimeoutError):
            timeout = self.options.timeout
            return (
                f"no answer from {self.where} after {attempts.plural} (each timed out after "
                f"{timeout:g} s; raise DIGEST_LLM_TIMEOUT={timeout:g})"
            )
        return f"no answer from {self.where} after {attempts.plural} ({one_line(str(error))})"


class RequestForm:
    """The form of one run's requests, as the server has taught it: the answer format in use,
    the token parameter, and the parameters it does not take. What a server refused is learned
    from the first request it refused, and kept for the rest of the run."""

    def __init__(self, options: LlmOptions) -> None:
        self.options = options
        self.mode: AnswerFormat = "json_object" if options.mode == "json_object" else "json_schema"
        self.reasoning = bool(_REASONING_MODEL.search(options.model))
        self.dropped: set[str] = set()  # parameters the server rejected, not sent again
        self.token_parameter = "max_completion_tokens"

    def body(self, messages: Messages, limit: int, schema: type[BaseModel]) -> dict[str, Any]:
        """The request: ``messages`` answered as ``schema`` in the format now in use, with at
        most ``limit`` output tokens."""
        if self.mode == "json_schema":
            response_format = cast("dict[str, Any]", type_to_response_format_param(schema))
        else:
            # llama.cpp also constrains its output to response_format.schema, a key the SDK's
            # type for JSON mode does not name.
            response_format = {"type": "json_object", "schema": schema.model_json_schema()}
        return {
            "model": self.options.model,
            "messages": messages,
            "response_format": response_format,
            **self.parameters(limit),
        }

    def parameters(self, limit: int) -> dict[str, Any]:
        parameters: dict[str, Any] = {}
        if self.options.temperature is not None:
            parameters["temperature"] = self.options.temperature
        if self.reasoning and self.options.reasoning_effort is not None:
            parameters["reasoning_effort"] = self.options.reasoning_effort
        parameters[self.token_parameter] = limit
        if self.mode == "json_object" and self.token_parameter == "max_completion_tokens":
            # Servers with JSON mode but no json_schema (llama-cpp-python, older vLLM) know
            # only max_tokens; a model that rejects it has it dropped after the first 400.
            parameters["max_tokens"] = limit
        return {name: value for name, value in parameters.items() if name not in self.dropped}

    def output_limit(self, answer_tokens: int) -> int:
        """The token limit sent: the answer's, and a reasoning model's thinking on top."""
        if not self.reasoning:
            return answer_tokens
        return answer_tokens + _REASONING_ALLOWANCE[self.options.reasoning_effort]

    def fitted_limit(self, prompt_tokens: int, answer_tokens: int) -> int | str:
        """The output limit of a request of ``prompt_tokens``, within ``context_tokens`` when
        it is set; or why a request that leaves no room for an answer is not to be sent."""
        limit = self.output_limit(answer_tokens)
        context = self.options.context_tokens
        if context is None:
            return limit
        room = context - prompt_tokens
        if room < min(limit, self.options.max_output_tokens):
            return (
                f"the request (about {prompt_tokens} prompt tokens and {limit} for the answer) "
                f"does not fit DIGEST_CONTEXT_TOKENS={context}; lower DIGEST_TEXT_BUDGET (now "
                f"{self.options.text_budget}) or DIGEST_MAX_OUTPUT_TOKENS"
            )
        return min(limit, room)

    def rejects(self, error: BaseException) -> bool:
        """A rejection of the request's form: no retry mends it (see ``change``)."""
        if not isinstance(error, openai.APIStatusError) or error.status_code in (401, 403, 404):
            return False
        detail = error_detail(error)
        return (
            _rejected_parameter(error, self._sent_parameters()) is not None
            or bool(_FORMAT_REJECTED.search(detail))
            or bool(_CONTEXT_EXCEEDED.search(detail))
        )

    def _sent_parameters(self) -> set[str]:
        return set(self.parameters(1))

    def change(self, error: openai.APIStatusError) -> bool:
        """Whether the request can be sent another way: without a parameter the model does
        not take, or (``auto``) in json_object mode. Remembered for the rest of the run."""
        if error.status_code in (401, 403, 404):
            return False
        parameter = _rejected_parameter(error, self._sent_parameters())
        if parameter == "max_completion_tokens":
            self.token_parameter = "max_tokens"
            log.warning(
                "the server does not take max_completion_tokens (%s); sending max_tokens",
                error_detail(error),
            )
            return True
        if parameter is not None:
            self.dropped.add(parameter)
            log.warning(
                "the server does not take %s for model %s (%s); not sending it for the rest "
                "of this run",
                parameter,
                self.options.model,
                error_detail(error),
            )
            return True
        return self._fall_back_to_json_object(error)

    def _fall_back_to_json_object(self, error: openai.APIStatusError) -> bool:
        if not _FORMAT_REJECTED.search(error_detail(error)):
            return False
        if self.options.mode == "auto" and self.mode == "json_schema":
            self.mode = "json_object"
            log.warning(
                "the server rejected response_format json_schema (HTTP %d: %s); using "
                "json_object with the schema in the prompt for the rest of this run",
                error.status_code,
                error_detail(error),
            )
            return True
        return False


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


def status_error(status: object, body: object) -> openai.APIStatusError:
    """An error status that came some other way than an HTTP answer (a batch's error line),
    as the SDK raises it for an interactive request, so that ``classify`` reads both."""
    code = status if isinstance(status, int) else 500
    error = body.get("error", body) if isinstance(body, dict) else body
    message = error.get("message") if isinstance(error, dict) else None
    request = httpx2.Request("POST", "https://batch/v1/chat/completions")
    response = httpx2.Response(code, request=request)
    return openai.APIStatusError(str(message or f"HTTP {code}"), response=response, body=error)


def error_detail(error: openai.APIStatusError) -> str:
    body = error.body
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return one_line(body["message"])
    return one_line(error.message)


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
    detail = error_detail(error)
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
