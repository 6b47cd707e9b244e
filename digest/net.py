"""The one retry policy every HTTP caller shares: Hugging Face, the arXiv API, the PDF host and
the LLM server.

What is worth another try is the same for all of them: a dropped or refused connection, a
timeout, HTTP 408, 409, 429 and 5xx, or an answer that is not what the service sends (an HTML
error page with status 200). A 409 is a conflict the server says will pass (OpenAI's own
client retries it, and a Batch API error line may carry one). Any other 4xx never is: the
same request gets the same answer. How long to wait is the same too:

1. what the server asked for: ``Retry-After`` (seconds or an HTTP date), ``retry-after-ms``
   (OpenAI), or the IETF ``RateLimit`` header's reset (``"api";r=0;t=55``, as Hugging Face
   sends) or ``RateLimit-Reset`` (an earlier draft), up to a cap;
2. for a 429 that names no wait, the caller's ``bare_429_wait`` when it has one (the arXiv
   API's limit is counted per 3-second window and its blocks outlast a quick retry);
3. otherwise exponential backoff with jitter.

Each caller gets its own ``RetryPolicy`` (attempts, total seconds, the cap), made from the
settings in one place (``Settings.llm_retry_policy`` and its siblings), so the four never
drift apart; the LLM's interactive and batch paths share one (``digest.llm.server``).
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    wait_exponential_jitter,
)

from digest.errors import TransientAnswer

log = logging.getLogger(__name__)

T = TypeVar("T")
AsyncSleep = Callable[[float], Awaitable[None]]
SyncSleep = Callable[[float], None]

TRANSIENT_STATUSES = frozenset({408, 409, 429})  # and every 5xx


class DeadlineExceeded(TransientAnswer):
    """A request that took longer than its deadline in all. The clients' own timeouts measure
    the gap between two bytes, so a server that trickles one byte a second holds them for
    ever; this bounds the whole request, however steadily its bytes come."""


async def within(seconds: float, request: Awaitable[T], what: str) -> T:
    """``request``, cancelled (its connection closed) once it has taken ``seconds``."""
    try:
        return await asyncio.wait_for(request, seconds)
    except TimeoutError:
        raise DeadlineExceeded(f"{what} took longer than {seconds:g} s in all") from None


def status_of(error: BaseException) -> int | None:
    """The HTTP status an error carries, whichever client raised it."""
    for name in ("status_code", "status"):  # openai's APIStatusError, arxiv's HTTPError
        value = getattr(error, name, None)
        if isinstance(value, int):
            return value
    response = getattr(error, "response", None)  # httpx2 and requests
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def headers_of(error: BaseException) -> Mapping[str, str]:
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    return headers if headers is not None else {}


_RATELIMIT_RESET = re.compile(r"(?:^|;)\s*t\s*=\s*(\d+(?:\.\d+)?)")


def server_wait(headers: Mapping[str, str]) -> float | None:
    """Seconds the server asked us to wait, if it said.

    ``retry-after-ms`` (OpenAI), ``Retry-After`` as seconds or an HTTP date (RFC 9110), the IETF
    ``RateLimit`` field's ``t`` parameter (draft-ietf-httpapi-ratelimit-headers, as Hugging Face
    sends: ``"api";r=0;t=55``), or ``RateLimit-Reset`` in seconds (the draft's earlier form).
    """
    try:
        if "retry-after-ms" in headers:
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
        if "retry-after" in headers:
            value = headers["retry-after"].strip()
            if re.fullmatch(r"\d+(?:\.\d+)?", value):
                return float(value)
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        if "ratelimit" in headers:
            # Several policies may be listed; the one that is exhausted resets last.
            resets = [float(m) for m in _RATELIMIT_RESET.findall(headers["ratelimit"])]
            if resets:
                return max(resets)
        if "ratelimit-reset" in headers:
            return max(0.0, float(headers["ratelimit-reset"].strip()))
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return None


def is_transient_status(status: int | None) -> bool:
    return status is not None and (status in TRANSIENT_STATUSES or status >= 500)


@dataclass
class Attempts:
    """What one call through a policy did: how many requests, and why it stopped retrying."""

    count: int = 0
    # attempts: the policy's attempts ran out; time: its total time would pass; server-wait:
    # the server asked for a wait longer than the cap (or than the time left).
    stopped: Literal["attempts", "time", "server-wait"] | None = None
    asked: float | None = None  # the wait the server asked for, when that stopped us

    @property
    def plural(self) -> str:
        return f"{self.count} attempt{'' if self.count == 1 else 's'}"


@dataclass(frozen=True)
class RetryPolicy:
    """How one caller retries. Every field is a bound: attempts, total seconds, the longest
    wait a server may ask for.

    ``connection_errors`` are the caller's client's exceptions for a connection that failed or
    timed out (httpx2's, requests', openai's); with ``TransientAnswer`` and the transient
    statuses they are all that is retried.
    """

    name: str  # what is being called, for messages: "the arXiv API"
    max_attempts: int
    max_seconds: float  # from the first request to the start of the last retry
    backoff: float  # the first wait of the exponential backoff; it doubles up to backoff_max
    server_wait_cap: float  # the longest Retry-After or RateLimit wait honoured
    backoff_max: float = 60.0
    bare_429_wait: float | None = None
    connection_errors: tuple[type[BaseException], ...] = ()

    def is_transient(self, error: BaseException) -> bool:
        if isinstance(error, (TransientAnswer, *self.connection_errors)):
            return True
        return is_transient_status(status_of(error))

    def wait_asked(self, error: BaseException) -> float | None:
        """The wait for this error that the server (or, for a bare 429, the policy) sets."""
        asked = server_wait(headers_of(error))
        if asked is None and status_of(error) == 429:
            return self.bare_429_wait
        return asked

    def _retrying_args(
        self, attempts: Attempts, deadline: float | None, retry_if: Callable[[BaseException], bool]
    ) -> dict[str, Any]:
        started = time.monotonic()
        end = started + self.max_seconds
        if deadline is not None:
            end = min(end, deadline)
        backoff = wait_exponential_jitter(
            multiplier=self.backoff, jitter=self.backoff, max=self.backoff_max
        )

        def worth_retrying(error: BaseException) -> bool:
            if not (retry_if(error) and self.is_transient(error)):
                return False
            asked = self.wait_asked(error)
            if asked is not None and (
                asked > self.server_wait_cap or time.monotonic() + asked > end
            ):
                attempts.stopped, attempts.asked = "server-wait", asked
                return False
            return True

        def wait(state: RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome else None
            asked = self.wait_asked(error) if error else None
            return asked if asked is not None else float(backoff(state))

        def stop(state: RetryCallState) -> bool:
            if state.attempt_number >= self.max_attempts:
                attempts.stopped = "attempts"
                return True
            if time.monotonic() + (state.upcoming_sleep or 0.0) > end:
                attempts.stopped = "time"
                return True
            return False

        def before_sleep(state: RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            seconds = state.next_action.sleep if state.next_action else 0.0
            log.warning(
                "%s: %s; retrying in %.1f s (attempt %d of %d)",
                self.name,
                describe(error),
                seconds,
                state.attempt_number + 1,
                self.max_attempts,
            )

        return {
            "retry": retry_if_exception(worth_retrying),
            "wait": wait,
            "stop": stop,
            "before_sleep": before_sleep,
            "reraise": True,
        }

    async def call(
        self,
        function: Callable[[], Awaitable[T]],
        *,
        attempts: Attempts | None = None,
        sleep: AsyncSleep = asyncio.sleep,
        deadline: float | None = None,
        retry_if: Callable[[BaseException], bool] = lambda error: True,
    ) -> T:
        """``function()`` until it succeeds or the policy gives up; then its last error is
        raised as it is, and ``attempts`` tells how many requests were made and why it
        stopped. ``deadline`` (``time.monotonic()``) can end it sooner than ``max_seconds``;
        ``retry_if`` can keep the caller's own errors from being retried."""
        record = attempts if attempts is not None else Attempts()

        async def counted() -> T:
            record.count += 1
            return await function()

        retrying = AsyncRetrying(sleep=sleep, **self._retrying_args(record, deadline, retry_if))
        return await retrying(counted)

    def call_sync(
        self,
        function: Callable[[], T],
        *,
        attempts: Attempts | None = None,
        sleep: SyncSleep = time.sleep,
    ) -> T:
        """``call`` for blocking clients (the ``arxiv`` package runs in a thread)."""
        record = attempts if attempts is not None else Attempts()

        def counted() -> T:
            record.count += 1
            return function()

        retrying = Retrying(sleep=sleep, **self._retrying_args(record, None, lambda error: True))
        return retrying(counted)


def describe(error: BaseException | None) -> str:
    """An error as one short line: ``HTTP 429``, ``ReadTimeout``, or the answer's problem."""
    if error is None:
        return "no error"
    status = status_of(error)
    if status is not None:
        return f"HTTP {status}"
    if isinstance(error, TransientAnswer):
        return str(error)
    return type(error).__name__


def one_line(text: str, limit: int = 300) -> str:
    """A server's message as one line: its blanks and line breaks collapsed, long ones cut."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
