"""``digest weekly``: a week's issue from its day files, and ``render --check`` of it."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path

import pytest

from digest.blog import weekly
from digest.blog.render import escape_line, escape_title, guard_liquid, render_day
from digest.blog.store import OutputStore, dump_day
from digest.models import CandidateScore, Day, PaperEntry
from tests import jekyll
from tests.conftest import DATA
from tests.helpers import digest, make_day, make_digest, make_entry
from tests.test_jekyll import HOSTILE

WEEK = "2026-W49"  # Monday 2026-11-30 to Sunday 2026-12-06
MONDAY = dt.date(2026, 11, 30)
GOLDEN = DATA / "golden" / "2026-12-06-weekly-papers-2026-W49.md"


def write_day(out: Path, day: Day) -> Path:
    path = OutputStore(out).data_path(day.date)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_day(day), encoding="utf-8")
    return path


def small_week(out: Path) -> None:
    """Two days: 2512.00002 on both (shown once, on Monday); Thursday adds one more."""
    write_day(
        out,
        make_day(
            make_entry("2512.00001", "First Monday Paper"),
            make_entry("2512.00002", "Second Monday Paper", digest=make_digest("음성 인식")),
            date=MONDAY,
        ),
    )
    write_day(
        out,
        make_day(
            make_entry("2512.00002", "Second Monday Paper again"),
            make_entry("2512.00003", "A Thursday Paper", digest=make_digest("로봇 제어")),
            date=MONDAY + dt.timedelta(days=3),
        ),
    )


def weekly_post(out: Path) -> Path:
    return out / "_posts" / "2026-12-06-weekly-papers-2026-W49.md"


def test_the_weekly_post_matches_its_golden_file_and_is_byte_stable(tmp_path: Path) -> None:
    small_week(tmp_path)
    code, out, err = digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))
    assert code == 0, err
    first = weekly_post(tmp_path).read_bytes()
    assert first == GOLDEN.read_bytes()
    code, out, _ = digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))
    assert code == 0 and "up to date" in out
    assert weekly_post(tmp_path).read_bytes() == first


def test_a_paper_on_two_days_appears_once_on_its_first_day(tmp_path: Path) -> None:
    small_week(tmp_path)
    digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))
    text = weekly_post(tmp_path).read_text(encoding="utf-8")
    headings = re.findall(r"^# \d+\. \[(.*?)\]", text, flags=re.M)
    assert headings == ["First Monday Paper", "Second Monday Paper", "A Thursday Paper"]
    assert text.count("2026-11-30-daily-papers.md") == 2
    assert text.count("2026-12-03-daily-papers.md") == 1


def ranked(arxiv_id: str, upvotes: int | None) -> PaperEntry:
    return make_entry(arxiv_id, f"Paper {arxiv_id}").model_copy(update={"upvotes": upvotes})


def test_papers_rank_by_upvotes_then_day_then_list_order() -> None:
    monday = make_day(make_entry(), date=MONDAY).model_copy(
        update={"papers": [ranked("2512.00001", 5), ranked("2512.00002", 9)]}
    )
    tuesday = make_day(make_entry(), date=MONDAY + dt.timedelta(days=1)).model_copy(
        update={
            "papers": [ranked("2512.00003", 9), ranked("2512.00004", None), ranked("2512.00005", 5)]
        }
    )
    papers = weekly.week_papers([tuesday, monday])
    order = [paper.entry.arxiv_id for paper in papers]
    assert order == ["2512.00002", "2512.00003", "2512.00001", "2512.00005", "2512.00004"]


def test_a_ranked_days_scores_come_before_upvotes() -> None:
    # A day chosen by interests ranks its papers by their scores; they lead the week.
    monday = make_day(make_entry(), date=MONDAY).model_copy(
        update={
            "papers": [ranked("2512.00001", 50), ranked("2512.00002", None)],
            "candidates": [
                CandidateScore(arxiv_id="2512.00001", score=4),
                CandidateScore(arxiv_id="2512.00002", score=9),
            ],
        }
    )
    tuesday = make_day(make_entry(), date=MONDAY + dt.timedelta(days=1)).model_copy(
        update={"papers": [ranked("2512.00003", 80)]}
    )
    order = [paper.entry.arxiv_id for paper in weekly.week_papers([monday, tuesday])]
    assert order == ["2512.00002", "2512.00001", "2512.00003"]


def test_without_upvotes_the_order_is_day_then_list_order(tmp_path: Path) -> None:
    days = [
        make_day(make_entry("2512.00009"), date=MONDAY + dt.timedelta(days=2)),
        make_day(make_entry("2512.00001"), make_entry("2512.00005"), date=MONDAY),
    ]
    order = [paper.entry.arxiv_id for paper in weekly.week_papers(days)]
    assert order == ["2512.00001", "2512.00005", "2512.00009"]


def test_render_check_covers_weekly_posts(tmp_path: Path) -> None:
    small_week(tmp_path)
    assert digest("render", "--output-dir", str(tmp_path))[0] == 0
    assert digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))[0] == 0
    code, out, err = digest("render", "--check", "--output-dir", str(tmp_path))
    assert code == 0, out + err
    assert "All 3 posts are up to date." in err

    store = OutputStore(tmp_path)
    day = store.load_day(MONDAY)
    edited = day.model_copy(
        update={"papers": [day.papers[0].model_copy(update={"title": "A New Title"})]}
    )
    write_day(tmp_path, edited)
    store.post_path(MONDAY).write_text(render_day(edited), encoding="utf-8")  # day post fresh
    code, out, err = digest("render", "--check", "--output-dir", str(tmp_path))
    assert code == 1
    assert f"out of date: {weekly_post(tmp_path)}" in out
    assert "1 of 3 posts need 'digest render'." in err
    # 'digest render' makes it again, as the weekly command would.
    assert digest("render", "--output-dir", str(tmp_path))[0] == 0
    assert "A New Title" in weekly_post(tmp_path).read_text(encoding="utf-8")
    assert digest("render", "--check", "--output-dir", str(tmp_path))[0] == 0


@pytest.mark.parametrize("bad", ["2026-W54", "2026-13", "2026-W00", "W49", "garbage", "2026-W5"])
def test_a_bad_week_is_exit_2_naming_the_flag(tmp_path: Path, bad: str) -> None:
    code, _out, err = digest("weekly", "--week", bad, "--output-dir", str(tmp_path))
    assert code == 2
    assert f"--week {bad!r}" in err and "e.g. 2026-W49" in err
    assert len(err.strip().splitlines()) == 1


def test_a_53_week_year_has_its_week_53() -> None:
    assert weekly.parse_week("2026-W53").sunday == dt.date(2027, 1, 3)


def test_the_default_is_the_last_complete_week() -> None:
    assert weekly.last_complete_week(dt.date(2026, 12, 7)).label == WEEK  # a Monday
    assert weekly.last_complete_week(dt.date(2026, 12, 13)).label == WEEK  # a Sunday
    assert weekly.last_complete_week(dt.date(2026, 1, 2)).label == "2025-W52"


def test_an_empty_week_writes_nothing(tmp_path: Path) -> None:
    code, _out, err = digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))
    assert code == 0
    assert "No papers in the day files of 2026-W49" in err and "nothing to write" in err
    assert not (tmp_path / "_posts").exists()


def test_a_hostile_day_file_is_named_and_the_rest_written(tmp_path: Path) -> None:
    small_week(tmp_path)
    broken = OutputStore(tmp_path).data_path(MONDAY + dt.timedelta(days=1))
    broken.write_text('{"papers": [', encoding="utf-8")
    fifo = OutputStore(tmp_path).data_path(MONDAY + dt.timedelta(days=2))
    os.mkfifo(fifo)
    code, _out, err = digest("weekly", "--week", WEEK, "--output-dir", str(tmp_path))
    assert code == 0, err
    assert str(broken) in err and str(fifo) in err
    assert weekly_post(tmp_path).read_bytes() == GOLDEN.read_bytes()


def hostile_week() -> list[Day]:
    days = []
    for offset in range(2):
        entries = []
        for number, text in enumerate(HOSTILE):
            base = make_entry(f"2512.{offset}{number:04d}")
            intro = base.digest.introduction.model_construct(
                goal=text,
                motivation=base.digest.introduction.motivation,
                contribution=base.digest.introduction.contribution,
            )
            unchecked = base.digest.model_copy(update={"introduction": intro})
            entries.append(base.model_copy(update={"title": text, "digest": unchecked}))
        day = make_day(make_entry(), date=MONDAY + dt.timedelta(days=offset))
        days.append(day.model_copy(update={"papers": entries}))
    return days


def test_titles_and_goals_are_escaped_as_the_day_posts_escape_them() -> None:
    text = weekly.render_weekly(weekly.parse_week(WEEK), hostile_week())
    assert text is not None
    for text_in in HOSTILE:
        assert f"[{guard_liquid(escape_title(text_in))}](" in text
        assert f"- Goal: {guard_liquid(escape_line(text_in))}  \n" in text


@pytest.mark.slow
def test_a_real_jekyll_build_links_each_paper_to_its_day_post(tmp_path: Path) -> None:
    if jekyll.jekyll_available() is None:
        pytest.skip("jekyll is not installed")
    week = weekly.parse_week(WEEK)
    days = hostile_week()
    posts = {f"{day.date}-daily-papers.md": render_day(day) for day in days}
    name = weekly.weekly_post_path(OutputStore(tmp_path), week).name
    text = weekly.render_weekly(week, days)
    assert text is not None
    posts[name] = text
    built = jekyll.build_site(posts, workdir=tmp_path)
    html = built[name]
    hrefs = jekyll.links(html)
    for day in days:
        url = f"/{day.date:%Y/%m/%d}/daily-papers.html"
        assert url in hrefs
        assert (tmp_path / "_site" / url.lstrip("/")).is_file()
    lines = jekyll.text_lines(html)
    for text_in in HOSTILE:
        assert any(line == f"Goal: {text_in}" for line in lines), text_in
    assert not {"script", "img", "abbr", "dl", "math", "#comment"} & jekyll.elements(html)
