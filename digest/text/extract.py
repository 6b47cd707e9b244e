"""Extract stage: the text of an arXiv PDF, cleaned and cut to a character budget for the LLM.

pypdf (pure Python, always installed) or pypdfium2 (Chrome's PDFium, about ten times faster,
from the "fast" extra) gives plain text, one line per layout line, with a paper's headings on
lines of their own; the PDFium text is brought to pypdf's conventions so that the same cleanup
and the same heading rules serve both.
``apply_budget`` splits the text at those headings so that, when a paper is longer than the
budget, what a digest needs most survives: the front matter (title, authors, abstract), the
conclusion, the introduction. References and acknowledgements never go to the LLM; appendices
go last.

The heading rules were tuned on the papers in the shared corpus (REVTeX, ACL, ACM, NeurIPS and
single-column preprints), including their false positives: numbered instructions and dated
tables inside figures, tables of contents, reference entries, rows of matrix labels.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import os
import re
import signal
import threading
import time
import unicodedata
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING, Literal, get_args

from pydantic import BaseModel
from pypdf import PasswordType, PdfReader

from digest.errors import ExtractionFailed, ExtractionUnavailable
from digest.models import Extractor

if TYPE_CHECKING:
    import pypdfium2  # optional: imported where it is used

EXTRACTORS: tuple[Extractor, ...] = get_args(Extractor)

MIN_CHARS_PER_PAGE = 50  # less than this on average: scanned images or empty pages
FRONT_MATTER = "front matter"
CUT_MARK = "[…]"
# Extraction workers (papers are taken in source order, first come first): all cores but the
# event loop's, and at least two, since the first papers' extractions are all that the
# loop waits for at the start of a run.
EXTRACT_WORKERS = max(2, min(4, (os.cpu_count() or 2) - 1))

_HEADER_SEARCH_BYTES = 1024  # PDF readers accept this much junk before "%PDF-"
_TRAILER_SEARCH_BYTES = 2048
_HEADING_MAX_CHARS = 80
_HEADING_MAX_WORDS = 12
_MIN_CUT_CHARS = 200  # the start of a section shorter than this is noise, not context
_HEAD_SHARE = 0.7  # without headings: this share from the start, the rest from the end
# A last main section that stands in for a missing conclusion ends with the paper's closing
# remarks ("Discussion. …" run into the text), so when it is cut its end is what matters.
_STAND_IN_HEAD_SHARE = 0.3


class ExtractedText(BaseModel):
    text: str  # the budgeted text that goes to the LLM
    extractor: Extractor  # the one that read the PDF
    pages: int
    chars_raw: int  # characters the extractor returned
    chars_clean: int  # after clean_text
    chars_kept: int  # len(text)
    kept_sections: list[str]  # document order; FRONT_MATTER is the part before any heading
    dropped_sections: list[str]
    title: str | None  # from the metadata if it looks real, else guessed from the first page
    seconds: float  # extraction wall time


def check_pdf_bytes(data: bytes) -> None:
    """Reject what is plainly not a whole PDF before a reader spends time trying to repair it."""
    if b"%PDF-" not in data[: _HEADER_SEARCH_BYTES + len(b"%PDF-")]:
        raise ExtractionFailed("not a PDF (no %PDF- header)")
    if b"%%EOF" not in data[-_TRAILER_SEARCH_BYTES:]:
        raise ExtractionFailed("truncated (no %%EOF marker)")


def extract_pdf(data: bytes, budget: int, extractor: Extractor = "pypdf") -> ExtractedText:
    """The paper's text cut to ``budget`` characters; ExtractionFailed when it gives none,
    ExtractionUnavailable when ``extractor`` is pypdfium2 and it is not installed."""
    if extractor not in EXTRACTORS:
        raise ValueError(f"unknown extractor {extractor!r}; choose one of {', '.join(EXTRACTORS)}")
    started = time.perf_counter()
    check_pdf_bytes(data)
    read_pages = _read_pages_pdfium if extractor == "pypdfium2" else _read_pages_pypdf
    page_texts, metadata_title = read_pages(data)
    raw = "\n".join(page_texts)  # not "\n\n": a word hyphenated across pages is joined too
    clean = clean_text(raw)
    pages = len(page_texts)
    if len(clean) < MIN_CHARS_PER_PAGE * max(pages, 1):
        counts = f"{len(clean)} characters on {pages} page{'' if pages == 1 else 's'}"
        raise ExtractionFailed(f"image-only or empty ({counts})")
    text, kept, dropped = apply_budget(clean, budget)
    title = " ".join(metadata_title.split()) if metadata_title else None
    return ExtractedText(
        text=text,
        extractor=extractor,
        pages=pages,
        chars_raw=len(raw),
        chars_clean=len(clean),
        chars_kept=len(text),
        kept_sections=kept,
        dropped_sections=dropped,
        title=title if _looks_like_title(title) else _guess_title(clean_text(page_texts[0])),
        seconds=round(time.perf_counter() - started, 3),
    )


class _QuietPypdf:
    """Raises the "pypdf" logger's level while extractions run.

    pypdf logs a warning for every oddity it repairs (fonts, xref offsets); a user can do nothing
    about them, and one paper can print hundreds. Extractions run in threads (the pipeline uses
    ``asyncio.to_thread``), so the first one in saves the level and the last one out restores it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running = 0
        self._saved_level = logging.NOTSET

    def __enter__(self) -> None:
        logger = logging.getLogger("pypdf")
        with self._lock:
            if self._running == 0:
                self._saved_level = logger.level
                logger.setLevel(logging.CRITICAL)
            self._running += 1

    def __exit__(self, *exc_info: object) -> None:
        with self._lock:
            self._running -= 1
            if self._running == 0:
                logging.getLogger("pypdf").setLevel(self._saved_level)


