"""``backfill --batch`` with interests: the days' rankings through the Batch API, before their
digests, at the batch share of the price.

A day's ranking decides which papers it digests, so the range is read in two passes:

1. **Ask.** Every day's candidates are read and ranked with the scores the cache holds. The
   papers of its pool the cache has no score for are handed to a batch, ``per_request`` to
   a request, each paper once in the range: its score is the same whatever the day (the
   cache's key is the paper, the interests and the model). The candidates wait in an unnamed
   file in the cache folder, which the system removes even when the run is killed. The
   batch then runs as the digests' does: saved before it is submitted, collected by the next
   run after an interrupt, each request paid for once.
2. **Choose.** Each day is ranked again, now with every score, and planned as a day without
   interests is. A day's pool in this pass can only differ from the first by papers that
   earlier days' pools held (pass 1 counts them as taken; pass 2 skips only the ones taken),
   so every paper it ranks was asked for in pass 1: a paper without a score is one whose
   request failed, and the day goes on as an interactive run whose ranking failed in part.

What each request cost is counted for the day that asked it; the embedding pre-rank, asked
interactively in pass 1 (its vectors cached), is counted there too.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from functools import partial

from pydantic import TypeAdapter

from digest.errors import SummaryFailed
from digest.llm.batch import BatchRun
from digest.llm.batch_folder import BatchStateUnwritable, unwritable
from digest.llm.conversation import Outcome
from digest.llm.price import CostGuard
from digest.llm.rank import PaperScore, Ranked, Ranker, RankPaper, RankSpend, ScoreAsker
from digest.models import RankingTotals, Usage
from digest.options import RunOptions
from digest.runs.events import Warned, Watcher
from digest.runs.ranking import DayRanking, choose_by_interests
from digest.runs.setup import RunSetup
from digest.sources.papers import Candidate

_CANDIDATES = TypeAdapter(list[Candidate])


class DaysWaiting:
    """The days' candidates between the two passes, in an unnamed file (not in memory: a
    year of arXiv days is hundreds of thousands of abstracts)."""

    def __init__(self, setup: RunSetup) -> None:
        self.folder = setup.cache_dir
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            self.file = tempfile.TemporaryFile(dir=self.folder, prefix="days-")  # noqa: SIM115
        except OSError as error:
            raise self._unwritable(error) from None
        self.days: list[tuple[dt.date, int, int]] = []  # the date, where, how many bytes

    def put(self, date: dt.date, candidates: list[Candidate]) -> None:
        data = _CANDIDATES.dump_json(candidates)
        try:
            self.file.seek(0, 2)
            where = self.file.tell()
            self.file.write(data)
            self.file.flush()
        except OSError as error:
            raise self._unwritable(error) from None
        self.days.append((date, where, len(data)))

    def __iter__(self) -> Iterator[tuple[dt.date, list[Candidate]]]:
        for date, where, size in self.days:
            self.file.seek(where)
            yield date, _CANDIDATES.validate_json(self.file.read(size))

    def close(self) -> None:
        self.file.close()

    def _unwritable(self, error: OSError) -> BatchStateUnwritable:
        return BatchStateUnwritable(
            f"the days' candidates could not be kept in {self.folder} while their ranking "
            f"is asked: {unwritable(error)}; free space and run again (the scores and "
            "vectors had so far are cached)"
        )


@dataclass(frozen=True)
class _FirstPass:
    """What the first pass of a day leaves for the second."""

    totals: RankingTotals  # its embedding figures are the day's
    embedded: bool  # the pre-rank worked, or was not set: the second pass may use it


class BatchRanking:
    """The rankings of a backfill's days through one ``BatchRun`` (see the module docstring)."""

    def __init__(
        self, batches: BatchRun, setup: RunSetup, run: RunOptions, costs: CostGuard
    ) -> None:
        self.batches = batches
        self.setup = setup
        self.run = run
        self.costs = costs
        self.asked: set[str] = set()  # the papers handed to the batch this run
        self.scores: dict[str, PaperScore] = {}  # what it answered, whether cached or not
        self.failed: dict[str, str] = {}  # why a paper it was asked about has no score
        self.spend: dict[dt.date, RankSpend] = {}  # of the requests each day asked
        self.first: dict[dt.date, _FirstPass] = {}
        self.collected = False

    async def ask(
        self,
        days: AsyncIterator[tuple[dt.date, list[Candidate]]],
        published: dict[str, dt.date],
        watcher: Watcher,
    ) -> DaysWaiting:
        """Pass 1 over ``days``, then the batch run until every score is in. ``published``:
        the papers of the days before the range."""
        waiting = DaysWaiting(self.setup)
        taken = dict(published)  # and the papers of earlier pools, which pass 2 may skip
        try:
            async for date, candidates in days:
                waiting.put(date, candidates)
                ranking = await self._rank(date, candidates, taken, embed=True, watcher=watcher)
                self.first[date] = _FirstPass(ranking.totals, not ranking.pre_rank_failed)
                for arxiv_id in ranking.pooled:
                    taken.setdefault(arxiv_id, date)
            await self.batches.run()
        except BaseException:
            waiting.close()
            raise
        self.collected = True
        return waiting

    async def choose(
        self,
        date: dt.date,
        candidates: list[Candidate],
        published: dict[str, dt.date],
        watcher: Watcher,
    ) -> DayRanking:
        """Pass 2 of a day: its ranking with the scores the batch gave, its figures those of
        the requests it asked for."""
        first = self.first.pop(date)
        ranking = await self._rank(date, candidates, published, first.embedded, watcher)
        spend = self.spend.pop(date, RankSpend(cost_usd=0.0 if self.costs.price else None))
        ranking.totals = _merged(ranking.totals, first.totals, spend)
        return ranking

    async def _rank(
        self,
        date: dt.date,
        candidates: list[Candidate],
        published: dict[str, dt.date],
        embed: bool,
        watcher: Watcher,
    ) -> DayRanking:
        run = replace(self.run, spent_before=self.costs.committed)
        asker = self._asker(date)
        ranking = await choose_by_interests(
            candidates, date, self.setup, run, published, asker=asker, embed=embed
        )
        self.costs.charge(0.0, ranking.cost_usd)  # the embeddings': the batch reserves its own
        if ranking.warning is not None:
            watcher.tell(Warned(f"{date}: {ranking.warning}"))
        return ranking

    def _asker(self, date: dt.date) -> ScoreAsker:
        async def ask(ranker: Ranker, papers: list[RankPaper]) -> dict[str, PaperScore]:
            if self.collected:
                return self._answered(ranker, papers)
            self._hand_over(date, ranker, papers)
            return {}

        return ask

    def _hand_over(self, date: dt.date, ranker: Ranker, papers: list[RankPaper]) -> None:
        new = [paper for paper in papers if paper.arxiv_id not in self.asked]
        for group in ranker.groups(new):
            # The batch's own server: a request it refuses is sent again in the format that
            # server falls back to, and a re-ask may go interactively through it.
            conversation = ranker.conversation(group, self.batches.server)
            receiver = partial(self._concluded, date, ranker, group)
            self.batches.add(ranker.batch_key(group), conversation, receiver)
            self.asked.update(paper.arxiv_id for paper in group)

    def _concluded(
        self,
        date: dt.date,
        ranker: Ranker,
        group: list[RankPaper],
        outcome: Outcome | SummaryFailed,
    ) -> None:
        spend = self.spend.setdefault(date, RankSpend(cost_usd=0.0 if self.costs.price else None))
        if isinstance(outcome, SummaryFailed):
            spend.add(outcome.usage or Usage(), outcome.attempts, outcome.cost_usd)
            for paper in group:
                self.failed[paper.arxiv_id] = str(outcome)
            return
        assert isinstance(outcome, Ranked)
        spend.add(outcome.usage, outcome.attempts, outcome.cost_usd)
        ranker.keep(outcome)
        self.scores.update(outcome.scores)

    def _answered(self, ranker: Ranker, papers: list[RankPaper]) -> dict[str, PaperScore]:
        found = {p.arxiv_id: self.scores[p.arxiv_id] for p in papers if p.arxiv_id in self.scores}
        missing = [paper.arxiv_id for paper in papers if paper.arxiv_id not in found]
        if missing:
            reasons = [self.failed[arxiv_id] for arxiv_id in missing if arxiv_id in self.failed]
            ranker.fail(reasons[0] if reasons else "not scored by the batch")
        return found


def _merged(totals: RankingTotals, first: RankingTotals, spend: RankSpend) -> RankingTotals:
    """A day's figures from pass 2, with the requests it asked in pass 1 (the batch's, and the
    embeddings')."""
    cost = spend.cost_usd
    if cost is not None and first.embedding_cost_usd is not None:
        cost = round(cost + first.embedding_cost_usd, 6)
    return totals.model_copy(
        update={
            "requests": spend.requests,
            "tokens_in": spend.usage.tokens_in,
            "tokens_out": spend.usage.tokens_out,
            "cost_usd": cost,
            "embedding_requests": first.embedding_requests,
            "embedding_tokens": first.embedding_tokens,
            "embedding_cost_usd": first.embedding_cost_usd,
        }
    )
