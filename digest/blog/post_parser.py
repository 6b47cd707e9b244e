"""Parse an existing Daily Papers post back into a ``Day`` (what ``digest import`` does).

Both layouts of the reference are understood: labelled Introduction lines with plain section
lines (its papers 1-3, 5, 6), and bullets everywhere with an unlabelled Introduction (paper 4).
Rendering the parsed day gives the original bytes back for any post ``digest`` itself writes.
Every problem is reported with the file, the line number and what was expected there.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import yaml
from pydantic import ValidationError

from digest.blog.render import (
    EVIDENCE_START,
    HARD_BREAK,
    LINK_LABELS,
    LINK_SEPARATOR,
    unescape_text,
    unguard_liquid,
)
from digest.errors import PostFormatError
from digest.files import read_bounded
from digest.models import ARXIV_ID, DEFAULT_POST_LINKS, Day, PaperEntry, PostLink
from digest.validation import field_path

_PAPER_HEADING = re.compile(r"# (\d+)\. (.*)")
_TITLE_LINK = re.compile(r"\[(?P<title>(?:\\.|[^\\\]])*)\]\((?P<url>[^()\s]+)\)")
_ABS_URL = re.compile(rf"https?://(?:www\.)?arxiv\.org/abs/(?P<id>{ARXIV_ID.pattern})(?:v\d+)?")
# The '>' line: "> [Alphaxiv](url)", or several such links joined by " · ".
_LINK_NAMES: dict[str, PostLink] = {label: name for name, label in LINK_LABELS.items()}
_LINK = rf"\[(?:{'|'.join(_LINK_NAMES)})\]\([^()\s]+\)"
_LINK_LINE = re.compile(rf"> {_LINK}(?:{LINK_SEPARATOR}{_LINK})*")
_LINK_PARTS = re.compile(rf"\[(?P<label>{'|'.join(_LINK_NAMES)})\]\((?P<url>[^()\s]+)\)")
_LABELS = ("Goal", "Motivation", "Contribution")
_SECTIONS = ("Method", "Results", "Limitations", "Conclusion")
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
        while (line := self.peek()) is not None and not line.strip():
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
    links: dict[PostLink, str] = field(default_factory=dict)  # in the order of the post
    links_line: int | None = None
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
    day.post_links = _post_links(papers)
    return day


def _post_links(papers: list[_PaperDraft]) -> list[PostLink]:
    """The links the post shows, in its order: each paper's, in the order first met. A post
    that shows none is read as the default, which shows none a paper does not have."""
    shown: list[PostLink] = []
    for draft in papers:
        shown += [name for name in draft.links if name not in shown]
    return shown or list(DEFAULT_POST_LINKS)


def _parse_front_matter(lines: _Lines) -> dict[str, object]:
    """The front matter's five values, read by their field parsers: the date as (date, time)."""
    front = _FrontMatter.read(lines)
    data = front.load()
    front.check_keys(data)
    values = {key: front.parse_field(key, data[key]) for key in _FRONT_MATTER_FIELDS}
    date, _ = cast("tuple[dt.date, str]", values["date"])
    front.check_file_date(date)
    return values


@dataclass
class _FrontMatter:
    """The lines between the two '---' lines, and where they start in the post."""

    path: Path
    start: int  # the line number of the block's first line
    block: list[str]

    @classmethod
    def read(cls, lines: _Lines) -> _FrontMatter:
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
        return cls(lines.path, start, block)

    def load(self) -> dict[object, object]:
        try:
            data = yaml.safe_load("\n".join(self.block))
        except yaml.YAMLError as error:
            # The context mark is where the broken construct starts (the line a user must fix).
            mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
            line = self.start + (mark.line if mark else 0)
            problem = getattr(error, "problem", None) or str(error).splitlines()[0]
            raise PostFormatError(self.path, line, f"valid YAML front matter ({problem})") from None
        if not isinstance(data, dict):
            raise PostFormatError(self.path, self.start, "front matter of 'key: value' lines")
        return data

    def check_keys(self, data: dict[object, object]) -> None:
        missing = sorted(_FRONT_MATTER_KEYS - data.keys())
        if missing:
            raise PostFormatError(self.path, self.start, f"front matter keys {', '.join(missing)}")
        unknown = sorted(set(map(str, data.keys())) - _FRONT_MATTER_KEYS)
        if unknown:
            raise PostFormatError(
                self.path,
                self.line_of(unknown[0]),
                "only the keys layout, title, date, tags, categories",
                f"{unknown[0]}:",
            )

    def parse_field(self, key: str, value: object) -> object:
        try:
            return _FRONT_MATTER_FIELDS[key](key, value)
        except _BadValue as bad:
            raise PostFormatError(self.path, self.line_of(key), bad.expected, bad.found) from None

    def check_file_date(self, date: dt.date) -> None:
        """A post whose file name gives a day (YYYY-MM-DD-…md) has that day on its date: line."""
        match = _POST_NAME.fullmatch(self.path.name)
        if match and match.group(1) != date.isoformat():
            raise PostFormatError(
                self.path,
                self.line_of("date"),
                f"the date {match.group(1)} of the file name",
                f"date: {date.isoformat()}",
            )

    def line_of(self, key: str) -> int:
        for offset, line in enumerate(self.block):
            if line.startswith(f"{key}:"):
                return self.start + offset
        return self.start


