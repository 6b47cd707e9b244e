"""Make docs/post.png: the reference post as a reader sees it, in a blog made by 'digest init'.

Needs Debian's jekyll, ruby-jekyll-feed, chromium and fonts-noto-cjk (the page's Korean is
boxes without a CJK font). Run from the repository root: python docs/screenshot.py
"""

from __future__ import annotations

import functools
import http.server
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "data" / "2025-12-16-daily-papers.md"
OUTPUT = REPO / "docs" / "post.png"


def run(*command: str, cwd: Path, **env: str) -> None:
    subprocess.run(command, cwd=cwd, check=True, env={**os.environ, **env})


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        blog = Path(folder) / "blog"
        digest = [sys.executable, "-m", "digest"]
        run(*digest, "init", str(blog), cwd=REPO)
        run(*digest, "import", str(REFERENCE), cwd=blog)
        run(*digest, "render", cwd=blog)
        # Debian's jekyll, not the Gemfile's github-pages gem (that one is for bundler).
        run("jekyll", "build", "--quiet", cwd=blog, JEKYLL_NO_BUNDLER_REQUIRE="true")
        handler = functools.partial(
            http.server.SimpleHTTPRequestHandler, directory=str(blog / "_site")
        )
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/2025/12/16/daily-papers/"
        try:
            run(
                "chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--hide-scrollbars", f"--user-data-dir={folder}/chrome",
                f"--screenshot={OUTPUT}", "--window-size=900,1400", url,
                cwd=REPO,
            )  # fmt: skip
        finally:
            server.shutdown()
    print(f"wrote: {OUTPUT.relative_to(REPO)}")


if __name__ == "__main__":
    main()
