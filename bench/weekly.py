"""Benchmark: ``digest weekly`` for 52 weeks of day files. Target: under 5 s for all 52.

Writes 52 weeks × 7 days × 10 papers of day files into a temporary folder (built with the
test helpers' valid entries, titles varied), then runs ``digest weekly --week …`` for each
of the 52 weeks in one process, through the CLI as a user's command runs it (options parsed,
the lock taken, every day file read within bounds and validated, the post written
atomically). Start-up and imports, paid once, are timed separately.

    python bench/weekly.py [--weeks 52] [--repeat 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

START = time.perf_counter()
from typer.testing import CliRunner  # noqa: E402

from digest.blog.store import OutputStore  # noqa: E402
from digest.blog.weekly import Week  # noqa: E402
from digest.cli import app  # noqa: E402
from tests.helpers import make_day, make_entry  # noqa: E402

IMPORTS_S = time.perf_counter() - START
FIRST_MONDAY = dt.date(2025, 1, 6)  # 2025-W02


def write_days(out: Path, weeks: int) -> None:
    store = OutputStore(out)
    for offset in range(weeks * 7):
        date = FIRST_MONDAY + dt.timedelta(days=offset)
        entries = [
            make_entry(f"25{offset // 31 % 12 + 1:02d}.{offset:03d}{n:02d}", f"Paper {n} of {date}")
            for n in range(10)
        ]
        store.save_day(make_day(*entries, date=date))


def run_weeks(out: Path, weeks: int) -> float:
    runner = CliRunner()
    started = time.perf_counter()
    for number in range(weeks):
        week = Week.of(FIRST_MONDAY + dt.timedelta(weeks=number))
        result = runner.invoke(app, ["weekly", "--week", week.label, "--output-dir", str(out)])
        if result.exit_code != 0:
            raise SystemExit(f"digest weekly --week {week.label} failed: {result.output}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_days(out, args.weeks)
        times = []
        for _ in range(args.repeat):
            for post in (out / "_posts").glob("*.md"):
                post.unlink()  # each repeat writes every post again
            times.append(run_weeks(out, args.weeks))
        posts = len(list((out / "_posts").glob("*-weekly-papers-*.md")))
    print(
        f"digest weekly, {args.weeks} weeks × 7 days × 10 papers, in one process: "
        f"{statistics.median(times):.2f} s median of {args.repeat} "
        f"(min {min(times):.2f} s; start-up and imports {IMPORTS_S:.2f} s once); {posts} posts"
    )


if __name__ == "__main__":
    main()
