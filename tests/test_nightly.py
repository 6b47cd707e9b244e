"""The nightly run: sources, real concurrency, idempotent re-runs, the lock, crash safety."""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from digest.blog.store import OutputLock
from digest.errors import PaperFailed
from digest.runs.report import BarProgress
from digest.runs.results import PaperResult
from digest.sources.papers import ArxivRef
from tests.conftest import PDF_ABSTRACT, PDFS, REPO
from tests.helpers import answer_json, digest, good, make_digest
from tests.standins import ArxivPaper, StandIn, completion, error_reply, hf_item

DATE = "2025-12-16"
POST = Path(f"outputs/_posts/{DATE}-daily-papers.md")
DAY_FILE = Path(f"outputs/data/{DATE}.json")
REPORT = Path(f"outputs/data/{DATE}.run.json")
PDF = (PDFS / "0908.0054v1.pdf").read_bytes()


def paper(number: int) -> ArxivPaper:
    return ArxivPaper(
        f"2512.{10000 + number}",
        1,
        f"Paper number {number}",
        ["Kim"],
        f"Abstract {number}. {PDF_ABSTRACT}",
    )


def serve_papers(standin: StandIn, count: int) -> list[ArxivPaper]:
    papers = [paper(number) for number in range(1, count + 1)]
    for item in papers:
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v1"] = PDF
    standin.llm_default = good
    return papers


def titles_in_post() -> list[str]:
    return re.findall(r"^# \d+\. \[(.*)\]\(", POST.read_text(encoding="utf-8"), re.MULTILINE)


def paper_of(request: dict[str, Any]) -> str:
    user = [m["content"] for m in request["messages"] if m["role"] == "user"][
        1
    ]  # after the example
    return re.search(r"arXiv: (\S+)", user)[1]  # type: ignore[index]


# --- Hugging Face Daily Papers ------------------------------------------------------------


def test_hf_pages_until_empty_and_orders_by_upvotes_keeping_ties(standin: StandIn) -> None:
    papers = serve_papers(standin, 60)
    # 60 items: pages of 50, 10, then an empty one. Papers 7 and 3 tie at the top; the API
    # lists 7 first (it is moved to the front), so 7 must stay before 3.
    upvotes = {7: 100, 3: 100, 55: 90}
    items = [hf_item(p, upvotes.get(i, 1)) for i, p in enumerate(papers, 1)]
    standin.hf_days[DATE] = [items[6], *items[:6], *items[7:]]
    code, _, err = digest("daily", "--date", DATE, "--limit", "3")
    assert code == 0, err
    assert [(r["p"], r["limit"], r["date"]) for r in standin.hf_requests] == [
        ("0", "50", DATE),
        ("1", "50", DATE),
        ("2", "50", DATE),
    ]
    assert titles_in_post() == ["Paper number 7", "Paper number 3", "Paper number 55"]
    # The day file keeps each paper's upvotes, which a weekly issue ranks by.
    day = json.loads(DAY_FILE.read_text(encoding="utf-8"))
    assert [entry["upvotes"] for entry in day["papers"]] == [100, 100, 90]
    # All three IDs went to arXiv in one query.
    assert standin.arxiv_requests[0]["id_list"] == ["2512.10007,2512.10003,2512.10055"]


def test_hf_min_upvotes_and_the_default_limit(standin: StandIn) -> None:
    papers = serve_papers(standin, 12)
    standin.hf_days[DATE] = [hf_item(p, i) for i, p in enumerate(papers, 1)]
    code, _, err = digest("daily", "--date", DATE, "--min-upvotes", "9")
    assert code == 0, err
    assert titles_in_post() == [f"Paper number {n}" for n in (12, 11, 10, 9)]
    POST.unlink()
    DAY_FILE.unlink()
    code, _, _ = digest("daily", "--date", DATE)
    assert code == 0
    assert len(titles_in_post()) == 10  # DIGEST_LIMIT's default


def test_an_empty_day_writes_nothing_and_exits_0(standin: StandIn) -> None:
    code, _out, err = digest("daily", "--date", DATE)
    assert code == 0
    assert f"No papers on Hugging Face Daily Papers for {DATE}; no post written." in err
    assert not Path("outputs/_posts").exists() and not DAY_FILE.exists()
    assert len(standin.hf_requests) == 1 and standin.llm_requests == []


