"""Ctrl-C as a terminal sends it: SIGINT to the run's whole process group, its extraction
workers included, at moments of ``daily`` and ``backfill`` that a stand-in picks by holding a
request, or that the CLI marks by pausing just after a line it prints.

Each time: exit 130, one "interrupted" line on stderr, no traceback from any of the processes,
and the next run finishes the day without asking the LLM again for a paper whose answer had
come. The CLI runs in a process of its own, so its extraction runs in real worker processes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import IO

import pytest

from digest.cli import RUN_INTERRUPTED
from tests.helpers import digest
from tests.standins import Hold, StandIn, hf_item
from tests.test_backfill import DAYS, post, serve_days
from tests.test_batch import created, records
from tests.test_nightly import DATE, paper_of, serve_papers, titles_in_post

# Each test runs digest in a process of its own, with its real extraction workers, and signals
# it: seconds each, in the slow tier (-m slow).
pytestmark = pytest.mark.slow

# The CLI, paused just after it prints a line that starts with $PAUSE_AFTER (or, with "exit",
# once the command is done and before the process ends) until a signal comes: a Ctrl-C at that
# very moment, which no watching from outside could time.
PAUSING_CLI = """
import os, sys, time
from digest import cli

mark = os.environ["PAUSE_AFTER"]

def wait_for_the_signal():
    for _ in range(600):  # a minute at most; then on, and the exit code fails the test
        time.sleep(0.1)

def pausing(print_line):
    def printed(*args, **options):
        print_line(*args, **options)
        if args and str(args[0]).startswith(mark):
            wait_for_the_signal()
    return printed

if mark == "exit":
    app = cli.app
    def app_then_pause(*args, **options):
        try:
            app(*args, **options)
        finally:
            print("paused before the exit", file=sys.stderr, flush=True)
            wait_for_the_signal()
    cli.app = app_then_pause
else:
    cli.stdout.print = pausing(cli.stdout.print)
    cli.stderr.print = pausing(cli.stderr.print)
cli.main()
"""


class Run:
    """``digest ARGS`` in a process group of its own, as a shell starts it; its output read
    line by line as it comes."""

    def __init__(self, args: tuple[str, ...], pause_after: str | None, script: str | None) -> None:
        environment = dict(os.environ)
        command = [sys.executable, "-m", "digest", *args]
        if pause_after is not None:
            environment["PAUSE_AFTER"] = pause_after
            script = PAUSING_CLI
        if script is not None:
            command = [sys.executable, "-c", script, *args]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
            start_new_session=True,  # its own group: the signal reaches it and its workers only
        )
        self.lines: dict[str, list[str]] = {"out": [], "err": []}
        self.changed = threading.Condition()
        assert self.process.stdout and self.process.stderr
        self.readers = [
            threading.Thread(target=self._read, args=(stream, self.lines[name]), daemon=True)
            for name, stream in (("out", self.process.stdout), ("err", self.process.stderr))
        ]
        for reader in self.readers:
            reader.start()

    def _read(self, stream: IO[str], lines: list[str]) -> None:
        for line in stream:
            with self.changed:
                lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.changed.notify_all()

    def wait_until(self, condition: Callable[[], bool], what: str) -> None:
        """Until ``condition`` (a line printed, a request held at a stand-in), or the run ends;
        a minute at most."""
        deadline = time.monotonic() + 60
        with self.changed:
            while not condition() and self.process.poll() is None:
                if time.monotonic() > deadline:
                    break
                self.changed.wait(0.02)  # woken by a line; a held request is polled for
        assert condition(), f"never {what}: {''.join(self.lines['err'])}"

    def printed(self, stream: str, text: str) -> bool:
        return any(text in line for line in self.lines[stream])

    def interrupt(self) -> tuple[int, str]:
        """Ctrl-C: SIGINT to the whole group. The exit code and stderr, once all is read."""
        os.killpg(self.process.pid, signal.SIGINT)
        code = self.process.wait(60)
        for reader in self.readers:
            reader.join(30)  # the pipes close when the workers are gone too
        return code, "".join(self.lines["err"])


@pytest.fixture
def cli(standin: StandIn) -> Iterator[Callable[..., Run]]:
    runs: list[Run] = []

    def start(*args: str, pause_after: str | None = None, script: str | None = None) -> Run:
        runs.append(Run(args, pause_after, script))
        return runs[-1]

    yield start
    for hold in standin.holds.values():
        hold.release()
    for run in runs:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
            run.process.wait(10)


def paid_for(standin: StandIn) -> set[str]:
    return {paper_of(request) for request in standin.llm_requests}


def answers_taken(run: Run, standin: StandIn) -> Callable[[], bool]:
    """Whether each answer the stand-in gave has been taken in: its paper's progress line."""
    return lambda: all(run.printed("err", f"{paper}v1: done") for paper in paid_for(standin))


