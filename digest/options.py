"""What each part of a run is given: the few options it uses, split from ``Settings`` once, in
the CLI (``Settings.llm_options`` and the like). A part never sees the whole configuration, so
what it depends on is in its signature, and a test builds only that.

A setting is declared once, by its ``Field`` in ``digest/settings.py``. An options field that
is a setting's value says which one, ``Annotated[float, Setting("llm_timeout")]`` (or
``Setting()`` when the names are the same), and ``Settings`` fills every such field itself:
adding a setting to a part is one line here, with no builder to extend. The other fields are
worked out from several settings (a ``RetryPolicy``, a ``Price``) or given per run (``force``),
and each builder in ``Settings`` passes them by name.
"""

from __future__ import annotations

import dataclasses
import functools
import time
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Literal

from digest.models import Extractor, Price
from digest.net import RetryPolicy

# json_schema: strict structured outputs; json_object: JSON mode with the schema in the prompt.
AnswerFormat = Literal["json_schema", "json_object"]
# auto: json_schema, falling back to json_object for the run when the server rejects it.
LlmMode = Literal[AnswerFormat, "auto"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


@dataclass(frozen=True)
class Setting:
    """Marks an options field as the value of the setting ``name`` (the field's own name when
    None), taken as it is: the setting's ``Field`` says what it means and its default."""

    name: str | None = None


@functools.cache
def settings_taken(kind: type) -> Mapping[str, str]:
    """The fields of the options class ``kind`` that are settings' values, each with the
    setting's name, in the order of the class."""
    # The annotations are strings here (postponed evaluation): resolved in this module.
    hints = typing.get_type_hints(kind, include_extras=True)
    taken: dict[str, str] = {}
    for item in dataclasses.fields(kind):
        for mark in getattr(hints[item.name], "__metadata__", ()):
            if isinstance(mark, Setting):
                taken[item.name] = mark.name or item.name
    return MappingProxyType(taken)


@dataclass(frozen=True)
class LlmOptions:
    """The LLM server and how to ask it (see ``digest.llm.summarize``)."""

    model: Annotated[str, Setting()]
    api_key: Annotated[str | None, Setting()]  # the secret itself, no longer a SecretStr
    base_url: Annotated[str | None, Setting()]
    mode: Annotated[LlmMode, Setting("llm_mode")]
    temperature: Annotated[float | None, Setting()]
    reasoning_effort: Annotated[ReasoningEffort | None, Setting()]
    max_output_tokens: Annotated[int, Setting()]
    timeout: Annotated[float, Setting("llm_timeout")]  # seconds a request may take in all
    context_tokens: Annotated[int | None, Setting()]
    max_reasks: Annotated[int, Setting()]
    # Characters of paper text, named in messages about fitting the context.
    text_budget: Annotated[int, Setting()]
    retry: RetryPolicy  # max_seconds is the paper's time at the LLM (llm_retry_budget)
    price: Price | None
    concurrency: Annotated[int, Setting()]  # papers at the LLM at once

    @property
    def where(self) -> str:
        return self.base_url or "the OpenAI API"


@dataclass
class KeyCheck:
    """What a run knows of its API key, kept across the pipelines it opens (a backfill opens
    one a day), so that the server is asked about it once a run (``LlmServer.check_key``)."""

    asked: bool = False  # GET /models was sent
    # No longer in question: the server listed its models, or answered a paper's request with
    # something other than a refusal (or could not be reached: each paper then says so).
    settled: bool = False


@dataclass(frozen=True)
class FetchOptions:
    """The arXiv API and the PDF host (see ``digest.sources.fetch``)."""

    arxiv_api_url: Annotated[str, Setting()]
    arxiv_pdf_url: Annotated[str, Setting()]
    arxiv_delay: Annotated[float, Setting()]  # seconds between two arXiv API requests
    http_timeout: Annotated[float, Setting()]  # seconds a request may take in all
    arxiv_retry: RetryPolicy
    pdf_retry: RetryPolicy
    pdf_folder: Path  # where downloaded PDFs are kept
    pdf_max_mb: Annotated[float, Setting()]
    pdf_redirect_hosts: frozenset[str]  # lower-cased, for comparing with a URL's host
    download_rate: Annotated[float, Setting()]  # downloads started a second; 0: no limit
    download_concurrency: Annotated[int, Setting()]
    timezone: Annotated[str, Setting()]  # the zone of a day, for --source arxiv


@dataclass(frozen=True)
class HfOptions:
    """Hugging Face Daily Papers (see ``digest.sources.papers``)."""

    api_url: Annotated[str, Setting("hf_api_url")]
    http_timeout: Annotated[float, Setting()]
    retry: RetryPolicy


@dataclass(frozen=True)
class ExtractOptions:
    """How a PDF's text is read (see ``digest.text.extract``)."""

    extractor: Annotated[Extractor, Setting()]
    timeout: Annotated[float, Setting("extract_timeout")]  # seconds one PDF may take


@dataclass(frozen=True)
class BatchOptions:
    """How the Batch API is used (see ``digest.llm.batch``)."""

    # Seconds before the second look at a batch; the wait grows by half.
    poll_first: Annotated[float, Setting("batch_poll")]
    poll_max: float  # the longest wait between two looks, never under poll_first
    # Times a request that failed or expired in a batch is sent again.
    max_retries: Annotated[int, Setting("batch_retries")]
    reask_interactive: bool = False  # re-asks as interactive requests, not a second batch


@dataclass(frozen=True)
class NotifyOptions:
    """Where a written post is announced (see ``digest.blog.notify``); no URL, no message."""

    urls: Annotated[tuple[str, ...], Setting("notify")]  # Apprise URLs; they carry tokens
    timeout: Annotated[float, Setting("notify_timeout")]  # seconds the message may take in all
    site_url: Annotated[str | None, Setting()]  # the blog's base URL; None: from _config.yml


@dataclass(frozen=True)
class RankOptions:
    """How a day's candidates are chosen by the reader's interests (see ``digest.llm.rank``
    and ``digest.runs.ranking``); only made when ``interests`` is set."""

    interests: Annotated[str, Setting()]
    include_keywords: Annotated[tuple[str, ...], Setting()]
    exclude_keywords: Annotated[tuple[str, ...], Setting()]
    follow_authors: Annotated[tuple[str, ...], Setting()]
    min_score: Annotated[int, Setting()]  # 0 to 10
    rank_pool: Annotated[int, Setting()]  # the most candidates the LLM scores in a day
    per_request: int = 20  # papers scored in one request
    # The embedding pre-rank: when more than rank_pool candidates are left, the rank_pool
    # most similar to the interests are scored. None: off.
    embedding_model: Annotated[str | None, Setting()] = None
    embedding_price: Price | None = None  # the embedding model's, input tokens only
    embedding_batch: int = 256  # texts embedded in one request


# Papers in flight at the run's deadline get this long (at most a tenth of the deadline).
DEADLINE_GRACE_S = 30.0


@dataclass(frozen=True)
class RunOptions:
    """How this run treats the papers: what ``daily``'s flags ask for."""

    force: bool = False  # no reuse, no digest cache
    max_cost: float | None = None  # USD the run may spend, estimated before each paper
    spent_before: float = 0.0  # USD spent on earlier days of a backfill, counted in max_cost
    # Past it, no paper is started.
    deadline_minutes: Annotated[float | None, Setting("run_deadline")] = None
    # Papers a day takes from the source; None: all of them (--source ids: every one given).
    limit: int | None = None
    skip_published: Annotated[bool, Setting()] = True  # leave out papers an earlier day has
    started: float = field(default_factory=time.monotonic)

    @property
    def deadline(self) -> float | None:
        """The ``time.monotonic()`` past which no paper is started."""
        if self.deadline_minutes is None:
            return None
        return self.started + self.deadline_minutes * 60

    @property
    def grace(self) -> float:
        """Seconds a paper in flight at the deadline may still take."""
        return min(DEADLINE_GRACE_S, (self.deadline_minutes or 0) * 60 / 10)

    def past_deadline(self) -> bool:
        deadline = self.deadline
        return deadline is not None and time.monotonic() >= deadline