_quiet_pypdf = _QuietPypdf()


def _unreadable(error: Exception) -> ExtractionFailed:
    detail = f"{type(error).__name__}: {error}"
    return ExtractionFailed(f"unreadable PDF ({detail[:200]})")


def _read_pages_pypdf(data: bytes) -> tuple[list[str], str | None]:
    """Each page's text, and the metadata title."""
    with _quiet_pypdf:
        try:
            reader = PdfReader(io.BytesIO(data))
            if reader.is_encrypted and reader.decrypt("") == PasswordType.NOT_DECRYPTED:
                raise ExtractionFailed("encrypted")
            texts = [page.extract_text() for page in reader.pages]
            title = reader.metadata.title if reader.metadata else None
        except ExtractionFailed:
            raise
        except Exception as error:
            # pypdf warns that broken files raise more than PyPdfError (ValueError, KeyError,
            # NotImplementedError, RecursionError…); a broken PDF must not crash the caller.
            raise _unreadable(error) from error
    return texts, title if isinstance(title, str) else None


# PDFium may not be called from two threads at once, not even on two documents: it would crash
# or corrupt the process. The pipeline extracts in processes; this guards callers using threads.
_pdfium_lock = threading.Lock()


def _read_pages_pdfium(data: bytes) -> tuple[list[str], str | None]:
    """Each page's text in pypdf's conventions, and the metadata title."""
    try:
        import pypdfium2
    except ImportError as error:
        raise ExtractionUnavailable(
            "the pypdfium2 extractor needs the 'fast' extra: pip install 'digest[fast]'"
        ) from error
    with _pdfium_lock:
        try:
            document = pypdfium2.PdfDocument(data)
        except pypdfium2.PdfiumError as error:
            # PDFium keeps why the last document failed to load; under the lock, it is this one.
            # (PdfiumError.err_code says the same, but pypdfium2 4.0 does not have it.)
            if pypdfium2.raw.FPDF_GetLastError() == pypdfium2.raw.FPDF_ERR_PASSWORD:
                raise ExtractionFailed("encrypted") from error
            raise _unreadable(error) from error
        try:
            texts = [_pdfium_page_text(document, index) for index in range(len(document))]
            title = document.get_metadata_dict().get("Title")
        except Exception as error:
            raise _unreadable(error) from error
        finally:
            document.close()
    return [_as_pypdf_text(text) for text in texts], title or None


def _pdfium_page_text(document: pypdfium2.PdfDocument, index: int) -> str:
    page = document[index]
    try:
        text_page = page.get_textpage()
        try:
            text: str = text_page.get_text_bounded()  # get_text_range loses chars past UCS-2
            return text
        finally:
            text_page.close()
    finally:
        page.close()


