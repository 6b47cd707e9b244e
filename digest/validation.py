"""Checks on every line of a digest.

The messages go back to the LLM when its answer fails (and to the user when an imported post
fails), so each one says what is wrong and what to write instead. The caller adds the field
name (``results[0]: …``), see ``describe_validation_error``.

Thresholds, measured on the reference post (46 lines):

- Hangul share: the share of letters that are Hangul syllables or jamo. The reference's lowest
  line is 0.49 (a results line full of benchmark names); its median is about 0.8. An English
  sentence scores 0, a mostly English one with a Korean ending well under 0.3. We accept 0.40.
- Hangul words: a line under 0.40 is still Korean when enough of its words hold Hangul, as a
  Korean writer glues a particle to each English term ("MMLU-Pro 84.0%,", "DeepSeek-V3를").
  A large model's answers for the five papers of tests/data/digests had 13 of 68 lines under
  0.40 letters (the lowest 0.18: "섭동된 Friedmann-Lemaître metric의 conformal newtonian
  gauge에서 …"), all of them Korean, and none under 0.45 of words; the reference's lowest is
  0.74, and an English sentence with a Korean ending scores at most 0.15. We accept 0.35.
- Length: the reference's lines are 66 to 285 characters. We accept 20 to 400.
"""

from __future__ import annotations

import re
import unicodedata

from pydantic import ValidationError

HANGUL_SHARE_MIN = 0.40
HANGUL_WORD_SHARE_MIN = 0.35
LINE_MIN_CHARS = 20
LINE_MAX_CHARS = 400
# What follows the "&" of an HTML entity ("amp;", "#42;", "#x2A;"); render.py escapes it too.
ENTITY_AFTER_AMPERSAND = r"(?:#\d+|#[xX][0-9A-Fa-f]+|[A-Za-z][A-Za-z0-9]*);"

# (min, max) lines per list section; CONTRACT.md fixes these.
SECTION_LINE_COUNTS: dict[str, tuple[int, int]] = {
    "method": (1, 4),
    "results": (1, 3),
    "limitations": (1, 2),
    "conclusion": (1, 2),
}

# "…니다." is the polite style, but "아니다." ("is not") is plain written Korean.
_POLITE_ENDING = re.compile(r"(\S{0,3}(?<!아)니다)\.(?=\s|$)")
_LINE_BREAKS = re.compile(r"[\n\r\u2028\u2029\x0b\x0c\x85]")

# Markdown that would change how a line renders. Single '*' or '_' (as in "x_t" or "GPT-4*")
# render literally, so only paired emphasis is rejected.
_MARKDOWN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\*\*|__"), "bold markers ('**' or '__')"),
    (re.compile(r"~~"), "strikethrough ('~~')"),
    (re.compile(r"`"), "code backticks ('`')"),
    (re.compile(r"!?\[[^\]]*\]\s*[(\[]"), "a link ('[text](url)')"),
    (re.compile(r"</?[A-Za-z][A-Za-z0-9-]*(\s[^<>]*)?/?>"), "an HTML tag"),
    (re.compile(rf"&{ENTITY_AFTER_AMPERSAND}"), "an HTML entity ('&amp;')"),
    (re.compile(r"(?<![\w*])\*(?=[^\s*])[^*]*(?<=[^\s*])\*(?![\w*])"), "emphasis ('*text*')"),
    (re.compile(r"(?<![\w_])_(?=[^\s_])[^_]*(?<=[^\s_])_(?![\w_])"), "emphasis ('_text_')"),
    # Any '#' at the start: kramdown reads "#1 …" under a heading as a heading too, and the
    # post parser would end the section there. A "Goal:" label would be read as the post's own.
    (
        re.compile(r"^\s*(#|>|[-*+]\s|\d+[.)]\s|(?:Goal|Motivation|Contribution)\s*:)"),
        "a heading, quote, list marker or section label at the start",
    ),
]


# Hangul syllables, jamo and compatibility jamo: every one a letter (str.isalpha). Counted with
# regular expressions, as a Python loop over every character of every line was most of the
# time 'render --check' took over a blog's day files.
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3131-\u318e]")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f]")  # Cc but CR, LF


