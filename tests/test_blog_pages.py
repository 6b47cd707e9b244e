"""The pages of a blog made by ``digest init``, built by a real Jekyll and read as a reader would.

The front page lists the days, newest first, under a heading per month, each with its number of
papers and its first titles; a post shows its title and date, a list of its papers, and links to
the day before and after; the ``about:`` of ``_config.yml`` shows on the front page, as text.
The titles the front page shows are read out of the rendered posts by the layouts' Liquid, so
the hostile titles here check that nothing in that reading turns text back into markup.

Skipped, saying why, where ``jekyll`` is missing; ``DIGEST_REQUIRE_JEKYLL`` turns that skip into
a failure. The browser test (selenium driving Debian's chromium and chromedriver) likewise skips
without them unless ``DIGEST_REQUIRE_BROWSER`` is set. Both variables are read by module-scoped
fixtures, which run before the per-test fixture that clears the DIGEST_ variables.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import http.server
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from lxml import html as lxml_html

from digest.blog.init_blog import init_blog
from digest.blog.post_parser import parse_post_text
from digest.blog.render import render_day
from tests import jekyll
from tests.conftest import REFERENCE_POST, missing
from tests.helpers import make_day, make_entry

# Each site is built by a real Jekyll, and one is read in Chromium: seconds, in the slow tier.
pytestmark = pytest.mark.slow

WEEKDAYS = "월화수목금토일"  # date.weekday(): Monday is 0
ABOUT = "<b>x</b> {{ site.title }} & 그 밖의 것"
HOSTILE_TITLES = [
    '<script>alert("x")</script> & <b>굵게</b>',
    "{{ site.title }} 와 {% raw %} 그리고 {% endraw %} 이다",
    "&amp; 와 &lt;i&gt; 는 글자 그대로",
    "[링크](https://evil.example) 와 *강조* 와 `코드`",
]


@dataclass(frozen=True)
class PostDay:
    date: dt.date
    titles: list[str]

    @property
    def url(self) -> str:
        return f"/{self.date:%Y/%m/%d}/daily-papers/"

    @property
    def title(self) -> str:
        return f"Daily Papers — {self.date.isoformat()}"


def reference_titles() -> list[str]:
    day = parse_post_text(REFERENCE_POST.read_text(encoding="utf-8"), REFERENCE_POST)
    return [paper.title for paper in day.papers]


# Newest first, as the front page lists them: three months across a new year.
DAYS = [
    # A word longer than a phone is wide: it must wrap, not widen the page.
    PostDay(dt.date(2026, 1, 2), ["Pneumonoultramicroscopicsilicovolcanoconiosis Is All You Need"]),
    PostDay(dt.date(2025, 12, 16), reference_titles()),  # the reference post itself
    PostDay(dt.date(2025, 12, 14), ["DeepSeek-R1: Reasoning", "TableFormer: Tables"]),  # a Sunday
    PostDay(dt.date(2025, 11, 28), HOSTILE_TITLES),
]


@pytest.fixture(scope="module")
def jekyll_here() -> None:
    if jekyll.jekyll_available() is None:
        missing(
            "jekyll is not installed (apt-get install jekyll ruby-jekyll-feed)",
            "DIGEST_REQUIRE_JEKYLL",
        )


def make_blog(folder: Path, *, about: str | None, days: list[PostDay]) -> Path:
    """A blog from ``digest init`` with ``days`` as its posts, and ``about`` in place of the
    template's about text (None keeps the template's)."""
    init_blog(folder)
    config = folder / "_config.yml"
    settings = config.read_text(encoding="utf-8")
    line = re.compile(r"^about: .*\n", re.MULTILINE)
    assert line.search(settings), "the template's _config.yml has no about line"
    if about is not None:
        setting = yaml.safe_dump({"about": about}, allow_unicode=True, width=1000)
        config.write_text(line.sub(lambda _: setting, settings), encoding="utf-8")
    for day in days:
        name = f"{day.date.isoformat()}-daily-papers.md"
        if day.date == dt.date(2025, 12, 16):
            post = REFERENCE_POST.read_text(encoding="utf-8")
        else:
            entries = [
                make_entry(f"2512.{10001 + number}", title)
                for number, title in enumerate(day.titles)
            ]
            post = render_day(make_day(*entries, date=day.date))
        (folder / "_posts" / name).write_text(post, encoding="utf-8")
    return folder


def jekyll_build(blog: Path) -> Path:
    # Debian's jekyll with its jekyll-feed, not the Gemfile's github-pages gem (for bundler);
    # --future: a post is never left out for being dated after the machine's clock.
    environment = {
        **os.environ,
        "JEKYLL_NO_BUNDLER_REQUIRE": "true",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    done = subprocess.run(
        ["jekyll", "build", "--quiet", "--future"], cwd=blog, env=environment,
        capture_output=True, text=True, timeout=180, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    return blog / "_site"


@pytest.fixture(scope="module")
def site(jekyll_here: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built site of a blog with DAYS and the hostile ABOUT: one build for the module."""
    blog = make_blog(tmp_path_factory.mktemp("blog") / "blog", about=ABOUT, days=DAYS)
    return jekyll_build(blog)