@pytest.mark.parametrize("zone", ["Pacific/Kiritimati", "Etc/GMT+12"])  # UTC+14 and UTC-12
def test_hf_today_and_yesterday_are_utc_days_whatever_the_timezone(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, zone: str
) -> None:
    # Hugging Face's days are UTC days: in UTC+14, the blog's "today" has not begun there
    # (HTTP 400), and its "yesterday" is still being filled. So hf reads them in UTC.
    monkeypatch.setenv("DIGEST_TIMEZONE", zone)

    def today() -> dt.date:
        return dt.datetime.now(dt.UTC).date()

    before = today()
    assert digest("daily")[0] == 0  # an empty day: nothing to write
    assert digest("daily", "--date", "yesterday")[0] == 0
    after = today()  # the same day but for a run across midnight
    asked = [request["date"] for request in standin.hf_requests]
    assert asked in (
        [day.isoformat(), (day - dt.timedelta(days=1)).isoformat()] for day in (before, after)
    )


def test_hf_429_and_5xx_are_retried(standin: StandIn) -> None:
    papers = serve_papers(standin, 1)
    standin.hf_days[DATE] = [hf_item(papers[0], 5)]
    standin.hf_replies = [
        error_reply(429, "rate limited", {"retry-after": "0"}),
        error_reply(502, "bad gateway"),
    ]
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err
    assert len(standin.hf_requests) == 4  # 429, 502, page 0, empty page 1


def test_hf_4xx_fails_the_run_with_a_message(standin: StandIn) -> None:
    standin.hf_replies = [error_reply(404, "no such route")]
    code, _, err = digest("daily", "--date", DATE)
    assert code == 1 and f"Hugging Face Daily Papers answered HTTP 404 for {DATE}" in err
    assert len(standin.hf_requests) == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2025-12-32"], "--date '2025-12-32' is not a date"),
        (["--date", "2999-01-01"], "has not begun on Hugging Face, whose Daily Papers days"),
        (["--source", "ids", "--ids", "2512.13604", "--date", "2999-01-01"], "is in the future"),
        (["--source", "ids"], "--source ids needs --ids"),
        (["--source", "arxiv"], "--source arxiv needs --query"),
        (["--ids", "2512.13604"], "--ids goes with --source ids, not --source hf"),
        (["--source", "ids", "--ids", "2512.13604", "--limit", "3"], "--limit goes with"),
        (["--max-cost", "-1"], "--max-cost -1 must be zero or more"),
    ],
)
def test_bad_daily_usage_exits_2(standin: StandIn, args: list[str], message: str) -> None:
    code, _, err = digest("daily", *args)
    assert code == 2 and message in err
    assert standin.hf_requests == [] and standin.llm_requests == []


# --- arXiv query --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "window"),
    [
        ("Asia/Seoul", "[202512151500 TO 202512161459]"),  # the default: UTC+9
        ("UTC", "[202512160000 TO 202512162359]"),
    ],
)
def test_arxiv_source_takes_the_papers_submitted_that_day(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, zone: str, window: str
) -> None:
    if zone != "Asia/Seoul":
        monkeypatch.setenv("DIGEST_TIMEZONE", zone)
    papers = serve_papers(standin, 2)
    standin.search_results = papers
    code, _, err = digest("daily", "--source", "arxiv", "--query", "cat:cs.CL", "--date", DATE)
    assert code == 0, err
    (request,) = standin.arxiv_requests  # the search gave the metadata: no second query
    assert request["search_query"] == [f"(cat:cs.CL) AND submittedDate:{window}"]
    assert request["sortBy"] == ["submittedDate"]
    assert titles_in_post() == ["Paper number 1", "Paper number 2"]


# --- concurrency --------------------------------------------------------------------------