class _BadValue(Exception):
    """A front matter value of the wrong form: what was expected, and the text to show as found."""

    def __init__(self, expected: str, found: str | None = None) -> None:
        super().__init__(expected)
        self.expected = expected
        self.found = found


def _timestamp(key: str, value: object) -> tuple[dt.date, str]:
    # (date, "HH:MM:SS"), as a Day keeps them. YAML reads "2025-12-16 08:15:00" as a naive
    # datetime; a Day has no zone (render writes the date without one), so an offset is refused.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        return value.date(), value.strftime("%H:%M:%S")
    raise _BadValue("'date: YYYY-MM-DD HH:MM:SS'", f"{key}: {value}")


def _string_list(key: str, value: object) -> list[str]:
    if value is None:  # "tags:" with nothing after it
        return []
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise _BadValue(f"'{key}: [a, b]', a list of strings")


def _string(key: str, value: object) -> str:
    if isinstance(value, str):
        return value
    raise _BadValue(f"'{key}:' to be a string")


# The front matter's keys and how each value is read; a post with two bad values is reported at
# the first of them in this order.
_FRONT_MATTER_FIELDS: dict[str, Callable[[str, object], object]] = {
    "date": _timestamp,
    "tags": _string_list,
    "categories": _string_list,
    "layout": _string,
    "title": _string,
}
_FRONT_MATTER_KEYS = frozenset(_FRONT_MATTER_FIELDS)


def _parse_paper(lines: _Lines, expected_number: int) -> _PaperDraft:
    """One paper, its parts in the order render writes them."""
    draft = _parse_paper_heading(lines, expected_number)
    _parse_links(lines, draft)
    _parse_introduction(lines, draft)
    for name in _SECTIONS:
        draft.sections[name.lower()] = _parse_section(lines, name, draft)
    _skip_evidence(lines)
    return draft


def _skip_evidence(lines: _Lines) -> None:
    """Step over a paper's quotes (the post_evidence setting's ``<details>`` block): quotes
    read back from a post were never checked against a paper, so an imported entry has no
    evidence."""
    lines.skip_blank()
    if lines.peek() != EVIDENCE_START:
        return
    while (row := lines.peek()) is not None and row != "</details>":
        lines.next()
    if row is None:
        raise lines.fail("'</details>' closing the paper's quotes")
    lines.next()


def _parse_paper_heading(lines: _Lines, expected_number: int) -> _PaperDraft:
    heading_line = lines.number
    heading = _PAPER_HEADING.fullmatch(lines.peek() or "")
    if not heading:
        raise lines.fail(
            f"the heading of paper {expected_number}, '# {expected_number}. [Title](https://arxiv.org/abs/ID)'"
        )
    if int(heading.group(1)) != expected_number:
        raise lines.fail(f"paper number {expected_number}")
    lines.next()
    title_text, abs_url, arxiv_id = _title_link(heading.group(2), lines.path, heading_line)
    return _PaperDraft(heading_line, unescape_text(unguard_liquid(title_text)), abs_url, arxiv_id)


