"""Render a ``Day`` to the blog's post format, byte-exact to the reference post.

Three kinds of escaping, each applied only where the text needs it, so that a post that needs
none (like the reference) comes out byte-identical:

- kramdown (Jekyll's Markdown converter, GFM input): paper and LLM text is untrusted, and
  kramdown reads raw HTML, ``{::nomarkdown}`` and the other extensions, ``{: attributes}``,
  link, footnote and abbreviation definitions, definition lists, ``$$math$$``, autolinks,
  tables, task lists, strikethrough and typographic quotes and dashes. Every character that
  could start one of them is written with kramdown's backslash escape (an entity where no
  escape exists), so that each title and line renders as exactly its text, and no HTML ever
  reaches the page from it. Which escape works where was established with real Jekyll 4.3
  builds (kramdown 2.4), and ``tests/test_jekyll.py`` checks every case against a real build.
  A title also keeps its ``[…](url)`` link intact.
- Liquid: Jekyll runs Liquid over the whole post before Markdown, and GitHub Pages (Jekyll 3.10)
  ignores ``render_with_liquid: false``. A title or line containing ``{{`` or ``{%`` is wrapped
  in ``{% raw %}…{% endraw %}``; see ``guard_liquid`` for text that itself contains ``endraw``.
- YAML: front matter strings are double-quoted with YAML escapes whenever a plain scalar would
  be read differently.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from digest.models import DEFAULT_POST_LINKS, Day, Evidence, Links, PaperEntry, PostLink
from digest.validation import ENTITY_AFTER_AMPERSAND

RAW_OPEN = "{% raw %}"
RAW_CLOSE = "{% endraw %}"
HARD_BREAK = "  "

# Characters kramdown may read as syntax anywhere in a line: span markup, HTML, link and table
# syntax, typographic quotes. Each is written with a backslash.
_ALWAYS = r"[\\`*_\[\]<>|\"']"
# Runs: $$math$$, ~~strikethrough~~, typographic -- and ..., escaped character by character.
_RUNS = r"\$\$+|~~+|--+|\.\.\.+"
_SPAN = re.compile(
    rf"(?P<char>{_ALWAYS})"
    rf"|(?P<run>{_RUNS})"
    r"|(?P<brace>\{(?=[:#]))"  # {: attributes}, {::extensions}, {#id}
    rf"|(?P<amp>&(?={ENTITY_AFTER_AMPERSAND}))"  # "&amp;" in the text stays "&amp;"
)
# What a line may not start with: a heading, quote, definition, list or setext marker, an
# ordered-list number, or indentation (four spaces make a code block).
_LINE_START = re.compile(r"^(?:(?P<number>\d+)\.(?=[ \t|]|$)|(?P<mark>[#>:=+-])|(?P<blank>[ \t]))")
_BLANK_ENTITY = {" ": "&#32;", "\t": "&#9;"}
_CARET = "&#94;"  # "^" alone ends a block in kramdown, and "[^" never starts a link
# Undoing the above, for 'digest import'.
_ESCAPED = re.compile(r"\\([\\`*_\[\]<>|\"'$~.{#:=+\-()])")
_ESCAPED_ENTITY_START = re.compile(rf"&amp;(?={ENTITY_AFTER_AMPERSAND})")
_START_ENTITY = re.compile(r"^(?:&#32;|&#9;|&#94;)")
_ENTITY_CHARS = {"&#32;": " ", "&#9;": "\t", "&#94;": "^"}
_YAML_PLAIN = re.compile(r"[^\W\d_][\w-]*")
_YAML_NON_STRINGS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}
# The '>' line's links: each name of the post_links setting, as the post shows it.
LINK_LABELS: dict[PostLink, str] = {
    "alphaxiv": "Alphaxiv",
    "code": "Code",
    "project": "Project",
    "hf": "HF",
    "pdf": "PDF",
}
LINK_SEPARATOR = " · "


def _escape_span(match: re.Match[str]) -> str:
    if match.group("amp"):
        return "&amp;"
    if match.group("run"):
        return "".join("\\" + char for char in match.group("run"))
    return "\\" + match.group(0)


def escape_text(text: str) -> str:
    """Text that kramdown renders as exactly ``text`` inside a line or a link."""
    return _SPAN.sub(_escape_span, text)


def escape_line(text: str) -> str:
    """A digest line, as kramdown renders it literally wherever it stands in the post."""
    escaped = escape_text(text)
    if escaped.strip() == "^":
        return escaped.replace("^", _CARET, 1)
    start = _LINE_START.match(escaped)
    if start is None:
        return escaped
    if start.group("number"):
        return start.group("number") + "\\." + escaped[start.end() :]
    if start.group("mark"):
        return "\\" + escaped
    return _BLANK_ENTITY[escaped[0]] + escaped[1:]


def escape_title(text: str) -> str:
    """A paper title inside ``# N. [TITLE](url)`` (or a plain ``# N. TITLE`` heading)."""
    escaped = escape_text(text).replace("(", "\\(").replace(")", "\\)")
    if escaped.startswith("^"):
        escaped = _CARET + escaped[1:]
    # Closing hashes of an ATX heading ("… ##") would be dropped from a heading.
    return re.sub(r"(?<=[\t ])(#+)$", lambda hashes: "\\#" * len(hashes.group(1)), escaped)


