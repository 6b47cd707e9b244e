"""The LLM stage of a run: which paper is asked when, and what stops the asking.

Up to ``concurrency`` papers are at the LLM at once. A paper is admitted only with a slot in
hand, so the spend it is weighed against (``--max-cost``, by ``CostGuard``) includes every
paper finished before it, and only before the run's deadline. The API key is asked about once
a run, before the first paper is fetched; while the server leaves it in question, the first
paper's request settles it, the others waiting. An LLM configuration error (a refused key, an
unknown model) stops the asking: the papers after it fail with it, and the pipeline raises it
once the papers in flight are settled.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from digest.errors import (
    STOPPED_WITH_THE_RUN,
    LLMConfigError,
    PaperFailed,
    PaperStopped,
    SummaryFailed,
)
from digest.llm.conversation import prompt_tokens_of
from digest.llm.price import CostGuard
from digest.llm.summarize import PaperText, Summarizer, Summary
from digest.options import KeyCheck, LlmOptions, RunOptions

NOT_STARTED = "not started: the run's deadline passed (--deadline, DIGEST_RUN_DEADLINE)"


@dataclass(frozen=True)
class Digested:
    """A paper's digest, as the LLM stage got it."""

    summary: Summary
    cost: float | None  # USD; None: the model has no price
    seconds: float  # at the LLM, retries and re-asks included


class LlmStage:
    """The LLM side of one pipeline."""

    def __init__(
        self, summarizer: Summarizer, options: LlmOptions, run: RunOptions, key_check: KeyCheck
    ) -> None:
        self.summarizer = summarizer
        self.options = options
        self.run = run
        self.key_check = key_check  # the run's, when it opens several pipelines
        self.costs = CostGuard(
            options.price, options.max_output_tokens, run.max_cost, run.spent_before
        )
        self.stop: LLMConfigError | None = None  # the configuration error that stops the run
        self._slots = asyncio.Semaphore(options.concurrency)
        self._first_answer = asyncio.Lock()  # held by the one paper that asks first, see _ask

    async def check_key(self) -> None:
        """A refused key stops the run here, before any paper is fetched, once a run."""
        if self.key_check.asked:
            return
        self.key_check.asked = True
        self.key_check.settled = await self.summarizer.server.check_key()

    async def digest(self, paper: PaperText) -> Digested | PaperFailed:
        """The digest of ``paper``, or why there is none. What its answers cost is charged
        either way."""
        estimate = self.costs.estimate(prompt_tokens_of(self.summarizer.messages_for(paper)))
        async with self._slots:
            refused = self._not_admitted(estimate)
            if refused is not None:
                return refused
            started = time.monotonic()
            try:
                summary = await self._ask(paper)
            except SummaryFailed as error:
                # What the failed answers cost counts against --max-cost like any other spend.
                price = self.options.price
                if error.usage is not None and price is not None:
                    error.cost_usd = price.cost(error.usage)
                self.costs.charge(estimate, error.cost_usd or 0.0)
                return error
            except LLMConfigError as error:
                self.costs.charge(estimate, 0.0)
                self.stop = self.stop or error
                return SummaryFailed(STOPPED_WITH_THE_RUN)
            seconds = time.monotonic() - started
        price = self.options.price
        cost = price.cost(summary.usage) if price is not None else None
        self.costs.charge(estimate, cost)
        return Digested(summary, cost, seconds)

    def _not_admitted(self, estimate: float) -> PaperFailed | None:
        """Why a paper is not to be asked now: the run's deadline passed, its estimate would
        pass ``--max-cost``, or the run is stopping. Else its estimate is reserved."""
        if self.run.past_deadline():
            return PaperStopped(NOT_STARTED, transient=True)
        if not self.costs.reserve(estimate):
            cap = self.costs.cap
            reason = f"not started: the estimated spend would pass --max-cost {cap:g} USD"
            return PaperStopped(reason, transient=True)
        if self.stop is not None:
            self.costs.charge(estimate, 0.0)
            return SummaryFailed(STOPPED_WITH_THE_RUN)
        return None

    async def _ask(self, paper: PaperText) -> Summary:
        """The summarizer's digest of ``paper``. While the key is in question (the server
        could not tell through GET /models), one paper asks first and the others wait for its
        answer: a refused key then costs one request and is said once, not once for every
        paper in flight."""
        if not self.key_check.settled:
            async with self._first_answer:
                if not self.key_check.settled:
                    if self.stop is not None:
                        raise self.stop  # the first paper's request was refused
                    try:
                        summary = await self.summarizer.summarize(paper)
                    except SummaryFailed:
                        self.key_check.settled = True  # answered, or never reached
                        raise
                    self.key_check.settled = True
                    return summary
        return await self.summarizer.summarize(paper)
