from __future__ import annotations

import functools
import logging
import random
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pypdf import PdfReader

from digest.errors import ExtractionFailed, ExtractionUnavailable
from digest.text import extract
from digest.text.extract import (
    CUT_MARK,
    EXTRACTORS,
    ExtractedText,
    Extractor,
    _as_pypdf_text,
    _parse_heading,
    apply_budget,
    check_pdf_bytes,
    clean_text,
    extract_pdf,
)
from tests.conftest import DATA, REPO

PDFS = DATA / "pdfs"
REVTEX = PDFS / "0908.0054v1.pdf"  # 4 pages, Roman headings, no "Abstract" or "References"
ABSTRACT_START = "In this work we report the cosmological effects"
CONCLUSION_START = "A universe dominated by Ultra Light Bosonic Dark Matter"
CONCLUSION_END = "should be still satisfied in a condensate\nstate, or not."
DPR = PDFS / "2004.04906v3.pdf"  # 13 pages, ACL two columns, appendices after the references


def read(name: str) -> bytes:
    return (PDFS / name).read_bytes()


def extracted(pdf: Path, budget: int, extractor: Extractor = "pypdf") -> ExtractedText:
    """``extract_pdf`` of a file, for the tests that check its result: the same file, budget
    and extractor give the same text, so they share one extraction (pypdf takes about a
    second for a long paper). The tests of how it reads call ``extract_pdf`` themselves."""
    return _extracted(pdf, budget, extractor).model_copy(deep=True)


@functools.cache
def _extracted(pdf: Path, budget: int, extractor: Extractor) -> ExtractedText:
    return extract_pdf(pdf.read_bytes(), budget, extractor)


@pytest.fixture(params=EXTRACTORS)
def extractor(request: pytest.FixtureRequest) -> Extractor:
    """Each extractor in turn; pypdfium2 (the "fast" extra, in "dev" too) only if installed."""
    if request.param == "pypdfium2":
        pytest.importorskip("pypdfium2")
    return request.param


# --- broken and unusable PDFs


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("not-a-pdf-text.pdf", "not a PDF (no %PDF- header)"),
        ("encrypted-2206.01062_pg3.pdf", "encrypted"),
        ("empty-page.pdf", "image-only or empty (0 characters on 1 page)"),
        ("scanned-image-only.pdf", "image-only or empty (0 characters on 1 page)"),
    ],
)
def test_unusable_pdfs_fail_with_a_reason(name: str, reason: str, extractor: Extractor) -> None:
    with pytest.raises(ExtractionFailed) as failure:
        extract_pdf(read(name), 10_000, extractor)
    assert failure.value.reason == reason
    assert str(failure.value) == reason


