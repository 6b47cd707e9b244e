"""A day's candidates chosen by the reader's interests (the ``interests`` setting).

Before the day is planned (``digest.runs.day.plan_day``), when interests are set:

1. papers the day would skip anyway (withdrawn, or published by an earlier day) are left as
   they are, for the plan to list as skipped;
2. the keywords: a paper naming an ``exclude_keywords`` entry in its title or abstract is
   filtered out, then, when ``include_keywords`` is set, one naming none of them. Matching is
   case-insensitive, on word boundaries for Latin script ("RL" is not in "URL") and by
   substring for Hangul;
3. the first ``rank_pool`` papers left, in the source's order, are scored by the LLM
   (``digest.llm.rank``: the cache's scores first, only the rest asked); with
   ``embedding_model`` set and more papers left than that, the ``rank_pool`` most similar
   to the interests instead (``digest.llm.embed``; ties in the source's order), or, when the
   embeddings fail, the first ones with a warning;
4. the day takes the ``limit`` best-scored at or above ``min_score`` (ties in the source's
   order), and every paper of a followed author whatever its score or keywords.

When the ranking fails (its answers never passed, or ``--max-cost`` left no room), the
papers left after the keywords keep the source's order and the run warns: the day is
written all the same. What became of every candidate goes into the day file
(``Day.candidates``) and the run report (``RankingTotals``).
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from digest.llm.embed import Embedder, EmbeddingCache, EmbeddingFailed, EmbedSpend, cosine
from digest.llm.price import CostGuard
from digest.llm.rank import PaperScore, RankCache, Ranker, RankPaper, RankSpend, ScoreAsker
from digest.llm.server import LlmServer, make_client
from digest.models import CandidateScore, DropReason, RankingTotals
from digest.options import LlmOptions, RankOptions, RunOptions
from digest.runs.setup import RunSetup
from digest.sources.papers import Candidate

_HANGUL = re.compile(r"[\u1100-\u11ff\u3130-\u318f\uac00-\ud7a3]")


def keyword_in(keyword: str, text: str) -> bool:
    """Whether ``text`` names ``keyword``: without case; a keyword with Hangul anywhere in a
    word, any other on word boundaries."""
    word = keyword.strip().casefold()
    if not word:
        return False
    folded = text.casefold()
    if _HANGUL.search(word):
        return word in folded
    return re.search(rf"(?<!\w){re.escape(word)}(?!\w)", folded) is not None


def author_key(name: str) -> str:
    """A name as compared with a followed author's: no case, accents, punctuation or extra
    blanks ("José  M. Álvarez" is "jose m alvarez")."""
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(char for char in plain if not unicodedata.combining(char))
    words = re.sub(r"[^\w\s]", " ", plain.casefold()).split()
    return " ".join(words)


def _text_of(candidate: Candidate) -> tuple[str, str]:
    metadata = candidate.metadata
    if metadata is None:
        return candidate.title, ""
    return metadata.title or candidate.title, metadata.abstract


def filtered_out(candidate: Candidate, options: RankOptions) -> bool:
    """Whether the keywords leave ``candidate`` out: an excluded one named, or, with
    ``include_keywords`` set, none of them named."""
    text = "\n".join(_text_of(candidate))
    if any(keyword_in(word, text) for word in options.exclude_keywords):
        return True
    included = [word for word in options.include_keywords if word.strip()]
    return bool(included) and not any(keyword_in(word, text) for word in included)


def followed(candidate: Candidate, options: RankOptions) -> bool:
    """Whether a followed author wrote ``candidate``."""
    wanted = {author_key(name) for name in options.follow_authors} - {""}
    authors = candidate.metadata.authors if candidate.metadata else []
    return any(author_key(name) in wanted for name in authors)


@dataclass
class DayRanking:
    """The day's candidates as chosen: those the plan is to take, in order, and what became of
    each candidate."""

    candidates: list[Candidate]  # to plan: the chosen ones by score, then those to skip
    scores: list[CandidateScore]  # every candidate, in the source's order
    totals: RankingTotals
    cost_usd: float  # what the ranking cost this run, for --max-cost
    warning: str | None = None
    # The run's options for planning the chosen ones: every one taken (the limit is the
    # ranking's), the ranking's cost counted in --max-cost.
    run: RunOptions = field(default_factory=RunOptions)
    pooled: set[str] = field(default_factory=set)  # the papers the LLM was to score
    pre_rank_failed: bool = False  # the embeddings failed: the pool is the source's first


async def choose_by_interests(
    candidates: list[Candidate],
    date: dt.date,
    setup: RunSetup,
    run: RunOptions,
    published: Mapping[str, dt.date] | None,
    *,
    asker: ScoreAsker | None = None,
    embed: bool = True,
) -> DayRanking:
    """The day's candidates chosen by ``setup.rank``'s interests, with the run's options to
    plan them with. ``published``: the papers of the days before, when the caller knows them
    better than the day files. ``asker``: how the scores the cache lacks are asked for (a
    backfill's batch); ``embed``: False to rank without the embedding pre-rank."""
    assert setup.rank is not None
    if not run.skip_published:
        published = {}
    elif published is None:
        published = setup.store.published_before(date)
    day = Ranking(setup.rank, setup.llm, setup.cache_dir, asker=asker, embed=embed)
    ranking = await day.rank(candidates, run, published, _papers_had(setup, date, run))
    spent = run.spent_before + ranking.cost_usd
    ranking.run = replace(run, limit=None, spent_before=spent)
    return ranking


def _papers_had(setup: RunSetup, date: dt.date, run: RunOptions) -> set[str]:
    """The papers the day file has, which a re-run keeps (``plan_day``): they take their
    places within ``limit`` before any new paper."""
    if run.force or not setup.store.data_path(date).exists():
        return set()
    return {entry.arxiv_id or "" for entry in setup.store.load_day(date).papers}


@dataclass
class _Sorting:
    """The candidates of a ranking as they are sorted into the day or out of it."""

    source: list[Candidate]
    options: RankOptions
    limit: int | None

    def __post_init__(self) -> None:
        self.place = {c.ref.arxiv_id: place for place, c in enumerate(self.source)}
        self.dropped: dict[str, DropReason] = {}
        self.similarity: dict[str, float] = {}
        self.followed = {c.ref.arxiv_id for c in self.source if followed(c, self.options)}

    def kept(self, skip: set[str]) -> list[Candidate]:
        """The papers the keywords keep, followed authors' aside, in the source's order."""
        aside = skip | self.followed
        return [c for c in self.source
                if c.ref.arxiv_id not in aside and not filtered_out(c, self.options)]  # fmt: skip

    def pool(self, skip: set[str], allowed: set[str] | None = None) -> list[Candidate]:
        """The papers to score: those the keywords keep, up to ``rank_pool`` (only the
        ``allowed`` ones, when the pre-rank chose), and those of followed authors."""
        pool: list[Candidate] = []
        taken = 0
        for candidate in self.source:
            arxiv_id = candidate.ref.arxiv_id
            if arxiv_id in skip:
                continue
            if arxiv_id in self.followed:
                pool.append(candidate)
            elif filtered_out(candidate, self.options):
                self.dropped[arxiv_id] = "filtered out"
            elif taken >= self.options.rank_pool or (
                allowed is not None and arxiv_id not in allowed
            ):
                self.dropped[arxiv_id] = "beyond pool"
            else:
                pool.append(candidate)
                taken += 1
        return pool

    def choose(
        self, pool: list[Candidate], scores: Mapping[str, PaperScore], had: Collection[str]
    ) -> list[Candidate]:
        """The day's papers by score (ties, and papers without one, in the source's order):
        the ``limit`` best at or above ``min_score``, and every followed author's. The papers
        the day file ``had`` keep their places, and take room within the limit."""

        def order(candidate: Candidate) -> tuple[int, int]:
            score = scores.get(candidate.ref.arxiv_id)
            return (-(score.score if score else -1), self.place[candidate.ref.arxiv_id])

        chosen: list[Candidate] = []
        room = None if self.limit is None else self.limit - len(had)
        for candidate in sorted(pool, key=order) if scores else pool:
            arxiv_id = candidate.ref.arxiv_id
            score = scores.get(arxiv_id)
            if arxiv_id in self.followed or arxiv_id in had:
                chosen.append(candidate)
            elif score is not None and score.score < self.options.min_score:
                self.dropped[arxiv_id] = "below min_score"
            elif room is not None and room <= 0:
                self.dropped[arxiv_id] = "beyond limit"
            else:
                chosen.append(candidate)
                room = None if room is None else room - 1
        return chosen

    def scored(self, scores: Mapping[str, PaperScore]) -> list[CandidateScore]:
        listed = []
        for candidate in self.source:
            arxiv_id = candidate.ref.arxiv_id
            score = scores.get(arxiv_id)
            listed.append(
                CandidateScore(
                    arxiv_id=arxiv_id,
                    score=score.score if score else None,
                    reason=score.reason if score else None,
                    followed=arxiv_id in self.followed,
                    dropped=self.dropped.get(arxiv_id),
                    similarity=self.similarity.get(arxiv_id),
                )
            )
        return listed


class Ranking:
    """Choosing days by interests (see the module docstring), with one LLM and cache."""

    def __init__(
        self,
        options: RankOptions,
        llm: LlmOptions,
        cache_dir: Path,
        *,
        asker: ScoreAsker | None = None,
        embed: bool = True,
    ) -> None:
        self.options = options
        self.llm = llm
        self.cache_dir = cache_dir
        self.asker = asker
        self.embed = embed

    async def rank(
        self,
        candidates: list[Candidate],
        run: RunOptions,
        published: Mapping[str, object],
        had: Collection[str] = (),
    ) -> DayRanking:
        """The day's candidates chosen. ``published``: the papers of earlier days, which the
        plan skips; ``had``: the papers the day file has."""
        skip = {c.ref.arxiv_id for c in candidates if c.withdrawn or c.ref.arxiv_id in published}
        sorting = _Sorting(candidates, self.options, run.limit)
        llm = self.llm
        costs = CostGuard(llm.price, llm.max_output_tokens, run.max_cost, run.spent_before)
        client = make_client(self.llm)
        try:
            server = LlmServer(self.llm, client)
            embedder, allowed, warning = await self._pre_rank(server, costs, sorting, skip)
            pool = sorting.pool(skip, allowed)
            ranker = Ranker(server, self.options, RankCache(self.cache_dir), costs, self.asker)
            scores = await ranker.scores([RankPaper(arxiv_id=c.ref.arxiv_id, title=t, abstract=a)
                                          for c in pool for t, a in [_text_of(c)]])  # fmt: skip
        finally:
            await client.close()
        warnings = [warning] if warning else []
        if ranker.spend.failed is not None:
            warnings.append(_failure_warning(ranker.spend.failed, len(pool) - len(scores), scores))
        chosen = sorting.choose(pool, scores, had)
        embedded = embedder.spend if embedder is not None else None
        totals = _totals(candidates, sorting, scores, chosen, ranker.spend, embedded)
        spent = (ranker.spend.cost_usd or 0.0) + ((embedded.cost_usd or 0.0) if embedded else 0.0)
        skipped = [c for c in candidates if c.ref.arxiv_id in skip]
        warned = "; ".join(warnings) or None
        ranking = DayRanking(chosen + skipped, sorting.scored(scores), totals, spent, warned)
        ranking.pooled = {candidate.ref.arxiv_id for candidate in pool}
        ranking.pre_rank_failed = warning is not None
        return ranking

    async def _pre_rank(
        self, server: LlmServer, costs: CostGuard, sorting: _Sorting, skip: set[str]
    ) -> tuple[Embedder | None, set[str] | None, str | None]:
        """The embedder, the papers the pre-rank allows (None: all), and a warning when it
        failed."""
        options = self.options
        if not self.embed or not options.embedding_model:
            return None, None, None
        embedder = Embedder(
            server,
            options.embedding_model,
            options.embedding_price,
            EmbeddingCache(self.cache_dir),
            costs,
            options.embedding_batch,
        )
        try:
            return embedder, await _pre_rank(sorting, sorting.kept(skip), embedder), None
        except EmbeddingFailed as error:
            sorting.similarity.clear()
            return (
                embedder,
                None,
                (
                    f"the embedding pre-rank failed ({error}); the LLM ranks the first "
                    f"{options.rank_pool} candidates in the source's order"
                ),
            )


def _failure_warning(why: str, unscored: int, scores: Mapping[str, PaperScore]) -> str:
    if not scores:
        return (
            f"the ranking by interests failed ({why}); the day takes the papers the keywords "
            "keep in the source's order"
        )
    papers = f"{unscored} paper{'' if unscored == 1 else 's'}"
    return (
        f"the ranking by interests has no score for {papers} ({why}); they follow the "
        "scored ones in the source's order"
    )


def _totals(
    candidates: list[Candidate],
    sorting: _Sorting,
    scores: Mapping[str, PaperScore],
    chosen: list[Candidate],
    spend: RankSpend,
    embedded: EmbedSpend | None,
) -> RankingTotals:
    cost = spend.cost_usd
    if cost is not None and embedded is not None and embedded.cost_usd is not None:
        cost = round(cost + embedded.cost_usd, 6)
    return RankingTotals(
        candidates=len(candidates),
        filtered=sum(reason == "filtered out" for reason in sorting.dropped.values()),
        ranked=len(scores),
        kept=len(chosen),
        requests=spend.requests,
        tokens_in=spend.usage.tokens_in,
        tokens_out=spend.usage.tokens_out,
        cost_usd=cost,
        failed=spend.failed,
        embedding_requests=embedded.requests if embedded else None,
        embedding_tokens=embedded.tokens if embedded else None,
        embedding_cost_usd=embedded.cost_usd if embedded else None,
    )


async def _pre_rank(
    sorting: _Sorting, kept: list[Candidate], embedder: Embedder
) -> set[str] | None:
    """The ``rank_pool`` papers of ``kept`` most similar to the interests (ties in the
    source's order), their similarities noted; None when all of them fit in the pool."""
    options = sorting.options
    if len(kept) <= options.rank_pool:
        return None
    texts = {"interests": options.interests.strip()}
    texts.update({f"paper:{c.ref.arxiv_id}": "\n\n".join(_text_of(c)) for c in kept})
    vectors = await embedder.vectors(texts)
    wanted = vectors["interests"]
    for candidate in kept:
        arxiv_id = candidate.ref.arxiv_id
        sorting.similarity[arxiv_id] = round(cosine(vectors[f"paper:{arxiv_id}"], wanted), 6)
    best = sorted(
        kept, key=lambda c: (-sorting.similarity[c.ref.arxiv_id], sorting.place[c.ref.arxiv_id])
    )
    return {c.ref.arxiv_id for c in best[: options.rank_pool]}
