"""Benchmark: the search index of a blog with 1,000 posts. Jekyll's build, Pagefind's index, and
the index's size (what a reader's browser loads from, in pieces, as it searches).

The blog is made by ``digest init``; each post is rendered from a generated day: the reference
post's six papers (tests/data) under a new date, with titles varied so no two posts are alike.
Jekyll is Debian's (``jekyll build``, as the tests run it; GitHub Pages runs its own), Pagefind
the one the blog pins, run as its pages workflow runs it: ``python -m pagefind --site _site``.

    python bench/search.py [--days 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.blog.init_blog import init_blog  # noqa: E402
from digest.blog.render import render_day  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from render import reference_days  # noqa: E402  (bench/render.py: the same generated days)


def generate(blog: Path, days: int) -> None:
    for day in reference_days(days):
        (blog / "_posts" / f"{day.date}-daily-papers.md").write_text(render_day(day), "utf-8")


def timed(command: list[str], cwd: Path, environment: dict[str, str]) -> float:
    started = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True)
    took = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({result.returncode}): {result.stderr}")
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=1000)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        blog = Path(folder) / "blog"
        init_blog(blog)
        generate(blog, options.days)
        # Debian's jekyll with its jekyll-feed, not the Gemfile's github-pages gem (for bundler).
        environment = {**os.environ, "JEKYLL_NO_BUNDLER_REQUIRE": "true", "LANG": "C.UTF-8"}
        jekyll = timed(["jekyll", "build", "--quiet", "--future"], blog, environment)
        pagefind = timed([sys.executable, "-m", "pagefind", "--site", "_site"], blog, environment)
        index = [path for path in (blog / "_site" / "pagefind").rglob("*") if path.is_file()]
        size = sum(path.stat().st_size for path in index)
        pages = sum(1 for _ in (blog / "_site").rglob("daily-papers/index.html"))

    print(f"{options.days} posts ({options.days * 6} papers), {pages} pages built")
    print(f"jekyll build: {jekyll:.1f} s")
    print(f"pagefind --site _site: {pagefind:.1f} s")
    print(f"_site/pagefind/: {size:,} bytes ({size / 2**20:.1f} MiB) in {len(index):,} files")


if __name__ == "__main__":
    main()
