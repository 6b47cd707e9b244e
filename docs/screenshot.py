"""Make the blog's screenshots: a blog made by 'digest init', as a reader sees it.

The blog has four days across two months: the reference post (2025-12-16), and three days made
from the hand-written digests in tests/data/digests, written as day files and rendered by
'digest render' as the nightly run would. Each page is taken at a desktop and a phone width:

- docs/index-desktop.png, docs/index-phone.png: the front page;
- docs/post-desktop.png, docs/post-phone.png: a one-paper day, the whole page;
- docs/post.png: the reference post at a middle width (the README's picture).

Needs Debian's jekyll, ruby-jekyll-feed, chromium, chromium-driver and fonts-noto-cjk (the
page's Korean is boxes without a CJK font), and selenium (in the dev extras). Run from the
repository root: python docs/screenshot.py
"""

from __future__ import annotations

import datetime as dt
import functools
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATA = REPO / "tests" / "data"
REFERENCE = DATA / "2025-12-16-daily-papers.md"
DOCS = REPO / "docs"
POST = "/2025/12/16/daily-papers/"

# The other days: (date, arXiv IDs of tests/data/digests, in the order of the post).
OTHER_DAYS = [
    (dt.date(2025, 12, 15), ["2501.12948", "2004.04906", "2203.00274"]),
    (dt.date(2025, 12, 12), ["1906.08632"]),
    (dt.date(2025, 11, 28), ["2203.00274", "0908.0054"]),
]

# (file, page, width, height): a phone is 390 CSS pixels wide (an iPhone 12 to 15). A height
# of None takes the whole page: the one-paper day shows a post from its title to its links to
# the days before and after.
SHOTS: list[tuple[str, str, int, int | None]] = [
    ("index-desktop.png", "/", 1280, None),
    ("index-phone.png", "/", 390, None),
    ("post-desktop.png", "/2025/12/12/daily-papers/", 1280, None),
    ("post-phone.png", "/2025/12/12/daily-papers/", 390, None),
    ("post.png", POST, 900, 1400),
]
# What Chromium needs to run headless as root without reaching out to the network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def run(*command: str, cwd: Path, **env: str) -> None:
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, **env})


def write_other_days(blog: Path) -> None:
    """Day files for OTHER_DAYS, as 'digest daily' would leave them (less the run's report)."""
    from digest.blog.store import dump_day
    from digest.models import Day, Digest, Links, PaperEntry, Provenance

    corpus = json.loads((DATA / "corpus_metadata.json").read_text(encoding="utf-8"))
    metadata = {entry["arxiv_id"]: entry for entry in corpus.values()}
    for date, ids in OTHER_DAYS:
        papers = [
            PaperEntry(
                arxiv_id=arxiv_id,
                version=metadata[arxiv_id]["version"],
                title=metadata[arxiv_id]["title"],
                authors=metadata[arxiv_id]["authors"],
                links=Links.for_arxiv(arxiv_id),
                digest=Digest.model_validate_json(
                    (DATA / "digests" / f"{arxiv_id}.json").read_text(encoding="utf-8")
                ),
                provenance=Provenance(source="llm", model="hand-written", prompt_version="-"),
            )
            for arxiv_id in ids
        ]
        day = Day(date=date, title=f"Daily Papers — {date.isoformat()}", papers=papers)
        (blog / "_digest" / f"{date.isoformat()}.json").write_text(dump_day(day), encoding="utf-8")


def take_screenshots(root: str, profile: Path) -> None:
    """SHOTS, through selenium and Debian's chromedriver: the page is laid out at exactly the
    width asked for (a window cannot be made narrower than 500 pixels), and a whole page is
    taken by making the viewport as tall as the page."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        for name, page, width, height in SHOTS:
            metrics = {"width": width, "height": height or 800, "deviceScaleFactor": 1,
                       "mobile": False}  # fmt: skip
            driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            driver.get(root + page)
            if height is None:
                metrics["height"] = driver.execute_script(
                    "return document.documentElement.scrollHeight"
                )
                driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth"
            )
            if overflow > 0:
                raise SystemExit(f"{page} is {overflow} pixels too wide at {width} pixels")
            driver.save_screenshot(str(DOCS / name))
            print(f"wrote: {(DOCS / name).relative_to(REPO)}")
    finally:
        driver.quit()


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        blog = Path(folder) / "blog"
        digest = [sys.executable, "-m", "digest"]
        run(*digest, "init", str(blog), cwd=REPO)
        run(*digest, "import", str(REFERENCE), cwd=blog)
        write_other_days(blog)
        run(*digest, "render", cwd=blog)
        # Debian's jekyll, not the Gemfile's github-pages gem (that one is for bundler).
        run("jekyll", "build", "--quiet", cwd=blog, JEKYLL_NO_BUNDLER_REQUIRE="true")
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(blog / "_site")
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        root = f"http://127.0.0.1:{server.server_address[1]}"
        try:
            take_screenshots(root, Path(folder) / "chrome")
        finally:
            server.shutdown()


if __name__ == "__main__":
    main()