# Where PDFium takes out a hyphen at a line end it writes "\x02", and mostly joins the two lines
# itself: "ef\x02ficient", "DeepSeek\x02R1", rarely "ef\x02\r\nficient". A "\x02" that is not
# between letters or digits is a glyph with no Unicode value (a bracket in a formula), which
# clean_text drops with the other control characters.
_PDFIUM_HYPHEN = re.compile(r"(?<=\w)\x02\n?(?=\w|\Z)")
# PDFium puts a TeX accent, a glyph of its own, where its position sorts it, often away from its
# letter and between blanks: "M ´ exico", "Barlas Oguz ˘", "Con- ´\ncrete", "and ˇ Sediv ˇ y".
# There it only splits words and stops hyphens joining, so it goes, and a word it split (the
# second half starts in lower case) is joined. pypdf keeps an accent next to its letter
# ("M´exico"), which clean_text puts back together.
_LOOSE_ACCENTS = "´¨˘˚˜ˆˇ˙¸˛˝¯"  # spacing accents; not ` ^ ~, which are code
_PDFIUM_ACCENT_IN_WORD = re.compile(rf"(?<=\w) [{_LOOSE_ACCENTS}] (?=[a-zı])")
_PDFIUM_LOOSE_ACCENT = re.compile(rf" ?(?<!\S)[{_LOOSE_ACCENTS}](?!\S)")


def _as_pypdf_text(page_text: str) -> str:
    """A page's text from PDFium in pypdf's conventions, for clean_text and the heading rules."""
    text = page_text.replace("\r\n", "\n")
    text = _PDFIUM_LOOSE_ACCENT.sub("", _PDFIUM_ACCENT_IN_WORD.sub("", text))
    # Back to pypdf's "ef-" and line break, so that clean_text decides for both extractors by the
    # same rule whether the hyphen stays ("DeepSeek-R1") or goes ("efficient"). At the end of a
    # page the line break is the one extract_pdf puts between pages.
    return _PDFIUM_HYPHEN.sub(lambda match: "-" if match.end() == len(text) else "-\n", text)


_SPACING_ACCENT = re.compile(r" ([\u0300-\u036f])([ıA-Za-z])")
_ARXIV_STAMP = re.compile(
    r"^ *arXiv:(?:\d{4}\.\d{4,5}|[a-z-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?"
    r" +(?:\[[^\]\n]+\] +)?\d{1,2} [A-Z][a-z]{2} \d{4}$\n?",
    re.MULTILINE,
)
# Unicode's control characters (category Cc) but the line break, and the replacement character;
# a regular expression, as a test of every character's category took half of clean_text's time.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\ufffd]")
_LINE_END_HYPHEN = re.compile(r"(?<=(\w))-\n(?=(\w))")


def _join_broken_word(match: re.Match[str]) -> str:
    # "ef-\nficient" is one word broken at the line end; "DeepSeek-\nR1" keeps its hyphen.
    pair = match[1] + match[2]
    return "" if pair.isalpha() and pair.islower() else "-"


