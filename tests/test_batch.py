"""digest backfill --batch: the LLM work of a range through the Batch API stand-in, driven by
the real openai client over a real socket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import DIGEST_JSON, digest, with_digest
from tests.standins import StandIn, completion, error_reply
from tests.test_backfill import DAYS, post, serve_days
from tests.test_nightly import paper_of

RANGE = ["--from", DAYS[0], "--to", DAYS[-1]]


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    # The batches answer on the stand-in's next look; a real wait would only slow the tests.
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")


def day_file(day: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"outputs/data/{day}.json").read_text())
    return data


def without_provenance(day: dict[str, Any]) -> dict[str, Any]:
    return {**day, "papers": [{**p, "provenance": None} for p in day["papers"]]}


def created(standin: StandIn) -> list[tuple[str, str]]:
    return [call for call in standin.batch_api_calls if call == ("POST", "/v1/batches")]


def records(folder: Path = Path("cache/batches")) -> list[dict[str, Any]]:
    found = [json.loads(path.read_text()) for path in folder.glob("*.record.json")]
    return sorted(found, key=lambda record: str(record["submitted_at"]))


def invalid_first(number: int) -> Any:
    """llm_default: the paper numbered ``number`` answers in English the first time."""
    asked: set[str] = set()

    def answer(request: dict[str, Any]) -> Any:
        arxiv_id = paper_of(request)
        if arxiv_id == f"2512.{10000 + number}" and arxiv_id not in asked:
            asked.add(arxiv_id)
            return with_digest(problem="This line is in English, not Korean.")
        return completion(DIGEST_JSON)

    return answer


@pytest.mark.slow  # 0.5 s or more
def test_a_batch_backfill_matches_the_interactive_one_at_half_the_price(
    standin: StandIn, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_days(standin)
    standin.llm_default = invalid_first(3)
    code, _, err = digest("backfill", *RANGE, "--output-dir", "interactive")
    assert code == 0, err
    interactive_bodies = list(standin.llm_requests)
    assert len(interactive_bodies) == 7  # six papers, one re-ask
    interactive = {day: day_file_in("interactive", day) for day in DAYS}
    interactive_posts = {
        day: Path(f"interactive/_posts/{day}-daily-papers.md").read_bytes() for day in DAYS
    }

    monkeypatch.setenv("DIGEST_CACHE_DIR", str(tmp_path / "batch-cache"))
    standin.llm_default = invalid_first(3)
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(standin.llm_requests) == 7  # no interactive request
    # One batch for the range's six papers, then a second round for the one re-ask.
    jobs = list(standin.batches.values())
    assert len(created(standin)) == 2
    # The server's batches are listed once: the check that it has a Batch API is the page
    # the lookup for batches with no record goes through.
    assert standin.batch_api_calls.count(("GET", "/v1/batches")) == 1
    assert [len(batch_input(standin, job)) for job in jobs] == [6, 1]
    # The same request bodies the interactive run sent: same prompts, same response_format.
    canonical = {json.dumps(b, sort_keys=True, ensure_ascii=False) for b in interactive_bodies}
    batch = {json.dumps(b, sort_keys=True, ensure_ascii=False) for b in standin.batch_requests}
    assert batch == canonical
    # Answers came out of order and were matched by custom_id: each paper has its own entry.
    for day in DAYS:
        assert without_provenance(day_file(day)) == without_provenance(interactive[day])
        assert post(day).read_bytes() == interactive_posts[day]
        for entry, listed in zip(day_file(day)["papers"], interactive[day]["papers"], strict=True):
            provenance, before = entry["provenance"], listed["provenance"]
            assert provenance["mode"] == "batch" and "mode" not in before
            assert provenance["batch_id"] in standin.batches
            assert provenance["cost_usd"] == pytest.approx(before["cost_usd"] / 2, abs=2e-6)
            assert provenance["saved_usd"] == pytest.approx(provenance["cost_usd"], abs=2e-6)
    assert "USD saved by the batch price" in err
    assert "3 of 3 days written, 6 papers digested, 0 not digested" in err
    # digest stats shows what the batch saved.
    code, out, _ = digest("stats", "--json")
    total = json.loads(out)["total"]
    saved = sum(p["provenance"]["saved_usd"] for day in DAYS for p in day_file(day)["papers"])
    assert total["batch"] == 6 and total["batch_saved_usd"] == pytest.approx(saved, abs=1e-6)
    assert total["batch_saved_usd"] == pytest.approx(total["cost_usd"], abs=1e-5)
    code, out, _ = digest("stats")
    assert "Batch API: 6 digests answered at the batch price" in " ".join(out.split())


@pytest.mark.slow  # 0.5 s or more
def test_a_request_posted_and_a_request_batched_are_the_same_bytes(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One builder, one encoder: the interactive path posts the very bytes the batch path
    # writes into its input file, by construction.
    serve_days(standin)
    code, _, err = digest("backfill", *RANGE, "--output-dir", "interactive")
    assert code == 0, err
    posted = set(standin.llm_bodies)
    assert len(posted) == 6

    monkeypatch.setenv("DIGEST_CACHE_DIR", "batch-cache")
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    (job,) = standin.batches.values()
    lines = standin.files[job.batch["input_file_id"]].data.splitlines()
    batched = set()
    for line in lines:
        head, separator, rest = line.partition(b',"body":')
        assert separator and head.startswith(b'{"custom_id":') and rest.endswith(b"}")
        batched.add(rest[:-1])
    assert batched == posted


def day_file_in(folder: str, day: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"{folder}/data/{day}.json").read_text())
    return data


def kill_once_submitted(batches: int) -> None:
    """Run a batch backfill in another process; SIGKILL it once ``batches`` batches are
    created and saved."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "backfill", *RANGE, "--batch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "DIGEST_BATCH_POLL": "0.05"},
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if sum(bool(r.get("batch_id")) for r in records()) >= batches:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
    finally:
        process.wait(10)
    assert sum(bool(r.get("batch_id")) for r in records()) == batches