def unescape_text(text: str) -> str:
    """Undo ``escape_line`` or ``escape_title``: what 'digest import' reads back."""
    text = _START_ENTITY.sub(lambda entity: _ENTITY_CHARS[entity.group(0)], text)
    text = _ESCAPED_ENTITY_START.sub("&", text)
    return _ESCAPED.sub(r"\1", text)


def needs_liquid_guard(text: str) -> bool:
    return "{{" in text or "{%" in text


def guard_liquid(text: str) -> str:
    """Make ``text`` render literally under Liquid 4 (Jekyll 3.10), or return it unchanged.

    A raw block ends at the first tag token whose name is ``endraw``, and Liquid's tokenizer
    can start such a token at any ``{%`` in the text (``{% endraw %}`` itself, but also
    ``{{ {% endraw %}``). So every ``{%`` of the text is emitted as ``{%`` followed at once by
    our own ``{% endraw %}{% raw %}``: Liquid's tokenizer reads ``{%{% endraw %}`` as one token
    whose text before the tag, ``{%``, is kept, and no ``{%`` of the text can pair with a later
    ``%}``.
    """
    if not needs_liquid_guard(text):
        return text
    body = text.replace("{%", "{%" + RAW_CLOSE + RAW_OPEN)
    return RAW_OPEN + body + RAW_CLOSE


def unguard_liquid(text: str) -> str:
    """Undo ``guard_liquid``; text without a guard is returned unchanged."""
    if not (text.startswith(RAW_OPEN) and text.endswith(RAW_CLOSE)):
        return text
    body = text[len(RAW_OPEN) : -len(RAW_CLOSE)]
    return body.replace("{%" + RAW_CLOSE + RAW_OPEN, "{%")


def yaml_string(text: str, *, quote_always: bool = False) -> str:
    """A YAML scalar that reads back as exactly ``text``."""
    if not quote_always and _YAML_PLAIN.fullmatch(text) and text.lower() not in _YAML_NON_STRINGS:
        return text
    escaped = []
    for char in text:
        if char == "\\":
            escaped.append("\\\\")
        elif char == '"':
            escaped.append('\\"')
        elif ord(char) < 0x20 or ord(char) == 0x7F or char in "\u0085\u2028\u2029":
            escaped.append(f"\\u{ord(char):04x}")
        else:
            escaped.append(char)
    return '"' + "".join(escaped) + '"'


