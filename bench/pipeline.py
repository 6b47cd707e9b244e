"""Benchmark: a 30-paper day against local stand-ins whose LLM answers after L seconds.

Prints the wall time against the ideal ceil(N/C)·L (C = DIGEST_CONCURRENCY), where the rest
of the time goes (the stages before the first LLM request, each LLM call beyond L, the files
written after the last answer), what each stage takes a paper, and the time of a re-run of the
finished day. Targets: wall time at most 1.15 × the ideal, overhead at most 5 %, re-run under
2 s.

``digest daily`` runs as a user runs it, in its own process; the stand-ins (arXiv API, PDF
host serving a real 4-page paper, OpenAI-compatible API) run in this one. Two wall times are
shown: the day's run as digest's own report times it (from planning the day to its files
written: the pipeline's imports and workers included, the interpreter's start and exit not),
and the whole process, less a start-up measured apart (the interpreter and the imports a run
needs). The re-run is measured whole, start-up included, as cron would see it.

Each figure is the median of ``--runs`` runs (fresh folders, fresh stand-ins), with the range.

    python bench/pipeline.py [--papers 30] [--latency 2.0] [--concurrency 4] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import make_digest  # noqa: E402
from tests.standins import ArxivPaper, StandIn, completion, serve  # noqa: E402

PDF = REPO / "tests" / "data" / "pdfs" / "0908.0054v1.pdf"
DATE = "2025-12-16"
STAGES = ("download", "extract", "summarize")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=30)
    parser.add_argument("--latency", type=float, default=2.0, help="LLM answer time L, seconds")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()

    runs = [
        one_run(options.papers, options.latency, options.concurrency) for _ in range(options.runs)
    ]
    waves = math.ceil(options.papers / options.concurrency)
    ideal = waves * options.latency

    def figure(name: str) -> str:
        values = sorted(run[name] for run in runs)
        middle = statistics.median(values)
        return f"{middle:6.2f} s" + (
            f" ({values[0]:.2f}-{values[-1]:.2f})" if len(runs) > 1 else ""
        )

    def share(name: str) -> str:
        return f"{100 * statistics.median(run[name] for run in runs) / ideal:4.1f} %"

    wall = statistics.median(run["wall"] for run in runs)
    day_run = statistics.median(run["day_run"] for run in runs)
    print(
        f"{options.papers} papers, LLM latency L = {options.latency:g} s, "
        f"concurrency C = {options.concurrency}; median of {len(runs)} runs (range)"
    )
    print(f"  ideal          {ideal:6.2f} s  = ceil({options.papers}/{options.concurrency}) x L")
    print(
        f"  the process    {figure('wall')}  {wall / ideal:.3f} x ideal (target <= 1.15), "
        f"{100 * (wall - ideal) / ideal:.1f} % over; start-up {figure('startup')} not counted"
    )
    print(
        f"  the day's run  {figure('day_run')}  {day_run / ideal:.3f} x ideal, "
        f"{100 * (day_run - ideal) / ideal:.1f} % over (digest's own clock: imports included)"
    )
    print("  overhead of each stage on the critical path (share of the ideal; target <= 5 %):")
    print(f"    before the first LLM request  {figure('before_first')}  {share('before_first')}"
          "  (arXiv, first PDFs, extraction)")  # fmt: skip
    print(f"    the LLM calls beyond L        {figure('llm_beyond_l')}  {share('llm_beyond_l')}"
          f"  ({waves} waves)")  # fmt: skip
    print(f"    after the last LLM answer     {figure('after_last')}  {share('after_last')}"
          "  (day file, post, report, exit)")  # fmt: skip
    print("  per paper, by stage (median over papers; waits for a slot included):")
    for stage in STAGES:
        extra = " (includes L)" if stage == "summarize" else ""
        print(f"    {stage:<10}   {figure(stage)}{extra}")
    print(f"  re-run         {figure('rerun')}  (target < 2 s; 0 LLM calls, 0 downloads)")


def one_run(papers: int, latency: float, concurrency: int) -> dict[str, float]:
    """One day of ``papers`` against fresh stand-ins, then its re-run; the figures in seconds."""
    answer = completion(json.dumps(make_digest().model_dump(), ensure_ascii=False))
    calls: list[tuple[float, float]] = []  # (arrived, answered), time.monotonic()

    def slow_llm(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        arrived = time.monotonic()
        time.sleep(latency)
        calls.append((arrived, time.monotonic()))
        return answer

    state = StandIn(llm_default=slow_llm)
    pdf = PDF.read_bytes()
    ids = []
    for number in range(papers):
        arxiv_id = f"2512.{20000 + number}"
        state.papers[arxiv_id] = ArxivPaper(arxiv_id, 1, f"Paper {number}", ["Kim"], "Abstract.")
        state.pdfs[f"{arxiv_id}v1"] = pdf
        ids.append(arxiv_id)
    server = serve(state)

    with tempfile.TemporaryDirectory() as folder:
        # Bytecode caching on, as on a user's machine: the start-up run below fills the cache.
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        environment = {
            **inherited,
            "PYTHONPATH": str(REPO),
            "OPENAI_BASE_URL": f"{state.url}/v1",
            "OPENAI_API_KEY": "sk-bench",
            "DIGEST_MODEL": "bench-model",
            "DIGEST_ARXIV_API_URL": f"{state.url}/api/query",
            "DIGEST_ARXIV_PDF_URL": f"{state.url}/pdf/{{id}}",
            "DIGEST_CONCURRENCY": str(concurrency),
            # The stand-in PDF host has no rate to respect: at L = 2 s the default of one
            # download started a second would be the bottleneck, which it never is at a real
            # model's 10 to 20 s a paper.
            "DIGEST_DOWNLOAD_RATE": "0",
            "DIGEST_OUTPUT_DIR": f"{folder}/outputs",
            "DIGEST_CACHE_DIR": f"{folder}/cache",
        }
        command = [sys.executable, "-m", "digest", "daily", "--source", "ids", "--ids",
                   ",".join(ids), "--date", DATE]  # fmt: skip

        # Start-up: the interpreter, and every import a run needs (digest imports its
        # pipeline, with openai, arxiv and pypdf, only when a day has papers to digest).
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-c", "import digest.cli, digest.runs.pipeline"],
            env=environment,
            capture_output=True,
            check=True,
        )
        startup = time.monotonic() - started

        run_started = time.monotonic()
        first = subprocess.run(command, env=environment, capture_output=True, text=True)
        ended = time.monotonic()
        if first.returncode != 0:
            sys.exit(f"the run failed ({first.returncode}):\n{first.stderr}")
        report = json.loads(Path(f"{folder}/outputs/data/{DATE}.run.json").read_text())
        llm_calls = len(state.llm_requests)

        started = time.monotonic()
        second = subprocess.run(command, env=environment, capture_output=True, text=True)
        rerun = time.monotonic() - started
        if second.returncode != 0 or len(state.llm_requests) != llm_calls:
            sys.exit(f"the re-run failed or called the LLM:\n{second.stderr}")
    server.shutdown()
    server.server_close()

    stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for paper in report["papers"]:
        for stage, seconds in paper["stage_seconds"].items():
            stages[stage].append(seconds)
    waves = math.ceil(papers / concurrency)
    # The critical path: until the first request reaches the LLM, the papers wait on the arXiv
    # API, their PDFs and the extraction workers; after the last answer, the files are written.
    return {
        "startup": startup,
        "wall": ended - run_started - startup,
        "day_run": report["seconds"],
        "before_first": min(arrived for arrived, _ in calls) - run_started - startup,
        "llm_beyond_l": (statistics.median(stages["summarize"]) - latency) * waves,
        "after_last": ended - max(answered for _, answered in calls[:llm_calls]),
        "rerun": rerun,
        **{stage: statistics.median(values or [0.0]) for stage, values in stages.items()},
    }


if __name__ == "__main__":
    main()
