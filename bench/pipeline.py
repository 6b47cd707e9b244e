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

    python bench/pipeline.py [--papers 30] [--latency 2.0] [--concurrency 4]
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

from tests.factories import make_digest  # noqa: E402
from tests.standins import ArxivPaper, StandIn, completion, serve  # noqa: E402

PDF = REPO / "tests" / "data" / "pdfs" / "0908.0054v1.pdf"
DATE = "2025-12-16"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--papers", type=int, default=30)
    parser.add_argument("--latency", type=float, default=2.0, help="LLM answer time L, seconds")
    parser.add_argument("--concurrency", type=int, default=4)
    options = parser.parse_args()

    answer = completion(json.dumps(make_digest().model_dump(), ensure_ascii=False))

    calls: list[tuple[float, float]] = []  # (arrived, answered), time.monotonic()

    def slow_llm(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        arrived = time.monotonic()
        time.sleep(options.latency)
        calls.append((arrived, time.monotonic()))
        return answer

    state = StandIn(llm_default=slow_llm)
    pdf = PDF.read_bytes()
    ids = []
    for number in range(options.papers):
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
            "DIGEST_CONCURRENCY": str(options.concurrency),
            "DIGEST_OUTPUT_DIR": f"{folder}/outputs",
            "DIGEST_CACHE_DIR": f"{folder}/cache",
        }
        command = [
            sys.executable,
            "-m",
            "digest",
            "daily",
            "--source",
            "ids",
            "--ids",
            ",".join(ids),
            "--date",
            DATE,
        ]

        # Start-up: the interpreter, and every import a run needs (digest imports its
        # pipeline, with openai, arxiv and pypdf, only when a day has papers to digest).
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import digest.cli, digest.pipeline"],
            env=environment,
            capture_output=True,
            check=True,
        )
        startup = time.perf_counter() - started

        run_started = time.monotonic()
        first = subprocess.run(command, env=environment, capture_output=True, text=True)
        ended = time.monotonic()
        wall = ended - run_started - startup
        if first.returncode != 0:
            sys.exit(f"the run failed ({first.returncode}):\n{first.stderr}")
        report = json.loads(Path(f"{folder}/outputs/data/{DATE}.run.json").read_text())
        llm_calls = len(state.llm_requests)

        started = time.perf_counter()
        second = subprocess.run(command, env=environment, capture_output=True, text=True)
        rerun = time.perf_counter() - started
        if second.returncode != 0 or len(state.llm_requests) != llm_calls:
            sys.exit(f"the re-run failed or called the LLM:\n{second.stderr}")
    server.shutdown()

    waves = math.ceil(options.papers / options.concurrency)
    ideal = waves * options.latency
    stages: dict[str, list[float]] = {}
    for paper in report["papers"]:
        for stage, seconds in paper["stage_seconds"].items():
            stages.setdefault(stage, []).append(seconds)
    # The critical path: until the first request reaches the LLM, the papers wait on the arXiv
    # API, their PDFs and the extraction workers; after the last answer, the files are written.
    before_first = min(arrived for arrived, _ in calls) - run_started - startup
    after_last = ended - max(answered for _, answered in calls[:llm_calls])
    llm_beyond_l = statistics.median(stages.get("summarize", [0.0])) - options.latency

    run_time = report["seconds"]  # digest's own clock: the day's work, from plan to files
    print(
        f"{options.papers} papers, LLM latency L = {options.latency:g} s, "
        f"concurrency C = {options.concurrency}"
    )
    formula = f"ceil({options.papers}/{options.concurrency}) x {options.latency:g} s"
    print(f"  ideal          {ideal:6.2f} s  = {formula}")
    print(
        f"  the process    {wall:6.2f} s  {wall / ideal:6.3f} x ideal (target <= 1.15), "
        f"{100 * (wall - ideal) / ideal:4.1f} % over (start-up {startup:.2f} s not counted)"
    )
    print(
        f"  the day's run  {run_time:6.2f} s  {run_time / ideal:6.3f} x ideal, "
        f"{100 * (run_time - ideal) / ideal:4.1f} % over (digest's own clock: imports included)"
    )
    print("  overhead of each stage on the critical path (share of the ideal; target <= 5 %):")
    parts = [
        ("before the first LLM request", before_first, "arXiv, first PDFs, extraction"),
        ("the LLM calls beyond L", llm_beyond_l * waves, f"{llm_beyond_l:.3f} s x {waves} waves"),
        ("after the last LLM answer", after_last, "day file, post, report, exit"),
    ]
    for name, seconds, what in parts:
        print(f"    {name:<29} {seconds:6.3f} s {100 * seconds / ideal:5.1f} %  ({what})")
    print("  per paper, by stage (median / max; waits for a slot included):")
    for stage in ("download", "extract", "summarize"):
        values = stages.get(stage, [0.0])
        extra = " (includes L)" if stage == "summarize" else ""
        print(f"    {stage:<10} {statistics.median(values):6.3f} / {max(values):6.3f} s{extra}")
    print(f"  re-run         {rerun:6.2f} s  (target < 2 s; 0 LLM calls, 0 downloads)")


if __name__ == "__main__":
    main()