def page(site: Path, url: str) -> Any:
    return lxml_html.fromstring((site / url.strip("/") / "index.html").read_bytes())


def text(element: Any) -> str:
    """An element's text as a reader sees it: entities decoded, runs of white space as one."""
    return " ".join(element.text_content().split())


def month_label(date: dt.date) -> str:
    return f"{date.year}년 {date.month}월"


# --- the front page -------------------------------------------------------------------------


def test_the_front_page_lists_the_days_newest_first_under_their_months(site: Path) -> None:
    index = page(site, "/")
    months = index.xpath('//section[@class="month"]')
    assert [text(month.xpath("h2")[0]) for month in months] == [
        "2026년 1월", "2025년 12월", "2025년 11월",
    ]  # fmt: skip
    listed: list[tuple[str, str, str]] = []
    for month in months:
        for day in month.xpath('.//li[@class="day"]'):
            link = day.xpath('.//p[@class="day-head"]/a')[0]
            listed.append((text(month.xpath("h2")[0]), text(link), link.get("href")))
    assert listed == [
        (month_label(day.date), f"{day.date.month}월 {day.date.day}일 "
         f"({WEEKDAYS[day.date.weekday()]})", day.url)
        for day in DAYS
    ]  # fmt: skip


def test_each_day_shows_its_paper_count_and_its_first_three_titles(site: Path) -> None:
    index = page(site, "/")
    days = index.xpath('//li[@class="day"]')
    assert len(days) == len(DAYS)
    for element, day in zip(days, DAYS, strict=True):
        assert text(element.xpath('.//span[@class="count"]')[0]) == f"{len(day.titles)}편"
        shown = element.xpath('.//ul[@class="titles"]/li/a')
        assert [text(link) for link in shown] == day.titles[:3], day.date
        # Each title leads to its paper in the day's post.
        post = page(site, day.url)
        for link, title in zip(shown, day.titles, strict=False):
            url, _, anchor = link.get("href").partition("#")
            assert url == day.url and anchor
            heading = post.get_element_by_id(anchor)
            assert heading.tag == "h1" and text(heading).endswith(title)
        more = element.xpath('.//p[@class="more"]')
        if len(day.titles) > 3:
            assert [text(node) for node in more] == [f"외 {len(day.titles) - 3}편 더 보기"]
        else:
            assert more == []


def test_hostile_titles_stay_text_on_the_front_page(site: Path) -> None:
    index = page(site, "/")
    main = index.xpath("//main")[0]
    # Nothing a title holds becomes an element, a link or Liquid output.
    assert main.xpath(".//script | .//b | .//em | .//code | .//i") == []
    assert not any("evil.example" in (link.get("href") or "") for link in main.iter("a"))
    hostile = main.xpath('.//li[@class="day"]')[-1]
    shown = [text(link) for link in hostile.xpath('.//ul[@class="titles"]/li/a')]
    assert shown == HOSTILE_TITLES[:3]
    raw = (site / "index.html").read_text(encoding="utf-8")
    assert "&lt;script&gt;alert" in raw and "<script>alert" not in raw


def test_the_about_text_shows_as_text(site: Path) -> None:
    index = page(site, "/")
    about = index.xpath('//section[@class="intro"]/p[@class="about"]')
    assert [text(node) for node in about] == [ABOUT]
    assert about[0].xpath(".//*") == []  # "<b>x</b>" is text, not an element


@pytest.mark.parametrize("about", ["default", "empty", "absent"])
def test_the_about_text_is_a_default_line_and_nothing_when_empty_or_absent(
    jekyll_here: None, tmp_path: Path, about: str
) -> None:
    blog = make_blog(tmp_path / "blog", about="" if about == "empty" else None, days=DAYS[:1])
    config = blog / "_config.yml"
    if about == "absent":
        settings = config.read_text(encoding="utf-8")
        config.write_text(re.sub(r"^about: .*\n", "", settings, flags=re.MULTILINE), "utf-8")
    index = page(jekyll_build(blog), "/")
    shown = [text(node) for node in index.xpath('//p[@class="about"]')]
    if about == "default":
        default = yaml.safe_load(config.read_text(encoding="utf-8"))["about"]
        assert re.search("[가-힣]", default)  # a line in Korean, as the blog is
        assert shown == [default]
    else:
        assert shown == []
    assert len(index.xpath('//li[@class="day"]')) == 1


# --- a day's post ---------------------------------------------------------------------------