@pytest.mark.slow
def test_the_saved_batch_is_collected_after_a_kill_and_nothing_is_resubmitted(
    standin: StandIn,
) -> None:
    serve_days(standin)
    standin.stall_batches_from = 1  # the batch stays in progress while the run waits
    kill_once_submitted(1)
    assert not post(DAYS[0]).exists()
    assert len(created(standin)) == 1 and standin.batch_requests == []

    standin.stall_batches_from = None
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1  # the saved batch was collected, none submitted
    assert len(standin.batch_requests) == 6 and standin.llm_requests == []
    assert all(post(day).exists() for day in DAYS)
    saved = records()
    assert len(saved) == 1 and saved[0]["collected"] and saved[0]["status"] == "completed"

    code, _, err = digest("backfill", *RANGE, "--batch")  # and once more: all from the cache
    assert code == 0, err
    assert len(created(standin)) == 1 and len(standin.batch_requests) == 6


@pytest.mark.slow
def test_a_kill_during_the_re_ask_round_resubmits_nothing(standin: StandIn) -> None:
    serve_days(standin)
    standin.llm_default = invalid_first(3)
    standin.stall_batches_from = 2  # the first round answers; the re-ask's batch waits
    kill_once_submitted(2)
    assert len(created(standin)) == 2 and len(standin.batch_requests) == 6
    # The five good answers were cached and their days written before the kill.
    assert post(DAYS[0]).exists() and post(DAYS[2]).exists() and not post(DAYS[1]).exists()

    standin.stall_batches_from = None
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 2  # the re-ask's saved batch was found by its body
    assert len(standin.batch_requests) == 7 and standin.llm_requests == []
    entry = next(p for p in day_file(DAYS[1])["papers"] if p["arxiv_id"] == "2512.10003")
    assert [call["outcome"] for call in entry["provenance"]["calls"]] == ["invalid", "ok"]