def _title_link(text: str, path: Path, line: int) -> tuple[str, str | None, str | None]:
    """A heading's title, its arXiv abstract link and the paper's ID; a bare title has neither."""
    link = _TITLE_LINK.fullmatch(text)
    if not link:
        if "](" in text:  # a link was meant, but it does not parse
            raise PostFormatError(
                path, line, "a title link '[Title](https://arxiv.org/abs/ID)'", text
            )
        return text, None, None
    abs_url = link.group("url")
    abs_match = _ABS_URL.fullmatch(abs_url)
    if not abs_match:
        raise PostFormatError(path, line, "a link to https://arxiv.org/abs/ID", abs_url)
    return link.group("title"), abs_url, abs_match.group("id")


def _parse_links(lines: _Lines, draft: _PaperDraft) -> None:
    """The optional '> [Alphaxiv](url) · [Code](url) …' line, and the blank lines around it."""
    lines.skip_blank()
    line = lines.peek() or ""
    if not _LINK_LINE.fullmatch(line):
        if line.startswith("> ["):
            raise lines.fail(
                "a links line '> [Alphaxiv](url) · [Code](url)' of "
                + ", ".join(LINK_LABELS.values())
            )
        return
    for part in _LINK_PARTS.finditer(line):
        name = _LINK_NAMES[part.group("label")]
        if name in draft.links:
            raise lines.fail(f"each link once in the links line ({part.group('label')} twice)")
        draft.links[name] = part.group("url")
    draft.links_line = lines.number
    lines.next()
    lines.skip_blank()


def _parse_introduction(lines: _Lines, draft: _PaperDraft) -> None:
    _take_heading(lines, "Introduction")
    # The first line sets the layout for all three: "- Goal: …", or an unlabelled "- …".
    draft.intro_labels = (lines.peek() or "").startswith(f"- {_LABELS[0]}: ")
    for label in _LABELS:
        text = _intro_text(lines.peek() or "", label, labelled=draft.intro_labels)
        if text is None:
            form = f"'- {label}: …'" if draft.intro_labels else "an unlabelled '- …' line"
            raise lines.fail(f"the Introduction's {label} line, {form}")
        draft.intro.append((lines.number, _content(text)))
        lines.next()


def _intro_text(line: str, label: str, *, labelled: bool) -> str | None:
    """The text of an Introduction line of the given layout; None if the line is not of it."""
    prefix = f"- {label}: "
    if labelled:
        return line[len(prefix) :] if line.startswith(prefix) else None
    # A labelled line in an unlabelled Introduction mixes the two layouts.
    return line[2:] if line.startswith("- ") and not line.startswith(prefix) else None


def _parse_section(lines: _Lines, name: str, draft: _PaperDraft) -> list[tuple[int, str]]:
    """The numbered lines under '## name', up to a blank line or the next heading."""
    lines.skip_blank()
    _take_heading(lines, name)
    section: list[tuple[int, str]] = []
    while (row := lines.peek()) is not None and row.strip() and not row.startswith("#"):
        section.append((lines.number, _content(_section_text(lines, row, draft))))
        lines.next()
    if not section:
        raise lines.fail(f"at least one line under '## {name}'")
    return section


def _section_text(lines: _Lines, row: str, draft: _PaperDraft) -> str:
    """A section line's text; the paper's first section line sets bullets or plain for all."""
    is_bullet = row.startswith("- ")
    if draft.bullets is None:
        draft.bullets = is_bullet
    elif draft.bullets != is_bullet:
        style = "a '- ' bullet" if draft.bullets else "a plain line (no '- ')"
        raise lines.fail(f"{style}, like the paper's other section lines")
    return row[2:] if is_bullet else row


def _take_heading(lines: _Lines, name: str) -> None:
    """Step over '## name' (trailing blanks allowed: the reference has "## Method  ")."""
    if (lines.peek() or "").rstrip() != f"## {name}":
        raise lines.fail(f"'## {name}'")
    lines.next()


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
    if draft.links_line is not None:
        line_numbers[("links",)] = draft.links_line
    links: dict[str, str | None] = {"abs": draft.abs_url, **dict(draft.links.items())}
    data = {
        "arxiv_id": draft.arxiv_id,
        "title": draft.title,
        "links": links,
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
        number = line_numbers.get(
            location,
            line_numbers.get(location[:2], line_numbers.get(location[:1], draft.heading_line)),
        )
        message = first["msg"].removeprefix("Value error, ")
        raise PostFormatError(
            path, number, f"a valid digest line ({field_path(first['loc'])} {message})"
        ) from None
