"""Notifications: a written post announced once through Apprise, to a real HTTP receiver on
127.0.0.1 (Apprise's ``json://`` service), and never at the run's expense."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from digest.blog.notify import message_body, post_url
from tests.conftest import REPO
from tests.helpers import digest
from tests.standins import StandIn
from tests.test_nightly import DATE, DAY_FILE, POST, serve_papers

TOKEN = "tok3nSECRET4217"


@dataclass
class Receiver:
    """What the receiver got, and how it answers: ``status``, after ``hang`` seconds."""

    url: str = ""
    status: int = 200
    hang: float = 0.0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            state.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
            state.paths.append(self.path)
            if state.hang:
                # A byte of the answer every half second: no socket timeout ever runs out.
                self.wfile.write(b"HTTP/1.1 200 OK\r\n")
                end = time.monotonic() + state.hang
                while time.monotonic() < end and not state.released.wait(0.5):
                    self.wfile.write(b"X")
                    self.wfile.flush()
                return
            self.send_response(state.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # A short poll: shutdown() waits for it, at each test's end.
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    state.url = f"json://127.0.0.1:{server.server_address[1]}/hook/{TOKEN}"
    yield state
    state.released.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def notified(standin: StandIn, receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> Receiver:
    """Two papers to digest, and notifications to the receiver about a site at example.org."""
    serve_papers(standin, 2)
    monkeypatch.setenv("DIGEST_NOTIFY", receiver.url)
    monkeypatch.setenv("DIGEST_SITE_URL", "https://example.org/blog/")
    return receiver


def daily(*more: str) -> tuple[int, str, str]:
    return digest(
        "daily", "--source", "ids", "--ids", "2512.10001,2512.10002", "--date", DATE, *more
    )


@pytest.mark.slow  # Apprise loads its plugins: a second
def test_a_written_post_is_announced_once(notified: Receiver) -> None:
    code, out, err = daily()
    assert code == 0, err
    assert len(notified.bodies) == 1 and notified.paths == [f"/hook/{TOKEN}"]
    message = notified.bodies[0]
    assert message["title"] == f"Daily Papers — {DATE}"
    assert message["message"] == (
        f"{DATE}: 2 papers\n- Paper number 1\n- Paper number 2\n"
        "https://example.org/blog/2025/12/16/daily-papers.html"
    )
    assert "warning" not in err and TOKEN not in out + err


def test_a_rerun_that_writes_nothing_sends_nothing(notified: Receiver) -> None:
    assert daily()[0] == 0
    code, out, err = daily()
    assert code == 0 and "unchanged" in out, err
    assert len(notified.bodies) == 1


def test_a_failing_receiver_is_one_warning_and_changes_nothing(
    notified: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same run with no notification, for the files it writes.
    with monkeypatch.context() as without:
        without.delenv("DIGEST_NOTIFY")
        code, _, _ = daily("--output-dir", "quiet")
    assert code == 0 and notified.bodies == []
    notified.status = 500
    code, out, err = daily()
    assert code == 0, err
    assert len(notified.bodies) == 1
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "500" in warnings[0], err
    assert "the notification to json:// failed" in warnings[0]
    assert TOKEN not in out + err
    assert POST.read_bytes() == (Path("quiet") / POST.relative_to("outputs")).read_bytes()
    written = json.loads(DAY_FILE.read_text())
    assert [p["title"] for p in written["papers"]] == ["Paper number 1", "Paper number 2"]


@pytest.mark.slow  # waits out a real timeout
def test_a_hung_receiver_delays_the_run_no_longer_than_the_timeout(
    notified: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    notified.hang = 30
    monkeypatch.setenv("DIGEST_NOTIFY_TIMEOUT", "1")
    daily("--output-dir", "warm")  # the same run once, so that what is timed is the message
    began = time.monotonic()
    code, out, err = daily()
    took = time.monotonic() - began
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "notification" in warnings[0], err
    assert took < 1 + 5
    assert POST.is_file() and TOKEN not in out + err


@pytest.mark.slow  # a real process, a real timeout
def test_a_hung_receiver_does_not_hold_the_process_at_its_exit(receiver: Receiver) -> None:
    """The message's thread is left behind at the timeout, and nothing waits for it then
    (Apprise's own pool of threads would be waited for as the process exits)."""
    receiver.hang = 30
    script = (
        "import sys; from pathlib import Path\n"
        "from digest.blog.notify import notify_post\n"
        "from digest.options import NotifyOptions\n"
        "notify_post(NotifyOptions((sys.argv[1],), 1.0, None), 'T', 'D', ['a'],\n"
        "            Path('2025-12-16-daily-papers.md'), print)\n"
    )
    began = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", script, receiver.url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert time.monotonic() - began < 1 + 5, done.stdout
    assert done.returncode == 0 and "no answer within 1 s" in done.stdout, done.stderr


def test_an_unknown_service_is_one_warning_without_its_token(
    notified: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_NOTIFY", f"nosuchservice://{TOKEN}/x {notified.url}")
    code, out, err = daily()
    assert code == 0, err
    assert len(notified.bodies) == 1  # the other URL still gets its message
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "nosuchservice://" in warnings[0], err
    assert TOKEN not in out + err


def test_notify_in_digest_toml_is_refused(receiver: Receiver) -> None:
    Path("digest.toml").write_text(f'notify = ["{receiver.url}"]\n')
    code, out, err = digest("render")
    assert code == 2
    assert err.strip().startswith("error: digest.toml: notify is not read from a settings file")
    assert "DIGEST_NOTIFY" in err and TOKEN not in out + err
    assert receiver.bodies == []


def test_a_url_without_a_scheme_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_NOTIFY", "hooks.example.org/abc")
    code, _, err = digest("render")
    assert code == 2 and "DIGEST_NOTIFY" in err and "scheme" in err


def test_the_post_url_from_the_jekyll_site() -> None:
    post = Path("_posts/2025-12-16-daily-papers.md")
    assert post_url(None, post) is None  # no site, no URL
    Path("_config.yml").write_text(
        'url: "https://you.github.io"\nbaseurl: "/myblog"\npermalink: /:year/:month/:day/:title/\n'
    )
    assert post_url(None, post) == "https://you.github.io/myblog/2025/12/16/daily-papers/"
    assert post_url("https://blog.example", post) == "https://blog.example/2025/12/16/daily-papers/"
    Path("_config.yml").write_text("url: https://you.github.io\npermalink: pretty\n")
    assert post_url(None, post) == "https://you.github.io/2025/12/16/daily-papers/"
    Path("_config.yml").write_text("url: https://you.github.io\npermalink: /:nosuch/:title\n")
    assert post_url(None, post) is None
    assert message_body(DATE, ["One"], None) == f"{DATE}: 1 paper\n- One"


# --- Announcing again, once the site is published ------------------------------------------


@pytest.mark.slow  # Apprise loads its plugins: a second
def test_notify_announces_a_written_post_again(
    notified: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The nightly writes its post without a message, and announces it after Pages publishes.
    with monkeypatch.context() as quiet:
        quiet.delenv("DIGEST_NOTIFY")
        assert daily()[0] == 0
    assert notified.bodies == []
    code, out, err = digest("notify", "--date", DATE)
    assert code == 0, err
    assert f"announced: {POST}" in " ".join(out.split())
    (message,) = notified.bodies
    assert message["title"] == f"Daily Papers — {DATE}"
    assert message["message"].startswith(f"{DATE}: 2 papers\n- Paper number 1\n")
    assert message["message"].endswith("https://example.org/blog/2025/12/16/daily-papers.html")
    assert TOKEN not in out + err


@pytest.mark.slow
def test_a_weekly_issue_is_announced_when_written_and_again_by_notify(
    notified: Receiver,
) -> None:
    assert daily()[0] == 0
    notified.bodies.clear()
    code, _, err = digest("weekly", "--week", "2025-W51")
    assert code == 0, err
    (message,) = notified.bodies
    assert message["title"] == "Weekly Papers — 2025-W51"
    assert message["message"] == (
        "2025-W51 (2025-12-15 to 2025-12-21): 2 papers\n- Paper number 1\n- Paper number 2\n"
        "https://example.org/blog/2025/12/21/weekly-papers-2025-W51.html"
    )
    assert digest("weekly", "--week", "2025-W51")[0] == 0  # up to date: no message
    assert len(notified.bodies) == 1
    code, _, err = digest("notify", "--week", "2025-W51")
    assert code == 0, err
    assert len(notified.bodies) == 2 and notified.bodies[1] == message


@pytest.mark.slow
def test_notify_that_fails_is_exit_1_and_one_warning(notified: Receiver) -> None:
    assert daily()[0] == 0
    notified.status = 500
    code, out, err = digest("notify", "--date", DATE)
    assert code == 1
    warnings = [line for line in err.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "500" in warnings[0] and TOKEN not in out + err


def test_notify_names_what_is_missing(receiver: Receiver, monkeypatch: pytest.MonkeyPatch) -> None:
    code, _, err = digest("notify", "--date", DATE)
    assert code == 2 and "no notify URL is set: set DIGEST_NOTIFY" in err
    monkeypatch.setenv("DIGEST_NOTIFY", receiver.url)
    code, _, err = digest("notify", "--date", DATE)
    assert code == 2 and f"no post for {DATE}: run 'digest daily --date {DATE}' first" in err
    code, _, err = digest("notify", "--week", "2025-W51")
    assert code == 2 and "no weekly issue for 2025-W51" in err
    code, _, err = digest("notify")
    assert code == 2 and "give --date or --week" in err
    assert receiver.bodies == []
