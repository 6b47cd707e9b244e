"""Evidence: the paper's own words behind a digest's line, found in the text the model was sent.

Each line of a digest comes with one or two short verbatim quotes of the paper. A quote is
*found* when, after both sides are normalized, it appears in the text that was sent:

- normalized: Unicode NFKC (which also opens the ligatures ``ﬁ``, ``ﬂ``, ``ﬀ``...), no case,
  the quote and dash variants made one (``“ ” ‘ ’`` are ``"`` and ``'``, every dash a
  hyphen), a word broken across a line (``gener-\\nalization``) joined, and whitespace
  collapsed;
- found exactly (hyphens and blanks aside, so ``state-of-\\nthe-art`` is found for
  ``state-of-the-art``), or as a near-exact window: a run of the text's words as long as the
  quote that holds at least ``NEAR`` of its words. That tolerates what PDF extraction does to
  a sentence (a dropped symbol, a split word) and nothing a paraphrase does.

A quote from anywhere else (the prompt's worked example, another paper, the model's own
wording) is not in the text, so it is not found. A number in a line must stand in one of
that line's quotes, not merely somewhere in the paper: the quote is what the number is read
from.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cached_property

from digest.llm.grounding import numbers_in, value
from digest.models import unprintable

NEAR = 0.9  # of a quote's words a window of the text must hold
MIN_QUOTE_WORDS = 4
MAX_QUOTE_WORDS = 60
MAX_QUOTES = 2
MAX_QUOTE_CHARS = 1000  # a day file holds at most 2,000 (digest.models.Quote)

_QUOTES = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
        "\u00b4": "'", "`": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
        "\u00ab": '"', "\u00bb": '"',
        "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
        "\u2015": "-", "\u2212": "-", "\u00ad": "",
    }
)  # fmt: skip
_BROKEN_WORD = re.compile(r"(\w)-[ \t]*\r?\n\s*(\w)")
_BLANKS = re.compile(r"\s+")
_WORD = re.compile(r"\w+")
_HYPHENS_AND_BLANKS = re.compile(r"[\s\-]+")
# The number of a name (GPT-4o, PaSa-7b, Qwen-2.5-7b, ResNet-50, pass@1) is not a figure the
# line reports: a quote need not hold it (the name itself is grounded, digest.llm.grounding),
# nor does it stand for a figure in a quote. A strong model's lines naming "PaSa-7b" and
# "GPT-4o" were refused for want of a 7 and a 4.
_NUMBERED_NAME = re.compile(r"(?<=[A-Za-z])(?:[-@]\d+(?:\.\d+)?[A-Za-z]*)+")


def normalize(text: str) -> str:
    """``text`` as quotes are compared: see the module docstring."""
    text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = _BROKEN_WORD.sub(r"\1\2", text)
    return _BLANKS.sub(" ", text.casefold()).strip()


def words_of(text: str) -> list[str]:
    """The words of normalized text."""
    return _WORD.findall(text)


class SentText:
    """The text the model was sent, read once for every quote checked against it."""

    def __init__(self, text: str) -> None:
        self.normalized = normalize(text)

    @cached_property
    def compact(self) -> str:
        return _HYPHENS_AND_BLANKS.sub("", self.normalized)

    @cached_property
    def words(self) -> list[str]:
        return words_of(self.normalized)

    @cached_property
    def places(self) -> dict[str, list[int]]:
        """Each word's places in ``words``."""
        found: dict[str, list[int]] = {}
        for place, word in enumerate(self.words):
            found.setdefault(word, []).append(place)
        return found

    def holds(self, quote: str) -> bool:
        """Whether ``quote`` is found in the text (see the module docstring)."""
        normalized = normalize(quote)
        compact = _HYPHENS_AND_BLANKS.sub("", normalized)
        if compact and compact in self.compact:
            return True
        return self.near(words_of(normalized))

    def near(self, quote: Sequence[str]) -> bool:
        """Whether a window of the text as long as ``quote`` holds ``NEAR`` of its words."""
        size = len(quote)
        if size == 0:
            return False
        wanted = Counter(quote)
        need = NEAR * size
        starts: set[int] = set()
        # A window that holds NEAR of the quote holds one of its first few words near where
        # the quote has it: those are the windows worth counting.
        for offset, word in enumerate(quote[: max(1, size - int(need) + 1)]):
            for place in self.places.get(word, ()):
                if place - offset >= 0:
                    starts.add(place - offset)
        words = self.words
        for start in sorted(starts):
            window = Counter(words[start : start + size])
            if sum((window & wanted).values()) >= need:
                return True
        return False