@pytest.mark.slow  # 0.5 s or more
@pytest.mark.parametrize("created_on_the_server", [False, True])
def test_a_kill_between_saving_and_creating_loses_nothing_and_sends_nothing_twice(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, created_on_the_server: bool
) -> None:
    from digest.llm.batch_api import BatchApi

    serve_days(standin)
    create = BatchApi.create

    async def killed(self: BatchApi, file_id: str) -> Any:
        if created_on_the_server:
            await create(self, file_id)  # the server made it; its answer never came back
        raise SystemExit(137)

    monkeypatch.setattr(BatchApi, "create", killed)
    code, _, _ = digest("backfill", *RANGE, "--batch")
    assert code == 137
    (saved,) = records()
    assert saved["batch_id"] is None and saved["status"] == "submitting"
    assert len(created(standin)) == int(created_on_the_server)

    monkeypatch.setattr(BatchApi, "create", create)
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1  # adopted from the server's list, or created now
    assert len(standin.batch_requests) == 6
    assert all(len(day_file(day)["papers"]) == 2 for day in DAYS)
    (saved,) = records()
    assert saved["batch_id"] in standin.batches and saved["collected"]


def test_an_expired_batch_keeps_its_answers_and_resubmits_the_rest(standin: StandIn) -> None:
    serve_days(standin)
    standin.batch_outcomes = [("expired", 4)]
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    first, second = standin.batches.values()
    assert first.batch["status"] == "expired" and second.batch["status"] == "completed"
    answered = {line["custom_id"] for line in batch_lines(standin, first, "output_file_id")}
    assert len(answered) == 4
    resent = {line["custom_id"] for line in batch_input(standin, second)}
    assert len(resent) == 2 and not resent & answered  # only what expired went again
    assert len(standin.batch_requests) == 6  # nothing answered twice
    assert sum(len(day_file(day)["papers"]) for day in DAYS) == 6


def batch_lines(standin: StandIn, job: Any, which: str) -> list[dict[str, Any]]:
    data = standin.files[job.batch[which]].data
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def batch_input(standin: StandIn, job: Any) -> list[dict[str, Any]]:
    data = standin.files[job.batch["input_file_id"]].data
    return [json.loads(line) for line in data.splitlines() if line.strip()]


