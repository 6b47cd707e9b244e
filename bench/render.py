"""Benchmark: ``digest render --check`` over 1,000 generated days. Target: under 5 s on 2 cores.

Each generated day is the reference post's six papers (imported from tests/data) under a new
date, with titles varied so no two posts are alike. The command runs as a user runs it, in a
fresh process, so interpreter start-up and imports are included.

    python bench/render.py [--days 1000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.blog.post_parser import parse_post  # noqa: E402
from digest.blog.render import render_day  # noqa: E402
from digest.blog.store import OutputStore  # noqa: E402
from digest.files import atomic_write_text  # noqa: E402
from digest.models import Day  # noqa: E402

REFERENCE = REPO / "tests" / "data" / "2025-12-16-daily-papers.md"


def reference_days(days: int) -> Iterator[Day]:
    """``days`` days from 2023-01-01: the reference post's papers, titles varied by day."""
    template = parse_post(REFERENCE)
    start = dt.date(2023, 1, 1)
    for offset in range(days):
        date = start + dt.timedelta(days=offset)
        papers = [
            paper.model_copy(update={"title": f"{paper.title} #{offset}"})
            for paper in template.papers
        ]
        yield template.model_copy(
            update={"date": date, "title": f"Daily Papers — {date}", "papers": papers}
        )


def generate(outputs: OutputStore, days: int) -> None:
    for day in reference_days(days):
        outputs.save_day(day)
        atomic_write_text(outputs.post_path(day.date), render_day(day))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        outputs = OutputStore(Path(folder) / "outputs")
        started = time.perf_counter()
        generate(outputs, options.days)
        print(f"generated {options.days} days in {time.perf_counter() - started:.1f} s")

        command = [sys.executable, "-m", "digest", "render", "--check"]
        # Bytecode caching on, as on a user's machine (the first run fills the cache).
        inherited = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        environment = {**inherited, "DIGEST_OUTPUT_DIR": str(outputs.root)}
        timings = []
        for _ in range(options.repeat):
            started = time.perf_counter()
            result = subprocess.run(command, env=environment, capture_output=True, text=True)
            timings.append(time.perf_counter() - started)
            if result.returncode != 0:
                sys.exit(f"render --check failed ({result.returncode}): {result.stderr}")

        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "digest", "--version"], env=environment, capture_output=True
        )
        startup = time.perf_counter() - started

    posts = options.days
    print(f"render --check over {posts} days ({posts * 6} papers), {options.repeat} runs:")
    print(
        f"  median {statistics.median(timings):.2f} s, best {min(timings):.2f} s, "
        f"worst {max(timings):.2f} s (target < 5 s)"
    )
    print(
        f"  per day {statistics.median(timings) / posts * 1000:.2f} ms; "
        f"of which process start and imports {startup:.2f} s"
    )


if __name__ == "__main__":
    main()
