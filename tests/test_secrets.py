"""Secrets a server echoes never reach a sink: the terminal (digest's own lines, --debug
tracebacks, a crash's traceback, other libraries' log lines), the run report, day files and the
digest cache. The batch files are tested in test_batch_hostile.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from digest import redact
from tests.conftest import SECRET_KEY
from tests.helpers import digest, good
from tests.standins import Reply, StandIn, error_reply
from tests.test_nightly import DATE, DAY_FILE, REPORT, serve_papers

IDS = ["--source", "ids", "--ids", "2512.10001", "--date", DATE]
MASKED_KEY = f"***{SECRET_KEY[-4:]}"
PASSWORD = "s3cr3t-pass"


@pytest.fixture(autouse=True)
def no_secrets_of_other_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    # The secrets registered are the process's: each test here starts with none, and leaves
    # its own to no other test.
    monkeypatch.setattr(redact, "_SECRETS", set())


def echo_of_the_key(standin: StandIn) -> None:
    """The key check (GET /models) answered with a 401 that names the key in full."""
    serve_papers(standin, 1)
    message = f"Incorrect API key provided: {SECRET_KEY}. You can find your API key at …"
    standin.faults["models"] = [error_reply(401, message, code="invalid_api_key")]


def files_under(*folders: Path) -> str:
    return "".join(
        path.read_text(encoding="utf-8", errors="replace")
        for folder in folders
        for path in folder.rglob("*")
        if path.is_file()
    )


# --- --debug ---------------------------------------------------------------------------------


def test_debug_shows_the_traceback_with_the_echoed_key_masked_and_the_errors_exit_code(
    standin: StandIn,
) -> None:
    echo_of_the_key(standin)
    code, out, err = digest("--debug", "daily", *IDS)
    assert code == 2, err  # the exit code of the error, as without --debug
    assert "Traceback (most recent call last)" in err and "LLMConfigError" in err
    assert SECRET_KEY not in out + err and MASKED_KEY in err


@pytest.mark.slow
def test_debug_in_a_real_process_shows_no_key(standin: StandIn) -> None:
    echo_of_the_key(standin)
    command = [sys.executable, "-m", "digest", "--debug", "daily", *IDS]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback (most recent call last)" in done.stderr
    assert SECRET_KEY not in done.stdout + done.stderr and MASKED_KEY in done.stderr


@pytest.mark.slow
def test_a_crash_and_another_librarys_log_line_are_redacted_in_a_real_process(
    tmp_path: Path,
) -> None:
    # What digest does not print itself: an unexpected exception's traceback (Python prints
    # it) and a warning another library logs (Python's last-resort handler prints it).
    script = tmp_path / "crash.py"
    script.write_text(
        "import logging, sys\n"
        "from digest import cli\n"
        "def crash(value, option='--date'):\n"
        "    key = 'sk-' + 'test-SECRET-0123456789'\n"
        "    logging.getLogger('openai').warning('retrying with %s', key)\n"
        "    raise RuntimeError(f'the server said: Incorrect API key provided: {key}')\n"
        "cli.parse_date = crash\n"
        "sys.argv = ['digest', 'render', '--date', '2025-12-16']\n"
        "cli.main()\n",
        encoding="utf-8",
    )
    environment = {**os.environ, "OPENAI_API_KEY": SECRET_KEY}
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=environment
    )
    assert done.returncode == 1
    assert f"RuntimeError: the server said: Incorrect API key provided: {MASKED_KEY}" in (
        done.stderr
    )
    assert f"retrying with {MASKED_KEY}" in done.stderr
    assert SECRET_KEY not in done.stdout + done.stderr


def answered_as(model: str, request: dict[str, Any]) -> Reply:
    """A valid digest, from a server that names ``model`` as the one that answered."""
    status, headers, body = good(request)
    return status, headers, json.dumps({**json.loads(body), "model": model}).encode()


def run_on_a_terminal(*args: str) -> tuple[int, str]:
    """``digest ARGS`` in a process whose stdout and stderr are a terminal (rich's progress
    bars run, and redirect sys.stdout and sys.stderr while they do): its exit code and all it
    printed."""
    import pty
    import select

    main, child = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        stdin=child,
        stdout=child,
        stderr=child,
        env={**os.environ, "COLUMNS": "100"},
    )
    os.close(child)
    printed = b""
    try:
        while select.select([main], [], [], 60)[0]:  # a run that hangs prints nothing more
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal is closed: the process is gone
                break
            if not chunk:
                break
            printed += chunk
        return process.wait(timeout=5), printed.decode("utf-8", "replace")
    finally:
        os.close(main)
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_a_run_on_a_terminal_masks_what_it_logs_while_its_progress_bars_run(
    standin: StandIn,
) -> None:
    serve_papers(standin, 1)
    standin.llm_default = lambda request: answered_as(f"gateway-{SECRET_KEY}", request)
    code, printed = run_on_a_terminal("daily", *IDS)
    assert code == 0, printed
    assert f"but the server answered as 'gateway-{MASKED_KEY}'" in printed
    assert "wrote: outputs/_posts" in printed and SECRET_KEY not in printed


def test_a_model_name_echoing_the_key_is_masked_in_the_day_file_and_the_cache(
    standin: StandIn,
) -> None:
    serve_papers(standin, 1)
    standin.llm_default = lambda request: answered_as(f"gateway-{SECRET_KEY}", request)
    code, out, err = digest("daily", *IDS)
    assert code == 0, err
    (entry,) = json.loads(DAY_FILE.read_text(encoding="utf-8"))["papers"]
    assert entry["provenance"]["answered_by"] == f"gateway-{MASKED_KEY}"
    cached = files_under(Path("cache"))
    assert "answered_by" in cached
    assert SECRET_KEY not in out + err + cached + files_under(Path("outputs"))


# --- a URL's password ----------------------------------------------------------------------


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_a_url_password_a_server_echoes_is_masked_everywhere(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, debug: bool
) -> None:
    serve_papers(standin, 1)
    base = f"{standin.url}/v1".replace("http://", f"http://alice:{PASSWORD}@")
    monkeypatch.setenv("OPENAI_BASE_URL", base)
    # The server names the password alone, and the URL with it.
    standin.llm_default = lambda request: error_reply(
        401, f"password {PASSWORD} for alice is not valid at {base}"
    )
    code, out, err = digest(*(["--debug"] if debug else []), "daily", *IDS)
    assert code == 2, err
    assert "refused the API key" in err and "http://***@127.0.0.1" in err
    assert PASSWORD not in out + err + REPORT.read_text(encoding="utf-8")
    assert ("Traceback" in err) is debug


def test_credentials_in_a_pdf_host_error_are_masked_in_the_day_file_and_the_cache(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_papers(standin, 1)
    standin.pdfs.clear()  # a 404, whose reason names the URL: the abstract is digested
    pdf_url = f"{standin.url}/pdf/{{id}}".replace("http://", f"http://bob:{PASSWORD}@")
    monkeypatch.setenv("DIGEST_ARXIV_PDF_URL", pdf_url)
    code, out, err = digest("daily", *IDS)
    assert code == 0, err
    (entry,) = json.loads(DAY_FILE.read_text(encoding="utf-8"))["papers"]
    assert entry["provenance"]["input"] == "abstract"
    assert "HTTP 404 from http://***@127.0.0.1" in entry["provenance"]["input_reason"]
    cached = files_under(Path("cache"))
    assert "input_reason" in cached  # the digest cache holds the entry too
    assert PASSWORD not in out + err + cached + files_under(Path("outputs"))


# --- the saved batches, as --status shows them ------------------------------------------------


def test_status_masks_what_an_older_record_kept_unmasked(standin: StandIn) -> None:
    # A record written before its messages were masked: --status still shows none of it.
    from digest.llm.batch_folder import BatchRecord

    folder = Path("cache/batches")
    folder.mkdir(parents=True)
    record = BatchRecord.model_validate(
        {
            "input_file_id": "file-abc123",
            "batch_id": "batch_abc123",
            "round": 1,
            "model": "standin-model",
            "submitted_at": "2025-12-16T00:00:00Z",
            "requests": {},
            "status": "failed",
            "errors": [f"invalid_request: key {SECRET_KEY} at http://alice:{PASSWORD}@host/v1"],
        }
    )
    (folder / "file-abc123.record.json").write_text(record.model_dump_json(), encoding="utf-8")
    code, out, err = digest("backfill", "--status")
    assert code == 0, err
    assert f"key {MASKED_KEY} at http://***@host/v1" in out
    assert SECRET_KEY not in out + err and PASSWORD not in out + err


# --- redact itself ---------------------------------------------------------------------------


def test_redacted_json_stays_the_same_json_with_its_secrets_masked() -> None:
    # What batch records and the lines of a batch's raw files go through: masking stays
    # inside each string, however the fields sit (pydantic and the batch files write JSON
    # without blanks, where "://" in one string and "@" in the next are a few quotes apart).
    redact.register(SECRET_KEY)
    redact.register("p%40ss-word")  # a URL's password as written; a server may decode it
    document = {
        "a": "see http://x.example",
        "b": "y@z",
        "error": {"message": f"Incorrect API key provided: {SECRET_KEY}", "code": None},
        "echo": ["http://u:p%40ss-word@host/v1", "password p@ss-word", 'quote "x" @ here'],
    }
    masked = {
        "a": "see http://x.example",
        "b": "y@z",
        "error": {"message": f"Incorrect API key provided: {MASKED_KEY}", "code": None},
        "echo": ["http://***@host/v1", "password ***", 'quote "x" @ here'],
    }
    for text in (
        json.dumps(document, separators=(",", ":")),
        json.dumps(document),
        json.dumps(document, indent=2),
    ):
        assert json.loads(redact.redact(text)) == masked


def test_a_short_secret_keeps_none_of_its_characters() -> None:
    redact.register("hunter22")
    assert redact.redact("password hunter22") == "password ***"


def test_the_redacting_stream_masks_a_secret_written_in_pieces() -> None:
    import io

    redact.register(SECRET_KEY)
    target = io.StringIO()
    stream = redact.redacting_stream(target)
    for piece in ("RuntimeError", ": key ", SECRET_KEY[:10], SECRET_KEY[10:], "\n", "partial "):
        stream.write(piece)
    assert target.getvalue() == f"RuntimeError: key {MASKED_KEY}\n"
    stream.flush()  # what is not a line yet goes out when flushed
    assert target.getvalue().endswith("\npartial ")
