"""Parse an existing Daily Papers post back into a ``Day`` (what ``digest import`` does).

Both layouts of the reference are understood: labelled Introduction lines with plain section
lines (its papers 1-3, 5, 6), and bullets everywhere with an unlabelled Introduction (paper 4).
Rendering the parsed day gives the original bytes back for any post ``digest`` itself writes.
Every problem is reported with the file, the line number and what was expected there.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml
from pydantic import ValidationError

from digest.blog.render import HARD_BREAK, unescape_text, unguard_liquid
from digest.errors import PostFormatError
from digest.files import read_bounded
from digest.models import ARXIV_ID, Day, PaperEntry
from digest.validation import field_path

_PAPER_HEADING = re.compile(r"# (\d+)\. (.*)")
_TITLE_LINK = re.compile(r"\[(?P<title>(?:\\.|[^\\\]])*)\]\((?P<url>[^()\s]+)\)")
_ABS_URL = re.compile(rf"https?://(?:www\.)?arxiv\.org/abs/(?P<id>{ARXIV_ID.pattern})(?:v\d+)?")
_ALPHAXIV = re.compile(r"> \[Alphaxiv\]\((?P<url>[^()\s]+)\)")
_LABELS = ("Goal", "Motivation", "Contribution")
_SECTIONS = ("Method", "Results", "Limitations", "Conclusion")
_FRONT_MATTER_KEYS = {"layout", "title", "date", "tags", "categories"}
_POST_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})-.*\.md")


@dataclass
class _Lines:
    """The post's lines with 1-based numbers, read front to back."""

    path: Path
    lines: list[str]
    index: int = 0

    @property
    def number(self) -> int:
        return self.index + 1

    def peek(self) -> str | None:
        return self.lines[self.index] if self.index < len(self.lines) else None

    def next(self) -> str:
        line = self.lines[self.index]
        self.index += 1
        return line

    def skip_blank(self) -> None:
        while self.peek() is not None and not self.peek().strip():  # type: ignore[union-attr]
            self.index += 1

    def fail(self, expected: str) -> PostFormatError:
        found = self.peek()
        return PostFormatError(
            self.path, self.number, expected, found if found is not None else "end of file"
        )


@dataclass
class _PaperDraft:
    heading_line: int
    title: str
    abs_url: str | None
    arxiv_id: str | None
    alphaxiv: str | None = None
    intro: list[tuple[int, str]] = field(default_factory=list)
    intro_labels: bool = True
    bullets: bool | None = None
    sections: dict[str, list[tuple[int, str]]] = field(default_factory=dict)


def parse_post(path: Path) -> Day:
    """Read and parse one post file."""
    try:
        # Within bounds (a regular file, of a day file's size at most); the user named it, so a
        # link is followed wherever it goes.
        raw = read_bounded(path)
    except FileNotFoundError as error:
        raise PostFormatError(path, 1, "a readable file", error.strerror or str(error)) from None
    try:
        text = raw.decode("utf-8-sig")  # a byte-order mark from an editor goes
    except UnicodeDecodeError as error:
        raise PostFormatError(
            path, 1, "a UTF-8 text file", f"undecodable byte at {error.start}"
        ) from None
    # Line ends as a file read in text mode has them (universal newlines).
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return parse_post_text(text, path)


def parse_post_text(text: str, path: Path) -> Day:
    lines = _Lines(path, text.replace("\r\n", "\n").split("\n"))
    front = _parse_front_matter(lines)
    papers: list[_PaperDraft] = []
    lines.skip_blank()
    while lines.peek() is not None:
        papers.append(_parse_paper(lines, expected_number=len(papers) + 1))
        lines.skip_blank()
    if not papers:
        raise PostFormatError(
            path, lines.number, "at least one paper ('# 1. [Title](url)')", "end of file"
        )

    # _parse_front_matter checked it: (date, "HH:MM:SS").
    date, time = cast("tuple[dt.date, str]", front["date"])
    day_data = {
        "date": date,
        "time": time,
        "title": front["title"],
        "layout": front["layout"],
        "tags": front["tags"],
        "categories": front["categories"],
        "papers": [],
    }
    try:
        day = Day.model_validate(day_data)
    except ValidationError as error:
        raise PostFormatError(path, 2, f"valid front matter ({error.errors()[0]['msg']})") from None
    day.papers = [_build_entry(draft, path) for draft in papers]
    return day


def _parse_front_matter(lines: _Lines) -> dict[str, object]:
    if lines.peek() != "---":
        raise lines.fail("front matter starting with '---'")
    lines.next()
    start = lines.number
    block: list[str] = []
    while lines.peek() != "---":
        if lines.peek() is None:
            raise PostFormatError(
                lines.path, start, "front matter closed by a '---' line", "end of file"
            )
        block.append(lines.next())
    lines.next()
    try:
        data = yaml.safe_load("\n".join(block))
    except yaml.YAMLError as error:
        # The context mark is where the broken construct starts (the line a user must fix).
        mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
        line = start + (mark.line if mark else 0)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise PostFormatError(lines.path, line, f"valid YAML front matter ({problem})") from None
    if not isinstance(data, dict):
        raise PostFormatError(lines.path, start, "front matter of 'key: value' lines")

    def line_of(key: str) -> int:
        for offset, line in enumerate(block):
            if line.startswith(f"{key}:"):
                return start + offset
        return start

    missing = sorted(_FRONT_MATTER_KEYS - data.keys())
    if missing:
        raise PostFormatError(lines.path, start, f"front matter keys {', '.join(missing)}")
    unknown = sorted(set(map(str, data.keys())) - _FRONT_MATTER_KEYS)
    if unknown:
        raise PostFormatError(
            lines.path,
            line_of(unknown[0]),
            "only the keys layout, title, date, tags, categories",
            f"{unknown[0]}:",
        )
    stamp = data["date"]
    if isinstance(stamp, dt.datetime) and stamp.tzinfo is None:
        data["date"] = (stamp.date(), stamp.strftime("%H:%M:%S"))
    else:
        raise PostFormatError(
            lines.path, line_of("date"), "'date: YYYY-MM-DD HH:MM:SS'", f"date: {stamp}"
        )
    for key in ("tags", "categories"):
        value = data[key]
        if value is None:
            data[key] = []
        elif not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise PostFormatError(lines.path, line_of(key), f"'{key}: [a, b]', a list of strings")
    for key in ("layout", "title"):
        if not isinstance(data[key], str):
            raise PostFormatError(lines.path, line_of(key), f"'{key}:' to be a string")
    match = _POST_NAME.fullmatch(lines.path.name)
    if match and match.group(1) != data["date"][0].isoformat():
        raise PostFormatError(
            lines.path,
            line_of("date"),
            f"the date {match.group(1)} of the file name",
            f"date: {data['date'][0].isoformat()}",
        )
    return data


