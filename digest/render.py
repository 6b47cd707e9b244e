"""Render a ``Day`` to the blog's post format, byte-exact to the reference post.

Three kinds of escaping, each applied only where the text needs it, so that a post that needs
none (like the reference) comes out byte-identical:

- Markdown: a paper title sits inside ``[…](url)``; brackets, parentheses, emphasis markers and
  backslashes in it are backslash-escaped so the link stays intact.
- Liquid: Jekyll runs Liquid over the whole post before Markdown, and GitHub Pages (Jekyll 3.10)
  ignores ``render_with_liquid: false``. A title or line containing ``{{`` or ``{%`` is wrapped
  in ``{% raw %}…{% endraw %}``; see ``guard_liquid`` for text that itself contains ``endraw``.
- YAML: front matter strings are double-quoted with YAML escapes whenever a plain scalar would
  be read differently.
"""

from __future__ import annotations

import re

from digest.models import Day, PaperEntry
from digest.validation import ENTITY_AFTER_AMPERSAND

RAW_OPEN = "{% raw %}"
RAW_CLOSE = "{% endraw %}"
HARD_BREAK = "  "

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]()<>])")
# "&amp;" in a title would show as "&": an "&" that starts an entity is written as "&amp;".
_ENTITY_START = re.compile(rf"&(?={ENTITY_AFTER_AMPERSAND})")
_ESCAPED_ENTITY_START = re.compile(rf"&amp;(?={ENTITY_AFTER_AMPERSAND})")
_YAML_PLAIN = re.compile(r"[^\W\d_][\w-]*")
_YAML_NON_STRINGS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null"}


def escape_markdown(text: str) -> str:
    """Backslash-escape what could end or reshape a Markdown link text; keep entities literal."""
    return _ENTITY_START.sub("&amp;", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def unescape_markdown(text: str) -> str:
    text = _ESCAPED_ENTITY_START.sub("&", text)
    return re.sub(r"\\([\\`*_\[\]()<>])", r"\1", text)


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


def render_paper(entry: PaperEntry, number: int) -> list[str]:
    """One paper's block. Every content line ends in a hard break except the very last."""
    title = guard_liquid(escape_markdown(entry.title))
    heading = (
        f"# {number}. [{title}]({entry.links.abs})" if entry.links.abs else f"# {number}. {title}"
    )
    lines = [heading, ""]
    if entry.links.alphaxiv:
        lines += [f"> [Alphaxiv]({entry.links.alphaxiv})", ""]

    intro = entry.digest.introduction
    lines.append("## Introduction")
    if entry.style.intro_labels:
        labelled = [
            ("Goal", intro.goal),
            ("Motivation", intro.motivation),
            ("Contribution", intro.contribution),
        ]
        lines += [f"- {label}: {guard_liquid(text)}{HARD_BREAK}" for label, text in labelled]
    else:
        texts = [intro.goal, intro.motivation, intro.contribution]
        lines += [f"- {guard_liquid(text)}{HARD_BREAK}" for text in texts]

    bullet = "- " if entry.style.bullets else ""
    sections = [
        ("Method", entry.digest.method),
        ("Results", entry.digest.results),
        ("Limitations", entry.digest.limitations),
        ("Conclusion", entry.digest.conclusion),
    ]
    for name, texts in sections:
        lines += ["", f"## {name}{HARD_BREAK}"]
        lines += [f"{bullet}{guard_liquid(text)}{HARD_BREAK}" for text in texts]
    lines[-1] = lines[-1].removesuffix(HARD_BREAK)
    return lines


def render_day(day: Day) -> str:
    """The whole post. The same ``Day`` gives the same string on every run and machine."""
    lines = [*render_front_matter(day), "", ""]
    for number, entry in enumerate(day.papers, start=1):
        if number > 1:
            lines.append("")
        lines += render_paper(entry, number)
    return "\n".join(lines) + "\n"