def said_once(code: int, err: str, line: str = RUN_INTERRUPTED) -> None:
    assert code == 130, err
    assert "Traceback" not in err and "Exception ignored" not in err, err
    assert [said for said in err.splitlines() if said.startswith("interrupted")] == [line], err


def then_nothing_is_paid_again(standin: StandIn, command: tuple[str, ...]) -> set[str]:
    """Release what was held, run ``command`` again in this process: it finishes, and asks
    the LLM for no paper it had an answer for. The papers paid for before, for more checks."""
    paid = paid_for(standin)
    asked = len(standin.llm_requests)
    for hold in standin.holds.values():
        hold.release()
    code, _, err = digest(*command)
    assert code == 0, err
    again = [paper_of(request) for request in standin.llm_requests[asked:]]
    assert not paid & set(again), f"asked again for {paid & set(again)}"
    return paid


# --- daily --------------------------------------------------------------------------------

DAILY = ("daily", "--date", DATE)


def serve_day(standin: StandIn) -> None:
    papers = serve_papers(standin, 3)
    standin.hf_days[DATE] = [hf_item(paper, 5) for paper in papers]


@pytest.mark.parametrize(
    ("held", "pause_after", "paid_before"),
    [
        pytest.param(("hf", Hold()), None, 0, id="while-listing-the-days-papers"),
        pytest.param(("arxiv", Hold()), None, 0, id="while-asking-arxiv"),
        pytest.param(("pdf", Hold(after=1)), None, 1, id="while-downloading-after-a-paper"),
        pytest.param(("llm", Hold(after=1)), None, 1, id="while-the-llm-answers"),
        pytest.param(None, "wrote:", 3, id="just-after-wrote"),
        pytest.param(None, "exit", 3, id="after-the-command-before-the-exit"),
    ],
)
def test_ctrl_c_during_daily_is_one_line_and_the_next_run_pays_nothing_again(
    standin: StandIn,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    held: tuple[str, Hold] | None,
    pause_after: str | None,
    paid_before: int,
) -> None:
    serve_day(standin)
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")  # one answer at a time: each one taken in
    if held is not None:
        standin.holds = dict([held])
    run = cli(*DAILY, pause_after=pause_after)
    if held is not None:
        run.wait_until(held[1].arrived.is_set, "held a request")
    elif pause_after == "exit":
        run.wait_until(lambda: run.printed("err", "paused before the exit"), "paused")
    else:
        run.wait_until(lambda: run.printed("out", "wrote:"), "wrote the post")
    # The papers the moment comes after: their answers are in, and taken in.
    run.wait_until(lambda: len(paid_for(standin)) == paid_before, "asked the LLM")
    run.wait_until(answers_taken(run, standin), "took in the answers it got")
    code, err = run.interrupt()
    said_once(code, err)

    assert len(then_nothing_is_paid_again(standin, DAILY)) == paid_before
    assert len(titles_in_post()) == 3


# --- backfill -----------------------------------------------------------------------------

RANGE = ("backfill", "--from", DAYS[0], "--to", DAYS[-1])