class Gate:
    """Holds every LLM request until ``width`` are in flight, then lets the newest go first.

    If digest sent fewer requests at once, the gate would wait out its timeout and the most in
    flight would be below ``width``; if it sent more, the most would be above it.
    """

    def __init__(self, width: int, total: int) -> None:
        self.width, self.total = width, total
        self.condition = threading.Condition()
        self.waiting: list[int] = []
        self.arrived = 0
        self.most_in_flight = 0
        self.arrival_order: list[str] = []
        self.finish_order: list[str] = []

    def __call__(self, request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        with self.condition:
            self.arrived += 1
            me = self.arrived
            self.arrival_order.append(paper_of(request))
            self.waiting.append(me)
            self.most_in_flight = max(self.most_in_flight, len(self.waiting))
            self.condition.notify_all()
            self.condition.wait_for(
                lambda: (
                    (len(self.waiting) >= self.width or self.arrived == self.total)
                    and self.waiting[-1] == me
                ),
                timeout=10,
            )
            self.waiting.remove(me)
            self.finish_order.append(paper_of(request))
            self.condition.notify_all()
        return good(request)


@pytest.mark.parametrize("width", [1, 3])
def test_llm_calls_overlap_up_to_the_concurrency_and_the_post_keeps_source_order(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, width: int
) -> None:
    papers = serve_papers(standin, 7)
    monkeypatch.setenv("DIGEST_CONCURRENCY", str(width))
    gate = Gate(width, total=len(papers))
    standin.llm_default = gate
    ids = ",".join(p.arxiv_id for p in papers)
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert gate.most_in_flight == width
    assert titles_in_post() == [p.title for p in papers]
    if width > 1:
        assert gate.finish_order != gate.arrival_order  # answers came back out of order


# --- idempotency and caching --------------------------------------------------------------


def test_a_rerun_makes_no_calls_and_changes_no_byte(standin: StandIn) -> None:
    papers = serve_papers(standin, 3)
    ids = ",".join(p.arxiv_id for p in papers)
    assert digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)[0] == 0
    files = {
        path: (path.read_bytes(), path.stat().st_mtime_ns) for path in (POST, DAY_FILE, REPORT)
    }
    calls = (len(standin.llm_requests), len(standin.pdf_requests), len(standin.arxiv_requests))
    assert calls == (3, 3, 1)

    code, out, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert f"unchanged: {POST}" in out
    assert (
        len(standin.llm_requests),
        len(standin.pdf_requests),
        len(standin.arxiv_requests),
    ) == calls
    assert {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in files} == files

    # --force redoes the day: the LLM is asked again, the PDFs still come from the cache.
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE, "--force")
    assert code == 0, err
    assert len(standin.llm_requests) == 6 and len(standin.pdf_requests) == 3
    assert POST.read_bytes() == files[POST][0]


def test_a_paper_published_on_an_earlier_day_is_skipped(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = serve_papers(standin, 2)
    assert (
        digest("daily", "--source", "ids", "--ids", first.arxiv_id, "--date", "2025-12-15")[0] == 0
    )
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", f"{first.arxiv_id},{second.arxiv_id}", "--date", DATE
    )
    assert code == 0, err
    assert f"{first.arxiv_id}: skipped (already published on 2025-12-15)" in err
    assert titles_in_post() == [second.title]
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert [p["status"] for p in report["papers"]] == ["skipped", "done"]

    monkeypatch.setenv("DIGEST_SKIP_PUBLISHED", "false")
    assert (
        digest(
            "daily",
            "--source",
            "ids",
            "--ids",
            f"{first.arxiv_id},{second.arxiv_id}",
            "--date",
            DATE,
        )[0]
        == 0
    )
    assert titles_in_post() == [first.title, second.title]


def files_now() -> dict[Path, tuple[bytes, int]]:
    return {path: (path.read_bytes(), path.stat().st_mtime_ns) for path in (POST, DAY_FILE, REPORT)}


def test_a_rerun_keeps_the_day_when_the_ranking_changes_and_a_larger_limit_adds_to_it(
    standin: StandIn,
) -> None:
    one, two, three = serve_papers(standin, 3)
    standin.hf_days[DATE] = [hf_item(one, 20), hf_item(two, 10), hf_item(three, 30)]
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    assert titles_in_post() == [three.title, one.title]
    before, calls = files_now(), len(standin.llm_requests)

    # Later that day paper 2 overtakes both: the published day stays as it is.
    standin.hf_days[DATE] = [hf_item(one, 20), hf_item(two, 50), hf_item(three, 30)]
    code, out, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert f"unchanged: {POST}" in out
    assert files_now() == before and len(standin.llm_requests) == calls

    # A larger limit adds paper 2 where the source ranks it; the others keep their order.
    assert digest("daily", "--date", DATE, "--limit", "3")[0] == 0
    assert titles_in_post() == [two.title, three.title, one.title]
    assert len(standin.llm_requests) == calls + 1


