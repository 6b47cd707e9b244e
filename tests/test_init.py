"""``digest init``: a blog that Jekyll publishes as it is, with nothing private in it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from digest.blog.init_blog import BLOG_FILES
from tests import jekyll
from tests.conftest import missing
from tests.helpers import digest
from tests.standins import StandIn, hf_item
from tests.test_nightly import DATE, serve_papers

EVERY_FILE = sorted(BLOG_FILES.values())


def files_in(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_init_makes_a_blog_in_an_empty_folder_and_keeps_it_on_a_second_run() -> None:
    code, out, err = digest("init", "blog", "--title", "논문: 매일")
    assert code == 0, err
    assert sorted(line.removeprefix("wrote: blog/") for line in out.splitlines()) == EVERY_FILE
    assert Path("blog/_posts").is_dir() and Path("blog/_digest").is_dir()
    config = Path("blog/_config.yml").read_text(encoding="utf-8")
    assert 'title: "논문: 매일"' in config and "lang: ko" in config
    assert "timezone: Asia/Seoul" in config and "input: GFM" in config
    assert "permalink: /:year/:month/:day/:title/" in config and "jekyll-feed" in config
    for private in ("digest.toml", "_digest/", ".digest.lock"):
        assert f"  - {private}\n" in config
    settings = Path("blog/digest.toml").read_text(encoding="utf-8")
    assert "api_key" not in settings and "sk-" not in settings
    assert "Noto Sans KR" in Path("blog/_layouts/default.html").read_text(encoding="utf-8")
    before = files_in(Path("blog"))

    code, out, _ = digest("init", "blog")
    assert code == 0
    assert all(line.startswith("kept: blog/") for line in out.splitlines())
    assert len(out.splitlines()) == len(EVERY_FILE)
    assert files_in(Path("blog")) == before  # not a byte changed


def test_init_never_overwrites_an_existing_site_unless_forced() -> None:
    site = Path("site")
    (site / "_layouts").mkdir(parents=True)
    (site / "_config.yml").write_text("title: My old blog\n", encoding="utf-8")
    (site / "index.html").write_text("<p>mine</p>\n", encoding="utf-8")
    (site / "_layouts" / "post.html").write_text("{{ content }}\n", encoding="utf-8")
    code, out, err = digest("init", "site")
    assert code == 0, err
    kept = sorted(line for line in out.splitlines() if line.startswith("kept: "))
    assert kept == [
        "kept: site/_layouts/post.html (it exists; --force replaces it)",
        "kept: site/index.html (it exists; --force replaces it)",
    ]
    # The site's own settings stay; what keeps digest's files off the site is added to them
    # (tests/test_init_hostile.py has the rest).
    assert (
        "updated: site/_config.yml (exclude: digest.toml, _digest/, .digest.lock, .digest-cache/,"
        " .venv/, requirements.txt, Gemfile, Gemfile.lock, node_modules/, vendor/bundle/,"
        " vendor/cache/, vendor/gems/, vendor/ruby/; plugins: jekyll-feed)"
    ) in out.splitlines()
    config = (site / "_config.yml").read_text(encoding="utf-8")
    assert config.startswith("title: My old blog\n") and "lang: ko" not in config
    assert (site / "digest.toml").is_file() and (site / ".github/workflows/pages.yml").is_file()

    code, out, _ = digest("init", "site", "--force")
    assert code == 0
    assert sorted(line for line in out.splitlines() if line.startswith("replaced: ")) == [
        "replaced: site/_config.yml",
        "replaced: site/_layouts/post.html",
        "replaced: site/index.html",
    ]
    assert "lang: ko" in (site / "_config.yml").read_text(encoding="utf-8")


def test_init_into_a_file_is_one_line_and_exit_2() -> None:
    Path("taken").write_text("x", encoding="utf-8")
    code, _, err = digest("init", "taken")
    assert (
        code == 2
        and err.strip() == "error: taken is a file, not a folder; give digest init a folder"
    )


def daily_in_a_new_blog(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> Path:
    papers = serve_papers(standin, 2)
    standin.hf_days[DATE] = [hf_item(paper, 5) for paper in papers]
    assert digest("init", "blog")[0] == 0
    monkeypatch.chdir("blog")  # where digest.toml is read from, as cron's "cd blog" does
    code, out, err = digest("daily", "--date", DATE)
    assert code == 0, err
    assert f"wrote: _posts/{DATE}-daily-papers.md (2 papers)" in out
    return Path.cwd()


def test_daily_inside_an_initialised_blog_writes_where_jekyll_wants_it(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other tools' temporary files, named like ours, at the blog's root: never touched.
    Path("blog/.git").mkdir(parents=True)
    planted = [
        Path("blog/.git/.index.lock.tmp"),
        Path("blog/_drafts/.draft.md.tmp"),
        Path("blog/_posts/.hugo.md.tmp"),  # another tool's, in a folder digest writes
    ]
    for path in planted:
        path.parent.mkdir(parents=True, exist_ok=True)
    for path in planted:
        path.write_text("someone else's", encoding="utf-8")
    blog = daily_in_a_new_blog(standin, monkeypatch)
    assert (blog / f"_posts/{DATE}-daily-papers.md").is_file()
    assert (blog / f"_digest/{DATE}.json").is_file() and (
        blog / f"_digest/{DATE}.run.json"
    ).is_file()
    assert (blog / ".digest.lock").is_file()
    assert not (blog / "outputs").exists() and not (blog / "data").exists()
    assert digest("render", "--check")[0] == 0  # the pull-request check, in the blog
    assert all(
        (blog.parent / path).read_text(encoding="utf-8") == "someone else's" for path in planted
    )


@pytest.mark.slow
def test_jekyll_publishes_the_blog_without_its_private_files(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    if jekyll.jekyll_available() is None:
        missing(
            "jekyll is not installed (apt-get install jekyll ruby-jekyll-feed)",
            "DIGEST_REQUIRE_JEKYLL",
        )
    blog = daily_in_a_new_blog(standin, monkeypatch)
    # Debian's jekyll with its jekyll-feed, not the Gemfile's github-pages gem (for bundler).
    environment = {**os.environ, "JEKYLL_NO_BUNDLER_REQUIRE": "true", "LANG": "C.UTF-8"}
    done = subprocess.run(
        ["jekyll", "build", "--quiet"], cwd=blog, env=environment, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    published = sorted(
        str(path.relative_to(blog / "_site"))
        for path in (blog / "_site").rglob("*")
        if path.is_file()
    )
    assert published == [
        "2025/12/16/daily-papers/index.html", "feed.xml", "index.html", "search/index.html",
    ]  # fmt: skip
    index = (blog / "_site/index.html").read_text(encoding="utf-8")
    assert 'href="/2025/12/16/daily-papers/"' in index and f"Daily Papers — {DATE}" in index
    post = (blog / "_site/2025/12/16/daily-papers/index.html").read_text(encoding="utf-8")
    assert '<html lang="ko">' in post and "Paper number 1" in post
    assert "/2025/12/16/daily-papers/" in (blog / "_site/feed.xml").read_text(encoding="utf-8")


def test_daily_in_a_jekyll_site_without_init_warns_that_day_files_would_be_published(
    standin: StandIn,
) -> None:
    serve_papers(standin, 1)
    Path("_config.yml").write_text("title: mine\n", encoding="utf-8")
    code, _, err = digest("daily", "--source", "ids", "--ids", "2512.10001", "--date", DATE)
    assert code == 0, err
    assert "warning: this is a Jekyll site, and it would publish outputs/data/" in err
    assert "run 'digest init .'" in err