def clean_text(raw: str) -> str:
    """An extractor's text without ligatures, broken words, control characters, the arXiv stamp and
    runs of blanks."""
    text = unicodedata.normalize("NFKC", raw)
    # TeX accents come out as spacing accents ("F´ısica"), which NFKC turns into a space and a
    # combining mark; put the mark back on its letter ("Física").
    text = _SPACING_ACCENT.sub(
        lambda match: unicodedata.normalize("NFC", match[2].replace("ı", "i") + match[1]), text
    )
    text = re.sub(r"\r\n?|\f", "\n", text).replace("\t", " ")
    text = _CONTROL_CHARACTERS.sub("", text)
    text = re.sub(r" +", " ", text)
    text = re.sub(r" +$", "", text, flags=re.MULTILINE)
    text = _ARXIV_STAMP.sub("", text)
    text = _LINE_END_HYPHEN.sub(_join_broken_word, text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


class _Kind(IntEnum):
    """What a section is; when the budget is short, sections are kept in this order."""

    FRONT = 0
    CONCLUSION = 1
    INTRODUCTION = 2
    BODY = 3
    RELATED = 4
    APPENDIX = 5
    DROPPED = 6  # references and acknowledgements: never sent


@dataclass(frozen=True)
class _Heading:
    name: str  # the whole line, e.g. "IV. CONCLUSIONS"
    title: str  # without its number, e.g. "CONCLUSIONS"
    style: Literal["named", "numbered", "lettered"]  # "Abstract"; "2" or "IV."; "A" or "B.1"
    top_level: bool  # "2.1 Data", "B.1 Proofs" and REVTeX's "A. Data" are parts of a section
    number: int = 0  # of a numbered heading: 2 for "2.1 Data", 4 for "IV. CONCLUSIONS"


@dataclass(frozen=True)
class _Section:
    name: str
    text: str  # its heading line included
    kind: _Kind


_KNOWN_NAME = re.compile(
    r"abstract|introduction|related work|background|references|bibliography|appendix"
    r"|appendices|acknowledge?ments?|concluding remarks|appendix [A-Z](?:[:.] .+)?"
    r"|(?:conclusions?|discussion|limitations|summary)"
    r"(?:,? and (?:conclusions?|discussion|limitations|future work|outlook))?",
    re.IGNORECASE,
)
_LABELLED = re.compile(r"(\d{1,2}(?:\.\d{1,2})*\.?|[IVX]{1,4}\.|[A-Z](?:\.\d{1,2})*\.?) (.+)")
_FUNCTION_WORD = re.compile(
    r"a|an|the|of|to|in|on|at|by|for|from|with|via|and|or|but|as|is|are|be|can|that|this|these"
    r"|its|their|if|when|then|into|toward|towards|until|between",
    re.IGNORECASE,
)
_DROPPED_TITLE = re.compile(r"references|bibliography|acknowledge?ments?", re.IGNORECASE)
_KIND_WORDS = [
    (_Kind.APPENDIX, re.compile(r"appendi", re.IGNORECASE)),
    (_Kind.FRONT, re.compile(r"abstract", re.IGNORECASE)),
    (_Kind.CONCLUSION, re.compile(r"conclu|summary|discussion|limitation|future work", re.I)),
    (_Kind.INTRODUCTION, re.compile(r"introduction", re.IGNORECASE)),
    (_Kind.RELATED, re.compile(r"related work|background|preliminaries|prior work", re.I)),
]


def _parse_heading(line: str) -> _Heading | None:
    """The heading on ``line``, if the whole line is one."""
    line = line.strip()
    if _KNOWN_NAME.fullmatch(line):
        return _Heading(line, line, "named", top_level=True)
    match = _LABELLED.fullmatch(line)
    if not match or len(line) > _HEADING_MAX_CHARS or not _reads_like_heading(match[2]):
        return None
    label, title = match[1], match[2]
    if label[0].isdigit():
        number = int(label.split(".")[0])
        return _Heading(line, title, "numbered", "." not in label.rstrip("."), number)
    if label[-1] == "." and set(label[:-1]) <= set("IVX"):
        return _Heading(line, title, "numbered", True, _roman(label[:-1]))
    return _Heading(line, title, "lettered", top_level="." not in label)


def _roman(numeral: str) -> int:
    """The value of a Roman numeral of I, V and X: 4 for "IV"."""
    values = [{"I": 1, "V": 5, "X": 10}[char] for char in numeral]
    return sum(-v if v < after else v for v, after in zip(values, [*values[1:], 0], strict=True))


def _reads_like_heading(title: str) -> bool:
    """Whether the words after a number or letter read as a heading, not a sentence or data."""
    words = title.split()
    if any(rule(title, words) for rule in _NOT_A_HEADING):
        return False
    lettered = [word for word in words if word[0].isalpha()]
    if sum(word[0].isupper() for word in lettered) * 2 >= len(lettered):
        return True  # Title Case or ALL CAPS
    return _sentence_case_heading(title, words, lettered)


def _sentence_shaped(title: str, words: list[str]) -> bool:
    """No capital first, punctuation last, or too many words: a line of running text."""
    return not title[0].isupper() or title[-1] in ".,;:" or len(words) > _HEADING_MAX_WORDS


def _leader_or_run_on(title: str, words: list[str]) -> bool:
    """A table of contents' dot leader, or a sentence running on."""
    return ". ." in title or re.search(r"[a-z]{2}\. [A-Z]", title) is not None


def _no_word(title: str, words: list[str]) -> bool:
    """No word of three letters or more: "C Q C D D", matrix labels in a figure."""
    return not any(sum(char.isalpha() for char in word) >= 3 for word in words)


def _long_number(title: str, words: list[str]) -> bool:
    """A number of three characters or more ("2012", "(12)"): "22 August 2012 full year result",
    a table in a figure; zip codes."""
    return any(len(word) >= 3 and word.strip(",.;:()").isdigit() for word in words)


# What the words after a number or letter look like when the line is not a heading: rules that
# take the title and its words, tried in this order.
_NOT_A_HEADING: tuple[Callable[[str, list[str]], bool], ...] = (
    _sentence_shaped,
    _leader_or_run_on,
    _no_word,
    _long_number,
)


def _sentence_case_heading(title: str, words: list[str], lettered: list[str]) -> bool:
    """Sentence case is a heading ("1 Online learning in teacher-student networks") unless it
    reads like a step of instructions in a figure ("1. Turn the focusing knob away or toward")."""
    function_words = sum(bool(_FUNCTION_WORD.fullmatch(word)) for word in lettered)
    return (
        "," not in title
        and not _FUNCTION_WORD.fullmatch(words[-1])
        and function_words < 0.4 * len(lettered)
    )


def _find_headings(lines: list[str]) -> dict[int, _Heading]:
    """The top-level headings by line index, in document order.

    Every line that reads as a heading is a candidate; the passes of ``_HEADING_PASSES`` then
    take out, in turn, the candidates that the rest of the document shows are not headings.
    """
    found = {}
    for index, line in enumerate(lines):
        heading = _parse_heading(line)
        if heading and heading.top_level:
            found[index] = heading
    for heading_pass in _HEADING_PASSES:
        found = heading_pass(found, lines)
    return dict(sorted(found.items()))


def _drop_numbered_after_references(
    found: dict[int, _Heading], lines: list[str]
) -> dict[int, _Heading]:
    """After the references, numbered lines are reference entries or lists in figures."""
    references = next((i for i, heading in found.items() if _is_references(heading)), None)
    if references is None:
        references = _revtex_references(lines)
        if references is None:
            return found
        found = {**found, references: _Heading("References", "References", "named", top_level=True)}
    return {i: h for i, h in found.items() if i <= references or h.style != "numbered"}


def _revtex_references(lines: list[str]) -> int | None:
    """Where REVTeX's reference list starts: it prints no heading over it, only "[1] "."""
    start = next((i for i, line in enumerate(lines) if line.startswith("[1] ")), None)
    if start is not None and any(line.startswith("[2] ") for line in lines[start : start + 9]):
        return start
    return None


def _keep_longest_numbered_run(found: dict[int, _Heading], lines: list[str]) -> dict[int, _Heading]:
    """Of the numbered headings, only those of the longest run of section numbers."""
    numbered = _longest_numbered_run(found)
    return {i: h for i, h in found.items() if h.style != "numbered" or i in numbered}


def _longest_numbered_run(found: dict[int, _Heading]) -> set[int]:
    """Section numbers go up one by one (by two past a missed heading); numbered lines off the
    longest such run are footnotes, affiliations, list items or a table of contents. Of equal
    runs, the one that starts last wins: contents and affiliations come before the sections."""
    runs: dict[int, list[int]] = {}  # by the index of their last heading
    for index, heading in found.items():
        if heading.style == "numbered":
            before = [
                run for end, run in runs.items() if 1 <= heading.number - found[end].number <= 2
            ]
            longest: list[int] = max(before, key=_run_rank) if before else []
            runs[index] = [*longest, index]
    best: list[int] = max(runs.values(), key=_run_rank) if runs else []
    return set(best)


def _keep_appendices(found: dict[int, _Heading], lines: list[str]) -> dict[int, _Heading]:
    """Of the lettered headings, only the appendices."""
    appendices = _appendices(found)
    return {i: h for i, h in found.items() if h.style != "lettered" or i in appendices}


def _appendices(found: dict[int, _Heading]) -> set[int]:
    """Appendices are lettered A, B, … after the last numbered section. A lone "A Handheld VR
    Device for …" is a reference entry; "A Survey of …" before section 1 is a title."""
    last_numbered = max((i for i, h in found.items() if h.style == "numbered"), default=-1)
    appendices = {i for i, h in found.items() if h.style == "lettered" and i > last_numbered}
    return appendices if len({found[i].name[0] for i in appendices}) >= 2 else set()


# Each pass takes the candidates left and the document's lines, and returns those it keeps. In
# this order: the references end the numbered sections that the longest run is looked for in,
# and the appendices come after the last numbered section that the run keeps.
_HeadingPass = Callable[[dict[int, _Heading], list[str]], dict[int, _Heading]]
_HEADING_PASSES: tuple[_HeadingPass, ...] = (
    _drop_numbered_after_references,
    _keep_longest_numbered_run,
    _keep_appendices,
)


def _run_rank(run: list[int]) -> tuple[int, int]:
    return len(run), run[0]


def _is_references(heading: _Heading) -> bool:
    return heading.title.lower() in ("references", "bibliography")


def _split_sections(text: str) -> list[_Section]:
    lines = text.split("\n")
    headings = _find_headings(lines)
    starts = list(headings)
    sections = []
    front = "\n".join(lines[: starts[0] if starts else len(lines)]).strip()
    if front:
        sections.append(_Section(FRONT_MATTER, front, _Kind.FRONT))
    back_matter = False  # past the references or an appendix heading
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=False):
        heading = headings[start]
        kind = _section_kind(heading, back_matter)
        back_matter = back_matter or kind is _Kind.APPENDIX or _is_references(heading)
        section_text = "\n".join(lines[start:end]).strip()
        sections.append(_Section(heading.name, section_text, kind))
    return sections


