"""Is this PDF the paper? Its text checked against the paper's title and abstract.

A mirror or cache can serve the wrong file, an ID can be mislinked, a publisher's cover sheet
can stand in for the paper. The text then reads fine, and a digest of it would describe another
text under this paper's title: the worst thing a summarizer can publish. So before the text
goes to the LLM, two shares are measured on it (words compared in lower case, accents and
ligatures folded, line-end hyphenation undone, any other character a separator):

- ``abstract``: the share of the abstract's word 3-grams found in the text. A paper's PDF
  prints its abstract, so this is near 1 for the right file and near 0 for another paper,
  however close its subject: a 3-gram is a phrase, not a topic word.
- ``title``: the share of the title's word 2-grams found in the first ``HEAD_CHARS`` of the
  text, where a paper prints its title (or a running head, on a page from the middle of a
  paper). Only there: further on, a title is as likely one the paper cites.

The score is the larger of the two; the abstract carries the check, and the title rescues an
excerpt without the first page. ``MATCH_THRESHOLD`` was chosen on the shared corpus
(``python bench/extract.py --identity``): every real paper scores 1.00 with its own metadata
(the page-9 excerpt of 2305.03393 by its running head alone), every one of the 72 wrong
pairings 0.33 or less (TableFormer's first page names "table structure recognition", two of
the six 2-grams of another table paper's title), and the Zen of Python printout under 0.10.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

WRONG_DOCUMENT = "the PDF's text does not match the paper (title/abstract not found)"

# The least score of a PDF that is the paper: between the highest wrong pairing of the corpus
# (0.33) and the lowest right one (1.00), leaving room for a title printed a little otherwise.
MATCH_THRESHOLD = 0.6

# Characters at the start of the text that the title is looked for in.
HEAD_CHARS = 3000

_WORD = re.compile(r"[a-z0-9]+")
_STOPWORDS = frozenset(
    {
        "a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "has", "have", "in", "is",
        "it", "its", "of", "on", "or", "our", "that", "the", "their", "this", "to", "via", "we",
        "with", "without", "into", "over", "under", "using", "based", "towards", "toward", "than",
        "then", "these", "those", "which", "while", "when", "where", "how", "what", "why", "can",
        "not", "no", "new",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Identity:
    """How much of a paper's title and abstract a text contains (0 to 1 each)."""

    title: float
    abstract: float

    @property
    def score(self) -> float:
        return round(max(self.title, self.abstract), 3)

    @property
    def matches(self) -> bool:
        return self.score >= MATCH_THRESHOLD


# Runs of characters past ASCII: only they can be combining marks. A paper's text is mostly
# ASCII, and looking at each of its characters in Python was most of an identity check's time.
_NON_ASCII = re.compile(r"[^\x00-\x7f]+")


def _without_marks(run: re.Match[str]) -> str:
    return "".join(char for char in run.group() if not unicodedata.combining(char))


def words(text: str) -> list[str]:
    """The words of ``text``: lower case, accents and ligatures folded, hyphenation at line
    ends undone (``struc-\\nture`` is ``structure``)."""
    text = _NON_ASCII.sub(_without_marks, unicodedata.normalize("NFKD", text)).lower()
    text = re.sub(r"(\w)-\s*\n\s*(\w)", r"\1\2", text)
    return _WORD.findall(text)


def _ngrams(tokens: list[str], size: int) -> set[tuple[str, ...]]:
    return set(zip(*(tokens[i:] for i in range(size)), strict=False))


def identity(title: str, abstract: str, text: str) -> Identity:
    """How much of ``title`` and ``abstract`` the extracted ``text`` contains."""
    found = words(text)
    # The title is looked for where a paper prints it: on its first page, or in the running
    # head at the top of a page (an excerpt). Anywhere else it may be a reference's title.
    head = words(text[:HEAD_CHARS])
    title_words = words(title)
    size = 2 if len(title_words) >= 2 else 1
    wanted = _ngrams(title_words, size)
    title_share = len(wanted & _ngrams(head, size)) / len(wanted) if wanted else 0.0
    phrases = _ngrams(words(abstract), 3)
    abstract_share = len(phrases & _ngrams(found, 3)) / len(phrases) if phrases else 0.0
    return Identity(round(title_share, 3), round(abstract_share, 3))