def render_front_matter(day: Day) -> list[str]:
    tags = ", ".join(yaml_string(tag) for tag in day.tags)
    categories = ", ".join(yaml_string(category) for category in day.categories)
    return [
        "---",
        f"layout: {yaml_string(day.layout)}",
        f"title: {yaml_string(day.title, quote_always=True)}",
        f"date: {day.date.isoformat()} {day.time}",
        f"tags: [{tags}]",
        f"categories: [{categories}]",
        "---",
    ]


def link_line(links: Links, shown: Sequence[PostLink]) -> str | None:
    """The '>' line under a title: the links named in ``shown`` that the paper has, in that
    order; None when it has none of them. The URLs were checked when the entry was made
    (``digest.models.link_problem``), so they go in as they are."""
    parts = [f"[{LINK_LABELS[name]}]({url})" for name in shown if (url := getattr(links, name))]
    return "> " + LINK_SEPARATOR.join(parts) if parts else None


def render_paper(
    entry: PaperEntry,
    number: int,
    shown: Sequence[PostLink] = DEFAULT_POST_LINKS,
    evidence: bool = False,
) -> list[str]:
    """One paper's block, with the links of ``shown`` under its title, and with ``evidence``
    its quotes of the paper after it (``evidence_block``). Every content line ends in a hard
    break except the very last of the digest."""
    title = guard_liquid(escape_title(entry.title))
    heading = (
        f"# {number}. [{title}]({entry.links.abs})" if entry.links.abs else f"# {number}. {title}"
    )
    lines = [heading, ""]
    links = link_line(entry.links, shown)
    if links is not None:
        lines += [links, ""]

    intro = entry.digest.introduction
    lines.append("## Introduction")
    if entry.style.intro_labels:
        labelled = [
            ("Goal", intro.goal),
            ("Motivation", intro.motivation),
            ("Contribution", intro.contribution),
        ]
        lines += [f"- {label}: {_line(text)}{HARD_BREAK}" for label, text in labelled]
    else:
        texts = [intro.goal, intro.motivation, intro.contribution]
        lines += [f"- {_line(text)}{HARD_BREAK}" for text in texts]

    bullet = "- " if entry.style.bullets else ""
    sections = [
        ("Method", entry.digest.method),
        ("Results", entry.digest.results),
        ("Limitations", entry.digest.limitations),
        ("Conclusion", entry.digest.conclusion),
    ]
    for name, texts in sections:
        lines += ["", f"## {name}{HARD_BREAK}"]
        lines += [f"{bullet}{_line(text)}{HARD_BREAK}" for text in texts]
    lines[-1] = lines[-1].removesuffix(HARD_BREAK)
    if evidence and entry.evidence is not None:
        lines += evidence_block(entry.evidence)
    return lines


EVIDENCE_SUMMARY = "근거: 논문 인용"
EVIDENCE_START = '<details markdown="1">'


def evidence_block(evidence: Evidence) -> list[str]:
    """A paper's quotes as a collapsed list (HTML ``details``, whose Markdown kramdown reads
    with ``markdown="1"``), each line's quotes after its label, escaped as the lines are."""
    labels = {"introduction.goal": "Goal", "introduction.motivation": "Motivation",
              "introduction.contribution": "Contribution"}  # fmt: skip
    items = []
    for field, quotes in evidence.by_field().items():
        section, _, index = field.partition("[")
        label = labels.get(field) or f"{section.capitalize()} {int(index.rstrip(']')) + 1}"
        items += [f"- {label}: “{_line(' '.join(quote.split()))}”" for quote in quotes]
    return ["", EVIDENCE_START, f"<summary>{EVIDENCE_SUMMARY}</summary>", "", *items,
            "", "</details>"]  # fmt: skip


def _line(text: str) -> str:
    return guard_liquid(escape_line(text))


def render_day(day: Day) -> str:
    """The whole post. The same ``Day`` gives the same string on every run and machine."""
    lines = [*render_front_matter(day), "", ""]
    for number, entry in enumerate(day.papers, start=1):
        if number > 1:
            lines.append("")
        lines += render_paper(entry, number, day.post_links, day.post_evidence)
    return "\n".join(lines) + "\n"
