"""The models every stage talks through.

``Digest`` is the contract with the LLM: its JSON Schema is what the model is asked to fill,
so its field descriptions double as instructions, and it carries no defaults and no length
constraints (OpenAI's strict structured outputs reject them). Counts and lengths are checked by
validators after parsing instead, with messages that can be sent back to the model.

``Day`` is what ``outputs/data/YYYY-MM-DD.json`` holds, the source of truth ``render`` reads.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    field_validator,
    model_serializer,
)

from digest.validation import check_line, check_line_count

DigestLine = Annotated[str, AfterValidator(check_line)]
# What read a PDF's text: pypdf (always installed) or pypdfium2 (digest[fast]).
Extractor = Literal["pypdf", "pypdfium2"]
# What the LLM read of a paper: its full text, or its abstract (the reason says why).
InputKind = Literal["full-text", "abstract"]

NEW_STYLE_ID = r"\d{4}\.\d{4,5}"
OLD_STYLE_ID = r"[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7}"
ARXIV_ID = re.compile(rf"(?:{NEW_STYLE_ID}|{OLD_STYLE_ID})")
_URL = re.compile(r"https?://[^\s()<>\[\]{}\"'`\\]+")


class Introduction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: DigestLine = Field(
        description="One Korean line: what the paper sets out to do "
        "(e.g. '본 연구는 … 방법을 제안하는 것이다.')."
    )
    motivation: DigestLine = Field(
        description="One Korean line: the gap or problem in earlier work that motivates it."
    )
    contribution: DigestLine = Field(
        description="One Korean line: what the paper contributes (method, dataset, finding)."
    )


class Digest(BaseModel):
    """A paper's structured Korean digest. Field names are fixed by the contract."""

    model_config = ConfigDict(extra="forbid")

    introduction: Introduction
    method: list[DigestLine] = Field(
        description="1 to 4 Korean lines on how the method works, naming its key components."
    )
    results: list[DigestLine] = Field(
        description="1 to 3 Korean lines with concrete benchmarks and numbers from the paper."
    )
    limitations: list[DigestLine] = Field(
        description="1 to 2 Korean lines on the limitations the paper states or implies."
    )
    conclusion: list[DigestLine] = Field(
        description="1 to 2 Korean lines on what the work achieves and why it matters."
    )

    @field_validator("method", "results", "limitations", "conclusion", mode="before")
    @classmethod
    def _line_count(cls, lines: object, info: ValidationInfo) -> object:
        return check_line_count(str(info.field_name), lines)


class Links(BaseModel):
    """Where the paper lives. A local PDF has none, and its post block shows no links."""

    model_config = ConfigDict(extra="forbid")

    abs: str | None = None
    alphaxiv: str | None = None
    pdf: str | None = None

    @field_validator("abs", "alphaxiv", "pdf")
    @classmethod
    def _plain_url(cls, url: str | None) -> str | None:
        if url is not None and not _URL.fullmatch(url):
            raise ValueError(
                f"{url!r} is not a plain http(s) URL (no spaces, brackets, quotes or braces)"
            )
        return url

    @classmethod
    def for_arxiv(cls, arxiv_id: str) -> Links:
        """The links the blog shows: always the unversioned ID, as the reference does."""
        return cls(
            abs=f"https://arxiv.org/abs/{arxiv_id}",
            alphaxiv=f"https://www.alphaxiv.org/ko/overview/{arxiv_id}",
            pdf=f"https://arxiv.org/pdf/{arxiv_id}",
        )


class CallUsage(BaseModel):
    """One LLM answer: its tokens, and what became of it."""

    model_config = ConfigDict(extra="forbid")

    tokens_in: int
    tokens_out: int  # reasoning tokens included, as OpenAI counts them
    tokens_cached: int = 0
    tokens_reasoning: int = 0  # of tokens_out, what a reasoning model spent thinking
    # ungrounded: numbers or names the paper does not have; copied: the prompt's worked example
    outcome: Literal["ok", "invalid", "ungrounded", "copied", "cut off", "refused", "looped"] = "ok"


