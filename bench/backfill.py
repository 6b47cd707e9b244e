"""Benchmark: a year of Daily Papers (365 days x 10 papers) backfilled with --batch.

``digest backfill --batch`` runs as a user runs it, in its own process, against stand-ins in
this one (Hugging Face's Daily Papers, the arXiv API, a PDF host, and OpenAI's Files and Batch
APIs, which answer each batch line with a valid digest). Printed:

- the requests made to the Files and Batch APIs, by kind (target: one upload and one create
  per 50,000 requests, plus polling with backoff; not one request per paper), and the
  interactive LLM requests (target 0);
- the peak memory of the digest process (target < 300 MB);
- the wall time, and the same less the time the stand-in's batches took from their creation
  to the look that found them finished (the provider's share: 24 h at most for a real one);
- after a SIGKILL at a random moment of a second, fresh backfill and a re-run: the requests
  sent in more than one batch (target 0), and whether every day was written.

Each paper's text is 40,000 characters, the default DIGEST_TEXT_BUDGET, served as its Hugging
Face abstract; the PDF host has no PDFs (404), so every paper is digested from that text. The
requests have the size of full-text papers while the bench measures the batch path, not PDF
extraction (bench/extract.py measures that).

    python bench/backfill.py [--days 365] [--papers 10] [--chars 40000] [--seed 1]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.conftest import PDF_ABSTRACT  # noqa: E402
from tests.helpers import DIGEST_JSON  # noqa: E402
from tests.standins import (  # noqa: E402
    ArxivPaper,
    Reply,
    StandIn,
    completion,
    hf_item,
    serve,
)

FIRST_DAY = dt.date(2025, 1, 1)
WORDS = [
    "bosonic",
    "dark",
    "matter",
    "acoustic",
    "peaks",
    "spectrum",
    "scalar",
    "field",
    "perturbation",
    "density",
    "oscillation",
    "relic",
    "abundance",
    "cosmological",
    "constant",
    "thermal",
    "history",
    "radiation",
    "era",
    "structure",
    "formation",
    "power",
    "spectrum",
    "damping",
    "tail",
    "polarization",
    "anisotropy",
    "likelihood",
]


class TimedStandIn(StandIn):
    """The stand-in, noting when each batch was created and first seen finished."""

    created_at: dict[str, float]
    finished_at: dict[str, float]

    def answer(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        reply = super().answer(method, path, body, headers)
        if "/batches" in path and reply[0] == 200:
            batch = json.loads(reply[2])
            if isinstance(batch, dict) and batch.get("object") == "batch":
                now = time.monotonic()
                with self.lock:
                    self.created_at.setdefault(batch["id"], now)
                    if batch["status"] in ("completed", "expired", "failed", "cancelled"):
                        self.finished_at.setdefault(batch["id"], now)
        return reply


def text_of(number: int, chars: int) -> str:
    """A paper's text: the abstract the stand-in's digest is grounded in, then words."""
    pick = random.Random(number)
    words = [PDF_ABSTRACT]
    size = len(PDF_ABSTRACT)
    while size < chars:
        sentence = " ".join(pick.choice(WORDS) for _ in range(14)).capitalize() + "."
        words.append(sentence)
        size += len(sentence) + 1
    return " ".join(words)[:chars]


def make_standin(days: int, per_day: int, chars: int) -> TimedStandIn:
    standin = TimedStandIn()
    standin.created_at, standin.finished_at = {}, {}
    standin.batch_polls_per_step = 2  # a provider takes a few looks to finish
    standin.llm_default = lambda request: completion(DIGEST_JSON)
    for day_number in range(days):
        day = FIRST_DAY + dt.timedelta(days=day_number)
        items = []
        for place in range(per_day):
            number = day_number * per_day + place
            paper = ArxivPaper(
                f"{2501 + day_number // 31:04d}.{10000 + number:05d}",
                1,
                f"Ultra light bosonic dark matter, study {number}",
                ["Kim", "Lee"],
                text_of(number, chars),
            )
            standin.papers[paper.arxiv_id] = paper
            items.append(hf_item(paper, 100 - place))
        standin.hf_days[day.isoformat()] = items
    return standin


def environment(standin: StandIn, folder: Path) -> dict[str, str]:
    return {
        **os.environ,
        "OPENAI_BASE_URL": f"{standin.url}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "DIGEST_MODEL": "bench-model",
        "DIGEST_PRICES": '{"bench-model": [0.40, 0.10, 1.60]}',
        "DIGEST_ARXIV_API_URL": f"{standin.url}/api/query",
        "DIGEST_ARXIV_PDF_URL": f"{standin.url}/pdf/{{id}}",
        "DIGEST_HF_API_URL": f"{standin.url}/hf",
        "DIGEST_ARXIV_DELAY": "0",
        "DIGEST_DOWNLOAD_RATE": "0",
        "DIGEST_CACHE_DIR": str(folder / "cache"),
        "DIGEST_OUTPUT_DIR": str(folder / "outputs"),
        "DIGEST_BATCH_POLL": "0.5",
        "DIGEST_BATCH_POLL_MAX": "2",
        "DIGEST_LIMIT": "10",
    }


def backfill(
    standin: StandIn, folder: Path, days: int, kill: Callable[[], bool] | None = None
) -> tuple[float, int, int]:
    """(wall seconds, the digest process's peak RSS in MB, exit status) of one
    ``digest backfill --batch``,
    SIGKILLed as soon as ``kill()`` says so."""
    last = FIRST_DAY + dt.timedelta(days=days - 1)
    command = [sys.executable, "-m", "digest", "backfill", "--batch"]
    command += ["--from", FIRST_DAY.isoformat(), "--to", last.isoformat()]
    started = time.monotonic()
    with (folder / "log.txt").open("ab") as log:
        process = subprocess.Popen(
            command, env=environment(standin, folder), cwd=folder, stdout=log, stderr=log
        )

        def watch() -> None:
            while process.returncode is None:
                peaks.append(_high_water_mark(process.pid))
                trees.append(_tree_resident(process.pid))
                if kill is not None and kill():
                    process.send_signal(signal.SIGKILL)
                    return
                time.sleep(0.05)

        peaks: list[int] = []
        trees: list[int] = []  # the process and its extraction workers, resident together

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        _, status, _ = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        watcher.join()
    tree_peaks.append(max(trees, default=0) // 1024)
    return time.monotonic() - started, max(peaks, default=0) // 1024, process.returncode


tree_peaks: list[int] = []  # MB, of each backfill: its processes' resident memory together


def _tree_resident(pid: int) -> int:
    """kB resident now in ``pid`` and its children (the extraction workers)."""
    total = _status_field(pid, "VmRSS")
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return total
    return total + sum(_status_field(int(child), "VmRSS") for child in children)


def _status_field(pid: int, name: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def _high_water_mark(pid: int) -> int:
    """The process's own peak resident memory so far, in kB (VmHWM), or 0 once it is gone;
    wait4's ru_maxrss would be the largest of it and its extraction workers."""
    return _status_field(pid, "VmHWM")


def killed_and_run_again(
    options: argparse.Namespace, folder: Path, when: str, kill: Callable[[StandIn], bool]
) -> str:
    """A fresh backfill SIGKILLed when ``kill`` says so, then run again to the end."""
    standin = make_standin(options.days, options.papers, options.chars)
    server = serve(standin)
    try:
        folder.mkdir()
        started = time.monotonic()
        _, _, first = backfill(standin, folder, options.days, lambda: kill(standin))
        moment = time.monotonic() - started
        before = len(standin.batches)
        rerun, _, second = backfill(standin, folder, options.days)
    finally:
        server.shutdown()
    return (
        f"killed {when}, at {moment:.1f} s (exit {first}; {before} batch(es) created by then); "
        f"the re-run: exit {second} in {rerun:.1f} s, {len(standin.batches) - before} "
        f"batch(es) created, {days_written(folder)} days written, requests resubmitted: "
        f"{sent_twice(standin)} (target 0), interactive LLM requests: "
        f"{len(standin.llm_requests)}"
    )


def api_requests(standin: StandIn) -> Counter[str]:
    kinds: Counter[str] = Counter()
    for method, path in standin.batch_api_calls:
        if path.endswith("/content"):
            kinds["file downloads"] += 1
        elif path.startswith("/v1/files"):
            kinds["uploads" if method == "POST" else "file lookups"] += 1
        elif method == "POST":
            kinds["batch creates"] += 1
        elif path == "/v1/batches":
            kinds["batch lists"] += 1
        else:
            kinds["batch looks (polls)"] += 1
    return kinds


def sent_twice(standin: StandIn) -> int:
    """Requests (custom_id and body) found in the input files of more than one batch."""
    seen: Counter[tuple[str, str]] = Counter()
    for job in standin.batches.values():
        data = standin.files[job.batch["input_file_id"]].data
        for line in data.splitlines():
            request = json.loads(line)
            body = json.dumps(request["body"], sort_keys=True).encode()
            seen[request["custom_id"], hashlib.sha256(body).hexdigest()] += 1
    return sum(count - 1 for count in seen.values() if count > 1)


def days_written(folder: Path) -> int:
    return len(list((folder / "outputs" / "_posts").glob("*-daily-papers.md")))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--papers", type=int, default=10, help="papers a day")
    parser.add_argument("--chars", type=int, default=40_000, help="characters of each text")
    parser.add_argument("--seed", type=int, default=1, help="picks the moment of the kill")
    options = parser.parse_args()
    papers = options.days * options.papers

    standin = make_standin(options.days, options.papers, options.chars)
    server = serve(standin)
    with tempfile.TemporaryDirectory(prefix="digest-bench-") as tmp:
        folder = Path(tmp) / "whole"
        folder.mkdir()
        wall, peak, status = backfill(standin, folder, options.days)
        provider = sum(
            standin.finished_at[batch] - standin.created_at[batch] for batch in standin.finished_at
        )
        requests = api_requests(standin)
        print(
            f"{options.days} days x {options.papers} papers = {papers} papers, "
            f"{options.chars} characters of text each; exit status {status}, "
            f"{days_written(folder)} days written"
        )
        print(
            f"  API requests   {sum(requests.values())}: "
            + ", ".join(f"{count} {kind}" for kind, count in sorted(requests.items()))
        )
        print(
            f"                 {len(standin.batch_requests)} batch lines answered; "
            f"{len(standin.llm_requests)} interactive LLM requests (target 0)"
        )
        print(
            f"  peak memory    {peak} MB, the digest process (target < 300 MB); "
            f"{tree_peaks[0]} MB with its extraction workers at their largest together"
        )
        print(
            f"  wall time      {wall:.1f} s; {wall - provider:.1f} s without the "
            f"{provider:.1f} s the stand-in's batches took from creation to finished"
        )

        # Fresh backfills, killed at a random moment, then run again: once anywhere in the
        # run, once after the batch was submitted (the moment a resubmission could happen).
        pick = random.Random(options.seed)
        anywhere = time.monotonic() + pick.uniform(0.05, 0.95) * wall
        print(
            "  kill + re-run  "
            + killed_and_run_again(
                options, Path(tmp) / "anywhere", "anywhere", lambda _: time.monotonic() >= anywhere
            )
        )
        delay = pick.uniform(0.0, 0.25) * wall
        seen: dict[str, float] = {}

        def after_submission(standin: StandIn) -> bool:
            if standin.batches and "at" not in seen:
                seen["at"] = time.monotonic()
            return "at" in seen and time.monotonic() >= seen["at"] + delay

        print(
            "  kill + re-run  "
            + killed_and_run_again(
                options,
                Path(tmp) / "submitted",
                f"{delay:.1f} s after the submission",
                after_submission,
            )
        )
    server.shutdown()


if __name__ == "__main__":
    main()
