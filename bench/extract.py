"""Benchmark: the extract stage with each extractor over the PDFs of a corpus.

For every paper and extractor it prints the speed (best of ``--repeat`` runs), the characters
at each step, whether the budgeted text still holds the abstract and the conclusion, and the
sections kept. The abstract and the conclusion are found in the paper's whole text by the same
heading rules that the budget uses; "-" means the paper has none (a single page, say). For a
paper without a conclusion, the budget treats its last main section as one, and the closing
words of that section are what must survive. Each budget gets a table of its own: by default
the setting's default and a tight one that forces cuts. pypdfium2 is skipped, with a note, when
it is not installed.

    python bench/extract.py [--corpus /work/shared/corpus/papers] [--budget 40000 ...] [--repeat 3]

``--identity`` prints instead the identity check's scores (digest/text/identity.py): every paper's
text against every paper's title and abstract (tests/data/corpus_metadata.json) and against the
Zen of Python printout, with the lowest right pairing, the highest wrong one and the margin.

    python bench/extract.py --identity [--corpus /work/shared/corpus/papers]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from digest.errors import ExtractionFailed, ExtractionUnavailable  # noqa: E402
from digest.text.extract import (  # noqa: E402
    EXTRACTORS,
    FRONT_MATTER,
    ExtractedText,
    Extractor,
    _Kind,
    _split_sections,
    extract_pdf,
)
from digest.text.identity import MATCH_THRESHOLD, identity  # noqa: E402

CORPUS = Path("/work/shared/corpus/papers")
WHOLE = 10**9  # a budget that keeps every section
DEFAULT_BUDGETS = (40_000, 12_000)  # the setting's default, and one that cuts every paper
PROBE_CHARS = 60  # this much of a section's first line after its heading shows it was kept
SECTION_CHARS = 14  # each kept section name is shortened to this in the table


@dataclass(frozen=True)
class Probes:
    """The opening words of the abstract and of the conclusion, when the paper has them."""

    abstract: str | None
    conclusion: str | None


def find_probes(whole_text: str) -> Probes:
    """The starts of the abstract and the conclusion in a paper's unbudgeted text."""
    sections = _split_sections(whole_text)
    if len(sections) < 2:
        return Probes(None, None)  # no headings: no telling where either is
    named = next((s for s in sections if s.name.lower() == "abstract"), None)
    if named:
        abstract = _body_start(named.text)
    else:
        # REVTeX sets the abstract without a heading, at the end of the front matter.
        abstract = sections[0].text[-PROBE_CHARS:] if sections[0].name == FRONT_MATTER else None
    closing = [s for s in sections if s.kind is _Kind.CONCLUSION]  # also Discussion, Summary…
    closing = [s for s in closing if "conclu" in s.name.lower()] or closing
    if closing:
        return Probes(abstract, _body_start(closing[-1].text))
    # No conclusion: the last main section stands in, and its closing words are what count.
    main = [s for s in sections if s.kind in (_Kind.INTRODUCTION, _Kind.BODY)]
    return Probes(abstract, main[-1].text[-PROBE_CHARS:] if main else None)


def _body_start(section_text: str) -> str | None:
    """The first characters after a section's heading line."""
    body = section_text.partition("\n")[2].strip()
    return body[:PROBE_CHARS] or None


def mark(probe: str | None, text: str) -> str:
    if probe is None:
        return "-"
    return "yes" if probe in text else "NO"


def shorten(names: list[str]) -> str:
    return ", ".join(
        name if len(name) <= SECTION_CHARS else name[: SECTION_CHARS - 1] + "…" for name in names
    )


def timed(data: bytes, budget: int, extractor: Extractor, repeat: int) -> ExtractedText:
    """The extraction with the shortest wall time of ``repeat`` runs."""
    runs = [extract_pdf(data, budget, extractor) for _ in range(repeat)]
    return min(runs, key=lambda run: run.seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--budget", type=int, action="append", help="repeatable")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--identity", action="store_true", help="the identity check's margin")
    options = parser.parse_args()

    papers = sorted(options.corpus.glob("*.pdf"))
    if not papers:
        sys.exit(f"no PDFs in {options.corpus}")
    if options.identity:
        identity_report(papers)
        return
    for budget in options.budget or DEFAULT_BUDGETS:
        report(papers, budget, options.repeat)