@pytest.mark.slow  # 0.5 s or more
def test_a_failed_request_is_retried_in_new_batches_then_given_up(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_days(standin)
    monkeypatch.setenv("DIGEST_BATCH_RETRIES", "2")

    def answer(request: dict[str, Any]) -> Any:
        if paper_of(request) == "2512.10003":
            return error_reply(500, "The server had an error while processing your request.")
        return completion(DIGEST_JSON)

    standin.llm_default = answer
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 1
    # Round 1 with all six, then the failed request alone, twice.
    assert [len(batch_input(standin, job)) for job in standin.batches.values()] == [6, 1, 1]
    assert "HTTP 500" in err and "(3 times); run again to retry, or without --batch" in err
    assert "3 of 3 days written, 5 papers digested, 1 not digested" in err
    report = json.loads(Path(f"outputs/data/{DAYS[1]}.run.json").read_text())
    failed = [p for p in report["papers"] if p["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["failed_at"] == "summarize"

    # The next run, the server mended, asks again (a failed paper's requests are not replayed).
    standin.llm_default = lambda request: completion(DIGEST_JSON)
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert [len(batch_input(standin, job)) for job in standin.batches.values()] == [6, 1, 1, 1]
    assert len(day_file(DAYS[1])["papers"]) == 2


@pytest.mark.slow  # 0.5 s or more
def test_a_failed_batch_is_sent_again_as_a_new_batch(standin: StandIn) -> None:
    serve_days(standin)
    standin.batch_outcomes = ["failed"]
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    first, second = standin.batches.values()
    assert first.batch["status"] == "failed" and second.batch["status"] == "completed"
    assert len(batch_input(standin, second)) == 6
    assert all(len(day_file(day)["papers"]) == 2 for day in DAYS)
    saved = records()
    assert [r["status"] for r in saved] == ["failed", "completed"]
    assert saved[0]["errors"] and "invalid_request" in saved[0]["errors"][0]


def test_a_server_without_a_batch_api_is_one_line_and_exit_2(standin: StandIn) -> None:
    serve_days(standin)
    standin.batches_supported = False
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 2
    assert (
        "has no Batch API (HTTP 404 on /v1/batches); run 'digest backfill' without --batch" in err
    )
    assert len(err.strip().splitlines()) == 1
    assert standin.hf_requests == [] and standin.llm_requests == []  # asked before any paper


@pytest.mark.slow  # 0.5 s or more
def test_max_cost_refuses_a_batch_the_estimate_puts_over_the_cap(standin: StandIn) -> None:
    serve_days(standin)
    code, _, err = digest("backfill", *RANGE, "--batch", "--max-cost", "0.001")
    assert code == 2
    assert "would pass --max-cost 0.001 USD; nothing was submitted" in err
    assert created(standin) == [] and standin.files == {}
    assert not any(post(day).exists() for day in DAYS)
    # Within the cap, the same range goes through.
    code, _, err = digest("backfill", *RANGE, "--batch", "--max-cost", "1")
    assert code == 0, err
    assert len(created(standin)) == 1


@pytest.mark.slow  # 0.5 s or more
def test_reask_interactive_sends_only_the_re_ask_interactively(standin: StandIn) -> None:
    serve_days(standin)
    standin.llm_default = invalid_first(2)
    code, _, err = digest("backfill", *RANGE, "--batch", "--reask-interactive")
    assert code == 0, err
    assert len(created(standin)) == 1 and len(standin.batch_requests) == 6
    assert len(standin.llm_requests) == 1  # the re-ask
    assert standin.llm_requests[0]["messages"][-2]["role"] == "assistant"
    entry = next(p for p in day_file(DAYS[0])["papers"] if p["arxiv_id"] == "2512.10002")
    provenance = entry["provenance"]
    assert provenance["mode"] == "batch" and provenance["attempts"] == 2
    # The batch answer at half price, the interactive one at full price.
    first, second = provenance["calls"]
    cost = (first["tokens_in"] - first["tokens_cached"]) * 0.2 + first["tokens_cached"] * 0.05
    cost += first["tokens_out"] * 0.8
    cost += (second["tokens_in"] - second["tokens_cached"]) * 0.4 + second["tokens_cached"] * 0.1
    cost += second["tokens_out"] * 1.6
    assert provenance["cost_usd"] == pytest.approx(cost / 1e6, abs=2e-6)


@pytest.mark.slow  # 0.5 s or more
def test_max_cost_also_bounds_the_interactive_re_asks(standin: StandIn) -> None:
    serve_days(standin)
    code, _, err = digest("backfill", *RANGE, "--batch", "--max-cost", "0")
    assert code == 2
    first_round = float(re.search(r"estimated cost, ([0-9.]+) USD for 6 requests", err)[1])  # type: ignore[index]
    standin.llm_default = invalid_first(2)
    # The batch fits (its estimate is shown to 4 decimals); a re-ask at the list price does not.
    cap = f"{first_round + 0.0001:.6f}"
    code, _, err = digest("backfill", *RANGE, "--batch", "--reask-interactive", "--max-cost", cap)
    assert code == 1
    assert standin.llm_requests == []  # the re-ask was never sent
    assert "not asked again: the estimated spend would pass --max-cost" in err
    assert "3 of 3 days written, 5 papers digested, 1 not digested" in err


def test_status_shows_the_saved_batches_without_waiting(standin: StandIn) -> None:
    code, out, _ = digest("backfill", "--status")
    assert code == 0 and "No batches saved" in out
    serve_days(standin)
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    calls = len(standin.batch_api_calls)
    code, out, _ = digest("backfill", "--status")
    assert code == 0
    (job,) = standin.batches.values()
    assert job.batch["id"] in out and "completed" in out
    assert len(standin.batch_api_calls) == calls  # finished batches are not looked at again


def test_reask_interactive_needs_batch(standin: StandIn) -> None:
    code, _, err = digest("backfill", *RANGE, "--reask-interactive")
    assert code == 2 and "--reask-interactive goes with --batch" in err


@pytest.mark.slow  # 0.5 s or more
def test_requests_are_split_at_the_api_limits(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.llm import batch

    serve_days(standin)
    monkeypatch.setattr(batch, "MAX_REQUESTS", 4)  # 50,000 for the real API
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert [len(batch_input(standin, job)) for job in standin.batches.values()] == [4, 2]
    monkeypatch.setattr(batch, "MAX_REQUESTS", 50_000)
    one_line = max(
        len(line)
        for line in standin.files[
            next(iter(standin.batches.values())).batch["input_file_id"]
        ].data.splitlines()
    )
    monkeypatch.setattr(batch, "MAX_FILE_BYTES", 3 * one_line + 10)  # 200 MB for the real API
    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")
    # Another account: the first run's batches, which the same requests would be found in
    # and not sent again, are not there.
    standin.batches.clear()
    code, _, err = digest("backfill", *RANGE, "--batch", "--output-dir", "other")
    assert code == 0, err
    assert [len(batch_input(standin, job)) for job in standin.batches.values()] == [3, 3]


def test_polls_back_off_and_show_the_counts(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest.llm.batch import BatchRun

    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    start = BatchRun.__init__

    def with_recorded_sleep(self: BatchRun, *args: Any, **options: Any) -> None:
        start(self, *args, **{**options, "sleep": sleep})

    monkeypatch.setattr(BatchRun, "__init__", with_recorded_sleep)
    monkeypatch.setenv("DIGEST_BATCH_POLL", "30")
    monkeypatch.setenv("DIGEST_BATCH_POLL_MAX", "100")
    serve_days(standin)
    standin.batch_polls_per_step = 3
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    # Nine looks (three a status step), the waits between them growing by half up to the cap.
    assert waits == [30, 45, 67.5, 100, 100, 100, 100, 100]
    assert "batch_" in err and ": in_progress, 0 of 6 answered, 0 failed" in err
    assert ": completed, 6 of 6 answered, 0 failed" in err


@pytest.mark.slow
def test_ctrl_c_leaves_the_batch_running(standin: StandIn) -> None:
    serve_days(standin)
    standin.stall_batches_from = 1
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "backfill", *RANGE, "--batch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DIGEST_BATCH_POLL": "0.05"},
    )
    deadline = time.monotonic() + 60
    while not any(r.get("batch_id") for r in records()) and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "the batches submitted keep running on the server" in err
    (job,) = standin.batches.values()
    assert job.batch["status"] == "validating"  # not cancelled
    assert not any("cancel" in path for _, path in standin.batch_api_calls)
    assert Path("outputs/.digest.lock").read_text() == ""  # released


def test_a_full_disk_after_the_submission_stops_cleanly_and_loses_nothing(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from digest.llm.batch_api import BatchApi

    serve_days(standin)

    async def full(self: BatchApi, file_id: str, path: Path) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    with monkeypatch.context() as patch:
        patch.setattr(BatchApi, "_download", full)
        code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 2
    message = err.strip().splitlines()[-1]
    assert message.startswith("error: cannot write ") and "No space left on device" in message
    assert "(disk full?); free space and run again" in message and "Traceback" not in err
    assert len(created(standin)) == 1

    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1 and len(standin.batch_requests) == 6  # nothing again
    assert all(post(day).exists() for day in DAYS)


@pytest.mark.slow  # 0.5 s or more
def test_a_full_disk_before_the_batch_fails_the_papers_with_the_reason(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_faults import full_disk_under

    serve_days(standin)
    with monkeypatch.context() as patch:
        full_disk_under(patch, "cache/batches")
        code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 1 and "Traceback" not in err
    assert "its text could not be kept for the batch: cannot write " in err
    assert "(disk full?)" in err and created(standin) == []
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1 and all(len(day_file(d)["papers"]) == 2 for d in DAYS)


def test_the_days_tables_are_headed_by_their_day_and_shown_in_date_order(
    standin: StandIn,
) -> None:
    serve_days(standin)
    # The batch answers in an order that settles 2025-12-15 first and 2025-12-14 last.
    standin.batch_shuffle_seed = 1
    code, out, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert re.findall(r"^digest run (\S+)$", err, re.MULTILINE) == DAYS
    assert re.findall(r"^wrote: outputs/_posts/(\S+)-daily-papers.md", out, re.MULTILINE) == DAYS
