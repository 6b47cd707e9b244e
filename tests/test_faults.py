"""Faults a long-running nightly job meets: broken earlier day files, a lock taken from it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import answer_json, digest, good
from tests.standins import StandIn
from tests.test_nightly import DATE, DAY_FILE, serve_papers

EARLIER = Path("outputs/data/2025-12-15.json")


def run_report() -> dict[str, Any]:
    return json.loads(Path(f"outputs/data/{DATE}.run.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('{"papers": null}', "not a day file: it has no list of papers"),
        ('{"papers": 5}', "not a day file: it has no list of papers"),
        ("[1, 2]", "not a day file: it has no list of papers"),
        ('{"papers": [', "not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a day file"),
    ],
    ids=["null", "number", "list", "truncated", "deep"],
)
def test_a_broken_earlier_day_file_never_stops_a_later_night(
    standin: StandIn, content: str, problem: str
) -> None:
    serve_papers(standin, 1)
    EARLIER.parent.mkdir(parents=True)
    EARLIER.write_text(content, encoding="utf-8")
    code, out, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 0, err
    assert DAY_FILE.is_file() and "wrote:" in out
    assert err.count(f"warning: {EARLIER}: {problem}") == 1
    assert "ignored for papers published earlier" in err
    assert EARLIER.read_text(encoding="utf-8") == content  # left as it is


def test_a_lock_deleted_during_the_run_writes_no_day_file_and_loses_no_digest(
    standin: StandIn,
) -> None:
    serve_papers(standin, 2)
    lock = Path("outputs/.digest.lock")

    def steal_then_answer(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        if lock.exists():
            os.remove(lock)  # another process "cleans up" the lock while we work
        return good(request)

    standin.llm_default = steal_then_answer
    ids = "2512.10001,2512.10002"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 3
    assert "was removed or replaced during this run" in err and len(err.strip().splitlines()) >= 1
    assert not DAY_FILE.exists()
    assert len(standin.llm_requests) == 2

    standin.llm_default = good
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert len(standin.llm_requests) == 2  # both digests came from the cache
    assert [p["arxiv_id"] for p in json.loads(DAY_FILE.read_text())["papers"]] == ids.split(",")


def test_a_key_a_server_echoes_is_masked_in_messages_and_the_run_report(
    standin: StandIn,
) -> None:
    from tests.conftest import SECRET_KEY
    from tests.standins import error_reply

    serve_papers(standin, 1)
    standin.llm_default = lambda request: error_reply(
        401, f"Incorrect API key provided: {SECRET_KEY}. You can find your API key at …"
    )
    code, out, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 2
    assert SECRET_KEY not in err + out and f"***{SECRET_KEY[-4:]}" in err
    report = Path(f"outputs/data/{DATE}.run.json")
    assert report.is_file() and SECRET_KEY not in report.read_text(encoding="utf-8")


def test_credentials_in_the_base_url_are_masked(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://alice:s3cr3t-pass@127.0.0.1:9/v1")
    monkeypatch.setenv("DIGEST_LLM_MAX_ATTEMPTS", "1")
    code, out, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 1
    assert "no answer from http://***@127.0.0.1:9/v1" in err
    assert "s3cr3t" not in err + out and "alice" not in err
    report = run_report()
    assert report["base_url"] == "http://***@127.0.0.1:9/v1"


def test_a_key_with_a_trailing_newline_is_stripped_with_a_warning(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.conftest import SECRET_KEY

    serve_papers(standin, 1)
    monkeypatch.setenv("OPENAI_API_KEY", SECRET_KEY + "\n")
    code, _, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 0, err
    assert "OPENAI_API_KEY has spaces or a line break around it; removed them" in err
    assert standin.llm_headers[0]["authorization"] == f"Bearer {SECRET_KEY}"


def nothing_was_asked(standin: StandIn) -> bool:
    return not (standin.hf_requests or standin.arxiv_requests or standin.llm_requests)


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda: Path("digest.toml").write_text('outputdir = "x"\n'),
         "error: digest.toml: unknown setting 'outputdir'; did you mean 'output_dir'?"),
        (lambda: Path("digest.toml").write_text("output_dir = \n"),
         "error: digest.toml: not a valid settings file (Invalid value (at line 1, column 14))"),
        (lambda: Path("outputs").write_text("x"),
         "error: outputs is a file, not a folder; move it away or set DIGEST_OUTPUT_DIR"),
        (lambda: Path("outputs/data").parent.mkdir() or Path("outputs/data").write_text("x"),
         "error: outputs/data is a file, not a folder; move it away or set DIGEST_DATA_DIR"),
        (lambda: Path("outputs/.digest.lock").mkdir(parents=True),
         "error: outputs/.digest.lock is not a file; remove it"),
    ],
    ids=["unknown-key", "bad-toml", "output-is-a-file", "data-is-a-file", "lock-is-a-folder"],
)  # fmt: skip
def test_what_would_fail_later_is_one_line_and_exit_2_before_any_request(
    standin: StandIn, setup: Any, message: str
) -> None:
    serve_papers(standin, 1)
    setup()
    code, _, err = digest("daily", "--date", DATE)
    assert code == 2
    assert err.strip().startswith(message) and len(err.strip().splitlines()) == 1
    assert nothing_was_asked(standin)


def test_no_api_key_is_said_before_hugging_face_is_asked(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    code, _, err = digest("daily", "--date", DATE)
    assert code == 2 and "no API key: set OPENAI_API_KEY" in err
    assert nothing_was_asked(standin)


def test_max_cost_without_a_price_is_said_before_hugging_face_is_asked(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_MODEL", "unpriced-model")
    code, _, err = digest("daily", "--date", DATE, "--max-cost", "1")
    assert code == 2 and "--max-cost needs the price of 'unpriced-model'" in err
    assert nothing_was_asked(standin)


@pytest.mark.parametrize(
    ("out", "message"),
    [
        (".", "error: --out . is a folder; give the path of a file to write"),
        (
            "missing/entry.json",
            "error: --out missing/entry.json: the folder missing does not exist",
        ),
    ],
)
def test_paper_out_is_checked_before_the_llm_is_paid(
    standin: StandIn, out: str, message: str
) -> None:
    serve_papers(standin, 1)
    code, _, err = digest("paper", "2512.10001", "--out", out)
    assert code == 2 and err.strip().startswith(message)
    assert nothing_was_asked(standin)


# --- deadlines, not gaps ------------------------------------------------------------------


@pytest.mark.slow  # waits out a real timeout
def test_a_trickling_llm_server_ends_at_llm_timeout(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    standin.trickle = {"llm": 0.05}  # a byte every 50 ms: no read timeout ever runs out
    monkeypatch.setenv("DIGEST_LLM_TIMEOUT", "0.3")
    monkeypatch.setenv("DIGEST_LLM_MAX_ATTEMPTS", "2")
    code, _, err = digest("paper", "2512.10001")
    assert code == 1
    assert "after 2 attempts (each timed out after 0.3 s; raise DIGEST_LLM_TIMEOUT=0.3)" in err


def test_a_trickling_pdf_host_ends_at_http_timeout(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    standin.trickle = {"pdf": 0.01}
    monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("DIGEST_HTTP_MAX_ATTEMPTS", "1")
    code, out, err = digest("paper", "2512.10001", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract" and provenance["full_text_pending"] is True
    assert "took longer than 0.3 s in all" in provenance["input_reason"]


def test_a_trickling_arxiv_api_ends_at_http_timeout(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    standin.trickle = {"arxiv": 0.01}
    monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("DIGEST_HTTP_MAX_ATTEMPTS", "1")
    code, _, err = digest("paper", "2512.10001")
    assert code == 1
    assert "the arXiv API could not be reached (Timeout) after 1 attempt" in err
    assert standin.llm_requests == []


def test_a_trickling_hugging_face_ends_at_http_timeout(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    standin.hf_days[DATE] = [{"paper": {"id": "2512.10001", "title": "x" * 500}}]
    standin.trickle = {"hf": 0.01}
    monkeypatch.setenv("DIGEST_HTTP_TIMEOUT", "0.3")
    monkeypatch.setenv("DIGEST_HTTP_MAX_ATTEMPTS", "1")
    code, _, err = digest("daily", "--date", DATE)
    assert code == 1
    assert "Hugging Face's answer (DIGEST_HTTP_TIMEOUT) took longer than 0.3 s in all" in err


@pytest.mark.slow
@pytest.mark.real_workers
def test_a_slow_pdf_falls_back_at_the_extraction_limit_and_the_others_are_unaffected(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.hostile_pdfs import slow_pdf

    papers = serve_papers(standin, 3)
    standin.pdfs[f"{papers[1].arxiv_id}v1"] = slow_pdf(pages=100, stream_mb=4)  # ~30 s to read
    # Long enough for a fresh worker to read a 4-page PDF on a busy machine, far short of the
    # slow PDF's half a minute.
    monkeypatch.setenv("DIGEST_EXTRACT_TIMEOUT", "4")
    # No spacing: a PDF still queued for a worker when the slow one's are killed is tried
    # again on the new workers.
    monkeypatch.setenv("DIGEST_DOWNLOAD_RATE", "0")
    ids = ",".join(paper.arxiv_id for paper in papers)
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    entries = json.loads(DAY_FILE.read_text(encoding="utf-8"))["papers"]
    inputs = [(e["provenance"]["input"], e["provenance"]["input_reason"]) for e in entries]
    assert inputs == [
        ("full-text", None),
        ("abstract", "extraction took longer than 4 s (DIGEST_EXTRACT_TIMEOUT)"),
        ("full-text", None),
    ]


# --- a full disk --------------------------------------------------------------------------


def full_disk_under(monkeypatch: pytest.MonkeyPatch, folder: str) -> None:
    """Writes under ``folder`` fail as on a full disk (ENOSPC), the others go through."""
    import errno

    from digest import files
    from digest.blog import store

    real = files.atomic_write_bytes

    def write(path: Path, data: bytes) -> None:
        if Path(path).resolve().is_relative_to(Path(folder).resolve()):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        real(path, data)

    for module in (files, store):  # the writer, and the store that calls it by its name
        monkeypatch.setattr(module, "atomic_write_bytes", write)


def test_a_full_cache_loses_no_paid_answer_and_the_rerun_pays_nothing(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 2)
    full_disk_under(monkeypatch, "cache")
    ids = "2512.10001,2512.10002"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert err.count("could not cache the digest of") == 2 and "No space left on device" in err
    assert len(json.loads(DAY_FILE.read_text())["papers"]) == 2
    code, _, _ = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0 and len(standin.llm_requests) == 2  # reused from the day file


def test_a_full_output_folder_says_disk_full_and_the_rerun_pays_nothing(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 2)
    with monkeypatch.context() as patch:
        full_disk_under(patch, "outputs")
        ids = "2512.10001,2512.10002"
        code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 2
    message = err.strip().splitlines()[-1]
    assert message.startswith(f"error: cannot write outputs/data/{DATE}.json: No space left")
    assert "(disk full?)" in message and "the 2 digests made now went to the cache" in message
    assert not DAY_FILE.exists() and len(standin.llm_requests) == 2
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert len(standin.llm_requests) == 2  # both from the cache: nothing paid twice
    assert DAY_FILE.is_file()


# --- the run's deadline -------------------------------------------------------------------


@pytest.mark.slow
def test_past_the_deadline_no_paper_starts_and_what_is_done_is_written(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time

    serve_papers(standin, 4)

    def slow(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(0.7)
        return good(request)

    standin.llm_default = slow
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    # Each PDF half a second after the last, so that the papers reach the LLM in their order.
    monkeypatch.setenv("DIGEST_DOWNLOAD_RATE", "2")
    ids = "2512.10001,2512.10002,2512.10003,2512.10004"
    # 0.04 minutes: 2.4 s, with 0.24 s of grace: three papers at most, never four.
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", ids, "--date", DATE, "--deadline", "0.04"
    )
    assert code == 1
    report = run_report()
    statuses = [paper["status"] for paper in report["papers"]]
    assert statuses[0] == "done" and statuses[-1] == "stopped" and "stopped" in statuses
    for paper in report["papers"]:
        if paper["status"] == "stopped":
            assert "the run's deadline" in paper["error"]
    done = [paper["paper"] for paper in report["papers"] if paper["status"] == "done"]
    written = [entry["arxiv_id"] for entry in json.loads(DAY_FILE.read_text())["papers"]]
    assert [f"{arxiv_id}v1" for arxiv_id in written] == done

    standin.llm_default = good  # the next run finishes the day
    monkeypatch.setenv("DIGEST_DOWNLOAD_RATE", "0")  # in any order
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 0, err
    assert len(json.loads(DAY_FILE.read_text())["papers"]) == 4


# --- what a failed paper cost -------------------------------------------------------------


def test_a_paper_that_fails_after_llm_calls_counts_its_spend_and_stops_the_next(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.standins import completion

    serve_papers(standin, 2)
    english = {"conclusion": ["This is an English sentence only."]}
    from tests.helpers import make_digest

    bad = answer_json(make_digest().model_dump() | english)
    standin.llm_default = lambda request: completion(bad)  # fails validation 3 times
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    # The second PDF half a second after the first, so that the first paper is sent first.
    monkeypatch.setenv("DIGEST_DOWNLOAD_RATE", "2")
    ids = "2512.10001,2512.10002"
    # The first paper's three answers cost about 0.006 USD: more than the cap leaves.
    code, _, _err = digest(
        "daily", "--source", "ids", "--ids", ids, "--date", DATE, "--max-cost", "0.007"
    )
    assert code == 1
    report = run_report()
    # Whichever paper reached the LLM first failed there; the other was never started.
    first, second = sorted(report["papers"], key=lambda paper: paper["status"])
    assert first["status"] == "failed" and first["tokens_in"] == sum(standin.prompt_tokens)
    assert first["tokens_out"] == 600 and first["cost_usd"] > 0.005
    assert second["status"] == "stopped" and "--max-cost" in second["error"]
    assert report["totals"]["cost_usd"] == pytest.approx(first["cost_usd"], abs=1e-6)
    assert len(standin.llm_requests) == 3  # the second paper was never sent


# --- typed failures -------------------------------------------------------------------------


def test_a_refused_key_stops_the_run_after_writing_what_was_done(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.standins import error_reply

    serve_papers(standin, 3)
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")  # the papers reach the LLM one by one
    standin.llm_script = [good]
    standin.llm_default = lambda request: error_reply(401, "Incorrect API key provided")
    ids = "2512.10001,2512.10002,2512.10003"
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        "error: the LLM server refused the API key (HTTP 401: Incorrect API key provided); "
        "check OPENAI_API_KEY"
    )
    # The paper digested before the refusal is written; the last one never reached the LLM.
    report = run_report()
    done = [p["paper"].removesuffix("v1") for p in report["papers"] if p["status"] == "done"]
    assert [p["arxiv_id"] for p in json.loads(DAY_FILE.read_text())["papers"]] == done
    assert len(done) == 1 and len(standin.llm_requests) == 2
    assert sorted((p["status"], p["failed_at"]) for p in report["papers"]) == [
        ("done", None),
        ("failed", "summarize"),
        ("failed", "summarize"),
    ]


def test_the_run_report_names_the_stage_each_paper_stopped_at(standin: StandIn) -> None:
    serve_papers(standin, 1)
    ids = "2512.10001,2512.99999"  # the second is not on arXiv
    code, _, err = digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)
    assert code == 1, err
    papers = {p["paper"]: p for p in run_report()["papers"]}
    assert papers["2512.99999"]["failed_at"] == "metadata"
    assert papers["2512.99999"]["error"] == "not found on arXiv"
    assert papers["2512.10001v1"]["failed_at"] is None


def test_a_failure_raised_in_a_worker_process_keeps_its_kind_and_fields() -> None:
    import pickle

    from digest.errors import ExtractionFailed, PaperFailed, SummaryFailed
    from digest.models import Usage

    failure = pickle.loads(pickle.dumps(ExtractionFailed("encrypted")))
    assert isinstance(failure, PaperFailed) and failure.stage == "extract"
    assert (failure.reason, str(failure), failure.transient) == ("encrypted", "encrypted", False)
    spent = SummaryFailed("invalid", usage=Usage(tokens_in=5, tokens_out=7), attempts=3)
    again = pickle.loads(pickle.dumps(spent))
    assert (again.usage, again.attempts, again.stage) == (spent.usage, 3, "summarize")