class Usage(BaseModel):
    """Tokens of every answer of one paper, in total and per call."""

    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    tokens_reasoning: int = 0
    calls: list[CallUsage] = Field(default_factory=list)

    @classmethod
    def of(cls, calls: list[CallUsage]) -> Usage:
        usage = cls()
        for call in calls:
            usage.add(call)
        return usage

    def add(self, call: CallUsage) -> CallUsage:
        self.tokens_in += call.tokens_in
        self.tokens_out += call.tokens_out
        self.tokens_cached += call.tokens_cached
        self.tokens_reasoning += call.tokens_reasoning
        self.calls.append(call)
        return call


class Price(NamedTuple):
    """A model's list price, in USD per million tokens."""

    input: float
    cached_input: float
    output: float
    # What a Batch API token costs, as a share of the list price (OpenAI's batches: half).
    batch: float = 0.5

    def for_batch(self) -> Price:
        """The prices of the same tokens sent through the Batch API."""
        share = self.batch
        return Price(self.input * share, self.cached_input * share, self.output * share, 1.0)

    def cost(self, usage: Usage) -> float:
        """What ``usage`` costs. Reasoning tokens are part of ``tokens_out`` (OpenAI counts them
        in ``completion_tokens``), so they are priced as output."""
        uncached = usage.tokens_in - usage.tokens_cached
        total = (
            uncached * self.input
            + usage.tokens_cached * self.cached_input
            + usage.tokens_out * self.output
        )
        return round(total / 1_000_000, 6)

    def estimate(self, prompt_tokens: int, output_tokens: int) -> float:
        """A request's cost before it is sent: its prompt, and ``output_tokens`` of answer."""
        return (prompt_tokens * self.input + output_tokens * self.output) / 1_000_000


_BATCH_ONLY = ("mode", "batch_id", "saved_usd")


