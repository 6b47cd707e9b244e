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
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from digest.llm.embed import Embedder, EmbeddingCache, EmbeddingFailed, cosine
from digest.llm.price import CostGuard
from digest.llm.rank import PaperScore, RankCache, Ranker, RankPaper
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


async def choose_by_interests(
    candidates: list[Candidate],
    date: dt.date,
    setup: RunSetup,
    run: RunOptions,
    published: Mapping[str, dt.date] | None,
) -> DayRanking:
    """The day's candidates chosen by ``setup.rank``'s interests, with the run's options to
    plan them with. ``published``: the papers of the days before, when the caller knows them
    better than the day files."""
    assert setup.rank is not None
    if not run.skip_published:
        published = {}
    elif published is None:
        published = setup.store.published_before(date)
    ranking = await rank_day(candidates, setup.rank, setup.llm, setup.cache_dir, run, published)
    spent = run.spent_before + ranking.cost_usd
    ranking.run = replace(run, limit=None, spent_before=spent)
    return ranking


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

    def choose(self, pool: list[Candidate], scores: Mapping[str, PaperScore]) -> list[Candidate]:
        """The day's papers by score (ties, and papers without one, in the source's order):
        the ``limit`` best at or above ``min_score``, and every followed author's."""

        def order(candidate: Candidate) -> tuple[int, int]:
            score = scores.get(candidate.ref.arxiv_id)
            return (-(score.score if score else -1), self.place[candidate.ref.arxiv_id])

        chosen: list[Candidate] = []
        room = self.limit
        for candidate in sorted(pool, key=order) if scores else pool:
            arxiv_id = candidate.ref.arxiv_id
            score = scores.get(arxiv_id)
            if arxiv_id in self.followed:
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


async def rank_day(
    candidates: list[Candidate],
    options: RankOptions,
    llm: LlmOptions,
    cache_dir: Path,
    run: RunOptions,
    published: Mapping[str, object],
) -> DayRanking:
    """The day's candidates chosen by interests (see the module docstring). ``published``:
    the papers of earlier days, which the plan skips."""
    skip = {c.ref.arxiv_id for c in candidates if c.withdrawn or c.ref.arxiv_id in published}
    sorting = _Sorting(candidates, options, run.limit)
    client = make_client(llm)
    embedder: Embedder | None = None
    warnings: list[str] = []
    try:
        costs = CostGuard(llm.price, llm.max_output_tokens, run.max_cost, run.spent_before)
        server = LlmServer(llm, client)
        allowed = None
        if options.embedding_model:
            embedder = Embedder(
                server,
                options.embedding_model,
                options.embedding_price,
                EmbeddingCache(cache_dir),
                costs,
                options.embedding_batch,
            )
            try:
                allowed = await _pre_rank(sorting, sorting.kept(skip), embedder)
            except EmbeddingFailed as error:
                sorting.similarity.clear()
                warnings.append(
                    f"the embedding pre-rank failed ({error}); the LLM ranks the first "
                    f"{options.rank_pool} candidates in the source's order"
                )
        pool = sorting.pool(skip, allowed)
        ranker = Ranker(server, options, RankCache(cache_dir), costs)
        papers = [RankPaper(arxiv_id=c.ref.arxiv_id, title=t, abstract=a)
                  for c in pool for t, a in [_text_of(c)]]  # fmt: skip
        scores = await ranker.scores(papers) if papers else {}
    finally:
        await client.close()
    spend = ranker.spend
    if spend.failed is not None:
        warnings.append(
            f"the ranking by interests failed ({spend.failed}); the day takes the papers "
            "the keywords keep in the source's order"
        )
        scores = {}
    chosen = sorting.choose(pool, scores)
    embedded = embedder.spend if embedder is not None else None
    cost = spend.cost_usd
    if cost is not None and embedded is not None and embedded.cost_usd is not None:
        cost = round(cost + embedded.cost_usd, 6)
    totals = RankingTotals(
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
    spent = (spend.cost_usd or 0.0) + ((embedded.cost_usd or 0.0) if embedded else 0.0)
    skipped = [c for c in candidates if c.ref.arxiv_id in skip]
    warning = "; ".join(warnings) or None
    return DayRanking(chosen + skipped, sorting.scored(scores), totals, spent, warning)


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
