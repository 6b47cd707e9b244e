"""The LLM stage on its own: Retry-After beyond the SDK's 120 s, and the bounds on retrying."""

from __future__ import annotations

import asyncio
import email.utils
import time

import httpx2
import openai
import pytest

from digest.errors import SummaryFailed
from digest.llm.server import make_client, retry_after_seconds
from digest.llm.summarize import PaperText, Summarizer
from digest.settings import load_settings
from tests.helpers import answer_json, good, make_digest
from tests.standins import StandIn, completion, error_reply

PAPER = PaperText(
    arxiv_id="2512.13604",
    title="T",
    authors=["A"],
    input="abstract",
    content="We study how small language models summarize long scientific documents.",
)


def summarize(slept: list[float], **settings: object) -> object:
    config = load_settings(**settings).llm_options()

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> object:
        client = make_client(config)
        try:
            return await Summarizer(config, client, sleep=fake_sleep).summarize(PAPER)
        finally:
            await client.close()

    return asyncio.run(run())


def test_retry_after_over_120_seconds_is_honoured_up_to_the_cap(standin: StandIn) -> None:
    standin.llm_script = [error_reply(429, "slow down", {"retry-after": "200"})]
    standin.llm_default = good
    slept: list[float] = []
    summary = summarize(slept, retry_after_cap=600)
    assert slept == [200.0]  # the SDK alone would have given up on a wait over 120 s
    assert summary.attempts == 2  # type: ignore[attr-defined]


def test_a_retry_after_of_exactly_the_cap_is_honoured(standin: StandIn) -> None:
    standin.llm_script = [error_reply(429, "slow down", {"retry-after": "600"})]
    standin.llm_default = good
    slept: list[float] = []
    summarize(slept)  # the defaults: a 600 s cap within a 900 s budget
    assert slept == [600.0]


def test_a_retry_after_past_the_paper_budget_fails_at_once_saying_so(standin: StandIn) -> None:
    standin.llm_default = lambda request: error_reply(429, "slow down", {"retry-after": "200"})
    slept: list[float] = []
    with pytest.raises(SummaryFailed) as raised:
        summarize(slept, llm_retry_budget=100)
    assert str(raised.value) == (
        "rate limited (HTTP 429): the server asks to wait 200 s, more than is left of "
        "DIGEST_LLM_RETRY_BUDGET=100 s"
    )
    assert slept == [] and len(standin.llm_requests) == 1


def test_the_budget_bounds_a_paper_across_its_reasks(standin: StandIn) -> None:
    def slow_english(request: dict[str, object]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.4)
        english = make_digest().model_dump() | {"conclusion": ["This is an English sentence."]}
        return completion(answer_json(english))

    standin.llm_default = slow_english
    with pytest.raises(SummaryFailed, match=r"^gave up after \d+ s at the LLM, more than "):
        summarize([], llm_retry_budget=0.3)
    assert len(standin.llm_requests) == 1  # no re-ask started after the budget was spent


def test_retry_after_over_the_cap_fails_at_once(standin: StandIn) -> None:
    standin.llm_default = lambda request: error_reply(429, "slow down", {"retry-after": "900"})
    slept: list[float] = []
    with pytest.raises(SummaryFailed) as raised:
        summarize(slept, retry_after_cap=600)
    assert str(raised.value) == (
        "rate limited (HTTP 429): the server asks to wait 900 s, more than DIGEST_RETRY_AFTER_CAP=600 s"
    )
    assert slept == [] and len(standin.llm_requests) == 1


def test_backoff_grows_and_attempts_are_bounded(standin: StandIn) -> None:
    standin.llm_default = lambda request: error_reply(503, "busy")
    slept: list[float] = []
    with pytest.raises(SummaryFailed, match="after 5 attempts"):
        summarize(slept, llm_max_attempts=5, retry_backoff=1.0)
    assert len(standin.llm_requests) == 5 and len(slept) == 4
    assert all(low <= wait <= low + 1 for low, wait in zip([1, 2, 4, 8], slept, strict=True))


