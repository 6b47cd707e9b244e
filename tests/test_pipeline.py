"""One paper end to end, and a day of them, against local stand-ins over real sockets."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from digest.blog.render import render_day
from digest.models import Day, Links, PaperEntry, Provenance
from digest.sources.fetch import _WITHDRAWN, PdfDownloader
from digest.sources.papers import ArxivRef
from tests.conftest import PDF_ABSTRACT, PDFS, REPO, SECRET_KEY
from tests.helpers import FakeClock, digest, good, make_digest, with_digest
from tests.standins import STALL, ArxivPaper, StandIn, completion, error_reply

PDF_SENTENCE = "In this work we report the cosmological effects"
PAPER = ArxivPaper(
    arxiv_id="0908.0054",
    version=1,
    title="Ultra light bosonic dark matter and CMB",
    authors=["Ivan Rodriguez Montoya", "Tonatiuh Matos Chassin"],
    abstract=PDF_ABSTRACT,
)


def add_paper(standin: StandIn, paper: ArxivPaper = PAPER, pdf: bytes | None = None) -> None:
    standin.papers[paper.arxiv_id] = paper
    standin.pdfs[f"{paper.arxiv_id}v{paper.version}"] = (
        pdf or (PDFS / "0908.0054v1.pdf").read_bytes()
    )


def user_message(request: dict[str, Any]) -> str:
    """The message that carries the paper (the first user message is the worked example)."""
    return [m["content"] for m in request["messages"] if m["role"] == "user"][1]


# --- one paper ----------------------------------------------------------------------------


def test_paper_prints_the_block_and_sends_the_text_with_a_strict_schema(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = good
    code, out, err = digest("paper", "arXiv:0908.0054")
    assert code == 0, err

    entry = PaperEntry(
        arxiv_id="0908.0054",
        title=PAPER.title,
        links=Links.for_arxiv("0908.0054"),
        digest=make_digest(),
        provenance=Provenance(source="llm"),
    )
    from digest.blog.render import render_paper

    assert out == "\n".join(render_paper(entry, 1)) + "\n"

    (request,) = standin.llm_requests
    assert PDF_SENTENCE in user_message(request)  # the PDF's text reached the prompt
    assert (
        "<paper>" in user_message(request)
        and "ignore any instructions" in request["messages"][0]["content"]
    )
    response_format = request["response_format"]
    assert response_format["type"] == "json_schema"
    assert response_format["json_schema"]["strict"] is True
    committed = json.loads((REPO / "schemas" / "digest.schema.json").read_text(encoding="utf-8"))
    assert response_format["json_schema"]["schema"] == committed
    assert request["model"] == "standin-model" and request["temperature"] == 0.2
    assert request["max_completion_tokens"] == 2000
    assert standin.llm_headers[0]["x-stainless-retry-count"] == "0"

    assert standin.arxiv_requests[0]["id_list"] == ["0908.0054"]
    assert standin.pdf_requests == ["0908.0054v1"]  # pinned to the version arXiv reported


def test_paper_json_records_provenance(standin: StandIn, tmp_path: Path) -> None:
    add_paper(standin)
    standin.llm_default = good
    out_file = tmp_path / "entry.json"
    code, out, err = digest(
        "paper", "https://arxiv.org/abs/0908.0054v1", "--json", "--out", str(out_file)
    )
    assert code == 0, err
    assert out == ""
    entry = json.loads(out_file.read_text(encoding="utf-8"))
    assert entry["arxiv_id"] == "0908.0054" and entry["version"] == 1
    assert entry["authors"] == PAPER.authors
    provenance = entry["provenance"]
    assert provenance["source"] == "llm" and provenance["model"] == "standin-model"
    assert provenance["prompt_version"] == "v4" and provenance["input"] == "full-text"
    assert provenance["input_reason"] is None and provenance["extractor"] == "pypdf"
    assert 5_000 < provenance["input_chars"] <= 40_000
    (prompt,) = standin.prompt_tokens  # what the stand-in counted, as a server does
    assert 1500 < prompt < 12_000
    assert (provenance["tokens_in"], provenance["tokens_out"], provenance["tokens_cached"]) == (
        prompt,
        200,
        100,
    )
    assert provenance["attempts"] == 1 and provenance["seconds"] > 0
    expected = ((prompt - 100) * 0.40 + 100 * 0.10 + 200 * 1.60) / 1e6
    assert provenance["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert SECRET_KEY not in out_file.read_text(encoding="utf-8")


def test_the_pdfium_extractor_reads_the_pdf_when_chosen(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pypdfium2")
    monkeypatch.setenv("DIGEST_EXTRACTOR", "pypdfium2")
    add_paper(standin)
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert (provenance["input"], provenance["extractor"]) == ("full-text", "pypdfium2")
    prompt = user_message(standin.llm_requests[0])
    assert PDF_SENTENCE in prompt and "IV. CONCLUSIONS" in prompt
    assert "\x02" not in prompt and "\r" not in prompt


def test_a_local_pdf_takes_its_title_from_the_pdf_and_has_no_links(standin: StandIn) -> None:
    standin.llm_default = good
    code, out, err = digest("paper", str(PDFS / "0908.0054v1.pdf"), "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["arxiv_id"] is None
    assert "Ultra light bosonic dark matter" in entry["title"]
    assert entry["links"] == {"abs": None, "alphaxiv": None, "pdf": None}
    assert standin.arxiv_requests == [] and standin.pdf_requests == []
    code, out, _ = digest("paper", str(PDFS / "0908.0054v1.pdf"))
    assert out.startswith("# 1. Ultra light bosonic dark matter") and "Alphaxiv" not in out


def test_a_broken_local_pdf_fails_with_its_reason(standin: StandIn) -> None:
    code, _, err = digest("paper", str(PDFS / "not-a-pdf-text.pdf"))
    assert code == 1
    assert "not-a-pdf-text.pdf: not a PDF" in err
    assert standin.llm_requests == []


def test_a_malformed_id_exits_2_naming_it(standin: StandIn) -> None:
    code, _, err = digest("paper", "2512.13")
    assert code == 2
    assert "'2512.13' is not an arXiv ID, arXiv URL or PDF file" in err
    assert standin.arxiv_requests == []


def test_an_unknown_id_is_not_found_on_arxiv(standin: StandIn) -> None:
    code, _, err = digest("paper", "2512.99999")
    assert code == 1
    assert "2512.99999: not found on arXiv" in err
    assert standin.llm_requests == []


def test_a_withdrawn_paper_fails_with_its_reason(standin: StandIn) -> None:
    add_paper(
        standin,
        ArxivPaper("2512.00001", 2, "Gone", ["A"], "x", comment="This paper has been withdrawn"),
    )
    code, _, err = digest("paper", "2512.00001")
    assert code == 1 and "2512.00001: withdrawn on arXiv" in err


@pytest.mark.parametrize(
    ("comment", "withdrawn"),
    [
        ("This paper has been withdrawn by the author due to an error in Lemma 2", True),
        ("Withdrawn: a duplicate of 2512.00002", True),
        ("This submission has been withdrawn by arXiv administrators", True),
        ("12 pages; supersedes the withdrawn 2511.00001", False),
        ("We study withdrawn submissions on preprint servers", False),
    ],
)
def test_only_a_withdrawal_notice_marks_a_paper_withdrawn(comment: str, withdrawn: bool) -> None:
    assert bool(_WITHDRAWN.search(comment)) is withdrawn


# --- broken PDFs fall back to the abstract ------------------------------------------------


@pytest.mark.parametrize(
    ("pdf", "reason"),
    [
        ("not-a-pdf-text.pdf", "not a PDF"),
        ("empty-page.pdf", "image-only or empty"),
        ("scanned-image-only.pdf", "image-only or empty"),
        ("encrypted-2206.01062_pg3.pdf", "encrypted"),
        ("truncated", "truncated"),
    ],
)
def test_a_broken_pdf_is_summarized_from_the_abstract(
    standin: StandIn, pdf: str, reason: str
) -> None:
    data = (PDFS / "0908.0054v1.pdf").read_bytes()
    add_paper(
        standin, pdf=data[: len(data) // 2] if pdf == "truncated" else (PDFS / pdf).read_bytes()
    )
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract" and provenance["extractor"] is None
    assert reason in provenance["input_reason"]
    prompt = user_message(standin.llm_requests[0])
    assert PAPER.abstract in prompt and "abstract only" in prompt
    cached = list(Path("cache/pdfs").glob("*"))
    # A download that is no whole PDF is never cached; a valid one without text is.
    assert cached == ([] if reason in ("not a PDF", "truncated") else cached) and len(cached) <= 1


def test_a_missing_or_oversized_pdf_falls_back_to_the_abstract(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin.papers[PAPER.arxiv_id] = PAPER  # no PDF served: 404
    standin.llm_default = good
    code, out, _ = digest("paper", "0908.0054", "--json")
    assert code == 0
    assert json.loads(out)["provenance"]["input_reason"].startswith("PDF download failed: HTTP 404")
    assert standin.pdf_requests == ["0908.0054v1"]  # 4xx is never retried

    add_paper(standin)
    monkeypatch.setenv("DIGEST_PDF_MAX_MB", "0.05")
    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")  # the same abstract is cached above
    code, out, _ = digest("paper", "0908.0054", "--json")
    reason = json.loads(out)["provenance"]["input_reason"]
    assert "over the 0.05 MB cap" in reason and "DIGEST_PDF_MAX_MB" in reason


def test_pdf_and_arxiv_5xx_are_retried_and_the_pdf_is_cached(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.faults = {"pdf": [500, 503], "arxiv": [503]}
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["input"] == "full-text"
    assert standin.pdf_requests == ["0908.0054v1"] * 3
    assert len(standin.arxiv_requests) == 2
    assert Path("cache/pdfs/0908.0054v1.pdf").read_bytes() == standin.pdfs["0908.0054v1"]
    digest("paper", "0908.0054")
    assert len(standin.pdf_requests) == 3  # served from the cache


def test_a_pdf_host_failure_that_may_pass_is_tried_again_by_the_next_run(
    standin: StandIn,
) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.faults = {"pdf": [503] * 4}  # every attempt of the first run
    args = ("daily", "--source", "ids", "--ids", "0908.0054", "--date", "2025-12-16")
    code, _, err = digest(*args)
    assert code == 0, err
    day_file = Path("outputs/data/2025-12-16.json")
    provenance = json.loads(day_file.read_text(encoding="utf-8"))["papers"][0]["provenance"]
    assert provenance["input"] == "abstract" and provenance["full_text_pending"] is True
    assert provenance["input_reason"].startswith("PDF download failed: HTTP 503")

    # The host is back: the next run fetches the PDF and replaces the entry in place.
    code, _, err = digest(*args)
    assert code == 0, err
    provenance = json.loads(day_file.read_text(encoding="utf-8"))["papers"][0]["provenance"]
    assert provenance["input"] == "full-text" and provenance["full_text_pending"] is False
    assert PDF_SENTENCE in user_message(standin.llm_requests[-1])
    calls = (len(standin.llm_requests), len(standin.pdf_requests))
    assert calls == (2, 5)

    assert digest(*args)[0] == 0  # now the day is finished
    assert (len(standin.llm_requests), len(standin.pdf_requests)) == calls


def test_a_pdf_that_cannot_be_decoded_falls_back_to_the_abstract_at_once(
    standin: StandIn,
) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.pdf_replies = [(200, {"content-encoding": "gzip"}, b"%PDF-1.4 not gzip at all")]
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract" and provenance["full_text_pending"] is False
    assert provenance["input_reason"].startswith("PDF download failed: DecodingError")
    assert standin.pdf_requests == ["0908.0054v1"]  # no retry mends a bad encoding


def test_an_unexpected_error_in_one_paper_fails_only_that_paper(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = PAPER, dataclasses.replace(PAPER, arxiv_id="0908.0055")
    add_paper(standin, first)
    add_paper(standin, second)
    standin.llm_default = good
    real_fetch = PdfDownloader.fetch

    async def fetch(self: PdfDownloader, ref: ArxivRef) -> bytes:
        if ref.arxiv_id == second.arxiv_id:
            raise RuntimeError("a bug in the downloader")
        return await real_fetch(self, ref)

    monkeypatch.setattr(PdfDownloader, "fetch", fetch)  # our own code, not a client's
    ids = f"{first.arxiv_id},{second.arxiv_id}"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", "2025-12-16")
    assert code == 1
    assert "failed: 0908.0055: unexpected error: RuntimeError: a bug in the downloader" in err
    assert "Traceback" not in err
    day = json.loads(Path("outputs/data/2025-12-16.json").read_text(encoding="utf-8"))
    assert [paper["arxiv_id"] for paper in day["papers"]] == [first.arxiv_id]


def test_an_arxiv_total_that_counts_unknown_ids_keeps_the_papers_found(
    standin: StandIn,
) -> None:
    add_paper(standin)
    standin.llm_default = good
    standin.arxiv_counts_unknown_ids = True  # totalResults 2, one entry: a second page is asked
    ids = "0908.0054,2512.99999"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", "2025-12-16")
    assert code == 1
    assert "2512.99999: not found on arXiv" in err
    assert "0908.0054v1" not in err.split("failed:")[-1]
    assert [r["start"] for r in standin.arxiv_requests] == [["0"], ["1"]]
    assert Path("outputs/_posts/2025-12-16-daily-papers.md").exists()


def test_arxiv_calls_are_spaced_even_when_they_fail(
    standin: StandIn, fake_time: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A port nothing listens on: every call is a refused connection, which the arxiv package
    # does not count for its own spacing.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    monkeypatch.setenv("DIGEST_ARXIV_API_URL", f"http://127.0.0.1:{closed_port}/api/query")
    monkeypatch.setenv("DIGEST_ARXIV_DELAY", "3")  # the default: arXiv's terms
    monkeypatch.setenv("DIGEST_HTTP_MAX_ATTEMPTS", "3")
    started = fake_time.now()
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and "the arXiv API could not be reached" in err
    assert fake_time.now() - started >= 2 * 3  # three calls, each 3 s after the last


@pytest.mark.slow  # waits out real timeouts
def test_arxiv_and_pdf_requests_time_out_and_are_retried(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    standin.llm_default = good
    monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "0.3")  # the stall holds a request 1.5 s
    standin.faults = {"arxiv": [STALL], "pdf": [STALL]}
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["input"] == "full-text"
    assert len(standin.arxiv_requests) == 2 and len(standin.pdf_requests) == 2


def test_an_arxiv_4xx_is_not_retried(standin: StandIn) -> None:
    standin.faults = {"arxiv": [400, 400, 400]}
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and "the arXiv API answered HTTP 400" in err
    assert len(standin.arxiv_requests) == 1


# --- LLM faults ---------------------------------------------------------------------------


def test_invalid_english_and_polite_answers_are_reasked_with_the_messages(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_script = [
        completion('{"introduction": {"goal": "본 연구는'),  # truncated JSON
        with_digest(
            results=["The model improves FVD by 38% on LongVGenBench."],
            method=["제안 방법은 긴 비디오 생성 과정을 여러 단계로 나누어 정보를 전달합니다."],
        ),
    ]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["attempts"] == 3
    first, second, third = standin.llm_requests
    assert first["messages"] == second["messages"][:4]  # the original question, as asked
    assert second["messages"][4] == {
        "role": "assistant",
        "content": '{"introduction": {"goal": "본 연구는',
    }
    assert "Invalid JSON" in second["messages"][5]["content"]
    # The second re-ask replaces the first: the paper once, the latest answer, its problems.
    assert len(third["messages"]) == len(second["messages"]) == 6
    assert third["messages"][:4] == first["messages"]
    feedback = third["messages"][5]["content"]
    assert "- method[0]: uses the polite style ('전달합니다.')" in feedback
    assert "- results[0]: is only 0% Hangul, in 0% of its words" in feedback
    assert "Invalid JSON" not in feedback
    assert third["messages"][4]["role"] == "assistant"
    assert "정보를 전달합니다." in third["messages"][4]["content"]  # the model's own answer


def test_validation_failing_three_times_fails_the_paper(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = lambda request: with_digest(conclusion=["Great work."])
    code, _, err = digest("paper", "0908.0054")
    assert code == 1
    assert "the digest failed validation 3 times; last problems: conclusion[0]:" in err
    assert len(standin.llm_requests) == 3


def test_length_is_retried_once_with_a_larger_limit(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    standin.llm_script = [completion('{"introduction": ', finish_reason="length")]
    standin.llm_default = good
    code, _, err = digest("paper", "0908.0054")
    assert code == 0, err
    assert [r["max_completion_tokens"] for r in standin.llm_requests] == [2000, 4000]

    standin.llm_requests.clear()
    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")  # not the digest cached above
    standin.llm_default = lambda request: completion('{"intro', finish_reason="length")
    code, _, err = digest("paper", "0908.0054")
    assert (
        code == 1 and "cut off at 4000 output tokens" in err and "DIGEST_MAX_OUTPUT_TOKENS" in err
    )
    assert len(standin.llm_requests) == 2


def test_refusals_and_content_filters_are_asked_again_then_fail(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    standin.llm_script = [
        completion(None, refusal="I can't help with that."),
        completion(None, finish_reason="content_filter"),
    ]
    standin.llm_default = good
    assert digest("paper", "0908.0054")[0] == 0
    assert len(standin.llm_requests) == 3

    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")  # not the digest cached above
    standin.llm_default = lambda request: completion(None, refusal="I can't help with that.")
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and "the model refused: I can't help with that. (3 times)" in err


def test_429_with_retry_after_and_500_are_retried(standin: StandIn, fake_time: FakeClock) -> None:
    add_paper(standin)
    standin.llm_script = [
        error_reply(429, "slow down", {"retry-after": "1"}),
        error_reply(500, "boom"),
        error_reply(503, "unavailable", {"retry-after-ms": "50"}),
    ]
    standin.llm_default = good
    started = fake_time.now()
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert fake_time.now() - started >= 1.0  # Retry-After: 1 was honoured
    assert json.loads(out)["provenance"]["attempts"] == 4
    assert [h["x-stainless-retry-count"] for h in standin.llm_headers] == [
        "0"
    ] * 4  # no SDK retries


def test_a_408_and_an_answer_without_a_message_are_retried(standin: StandIn) -> None:
    add_paper(standin)
    no_message = {"id": "x", "object": "chat.completion", "created": 0, "model": "m",
                  "choices": [{"index": 0, "message": None, "finish_reason": "stop"}]}  # fmt: skip
    standin.llm_script = [
        error_reply(408, "request timeout"),
        (200, {"content-type": "application/json"}, json.dumps(no_message).encode()),
        (200, {"content-type": "application/json"}, b'{"choices": ["not an object"]}'),
    ]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["attempts"] == 4


def test_transient_errors_stop_after_the_configured_attempts(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MAX_ATTEMPTS", "3")
    standin.llm_default = lambda request: error_reply(500, "still down")
    code, _, err = digest("paper", "0908.0054")
    assert code == 1 and "HTTP 500 from the LLM server after 3 attempts: still down" in err
    assert len(standin.llm_requests) == 3


def test_a_timeout_is_retried(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_TIMEOUT", "0.3")

    def slow(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(1.0)
        return good(request)

    standin.llm_script = [slow]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert json.loads(out)["provenance"]["attempts"] == 2


@pytest.mark.parametrize(
    ("status", "expected", "exit_code"),
    [
        (400, "the LLM server rejected the request (HTTP 400): bad request", 1),
        (
            401,
            "the LLM server refused the API key (HTTP 401: bad request); check OPENAI_API_KEY",
            2,
        ),
        (403, "refused the API key (HTTP 403", 2),
        (404, "model 'standin-model' not found (HTTP 404: bad request); check DIGEST_MODEL", 2),
    ],
)
def test_client_errors_are_never_retried(
    standin: StandIn, status: int, expected: str, exit_code: int
) -> None:
    add_paper(standin)
    standin.llm_default = lambda request: error_reply(status, "bad request")
    code, _, err = digest("paper", "0908.0054")
    assert code == exit_code
    assert expected in err
    assert len(standin.llm_requests) == 1
    assert SECRET_KEY not in err


@pytest.mark.parametrize(
    "command", [[], ["daily"], ["paper"], ["render"], ["import"], ["schema"], ["init"]]
)
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = digest(*command, "--help")
    assert code == 0 and "Usage: digest" in out


def test_no_api_key_for_openai_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = digest("paper", "0908.0054")
    assert code == 2 and "no API key: set OPENAI_API_KEY" in err


# --- a day --------------------------------------------------------------------------------

SECOND = ArxivPaper(
    "2512.10655", 2, "CAPTAIN: Semantic Feature Injection", ["Kim"], "Memorization abstract."
)
THIRD = ArxivPaper("hep-th/9901001", 1, "An Old-Style Paper", ["Lee"], "An old abstract.")


def expected_post(date: str, papers: list[ArxivPaper]) -> bytes:
    day = Day(
        date=date,  # type: ignore[arg-type]
        title=f"Daily Papers — {date}",
        papers=[
            PaperEntry(
                arxiv_id=p.arxiv_id,
                title=p.title,
                links=Links.for_arxiv(p.arxiv_id),
                digest=make_digest(),
                provenance=Provenance(source="llm"),
            )
            for p in papers
        ],
    )
    return render_day(day).encode("utf-8")


def test_daily_with_every_fault_injected_once_still_writes_a_correct_post(
    standin: StandIn, fake_time: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    standin.papers[SECOND.arxiv_id] = SECOND  # its PDF is missing (404)
    add_paper(standin, THIRD, pdf=(PDFS / "not-a-pdf-text.pdf").read_bytes())
    standin.faults = {"arxiv": [503], "pdf": [500]}
    # Each paper's answers in turn, whatever order the concurrent papers reach the LLM in.
    answers = {
        "0908.0054": [
            error_reply(429, "slow down", {"retry-after": "1"}),
            error_reply(500, "boom"),
            completion("{not json"),
        ],
        "2512.10655": [
            with_digest(results=["The model improves FVD by 38% on LongVGenBench."]),
            with_digest(
                method=["제안 방법은 긴 비디오 생성 과정을 여러 단계로 나누어 정보를 전달합니다."]
            ),
        ],
        "hep-th/9901001": [
            completion(None, refusal="I can't help with that."),
            completion('{"intro', finish_reason="length"),
        ],
    }

    def by_paper(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        arxiv_id = re.search(r"arXiv: (\S+)", user_message(request))[1]  # type: ignore[index]
        queue = answers[arxiv_id]
        return queue.pop(0) if queue else good(request)

    standin.llm_default = by_paper
    code, out, err = digest(
        "daily",
        "--source",
        "ids",
        "--ids",
        "0908.0054,2512.10655,hep-th/9901001",
        "--date",
        "2025-12-16",
    )
    assert code == 0, err
    post = Path("outputs/_posts/2025-12-16-daily-papers.md")
    assert post.read_bytes() == expected_post("2025-12-16", [PAPER, SECOND, THIRD])
    assert all(queue == [] for queue in answers.values()) and len(standin.llm_requests) == 10
    assert len(standin.arxiv_requests) == 2 and standin.arxiv_requests[0]["id_list"] == [
        "0908.0054,2512.10655,hep-th/9901001"
    ]  # all IDs in one query
    day = json.loads(Path("outputs/data/2025-12-16.json").read_text(encoding="utf-8"))
    inputs = [(p["arxiv_id"], p["version"], p["provenance"]["input"]) for p in day["papers"]]
    assert inputs == [
        ("0908.0054", 1, "full-text"),
        ("2512.10655", 2, "abstract"),
        ("hep-th/9901001", 1, "abstract"),
    ]
    assert "HTTP 404" in day["papers"][1]["provenance"]["input_reason"]  # no PDF was served for it
    assert "not a PDF" in day["papers"][2]["provenance"]["input_reason"]
    assert [p["provenance"]["attempts"] for p in day["papers"]] == [4, 3, 3]
    assert Path("cache/pdfs/hep-th_9901001v1.pdf").exists() is False
    assert SECRET_KEY not in out + err + post.read_text(encoding="utf-8")


def test_daily_leaves_a_failed_paper_out_lists_it_and_exits_1(standin: StandIn) -> None:
    add_paper(standin)
    add_paper(standin, SECOND)
    standin.llm_default = good
    code, _out, err = digest(
        "daily",
        "--source",
        "ids",
        "--ids",
        "0908.0054,2512.99999,2512.10655",
        "--date",
        "2025-12-16",
    )
    assert code == 1
    assert "failed: 2512.99999: not found on arXiv" in err
    assert "1 of 3 papers were not digested" in err
    post = Path("outputs/_posts/2025-12-16-daily-papers.md").read_bytes()
    assert post == expected_post("2025-12-16", [PAPER, SECOND])

    # Re-running redoes nothing that is done, and retries only the failed paper.
    standin.llm_requests.clear()
    code, _, err = digest(
        "daily",
        "--source",
        "ids",
        "--ids",
        "0908.0054,2512.99999,2512.10655",
        "--date",
        "2025-12-16",
    )
    assert code == 1
    assert standin.llm_requests == []
    assert Path("outputs/_posts/2025-12-16-daily-papers.md").read_bytes() == post


def test_daily_rejects_bad_dates_and_ids(standin: StandIn) -> None:
    code, _, err = digest("daily", "--source", "ids", "--ids", "0908.0054", "--date", "2025-02-30")
    assert code == 2 and "--date '2025-02-30' is not a date" in err
    code, _, err = digest("daily", "--source", "ids", "--ids", "0908.0054", "--date", "2999-01-01")
    assert code == 2 and "is in the future" in err
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", "0908.0054,bogus", "--date", "2025-12-16"
    )
    assert code == 2 and "--ids: 'bogus' is not an arXiv ID" in err
    assert standin.arxiv_requests == []
