"""A weekly issue: the papers of an ISO week's day files in one post, with no network and no
LLM.

The week's papers are every entry of its day files (a paper listed on two days once, on its
first day), ranked by ``rank_key`` (scores, then upvotes), ties in day then list order. Each
paper shows its linked title, its goal line, its links and a link to its day's post. The post
is made of the day files alone, so ``digest render --check`` can make it again and compare.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from digest.blog.render import escape_line, escape_title, guard_liquid, link_line, yaml_string
from digest.blog.store import OutputStore
from digest.errors import DigestError, UsageError
from digest.models import Day, PaperEntry, PostLink

WEEKLY_TITLE = "Weekly Papers — {week}"
_WEEK = re.compile(r"([0-9]{4})-W([0-9]{2})")
_POST_NAME = re.compile(r"\d{4}-\d{2}-\d{2}-weekly-papers-([0-9]{4}-W[0-9]{2})\.md")
# The links a weekly issue shows under each title, when the paper has them: the day post has
# the rest.
WEEKLY_LINKS: tuple[PostLink, ...] = ("alphaxiv", "code", "project")


@dataclass(frozen=True, order=True)
class Week:
    """An ISO week, Monday to Sunday."""

    year: int
    number: int

    @classmethod
    def of(cls, date: dt.date) -> Week:
        year, number, _ = date.isocalendar()
        return cls(year, number)

    @property
    def label(self) -> str:
        return f"{self.year}-W{self.number:02d}"

    @property
    def monday(self) -> dt.date:
        return dt.date.fromisocalendar(self.year, self.number, 1)

    @property
    def sunday(self) -> dt.date:
        return self.monday + dt.timedelta(days=6)

    def days(self) -> list[dt.date]:
        return [self.monday + dt.timedelta(days=offset) for offset in range(7)]


def parse_week(value: str, option: str = "--week") -> Week:
    """``YYYY-Www``, a week that the year has (52 or 53 of them)."""
    match = _WEEK.fullmatch(value)
    if match:
        try:
            return Week.of(dt.date.fromisocalendar(int(match[1]), int(match[2]), 1))
        except ValueError:
            pass
    raise UsageError(
        f"{option} {value!r} is not an ISO week of its year; use YYYY-Www, e.g. 2026-W49"
    )


def last_complete_week(today: dt.date) -> Week:
    """The last ISO week that ended before ``today``."""
    return Week.of(today - dt.timedelta(days=today.isoweekday()))


def weekly_post_path(store: OutputStore, week: Week) -> Path:
    """``SUNDAY-weekly-papers-YYYY-Www.md`` beside the day posts."""
    return store.posts_dir / f"{week.sunday.isoformat()}-weekly-papers-{week.label}.md"


def weekly_posts(store: OutputStore) -> list[tuple[Week, Path]]:
    """Every weekly post in the posts folder whose name is one ``weekly_post_path`` gives."""
    if not store.posts_dir.is_dir():
        return []
    found = []
    for path in store.posts_dir.iterdir():
        match = _POST_NAME.fullmatch(path.name)
        if not match:
            continue
        try:
            week = parse_week(match[1])
        except UsageError:
            continue
        if path == weekly_post_path(store, week):
            found.append((week, path))
    return sorted(found)


def read_week(store: OutputStore, week: Week, warn: Callable[[str], None]) -> list[Day]:
    """The week's day files, read within bounds; a missing day is skipped, and one that
    cannot be read is named through ``warn`` and left out."""
    days = []
    for date in week.days():
        if not os.path.lexists(store.data_path(date)):
            continue
        try:
            days.append(store.load_day(date, warn))
        except DigestError as error:
            warn(f"{error}; left out of the week {week.label}")
    return days


def rank_key(entry: PaperEntry, scores: dict[str, int]) -> tuple[int, int]:
    """Where a paper ranks in its week, lowest first: by the score its day's ranking gave it
    (a day chosen by interests), else by its Hugging Face upvotes; a paper with neither comes
    after, in day then list order."""
    arxiv_id = entry.arxiv_id or ""
    if arxiv_id in scores:
        return (0, -scores[arxiv_id])
    if entry.upvotes is not None:
        return (1, -entry.upvotes)
    return (2, 0)


@dataclass(frozen=True)
class WeeklyPaper:
    entry: PaperEntry
    day: Day


def week_papers(days: Iterable[Day]) -> list[WeeklyPaper]:
    """The week's papers, each once (on its first day), ranked (see ``rank_key``); ties in day
    then list order."""
    seen: set[str] = set()
    listed: list[tuple[tuple[int, int, int, int], WeeklyPaper]] = []
    for day_number, day in enumerate(sorted(days, key=lambda day: day.date)):
        scores = {c.arxiv_id: c.score for c in day.candidates or () if c.score is not None}
        for position, entry in enumerate(day.papers):
            key = entry.arxiv_id or entry.title
            if key in seen:
                continue
            seen.add(key)
            order = (*rank_key(entry, scores), day_number, position)
            listed.append((order, WeeklyPaper(entry, day)))
    listed.sort(key=lambda item: item[0])
    return [paper for _, paper in listed]


def _day_post_url(date: dt.date) -> str:
    """Liquid giving the day post's URL, whatever the permalink, categories or base URL: the
    post is found by its file name, as Jekyll 3.10 (GitHub Pages) and 4.3 both allow."""
    name = f"/{date.isoformat()}-daily-papers.md"
    return (
        f'{{% assign day_post = site.posts | where_exp: "post", '
        f"\"post.relative_path contains '{name}'\" | first %}}"
        "{{ day_post.url | relative_url }}"
    )


def render_weekly_paper(paper: WeeklyPaper, number: int) -> list[str]:
    entry = paper.entry
    title = guard_liquid(escape_title(entry.title))
    heading = (
        f"# {number}. [{title}]({entry.links.abs})" if entry.links.abs else f"# {number}. {title}"
    )
    lines = [heading, ""]
    links = link_line(entry.links, WEEKLY_LINKS)
    if links:
        lines += [links, ""]
    goal = guard_liquid(escape_line(entry.digest.introduction.goal))
    day = paper.day.date.isoformat()
    lines += [f"- Goal: {goal}  ", f"- Day: [{day}]({_day_post_url(paper.day.date)})"]
    return lines


def render_weekly(week: Week, days: list[Day]) -> str | None:
    """The weekly post, or None when the week's day files have no paper. The same day files
    give the same string on every run and machine."""
    papers = week_papers(days)
    if not papers:
        return None
    # The front matter follows the week's last day post (its layout, time, tags, categories).
    last = max((paper.day for paper in papers), key=lambda day: day.date)
    tags = ", ".join(yaml_string(tag) for tag in last.tags)
    categories = ", ".join(yaml_string(category) for category in last.categories)
    lines = [
        "---",
        f"layout: {yaml_string(last.layout)}",
        f"title: {yaml_string(WEEKLY_TITLE.format(week=week.label), quote_always=True)}",
        f"date: {week.sunday.isoformat()} {last.time}",
        f"tags: [{tags}]",
        f"categories: [{categories}]",
        "---",
        "",
        "",
    ]
    for number, paper in enumerate(papers, start=1):
        if number > 1:
            lines.append("")
        lines += render_weekly_paper(paper, number)
    return "\n".join(lines) + "\n"
