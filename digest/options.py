"""What each part of a run is given: the few options it uses, split from ``Settings`` once, in
the CLI (``Settings.llm_options`` and the like). A part never sees the whole configuration, so
what it depends on is in its signature, and a test builds only that.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from digest.models import Extractor, Price
from digest.net import RetryPolicy

# json_schema: strict structured outputs; json_object: JSON mode with the schema in the prompt.
AnswerFormat = Literal["json_schema", "json_object"]
# auto: json_schema, falling back to json_object for the run when the server rejects it.
LlmMode = Literal[AnswerFormat, "auto"]
ReasoningEffort = Literal["minimal", "low", "medium", "high"]


@dataclass(frozen=True)
class LlmOptions:
    """The LLM server and how to ask it (see ``digest.llm.summarize``)."""

    model: str
    api_key: str | None
    base_url: str | None
    mode: LlmMode
    temperature: float | None
    reasoning_effort: ReasoningEffort | None
    max_output_tokens: int
    timeout: float  # seconds a request may take in all
    context_tokens: int | None
    max_reasks: int
    text_budget: int  # characters of paper text, named in messages about fitting the context
    retry: RetryPolicy  # max_seconds is the paper's time at the LLM (llm_retry_budget)
    price: Price | None
    concurrency: int = 4  # papers at the LLM at once

    @property
    def where(self) -> str:
        return self.base_url or "the OpenAI API"


@dataclass
class KeyCheck:
    """What a run knows of its API key, kept across the pipelines it opens (a backfill opens
    one a day), so that the server is asked about it once a run (``summarize.check_key``)."""

    asked: bool = False  # GET /models was sent
    # No longer in question: the server listed its models, or answered a paper's request with
    # something other than a refusal (or could not be reached: each paper then says so).
    settled: bool = False


@dataclass(frozen=True)
class FetchOptions:
    """The arXiv API and the PDF host (see ``digest.sources.fetch``)."""

    arxiv_api_url: str
    arxiv_pdf_url: str
    arxiv_delay: float  # seconds between two arXiv API requests
    http_timeout: float  # seconds a request may take in all
    arxiv_retry: RetryPolicy
    pdf_retry: RetryPolicy
    pdf_folder: Path  # where downloaded PDFs are kept
    pdf_max_mb: float
    pdf_redirect_hosts: frozenset[str]
    download_rate: float  # downloads started a second; 0: no limit
    download_concurrency: int
    timezone: str  # the zone of a day, for --source arxiv


@dataclass(frozen=True)
class HfOptions:
    """Hugging Face Daily Papers (see ``digest.sources.papers``)."""

    api_url: str
    http_timeout: float
    retry: RetryPolicy


@dataclass(frozen=True)
class ExtractOptions:
    """How a PDF's text is read (see ``digest.text.extract``)."""

    extractor: Extractor
    timeout: float  # seconds one PDF may take
    text_budget: int  # characters of text kept for the LLM


@dataclass(frozen=True)
class BatchOptions:
    """How the Batch API is used (see ``digest.llm.batch``)."""

    poll_first: float  # seconds before the second look at a batch; the wait grows by half
    poll_max: float  # the longest wait between two looks
    max_retries: int  # times a request that failed or expired in a batch is sent again
    reask_interactive: bool = False  # re-asks as interactive requests, not a second batch


# Papers in flight at the run's deadline get this long (at most a tenth of the deadline).
DEADLINE_GRACE_S = 30.0


@dataclass(frozen=True)
class RunOptions:
    """How this run treats the papers: what ``daily``'s flags ask for."""

    force: bool = False  # no reuse, no digest cache
    max_cost: float | None = None  # USD the run may spend, estimated before each paper
    spent_before: float = 0.0  # USD spent on earlier days of a backfill, counted in max_cost
    deadline_minutes: float | None = None  # past it, no paper is started
    limit: int | None = None  # papers a day takes from the source; None: all of them
    skip_published: bool = True  # leave out papers an earlier day has
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
