"""Benchmark: a day chosen by interests, against local stand-ins whose LLM and embeddings
answer after L seconds.

Three runs of ``digest daily --source hf --limit 3`` (a process each, as a user runs it):

1. an HF day of 1,000 candidates with ``interests`` and ``embedding_model``
   (``rank_pool`` 50): the embeddings choose the 50 the LLM ranks;
2. an HF day of 50 with the LLM's ranking alone (no ``embedding_model``);
3. the first day run again: every vector and score from the cache.

Each prints the API requests (embedding, ranking, digest), what the ranking cost in USD at
list prices (gpt-4.1-mini: 0.40 in, 1.60 out; text-embedding-3-small: 0.02, per million
tokens), the wall time and the digest process's peak memory (VmHWM). Targets: 1,000
candidates in at most 60 ranking and embedding requests, 0.02 USD, under 60 s and 300 MB;
the day of 50 in at most 3 requests and 0.01 USD; the re-run in 0 ranking requests.

    python bench/ranking.py [--candidates 1000] [--latency 1.0]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import make_digest  # noqa: E402
from tests.standins import ArxivPaper, Reply, StandIn, completion, hf_item, serve  # noqa: E402

PDF = REPO / "tests" / "data" / "pdfs" / "0908.0054v1.pdf"
BIG_DAY, SMALL_DAY = "2025-12-16", "2025-12-15"
INTERESTS = "reinforcement learning for robot grasping and manipulation"
TOPICS = [
    "diffusion models for image generation",
    "large language model reasoning benchmarks",
    "reinforcement learning for robot grasping",
    "graph neural networks for molecules",
    "speech recognition with transformers",
    "dark matter and cosmological simulations",
]
RANK_PROMPT = "You rank research papers"


def make_standin(candidates: int, latency: float) -> StandIn:
    digest_answer = completion(json.dumps(make_digest().model_dump(), ensure_ascii=False))

    def llm(request: dict[str, Any]) -> Reply:
        time.sleep(latency)
        if not request["messages"][0]["content"].startswith(RANK_PROMPT):
            return digest_answer
        asked = [
            line.removeprefix("arXiv ID: ")
            for line in request["messages"][1]["content"].splitlines()
            if line.startswith("arXiv ID: ")
        ]
        scores = [{"arxiv_id": arxiv_id, "score": 5, "reason": "관심사와 관련된 논문."}
                  for arxiv_id in asked]  # fmt: skip
        return completion(json.dumps({"scores": scores}, ensure_ascii=False))

    def slow(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
        time.sleep(latency)
        return answer

    state = StandIn(llm_default=llm, embedding_tamper=slow)
    pdf = PDF.read_bytes()
    for day, count, base in ((BIG_DAY, candidates, 30000), (SMALL_DAY, 50, 20000)):
        papers = []
        for number in range(count):
            arxiv_id = f"2512.{base + number}"
            topic = TOPICS[number % len(TOPICS)]
            abstract = f"We study {topic}, with experiments on benchmark {number}. " * 4
            paper = ArxivPaper(arxiv_id, 1, f"On {topic} ({number})", ["Kim"], abstract)
            state.papers[arxiv_id] = paper
            state.pdfs[f"{arxiv_id}v1"] = pdf
            papers.append(paper)
        state.hf_days[day] = [hf_item(paper, 5) for paper in papers]
    return state


def run(state: StandIn, folder: str, date: str, embedding: bool) -> dict[str, Any]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "OPENAI_BASE_URL": f"{state.url}/v1",
        "OPENAI_API_KEY": "sk-bench",
        "DIGEST_MODEL": "gpt-4.1-mini",
        "DIGEST_HF_API_URL": f"{state.url}/hf",
        "DIGEST_ARXIV_API_URL": f"{state.url}/api/query",
        "DIGEST_ARXIV_PDF_URL": f"{state.url}/pdf/{{id}}",
        "DIGEST_ARXIV_DELAY": "0",
        "DIGEST_DOWNLOAD_RATE": "0",
        "DIGEST_INTERESTS": INTERESTS,
        "DIGEST_RANK_POOL": "50",
        "DIGEST_OUTPUT_DIR": f"{folder}/outputs",
        "DIGEST_CACHE_DIR": f"{folder}/cache",
    }
    if embedding:
        environment["DIGEST_EMBEDDING_MODEL"] = "text-embedding-3-small"
    before_llm, before_embed = len(state.llm_requests), len(state.embedding_requests)
    report_file = Path(f"{folder}/outputs/data/{date}.run.json")
    report_file.unlink(missing_ok=True)  # a run that does nothing writes none
    command = [sys.executable, "-m", "digest", "daily", "--source", "hf", "--date", date]
    command += ["--limit", "3"]
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    peaks: list[int] = []

    def watch() -> None:
        while process.poll() is None:
            peaks.append(_high_water_mark(process.pid))
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    _, err = process.communicate()
    wall = time.monotonic() - started
    watcher.join()
    if process.returncode != 0:
        sys.exit(f"the run failed ({process.returncode}):\n{err}")
    chat = state.llm_requests[before_llm:]
    ranking = sum(r["messages"][0]["content"].startswith(RANK_PROMPT) for r in chat)
    report = json.loads(report_file.read_text()) if report_file.exists() else {"totals": {}}
    totals = report.get("ranking") or {}
    return {
        "embedding": len(state.embedding_requests) - before_embed,
        "ranking": ranking,
        "digest": len(chat) - ranking,
        "ranking_usd": totals.get("cost_usd") or 0.0,
        "embedding_usd": totals.get("embedding_cost_usd") or 0.0,
        "run_usd": report["totals"].get("cost_usd") or 0.0,
        "wall": wall,
        "peak_mb": max(peaks, default=0) / 1024,
    }


def _high_water_mark(pid: int) -> int:
    """The process's peak resident memory so far, in kB (VmHWM), or 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--latency", type=float, default=1.0, help="answer time L, seconds")
    options = parser.parse_args()
    state = make_standin(options.candidates, options.latency)
    server = serve(state)
    try:
        with tempfile.TemporaryDirectory() as folder:
            rows = [
                (f"{options.candidates} candidates, embeddings", run(state, folder, BIG_DAY, True)),
                ("HF day of 50, LLM alone", run(state, folder, SMALL_DAY, False)),
                ("re-run of the first", run(state, folder, BIG_DAY, True)),
            ]
    finally:
        server.shutdown()
        server.server_close()
    print(f"LLM and embedding latency L = {options.latency:g} s; --limit 3, rank_pool 50")
    print(f"{'run':<30} {'embed':>5} {'rank':>5} {'digest':>6} {'rank USD':>9} "
          f"{'of it emb.':>10} {'run USD':>8} {'wall s':>7} {'peak MB':>8}")  # fmt: skip
    for name, row in rows:
        print(
            f"{name:<30} {row['embedding']:>5} {row['ranking']:>5} {row['digest']:>6} "
            f"{row['ranking_usd']:>9.5f} {row['embedding_usd']:>10.6f} {row['run_usd']:>8.5f} "
            f"{row['wall']:>7.2f} {row['peak_mb']:>8.0f}"
        )
    big, small, again = (row for _, row in rows)
    print(
        "targets: 1,000 candidates <= 60 requests "
        f"({big['embedding'] + big['ranking']}), <= 0.02 USD ({big['ranking_usd']:.5f}), "
        f"< 60 s ({big['wall']:.1f}), < 300 MB ({big['peak_mb']:.0f}); day of 50 <= 3 requests "
        f"({small['embedding'] + small['ranking']}), <= 0.01 USD ({small['ranking_usd']:.5f}); "
        f"re-run 0 ranking requests ({again['ranking'] + again['embedding']})"
    )


if __name__ == "__main__":
    main()