class Provenance(BaseModel):
    """How an entry's digest came to be. Imported entries know only where they came from."""

    model_config = ConfigDict(extra="forbid")

    source: Literal["llm", "import"]
    imported_from: str | None = None
    model: str | None = None
    prompt_version: str | None = None
    input: InputKind | None = None
    input_reason: str | None = None
    extractor: Extractor | None = None  # what read the full text
    # Made from the abstract because the PDF could not be had for a reason that may pass (5xx,
    # a timeout): the next run of the day tries the PDF again.
    full_text_pending: bool = False
    input_chars: int | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    tokens_cached: int | None = None
    tokens_reasoning: int | None = None  # part of tokens_out, and priced as output
    # The model the server said answered, when it is not the one asked for (a local server
    # answers with the model it has loaded, whatever the request names).
    answered_by: str | None = None
    attempts: int | None = None
    seconds: float | None = None
    cost_usd: float | None = None
    calls: list[CallUsage] = Field(default_factory=list)
    # Numbers the paper does not state that survived the re-asks, and what was done to each.
    grounding_repairs: list[str] = Field(default_factory=list)
    # Names (models, benchmarks, datasets) the paper never mentions that survived the re-asks:
    # published, since a name may be a fair paraphrase, but listed and warned about.
    ungrounded_names: list[str] = Field(default_factory=list)
    # How much of the title and abstract the PDF's text has (0 to 1); None when not checked.
    identity_score: float | None = None
    # Answered through the Batch API (digest backfill --batch): which batch, and what the
    # batch price saved against the interactive one. Left out of the file when not.
    mode: Literal["batch"] | None = None
    batch_id: str | None = None
    saved_usd: float | None = None

    @model_serializer(mode="wrap")
    def _leave_out_interactive(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An interactive entry's bytes stay what they were before batches existed.
        data: dict[str, Any] = handler(self)
        for name in _BATCH_ONLY:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class PaperStyle(BaseModel):
    """How a paper's block is laid out. The reference uses both styles (its paper 4 is bullets)."""

    model_config = ConfigDict(extra="forbid")

    intro_labels: bool = Field(
        default=True, description="'- Goal: …' lines; without labels the lines are '- …'."
    )
    bullets: bool = Field(
        default=False, description="Method … Conclusion lines as '- ' bullets, not plain lines."
    )


class PaperEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    arxiv_id: str | None = Field(description="Unversioned arXiv ID; None for a local PDF.")
    version: int | None = Field(default=None, description="arXiv version the digest was made from.")
    title: str
    authors: list[str] = Field(default_factory=list)
    links: Links = Field(default_factory=Links)
    digest: Digest
    provenance: Provenance
    style: PaperStyle = Field(default_factory=PaperStyle)

    @field_validator("arxiv_id")
    @classmethod
    def _arxiv_id(cls, arxiv_id: str | None) -> str | None:
        if arxiv_id is not None and not ARXIV_ID.fullmatch(arxiv_id):
            raise ValueError(
                f"{arxiv_id!r} is not an unversioned arXiv ID like '2512.13604' or 'hep-th/9901001'"
            )
        return arxiv_id

    @field_validator("title")
    @classmethod
    def _one_line_title(cls, title: str) -> str:
        # A title comes from arXiv or Hugging Face as it is: bidi overrides and zero-width
        # characters in it would make the post display other than it reads. None is needed.
        title = "".join(c for c in title if unicodedata.category(c) not in ("Cf", "Co"))
        title = " ".join(title.split())
        if not title:
            raise ValueError("is empty")
        return title


_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d:[0-5]\d")


class Day(BaseModel):
    """One day's post: front matter settings and the ordered papers."""

    model_config = ConfigDict(extra="forbid")

    schema_version: Literal[1] = 1
    date: dt.date
    time: str = Field(default="08:15:00", description="Front matter time, HH:MM:SS.")
    title: str = Field(description="Front matter title, e.g. 'Daily Papers — 2025-12-16'.")
    layout: str = "post"
    tags: list[str] = Field(default_factory=lambda: ["papers", "hugginface"])
    categories: list[str] = Field(default_factory=list)
    papers: list[PaperEntry] = Field(default_factory=list)

    @field_validator("time")
    @classmethod
    def _time(cls, time: str) -> str:
        if not _TIME.fullmatch(time):
            raise ValueError(f"{time!r} is not a time of day as HH:MM:SS")
        return time

    @field_validator("title", "layout")
    @classmethod
    def _single_line(cls, text: str) -> str:
        if not text.strip() or "\n" in text or "\r" in text:
            raise ValueError("must be a non-empty single line")
        return text

    @field_validator("tags", "categories")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            if not label.strip() or "\n" in label:
                raise ValueError(f"{label!r} must be a non-empty single line")
        return labels


# What became of a paper in a run. done: digested now; cached: from the digest cache; reused:
# already in the day file; failed: no digest (the reason says why); skipped: an earlier day
# published it, or it was withdrawn; stopped: not started (the --max-cost cap, the deadline).
Status = Literal["done", "cached", "reused", "failed", "skipped", "stopped"]
# Where a paper's work stopped: its metadata, its PDF, the PDF's text, the LLM, the run (not
# started: the --max-cost cap or the run's deadline), or elsewhere (an unexpected error).
Stage = Literal["metadata", "download", "extract", "summarize", "run", "other"]


class PaperReport(BaseModel):
    """One paper of a run report: what became of it and what this run paid for it."""

    model_config = ConfigDict(extra="forbid")

    paper: str = Field(description="The arXiv ID with its version, or the PDF's path.")
    status: Status
    error: str | None = Field(description="Why it has no new entry, or why it was skipped.")
    failed_at: Stage | None = Field(
        default=None, description="The stage a failed or stopped paper stopped at."
    )
    input: InputKind | None
    tokens_in: int | None = Field(description="Tokens this run paid for; null: none.")
    tokens_out: int | None
    cost_usd: float | None = Field(
        description="USD this run paid; null: nothing, or the model's price is unknown."
    )
    stage_seconds: dict[str, float]


class RunTotals(BaseModel):
    model_config = ConfigDict(extra="forbid")

    papers: int
    done: int
    cached: int
    reused: int
    failed: int
    skipped: int
    stopped: int
    tokens_in: int
    tokens_out: int
    cost_usd: float = Field(description="What the run paid, failed papers' answers included.")


class RunReport(BaseModel):
    """``DATE.run.json``, written next to the day file by every run that did something."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    source: str = Field(description="hf, arxiv or ids.")
    started_at: dt.datetime
    seconds: float
    model: str
    base_url: str | None = Field(description="The LLM server; credentials in it are masked.")
    concurrency: int
    post: str | None = Field(description="The post's path; null when the day has no paper.")
    papers: list[PaperReport]
    totals: RunTotals