def invisible_characters(text: str) -> list[str]:
    """Format characters (Unicode category Cf) and private-use ones in ``text``, named.

    None belongs in a digest line: bidi overrides and isolates (U+202A–U+202E, U+2066–U+2069)
    make a line display other than it reads, zero-width characters (U+200B–U+200D, U+2060,
    U+FEFF) hide text from search and from our own checks."""
    found = []
    for char in dict.fromkeys(text):
        category = unicodedata.category(char)
        if category in ("Cf", "Co"):
            name = unicodedata.name(char, "private use" if category == "Co" else "format")
            found.append(f"U+{ord(char):04X} {name}")
    return found


def hangul_share(text: str) -> float:
    """Share of the letters in ``text`` that are Hangul (0.0 when there are no letters)."""
    letters = sum(map(str.isalpha, text))
    if not letters:
        return 0.0
    return len(HANGUL.findall(text)) / letters


def hangul_word_share(text: str) -> float:
    """Share of the words (runs between blanks) of ``text`` that hold Hangul."""
    words = text.split()
    if not words:
        return 0.0
    return sum(1 for word in words if HANGUL.search(word)) / len(words)


def line_problems(text: str) -> list[str]:
    """Everything wrong with one digest line, as messages that say how to fix it."""
    if not text.strip():
        return ["is empty; write one or more complete Korean sentences"]
    problems: list[str] = []
    if _LINE_BREAKS.search(text):
        problems.append("contains a line break; write each item as a single line")
    if _CONTROL_CHARACTERS.search(text):
        problems.append("contains control characters; remove them")
    invisible = invisible_characters(text)
    if invisible:
        problems.append(
            f"contains invisible formatting characters ({', '.join(invisible)}); remove them"
        )
    for pattern, what in _MARKDOWN_PATTERNS:
        if pattern.search(text):
            problems.append(f"contains Markdown ({what}); write plain text")
    if len(text) < LINE_MIN_CHARS:
        problems.append(
            f"is {len(text)} characters long; write a complete sentence of at least "
            f"{LINE_MIN_CHARS} characters"
        )
    elif len(text) > LINE_MAX_CHARS:
        problems.append(
            f"is {len(text)} characters long; shorten it to at most {LINE_MAX_CHARS} characters"
        )
    share = hangul_share(text)
    # Words are counted only for a line short of Hangul letters: most lines never need it.
    words = hangul_word_share(text) if share < HANGUL_SHARE_MIN else 1.0
    if words < HANGUL_WORD_SHARE_MIN:
        problems.append(
            f"is only {share:.0%} Hangul, in {words:.0%} of its words (at least "
            f"{HANGUL_WORD_SHARE_MIN:.0%} of the words must hold Hangul); write it in Korean, "
            "keeping English only for names, benchmarks and technical terms"
        )
    polite = _POLITE_ENDING.search(text)
    if polite:
        problems.append(
            f"uses the polite style ('{polite.group(1)}.'); use the formal written style that "
            "ends in '다.', e.g. '제안한다.' or '향상시켰다.'"
        )
    elif not text.rstrip().endswith("다."):
        problems.append(
            "does not end in '다.'; end the line with a sentence in the formal written style, "
            "e.g. '…를 제안한다.' or '…를 달성하였다.'"
        )
    return problems


def check_line(text: str) -> str:
    """Pydantic validator for one digest line: strips outer spaces, raises on any problem."""
    text = text.strip()
    problems = line_problems(text)
    if problems:
        raise ValueError("; ".join(problems))
    return text


def check_line_count(section: str, lines: object) -> object:
    """Pydantic validator for the number of lines in a list section."""
    if isinstance(lines, list):
        low, high = SECTION_LINE_COUNTS[section]
        if not low <= len(lines) <= high:
            raise ValueError(f"has {len(lines)} lines; write {low} to {high}")
    return lines


def field_path(location: tuple[int | str, ...]) -> str:
    """``("digest", "results", 0)`` → ``digest.results[0]``."""
    path = ""
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else part
    return path or "(root)"


def describe_validation_error(error: ValidationError) -> list[str]:
    """One ``field: message`` line per error, the form the LLM and the user are shown."""
    messages = []
    for item in error.errors(include_url=False):
        message = item["msg"].removeprefix("Value error, ")
        messages.append(f"{field_path(item['loc'])}: {message}")
    return messages
