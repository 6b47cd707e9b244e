"""backfill --batch against a hostile or broken server, lost state files, kills at random
moments and two backfills sharing one cache folder: what is paid for is never paid twice nor
lost, nothing a server says becomes a path, and every wait ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SECRET_KEY
from tests.helpers import DIGEST_JSON, digest
from tests.standins import Hold, Reply, StandIn, completion, json_reply
from tests.test_backfill import DAYS, post, serve_days
from tests.test_batch import RANGE, batch_input, created, invalid_first, records
from tests.test_nightly import paper_of

FOLDER = Path("cache/batches")
BACKFILL = [sys.executable, "-m", "digest", "backfill", *RANGE, "--batch"]


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")


def retrieved(path: str, method: str) -> bool:
    """A GET of one batch (not the list)."""
    return method == "GET" and path.startswith("/v1/batches/")


def rewrite(reply: Reply, change: Any) -> Reply:
    status, headers, body = reply
    data = json.loads(body)
    change(data)
    return status, headers, json.dumps(data).encode()


def answered_twice(standin: StandIn) -> list[str]:
    """The request bodies a batch answered more than once (each was paid for each time)."""
    seen = Counter(json.dumps(body, sort_keys=True) for body in standin.batch_requests)
    return [paper_of(json.loads(body)) for body, count in seen.items() if count > 1]


def all_days_written() -> bool:
    return all(post(day).exists() for day in DAYS)


# --- 1. a line nested past any parser ---------------------------------------------------


@pytest.mark.slow  # 0.5 s or more
def test_an_output_line_nested_past_the_parser_is_skipped_and_its_paper_asked_again(
    standin: StandIn,
) -> None:
    serve_days(standin)
    spoiled: list[str] = []

    def nest_the_first_line(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if path.endswith("/content") and b'"response"' in body and not spoiled:
            lines = body.split(b"\n")
            spoiled.append(json.loads(lines[0])["custom_id"])
            lines[0] = b"[" * 200_000
            return status, headers, b"\n".join(lines)
        return reply

    standin.batch_tamper = nest_the_first_line
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert "line that is no answer (too long, or not JSON) skipped" in err
    assert all_days_written()
    # The spoiled answer's paper went in a second batch; nothing else was asked twice.
    assert [len(batch_input(standin, job)) for job in standin.batches.values()] == [6, 1]
    # The saved output still holds the line; later runs read past it.
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err


# --- 2. an output file that 404s ----------------------------------------------------------


@pytest.mark.slow  # 0.5 s or more
@pytest.mark.parametrize("gone", [False, True])
def test_an_output_file_that_404s_is_looked_up_again_then_given_up(
    standin: StandIn, gone: bool
) -> None:
    serve_days(standin)
    misses: list[str] = []

    def stale_output_id(method: str, path: str, reply: Reply) -> Reply:
        if not retrieved(path, method) or misses:
            return reply

        def change(batch: dict[str, Any]) -> None:
            if batch["status"] == "completed":
                misses.append(batch["output_file_id"])
                batch["output_file_id"] = "file-not-there"

        return rewrite(reply, change)

    def missing_output(method: str, path: str, reply: Reply) -> Reply:
        if path.endswith("/content") and b'"response"' in reply[2] and not misses:
            misses.append(path)  # the first batch's output: gone for good
        if misses and path == misses[0]:
            return json_reply(404, {"error": {"message": "No such File object"}})
        return reply

    standin.batch_tamper = missing_output if gone else stale_output_id
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert all_days_written()
    sizes = [len(batch_input(standin, job)) for job in standin.batches.values()]
    if gone:
        # Once more after a second look, then its requests were sent again, once.
        assert sizes == [6, 6]
        (first, _) = sorted(records(), key=lambda record: record["round"])
        assert "is gone from the server (HTTP 404)" in " ".join(first["errors"])
    else:
        assert sizes == [6]  # the batch's file id, looked up again, was found
    asked = len(standin.batch_api_calls)
    code, out, _ = digest("backfill", "--status")
    assert code == 0, out
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    # Nothing is asked for the missing file again: the records are collected.
    assert not any("content" in path for _, path in standin.batch_api_calls[asked:])


# --- 3. --max-cost from the second round on -----------------------------------------------


def test_the_second_round_uploads_only_the_requests_max_cost_allows(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_days(standin)
    english = {"2512.10002", "2512.10003"}  # these two answer in English the first time

    def answer(request: dict[str, Any]) -> Any:
        paper = paper_of(request)
        if paper in english:
            english.discard(paper)
            return completion(json.dumps({"problem": "This line is in English."}))
        return completion(DIGEST_JSON)

    standin.llm_default = answer
    # A large output limit makes each request's estimate about 0.04 USD at batch prices: six
    # fit under 0.30, and one of the two re-asks after them, not both.
    monkeypatch.setenv("DIGEST_MAX_OUTPUT_TOKENS", "100000")
    code, _, err = digest("backfill", *RANGE, "--batch", "--max-cost", "0.30")
    assert code == 1, err
    second = list(standin.batches.values())[1]
    assert len(batch_input(standin, second)) == 1
    assert len(standin.batch_requests) == 7  # six, then the one re-ask allowed
    assert "not asked again: the estimated spend would pass --max-cost 0.3 USD" in err
    (_, record) = sorted(records(), key=lambda record: record["round"])
    assert len(record["requests"]) == 1


@pytest.mark.slow  # 0.5 s or more
def test_a_huge_answer_is_not_sent_back_whole_with_its_re_ask(standin: StandIn) -> None:
    serve_days(standin)
    huge = {"2512.10001"}

    def answer(request: dict[str, Any]) -> Any:
        paper = paper_of(request)
        if paper in huge:
            huge.discard(paper)
            return completion("x" * 5_000_000)  # not JSON: re-asked, with this answer
        return completion(DIGEST_JSON)

    standin.llm_default = answer
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    reask = list(standin.batches.values())[1]
    (line,) = standin.files[reask.batch["input_file_id"]].data.splitlines()
    assert len(line) < 200_000  # the paper and at most 32,000 characters of the answer


# --- 4. request_counts that are not counts ------------------------------------------------


def kill_when(condition: Any, timeout: float = 60) -> None:
    """``digest backfill --batch`` in another process, SIGKILLed once ``condition()``."""
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", "backfill", *RANGE, "--batch"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "DIGEST_BATCH_POLL": "0.05"},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not condition() and process.poll() is None:
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(10)


@pytest.mark.slow
def test_request_counts_that_are_not_counts_are_neither_saved_nor_shown(
    standin: StandIn,
) -> None:
    made_up = [
        {"total": None, "completed": None, "failed": None},
        {"total": "6", "completed": 1.5, "failed": True},
        {"total": 10**30, "completed": -5, "failed": 0},
    ]
    serve_days(standin)
    standin.stall_batches_from = 1
    looks: list[str] = []

    def made_up_counts(method: str, path: str, reply: Reply) -> Reply:
        if not retrieved(path, method):
            return reply
        looks.append(path)
        counts = made_up[len(looks) % len(made_up)]
        return rewrite(reply, lambda batch: batch.update(request_counts=counts))

    standin.batch_tamper = made_up_counts
    kill_when(lambda: len(looks) >= 4)
    (saved,) = records()
    assert saved["batch_id"] and saved["counts"] == {}

    standin.stall_batches_from = None
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1  # the record was read: nothing submitted twice
    assert "answered" not in err and "-5" not in err and str(10**30) not in err
    assert all_days_written()


# --- 5. ids that would be paths -----------------------------------------------------------


def test_a_batch_id_that_is_a_path_is_refused(standin: StandIn, tmp_path: Path) -> None:
    serve_days(standin)

    def path_as_id(method: str, path: str, reply: Reply) -> Reply:
        if method == "POST" and path == "/v1/batches":
            return rewrite(reply, lambda batch: batch.update(id="../../escaped/pwned"))
        return reply

    standin.batch_tamper = path_as_id
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 2, err
    assert "the server gave a batch id that is not an id ('../../escaped/pwned')" in err
    assert err.count("error:") == 1
    assert not (tmp_path / "escaped").exists()


def test_a_file_id_that_is_a_path_is_no_file(standin: StandIn, tmp_path: Path) -> None:
    serve_days(standin)

    def path_as_file_id(method: str, path: str, reply: Reply) -> Reply:
        if retrieved(path, method):
            return rewrite(
                reply,
                lambda batch: (
                    batch["output_file_id"] and batch.update(output_file_id="../../escaped/pwned")
                ),
            )
        if "escaped" in path:  # whatever the client asks, the server serves
            return 200, {"content-type": "application/octet-stream"}, b"pwned\n"
        return reply

    standin.batch_tamper = path_as_file_id
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 1, err  # every answer was in that "file": the papers fail, saying so
    assert not (tmp_path / "escaped").exists()
    assert not any("escaped" in str(path) for path in tmp_path.rglob("*"))
    assert "the server gave a file id that is not an id" in " ".join(
        error for record in records() for error in record["errors"]
    )


# --- 6. waits that would never end --------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("status", ["cancelling", "thinking_about_it"])
def test_a_batch_that_never_finishes_is_left_at_the_deadline(standin: StandIn, status: str) -> None:
    serve_days(standin)

    def stuck(method: str, path: str, reply: Reply) -> Reply:
        if retrieved(path, method):
            return rewrite(reply, lambda batch: batch.update(status=status))
        return reply

    standin.batch_tamper = stuck
    started = time.monotonic()
    done = subprocess.run(
        # 9 s: time to read the days and submit, even on a busy machine; then the wait.
        [*BACKFILL, "--deadline", "0.15"],
        capture_output=True,
        text=True,
        env={**os.environ, "DIGEST_BATCH_POLL": "0.5", "DIGEST_BATCH_POLL_MAX": "1"},
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert time.monotonic() - started < 40
    assert "the run's deadline passed with 1 batch still running" in done.stderr
    assert "run the same 'digest backfill --batch' again to collect them" in done.stderr
    assert "Traceback" not in done.stderr
    looks = sum(retrieved(path, method) for method, path in standin.batch_api_calls)
    assert 1 <= looks <= 20
    (saved,) = records()
    assert saved["batch_id"] in standin.batches  # saved, for the next run

    standin.batch_tamper = None
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert all_days_written()
    # Collected, not sent again (a paper the deadline left unread went in a batch of its own).
    assert len(standin.batch_requests) == 6 and answered_twice(standin) == []


@pytest.mark.slow
def test_backfill_deadline_also_bounds_the_interactive_range(standin: StandIn) -> None:
    serve_days(standin)
    standin.holds = {"hf": Hold(match=f"date={DAYS[1]}", limit=4)}
    code, _, err = digest("backfill", *RANGE, "--deadline", "0.03")
    assert code == 1, err
    assert "the run's deadline passed: 1 day left for the next run" in err
    assert post(DAYS[0]).exists() and not post(DAYS[2]).exists()


# --- 7. two backfills, one cache folder ---------------------------------------------------


@pytest.mark.slow
def test_two_backfills_sharing_a_cache_folder_pay_once(standin: StandIn, tmp_path: Path) -> None:
    serve_days(standin)
    for trial in range(5):
        cache = tmp_path / f"shared-cache-{trial}"
        # Each trial as on a new account: no batch of an earlier trial to be found.
        standin.batches.clear()
        standin.batch_requests.clear()
        environment = {**os.environ, "DIGEST_CACHE_DIR": str(cache), "DIGEST_BATCH_POLL": "0.05"}
        runs = [
            subprocess.Popen(
                [*BACKFILL, "--output-dir", f"blog-{trial}-{blog}"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
                env=environment,
            )
            for blog in ("a", "b")
        ]
        for run in runs:
            _, err = run.communicate(timeout=120)
            assert run.returncode == 0, err
        for blog in ("a", "b"):
            for day in DAYS:
                assert Path(f"blog-{trial}-{blog}/_posts/{day}-daily-papers.md").exists()
        assert len(standin.batch_requests) == 6, f"trial {trial}"


# --- 8. records deleted or unreadable -----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("lost", ["deleted", "corrupted", "fifo"])
def test_a_lost_record_is_rebuilt_from_the_server_and_nothing_is_paid_twice(
    standin: StandIn, lost: str
) -> None:
    serve_days(standin)
    standin.stall_batches_from = 1
    kill_when(lambda: any(record.get("batch_id") for record in records()))
    (path,) = FOLDER.glob("*.record.json")
    path.unlink()
    if lost == "corrupted":
        path.write_text('{"input_file_id": "file-', encoding="utf-8")
    elif lost == "fifo":
        os.mkfifo(path)  # a read of it would wait forever

    standin.stall_batches_from = None
    done = subprocess.run(BACKFILL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 batch on the server had no readable record" in done.stderr
    assert len(created(standin)) == 1 and len(standin.batch_requests) == 6
    assert all_days_written()


# --- kills at any moment ------------------------------------------------------------------


@pytest.mark.slow
def test_kills_at_random_moments_pay_for_nothing_twice_and_lose_nothing(
    standin: StandIn,
) -> None:
    serve_days(standin)
    standin.llm_default = invalid_first(3)  # a second round, for a re-ask
    # Between the upload and the create: the create (the third request to the Batch API,
    # after two lists) held at the server, then let through after the kill: the server made
    # the batch, and the client never heard of it.
    held = Hold(match="/v1/batches", after=2)
    standin.holds = {"batches": held}
    kill_when(lambda: held.arrived.is_set() and any(
        record.get("batch_id") is None for record in records()
    ))  # fmt: skip
    held.release()
    standin.holds = {}
    moments = random.Random(1913)
    for seconds in [moments.uniform(0.4, 3.0) for _ in range(4)]:
        started = time.monotonic()
        kill_when(lambda started=started, seconds=seconds: time.monotonic() - started > seconds)

    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert all_days_written()
    assert answered_twice(standin) == []
    # Every answer paid for was used: six papers, one re-ask, each answered once.
    assert len(standin.batch_requests) <= 7


# --- smaller: line breaks inside a request, secrets in what the server says ---------------


def test_unicode_line_breaks_inside_a_request_are_escaped() -> None:
    from digest.llm.batch_api import request_line
    from digest.llm.server import LlmServer

    text = "A\u2028B\u2029C\x85D, and an ordinary\nline break"
    body = LlmServer.encode({"messages": [{"role": "user", "content": text}]})
    line = request_line("key", body)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    (only,) = line.decode().splitlines()  # splits on U+2028, U+2029 and NEL too
    assert json.loads(only)["body"]["messages"][0]["content"] == text


def test_a_server_echoing_the_key_is_masked_in_every_saved_file_and_line(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_days(standin)
    base = os.environ["OPENAI_BASE_URL"].replace("http://", "http://me:hunter2-password@")
    monkeypatch.setenv("OPENAI_BASE_URL", base)
    echo = f"key {SECRET_KEY} at {base}"
    echoed: list[str] = []

    def echoing(method: str, path: str, reply: Reply) -> Reply:
        status, headers, body = reply
        if path.endswith("/content") and b'"response"' in body and not echoed:
            echoed.append(path)
            lines = [json.loads(line) for line in body.splitlines()]
            lines[0] = {"custom_id": lines[0]["custom_id"], "response": None,
                        "error": {"code": "server_error", "message": echo}}  # fmt: skip
            return status, headers, "".join(json.dumps(x) + "\n" for x in lines).encode()
        if retrieved(path, method):
            # A message about the batch as a whole, as a failed batch's would be.
            return rewrite(
                reply,
                lambda batch: batch.update(
                    errors={"data": [{"code": "oops", "message": echo, "line": 1}]}
                ),
            )
        return reply

    standin.batch_tamper = echoing
    code, out, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    code, status_out, status_err = digest("backfill", "--status")
    everything = (
        out
        + err
        + status_out
        + status_err
        + "".join(path.read_text(errors="replace") for path in FOLDER.rglob("*") if path.is_file())
    )
    assert SECRET_KEY not in everything and "hunter2-password" not in everything
    assert "***" in status_out  # the message is shown, masked


@pytest.mark.slow
def test_old_records_with_server_ids_as_names_are_still_read(standin: StandIn) -> None:
    # An older digest named its files after the server's ids; OpenAI's ids are kept as they
    # are (a plain name), so a batch it saved is still collected after an upgrade.
    serve_days(standin)
    standin.stall_batches_from = 1
    kill_when(lambda: any(record.get("batch_id") for record in records()))
    (path,) = FOLDER.glob("*.record.json")
    record = json.loads(path.read_text())
    assert path.name == f"{record['input_file_id']}.record.json"
    standin.stall_batches_from = None
    code, _, err = digest("backfill", *RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1


def test_a_saved_record_keeps_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import datetime as dt

    from digest import redact
    from digest.llm.batch_folder import BatchRecord, Records

    monkeypatch.setattr(redact, "_SECRETS", set())
    redact.register(SECRET_KEY)
    record = BatchRecord(
        input_file_id="file-abc123",
        round=1,
        model="m",
        submitted_at=dt.datetime.now(dt.UTC),
        requests={},
        errors=[f"key {SECRET_KEY} at http://me:hunter2-password@host/v1"],
    )
    Records(tmp_path).save(record)
    saved = "".join(path.read_text() for path in tmp_path.glob("*.record.json"))
    assert SECRET_KEY not in saved and "hunter2" not in saved
    assert json.loads(saved)["errors"] == ["key ***6789 at http://***@host/v1"]


@pytest.mark.slow  # 0.5 s or more
def test_another_folder_s_batch_is_read_back_once_and_never_again(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two blogs with one key and their own cache folders: each finds the other's batches on
    # the server, with no record here. One is read back once, found to hold none of this
    # folder's requests, and noted, so that it is not downloaded again.
    from tests.standins import hf_item
    from tests.test_nightly import paper, serve_papers

    serve_days(standin)
    code, _, err = digest("backfill", "--from", DAYS[0], "--to", DAYS[1], "--batch")
    assert code == 0, err
    (theirs,) = standin.batches.values()
    input_file = theirs.batch["input_file_id"]

    monkeypatch.setenv("DIGEST_CACHE_DIR", "other-cache")
    code, _, err = digest("backfill", "--from", DAYS[2], "--to", DAYS[2], "--batch")
    assert code == 0, err
    extra = "2025-12-17"
    serve_papers(standin, 8)
    standin.hf_days[extra] = [hf_item(paper(number), 5) for number in (7, 8)]
    code, _, err = digest("backfill", "--from", extra, "--to", extra, "--batch")
    assert code == 0, err
    reads = [path for _, path in standin.batch_api_calls if path.endswith(f"{input_file}/content")]
    assert len(reads) == 1
    assert len(standin.batch_requests) == 8 and answered_twice(standin) == []
