"""The pipeline: each paper through fetch → extract → summarize.

How the work overlaps (all in one event loop):

- arXiv API calls go one at a time through the shared client, ``arxiv_delay`` apart;
- PDF downloads run up to ``download_concurrency`` at a time;
- text extraction runs in worker processes, so it blocks neither the loop nor other papers;
- up to ``concurrency`` papers are at the LLM at once, and their requests overlap.

Reading a paper (its metadata, PDF and text) is ``digest.runs.reading``'s, with the
extraction workers of ``digest.runs.workers``; asking the LLM within the run's limits is
``digest.runs.llm_stage``'s. Before the first paper, the LLM server is asked once whether it
takes the API key (``LlmServer.check_key``): a refused key stops the run before anything is
downloaded or paid for. Each paper's failure is its own (a ``PaperFailed`` of the stage it
stopped at): it is recorded with its reason and the others go on. Only an LLM configuration
error (a refused key, an unknown model) stops the run: the papers that have not reached the
LLM yet are failed with it, since none of them could succeed, and it is raised once the papers
in flight are settled, with their results. Every finished entry is cached (see
``DigestCache``) the moment it is done, so a run killed half-way loses no paid-for digest.
Which papers a day needs, and the files written from them, are ``digest.runs.day``'s.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from types import TracebackType
from typing import Any

from digest.errors import ExtractionFailed, LLMConfigError, PaperFailed, PaperStopped, SummaryFailed
from digest.llm.cache import DigestCache
from digest.llm.prompts import PROMPT_VERSION
from digest.llm.server import make_client
from digest.llm.summarize import PaperText, Summarizer, Summary, fitted_text_budget
from digest.models import Links, PaperEntry, Provenance
from digest.net import AsyncSleep
from digest.options import ExtractOptions, FetchOptions, KeyCheck, LlmOptions, RunOptions
from digest.runs.llm_stage import NOT_STARTED, LlmStage
from digest.runs.reading import PaperReader, unusable
from digest.runs.results import PaperResult, Progress, Silent, StageTimes
from digest.sources.links import paper_links
from digest.sources.papers import ArxivRef, Candidate, LocalPdf, PaperMetadata

log = logging.getLogger(__name__)

_STOPPED = "stopped at the run's deadline (--deadline, DIGEST_RUN_DEADLINE); the next run does it"


class _DeadlinePassed(Exception):
    pass


_Finish = Callable[
    [ArxivRef, PaperText, StageTimes, Links], Coroutine[Any, Any, PaperResult | None]
]


@dataclass
class Deferred:
    """A paper read and ready for the LLM, whose answer comes later (``read_papers``). Whoever
    takes it may drop the text (``drop_text``): what the entry needs of it stays."""

    ref: ArxivRef
    key: str  # the digest cache key
    paper: PaperText
    links: Links
    times: StageTimes
    input_chars: int = field(init=False)  # of the text, kept when the text is dropped

    def __post_init__(self) -> None:
        self.input_chars = len(self.paper.content)

    def drop_text(self) -> None:
        """Forget the text and the abstract (its holder keeps them elsewhere): what the entry
        needs stays."""
        self.paper = self.paper.model_copy(update={"content": "", "abstract": ""})


class Pipeline:
    """The clients of one run, shared by all its papers. Use as ``async with Pipeline(…)``.

    Each paper is read (``reader``, a ``PaperReader``), then digested from the cache or at the
    LLM (``llm_stage``, an ``LlmStage``), within the run's deadline; its entry is made here and
    cached."""

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
        self._workers = workers  # already starting (see start_workers), else made on entry
        self.uses_llm = uses_llm  # False: read papers only (``digest paper --show-prompt``)
        self.sleep = sleep
        self.progress = progress or Silent()
        self.key_check = key_check or KeyCheck()  # the run's, when it opens several pipelines

    async def __aenter__(self) -> Pipeline:
        self.llm = make_client(self.llm_options) if self.uses_llm else None
        self.summarizer = Summarizer(self.llm_options, self.llm, self.sleep)
        # With DIGEST_CONTEXT_TOKENS, the paper's text is cut to what the server's context holds.
        text_budget = fitted_text_budget(self.llm_options, self.summarizer.fixed_prompt_tokens())
        self.reader = PaperReader(
            self.fetch_options,
            self.extract_options,
            text_budget,
            sleep=self.sleep,
            progress=self.progress,
            workers=self._workers,
        )
        self.llm_stage = LlmStage(self.summarizer, self.llm_options, self.run, self.key_check)
        try:
            if self.llm is not None:
                await self.llm_stage.check_key()
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.reader.close()  # its workers killed and waited for: see ExtractionWorkers
        if self.llm is not None:
            await self.llm.close()

    async def digest_papers(self, candidates: list[Candidate]) -> list[PaperResult]:
        """Every paper of ``candidates``, in their order (see ``PaperReader.describe`` for
        what is known of each). Raises ``LLMConfigError`` (carrying every paper's result) when
        the LLM server refused the run's configuration."""
        done = await self._each(candidates, self._summarize)
        results = [result for result in done if result is not None]
        stop = self.llm_stage.stop
        if stop is not None:
            stop.results = results
            raise stop
        return results

    async def read_papers(
        self, candidates: list[Candidate], hand_over: Callable[[Deferred], None]
    ) -> list[PaperResult | None]:
        """``digest_papers`` up to the LLM: each paper is looked up, fetched and read, and its
        digest taken from the cache; a paper the cache does not have is handed over, as a
        ``Deferred``, to whoever asks the LLM later (a batch), and its place is None."""

        async def defer(
            ref: ArxivRef, paper: PaperText, times: StageTimes, links: Links
        ) -> PaperResult | None:
            cached = self._cached(ref, paper, times, links)
            if cached is not None:
                return cached
            hand_over(Deferred(ref, self._key(ref, paper), paper, links, times))
            return None

        return await self._each(candidates, defer)

    async def _each(self, candidates: list[Candidate], finish: _Finish) -> list[PaperResult | None]:
        """Every paper of ``candidates`` to the LLM stage, which ``finish`` does."""
        described = await self.reader.describe(candidates)

        async def one(ref: ArxivRef) -> PaperResult | None:
            metadata = described.of(ref)
            if not isinstance(metadata, PaperMetadata):
                return self._failed(ref, metadata)
            if self.run.past_deadline():
                return self._failed(ref, PaperStopped(NOT_STARTED, transient=True))
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
        try:
            paper, times = await self.reader.read_local(pdf)
        except ExtractionFailed as error:
            reason = f"{error.reason}; a local PDF has no arXiv abstract to fall back on"
            return self._failed(pdf, ExtractionFailed(reason))
        result = await self._summarize(pdf, paper, times, Links())
        if self.llm_stage.stop is not None:
            raise self.llm_stage.stop
        return result

    async def paper_text(self, target: ArxivRef | LocalPdf) -> PaperText:
        """What the LLM would read for ``target``; PaperFailed when there is nothing to read."""
        return await self.reader.paper_text(target)

    async def _one_arxiv(
        self, ref: ArxivRef, metadata: PaperMetadata, finish: _Finish
    ) -> PaperResult | None:
        problem = unusable(metadata)
        if problem is not None:
            return self._failed(ref, problem)
        pinned = ArxivRef(ref.arxiv_id, ref.version or metadata.version)
        # The text goes straight to ``finish``: no frame here keeps it while the LLM answers.
        return await finish(
            pinned, *_with_links(metadata, *await self.reader.read(pinned, metadata))
        )

    def _key(self, ref: ArxivRef | LocalPdf, paper: PaperText) -> str:
        """The paper's digest cache key (also its batch request's ``custom_id``)."""
        version = ref.version if isinstance(ref, ArxivRef) else None
        return DigestCache.key(paper.arxiv_id, version, paper.content, self.llm_options.model)

    def _cached(
        self, ref: ArxivRef | LocalPdf, paper: PaperText, times: StageTimes, links: Links
    ) -> PaperResult | None:
        """The paper's digest from the cache, unless the run is forced or it has none."""
        cached = None if self.run.force else self.cache.get(self._key(ref, paper))
        if cached is None:
            return None
        # Same text, same digest; but why it is the abstract is this run's to say.
        why = {"input_reason": paper.input_reason, "full_text_pending": paper.full_text_pending}
        cached.provenance = cached.provenance.model_copy(update=why)
        cached.links = links  # the source's links of today, which a digest made before may lack
        return self._finish(PaperResult(ref, entry=cached, status="cached", times=times))

    async def _summarize(
        self, ref: ArxivRef | LocalPdf, paper: PaperText, times: StageTimes, links: Links
    ) -> PaperResult:
        cached = self._cached(ref, paper, times, links)
        if cached is not None:
            return cached
        digested = await self.llm_stage.digest(paper)
        if isinstance(digested, PaperFailed):
            return self._failed(ref, digested)
        self.progress.stage_done(str(ref), "summarize")
        times = replace(times, summarize=digested.seconds)
        summary = digested.summary
        model = self.llm_options.model
        entry = new_entry(paper, ref, links, summary, model=model, cost=digested.cost, times=times)
        key = self._key(ref, paper)
        return self._finish(self._cache_and_result(key, ref, entry, summary, times))

    def conclude(self, deferred: Deferred, outcome: Summary | SummaryFailed) -> PaperResult:
        """A deferred paper's result, once its answers are in (``read_papers``): its entry,
        cached as ``_summarize`` caches, or its failure. ``outcome`` carries its cost."""
        if isinstance(outcome, SummaryFailed):
            return self._failed(deferred.ref, outcome)
        self.progress.stage_done(str(deferred.ref), "summarize")
        entry = new_entry(
            deferred.paper,
            deferred.ref,
            deferred.links,
            outcome,
            model=self.llm_options.model,
            cost=outcome.cost_usd,
            times=deferred.times,
            input_chars=deferred.input_chars,
        )
        result = self._cache_and_result(deferred.key, deferred.ref, entry, outcome, deferred.times)
        return self._finish(result)

    def _cache_and_result(
        self,
        key: str,
        ref: ArxivRef | LocalPdf,
        entry: PaperEntry,
        summary: Summary,
        times: StageTimes,
    ) -> PaperResult:
        if not (summary.grounding_repairs or summary.ungrounded_names):
            # Only a digest the model got right is kept for later runs: a repaired one was
            # never an answer that passed, and the next run may get one that does.
            self.cache.put(key, entry)
        return PaperResult(ref, entry=entry, times=times)

    def _failed(self, ref: ArxivRef | LocalPdf, failure: PaperFailed) -> PaperResult:
        return self._finish(PaperResult.failed(ref, failure))

    def _finish(self, result: PaperResult) -> PaperResult:
        self.progress.paper_done(result)
        return result


def _with_links(
    metadata: PaperMetadata, paper: PaperText, times: StageTimes
) -> tuple[PaperText, StageTimes, Links]:
    """The paper's text and times, with its links: what its source and arXiv said, then what
    the first pages of its text name."""
    return paper, times, paper_links(metadata.arxiv_id, metadata.links, paper.content)


def new_entry(
    paper: PaperText,
    ref: ArxivRef | LocalPdf,
    links: Links,
    summary: Summary,
    *,
    model: str,
    cost: float | None,
    times: StageTimes,
    input_chars: int | None = None,
) -> PaperEntry:
    """The entry of a paper the LLM digested, with its provenance: what was read, how it was
    answered, what it cost and took. ``input_chars``: of a text since dropped (else the
    text's own)."""
    return PaperEntry(
        arxiv_id=paper.arxiv_id,
        version=ref.version if isinstance(ref, ArxivRef) else None,
        title=paper.title,
        authors=paper.authors,
        links=links,
        digest=summary.digest,
        evidence=summary.evidence,
        provenance=Provenance(
            source="llm",
            model=model,
            prompt_version=PROMPT_VERSION,
            input=paper.input,
            input_reason=paper.input_reason,
            extractor=paper.extractor,
            full_text_pending=paper.full_text_pending,
            input_chars=len(paper.content) if input_chars is None else input_chars,
            tokens_in=summary.usage.tokens_in,
            tokens_out=summary.usage.tokens_out,
            tokens_cached=summary.usage.tokens_cached,
            tokens_reasoning=summary.usage.tokens_reasoning or None,
            answered_by=summary.answered_by,
            attempts=summary.attempts,
            seconds=round(times.total, 3),
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