def _section_kind(heading: _Heading, back_matter: bool) -> _Kind:
    """What the section under ``heading`` is; past the back matter's start, all but references
    and acknowledgements are appendices."""
    if _DROPPED_TITLE.fullmatch(heading.title):
        return _Kind.DROPPED
    if back_matter or heading.style == "lettered":
        return _Kind.APPENDIX
    return next((kind for kind, words in _KIND_WORDS if words.search(heading.title)), _Kind.BODY)


def apply_budget(text: str, budget: int) -> tuple[str, list[str], list[str]]:
    """The text to send, at most ``budget`` characters, and the section names kept and dropped."""
    sections = _split_sections(text)
    candidates = [i for i, section in enumerate(sections) if section.kind is not _Kind.DROPPED]
    kept: dict[int, str] = {i: sections[i].text for i in candidates}
    if len("\n\n".join(kept.values())) > budget:
        if len(candidates) == 1:
            # No headings to go by: the abstract is at the start, the conclusion at the end.
            kept[candidates[0]] = _head_and_tail(sections[candidates[0]].text, budget)
        else:
            kept = _keep_by_priority(sections, candidates, budget)
    kept_text = "\n\n".join(kept[i] for i in sorted(kept))
    dropped = [section.name for i, section in enumerate(sections) if i not in kept]
    return kept_text, [sections[i].name for i in sorted(kept)], dropped


