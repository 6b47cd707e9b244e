"""Hostile inputs against their bounds: wall time against each deadline, peak memory.

- A slow PDF (every page draws one long stream) against DIGEST_EXTRACT_TIMEOUT.
- A server trickling a byte at a time, for the LLM, the PDF host, the arXiv API and Hugging
  Face, against DIGEST_LLM_TIMEOUT / DIGEST_HTTP_TIMEOUT.
- The peak memory of the whole process tree (digest and its extraction workers, sampled from
  /proc) reading a Flate bomb (a stream that inflates to 1 GiB) and a 49 MB PDF.

Each case runs `digest` in a fresh process against the stand-ins with one attempt, so its wall
time is the deadline plus start-up; the target is deadline + 2 s. Run: python bench/hostile.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.helpers import make_digest  # noqa: E402
from tests.hostile_pdfs import flate_bomb, slow_pdf  # noqa: E402
from tests.standins import ArxivPaper, StandIn, completion, hf_item, serve  # noqa: E402

DEADLINE = 5.0
DATE = "2025-12-16"


def tree_rss_kb(root: int) -> int:
    """Resident memory of ``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        pid = int(entry.name)
        children.setdefault(int(fields.get("PPid", "0").strip() or 0), []).append(pid)
        rss[pid] = int(fields.get("VmRSS", "0 kB").split()[0]) if "VmRSS" in fields else 0
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(children.get(pid, []))
    return total


def run(args: list[str], env: dict[str, str], cwd: str) -> tuple[float, int, int, str]:
    """(wall seconds, exit code, peak process-tree RSS in MB, last stderr line)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "digest", *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, tree_rss_kb(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = process.communicate()
    done.set()
    sampler.join()
    last = err.strip().splitlines()[-1] if err.strip() else ""
    return time.monotonic() - started, process.returncode, peak // 1024, last


def big_pdf(megabytes: float = 49.0) -> bytes:
    """A real corpus paper padded with an unreferenced 49 MB stream of noise before its end."""
    paper = (REPO / "tests" / "data" / "pdfs" / "2004.04906v3.pdf").read_bytes()
    noise = os.urandom(int(megabytes * 1_000_000) - len(paper))
    pad = b"99 0 obj\n<< /Length %d >>\nstream\n" % len(noise) + noise + b"\nendstream\nendobj\n"
    cut = paper.rindex(b"%%EOF")
    return paper[:cut] + pad + paper[cut:]


def main() -> None:
    state = StandIn()
    server = serve(state)
    paper = ArxivPaper("2512.10001", 1, "A hostile paper", ["Kim"], "An abstract.")
    state.papers[paper.arxiv_id] = paper
    state.hf_days[DATE] = [hf_item(paper, 1)]
    state.llm_default = lambda request: completion(
        __import__("json").dumps(make_digest().model_dump(), ensure_ascii=False)
    )
    rows: list[tuple[str, float, float, int, str]] = []
    with tempfile.TemporaryDirectory() as folder:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DIGEST_", "OPENAI_"))},
            "PYTHONPATH": str(REPO),
            "OPENAI_BASE_URL": f"{state.url}/v1",
            "OPENAI_API_KEY": "sk-bench-key",
            "DIGEST_MODEL": "bench-model",
            "DIGEST_ARXIV_API_URL": f"{state.url}/api/query",
            "DIGEST_ARXIV_PDF_URL": f"{state.url}/pdf/{{id}}",
            "DIGEST_HF_API_URL": f"{state.url}/hf",
            "DIGEST_ARXIV_DELAY": "0",
            "DIGEST_LLM_MAX_ATTEMPTS": "1",
            "DIGEST_HTTP_MAX_ATTEMPTS": "1",
            "DIGEST_LLM_TIMEOUT": str(DEADLINE),
            "DIGEST_HTTP_TIMEOUT": str(DEADLINE),
            "DIGEST_EXTRACT_TIMEOUT": str(DEADLINE),
            "DIGEST_PDF_MAX_MB": "60",
        }

        def case(name: str, args: list[str], deadline: float, **changes: object) -> None:
            state.trickle = changes.get("trickle", {})  # type: ignore[assignment]
            state.pdfs[f"{paper.arxiv_id}v1"] = changes.get("pdf", slow_pdf(1, 0.01))  # type: ignore[assignment]
            cache = tempfile.mkdtemp(dir=folder)
            wall, code, peak, last = run(args, {**env, "DIGEST_CACHE_DIR": cache}, folder)
            rows.append((name, wall, deadline, peak, f"exit {code}: {last[:90]}"))

        one = ["paper", paper.arxiv_id, "--json"]
        case("slow PDF (400 pages x 8 MB stream)", one, DEADLINE, pdf=slow_pdf(400, 8))
        case("LLM trickling 1 byte / 50 ms", one, DEADLINE, trickle={"llm": 0.05})
        case("PDF host trickling 1 byte / 10 ms", one, DEADLINE, trickle={"pdf": 0.01})
        case("arXiv API trickling 1 byte / 10 ms", one, DEADLINE, trickle={"arxiv": 0.01})
        state.hf_days[DATE][0]["paper"]["summary"] = "x" * 2000
        daily = ["daily", "--date", DATE, "--output-dir", f"{folder}/out"]
        case("Hugging Face trickling 1 byte / 10 ms", daily, DEADLINE, trickle={"hf": 0.01})
        case("Flate bomb (1 GiB inflated)", one, DEADLINE, pdf=flate_bomb(1.0))
        case("49 MB PDF", one, DEADLINE * 12, pdf=big_pdf(49.0))
    server.shutdown()

    print(f"{'case':40} {'wall s':>7} {'target s':>9} {'peak MB':>8}  outcome")
    for name, wall, deadline, peak, outcome in rows:
        print(f"{name:40} {wall:7.1f} {deadline + 2:9.1f} {peak:8d}  {outcome}")


if __name__ == "__main__":
    main()