@dataclass(frozen=True)
class LineEvidence:
    """One line of a digest with its quotes, as the model gave them."""

    field: str  # "results[0]", "introduction.goal"
    line: str
    quotes: tuple[str, ...]


@dataclass(frozen=True)
class Unsupported:
    """A line whose evidence did not hold, and why."""

    field: str
    why: str
    quote: str | None = None

    def problem(self) -> str:
        """The problem as the re-ask names it."""
        if self.quote is None:
            return f"{self.field}: {self.why}"
        return f"{self.field}: quote {self.quote!r} {self.why}"


NOT_IN_PAPER = "is not in the paper: quote the paper verbatim"


def check_line(evidence: LineEvidence, text: SentText) -> list[Unsupported]:
    """What is wrong with one line's evidence; nothing when every quote is found and every
    number of the line stands in one of its quotes."""
    field = evidence.field
    quotes = [quote.strip() for quote in evidence.quotes if quote.strip()]
    if not quotes:
        return [Unsupported(field, "no quote: give 1 or 2 verbatim quotes of the paper")]
    problems: list[Unsupported] = []
    if len(quotes) > MAX_QUOTES:
        problems.append(Unsupported(field, f"{len(quotes)} quotes; give at most {MAX_QUOTES}"))
    if len(set(map(normalize, quotes))) < len(quotes):
        problems.append(Unsupported(field, "the same quote twice; give each once"))
    for quote in quotes:
        count = len(words_of(normalize(quote)))
        if unprintable(quote):
            problems.append(
                Unsupported(field, "has control or invisible characters; quote the words only")
            )
        elif len(quote) > MAX_QUOTE_CHARS:
            problems.append(
                Unsupported(field, f"has {len(quote)} characters; quote a sentence", _cut(quote))
            )
        elif count < MIN_QUOTE_WORDS:
            problems.append(
                Unsupported(field, f"has {count} words; quote at least {MIN_QUOTE_WORDS}", quote)
            )
        elif count > MAX_QUOTE_WORDS:
            problems.append(
                Unsupported(
                    field, f"has {count} words; quote at most {MAX_QUOTE_WORDS}", _cut(quote)
                )
            )
        elif not text.holds(quote):
            problems.append(Unsupported(field, NOT_IN_PAPER, _cut(quote)))
    if problems:
        return problems
    quoted = _values(quotes)
    line = _NUMBERED_NAME.sub(" ", evidence.line)
    missing = [number for number in numbers_in(line) if value(number) not in quoted]
    if missing:
        listed = ", ".join(dict.fromkeys(missing))
        problems.append(
            Unsupported(
                field,
                f"the number{'s' if len(missing) > 1 else ''} {listed} of the line "
                f"{'are' if len(missing) > 1 else 'is'} in none of its quotes: quote the "
                "sentence of the paper that states it",
            )
        )
    return problems


def check_lines(lines: Iterable[LineEvidence], text: SentText) -> list[Unsupported]:
    """Every problem of every line (see ``check_line``)."""
    return [problem for evidence in lines for problem in check_line(evidence, text)]


def _values(quotes: Iterable[str]) -> set[Decimal | None]:
    figures = (_NUMBERED_NAME.sub(" ", normalize(quote)) for quote in quotes)
    return {value(number) for quote in figures for number in numbers_in(quote)}


def _cut(quote: str, limit: int = 160) -> str:
    return quote if len(quote) <= limit else quote[: limit - 1] + "…"
