"""The pipeline: each paper through fetch → extract → summarize.

How the work overlaps (all in one event loop):

- arXiv API calls go one at a time through the shared client, ``arxiv_delay`` apart;
- PDF downloads run up to ``download_concurrency`` at a time;
- text extraction runs in worker processes, so it blocks neither the loop nor other papers;
- up to ``concurrency`` papers are at the LLM at once, and their requests overlap.

Before the first paper, the LLM server is asked once whether it takes the API key
(``summarize.check_key``): a refused key stops the run before anything is downloaded or paid
for. Each paper's failure is its own (a ``PaperFailed`` of the stage it stopped at): it is
recorded with its reason and the others go on. Only an LLM configuration error (a refused
key, an unknown model) stops the run: the papers that have not reached the LLM yet are failed
with it, since none of them could succeed, and it is raised once the papers in flight are
settled, with their results. Every finished entry is cached (see ``DigestCache``) the moment it
is done, so a run killed half-way loses no paid-for digest. Which papers a day needs, and the
files written from them, are ``digest.runs.day``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import httpx2

from digest import __version__
from digest.errors import (
    STOPPED_WITH_THE_RUN,
    DownloadFailed,
    ExtractionFailed,
    LLMConfigError,
    MetadataError,
    PaperFailed,
    PaperStopped,
    SummaryFailed,
)
from digest.llm.cache import DigestCache
from digest.llm.conversation import prompt_tokens_of
from digest.llm.price import CostGuard
from digest.llm.prompts import PROMPT_VERSION
from digest.llm.server import make_client
from digest.llm.summarize import PaperText, Summarizer, Summary, fitted_text_budget
from digest.models import Links, PaperEntry, Provenance
from digest.net import AsyncSleep
from digest.options import ExtractOptions, FetchOptions, KeyCheck, LlmOptions, RunOptions
from digest.runs.results import PaperResult, Progress, Silent
from digest.sources.fetch import ArxivLookup, ArxivMetadata, PdfDownloader
from digest.sources.papers import ArxivRef, Candidate, LocalPdf, PaperMetadata
from digest.text.extract import ExtractedText, extract_pdf, start_workers
from digest.text.identity import WRONG_DOCUMENT, identity

log = logging.getLogger(__name__)

_NOT_STARTED = "not started: the run's deadline passed (--deadline, DIGEST_RUN_DEADLINE)"
_STOPPED = "stopped at the run's deadline (--deadline, DIGEST_RUN_DEADLINE); the next run does it"


class _DeadlinePassed(Exception):
    pass


_Finish = Callable[
    [ArxivRef, PaperText, Links, dict[str, float]], Coroutine[Any, Any, PaperResult | None]
]


@dataclass
class Deferred:
    """A paper read and ready for the LLM, whose answer comes later (``read_papers``). Whoever
    takes it may drop the text (``drop_text``): what the entry needs of it stays."""

    ref: ArxivRef
    key: str  # the digest cache key
    paper: PaperText
    links: Links
    stages: dict[str, float]
    input_chars: int = field(init=False)  # of the text, kept when the text is dropped

    def __post_init__(self) -> None:
        self.input_chars = len(self.paper.content)

    def drop_text(self) -> None:
        """Forget the text and the abstract (its holder keeps them elsewhere): what the entry
        needs stays."""
        self.paper = self.paper.model_copy(update={"content": "", "abstract": ""})


class Pipeline:
    """The clients of one run, shared by all its papers. Use as ``async with Pipeline(…)``."""

    def __init__(
        self,
        llm: LlmOptions,
        fetch: FetchOptions,
        extract: ExtractOptions,
        cache: DigestCache,
        run: RunOptions | None = None,
        *,
        sleep: AsyncSleep = asyncio.sleep,
        progress: Progress | None = None,
        workers: ProcessPoolExecutor | None = None,
        uses_llm: bool = True,
        key_check: KeyCheck | None = None,
    ) -> None:
        self.llm_options = llm
        self.fetch_options = fetch
        self.extract_options = extract
        self.cache = cache
        self.run = run or RunOptions()
        self._extractor = workers  # already starting (see start_workers), else made on entry
        self.metadata = ArxivMetadata(fetch)
        self.uses_llm = uses_llm  # False: read papers only (``digest paper --show-prompt``)
        self.sleep = sleep
        self.progress = progress or Silent()
        self.costs = CostGuard(
            llm.price, llm.max_output_tokens, self.run.max_cost, self.run.spent_before
        )
        self._stop: LLMConfigError | None = None  # the configuration error that stops the run
        self.key_check = key_check or KeyCheck()  # the run's, when it opens several pipelines
        self._first_answer = asyncio.Lock()  # held by the one paper that asks first, see _ask

    async def __aenter__(self) -> Pipeline:
        self.llm = make_client(self.llm_options) if self.uses_llm else None
        self.http = httpx2.AsyncClient(
            timeout=httpx2.Timeout(self.fetch_options.http_timeout),
            headers={"user-agent": f"digest/{__version__} (arXiv paper digests)"},
        )
        self.downloader = PdfDownloader(self.fetch_options, self.http, self.sleep)
        self.summarizer = Summarizer(self.llm_options, self.llm, self.sleep)
        # With DIGEST_CONTEXT_TOKENS, the paper's text is cut to what the server's context holds.
        self.text_budget = fitted_text_budget(
            self.llm_options, self.summarizer.fixed_prompt_tokens()
        )
        self._llm_slots = asyncio.Semaphore(self.llm_options.concurrency)
        self._download_slots = asyncio.Semaphore(self.fetch_options.download_concurrency)
        self._pool = self._extractor or start_workers(self.extract_options.extractor)
        self._killed: set[ProcessPoolExecutor] = set()  # pools killed for a slow PDF
        try:
            await self._check_key()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def _check_key(self) -> None:
        """A refused key stops the run here, before any paper is fetched, once a run."""
        if self.llm is None or self.key_check.asked:
            return
        self.key_check.asked = True
        self.key_check.settled = await self.summarizer.server.check_key()

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.http.aclose()
        if self.llm is not None:
            await self.llm.close()
        # Nothing waits for the workers once the run leaves, whether it is done, stopped or
        # interrupted: they are killed rather than let finish a PDF nobody will read (one cut
        # off by the deadline or a Ctrl-C could take extract_timeout), and waited for here.
        # Left to the interpreter's exit, that wait is where a Ctrl-C could only end in a
        # traceback.
        _stop_workers(self._pool, kill=True, wait=True)

    async def _extract(self, data: bytes) -> ExtractedText:
        """Extract in a worker process: pypdf is pure Python, and in a thread it would hold the
        GIL that the event loop needs to keep the other papers' requests moving.

        Bounded by ``extract_timeout``: a small PDF can draw one huge stream on every page and
        take hours. Past it the workers are killed (a running task cannot be cancelled
        otherwise) and replaced; a paper whose extraction was only caught up in that is tried
        once more on the new workers."""
        timeout = self.extract_options.timeout
        for attempt in range(2):
            pool = self._pool
            future = asyncio.get_running_loop().run_in_executor(
                pool, extract_pdf, data, self.text_budget, self.extract_options.extractor
            )
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._replace_workers(pool, kill=True)
                raise ExtractionFailed(
                    f"extraction took longer than {timeout:g} s (DIGEST_EXTRACT_TIMEOUT)"
                ) from None
            except asyncio.CancelledError:
                # Killing the pool for a slow PDF cancels the PDFs still queued for it; this
                # one is tried once more on the new workers. A cancelled task (the run's
                # deadline) is not this: it goes on being cancelled.
                task = asyncio.current_task()
                if pool in self._killed and attempt == 0 and task and not task.cancelling():
                    continue
                raise
            except BrokenProcessPool:
                if pool in self._killed and attempt == 0:
                    continue  # another paper's timeout killed this worker, not this PDF
                # A worker died (out of memory, or the PDF library crashed on this file). The
                # papers it held fall back to their abstracts; the next ones get a new pool.
                self._replace_workers(pool, kill=False)
                raise ExtractionFailed("the extraction worker crashed on this PDF") from None
        raise ExtractionFailed("the extraction workers were replaced twice during this PDF")

    def _replace_workers(self, pool: ProcessPoolExecutor, *, kill: bool) -> None:
        if pool is not self._pool:
            return  # already replaced
        if kill:
            self._killed.add(pool)
        _stop_workers(pool, kill=kill, wait=False)
        self._pool = start_workers(self.extract_options.extractor)

    async def digest_papers(self, candidates: list[Candidate]) -> list[PaperResult]:
        """Every paper of ``candidates``, in their order. Raises ``LLMConfigError`` (carrying
        every paper's result) when the LLM server refused the run's configuration.

        A candidate carries what its source already said of the paper (Hugging Face: title,
        abstract and authors, no version; an arXiv query: everything). The arXiv API is asked,
        in one query, for the rest. When it cannot be asked, a paper the source described is
        still digested, from a PDF without a version pin (version unknown).
        """
        done = await self._each(candidates, self._summarize)
        results = [result for result in done if result is not None]
        if self._stop is not None:
            self._stop.results = results
            raise self._stop
        return results

    async def read_papers(
        self, candidates: list[Candidate], hand_over: Callable[[Deferred], None]
    ) -> list[PaperResult | None]:
        """``digest_papers`` up to the LLM: each paper is looked up, fetched and read, and its
        digest taken from the cache; a paper the cache does not have is handed over, as a
        ``Deferred``, to whoever asks the LLM later (a batch), and its place is None."""

        async def defer(
            ref: ArxivRef, paper: PaperText, links: Links, stages: dict[str, float]
        ) -> PaperResult | None:
            cached = self._cached(ref, paper, stages)
            if cached is not None:
                return cached
            hand_over(Deferred(ref, self._key(ref, paper), paper, links, dict(stages)))
            return None

        return await self._each(candidates, defer)

    async def _each(self, candidates: list[Candidate], finish: _Finish) -> list[PaperResult | None]:
        """Every paper of ``candidates`` to the LLM stage, which ``finish`` does."""
        known = {c.ref.arxiv_id: c.metadata for c in candidates if c.metadata is not None}
        lookup, lookup_error = ArxivLookup(), None
        needed = [c.ref for c in candidates if c.metadata is None or c.metadata.version is None]
        try:
            lookup = await self.metadata.lookup(needed)
        except MetadataError as error:
            lookup_error = error
            described = sum(ref.arxiv_id in known for ref in needed)
            if described:
                log.warning(
                    "%s; %d paper%s the source described %s digested without a version pin",
                    error,
                    described,
                    "" if described == 1 else "s",
                    "is" if described == 1 else "are",
                )

        async def one(ref: ArxivRef) -> PaperResult | None:
            metadata = _merge(known.get(ref.arxiv_id), lookup.found.get(ref.arxiv_id))
            if metadata is None:
                failure = lookup_error or MetadataError(lookup.reason_missing(ref.arxiv_id))
                return self._failed(ref, failure)
            if self.run.past_deadline():
                return self._failed(ref, PaperStopped(_NOT_STARTED, transient=True))
            try:
                return await self._by_deadline(self._one_arxiv(ref, metadata, finish))
            except _DeadlinePassed:
                return self._failed(ref, PaperStopped(_STOPPED, transient=True))
            except LLMConfigError:
                raise
            except PaperFailed as failure:  # said by whoever took the paper (a batch)
                return self._failed(ref, failure)
            except Exception as error:
                # Whatever went wrong with one paper (a bug, a full disk), the others go on and
                # the day is still written. --debug shows the traceback.
                log.debug("%s failed unexpectedly", ref, exc_info=True)
                reason = f"unexpected error: {type(error).__name__}: {error}"
                return self._failed(ref, PaperFailed(reason))

        return list(await asyncio.gather(*(one(c.ref) for c in candidates)))

    async def _by_deadline(self, work: Awaitable[PaperResult | None]) -> PaperResult | None:
        """``work``, cut off a short grace after the run's deadline (its spend so far is lost,
        which is what a deadline is for)."""
        deadline = self.run.deadline
        if deadline is None:
            return await work
        left = deadline - time.monotonic()
        try:
            return await asyncio.wait_for(work, max(0.0, left) + self.run.grace)
        except TimeoutError:
            raise _DeadlinePassed from None

    async def digest_local_pdf(self, pdf: LocalPdf) -> PaperResult:
        stages: dict[str, float] = {}
        started = time.monotonic()
        try:
            extracted = await self._extract(pdf.path.read_bytes())
        except ExtractionFailed as error:
            reason = f"{error.reason}; a local PDF has no arXiv abstract to fall back on"
            return self._failed(pdf, ExtractionFailed(reason))
        stages["extract"] = time.monotonic() - started
        paper = _local_paper_text(pdf, extracted)
        result = await self._summarize(pdf, paper, Links(), stages)
        if self._stop is not None:
            raise self._stop
        return result

    async def paper_text(self, target: ArxivRef | LocalPdf) -> PaperText:
        """What the LLM would read for ``target``; PaperFailed when there is nothing to read."""
        if isinstance(target, LocalPdf):
            try:
                extracted = await self._extract(target.path.read_bytes())
            except ExtractionFailed as error:
                raise ExtractionFailed(f"{target}: {error.reason}") from None
            return _local_paper_text(target, extracted)
        try:
            lookup = await self.metadata.lookup([target])
        except MetadataError as error:
            raise MetadataError(f"{target}: {error}") from None
        metadata = lookup.found.get(target.arxiv_id)
        if metadata is None:
            raise MetadataError(f"{target}: {lookup.reason_missing(target.arxiv_id)}")
        pinned = ArxivRef(target.arxiv_id, target.version or metadata.version)
        return await self._read(pinned, metadata, {})

    async def _one_arxiv(
        self, ref: ArxivRef, metadata: PaperMetadata, finish: _Finish
    ) -> PaperResult | None:
        if metadata.withdrawn:
            return self._failed(ref, MetadataError("withdrawn on arXiv"))
        missing = [name for name in ("title", "abstract") if not getattr(metadata, name).strip()]
        if missing:
            # Nothing to digest it by, or nothing to fall back on: fail before paying the LLM.
            reason = f"its metadata has no {' and no '.join(missing)} (from the source and arXiv)"
            return self._failed(ref, MetadataError(reason))
        pinned = ArxivRef(ref.arxiv_id, ref.version or metadata.version)
        stages: dict[str, float] = {}
        # The text goes straight to ``finish``: no frame here keeps it while the LLM answers.
        return await finish(
            pinned,
            await self._read(pinned, metadata, stages),
            Links.for_arxiv(ref.arxiv_id),
            stages,
        )

    async def _read(
        self, ref: ArxivRef, metadata: PaperMetadata, stages: dict[str, float]
    ) -> PaperText:
        """The full text when the PDF gives one, else the abstract with the reason why."""
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
            pending = isinstance(error, DownloadFailed) and error.transient
            return _abstract_text(ref, metadata, error.reason, full_text_pending=pending)
        # The wrong document (a mirror's wrong file, a mislinked ID, a cover sheet) must not
        # be digested under this paper's title: its abstract is digested instead.
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

    def _key(self, ref: ArxivRef | LocalPdf, paper: PaperText) -> str:
        """The paper's digest cache key (also its batch request's ``custom_id``)."""
        version = ref.version if isinstance(ref, ArxivRef) else None
        return DigestCache.key(paper.arxiv_id, version, paper.content, self.llm_options.model)

    def _cached(
        self, ref: ArxivRef | LocalPdf, paper: PaperText, stages: dict[str, float]
    ) -> PaperResult | None:
        """The paper's digest from the cache, unless the run is forced or it has none."""
        cached = None if self.run.force else self.cache.get(self._key(ref, paper))
        if cached is None:
            return None
        # Same text, same digest; but why it is the abstract is this run's to say.
        why = {"input_reason": paper.input_reason, "full_text_pending": paper.full_text_pending}
        cached.provenance = cached.provenance.model_copy(update=why)
        return self._finish(PaperResult(ref, entry=cached, status="cached", stage_seconds=stages))

    async def _summarize(
        self,
        ref: ArxivRef | LocalPdf,
        paper: PaperText,
        links: Links,
        stages: dict[str, float],
    ) -> PaperResult:
        cached = self._cached(ref, paper, stages)
        if cached is not None:
            return cached
        prompt_tokens = prompt_tokens_of(self.summarizer.messages_for(paper))
        estimate = self.costs.estimate(prompt_tokens)
        async with self._llm_slots:
            # Admitted only with a slot in hand, so the spend it is weighed against includes
            # every paper finished before it.
            if self.run.past_deadline():
                return self._failed(ref, PaperStopped(_NOT_STARTED, transient=True))
            if not self.costs.reserve(estimate):
                cap = self.costs.cap
                reason = f"not started: the estimated spend would pass --max-cost {cap:g} USD"
                return self._failed(ref, PaperStopped(reason, transient=True))
            if self._stop is not None:
                self.costs.charge(estimate, 0.0)
                return self._failed(ref, SummaryFailed(STOPPED_WITH_THE_RUN))
            started = time.monotonic()
            try:
                summary = await self._ask(paper)
            except SummaryFailed as error:
                # What the failed answers cost counts against --max-cost like any other spend.
                price = self.llm_options.price
                if error.usage is not None and price is not None:
                    error.cost_usd = price.cost(error.usage)
                self.costs.charge(estimate, error.cost_usd or 0.0)
                return self._failed(ref, error)
            except LLMConfigError as error:
                self.costs.charge(estimate, 0.0)
                self._stop = self._stop or error
                return self._failed(ref, SummaryFailed(STOPPED_WITH_THE_RUN))
            stages["summarize"] = time.monotonic() - started
        price = self.llm_options.price
        cost = price.cost(summary.usage) if price is not None else None
        self.costs.charge(estimate, cost)
        self.progress.stage_done(str(ref), "summarize")
        key = self._key(ref, paper)
        entry = self._entry(paper, len(paper.content), ref, links, summary, cost, stages)
        return self._finish(self._cache_and_result(key, ref, entry, summary, stages))

    async def _ask(self, paper: PaperText) -> Summary:
        """The summarizer's digest of ``paper``. While the key is in question (the server
        could not tell through GET /models), one paper asks first and the others wait for its
        answer: a refused key then costs one request and is said once, not once for every
        paper in flight."""
        if not self.key_check.settled:
            async with self._first_answer:
                if not self.key_check.settled:
                    if self._stop is not None:
                        raise self._stop  # the first paper's request was refused
                    try:
                        summary = await self.summarizer.summarize(paper)
                    except SummaryFailed:
                        self.key_check.settled = True  # answered, or never reached
                        raise
                    self.key_check.settled = True
                    return summary
        return await self.summarizer.summarize(paper)

    def conclude(self, deferred: Deferred, outcome: Summary | SummaryFailed) -> PaperResult:
        """A deferred paper's result, once its answers are in (``read_papers``): its entry,
        cached as ``_summarize`` caches, or its failure. ``outcome`` carries its cost."""
        if isinstance(outcome, SummaryFailed):
            return self._failed(deferred.ref, outcome)
        self.progress.stage_done(str(deferred.ref), "summarize")
        entry = self._entry(
            deferred.paper,
            deferred.input_chars,
            deferred.ref,
            deferred.links,
            outcome,
            outcome.cost_usd,
            deferred.stages,
        )
        result = self._cache_and_result(deferred.key, deferred.ref, entry, outcome, deferred.stages)
        return self._finish(result)

    def _cache_and_result(
        self,
        key: str,
        ref: ArxivRef | LocalPdf,
        entry: PaperEntry,
        summary: Summary,
        stages: dict[str, float],
    ) -> PaperResult:
        if not (summary.grounding_repairs or summary.ungrounded_names):
            # Only a digest the model got right is kept for later runs: a repaired one was
            # never an answer that passed, and the next run may get one that does.
            self.cache.put(key, entry)
        return PaperResult(ref, entry=entry, stage_seconds=stages)

    def _entry(
        self,
        paper: PaperText,
        input_chars: int,
        ref: ArxivRef | LocalPdf,
        links: Links,
        summary: Summary,
        cost: float | None,
        stages: dict[str, float],
    ) -> PaperEntry:
        return PaperEntry(
            arxiv_id=paper.arxiv_id,
            version=ref.version if isinstance(ref, ArxivRef) else None,
            title=paper.title,
            authors=paper.authors,
            links=links,
            digest=summary.digest,
            provenance=Provenance(
                source="llm",
                model=self.llm_options.model,
                prompt_version=PROMPT_VERSION,
                input=paper.input,
                input_reason=paper.input_reason,
                extractor=paper.extractor,
                full_text_pending=paper.full_text_pending,
                input_chars=input_chars,
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
                ungrounded_names=summary.ungrounded_names,
                identity_score=paper.identity_score,
                mode="batch" if summary.batch else None,
                batch_id=summary.batch.batch_id if summary.batch else None,
                saved_usd=summary.batch.saved_usd if summary.batch else None,
            ),
        )

    def _failed(self, ref: ArxivRef | LocalPdf, failure: PaperFailed) -> PaperResult:
        return self._finish(PaperResult.failed(ref, failure))

    def _finish(self, result: PaperResult) -> PaperResult:
        self.progress.paper_done(result)
        return result


def _stop_workers(pool: ProcessPoolExecutor, *, kill: bool, wait: bool) -> None:
    """Shut ``pool`` down, its queued extractions cancelled; ``kill``: its running ones too
    (ProcessPoolExecutor cannot stop a running task; its processes are its own)."""
    if kill:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=wait, cancel_futures=True)


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
