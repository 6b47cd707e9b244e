"""The search page of a blog made by ``digest init``: built by a real Jekyll, indexed by the
Pagefind the blog pins, and searched in Korean in headless Chromium as a reader would.

Skipped, saying why, where ``jekyll``, Pagefind (dev extras), Chromium or selenium is missing;
``DIGEST_REQUIRE_JEKYLL`` and ``DIGEST_REQUIRE_BROWSER`` turn those skips into failures.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from digest.blog.init_blog import init_blog
from digest.blog.render import render_day
from tests import jekyll
from tests.conftest import REPO, missing
from tests.helpers import make_day, make_digest, make_entry
from tests.test_blog_pages import CHROMEDRIVER, CHROMIUM_FLAGS, chromium, jekyll_build, serving

# Jekyll, Pagefind and Chromium on a real blog: seconds, in the slow tier.
pytestmark = pytest.mark.slow

# Three days, each digest about its own topic: a word of one topic is in that post alone.
TOPICS = {
    dt.date(2026, 1, 5): "단백질 구조 예측",
    dt.date(2026, 1, 6): "자율 주행 인식",
    dt.date(2026, 1, 7): "양자 화학 시뮬레이션",
}


def title(date: dt.date) -> str:
    return f"Daily Papers — {date.isoformat()}"


def pagefind_pin() -> str:
    """The Pagefind version the blog's requirements.txt pins."""
    requirements = (REPO / "digest/blog/template/requirements.txt").read_text(encoding="utf-8")
    found = re.search(r"^pagefind==(\S+)$", requirements, re.MULTILINE)
    assert found, "the template's requirements.txt pins no pagefind"
    return found.group(1)


def test_the_blog_and_the_dev_extras_pin_the_same_pagefind() -> None:
    requirements = (REPO / "digest/blog/template/requirements.txt").read_text(encoding="utf-8")
    version = pagefind_pin()
    assert f"\npagefind-bin=={version}\n" in requirements  # the binary moves with it
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'"pagefind[bin]=={version}"' in pyproject


@pytest.fixture(scope="module")
def tools_here() -> None:
    if jekyll.jekyll_available() is None:
        missing(
            "jekyll is not installed (apt-get install jekyll ruby-jekyll-feed)",
            "DIGEST_REQUIRE_JEKYLL",
        )
    if importlib.util.find_spec("pagefind_bin") is None:
        missing("pagefind is not installed (pip install -e '.[dev]')", "DIGEST_REQUIRE_BROWSER")
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing("selenium is not installed (pip install selenium)", "DIGEST_REQUIRE_BROWSER")
    if chromium() is None or not Path(CHROMEDRIVER).is_file():
        missing(
            "chromium or chromedriver is missing (apt-get install chromium chromium-driver)",
            "DIGEST_REQUIRE_BROWSER",
        )


def make_blog(folder: Path) -> Path:
    """A blog from ``digest init`` with one post per topic, rendered from its day, published
    under /myblog/ as GitHub Pages publishes a project's blog: the search page must find its
    index, and link to the posts, through relative_url."""
    init_blog(folder)
    with (folder / "_config.yml").open("a", encoding="utf-8") as config:
        config.write('baseurl: "/myblog"\n')
    for number, (date, topic) in enumerate(TOPICS.items()):
        entry = make_entry(f"2601.{10001 + number}", f"Paper {number}", digest=make_digest(topic))
        post = render_day(make_day(entry, date=date))
        (folder / "_posts" / f"{date.isoformat()}-daily-papers.md").write_text(post, "utf-8")
    return folder


def pagefind(site: Path) -> str:
    """``python -m pagefind --site _site``, as the blog's pages workflow runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "pagefind", "--site", "_site"], cwd=site.parent,
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return done.stdout


@pytest.fixture(scope="module")
def site(tools_here: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    built = jekyll_build(make_blog(tmp_path_factory.mktemp("blog") / "blog"))
    report = pagefind(built)
    assert "Discovered 1 language: ko" in report, report
    assert f"Indexed {len(TOPICS)} pages" in report, report  # the posts, not the front page
    return built


# Pagefind's UI: the line that says what was found for which words, a result still loading,
# and each result's title (a post's; its headings that matched are listed under it).
MESSAGE = ".pagefind-ui__message"
LOADING = ".pagefind-ui__loading"
RESULT = ".pagefind-ui__result-inner > .pagefind-ui__result-title a"


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site on 127.0.0.1 under /myblog/, where its baseurl says it is."""
    root = site.parent / "served"
    root.mkdir()
    (root / "myblog").symlink_to(site, target_is_directory=True)
    with serving(root) as url:
        yield f"{url}/myblog"


@pytest.fixture(scope="module")
def browser(tools_here: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium() or ""
    profile = tmp_path_factory.mktemp("profile")
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def search(browser: Any, page: str, query: str) -> list[tuple[str, str]]:
    """Type ``query`` into the search page; the results' titles and links once they settle."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page)
    box = WebDriverWait(browser, 15).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, ".pagefind-ui__search-input")
    )[0]
    box.send_keys(query)
    WebDriverWait(browser, 15).until(
        lambda driver: (
            query
            in " ".join(message.text for message in driver.find_elements(By.CSS_SELECTOR, MESSAGE))
            and not driver.find_elements(By.CSS_SELECTOR, LOADING)
        )
    )
    links = browser.find_elements(By.CSS_SELECTOR, RESULT)
    return [(link.text, link.get_attribute("href")) for link in links]


def url_of(served: str, date: dt.date) -> str:
    return f"{served}/{date:%Y/%m/%d}/daily-papers/"


@pytest.mark.parametrize("query", ["단백질", "시뮬레이션", "주행"])
def test_a_korean_word_finds_the_one_post_that_has_it(
    served: str, browser: Any, query: str
) -> None:
    date = next(date for date, topic in TOPICS.items() if query in topic)
    found = search(browser, f"{served}/search/", query)
    assert [name for name, _ in found] == [title(date)], found
    assert found[0][1] == url_of(served, date)  # under the blog's path, not the server's root


def test_a_word_in_no_post_finds_nothing_and_navigation_is_not_indexed(
    served: str, browser: Any
) -> None:
    assert search(browser, f"{served}/search/", "유니콘") == []
    # "RSS" and "검색" are on every page, in its header and footer, never in a post's body.
    assert search(browser, f"{served}/search/", "RSS") == []


def test_the_front_page_search_box_opens_the_search_page_with_its_results(
    served: str, browser: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{served}/")
    box = browser.find_element(By.CSS_SELECTOR, "form.search input[name=q]")
    box.send_keys("양자")
    box.submit()
    WebDriverWait(browser, 15).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, RESULT))
    assert browser.current_url.startswith(f"{served}/search/?q=")
    links = browser.find_elements(By.CSS_SELECTOR, RESULT)
    assert [link.text for link in links] == [title(dt.date(2026, 1, 7))]