def _keep_by_priority(
    sections: list[_Section], candidates: list[int], budget: int
) -> dict[int, str]:
    priority = {i: sections[i].kind for i in candidates}
    stand_in = None
    if _Kind.CONCLUSION not in priority.values():
        # Without a conclusion, the last main section usually holds the closing discussion.
        main = [i for i in candidates if priority[i] in (_Kind.INTRODUCTION, _Kind.BODY)]
        if main:
            stand_in = main[-1]
            priority[stand_in] = _Kind.CONCLUSION
    kept: dict[int, str] = {}
    room = budget + 2  # each kept section costs its length and a 2-character separator
    for index in sorted(candidates, key=lambda i: (priority[i], i)):
        whole = sections[index].text
        if len(whole) + 2 <= room:
            kept[index] = whole
        elif room - 2 < _MIN_CUT_CHARS:
            continue
        elif index == stand_in:
            kept[index] = _head_and_tail(whole, room - 2, _STAND_IN_HEAD_SHARE)
        else:
            kept[index] = _head(whole, room - 2 - len(CUT_MARK) - 1) + " " + CUT_MARK
        room -= len(kept[index]) + 2
    return kept


def _head_and_tail(text: str, budget: int, head_share: float = _HEAD_SHARE) -> str:
    separator = f"\n{CUT_MARK}\n"
    head = _head(text, int(budget * head_share))
    tail = _tail(text, budget - len(head) - len(separator))
    return head + separator + tail if head and tail else _head(text, budget)