def _parse_paper(lines: _Lines, expected_number: int) -> _PaperDraft:
    heading_line = lines.number
    heading = _PAPER_HEADING.fullmatch(lines.peek() or "")
    if not heading:
        raise lines.fail(
            f"the heading of paper {expected_number}, '# {expected_number}. [Title](https://arxiv.org/abs/ID)'"
        )
    if int(heading.group(1)) != expected_number:
        raise lines.fail(f"paper number {expected_number}")
    lines.next()
    link = _TITLE_LINK.fullmatch(heading.group(2))
    if link:
        title_text, abs_url = link.group("title"), link.group("url")
        abs_match = _ABS_URL.fullmatch(abs_url)
        if not abs_match:
            raise PostFormatError(
                lines.path, heading_line, "a link to https://arxiv.org/abs/ID", abs_url
            )
        arxiv_id: str | None = abs_match.group("id")
    else:
        if "](" in heading.group(2):
            raise PostFormatError(
                lines.path,
                heading_line,
                "a title link '[Title](https://arxiv.org/abs/ID)'",
                heading.group(2),
            )
        title_text, abs_url, arxiv_id = heading.group(2), None, None
    draft = _PaperDraft(heading_line, unescape_text(unguard_liquid(title_text)), abs_url, arxiv_id)

    lines.skip_blank()
    alphaxiv = _ALPHAXIV.fullmatch(lines.peek() or "")
    if alphaxiv:
        draft.alphaxiv = alphaxiv.group("url")
        lines.next()
        lines.skip_blank()

    if (lines.peek() or "").rstrip() != "## Introduction":
        raise lines.fail("'## Introduction'")
    lines.next()
    for position, label in enumerate(_LABELS):
        line = lines.peek() or ""
        labelled = f"- {label}: "
        if position == 0:
            draft.intro_labels = line.startswith(labelled)
        if draft.intro_labels and line.startswith(labelled):
            text = line[len(labelled) :]
        elif not draft.intro_labels and line.startswith("- ") and not line.startswith(labelled):
            text = line[2:]
        else:
            form = f"'{labelled}…'" if draft.intro_labels else "an unlabelled '- …' line"
            raise lines.fail(f"the Introduction's {label} line, {form}")
        draft.intro.append((lines.number, _content(text)))
        lines.next()

    for name in _SECTIONS:
        lines.skip_blank()
        if (lines.peek() or "").rstrip() != f"## {name}":
            raise lines.fail(f"'## {name}'")
        lines.next()
        section: list[tuple[int, str]] = []
        while (row := lines.peek()) is not None and row.strip() and not row.startswith("#"):
            is_bullet = row.startswith("- ")
            if draft.bullets is None:
                draft.bullets = is_bullet
            elif draft.bullets != is_bullet:
                style = "a '- ' bullet" if draft.bullets else "a plain line (no '- ')"
                raise lines.fail(f"{style}, like the paper's other section lines")
            section.append((lines.number, _content(row[2:] if is_bullet else row)))
            lines.next()
        if not section:
            raise lines.fail(f"at least one line under '## {name}'")
        draft.sections[name.lower()] = section
    return draft


def _content(text: str) -> str:
    return unescape_text(unguard_liquid(text.removesuffix(HARD_BREAK).strip()))


def _build_entry(draft: _PaperDraft, path: Path) -> PaperEntry:
    goal, motivation, contribution = (text for _, text in draft.intro)
    line_numbers: dict[tuple[str, ...], int] = {
        ("digest", "introduction", label.lower()): number
        for label, (number, _) in zip(_LABELS, draft.intro, strict=True)
    }
    for name, section in draft.sections.items():
        for index, (number, _) in enumerate(section):
            line_numbers[("digest", name, str(index))] = number
        line_numbers[("digest", name)] = section[0][0]
    data = {
        "arxiv_id": draft.arxiv_id,
        "title": draft.title,
        "links": {"abs": draft.abs_url, "alphaxiv": draft.alphaxiv},
        "digest": {
            "introduction": {"goal": goal, "motivation": motivation, "contribution": contribution},
            **{name: [text for _, text in section] for name, section in draft.sections.items()},
        },
        "provenance": {"source": "import", "imported_from": path.name},
        "style": {"intro_labels": draft.intro_labels, "bullets": bool(draft.bullets)},
    }
    try:
        return PaperEntry.model_validate(data)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        location = tuple(str(part) for part in first["loc"])
        number = line_numbers.get(location, line_numbers.get(location[:2], draft.heading_line))
        message = first["msg"].removeprefix("Value error, ")
        raise PostFormatError(
            path, number, f"a valid digest line ({field_path(first['loc'])} {message})"
        ) from None