def test_the_limit_counts_only_papers_not_published_before(standin: StandIn) -> None:
    one, two, three = serve_papers(standin, 3)
    ids = ("--source", "ids", "--ids", one.arxiv_id)
    assert digest("daily", *ids, "--date", "2025-12-15")[0] == 0
    standin.hf_days[DATE] = [hf_item(one, 100), hf_item(two, 50), hf_item(three, 10)]
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert titles_in_post() == [two.title, three.title]
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert [(p["paper"], p["status"]) for p in report["papers"]] == [
        (one.arxiv_id, "skipped"),
        (f"{two.arxiv_id}v1", "done"),
        (f"{three.arxiv_id}v1", "done"),
    ]
    # A re-run redoes nothing and rewrites nothing, not even the report.
    before = files_now()
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    assert files_now() == before


def test_force_keeps_the_earlier_entry_of_a_paper_whose_redo_fails(standin: StandIn) -> None:
    one, two = serve_papers(standin, 2)
    ids = ("--source", "ids", "--ids", f"{one.arxiv_id},{two.arxiv_id}", "--date", DATE)
    assert digest("daily", *ids)[0] == 0
    post = POST.read_bytes()

    def second_fails(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if paper_of(request).startswith(two.arxiv_id):
            return error_reply(400, "context too long")
        return good(request)

    standin.llm_default = second_fails
    code, _, err = digest("daily", *ids, "--force")
    assert code == 1
    assert "(its earlier entry is kept)" in err and f"{two.arxiv_id}v1" in err
    assert titles_in_post() == [one.title, two.title]
    assert POST.read_bytes() == post


def test_the_digest_cache_survives_a_lost_day_file(standin: StandIn) -> None:
    papers = serve_papers(standin, 2)
    ids = ",".join(p.arxiv_id for p in papers)
    digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    post = POST.read_bytes()
    DAY_FILE.unlink()
    POST.unlink()
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert len(standin.llm_requests) == 2  # both digests came from the cache
    assert POST.read_bytes() == post


# --- cost, progress, report ---------------------------------------------------------------


def test_max_cost_stops_starting_papers(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    papers = serve_papers(standin, 3)
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    usage = {"prompt_tokens": 10_000, "completion_tokens": 2_000, "prompt_tokens_details": {}}
    digest_json = answer_json(make_digest().model_dump())
    standin.llm_default = lambda request: completion(digest_json, usage=usage)
    ids = ",".join(p.arxiv_id for p in papers)
    # A paper is estimated at about 0.0035 USD and costs 0.0072: after the first, the next
    # estimate would pass the cap.
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", ids, "--date", DATE, "--max-cost", "0.009"
    )
    assert code == 1
    assert len(standin.llm_requests) == 1
    assert err.count("stopped:") == 2 and "would pass --max-cost 0.009 USD" in err
    assert len(titles_in_post()) == 1


def test_max_cost_needs_a_known_price(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    serve_papers(standin, 1)
    monkeypatch.setenv("DIGEST_PRICES", "{}")
    monkeypatch.setenv("DIGEST_MODEL", "unpriced-model")
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE, "--max-cost", "1"
    )
    assert code == 2 and "--max-cost needs the price of 'unpriced-model'" in err


def test_plain_progress_lines_summary_and_run_report(standin: StandIn) -> None:
    papers = serve_papers(standin, 2)
    ids = f"{papers[0].arxiv_id},2512.99999,{papers[1].arxiv_id}"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("[")]
    assert len(lines) == 3 and lines[0] == "[1/3] 2512.99999: failed (not found on arXiv)"
    tokens_in = sum(standin.prompt_tokens)  # as the stand-in counted them, answer by answer
    cost = ((tokens_in - 200) * 0.40 + 200 * 0.10 + 400 * 1.60) / 1e6
    assert "2 of 3 in" in err and f"{tokens_in}/400" in err and f"{cost:.4f}" in err  # totals
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert report["source"] == "ids" and report["model"] == "standin-model"
    assert report["totals"] == {
        "papers": 3,
        "done": 2,
        "cached": 0,
        "reused": 0,
        "failed": 1,
        "skipped": 0,
        "stopped": 0,
        "tokens_in": tokens_in,
        "tokens_out": 400,
        "cost_usd": pytest.approx(cost, abs=1e-6),
    }
    assert report["papers"][1] == {
        **report["papers"][1],
        "paper": "2512.99999",
        "status": "failed",
        "error": "not found on arXiv",
    }
    assert set(report["papers"][0]["stage_seconds"]) == {"download", "extract", "summarize"}


