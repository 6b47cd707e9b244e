"""Benchmark: a 30-paper day against local stand-ins whose LLM answers after L seconds.

Prints the wall time against the ideal ceil(N/C)·L (C = DIGEST_CONCURRENCY), the time each
stage adds per paper, and the time of a re-run of the finished day. Targets: wall time at most
1.15 × the ideal, overhead at most 5 %, re-run under 2 s.

``digest daily`` runs as a user runs it, in its own process; the stand-ins (arXiv API, PDF
host serving a real 4-page paper, OpenAI-compatible API) run in this one. The process start-up
is measured apart (``digest --version``) and taken off the wall time.

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

    def slow_llm(request: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        time.sleep(options.latency)
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
        environment = {
            **os.environ,
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

        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "digest", "--version"],
            env=environment,
            capture_output=True,
            check=True,
        )
        startup = time.perf_counter() - started

        started = time.perf_counter()
        first = subprocess.run(command, env=environment, capture_output=True, text=True)
        wall = time.perf_counter() - started - startup
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

    print(
        f"{options.papers} papers, LLM latency L = {options.latency:g} s, "
        f"concurrency C = {options.concurrency}"
    )
    print(f"  wall time      {wall:6.2f} s  (process start-up {startup:.2f} s not counted)")
    formula = f"ceil({options.papers}/{options.concurrency}) x {options.latency:g} s"
    print(f"  ideal          {ideal:6.2f} s  = {formula}")
    print(f"  ratio          {wall / ideal:6.3f}    (target <= 1.15)")
    print(f"  overhead       {100 * (wall - ideal) / ideal:6.1f} %  (target <= 5 %)")
    print("  per paper, by stage (median / max):")
    for stage in ("download", "extract", "summarize"):
        values = stages.get(stage, [0.0])
        extra = " (includes L)" if stage == "summarize" else ""
        print(f"    {stage:<10} {statistics.median(values):6.3f} / {max(values):6.3f} s{extra}")
    llm_overhead = statistics.median(stages.get("summarize", [0.0])) - options.latency
    print(f"    LLM stage beyond L: {1000 * llm_overhead:.0f} ms a paper")
    print(f"  re-run         {rerun:6.2f} s  (target < 2 s; 0 LLM calls, 0 downloads)")


if __name__ == "__main__":
    main()