def test_the_total_retry_time_is_bounded(standin: StandIn) -> None:
    standin.llm_default = lambda request: error_reply(500, "down")

    async def real_sleep(seconds: float) -> None:
        await asyncio.sleep(seconds)

    config = load_settings(
        llm_max_attempts=50, llm_retry_budget=0.6, retry_backoff=0.2
    ).llm_options()

    async def run() -> None:
        client = make_client(config)
        try:
            await Summarizer(config, client, sleep=real_sleep).summarize(PAPER)
        finally:
            await client.close()

    started = time.monotonic()
    with pytest.raises(SummaryFailed, match="HTTP 500"):
        asyncio.run(run())
    assert time.monotonic() - started < 3
    assert 2 <= len(standin.llm_requests) < 10


def _error(headers: dict[str, str]) -> openai.RateLimitError:
    request = httpx2.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return openai.RateLimitError(
        "x", response=httpx2.Response(429, headers=headers, request=request), body=None
    )


def test_retry_after_header_forms() -> None:
    assert retry_after_seconds(_error({"retry-after": "7"})) == 7.0
    assert retry_after_seconds(_error({"retry-after": "1.5"})) == 1.5
    assert retry_after_seconds(_error({"retry-after-ms": "250"})) == 0.25
    later = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 28 <= retry_after_seconds(_error({"retry-after": later})) <= 31  # type: ignore[operator]
    assert retry_after_seconds(_error({"retry-after": "soon"})) is None
    assert retry_after_seconds(_error({})) is None
    assert retry_after_seconds(ValueError("not an HTTP error")) is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            {"prompt_tokens": 900, "completion_tokens": 300, "total_tokens": 1200},
            (900, 300, 0, 0),
        ),
        # llama.cpp and others leave out total_tokens; some send null for what they do not count.
        ({"prompt_tokens": 900, "completion_tokens": 300}, (900, 300, 0, 0)),
        (
            {
                "prompt_tokens": 900,
                "completion_tokens": 300,
                "prompt_tokens_details": {"cached_tokens": 512},
                "completion_tokens_details": {"reasoning_tokens": 200},
            },
            (900, 300, 512, 200),
        ),
        (
            {"prompt_tokens": 900, "completion_tokens": None, "prompt_tokens_details": None},
            (900, 0, 0, 0),
        ),
        ({"prompt_tokens": "many"}, (0, 0, 0, 0)),
        (None, (0, 0, 0, 0)),
        ("900", (0, 0, 0, 0)),
    ],
    ids=["openai", "no-total", "details", "nulls", "garbage", "none", "string"],
)
def test_usage_is_read_through_the_typed_model_and_never_fails_an_answer(
    raw: object, expected: tuple[int, int, int, int]
) -> None:
    from digest.llm.server import call_usage

    call = call_usage(raw)
    assert (call.tokens_in, call.tokens_out, call.tokens_cached, call.tokens_reasoning) == expected


def _strings_held(root: object, skip: set[int]) -> list[str]:
    """Every string reachable from ``root`` through its attributes and containers, except
    through the objects in ``skip``."""
    found: list[str] = []
    seen: set[int] = set(skip)
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            stack.extend(item)
        elif hasattr(item, "__dict__"):
            stack.extend(vars(item).values())
    return found


def test_a_detached_conversation_keeps_no_copy_of_its_papers_text() -> None:
    # A batch holds thousands of conversations while their requests are out, with their
    # texts on disk: the request a conversation made is kept as its size and limit alone.
    # (It kept its messages once: 319 MB for a year of papers where 153 MB had been.)
    from digest.llm.server import LlmServer
    from digest.llm.summarize import DigestConversation

    text = "Abstract. " + "A sentence found in this paper alone. " * 200
    paper = PAPER.model_copy(update={"content": text})
    server = LlmServer(load_settings().llm_options(), None)
    conversation = DigestConversation(server, paper)
    request = conversation.next_request()
    assert any(text in message["content"] for message in request.messages)
    conversation.detach()
    del request
    held = _strings_held(conversation, skip={id(server)})
    assert not [string for string in held if "found in this paper alone" in string]