def test_bars_on_a_terminal() -> None:
    screen = io.StringIO()
    console = Console(file=screen, force_terminal=True, width=100)
    with BarProgress(console, total=3) as bars:
        bars.stage_done("2512.10001", "download")
        bars.paper_done(PaperResult.failed(ArxivRef("2512.10001"), PaperFailed("x")))
        # Digested from its abstract: no download or extraction, yet done.
        bars.stage_done("2512.10002v1", "summarize")
        bars.paper_done(PaperResult(ArxivRef("2512.10002", 1), status="done"))
        done = {task.description: task.completed for task in bars.bars.tasks}
        bars.paper_done(PaperResult(ArxivRef("2512.10003", 1), status="reused"))
        finished = {task.description: task.finished for task in bars.bars.tasks}
    text = screen.getvalue()
    for name in ("papers", "download", "extract", "summarize"):
        assert name in text
    assert done == {"papers": 2, "download": 2, "extract": 2, "summarize": 2}
    assert all(finished.values()), finished


# --- the lock and crash safety ------------------------------------------------------------


def test_a_second_run_exits_3_naming_the_holder(standin: StandIn) -> None:
    serve_papers(standin, 1)
    with OutputLock(Path("outputs")):
        code, _, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 3
    assert f"outputs is locked by another digest run (pid {os.getpid()}, started 20" in err
    assert standin.arxiv_requests == [] and standin.llm_requests == []
    assert digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)[0] == 0


def test_a_stale_lock_and_stale_temporaries_are_taken_over(standin: StandIn) -> None:
    serve_papers(standin, 1)
    Path("outputs/data").mkdir(parents=True)
    Path("outputs/.digest.lock").write_text("pid 999999, started 2025-12-16T08:00:00+09:00\n")
    leftover = Path(f"outputs/data/.digest-tmp.{DATE}.json.x1y2.tmp")
    leftover.write_text('{"half": ')
    code, _, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 0, err
    assert not leftover.exists()
    assert Path("outputs/.digest.lock").read_text() == ""


@pytest.mark.slow
def test_kill_9_mid_run_then_a_rerun_finishes_without_redoing_papers(
    standin: StandIn, tmp_path: Path
) -> None:
    papers = serve_papers(standin, 4)
    release = threading.Event()
    answered: list[str] = []

    def hold_the_third(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if len(answered) >= 2 and not release.is_set():
            release.wait(20)  # the run is killed while this request is open
        answered.append(paper_of(request))
        return good(request)

    standin.llm_default = hold_the_third
    environment = {**os.environ, "DIGEST_CONCURRENCY": "1", "PYTHONPATH": str(REPO)}
    ids = ",".join(p.arxiv_id for p in papers)
    command = [
        sys.executable,
        "-m",
        "digest",
        "daily",
        "--source",
        "ids",
        "--ids",
        ids,
        "--date",
        DATE,
    ]
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 30
    while len(standin.llm_requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(standin.llm_requests) == 3, process.communicate(timeout=5)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    release.set()

    # Nothing half-written: no post or day file yet, and every cached digest is whole JSON.
    assert not POST.exists() and not DAY_FILE.exists()
    cached = list(Path("cache/digests").glob("*.json"))
    assert len(cached) == 2
    for path in cached:
        json.loads(path.read_text(encoding="utf-8"))

    done_before = set(answered[:2])
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    asked_again = [paper_of(r) for r in standin.llm_requests[3:]]
    assert not done_before & set(asked_again)  # finished papers were not redone
    assert sorted(asked_again) == sorted({p.arxiv_id for p in papers} - done_before)
    assert titles_in_post() == [p.title for p in papers]
