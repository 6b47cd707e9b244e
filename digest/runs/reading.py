"""Reading a paper for the LLM: what arXiv says of it, its PDF, the PDF's text, and whether
that text is the paper's.

The full text when the PDF gives one; else the abstract, with the reason why (the PDF could
not be had, its text could not be read, or it is another document). A PDF that could not be
had for a passing reason marks the paper's entry ``full_text_pending``, so that a later run
reads it again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace

import httpx2

from digest import __version__
from digest.errors import DownloadFailed, ExtractionFailed, MetadataError
from digest.llm.summarize import PaperText
from digest.net import AsyncSleep
from digest.options import ExtractOptions, FetchOptions
from digest.runs.results import Progress, StageTimes
from digest.runs.workers import ExtractionWorkers
from digest.sources.fetch import ArxivLookup, ArxivMetadata, PdfDownloader
from digest.sources.links import first_known
from digest.sources.papers import ArxivRef, Candidate, LocalPdf, PaperMetadata
from digest.text.extract import ExtractedText
from digest.text.identity import WRONG_DOCUMENT, identity

log = logging.getLogger(__name__)


@dataclass
class Descriptions:
    """What the source and the arXiv API said of a run's papers."""

    known: dict[str, PaperMetadata] = field(default_factory=dict)  # the source's, by ID
    lookup: ArxivLookup = field(default_factory=ArxivLookup)
    error: MetadataError | None = None  # why the arXiv API could not be asked

    def of(self, ref: ArxivRef) -> PaperMetadata | MetadataError:
        """What is known of ``ref``: the source's word with arXiv's version and withdrawal
        (either alone), or why nothing is."""
        metadata = _merge(self.known.get(ref.arxiv_id), self.lookup.found.get(ref.arxiv_id))
        if metadata is None:
            return self.error or MetadataError(self.lookup.reason_missing(ref.arxiv_id))
        return metadata


class PaperReader:
    """The arXiv API client, the PDF host's and the extraction workers of one run. ``close``
    when done."""

    def __init__(
        self,
        fetch: FetchOptions,
        extract: ExtractOptions,
        text_budget: int,
        *,
        sleep: AsyncSleep,
        progress: Progress,
        workers: ProcessPoolExecutor | None = None,
    ) -> None:
        self.text_budget = text_budget  # characters of a paper's text the LLM is given
        self.progress = progress
        self.metadata = ArxivMetadata(fetch)
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(fetch.http_timeout),
            headers={"user-agent": f"digest/{__version__} (arXiv paper digests)"},
        )
        self.downloader = PdfDownloader(fetch, self.http, sleep)
        self._download_slots = asyncio.Semaphore(fetch.download_concurrency)
        self.workers = ExtractionWorkers(extract, workers)

    async def close(self) -> None:
        await self.http.aclose()
        self.workers.close()

    async def describe(self, candidates: list[Candidate]) -> Descriptions:
        """What the source said of each candidate, and the arXiv API, in one query, the rest.

        A candidate carries what its source already said of the paper (Hugging Face: title,
        abstract and authors, no version; an arXiv query: everything). When the API cannot be
        asked, a paper the source described is still digested, from a PDF without a version
        pin (version unknown).
        """
        known = {c.ref.arxiv_id: c.metadata for c in candidates if c.metadata is not None}
        needed = [c.ref for c in candidates if c.metadata is None or c.metadata.version is None]
        try:
            return Descriptions(known, await self.metadata.lookup(needed))
        except MetadataError as error:
            _warn_unpinned(error, sum(ref.arxiv_id in known for ref in needed))
            return Descriptions(known, error=error)

    async def read(self, ref: ArxivRef, metadata: PaperMetadata) -> tuple[PaperText, StageTimes]:
        """The full text when the PDF gives one, else the abstract with the reason why; and
        how long the download and the extraction took."""
        times = StageTimes()
        try:
            started = time.monotonic()
            async with self._download_slots:
                data = await self.downloader.fetch(ref)
            times = replace(times, download=time.monotonic() - started)
            self.progress.stage_done(str(ref), "download")
            started = time.monotonic()
            extracted = await self.workers.extract(data, self.text_budget)
            times = replace(times, extract=time.monotonic() - started)
            self.progress.stage_done(str(ref), "extract")
        except (DownloadFailed, ExtractionFailed) as error:
            pending = isinstance(error, DownloadFailed) and error.transient
            return _abstract_text(ref, metadata, error.reason, full_text_pending=pending), times
        return _checked_text(ref, metadata, extracted), times

    async def read_local(self, pdf: LocalPdf) -> tuple[PaperText, StageTimes]:
        """A local PDF's text, and how long its extraction took. It has no abstract to fall
        back on: ``ExtractionFailed`` when its text cannot be read."""
        started = time.monotonic()
        extracted = await self.workers.extract(pdf.path.read_bytes(), self.text_budget)
        return _local_paper_text(pdf, extracted), StageTimes(extract=time.monotonic() - started)

    async def paper_text(self, target: ArxivRef | LocalPdf) -> PaperText:
        """What the LLM would read for ``target``; PaperFailed when there is nothing to read."""
        if isinstance(target, LocalPdf):
            try:
                paper, _ = await self.read_local(target)
            except ExtractionFailed as error:
                raise ExtractionFailed(f"{target}: {error.reason}") from None
            return paper
        try:
            lookup = await self.metadata.lookup([target])
        except MetadataError as error:
            raise MetadataError(f"{target}: {error}") from None
        metadata = lookup.found.get(target.arxiv_id)
        if metadata is None:
            raise MetadataError(f"{target}: {lookup.reason_missing(target.arxiv_id)}")
        pinned = ArxivRef(target.arxiv_id, target.version or metadata.version)
        paper, _ = await self.read(pinned, metadata)
        return paper