@pytest.mark.parametrize(
    ("held", "paid_before", "days_written"),
    [
        pytest.param(
            ("hf", Hold(match=f"date={DAYS[0]}")), 0, 0, id="while-listing-the-first-days-papers"
        ),
        pytest.param(("llm", Hold(after=1)), 1, 0, id="while-the-llm-answers-on-the-first-day"),
        pytest.param(("hf", Hold(match=f"date={DAYS[1]}")), 2, 1, id="just-after-a-day-is-written"),
        pytest.param(("arxiv", Hold(after=1)), 2, 1, id="while-asking-arxiv-for-the-second-day"),
        pytest.param(("pdf", Hold(match="2512.10003")), 3, 1, id="while-downloading-a-pdf"),
        pytest.param(("llm", Hold(after=3)), 3, 1, id="while-the-llm-answers"),
    ],
)
def test_ctrl_c_during_backfill_is_one_line_and_the_next_run_pays_nothing_again(
    standin: StandIn,
    cli: Callable[..., Run],
    monkeypatch: pytest.MonkeyPatch,
    held: tuple[str, Hold],
    paid_before: int,
    days_written: int,
) -> None:
    serve_days(standin)
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    standin.holds = dict([held])
    run = cli(*RANGE)
    run.wait_until(held[1].arrived.is_set, "held a request")
    run.wait_until(lambda: len(paid_for(standin)) == paid_before, "asked the LLM")
    run.wait_until(answers_taken(run, standin), "took in the answers it got")
    code, err = run.interrupt()
    said_once(code, err)
    assert [post(day).exists() for day in DAYS] == [True] * days_written + [False] * (
        len(DAYS) - days_written
    )

    paid = then_nothing_is_paid_again(standin, RANGE)
    assert len(paid) == paid_before
    assert all(post(day).exists() for day in DAYS)


def interrupt_once_a_batch_is_submitted(cli: Callable[..., Run]) -> None:
    """Run ``backfill --batch`` over RANGE, press Ctrl-C once it has submitted a batch, and see
    the one line that says the batch is left on the server for the next run."""
    run = cli(*RANGE, "--batch")
    run.wait_until(lambda: any(record.get("batch_id") for record in records()), "submitted")
    code, err = run.interrupt()
    said_once(
        code,
        err,
        "interrupted: the batches submitted keep running on the server; run the same "
        "'digest backfill --batch' again to collect them ('digest backfill --status' shows "
        "them)",
    )


def test_ctrl_c_while_backfill_batch_waits_leaves_the_batch_and_the_next_run_collects_it(
    standin: StandIn, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_days(standin)
    standin.stall_batches_from = 1  # the batch stays in progress while the run waits on it
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.05")
    interrupt_once_a_batch_is_submitted(cli)

    standin.stall_batches_from = None
    code, _, err = digest(*RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 1 and len(standin.batch_requests) == 6
    assert standin.llm_requests == []
    assert all(post(day).exists() for day in DAYS)


def test_ctrl_c_while_the_ranking_batch_waits_and_the_next_run_pays_nothing_again(
    standin: StandIn, cli: Callable[..., Run], monkeypatch: pytest.MonkeyPatch
) -> None:
    # With interests, the days' rankings go through a batch of their own before the digests:
    # interrupted while it runs, it is collected by the next run, and nothing is asked twice.
    from tests.test_ranking import is_ranking, scoring

    serve_days(standin)
    standin.llm_default = scoring({})
    standin.stall_batches_from = 1
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.05")
    monkeypatch.setenv("DIGEST_INTERESTS", "강화학습")
    interrupt_once_a_batch_is_submitted(cli)
    assert not any(post(day).exists() for day in DAYS)

    standin.stall_batches_from = None
    code, _, err = digest(*RANGE, "--batch")
    assert code == 0, err
    assert len(created(standin)) == 2  # the saved ranking batch, then the digests'
    rankings = [request for request in standin.batch_requests if is_ranking(request)]
    assert len(rankings) == len(DAYS)  # one request a day, each answered once
    assert standin.llm_requests == []
    assert all(post(day).exists() for day in DAYS)


# ``python -m digest``, its modules slow to load: a Ctrl-C before any of the command has run.
LOADING_SLOWLY = """
import builtins, sys, time
from digest.__main__ import run

load = builtins.__import__

def slowly(name, *args, **options):
    if name == "digest.cli":
        print("loading", file=sys.stderr, flush=True)
        for _ in range(600):
            time.sleep(0.1)
    return load(name, *args, **options)

builtins.__import__ = slowly
run()
"""


def test_ctrl_c_while_the_command_loads_is_one_line(cli: Callable[..., Run]) -> None:
    run = cli(*DAILY, script=LOADING_SLOWLY)
    run.wait_until(lambda: run.printed("err", "loading"), "started loading")
    code, err = run.interrupt()
    said_once(code, err, "interrupted: nothing was done yet; run the same command again")
