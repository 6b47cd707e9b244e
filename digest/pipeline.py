"""The pipeline: each paper through fetch → extract → summarize.

How the work overlaps (all in one event loop):

- arXiv API calls go one at a time through the shared client, ``arxiv_delay`` apart;
- PDF downloads run up to ``download_concurrency`` at a time;
- text extraction runs in worker processes, so it blocks neither the loop nor other papers;
- up to ``concurrency`` papers are at the LLM at once, and their requests overlap.

Each paper's failure is its own: it is recorded with its reason and the others go on. Only an
LLM configuration error (a refused key, an unknown model) stops the papers that have not
reached the LLM yet, since none of them could succeed. Every finished entry is cached (see
``DigestCache``) the moment it is done, so a run killed half-way loses no paid-for digest.
Which papers a day needs, and the files written from them, are ``digest.day``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from types import TracebackType

import httpx2

from digest import __version__
from digest.day import PaperResult, Progress, Silent
from digest.errors import LLMConfigError, PaperFailed
from digest.extract import ExtractedText, ExtractionFailed, extract_pdf, start_workers
from digest.fetch import ArxivLookup, ArxivMetadata, DownloadFailed, MetadataError, PdfDownloader
from digest.models import Links, PaperEntry, Provenance
from digest.prompts import PROMPT_VERSION
from digest.settings import Settings
from digest.sources import ArxivRef, LocalPdf, PaperMetadata
from digest.store import DigestCache
from digest.summarize import (
    PaperText,
    Sleep,
    Summarizer,
    SummaryFailed,
    fitted_text_budget,
    make_client,
)

log = logging.getLogger(__name__)


# Papers in flight at the run's deadline get this long (at most a tenth of the deadline).
DEADLINE_GRACE_S = 30.0
_NOT_STARTED = "not started: the run's deadline passed (--deadline, DIGEST_RUN_DEADLINE)"
_STOPPED = "stopped at the run's deadline (--deadline, DIGEST_RUN_DEADLINE); the next run does it"


class _DeadlinePassed(Exception):
    pass


class CostGuard:
    """Stops starting papers once the estimated spend would pass ``cap`` (USD).

    A paper's cost is estimated before its LLM call from its text (about 4 characters a token
    for the input, half the output limit for the answer) and reserved; the real cost replaces
    the estimate when the answer is in.
    """

    def __init__(self, settings: Settings, cap: float | None) -> None:
        self.cap = cap
        self.price = settings.price_of(settings.model)
        self.output_tokens = settings.max_output_tokens
        self.committed = 0.0
        if cap is not None:
            settings.require_price()

    def estimate(self, prompt_chars: int) -> float:
        if self.price is None:
            return 0.0
        per_input, _, per_output = self.price
        return (prompt_chars / 4 * per_input + self.output_tokens / 2 * per_output) / 1_000_000

    def admit(self, estimate: float) -> bool:
        if self.cap is not None and self.committed + estimate > self.cap:
            return False
        self.committed += estimate
        return True

    def settle(self, estimate: float, actual: float | None) -> None:
        self.committed += (actual if actual is not None else estimate) - estimate


class Pipeline:
    """The clients of one run, shared by all its papers. Use as ``async with Pipeline(…)``."""

    def __init__(
        self,
        settings: Settings,
        *,
        sleep: Sleep = asyncio.sleep,
        progress: Progress | None = None,
        max_cost: float | None = None,
        force: bool = False,
        metadata: ArxivMetadata | None = None,
        llm: bool = True,
        workers: ProcessPoolExecutor | None = None,
        deadline: float | None = None,
    ) -> None:
        self.settings = settings
        self._extractor = workers  # already starting (see start_workers), else made on entry
        self.metadata = metadata or ArxivMetadata(settings)
        self.uses_llm = llm  # False: read papers only (``digest paper --show-prompt``)
        self.sleep = sleep
        self.progress = progress or Silent()
        self.costs = CostGuard(settings, max_cost)
        self.force = force
        self.cache = DigestCache(settings.cache_dir)
        self.deadline = deadline  # time.monotonic() past which no paper is started
        self.fatal: LLMConfigError | None = None

    async def __aenter__(self) -> Pipeline:
        self.llm = make_client(self.settings) if self.uses_llm else None
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(self.settings.http_timeout),
            headers={"user-agent": f"digest/{__version__} (arXiv paper digests)"},
        )
        self.downloader = PdfDownloader(self.settings, self.http, self.sleep)
        self.summarizer = Summarizer(self.settings, self.llm, self.sleep)
        # With DIGEST_CONTEXT_TOKENS, the paper's text is cut to what the server's context holds.
        self.text_budget = fitted_text_budget(self.settings, self.summarizer.fixed_prompt_tokens())
        self._llm_slots = asyncio.Semaphore(self.settings.concurrency)
        self._download_slots = asyncio.Semaphore(self.settings.download_concurrency)
        self._extractor = self._extractor or start_workers(self.settings.extractor)
        self._killed: set[ProcessPoolExecutor] = set()  # pools killed for a slow PDF
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.http.aclose()
        if self.llm is not None:
            await self.llm.close()
        self._extractor.shutdown(wait=False, cancel_futures=True)

    async def _extract(self, data: bytes) -> ExtractedText:
        """Extract in a worker process: pypdf is pure Python, and in a thread it would hold the
        GIL that the event loop needs to keep the other papers' requests moving.

        Bounded by ``extract_timeout``: a small PDF can draw one huge stream on every page and
        take hours. Past it the workers are killed (a running task cannot be cancelled
        otherwise) and replaced; a paper whose extraction was only caught up in that is tried
        once more on the new workers."""
        for attempt in range(2):
            pool = self._extractor
            future = asyncio.get_running_loop().run_in_executor(
                pool, extract_pdf, data, self.text_budget, self.settings.extractor
            )
            try:
                return await asyncio.wait_for(future, self.settings.extract_timeout)
            except TimeoutError:
                self._replace_workers(pool, kill=True)
                raise ExtractionFailed(
                    f"extraction took longer than {self.settings.extract_timeout:g} s "
                    "(DIGEST_EXTRACT_TIMEOUT)"
                ) from None
            except BrokenProcessPool:
                if pool in self._killed and attempt == 0:
                    continue  # another paper's timeout killed this worker, not this PDF
                # A worker died (out of memory, or the PDF library crashed on this file). The
                # papers it held fall back to their abstracts; the next ones get a new pool.
                self._replace_workers(pool, kill=False)
                raise ExtractionFailed("the extraction worker crashed on this PDF") from None
        raise ExtractionFailed("the extraction workers were replaced twice during this PDF")

    def _replace_workers(self, pool: ProcessPoolExecutor, *, kill: bool) -> None:
        if pool is not self._extractor:
            return  # already replaced
        if kill:
            self._killed.add(pool)
            # ProcessPoolExecutor has no way to stop a running task; its processes are its own.
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        self._extractor = start_workers(self.settings.extractor)

    async def digest_arxiv(
        self, refs: list[ArxivRef], known: dict[str, PaperMetadata] | None = None
    ) -> list[PaperResult]:
        """Every paper of ``refs``, in their order.

        ``known`` is what the source already said of a paper (Hugging Face: title, abstract and
        authors, no version). The arXiv API is asked, in one query, for the rest: the version
        of those, everything of the others. When it cannot be asked, a paper the source
        described is still digested, from a PDF without a version pin (version unknown).
        """
        known = dict(known or {})
        lookup, lookup_error = ArxivLookup(), None
        needed = [r for r in refs if r.arxiv_id not in known or known[r.arxiv_id].version is None]
        try:
            lookup = await self.metadata.lookup(needed)
        except MetadataError as error:
            lookup_error = str(error)
            described = sum(ref.arxiv_id in known for ref in needed)
            if described:
                log.warning(
                    "%s; %d paper%s the source described %s digested without a version pin",
                    lookup_error,
                    described,
                    "" if described == 1 else "s",
                    "is" if described == 1 else "are",
                )

        async def one(ref: ArxivRef) -> PaperResult:
            metadata = _merge(known.get(ref.arxiv_id), lookup.found.get(ref.arxiv_id))
            if metadata is None:
                reason = lookup_error or lookup.reason_missing(ref.arxiv_id)
                return self._finish(PaperResult(ref, error=reason, status="failed"))
            if self._past_deadline():
                return self._finish(PaperResult(ref, error=_NOT_STARTED, status="stopped"))
            try:
                return await self._by_deadline(self._one_arxiv(ref, metadata))
            except _DeadlinePassed:
                return self._finish(PaperResult(ref, error=_STOPPED, status="stopped"))
            except Exception as error:
                # Whatever went wrong with one paper (a bug, a full disk), the others go on and
                # the day is still written. --debug shows the traceback.
                log.debug("%s failed unexpectedly", ref, exc_info=True)
                reason = f"unexpected error: {type(error).__name__}: {error}"
                return self._finish(PaperResult(ref, error=reason, status="failed"))

        return list(await asyncio.gather(*(one(ref) for ref in refs)))

    def _past_deadline(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline

    async def _by_deadline(self, work: Awaitable[PaperResult]) -> PaperResult:
        """``work``, cut off a short grace after the run's deadline (its spend so far is lost,
        which is what a deadline is for)."""
        if self.deadline is None:
            return await work
        left = self.deadline - time.monotonic()
        grace = min(DEADLINE_GRACE_S, (self.settings.run_deadline or 0) * 60 / 10)
        try:
            return await asyncio.wait_for(work, max(0.0, left) + grace)
        except TimeoutError:
            raise _DeadlinePassed from None

    async def digest_local_pdf(self, pdf: LocalPdf) -> PaperResult:
        stages: dict[str, float] = {}
        started = time.monotonic()
        try:
            extracted = await self._extract(pdf.path.read_bytes())
        except ExtractionFailed as error:
            reason = f"{error.reason}; a local PDF has no arXiv abstract to fall back on"
            return self._finish(PaperResult(pdf, error=reason, status="failed"))
        stages["extract"] = time.monotonic() - started
        paper = _local_paper_text(pdf, extracted)
        return await self._summarize(pdf, paper, None, Links(), stages)

    async def paper_text(self, target: ArxivRef | LocalPdf) -> PaperText:
        """What the LLM would read for ``target``; PaperFailed when there is nothing to read."""
        if isinstance(target, LocalPdf):
            try:
                extracted = await self._extract(target.path.read_bytes())
            except ExtractionFailed as error:
                raise PaperFailed(str(target), error.reason) from None
            return _local_paper_text(target, extracted)
        try:
            lookup = await self.metadata.lookup([target])
        except MetadataError as error:
            raise PaperFailed(str(target), str(error)) from None
        metadata = lookup.found.get(target.arxiv_id)
        if metadata is None:
            raise PaperFailed(str(target), lookup.reason_missing(target.arxiv_id))
        pinned = ArxivRef(target.arxiv_id, target.version or metadata.version)
        return await self._read(pinned, metadata, {})

    async def _one_arxiv(self, ref: ArxivRef, metadata: PaperMetadata) -> PaperResult:
        if metadata.withdrawn:
            return self._finish(PaperResult(ref, error="withdrawn on arXiv", status="failed"))
        missing = [name for name in ("title", "abstract") if not getattr(metadata, name).strip()]
        if missing:
            # Nothing to digest it by, or nothing to fall back on: fail before paying the LLM.
            reason = f"its metadata has no {' and no '.join(missing)} (from the source and arXiv)"
            return self._finish(PaperResult(ref, error=reason, status="failed"))
        pinned = ArxivRef(ref.arxiv_id, ref.version or metadata.version)
        stages: dict[str, float] = {}
        paper = await self._read(pinned, metadata, stages)
        links = Links.for_arxiv(ref.arxiv_id)
        return await self._summarize(pinned, paper, metadata, links, stages)

    async def _read(
        self, ref: ArxivRef, metadata: PaperMetadata, stages: dict[str, float]
    ) -> PaperText:
        """The full text when the PDF gives one, else the abstract with the reason why."""
        base = {"arxiv_id": ref.arxiv_id, "title": metadata.title, "authors": metadata.authors}
        try:
            started = time.monotonic()
            async with self._download_slots:
                data = await self.downloader.fetch(ref)
            stages["download"] = time.monotonic() - started
            self.progress.stage_done(str(ref), "download")
            started = time.monotonic()
            extracted = await self._extract(data)
            stages["extract"] = time.monotonic() - started
            self.progress.stage_done(str(ref), "extract")
        except (DownloadFailed, ExtractionFailed) as error:
            reason = error.reason if isinstance(error, ExtractionFailed) else str(error)
            return PaperText(
                **base,
                input="abstract",
                input_reason=reason,
                full_text_pending=isinstance(error, DownloadFailed) and error.transient,
                content=metadata.abstract,
            )
        return PaperText(
            **base, input="full-text", extractor=extracted.extractor, content=extracted.text
        )

    async def _summarize(
        self,
        ref: ArxivRef | LocalPdf,
        paper: PaperText,
        metadata: PaperMetadata | None,
        links: Links,
        stages: dict[str, float],
    ) -> PaperResult:
        version = ref.version if isinstance(ref, ArxivRef) else None
        key = DigestCache.key(paper.arxiv_id, version, paper.content, self.settings.model)
        cached = None if self.force else self.cache.get(key)
        if cached is not None:
            # Same text, same digest; but why it is the abstract is this run's to say.
            why = {"input_reason": paper.input_reason, "full_text_pending": paper.full_text_pending}
            cached.provenance = cached.provenance.model_copy(update=why)
            return self._finish(
                PaperResult(ref, entry=cached, status="cached", stage_seconds=stages)
            )
        prompt_chars = sum(len(m["content"]) for m in self.summarizer.messages_for(paper))
        estimate = self.costs.estimate(prompt_chars)
        async with self._llm_slots:
            # Admitted only with a slot in hand, so the spend it is weighed against includes
            # every paper finished before it.
            if self._past_deadline():
                return self._finish(PaperResult(ref, error=_NOT_STARTED, status="stopped"))
            if not self.costs.admit(estimate):
                cap = self.costs.cap
                reason = f"not started: the estimated spend would pass --max-cost {cap:g} USD"
                return self._finish(PaperResult(ref, error=reason, status="stopped"))
            if self.fatal:
                self.costs.settle(estimate, 0.0)
                return self._finish(PaperResult(ref, error=str(self.fatal), status="failed"))
            started = time.monotonic()
            try:
                summary = await self.summarizer.summarize(paper)
            except (SummaryFailed, LLMConfigError) as error:
                spent = None
                if isinstance(error, SummaryFailed) and error.usage is not None:
                    usage = error.usage
                    spent = (usage.tokens_in, usage.tokens_out, usage.cost_usd(self.settings))
                # What the failed answers cost counts against --max-cost like any other spend.
                self.costs.settle(estimate, spent[2] if spent and spent[2] is not None else 0.0)
                if isinstance(error, LLMConfigError):
                    self.fatal = error
                result = PaperResult(ref, error=str(error), status="failed", spent=spent)
                return self._finish(result)
            stages["summarize"] = time.monotonic() - started
        cost = summary.usage.cost_usd(self.settings)
        self.costs.settle(estimate, cost)
        self.progress.stage_done(str(ref), "summarize")
        entry = PaperEntry(
            arxiv_id=paper.arxiv_id,
            version=version,
            title=paper.title,
            authors=paper.authors,
            links=links,
            digest=summary.digest,
            provenance=Provenance(
                source="llm",
                model=self.settings.model,
                prompt_version=PROMPT_VERSION,
                input=paper.input,
                input_reason=paper.input_reason,
                extractor=paper.extractor,
                full_text_pending=paper.full_text_pending,
                input_chars=len(paper.content),
                tokens_in=summary.usage.tokens_in,
                tokens_out=summary.usage.tokens_out,
                tokens_cached=summary.usage.tokens_cached,
                tokens_reasoning=summary.usage.tokens_reasoning or None,
                answered_by=summary.answered_by,
                attempts=summary.attempts,
                seconds=round(sum(stages.values()), 3),
                cost_usd=cost,
                calls=summary.usage.calls,
                grounding_repairs=summary.grounding_repairs,
            ),
        )
        self.cache.put(key, entry)
        return self._finish(PaperResult(ref, entry=entry, stage_seconds=stages))

    def _finish(self, result: PaperResult) -> PaperResult:
        self.progress.paper_done(result)
        return result


def _merge(source: PaperMetadata | None, api: PaperMetadata | None) -> PaperMetadata | None:
    """What the source said of a paper, with arXiv's version and withdrawal; either alone."""
    if source is None or api is None:
        return source or api
    return api.model_copy(
        update={
            "title": source.title or api.title,
            "abstract": source.abstract or api.abstract,
            "authors": source.authors or api.authors,
        }
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