def test_a_truncated_download_fails_before_it_is_read(extractor: Extractor) -> None:
    data = REVTEX.read_bytes()
    with pytest.raises(ExtractionFailed, match=r"^truncated \(no %%EOF marker\)$"):
        extract_pdf(data[: len(data) // 2], 10_000, extractor)


def test_a_pdf_with_damaged_streams_still_gives_its_text(extractor: Extractor) -> None:
    result = extract_pdf(read("corrupted-streams-zen.pdf"), 10_000, extractor)
    assert result.text.startswith("Beautiful is better than ugly.\nExplicit is better than")
    assert result.pages == 1
    assert result.title is None  # its metadata title is a file name: 'zen_of_python.txt'


def test_junk_before_the_header_is_allowed_up_to_1024_bytes() -> None:
    data = REVTEX.read_bytes()
    check_pdf_bytes(b"\0" * 1024 + data)
    assert extract_pdf(b"junk\n" + data, 3_000).pages == 4
    with pytest.raises(ExtractionFailed, match="no %PDF- header"):
        check_pdf_bytes(b"\0" * 1025 + data)


@pytest.mark.parametrize(
    ("extractor", "error"), [("pypdf", "PdfReadError"), ("pypdfium2", "PdfiumError")]
)
def test_a_reader_error_becomes_extraction_failed(extractor: Extractor, error: str) -> None:
    if extractor == "pypdfium2":
        pytest.importorskip("pypdfium2")
    with pytest.raises(ExtractionFailed, match=rf"^unreadable PDF \({error}: .+\)$"):
        extract_pdf(b"%PDF-1.4\n%%EOF\n", 10_000, extractor)


@pytest.mark.parametrize("error", [ValueError("bad"), KeyError("/Root"), RecursionError()])
def test_other_errors_from_pypdf_become_extraction_failed(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    def broken_reader(*args: object, **kwargs: object) -> None:
        raise error

    monkeypatch.setattr(extract, "PdfReader", broken_reader)
    with pytest.raises(ExtractionFailed, match=rf"^unreadable PDF \({type(error).__name__}"):
        extract_pdf(REVTEX.read_bytes(), 10_000)


@pytest.mark.slow
def test_damaged_bytes_never_raise_anything_but_extraction_failed(extractor: Extractor) -> None:
    original = REVTEX.read_bytes()
    chance = random.Random(20240801)
    outcomes = set()
    for _ in range(40):
        data = bytearray(original)
        for _ in range(chance.choice([1, 20, 200])):
            data[chance.randrange(len(data))] = chance.randrange(256)
        try:
            extract_pdf(bytes(data), 3_000, extractor)
            outcomes.add("extracted")
        except ExtractionFailed:
            outcomes.add("failed")
    assert outcomes == {"extracted", "failed"}  # the damage really broke some of them


@pytest.fixture
def pypdf_logger() -> Iterator[logging.Logger]:
    """The "pypdf" logger, its level put back after the test."""
    logger = logging.getLogger("pypdf")
    level = logger.level
    yield logger
    logger.setLevel(level)


def test_pypdf_warnings_are_silenced_and_the_logger_restored(
    caplog: pytest.LogCaptureFixture, pypdf_logger: logging.Logger
) -> None:
    pypdf_logger.setLevel(logging.WARNING)
    data = REVTEX.read_bytes()
    damaged = data.replace(b"startxref\n175779", b"startxref\n175000")  # repaired, with warnings
    assert damaged != data
    with caplog.at_level(logging.WARNING):
        assert extract_pdf(damaged, 3_000).pages == 4
    assert [record for record in caplog.records if record.name.startswith("pypdf")] == []
    assert pypdf_logger.level == logging.WARNING


# --- a real paper under a budget


def test_a_tight_budget_keeps_the_abstract_and_the_conclusion(extractor: Extractor) -> None:
    result = extracted(REVTEX, 6_000, extractor)
    assert result.extractor == extractor
    assert result.chars_kept == len(result.text) <= 6_000
    assert ABSTRACT_START in result.text
    assert CONCLUSION_START in result.text
    assert result.text.endswith(CONCLUSION_END)
    assert result.kept_sections == ["front matter", "I. INTRODUCTION", "IV. CONCLUSIONS"]
    assert result.dropped_sections == [
        "II. ULTRA LIGHT BOSONS AS DARK MATTER",
        "III. TESTING WITH THE CMB",
        "Acknowledgements",
        "References",
    ]
    assert "I. INTRODUCTION\nIt has been argued" in result.text
    assert f"[14]. {CUT_MARK}\n\nIV. CONCLUSIONS" in result.text
    assert "[1] Hu W." not in result.text


def test_a_big_budget_keeps_the_whole_body_but_not_the_references() -> None:
    result = extracted(REVTEX, 100_000)
    body_end = result.text.index(CONCLUSION_END) + len(CONCLUSION_END)
    assert body_end == len(result.text)
    assert CUT_MARK not in result.text
    assert result.kept_sections == [
        "front matter",
        "I. INTRODUCTION",
        "II. ULTRA LIGHT BOSONS AS DARK MATTER",
        "III. TESTING WITH THE CMB",
        "IV. CONCLUSIONS",
    ]
    assert result.dropped_sections == ["Acknowledgements", "References"]
    assert "We would like to thank" not in result.text
    assert "Phys. Rev. Lett." not in result.text
    assert (result.pages, result.chars_raw) == (4, 16_059)
    assert result.chars_kept < result.chars_clean < result.chars_raw
    assert result.title == "Ultra light bosonic dark matter and CMB"


def test_a_page_without_top_level_headings_keeps_its_start_and_its_end(
    extractor: Extractor,
) -> None:
    result = extracted(PDFS / "2305.03393v1-pg9.pdf", 1_000, extractor)
    head, tail = result.text.split(f"\n{CUT_MARK}\n")
    assert head.startswith("Optimized Table Tokenization for Table Structure Recognition 9\n")
    assert tail.endswith("which is a result of the reduced sequence representation.")
    assert result.chars_kept <= 1_000
    assert result.title == "Optimized Table Tokenization for Table Structure Recognition"


@pytest.mark.slow  # extracts whole corpus papers
@pytest.mark.parametrize(
    ("name", "budget", "abstract", "conclusion", "reference"),
    [
        (
            "0908.0054v1.pdf",
            6_000,
            f"Mexico.\n{ABSTRACT_START}",  # REVTeX: the abstract ends the front matter, no heading
            f"IV. CONCLUSIONS\n{CONCLUSION_START}",
            "[1] Hu W.",
        ),
        (
            "2004.04906v3.pdf",
            12_000,
            "Abstract\nOpen-domain question answering relies on efficient passage retrieval",
            "8 Conclusion\nIn this work, we demonstrated that dense retrieval",
            "Akari Asai, Kazuma Hashimoto",
        ),
        (
            "2203.00274v2.pdf",  # ACL two columns, A4
            12_000,
            "Abstract\nUnderstanding tables is an important aspect of",
            "7 Conclusion\nIn this paper, we identified the vulnerability of",
            "Joshua Ainslie, Santiago Ontanon",
        ),
        (
            # NeurIPS, one column, pages 1-11 of 26: no conclusion heading, so the last section
            # stands in, and its closing "Discussion." paragraph is what must survive.
            "1906.08632v2-pp1-11.pdf",
            12_000,
            "Abstract\nDeep neural networks achieve stellar generalisation even when they have",
            "additional hidden unit instead of increasing it\nlike in the SCM.",
            "[1] Y. LeCun, Y. Bengio",
        ),
    ],
)
def test_a_paper_cut_to_its_budget_keeps_abstract_and_conclusion_but_no_references(
    name: str, budget: int, abstract: str, conclusion: str, reference: str, extractor: Extractor
) -> None:
    result = extracted(PDFS / name, budget, extractor)
    assert result.chars_kept == len(result.text) <= budget
    assert result.chars_clean > 2 * budget  # the budget had to cut
    assert abstract.split("\n")[-1] in result.text
    assert conclusion in result.text
    assert "References" in result.dropped_sections
    assert reference not in result.text
    assert "\nReferences\n" not in result.text


@pytest.mark.slow  # 0.5 s or more
def test_a_last_section_standing_in_for_the_conclusion_keeps_its_heading_and_its_end(
    extractor: Extractor,
) -> None:
    result = extracted(PDFS / "1906.08632v2-pp1-11.pdf", 12_000, extractor)
    assert result.kept_sections[-1].startswith("3 Training both layers")
    last = result.text.split("\n\n3 Training both layers")[1]
    head, tail = last.split(f"\n{CUT_MARK}\n")
    assert len(head) < len(tail)  # mostly its end: the closing remarks
    assert tail.endswith("like in the SCM.")
    assert result.text.endswith(tail)


def test_a_long_paper_keeps_its_front_intro_and_conclusion_and_drops_the_rest(
    extractor: Extractor,
) -> None:
    result = extracted(DPR, 12_000, extractor)
    assert result.kept_sections == [
        "front matter",
        "Abstract",
        "1 Introduction",
        "3 Dense Passage Retriever (DPR)",
        "8 Conclusion",
    ]
    assert result.dropped_sections[-6:] == [
        "Acknowledgments",
        "References",
        "A Distant Supervision",
        "B Alternative Similarity Functions &",
        "C Qualitative Analysis",
        "D Joint Training of Retriever and",
    ]
    assert result.text.endswith("open-domain question answering benchmarks.")
    assert result.pages == 13
    assert result.title == "Dense Passage Retrieval for Open-Domain Question Answering"


@pytest.mark.slow  # extracts whole corpus papers
@pytest.mark.parametrize(
    ("paper", "budget"), [(REVTEX, 6_000), (REVTEX, 100_000), (DPR, 12_000), (DPR, 100_000)]
)
def test_both_extractors_keep_the_same_sections_and_about_as_much_text(
    paper: Path, budget: int
) -> None:
    pytest.importorskip("pypdfium2")
    pypdf, pdfium = (extracted(paper, budget, extractor) for extractor in EXTRACTORS)
    assert (pdfium.extractor, pypdf.extractor) == ("pypdfium2", "pypdf")
    assert pdfium.kept_sections == pypdf.kept_sections
    assert pdfium.dropped_sections == pypdf.dropped_sections
    assert abs(pdfium.chars_kept - pypdf.chars_kept) <= 0.05 * pypdf.chars_kept
    assert abs(pdfium.chars_clean - pypdf.chars_clean) <= 0.05 * pypdf.chars_clean
    assert (pdfium.pages, pdfium.title) == (pypdf.pages, pypdf.title)


@pytest.mark.parametrize(
    "words",
    [
        "relies on efficient passage retrieval",  # PDFium: "ef\x02ficient"
        "by a simple dualencoder framework",  # "dual\x02encoder"; pypdf: "dual-\nencoder"
        "outperforms a strong Lucene-BM25 system",  # "Lucene\x02BM25"
        "is a Norwegian stage and screen actor",  # "Nor- ˚\nwegian": an accent from the line above
    ],
)
def test_pdfium_joins_hyphenated_words_as_pypdf_does(words: str) -> None:
    pytest.importorskip("pypdfium2")
    for extractor in EXTRACTORS:
        assert words in extracted(DPR, 100_000, extractor).text


@pytest.mark.slow
def test_pdfium_is_unavailable_without_the_fast_extra() -> None:
    # A fresh interpreter in which "import pypdfium2" fails, as where it is not installed.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["pypdfium2"] = None  # makes "import pypdfium2" raise ImportError
        from digest.text.extract import ExtractionFailed, ExtractionUnavailable, extract_pdf

        data = open(sys.argv[1], "rb").read()
        print(extract_pdf(data, 3_000).extractor)
        try:
            extract_pdf(data, 3_000, "pypdfium2")
        except ExtractionFailed:
            print("ExtractionFailed")
        except ExtractionUnavailable as error:
            print(f"ExtractionUnavailable: {error}")
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script, str(REVTEX)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines() == [
        "pypdf",
        "ExtractionUnavailable: the pypdfium2 extractor needs the 'fast' extra: "
        "pip install 'digest[fast]'",
    ]
    assert issubclass(ExtractionUnavailable, RuntimeError)
    assert not issubclass(ExtractionUnavailable, ExtractionFailed)  # not a bad PDF to skip


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "block_pdfium", "message"),
    [
        ("pypdfium2", True, "pypdfium2 is not installed: pip install 'digest[fast]'"),
        ("pdfminer", False, "DIGEST_EXTRACTOR"),
    ],
)
def test_an_extractor_setting_that_cannot_work_exits_2_naming_it(
    value: str, block_pdfium: bool, message: str, tmp_path: Path
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        if {block_pdfium}:
            sys.modules["pypdfium2"] = None  # as where it is not installed
        from digest.cli import main
        sys.argv = ["digest", "paper", sys.argv[1]]
        main()
        """
    )
    finished = subprocess.run(
        [sys.executable, "-c", script, str(REVTEX)],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "DIGEST_EXTRACTOR": value, "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 2, finished.stderr
    assert message in finished.stderr
    assert "Traceback" not in finished.stderr


def test_an_unknown_extractor_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown extractor 'pdfminer'; choose one of pypdf"):
        extract_pdf(REVTEX.read_bytes(), 3_000, "pdfminer")  # type: ignore[arg-type]


@pytest.mark.slow  # many extractions in threads
def test_pdfium_extractions_in_threads_take_turns() -> None:
    pytest.importorskip("pypdfium2")
    data = DPR.read_bytes()
    alone = extract_pdf(data, 12_000, "pypdfium2")
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: extract_pdf(data, 12_000, "pypdfium2"), range(8)))
    assert {result.text for result in results} == {alone.text}


# --- PDFium's text in pypdf's conventions


@pytest.mark.parametrize(
    ("pdfium", "clean"),
    [
        ("an ef\x02ficient method", "an efficient method"),
        ("an ef\x02\r\nficient method", "an efficient method"),
        ("see DeepSeek\x02R1 and Chain-of\x02Thought", "see DeepSeek-R1 and Chain-of-Thought"),
        ("a GPT\x02based model", "a GPT-based model"),
        ("f0(q)\r\n\x02\r\n1+ \x02(x)", "f0(q)\n\n1+ (x)"),  # a glyph without Unicode
        ("line one\r\nline two\r\n", "line one\nline two"),
        ("07000 M ´ exico D.F., M ´ exico. ´\r\nIn this", "07000 Mexico D.F., Mexico.\nIn this"),
        ("Baudis and ˇ Sediv ˇ y, Tim Rockt ¨ aschel", "Baudis and Sedivy, Tim Rocktaschel"),
        ("Barlas Oguz ˘\r\n∗", "Barlas Oguz\n∗"),
        ("Dan Mane. Con- ´\r\ncrete problems", "Dan Mane. Concrete problems"),
        ("x = a ^ b; y = `code`", "x = a ^ b; y = `code`"),
    ],
)
def test_pdfium_text_is_cleaned_like_pypdf_text(pdfium: str, clean: str) -> None:
    assert clean_text(_as_pypdf_text(pdfium)) == clean


def test_a_word_pdfium_hyphenated_at_a_page_end_is_joined_with_the_next_page() -> None:
    pages = [_as_pypdf_text("relies on ef\x02"), _as_pypdf_text("ficient retrieval")]
    assert pages[0] == "relies on ef-"
    assert clean_text("\n".join(pages)) == "relies on efficient retrieval"


# --- clean_text


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("e\ufb03cient \ufb01ne-tuning, \ufb02ow", "efficient fine-tuning, flow"),
        ("an ef-\nficient method", "an efficient method"),
        ("see DeepSeek-\nR1 and GPT-\n4o", "see DeepSeek-R1 and GPT-4o"),
        ("a GPT-\nbased model", "a GPT-based model"),
        ("results -\nThe model", "results -\nThe model"),
        ("Cold\x00 Start\x01\x10\x11\x12\x13 text", "Cold Start text"),
        ("bro\ufffdken \x0bchar", "broken char"),
        ("line one\r\nline two\fpage two", "line one\nline two\npage two"),
        ("Cosmic Mi-\narXiv:0908.0054v1  [astro-ph.CO]  1 Aug 2009\ncrowave", "Cosmic Microwave"),
        ("text\narXiv:2308.08155v2 [cs.AI] 3 Oct 2023\nmore", "text\nmore"),
        ("text\narXiv:hep-th/9901001v1  2 Jan 1999\nmore", "text\nmore"),
        ("text\narXiv:math.AG/0101001v2 15 Feb 2001\nmore", "text\nmore"),
        (
            "see arXiv:2308.08155v2 [cs.AI] 3 Oct 2023 for",
            "see arXiv:2308.08155v2 [cs.AI] 3 Oct 2023 for",
        ),
        ("a  b\t\tc   \nd \n\n\n\n\ne", "a b c\nd\n\ne"),
        ("Departamento de F´ısica, M´exico, Ure˜na", "Departamento de Física, México, Ureña"),
        ("  \n  padded  \n ", "padded"),
    ],
)
def test_clean_text(raw: str, clean: str) -> None:
    assert clean_text(raw) == clean


# --- headings


@pytest.mark.parametrize(
    ("line", "top_level"),
    [
        ("I. INTRODUCTION", True),
        ("II. ULTRA LIGHT BOSONS AS DARK MATTER", True),
        ("IV. CONCLUSIONS", True),
        ("Acknowledgements", True),
        ("ACKNOWLEDGMENTS", True),
        ("Abstract", True),
        ("ABSTRACT", True),
        ("1 Introduction", True),
        ("1. Introduction", True),
        ("1 INTRODUCTION", True),
        ("2 RELATED WORK", True),
        ("3 TABLEFORMER: Robust Structural", True),
        ("5. Conclusion, Limitations, and Future Work", True),
        ("1 Online learning in teacher-student neural networks", True),
        ("D Joint Training of Retriever and", True),
        ("8 Conclusion", True),
        ("References", True),
        ("REFERENCES", True),
        ("Appendix", True),
        ("A Distant Supervision", True),
        ("A Related Work", True),
        ("Conclusions and Future Work", True),
        ("2.3 Training", False),
        ("1.1. Contributions", False),
        ("B.1 General Guidelines for Using AutoGen", False),
        ("A. Contributions and Acknowledgments", False),
    ],
)
def test_real_headings_are_found(line: str, top_level: bool) -> None:
    heading = _parse_heading(line)
    assert heading is not None
    assert heading.name == line
    assert heading.top_level is top_level


@pytest.mark.parametrize(
    ("line", "number"),
    [
        ("I. INTRODUCTION", 1),
        ("IV. CONCLUSIONS", 4),
        ("VI. Results", 6),
        ("IX. Discussion", 9),
        ("XIV. Notes Here", 14),
        ("2.1 Data Sets", 2),
        ("12 Related Work", 12),
    ],
)
def test_a_heading_number_is_read_in_arabic_or_roman_numerals(line: str, number: int) -> None:
    heading = _parse_heading(line)
    assert heading is not None
    assert (heading.style, heading.number) == ("numbered", number)


@pytest.mark.parametrize(
    "line",
    [
        "2019. Latent retrieval for weakly supervised open",  # a reference entry
        "1. The vertical tube can be used for",  # instructions inside a figure
        "2. In order to observe the specimen",
        "2. Loosen the retention screw, then rotate",
        "1. There are two objectives. The lower",
        "22 August 2012 2012 full year result and final dividend announced",
        "C Q C D D",  # matrix labels
        "2 Center for Brain Science, Harvard University, Cambridge, MA 02138, USA",
        "2 Initiate Conversations:",
        "6.1.1 Global Citation Counts vs Reencountered Citations (D1,D3).",
        "Discussion. The qualitative difference be-",
        "Introduction and Related Work sections, we believe citations are",
        "1.2 Summary of Evaluation Results . . . . . . . . . . . . . . . 4",
        "1 Customizable and conversable agents. AutoGen uses a generic design of agents",
        "In this work we report the cosmological effects",
    ],
)
def test_false_headings_are_rejected(line: str) -> None:
    assert _parse_heading(line) is None


# --- apply_budget on synthetic papers


@pytest.fixture(scope="module")
def revtex_text() -> str:
    """The REVTeX paper's whole text, references included."""
    return clean_text("\n".join(page.extract_text() for page in PdfReader(REVTEX).pages))


def paragraph(word: str, sentences: int = 8) -> str:
    return " ".join(
        f"{word.capitalize()} sentence number {n} of the {word}." for n in range(sentences)
    )


PAPER = "\n".join(
    [
        "A Synthetic Paper",
        "Abstract",
        paragraph("abstract", 3),
        "1 Introduction",
        paragraph("introduction"),
        "2 Related Work",
        paragraph("related"),
        "3 Method",
        paragraph("method", 40),
        "3.1 Details",
        paragraph("details"),
        "4 Conclusion",
        paragraph("conclusion"),
        "Acknowledgments",
        "We thank the reviewers.",
        "References",
        "[1] A. Author. A paper. 2020.",
        "A Proofs",
        paragraph("proof"),
        "B More Results",
        paragraph("appendix"),
    ]
)


def test_everything_but_references_is_kept_when_it_fits() -> None:
    text, kept, dropped = apply_budget(PAPER, 100_000)
    assert kept == [
        "front matter",
        "Abstract",
        "1 Introduction",
        "2 Related Work",
        "3 Method",
        "4 Conclusion",
        "A Proofs",
        "B More Results",
    ]
    assert dropped == ["Acknowledgments", "References"]
    assert "3.1 Details\nDetails sentence" in text
    assert "reviewers" not in text
    assert "[1] A. Author" not in text
    assert CUT_MARK not in text


def test_appendices_go_first_when_the_budget_is_short() -> None:
    whole, _, _ = apply_budget(PAPER, 100_000)
    text, kept, dropped = apply_budget(PAPER, len(whole) - 1)
    assert kept[-2:] == ["A Proofs", "B More Results"]
    assert text.count(CUT_MARK) == 1
    assert text.endswith(CUT_MARK)
    without_appendices = whole.index("\n\nA Proofs")
    text, kept, dropped = apply_budget(PAPER, without_appendices + 100)
    assert dropped == ["Acknowledgments", "References", "A Proofs", "B More Results"]
    assert text == whole[:without_appendices]
    assert text.endswith(paragraph("conclusion"))


def test_a_section_that_does_not_fit_is_cut_at_a_sentence_and_marked() -> None:
    text, kept, dropped = apply_budget(PAPER, 2_000)
    assert kept == ["front matter", "Abstract", "1 Introduction", "3 Method", "4 Conclusion"]
    assert dropped == [
        "2 Related Work",
        "Acknowledgments",
        "References",
        "A Proofs",
        "B More Results",
    ]
    method = text.split("3 Method\n")[1].split("\n\n")[0]
    assert method.endswith(f"of the method. {CUT_MARK}")
    assert paragraph("conclusion") in text
    assert paragraph("abstract", 3) in text


@pytest.mark.parametrize("budget", [0, 1, 50, 199, 200, 450, 1_000, 1_999, 2_500, 4_000, 9_999])
def test_the_budget_is_never_exceeded(budget: int, revtex_text: str) -> None:
    for text in (PAPER, paragraph("plain", 300), revtex_text):
        kept_text, _, _ = apply_budget(text, budget)
        assert len(kept_text) <= budget


def test_text_without_headings_keeps_its_head_and_its_tail() -> None:
    text = "\n\n".join(paragraph(f"part{n}") for n in range(30))
    kept_text, kept, dropped = apply_budget(text, 3_000)
    head, tail = kept_text.split(f"\n{CUT_MARK}\n")
    assert text.startswith(head)
    assert text.endswith(tail)
    assert 1_500 < len(head) <= 2_100
    assert tail.startswith("Part") and tail.endswith("of the part29.")
    assert (kept, dropped) == (["front matter"], [])


def test_titles_contents_and_reference_entries_do_not_open_sections() -> None:
    text = "\n".join(
        [
            "A Survey of Synthetic Papers",  # a title, not appendix A
            "Contents",
            "1 Introduction 3",  # a table of contents, not the introduction
            "2 Conclusion 9",
            "1. Introduction",
            paragraph("introduction"),
            "2. Conclusion",
            paragraph("conclusion"),
            "References",
            "[1] B. Author. Another paper. 2021.",
            "A Handheld VR Device for Rendering Size and Stiffness",  # a reference entry
            "In Proceedings of CHI 2018.",
        ]
    )
    kept_text, kept, dropped = apply_budget(text, 100_000)
    assert kept == ["front matter", "1. Introduction", "2. Conclusion"]
    assert dropped == ["References"]
    assert kept_text.startswith("A Survey of Synthetic Papers\nContents\n1 Introduction 3\n")
    assert "Handheld" not in kept_text


def test_footnotes_and_affiliations_off_the_section_numbering_do_not_open_sections() -> None:
    text = "\n".join(
        [
            "Dynamics of Synthetic Papers",
            "1 Institute of Synthetic Studies",  # an affiliation
            "2 Center for Made Up Science",
            "Abstract",
            paragraph("abstract", 2),
            "1 Online learning in teacher-student networks",
            paragraph("introduction"),
            "3 We use the publicly available checkpoint",  # a footnote at a page's foot
            paragraph("introduction"),
            "2 Method",
            paragraph("method"),
            "3 Results",
            paragraph("results"),
            "4 Conclusion",
            paragraph("conclusion"),
        ]
    )
    _, kept, _ = apply_budget(text, 100_000)
    assert kept == [
        "front matter",
        "Abstract",
        "1 Online learning in teacher-student networks",
        "2 Method",
        "3 Results",
        "4 Conclusion",
    ]


@pytest.mark.slow  # many extractions in threads
def test_the_pypdf_logger_is_restored_after_extractions_in_threads(
    pypdf_logger: logging.Logger,
) -> None:
    pypdf_logger.setLevel(logging.INFO)
    data = REVTEX.read_bytes()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(lambda budget: extract_pdf(data, budget), range(1_000, 9_000, 1_000))
        )
    assert [result.pages for result in results] == [4] * 8
    assert pypdf_logger.level == logging.INFO