def _warn_unpinned(error: MetadataError, described: int) -> None:
    """The arXiv API could not be asked: the ``described`` papers go on without a version."""
    if described:
        log.warning(
            "%s; %d paper%s the source described %s digested without a version pin",
            error,
            described,
            "" if described == 1 else "s",
            "is" if described == 1 else "are",
        )


def unusable(metadata: PaperMetadata) -> MetadataError | None:
    """Why a paper is not to be digested by what is known of it: withdrawn, or nothing to
    digest it by or fall back on (found before the LLM is paid)."""
    if metadata.withdrawn:
        return MetadataError("withdrawn on arXiv")
    missing = [name for name in ("title", "abstract") if not getattr(metadata, name).strip()]
    if missing:
        return MetadataError(
            f"its metadata has no {' and no '.join(missing)} (from the source and arXiv)"
        )
    return None


def _checked_text(ref: ArxivRef, metadata: PaperMetadata, extracted: ExtractedText) -> PaperText:
    """The PDF's text, unless it is the wrong document (a mirror's wrong file, a mislinked
    ID, a cover sheet), which must not be digested under this paper's title: its abstract is
    digested instead."""
    match = identity(metadata.title, metadata.abstract, extracted.text)
    if not match.matches:
        log.warning(
            "%s: %s (score %.2f, title %.2f, abstract %.2f)",
            ref,
            WRONG_DOCUMENT,
            match.score,
            match.title,
            match.abstract,
        )
        return _abstract_text(ref, metadata, WRONG_DOCUMENT, identity_score=match.score)
    return PaperText(
        arxiv_id=ref.arxiv_id,
        title=metadata.title,
        authors=metadata.authors,
        abstract=metadata.abstract,
        input="full-text",
        extractor=extracted.extractor,
        identity_score=match.score,
        content=extracted.text,
    )


def _merge(source: PaperMetadata | None, api: PaperMetadata | None) -> PaperMetadata | None:
    """What the source said of a paper, with arXiv's version and withdrawal; either alone."""
    if source is None or api is None:
        return source or api
    return api.model_copy(
        update={
            "title": source.title or api.title,
            "abstract": source.abstract or api.abstract,
            "authors": source.authors or api.authors,
            "links": first_known(source.links, api.links),
        }
    )


def _abstract_text(
    ref: ArxivRef,
    metadata: PaperMetadata,
    reason: str,
    *,
    full_text_pending: bool = False,
    identity_score: float | None = None,
) -> PaperText:
    """The paper's abstract for the LLM, with why it is not the full text."""
    return PaperText(
        arxiv_id=ref.arxiv_id,
        title=metadata.title,
        authors=metadata.authors,
        abstract=metadata.abstract,
        input="abstract",
        input_reason=reason,
        full_text_pending=full_text_pending,
        identity_score=identity_score,
        content=metadata.abstract,
    )


def _local_paper_text(pdf: LocalPdf, extracted: ExtractedText) -> PaperText:
    """A local PDF has no arXiv metadata: its title comes from the PDF, or its file name."""
    return PaperText(
        arxiv_id=None,
        title=extracted.title or pdf.path.stem,
        authors=[],
        input="full-text",
        extractor=extracted.extractor,
        content=extracted.text,
    )