def identity_report(papers: list[Path]) -> None:
    """Each text against each paper's metadata: right pairings must pass, wrong ones fail."""
    metadata = json.loads((REPO / "tests/data/corpus_metadata.json").read_text(encoding="utf-8"))
    texts = {
        path.name: extract_pdf(path.read_bytes(), 40_000).text
        for path in papers
        if path.name in metadata
    }
    zen = REPO / "tests/data/pdfs/corrupted-streams-zen.pdf"
    texts["zen (printout)"] = extract_pdf(zen.read_bytes(), 40_000).text
    right, wrong = [], []
    print(f"{'text':<26} {'metadata of':<26} {'title':>6} {'abstr.':>6} {'score':>6}")
    for text_name, text in texts.items():
        for meta_name, meta in metadata.items():
            found = identity(meta["title"], meta["abstract"], text)
            (right if text_name == meta_name else wrong).append((found.score, text_name, meta_name))
            if text_name == meta_name or found.score >= 0.1:
                mark = "" if text_name == meta_name else "  (wrong pairing)"
                print(
                    f"{text_name:<26} {meta_name:<26} {found.title:>6.2f} {found.abstract:>6.2f} "
                    f"{found.score:>6.2f}{mark}"
                )
    low, high = min(right), max(wrong)
    print(f"\nlowest right pairing:  {low[0]:.3f} ({low[1]})")
    print(f"highest wrong pairing: {high[0]:.3f} ({high[1]} with the metadata of {high[2]})")
    print(f"threshold {MATCH_THRESHOLD}; margin {low[0] - high[0]:.3f}")
    print(f"{len(right)} right pairings, {len(wrong)} wrong ones (wrong ones under 0.10 not shown)")


def report(papers: list[Path], budget: int, repeat: int) -> None:
    """One table: every paper with every extractor, cut to ``budget`` characters."""
    print(f"{len(papers)} papers from {papers[0].parent}, budget {budget:,} characters,")
    print(f"best of {repeat} runs each\n")
    header = (
        f"{'paper':<24} {'extractor':<9} {'pages':>5} {'seconds':>8} {'pages/s':>8} "
        f"{'raw':>7} {'clean':>7} {'kept':>6} {'abstr':>5} {'concl':>5}  kept sections"
    )
    print(header)
    print("-" * len(header))

    totals: dict[Extractor, tuple[int, float]] = {}
    sections: dict[Extractor, list[list[str]]] = {}
    skipped: dict[Extractor, str] = {}
    for path in papers:
        data = path.read_bytes()
        for extractor in EXTRACTORS:
            if extractor in skipped:
                continue
            try:
                # Also a warm-up: the first pypdfium2 call loads the library.
                probes = find_probes(extract_pdf(data, WHOLE, extractor).text)
                result = timed(data, budget, extractor, repeat)
            except ExtractionUnavailable as error:
                skipped[extractor] = str(error)
                continue
            except ExtractionFailed as error:
                print(f"{path.stem[:24]:<24} {extractor:<9} failed: {error.reason}")
                continue
            pages, seconds = totals.get(extractor, (0, 0.0))
            totals[extractor] = (pages + result.pages, seconds + result.seconds)
            sections.setdefault(extractor, []).append(result.kept_sections)
            print(
                f"{path.stem[:24]:<24} {extractor:<9} {result.pages:>5} {result.seconds:>8.3f} "
                f"{result.pages / max(result.seconds, 1e-6):>8.0f} {result.chars_raw:>7,} "
                f"{result.chars_clean:>7,} {result.chars_kept:>6,} "
                f"{mark(probes.abstract, result.text):>5} "
                f"{mark(probes.conclusion, result.text):>5}  {shorten(result.kept_sections)}"
            )

    print()
    for extractor, (pages, seconds) in totals.items():
        print(f"{extractor:<9} {pages} pages / {seconds:.2f} s = {pages / seconds:.0f} pages/s")
    for extractor, reason in skipped.items():
        print(f"{extractor:<9} skipped: {reason}")
    if len(sections) == len(EXTRACTORS):
        same = sum(a == b for a, b in zip(*sections.values(), strict=True))
        print(f"kept sections the same for both extractors on {same} of {len(papers)} papers")
    print()


if __name__ == "__main__":
    main()
