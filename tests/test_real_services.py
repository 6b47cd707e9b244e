"""The services as they really behave, over real sockets: arXiv's bare 429s and malformed
entries, Hugging Face's UTC days and RateLimit header, the PDF host's blocks and redirects, and
LLM servers that reject json_schema, reasoning models, cut prompts and small models' answers."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from digest.errors import UsageError
from digest.llm.conversation import repeats_itself
from digest.llm.summarize import parse_digest
from digest.settings import load_settings
from digest.sources.fetch import _DownloadRate
from digest.sources.papers import hf_daily_papers
from tests.conftest import PDF_ABSTRACT, PDFS
from tests.helpers import (
    DIGEST_JSON,
    FakeClock,
    answer_json,
    digest,
    good,
    good_json,
    make_digest,
)
from tests.standins import (
    ARXIV_429,
    HTML_PAGE,
    LLAMA_CPP_PYTHON_500,
    ArxivPaper,
    StandIn,
    completion,
    cuts_prompt,
    error_reply,
    hf_item,
    like_deepseek,
    like_llama_cpp_python,
    reasoning_model,
    small_context,
)
from tests.test_pipeline import PAPER, add_paper

DATE = "2025-12-16"
DAY_FILE = Path(f"outputs/data/{DATE}.json")
PDF = (PDFS / "0908.0054v1.pdf").read_bytes()


def hf_day(standin: StandIn, count: int, *, versioned_pdfs: bool = True) -> list[ArxivPaper]:
    """A Hugging Face day of ``count`` papers that arXiv knows, PDFs served with and without
    a version (a PDF asked for without one is the latest)."""
    papers = [
        ArxivPaper(
            f"2512.{10000 + n}", 2, f"Paper number {n}", ["Kim"], f"Abstract {n}. {PDF_ABSTRACT}"
        )
        for n in range(1, count + 1)
    ]
    for item in papers:
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v2"] = PDF
        if not versioned_pdfs:
            standin.pdfs[item.arxiv_id] = PDF
    standin.hf_days[DATE] = [hf_item(item, 10 - n) for n, item in enumerate(papers)]
    standin.llm_default = good
    return papers


def day_entries() -> list[dict[str, Any]]:
    return json.loads(DAY_FILE.read_text(encoding="utf-8"))["papers"]


def gaps(times: list[float]) -> list[float]:
    return [later - earlier for earlier, later in itertools.pairwise(times)]


# --- the arXiv API ------------------------------------------------------------------------


def test_a_429_storm_with_and_without_retry_after_digests_every_paper_of_the_day(
    standin: StandIn, fake_time: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_day(standin, 3)
    monkeypatch.setenv("DIGEST_ARXIV_RATE_LIMIT_WAIT", "0.6")
    standin.faults = {
        "arxiv": [(429, {"retry-after": "1"}, b"Rate exceeded."), ARXIV_429, ARXIV_429]
    }
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err
    assert [entry["version"] for entry in day_entries()] == [2, 2, 2]  # arXiv answered in time
    waits = gaps(standin.arxiv_times)
    assert len(waits) == 3
    assert waits[0] >= 1.0  # Retry-After: 1
    assert waits[1] >= 0.6 and waits[2] >= 0.6  # a bare 429: arxiv_rate_limit_wait
    assert "the arXiv API: HTTP 429; retrying in 1.0 s (attempt 2 of 4)" in err


def test_the_arxiv_api_down_all_night_still_digests_an_hf_day_without_versions(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_day(standin, 2, versioned_pdfs=False)
    monkeypatch.setenv("DIGEST_HTTP_MAX_ATTEMPTS", "2")
    standin.faults = {"arxiv": [ARXIV_429] * 10}
    monkeypatch.setenv("DIGEST_ARXIV_RATE_LIMIT_WAIT", "0.1")
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err
    entries = day_entries()
    assert [(e["arxiv_id"], e["version"]) for e in entries] == [
        ("2512.10001", None),
        ("2512.10002", None),
    ]
    # Title, abstract and authors came from Hugging Face; the PDF without a version pin.
    assert [e["title"] for e in entries] == ["Paper number 1", "Paper number 2"]
    assert all(e["provenance"]["input"] == "full-text" for e in entries)
    assert sorted(standin.pdf_requests) == ["2512.10001", "2512.10002"]
    assert len(standin.arxiv_requests) == 2
    assert "digested without a version pin" in err


def test_an_html_page_with_status_200_is_retried(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.faults = {"arxiv": [HTML_PAGE]}
    code, _out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert len(standin.arxiv_requests) == 2
    assert "not an Atom feed" in err  # the retry's warning names what came back


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"entry_id": "http://arxiv.org/abs/2512.10001"}, "has no version in its <id>"),
        (
            {"entry_id": "urn:uuid:0b0e2e8c-2d5b-4c6e-8f59-2c9d3e6b1a11"},
            "which had a malformed entry: its <id> is not an arXiv abstract URL",
        ),
        ({"published": "yesterday"}, "has a malformed <published> date ('yesterday')"),
        ({"title": ""}, "its metadata has no title"),
        ({"abstract": ""}, "its metadata has no abstract"),
    ],
)
def test_a_malformed_atom_entry_fails_only_its_own_paper_before_any_llm_call(
    standin: StandIn, change: dict[str, str], reason: str
) -> None:
    good_paper = ArxivPaper("2512.10002", 1, "Fine paper", ["Lee"], "A fine abstract.")
    bad_paper = ArxivPaper("2512.10001", 1, "Broken entry", ["Kim"], "Its abstract.")
    for key, value in change.items():
        setattr(bad_paper, key, value)
    for item in (bad_paper, good_paper):
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v1"] = PDF
    standin.llm_default = good
    ids = "2512.10001,2512.10002"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 1
    assert [e["arxiv_id"] for e in day_entries()] == ["2512.10002"]
    assert "failed: 2512.10001: " in err and reason in err
    assert len(standin.llm_requests) == 1  # only the good paper was sent to the LLM


def test_an_id_arxiv_rejects_fails_alone_and_the_query_goes_again_without_it(
    standin: StandIn,
) -> None:
    add_paper(standin)
    standin.llm_default = good
    # 2513.00001 has the shape of an ID, but there is no 13th month: arXiv answers 400 with
    # an Atom error entry for the whole query.
    ids = "0908.0054,2513.00001"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 1
    assert "2513.00001: arXiv rejects the ID: incorrect id format for 2513.00001" in err
    assert [e["arxiv_id"] for e in day_entries()] == ["0908.0054"]
    assert [r["id_list"] for r in standin.arxiv_requests] == [[ids], ["0908.0054"]]


# --- the PDF host -------------------------------------------------------------------------


def test_a_pdf_429_waits_as_asked_then_downloads(standin: StandIn, fake_time: FakeClock) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.faults = {"pdf": [(429, {"retry-after": "1"}, b"slow down")]}
    started = fake_time.now()
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert fake_time.now() - started >= 1.0
    assert json.loads(out)["provenance"]["input"] == "full-text"
    assert standin.pdf_requests == ["0908.0054v1", "0908.0054v1"]


def test_a_pdf_403_is_a_block_kept_for_the_next_run(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.faults = {"pdf": [403]}
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract" and provenance["full_text_pending"] is True
    assert provenance["input_reason"].startswith("arXiv refused the download (blocked?): HTTP 403")
    assert len(standin.pdf_requests) == 1  # not retried at once: a block lasts


@pytest.mark.parametrize(
    "location",
    [
        "file:///etc/passwd",
        "https://evil.example/paper.pdf",
        "http://127.0.0.2:9/paper.pdf",  # another host, and not https
    ],
)
def test_a_pdf_redirect_off_the_allowlist_is_not_followed(standin: StandIn, location: str) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.pdf_replies = [(302, {"location": location}, b"")]
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract" and provenance["full_text_pending"] is False
    assert f"redirected to {location}" in provenance["input_reason"]
    assert "DIGEST_PDF_REDIRECT_HOSTS" in provenance["input_reason"]
    assert len(standin.pdf_requests) == 1  # neither retried nor followed


def test_a_pdf_redirect_on_the_same_host_is_followed(standin: StandIn) -> None:
    add_paper(standin)
    standin.pdfs["moved"] = PDF
    standin.llm_default = good
    standin.pdf_replies = [(301, {"location": "/pdf/moved"}, b"")]
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["input"] == "full-text"
    assert standin.pdf_requests == ["0908.0054v1", "moved"]


@pytest.mark.slow  # real seconds between downloads
def test_downloads_are_started_at_the_configured_rate(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    hf_day(standin, 3)
    monkeypatch.setenv("DIGEST_DOWNLOAD_RATE", "2")  # one every 0.5 s
    started: list[float] = []
    original = standin.answer

    def timed(method: str, path: str, body: bytes, headers: dict[str, str]) -> Any:
        if path.startswith("/pdf/"):
            started.append(time.monotonic())
        return original(method, path, body, headers)

    monkeypatch.setattr(standin, "answer", timed)
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err
    assert len(started) == 3 and all(gap >= 0.45 for gap in gaps(sorted(started)))


def test_download_starts_are_spread_evenly_and_only_when_they_come_too_fast() -> None:
    clock = FakeClock()
    rate = _DownloadRate(2.0, clock.async_sleep, clock.now)  # one every 0.5 s
    started: list[float] = []

    async def download() -> None:
        await rate.wait()
        started.append(clock.now())

    async def downloads(count: int) -> None:
        await asyncio.gather(*(download() for _ in range(count)))

    first = clock.now()
    asyncio.run(downloads(4))
    assert [moment - first for moment in started] == [0.0, 0.5, 1.0, 1.5]
    assert clock.slept == [0.5, 1.0, 1.5]
    clock.sleep(10)  # a quiet while: the next download need not wait
    asyncio.run(downloads(1))
    assert clock.slept == [0.5, 1.0, 1.5, 10]


def test_the_default_pdf_host_is_export_arxiv_org() -> None:
    assert load_settings().arxiv_pdf_url == "https://export.arxiv.org/pdf/{id}"


# --- Hugging Face -------------------------------------------------------------------------


def hf(standin: StandIn, date: dt.date, slept: list[float]) -> object:
    settings = load_settings()

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    async def run() -> object:
        async with httpx2.AsyncClient(timeout=5) as http:
            return await hf_daily_papers(settings.hf_options(), http, date, sleep)

    return asyncio.run(run())


def test_a_day_that_has_not_begun_in_utc_is_one_line_naming_the_fix(standin: StandIn) -> None:
    tomorrow = dt.datetime.now(dt.UTC).date() + dt.timedelta(days=1)
    with pytest.raises(UsageError) as raised:
        hf(standin, tomorrow, [])
    message = str(raised.value)
    assert message.startswith(f"Hugging Face has no Daily Papers list for {tomorrow} yet")
    assert "UTC days" in message and "use --date yesterday" in message
    assert len(standin.hf_requests) == 1  # a 400: not retried


def test_a_ratelimit_429_waits_for_its_reset(standin: StandIn) -> None:
    papers = hf_day(standin, 1)
    standin.hf_replies = [
        error_reply(429, "rate limited", {"ratelimit": '"api";r=0;t=55'}),
        error_reply(429, "rate limited", {"ratelimit-reset": "7"}),
    ]
    slept: list[float] = []
    found = hf(standin, dt.date(2025, 12, 16), slept)
    assert slept == [55.0, 7.0]
    assert [c.ref.arxiv_id for c in found] == [papers[0].arxiv_id]  # type: ignore[attr-defined]


def test_a_withdrawn_paper_is_skipped_and_listed(standin: StandIn) -> None:
    papers = hf_day(standin, 3)
    standin.hf_days[DATE][1]["paper"]["withdrawnAt"] = "2025-12-16T09:00:00.000Z"
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert [e["arxiv_id"] for e in day_entries()] == [papers[0].arxiv_id, papers[2].arxiv_id]
    assert f"{papers[1].arxiv_id}: skipped (withdrawn)" in err
    assert papers[1].arxiv_id not in standin.arxiv_requests[0]["id_list"][0]


def test_hf_metadata_is_what_the_llm_reads(standin: StandIn) -> None:
    papers = hf_day(standin, 1)
    item = standin.hf_days[DATE][0]["paper"]
    item["title"] = "The title as Hugging Face has it"
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err
    (entry,) = day_entries()
    assert entry["title"] == "The title as Hugging Face has it" and entry["version"] == 2
    assert "The title as Hugging Face has it" in standin.llm_requests[0]["messages"][3]["content"]
    assert papers[0].title != entry["title"]


# --- LLM servers --------------------------------------------------------------------------


def two_papers(standin: StandIn) -> str:
    add_paper(standin)
    add_paper(
        standin,
        ArxivPaper(
            "2512.10655",
            1,
            "Second",
            ["Kim"],
            "The second paper studies how small language models summarize long documents.",
        ),
    )
    return "0908.0054,2512.10655"


@pytest.mark.parametrize(
    ("server", "status"),
    [(like_deepseek, 422), (like_llama_cpp_python, 500)],
    ids=["deepseek-422", "llama-cpp-python-500"],
)
def test_auto_falls_back_on_a_format_rejection_of_any_status_without_retrying_it(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, server: Any, status: int
) -> None:
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    ids = two_papers(standin)
    standin.llm_default = server(good)
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    kinds = [r["response_format"]["type"] for r in standin.llm_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # no retry of the rejection
    assert f"rejected response_format json_schema (HTTP {status}" in err
    assert "retrying" not in err


def test_a_500_format_rejection_in_json_schema_mode_names_the_setting(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MODE", "json_schema")
    standin.llm_default = like_llama_cpp_python(good)
    code, _, err = digest("paper", "0908.0054")
    assert code == 2 and "set DIGEST_LLM_MODE=auto or json_object" in err
    assert "Input should be 'text' or 'json_object'" in err
    assert len(standin.llm_requests) == 1
    assert len(err.strip().splitlines()) == 1


def test_a_reasoning_model_gives_a_valid_digest_with_its_reasoning_priced(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_MODEL", "gpt-5-mini")
    monkeypatch.setenv("DIGEST_PRICES", '{"gpt-5-mini": [0.25, 0.025, 2.0]}')
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    ids = two_papers(standin)
    standin.llm_default = reasoning_model(good_json, reasoning_tokens=3000)
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    first, second, third = standin.llm_requests
    assert first["temperature"] == 0.2  # then dropped for the run, once
    assert "temperature" not in second and "temperature" not in third
    assert second["reasoning_effort"] == "low" and "max_tokens" not in second
    assert second["max_completion_tokens"] == 2000 + 8000  # the answer, and room to think
    assert err.count("does not take temperature") == 1
    provenance = day_entries()[0]["provenance"]
    assert provenance["tokens_reasoning"] == 3000 and provenance["tokens_out"] == 3250
    prompt = provenance["tokens_in"]
    assert provenance["cost_usd"] == pytest.approx(
        (prompt * 0.25 + 3250 * 2.0) / 1e6, abs=1e-6
    )  # reasoning priced as output


def test_reasoning_that_uses_up_the_limit_is_asked_again_with_twice_the_limit(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_MODEL", "o4-mini")
    monkeypatch.setenv("DIGEST_TEMPERATURE", "none")
    monkeypatch.setenv("DIGEST_REASONING_EFFORT", "minimal")
    add_paper(standin)
    standin.llm_default = reasoning_model(good_json, reasoning_tokens=5000)
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    limits = [r["max_completion_tokens"] for r in standin.llm_requests]
    assert limits == [2000 + 2000, 4000 + 2000]
    assert "cut off at the output limit; asking once more with 6000 tokens" in err
    calls = json.loads(out)["provenance"]["calls"]
    assert [c["outcome"] for c in calls] == ["cut off", "ok"]
    assert calls[0]["tokens_reasoning"] == 4000


def test_json_object_mode_drops_max_tokens_for_a_model_that_rejects_it(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_MODEL", "o3")
    monkeypatch.setenv("DIGEST_LLM_MODE", "json_object")
    monkeypatch.setenv("DIGEST_TEMPERATURE", "none")
    add_paper(standin)
    standin.llm_default = reasoning_model(good_json)
    code, _, err = digest("paper", "0908.0054")
    assert code == 0, err
    first, second = standin.llm_requests
    assert "max_tokens" in first and "max_tokens" not in second
    assert second["max_completion_tokens"] == 10000


def test_a_cut_prompt_fails_the_paper_after_exactly_one_request(standin: StandIn) -> None:
    add_paper(standin)  # a short paper: about 5,000 prompt tokens
    standin.llm_default = cuts_prompt(2048)  # Ollama's default context before 0.6
    code, _, err = digest("paper", "0908.0054")
    assert code == 1
    assert len(standin.llm_requests) == 1
    assert "the server read only 2048 of about" in err
    assert "OLLAMA_CONTEXT_LENGTH" in err and "DIGEST_TEXT_BUDGET (now 40000)" in err


def test_a_tokenizer_that_counts_fewer_tokens_is_not_a_cut_prompt(standin: StandIn) -> None:
    add_paper(standin)

    def frugal(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = good(request)
        data = json.loads(body)
        data["usage"]["prompt_tokens"] = int(0.75 * data["usage"]["prompt_tokens"])
        return status, headers, json.dumps(data).encode()

    standin.llm_default = frugal
    code, _, err = digest("paper", "0908.0054")
    assert code == 0, err


def test_a_request_over_the_servers_context_fails_naming_the_text_budget(
    standin: StandIn,
) -> None:
    add_paper(standin)
    standin.llm_default = small_context(good, context_tokens=2048)
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and len(standin.llm_requests) == 1
    assert "does not fit the server's context (HTTP 400: request (" in err
    assert "lower DIGEST_TEXT_BUDGET (now 40000)" in err


def test_context_tokens_fits_the_text_to_the_servers_context(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_CONTEXT_TOKENS", "8192")
    standin.llm_script = [completion('{"introduction": {"goal": "본 연구는')]  # one re-ask
    standin.llm_default = small_context(good, context_tokens=8192)
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["input_chars"] < 40_000
    assert len(standin.llm_requests) == 2  # the re-ask fits too


def test_context_tokens_too_small_for_any_paper_is_a_usage_error(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_CONTEXT_TOKENS", "4096")
    code, _, err = digest("paper", "0908.0054")
    assert code == 2 and "DIGEST_CONTEXT_TOKENS=4096 leaves no room for the paper" in err
    assert standin.llm_requests == []
    assert standin.arxiv_requests == [] and standin.pdf_requests == []  # said before any I/O
    code, _, err = digest("daily", "--source", "ids", "--ids", "0908.0054", "--date", "2025-12-16")
    assert code == 2 and "DIGEST_CONTEXT_TOKENS=4096 leaves no room for the paper" in err
    assert standin.arxiv_requests == [] and standin.llm_requests == []


def test_raw_line_breaks_in_strings_are_read_and_the_line_checks_go_back(
    standin: StandIn,
) -> None:
    add_paper(standin)
    broken = make_digest().model_dump()
    broken["method"][0] = (
        "제안 방법은 긴 비디오 생성 과정을\n여러 단계로 나누어 각 단계의 정보를 전달한다."
    )
    raw = answer_json(broken).replace("\\n", "\n")  # a raw line break
    standin.llm_script = [completion(raw)]
    standin.llm_default = good
    code, _, err = digest("paper", "0908.0054")
    assert code == 0, err
    feedback = standin.llm_requests[1]["messages"][5]["content"]
    assert "method[0]:" in feedback and "Invalid JSON" not in feedback


def test_parse_digest_is_lenient_only_where_the_fix_is_certain() -> None:
    digest_json = answer_json(make_digest().model_dump())
    parsed = parse_digest(f"```json\n{digest_json}\n```")[0]
    assert parsed is not None and parsed.digest == make_digest()
    digest_obj, problems = parse_digest('{"introduction": ')
    assert digest_obj is None and problems[0].startswith("(root): Invalid JSON")


LOOP = "제안 방법은 반복한다. " * 200


def test_a_looping_answer_is_not_given_a_larger_limit(standin: StandIn) -> None:
    add_paper(standin)
    looping = '{"introduction": {"goal": "' + LOOP
    standin.llm_script = [completion(looping, finish_reason="length")]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert [r["max_completion_tokens"] for r in standin.llm_requests] == [2000, 2000]
    assert "the model repeated itself" in err
    assert (
        "repeated itself until it was cut off" in standin.llm_requests[1]["messages"][5]["content"]
    )
    calls = json.loads(out)["provenance"]["calls"]
    assert [c["outcome"] for c in calls] == ["looped", "ok"]


def test_a_model_that_always_loops_fails_saying_so(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = lambda request: completion('{"a": "' + LOOP, finish_reason="length")
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and "the model repeated itself until it was cut off at 2000" in err
    assert len(standin.llm_requests) == 3


def test_repeats_itself() -> None:
    assert repeats_itself(LOOP)
    assert repeats_itself("x" * 300)
    assert not repeats_itself(DIGEST_JSON)
    assert not repeats_itself(PAPER.abstract * 2)  # too short to tell
    prose = (PDFS / "0908.0054v1.pdf").read_bytes()[:3000].decode("latin-1")
    assert not repeats_itself(prose)


def test_reasks_stay_the_same_size(standin: StandIn) -> None:
    add_paper(standin)
    english = make_digest().model_dump() | {"conclusion": ["This is an English sentence only."]}
    standin.llm_default = lambda request: completion(answer_json(english))
    digest("paper", "0908.0054")
    sizes = [sum(len(m["content"]) for m in r["messages"]) for r in standin.llm_requests]
    # The re-ask adds the answer (with its quotes) and the problems, once.
    assert len(sizes) == 3 and sizes[1] == sizes[2] and sizes[1] - sizes[0] < 3000


def answering_as(model: str) -> Any:
    """A server that names ``model`` in its answers, whatever the request asked for."""

    def reply(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        status, headers, body = good(request)
        return status, headers, json.dumps({**json.loads(body), "model": model}).encode()

    return reply


def test_a_server_answering_with_another_model_is_noticed(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = answering_as("gemma3-270m")
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert "asked for model 'standin-model', but the server answered as 'gemma3-270m'" in err
    provenance = json.loads(out)["provenance"]
    assert provenance["model"] == "standin-model" and provenance["answered_by"] == "gemma3-270m"


@pytest.mark.parametrize("name", ["standin-model-2025-04-14", "standin-model:latest"])
def test_a_snapshot_or_tag_is_the_model_asked_for(standin: StandIn, name: str) -> None:
    add_paper(standin)
    standin.llm_default = answering_as(name)
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert "answered as" not in err and json.loads(out)["provenance"]["answered_by"] is None


def test_messages_are_one_line_name_the_setting_and_count_attempts_right(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MAX_ATTEMPTS", "1")
    standin.llm_default = lambda request: error_reply(503, "upstream\n  overloaded\n\ttry later")
    code, _, err = digest("paper", "0908.0054")
    assert code == 1
    assert "HTTP 503 from the LLM server after 1 attempt: upstream overloaded try later" in err

    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")
    monkeypatch.setenv("DIGEST_LLM_TIMEOUT", "0.3")

    def slow(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)
        return good(request)

    standin.llm_default = slow
    code, _, err = digest("paper", "0908.0054")
    assert code == 1
    assert "after 1 attempt (each timed out after 0.3 s; raise DIGEST_LLM_TIMEOUT=0.3)" in err


def test_the_llama_cpp_python_500_is_the_real_text() -> None:
    assert "Input should be 'text' or 'json_object'" in LLAMA_CPP_PYTHON_500