@pytest.mark.parametrize("number", range(len(DAYS)), ids=[str(day.date) for day in DAYS])
def test_a_post_shows_its_title_its_date_and_its_papers(site: Path, number: int) -> None:
    day = DAYS[number]
    post = page(site, day.url)
    header = post.xpath('//article/header[@class="post-header"]')[0]
    assert text(header.xpath("h1")[0]) == day.title
    time = header.xpath(".//time")[0]
    assert text(time) == (
        f"{day.date.year}년 {day.date.month}월 {day.date.day}일 {WEEKDAYS[day.date.weekday()]}요일"
    )
    assert time.get("datetime") == day.date.isoformat()
    papers = [text(heading) for heading in post.xpath('//div[@class="post-body"]/h1')]
    assert papers == [f"{n}. {title}" for n, title in enumerate(day.titles, 1)]
    listed = post.xpath('//nav[@class="toc"]//li')
    if len(day.titles) > 1:
        assert [text(item) for item in listed] == day.titles
        for item, n in zip(listed, range(len(day.titles)), strict=True):
            anchor = item.xpath("a")[0].get("href")
            assert anchor.startswith("#")
            assert (
                post.get_element_by_id(anchor[1:]) is post.xpath('//div[@class="post-body"]/h1')[n]
            )
    else:
        assert listed == []  # one paper needs no list


@pytest.mark.parametrize("number", range(len(DAYS)), ids=[str(day.date) for day in DAYS])
def test_a_post_links_to_the_day_before_and_the_day_after(site: Path, number: int) -> None:
    day = DAYS[number]
    post = page(site, DAYS[number].url)
    older = DAYS[number + 1] if number + 1 < len(DAYS) else None
    newer = DAYS[number - 1] if number > 0 else None
    for rel, expected in (("prev", older), ("next", newer)):
        links = post.xpath(f'//nav[@class="post-nav"]/a[@rel="{rel}"]')
        if expected is None:
            assert links == [], (day.date, rel)
        else:
            assert [link.get("href") for link in links] == [expected.url], (day.date, rel)
            assert text(links[0]).endswith(expected.title)
    if older is None and newer is None:
        assert post.xpath('//nav[@class="post-nav"]') == []


def test_hostile_titles_stay_text_in_the_post_list(site: Path) -> None:
    post = page(site, DAYS[-1].url)
    listed = post.xpath('//nav[@class="toc"]//li')
    assert [text(item) for item in listed] == HOSTILE_TITLES
    assert post.xpath("//script | //article//b | //article//em | //article//code") == []


# --- in a browser ---------------------------------------------------------------------------

CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE_WIDTH = 390  # CSS pixels: an iPhone 12 to 15
# What Chromium needs to run headless as root without reaching out to the network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars",
]  # fmt: skip


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser_here() -> None:
    reason = ""
    try:
        import selenium  # noqa: F401
    except ImportError:
        reason = "selenium is not installed (pip install selenium)"
    if chromium() is None or not Path(CHROMEDRIVER).is_file():
        reason = "chromium or chromedriver is missing (apt-get install chromium chromium-driver)"
    if reason:
        missing(reason, "DIGEST_REQUIRE_BROWSER")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """``directory`` over HTTP on 127.0.0.1, as a reader's browser gets it: its URL."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def served(site: Path) -> Iterator[str]:
    """The built site over HTTP on 127.0.0.1."""
    with serving(site) as url:
        yield url


@pytest.fixture
def phone(browser_here: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium laid out at a phone's width (a window cannot be made narrower than
    500 pixels; the metrics override makes the viewport exactly that wide)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    # Selenium's own driver manager is never asked (the driver's path is given); were it asked,
    # it must neither download nor report.
    monkeypatch.setenv("SE_OFFLINE", "true")
    monkeypatch.setenv("SE_AVOID_STATS", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium() or ""
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": PHONE_WIDTH, "height": 844, "deviceScaleFactor": 1, "mobile": False},
        )
        yield driver
    finally:
        driver.quit()


def assert_fits_the_phone(driver: Any) -> None:
    inner, scroll = driver.execute_script(
        "return [window.innerWidth, document.documentElement.scrollWidth]"
    )
    assert inner == PHONE_WIDTH
    assert scroll <= inner, f"{driver.current_url} is {scroll} pixels wide at {inner}"


def test_a_reader_goes_from_the_front_page_to_a_post_and_the_day_before_on_a_phone(
    browser_here: None, served: str, phone: Any
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    def arrive(url: str) -> None:
        WebDriverWait(phone, 10).until(lambda driver: driver.current_url == served + url)
        assert_fits_the_phone(phone)

    phone.get(served + "/")
    assert_fits_the_phone(phone)
    phone.find_element(By.CSS_SELECTOR, "li.day .day-head a").click()
    arrive(DAYS[0].url)
    assert phone.find_element(By.CSS_SELECTOR, ".post-header h1").text == DAYS[0].title
    phone.find_element(By.CSS_SELECTOR, "nav.post-nav a[rel=prev]").click()
    arrive(DAYS[1].url)
    assert phone.find_element(By.CSS_SELECTOR, ".post-header h1").text == DAYS[1].title
    # The post of hostile titles, and back to the front page through the site's header.
    phone.get(served + DAYS[-1].url)
    assert_fits_the_phone(phone)
    phone.find_element(By.CSS_SELECTOR, "header.site a.name").click()
    arrive("/")