def _head(text: str, limit: int) -> str:
    """The start of ``text`` in ``limit`` characters or fewer, ending at the end of a paragraph,
    a sentence or a word when one falls in the second half."""
    if len(text) <= limit:
        return text
    window = text[: max(limit, 0)]
    for boundary in (r"\n\n", r"[.!?](?=\s)", r"\s"):
        ends = [match.end() for match in re.finditer(boundary, window)]
        if ends and ends[-1] >= limit // 2:
            return window[: ends[-1]].rstrip()
    return window


def _tail(text: str, limit: int) -> str:
    """The end of ``text`` in ``limit`` characters or fewer, starting at the start of a
    paragraph, a sentence or a word when one falls in the first half."""
    if limit <= 0:
        return ""
    window = text[-limit:]
    for boundary in (r"\n\n", r"[.!?]\s", r"\s"):
        match = re.search(boundary, window[: limit // 2])
        if match:
            return window[match.end() :].lstrip()
    return window


def _looks_like_title(value: str | None) -> bool:
    """Whether a metadata title or a first line is a title, not a file name or a placeholder."""
    if not value or len(value.split()) < 2 or len(value) > 300 or value.endswith("."):
        return False
    return not re.search(r"\.(pdf|tex|dvi|docx?|ps)$|^(microsoft word|untitled)", value, re.I)


def _guess_title(first_page: str) -> str | None:
    """The first line of the first page, and the second when the title clearly goes on there
    (authors' lines have commas, digits, footnote marks, or few words)."""
    lines = [line.strip() for line in first_page.split("\n") if line.strip()][:2]
    if not lines or _parse_heading(lines[0]) or not _looks_like_title(lines[0]):
        return None
    running_head = re.fullmatch(r"(.+) \d{1,4}", lines[0])  # "Table Structure Recognition 9"
    if running_head:
        return running_head[1]
    if len(lines) == 2 and _title_goes_on(*lines):
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def _title_goes_on(first: str, second: str) -> bool:
    """Whether the second line of a title page continues the title on the first: the first
    stops mid-phrase, or the second is not an authors' line."""
    return (
        first.endswith(":")
        or _FUNCTION_WORD.fullmatch(first.split()[-1]) is not None
        or second[0].islower()
        or (len(second.split()) >= 4 and not re.search(r"[,\d∗*†‡§¶@]", second))
    )


def start_workers(extractor: Extractor = "pypdf") -> ProcessPoolExecutor:
    """Worker processes for ``extract_pdf``, starting now.

    pypdf is pure Python: in a thread it would hold the GIL that the event loop needs to keep
    the other papers' requests moving, so extraction runs in processes. A worker takes about
    half a second to start and import the extractor; started early, that overlaps with what
    the run does before its first PDF arrives. Spawned, not forked: the parent has threads.
    """
    pool = ProcessPoolExecutor(
        max_workers=EXTRACT_WORKERS,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), extractor),
    )
    # Each submit to a pool with no idle worker starts one. SIGINT is blocked while they are
    # started: a worker inherits the mask, so a Ctrl-C that comes while it is still importing
    # (before its initializer ignores the signal) cannot end it with a traceback either. This
    # process gets the signal as soon as the mask is restored. Blocked after the pool is made,
    # not before: making it may start multiprocessing's resource tracker, which unblocks SIGINT
    # once it is started.
    with _sigint_blocked():
        for _ in range(EXTRACT_WORKERS):
            pool.submit(os.getpid)
    return pool


@contextlib.contextmanager
def _sigint_blocked() -> Iterator[None]:
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks, no SIGINT to block
        yield
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _start_worker(parent_pid: int, extractor: Extractor = "pypdf") -> None:
    """Initializer of an extraction worker process: ignore Ctrl-C, load the extractor, and end
    the worker when its parent is gone.

    A terminal sends Ctrl-C's SIGINT to every process of its foreground group, the workers
    included. Left to Python's default, each would die with a KeyboardInterrupt traceback;
    the parent is the one that stops the run, and it stops the workers itself.

    A process pool's workers wait on a queue whose write end they hold themselves, so a parent
    killed with SIGKILL (cron's timeout, an OOM kill) would leave them behind for good.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if extractor == "pypdfium2":
        with contextlib.suppress(ImportError):  # if missing, extract_pdf says what to install
            import pypdfium2  # noqa: F401  (loaded now, not on the first paper)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()
