"""The pipeline: each paper through fetch → extract → summarize, and a day's files from them.

Papers run concurrently (up to ``concurrency`` at a time) and each one's failure is its own:
it is recorded with its reason and the others go on. Only an LLM configuration error (a
refused key, an unknown model) stops the papers that have not reached the LLM yet, since
none of them could succeed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx2

from digest.errors import LLMConfigError
from digest.extract import ExtractionFailed, extract_pdf
from digest.fetch import ArxivMetadata, DownloadFailed, MetadataError, PaperMetadata, PdfDownloader
from digest.models import Day, Links, PaperEntry, Provenance
from digest.prompts import PROMPT_VERSION
from digest.render import render_day
from digest.settings import Settings
from digest.sources import ArxivRef, LocalPdf
from digest.store import OutputStore, atomic_write_text
from digest.summarize import PaperText, Sleep, Summarizer, SummaryFailed, make_client


@dataclass
class PaperResult:
    """What became of one paper: its entry, or the reason it failed."""

    ref: ArxivRef | LocalPdf
    entry: PaperEntry | None = None
    error: str | None = None
    reused: bool = False


class Pipeline:
    """The clients of one run, shared by all its papers. Use as ``async with Pipeline(…)``."""

    def __init__(self, settings: Settings, sleep: Sleep = asyncio.sleep) -> None:
        self.settings = settings
        self.sleep = sleep
        self.fatal: LLMConfigError | None = None

    async def __aenter__(self) -> Pipeline:
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(self.settings.http_timeout),
            headers={"user-agent": "digest (https://github.com/; arXiv digests)"},
        )
        self.llm = make_client(self.settings)
        self.metadata = ArxivMetadata(self.settings)
        self.downloader = PdfDownloader(self.settings, self.http, self.sleep)
        self.summarizer = Summarizer(self.settings, self.llm, self.sleep)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.http.aclose()
        await self.llm.close()

    async def digest_arxiv(self, refs: list[ArxivRef]) -> list[PaperResult]:
        """Every paper of ``refs``, in their order; one arXiv API query for all of them."""
        try:
            found = await self.metadata.lookup(refs)
        except MetadataError as error:
            return [PaperResult(ref, error=str(error)) for ref in refs]
        return list(
            await asyncio.gather(*(self._one_arxiv(ref, found.get(ref.arxiv_id)) for ref in refs))
        )

    async def digest_local_pdf(self, pdf: LocalPdf) -> PaperResult:
        async with self._slots:
            started = time.monotonic()
            try:
                extracted = await asyncio.to_thread(
                    extract_pdf, pdf.path.read_bytes(), self.settings.text_budget
                )
            except ExtractionFailed as error:
                return PaperResult(
                    pdf, error=f"{error.reason}; a local PDF has no arXiv abstract to fall back on"
                )
            paper = PaperText(
                arxiv_id=None,
                title=extracted.title or pdf.path.stem,
                authors=[],
                input="full-text",
                content=extracted.text,
            )
            return await self._summarize(pdf, paper, None, Links(), started)

    async def _one_arxiv(self, ref: ArxivRef, metadata: PaperMetadata | None) -> PaperResult:
        if metadata is None:
            return PaperResult(ref, error="not found on arXiv")
        if metadata.withdrawn:
            return PaperResult(ref, error="withdrawn on arXiv")
        async with self._slots:
            started = time.monotonic()
            pinned = ArxivRef(ref.arxiv_id, ref.version or metadata.version)
            paper = await self._read(pinned, metadata)
            links = Links.for_arxiv(ref.arxiv_id)
            return await self._summarize(pinned, paper, metadata, links, started)

    async def _read(self, ref: ArxivRef, metadata: PaperMetadata) -> PaperText:
        """The full text when the PDF gives one, else the abstract with the reason why."""
        base = {"arxiv_id": ref.arxiv_id, "title": metadata.title, "authors": metadata.authors}
        try:
            data = await self.downloader.fetch(ref)
            extracted = await asyncio.to_thread(extract_pdf, data, self.settings.text_budget)
        except (DownloadFailed, ExtractionFailed) as error:
            reason = error.reason if isinstance(error, ExtractionFailed) else str(error)
            return PaperText(
                **base, input="abstract", input_reason=reason, content=metadata.abstract
            )
        return PaperText(**base, input="full-text", content=extracted.text)

    async def _summarize(
        self,
        ref: ArxivRef | LocalPdf,
        paper: PaperText,
        metadata: PaperMetadata | None,
        links: Links,
        started: float,
    ) -> PaperResult:
        if self.fatal:
            return PaperResult(ref, error=str(self.fatal))
        try:
            summary = await self.summarizer.summarize(paper)
        except SummaryFailed as error:
            return PaperResult(ref, error=str(error))
        except LLMConfigError as error:
            self.fatal = error
            return PaperResult(ref, error=str(error))
        provenance = Provenance(
            source="llm",
            model=self.settings.model,
            prompt_version=PROMPT_VERSION,
            input=paper.input,
            input_reason=paper.input_reason,
            input_chars=len(paper.content),
            tokens_in=summary.usage.tokens_in,
            tokens_out=summary.usage.tokens_out,
            tokens_cached=summary.usage.tokens_cached,
            attempts=summary.attempts,
            seconds=round(time.monotonic() - started, 3),
            cost_usd=round(summary.usage.cost_usd(self.settings), 6),
        )
        entry = PaperEntry(
            arxiv_id=paper.arxiv_id,
            version=metadata.version if metadata else None,
            title=paper.title,
            authors=paper.authors,
            links=links,
            digest=summary.digest,
            provenance=provenance,
        )
        if isinstance(ref, ArxivRef) and ref.version:
            entry.version = ref.version
        return PaperResult(ref, entry=entry)


@dataclass
class DayRun:
    day: Day
    results: list[PaperResult]
    post: Path | None
    fatal: LLMConfigError | None


async def run_ids_day(
    settings: Settings,
    refs: list[ArxivRef],
    date: dt.date,
    *,
    force: bool,
    sleep: Sleep = asyncio.sleep,
) -> DayRun:
    """Digest ``refs`` for ``date`` and write the day file and post with every paper that worked.

    Papers already in the day file (same ID, and same version when one was asked for) are kept
    as they are unless ``force``; a failed paper is left out and reported.
    """
    store = OutputStore(settings.output_dir)
    existing = store.load_day(date) if store.data_path(date).exists() else None
    done = {} if force or existing is None else {p.arxiv_id: p for p in existing.papers}

    def reusable(ref: ArxivRef) -> PaperEntry | None:
        entry = done.get(ref.arxiv_id)
        return entry if entry and (ref.version is None or ref.version == entry.version) else None

    todo = [ref for ref in refs if reusable(ref) is None]
    async with Pipeline(settings, sleep) as pipeline:
        fresh = {result.ref.arxiv_id: result for result in await pipeline.digest_arxiv(todo)}  # type: ignore[union-attr]
        fatal = pipeline.fatal
    results = []
    for ref in refs:
        entry = reusable(ref)
        results.append(PaperResult(ref, entry=entry, reused=True) if entry else fresh[ref.arxiv_id])

    day = existing if existing is not None else settings.new_day(date)
    day = day.model_copy(update={"papers": [r.entry for r in results if r.entry is not None]})
    post = None
    if day.papers:
        store.save_day(day)
        post = store.post_path(date)
        atomic_write_text(post, render_day(day))
    return DayRun(day, results, post, fatal)
