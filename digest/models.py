"""The models every stage talks through.

``Digest`` is the contract with the LLM: its JSON Schema is what the model is asked to fill,
so its field descriptions double as instructions, and it carries no defaults and no length
constraints (OpenAI's strict structured outputs reject them). Counts and lengths are checked by
validators after parsing instead, with messages that can be sent back to the model.

``Day`` is what ``outputs/data/YYYY-MM-DD.json`` holds, the source of truth ``render`` reads.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Callable
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_serializer,
    model_validator,
)

from digest.redact import redact
from digest.validation import check_line, check_line_count

DigestLine = Annotated[str, AfterValidator(check_line)]
# What read a PDF's text: pypdf (always installed) or pypdfium2 (digest[fast]).
Extractor = Literal["pypdf", "pypdfium2"]
# What the LLM read of a paper: its full text, or its abstract (the reason says why).
InputKind = Literal["full-text", "abstract"]
# What became of one LLM answer. ungrounded: numbers or names the paper does not have;
# unsupported: lines whose quotes are not in the paper (digest.llm.evidence);
# copied: the prompt's worked example.
CallOutcome = Literal[
    "ok", "invalid", "ungrounded", "unsupported", "copied", "cut off", "refused", "looped"
]

NEW_STYLE_ID = r"\d{4}\.\d{4,5}"
OLD_STYLE_ID = r"[a-z]+(?:-[a-z]+)*(?:\.[A-Z]{2})?/\d{7}"
ARXIV_ID = re.compile(rf"(?:{NEW_STYLE_ID}|{OLD_STYLE_ID})")
_URL = re.compile(r"https?://[^\s()<>\[\]{}\"'`\\]+")
_HF_PAPER = re.compile(rf"https://huggingface\.co/papers/{NEW_STYLE_ID}")

# The figures of the files (costs, token counts, durations) are summed over months by
# 'digest stats'. Files come from older versions and from hand edits, and JSON can say NaN and
# Infinity: a NaN or infinite figure crashed the trend and turned totals into null, a negative
# one was summed as it stood. Each figure a file holds is checked finite and between 0 and a
# bound far above any real one (a digest costs cents and some 10^4 tokens), which also keeps a
# sum of years of them finite.
MAX_USD = 1_000_000.0
MAX_TOKENS = 10**12
MAX_SECONDS = 10**8  # three years


def figure(top: float, unknown: float | None = None, where: str = "") -> WrapValidator:
    """A figure read from a file: one that is not finite, or outside 0 to ``top``, is read as
    ``unknown`` (what the field already writes for a figure not known) instead of failing the
    whole file, whose digests and post are still good. It is added to the validation
    context's ``dropped`` list, for the reader to name the file once
    (``digest.files.parse_model``), after ``where`` (what holds the field). A value of the
    wrong type still fails as usual."""

    def check(value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> object:
        # NaN and Infinity are checked before the type: an integer field cannot hold them,
        # and they would fail the file instead of the figure.
        if not (isinstance(value, float) and not math.isfinite(value)):
            value = handler(value)
            if not isinstance(value, int | float) or _in_range(value, top):
                return value
        dropped = info.context.get("dropped") if isinstance(info.context, dict) else None
        if isinstance(dropped, list):
            shown = repr(value) if len(repr(value)) <= 20 else repr(value)[:17] + "..."
            dropped.append(f"{where}{info.field_name} {shown}")
        return unknown

    return WrapValidator(check)


def _in_range(value: float, top: float) -> bool:
    # An int as large as 10**400 is no float: math.isfinite would raise on it.
    return (isinstance(value, int) or math.isfinite(value)) and 0 <= value <= top


# Optional figures: null is "not known" already (a model without a price has a null cost).
Usd = Annotated[float | None, figure(MAX_USD)]
Count = Annotated[int | None, figure(MAX_TOKENS)]  # tokens, characters, attempts
Seconds = Annotated[float | None, figure(MAX_SECONDS)]


# What the LLM is told each field holds (in the digest's schema and the quoted answer's).
_HELP = {
    "goal": "One Korean line: what the paper sets out to do "
    "(e.g. '본 연구는 … 방법을 제안하는 것이다.').",
    "motivation": "One Korean line: the gap or problem in earlier work that motivates it.",
    "contribution": "One Korean line: what the paper contributes (method, dataset, finding).",
    "method": "1 to 4 Korean lines on how the method works, naming its key components.",
    "results": "1 to 3 Korean lines with concrete benchmarks and numbers from the paper.",
    "limitations": "1 to 2 Korean lines on the limitations the paper states or implies.",
    "conclusion": "1 to 2 Korean lines on what the work achieves and why it matters.",
}


class Introduction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: DigestLine = Field(description=_HELP["goal"])
    motivation: DigestLine = Field(description=_HELP["motivation"])
    contribution: DigestLine = Field(description=_HELP["contribution"])


class Digest(BaseModel):
    """A paper's structured Korean digest. Field names are fixed by the contract."""

    model_config = ConfigDict(extra="forbid")

    introduction: Introduction
    method: list[DigestLine] = Field(description=_HELP["method"])
    results: list[DigestLine] = Field(description=_HELP["results"])
    limitations: list[DigestLine] = Field(description=_HELP["limitations"])
    conclusion: list[DigestLine] = Field(description=_HELP["conclusion"])

    @field_validator("method", "results", "limitations", "conclusion", mode="before")
    @classmethod
    def _line_count(cls, lines: object, info: ValidationInfo) -> object:
        return check_line_count(str(info.field_name), lines)


def unprintable(text: str) -> bool:
    """Whether ``text`` holds a control or format character (an escape sequence, a bidi
    override, a zero-width character) but line breaks, tabs and soft hyphens: a terminal
    ('digest show') or a page would act on it."""
    return any(
        unicodedata.category(char) in ("Cc", "Cf") and char not in "\n\t\u00ad" for char in text
    )


def _printable_quote(quote: str) -> str:
    if unprintable(quote):
        raise ValueError("a quote holds a control or invisible character")
    return quote


def by_field(data: dict[str, Any]) -> dict[str, Any]:
    """Each line of ``data`` in the digest's shape (a digest's lines, or their quotes) by its
    field name, in the post's order: ``introduction.goal`` … ``results[0]`` …"""
    intro = data["introduction"]
    found = {f"introduction.{name}": intro[name] for name in ("goal", "motivation", "contribution")}
    for section in ("method", "results", "limitations", "conclusion"):
        for index, line in enumerate(data[section]):
            found[f"{section}[{index}]"] = line
    return found


# One quote of the paper behind a line (``digest.llm.evidence``): a few words to a sentence or
# two; the bound keeps a hostile file from holding megabytes in one.
Quote = Annotated[str, Field(min_length=1, max_length=2000), AfterValidator(_printable_quote)]
LineQuotes = Annotated[list[Quote], Field(min_length=1, max_length=2)]


class IntroductionEvidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: LineQuotes
    motivation: LineQuotes
    contribution: LineQuotes


class Evidence(BaseModel):
    """Each line's verbatim quotes of the paper, in the digest's shape, each found in the text
    the LLM was sent when the digest was made. Entries made before evidence was asked for, or
    imported from posts, have none."""

    model_config = ConfigDict(extra="forbid")

    introduction: IntroductionEvidence
    method: Annotated[list[LineQuotes], Field(max_length=4)]
    results: Annotated[list[LineQuotes], Field(max_length=3)]
    limitations: Annotated[list[LineQuotes], Field(max_length=2)]
    conclusion: Annotated[list[LineQuotes], Field(max_length=2)]

    def by_field(self) -> dict[str, list[str]]:
        """Each line's quotes by its field name (``introduction.goal``, ``results[0]``)."""
        return by_field(self.model_dump())

    def fits(self, digest: Digest) -> bool:
        """Whether it has quotes for exactly the lines of ``digest``."""
        return all(
            len(getattr(self, section)) == len(getattr(digest, section))
            for section in ("method", "results", "limitations", "conclusion")
        )

    def without(self, dropped: dict[str, set[int]]) -> Evidence:
        """The evidence of the lines left when the lines ``dropped`` (by section, indexes)
        are taken out."""
        data = self.model_dump()
        for section, indexes in dropped.items():
            data[section] = [q for i, q in enumerate(data[section]) if i not in indexes]
        return Evidence.model_validate(data)


# What the model answers a digest request with: the digest's lines, each an object with its
# Korean text and its quotes of the paper (digest.llm.evidence checks them). ``Quoted.split``
# gives the ``Digest`` a post shows and the ``Evidence`` the day file keeps beside it.
QUOTES_HELP = (
    "1 short quote (about 6 to 12 words, a clause is enough; a second only when the line's "
    "numbers are not all in one place), copied verbatim from the paper text given in <paper>, "
    "in the paper's language, that states what the line says; every number of the line must "
    "appear in one of them."
)


class QuotedLine(BaseModel):
    """A line of the digest and the paper's words behind it."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="The line, in Korean.")
    quotes: list[str] = Field(description=QUOTES_HELP)


class QuotedIntroduction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    goal: QuotedLine = Field(description=_HELP["goal"])
    motivation: QuotedLine = Field(description=_HELP["motivation"])
    contribution: QuotedLine = Field(description=_HELP["contribution"])


class Quoted(BaseModel):
    """A paper's structured Korean digest, every line with its quotes of the paper."""

    model_config = ConfigDict(extra="forbid")

    introduction: QuotedIntroduction
    method: list[QuotedLine] = Field(description=_HELP["method"])
    results: list[QuotedLine] = Field(description=_HELP["results"])
    limitations: list[QuotedLine] = Field(description=_HELP["limitations"])
    conclusion: list[QuotedLine] = Field(description=_HELP["conclusion"])

    def split(self) -> tuple[dict[str, Any], dict[str, Any]]:
        """The digest's data (its lines' texts) and the evidence's (their quotes), for
        ``Digest`` and ``Evidence`` to validate."""
        intro = self.introduction
        names = ("goal", "motivation", "contribution")
        digest: dict[str, Any] = {"introduction": {n: getattr(intro, n).text for n in names}}
        evidence: dict[str, Any] = {"introduction": {n: getattr(intro, n).quotes for n in names}}
        for section in ("method", "results", "limitations", "conclusion"):
            lines: list[QuotedLine] = getattr(self, section)
            digest[section] = [line.text for line in lines]
            evidence[section] = [line.quotes for line in lines]
        return digest, evidence


# The links a post may show on the '>' line under each title, in the order a setting names.
PostLink = Literal["alphaxiv", "code", "project", "hf", "pdf"]
DEFAULT_POST_LINKS: tuple[PostLink, ...] = ("alphaxiv",)
# Hosts of a code repository: the only ones a 'code' link may point to.
CODE_HOSTS = frozenset({"github.com", "gitlab.com", "huggingface.co"})
MAX_LINK_CHARS = 2000
_HOSTNAME = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
# What a link target in a post may not hold: Markdown and kramdown syntax ("(", ")", "<",
# ">", quotes, brackets, "|", a backslash), Liquid ("{{", "{%": every brace), whitespace and
# control characters. A URL with any of them is refused whole, never cut or escaped.
_LINK_SPECIAL = re.compile(r"[()<>\"'`\[\]{}\\|\s\x00-\x1f\x7f]")


def link_problem(url: str) -> str | None:
    """Why ``url`` may not be a code, project or Hugging Face link of a post; None if it may.

    Such links come from Hugging Face, arXiv comments and the PDF's own text, all untrusted:
    only a plain https URL to a proper host name, with no credentials and nothing Markdown,
    kramdown or Liquid would read, is kept."""
    if len(url) > MAX_LINK_CHARS:
        return f"is longer than {MAX_LINK_CHARS} characters"
    if not url.isascii():
        return "has characters outside ASCII (an international host or path)"
    if _LINK_SPECIAL.search(url):
        return "has a space, bracket, quote, brace, '|' or backslash"
    if not url.startswith("https://"):
        return "is not an https:// URL"
    host = url[len("https://") :].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if "@" in host:
        return "has credentials in it"
    if not _HOSTNAME.fullmatch(host.lower()):
        return f"has no proper host name ({host!r})"
    return None


def code_problem(url: str) -> str | None:
    """Why ``url`` is no code repository link: it must be a link (``link_problem``) to a
    repository on github.com, gitlab.com or huggingface.co (not a paper's page there)."""
    problem = link_problem(url)
    if problem is not None:
        return problem
    host, _, path = url[len("https://") :].partition("/")
    parts = [part for part in re.split(r"[?#]", path, maxsplit=1)[0].split("/") if part]
    if host.lower().removeprefix("www.") not in CODE_HOSTS:
        return "is not on github.com, gitlab.com or huggingface.co"
    if len(parts) < 2 or (host.lower().endswith("huggingface.co") and parts[0] == "papers"):
        return "names no repository"
    return None


def _checked(problem_of: Callable[[str], str | None]) -> AfterValidator:
    def check(url: str | None) -> str | None:
        if url is not None and (problem := problem_of(url)) is not None:
            shown = url if len(url) <= 60 else url[:57] + "..."
            raise ValueError(f"{shown!r} {problem}")
        return url

    return AfterValidator(check)


CodeLink = Annotated[str | None, _checked(code_problem)]
PageLink = Annotated[str | None, _checked(link_problem)]
# The links older day files do not have: left out of a file while unknown, so that a day
# file without them is written as it was.
_EXTRA_LINKS = ("code", "project", "hf", "github_stars")


def leave_out_none(data: dict[str, Any], *names: str) -> dict[str, Any]:
    """``data`` without those of ``names`` that are None: a field added later is absent from
    a file until it has a value, so the files written before it keep their bytes."""
    for name in names:
        if name in data and data[name] is None:
            del data[name]
    return data


class Links(BaseModel):
    """Where the paper lives. A local PDF has none, and its post block shows no links."""

    model_config = ConfigDict(extra="forbid")

    abs: str | None = None
    alphaxiv: str | None = None
    pdf: str | None = None
    code: CodeLink = (
        None  # the paper's code: a repository on github.com, gitlab.com, huggingface.co
    )
    project: PageLink = None  # the paper's project page
    hf: PageLink = None  # the paper's Hugging Face page, when Hugging Face listed it
    # The code repository's stars, as Hugging Face counted them; read as unknown when not a
    # whole number from 0 to 10^9.
    github_stars: Annotated[int | None, figure(10**9, where="links: ")] = None

    @field_validator("abs", "alphaxiv", "pdf")
    @classmethod
    def _plain_url(cls, url: str | None) -> str | None:
        if url is not None and not _URL.fullmatch(url):
            raise ValueError(
                f"{url!r} is not a plain http(s) URL (no spaces, brackets, quotes or braces)"
            )
        return url

    @field_validator("hf")
    @classmethod
    def _hf_paper_page(cls, url: str | None) -> str | None:
        if url is not None and not _HF_PAPER.fullmatch(url):
            raise ValueError(f"{url!r} is not a paper's page https://huggingface.co/papers/ID")
        return url

    @model_serializer(mode="wrap")
    def _leave_out_unknown(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_none(handler(self), *_EXTRA_LINKS)

    @classmethod
    def for_arxiv(cls, arxiv_id: str) -> Links:
        """The links the blog shows: always the unversioned ID, as the reference does."""
        return cls(
            abs=f"https://arxiv.org/abs/{arxiv_id}",
            alphaxiv=f"https://www.alphaxiv.org/ko/overview/{arxiv_id}",
            pdf=f"https://arxiv.org/pdf/{arxiv_id}",
        )


# A call's tokens: a server that reports none counts as 0 (``summarize.call_usage``), so a bad
# figure reads as 0 too. Versions before that check stored what the server said, negative or not.
CallTokens = Annotated[int, figure(MAX_TOKENS, unknown=0, where="calls: ")]


class CallUsage(BaseModel):
    """One LLM answer: its tokens, and what became of it."""

    model_config = ConfigDict(extra="forbid")

    tokens_in: CallTokens
    tokens_out: CallTokens  # reasoning tokens included, as OpenAI counts them
    tokens_cached: CallTokens = 0
    tokens_reasoning: CallTokens = 0  # of tokens_out, what a reasoning model spent thinking
    # ungrounded: numbers or names the paper does not have; copied: the prompt's worked example
    outcome: CallOutcome = "ok"


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
        # A server that counts more cached tokens than prompt tokens must not make a cost
        # negative.
        uncached = max(0, usage.tokens_in - usage.tokens_cached)
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
# Provenance strings made of what a server said (a PDF host's error, the model a server names):
# masked in every file they are written to (day files, the digest cache, ``paper --json``).
_SERVER_TEXT = ("input_reason", "answered_by")


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
    # The figures below are read as unknown (null) when out of range, with the file named (see
    # ``figure``): a day file must still render, and 'digest stats' counts a null cost as
    # unknown, never as free.
    input_chars: Count = None
    tokens_in: Count = None
    tokens_out: Count = None
    tokens_cached: Count = None
    tokens_reasoning: Count = None  # part of tokens_out, and priced as output
    # The model the server said answered, when it is not the one asked for (a local server
    # answers with the model it has loaded, whatever the request names).
    answered_by: str | None = None
    attempts: Count = None
    seconds: Seconds = None
    cost_usd: Usd = None
    calls: list[CallUsage] = Field(default_factory=list)
    # Numbers the paper does not state that survived the re-asks, and what was done to each.
    grounding_repairs: list[str] = Field(default_factory=list)
    # Names (models, benchmarks, datasets) the paper never mentions that survived the re-asks:
    # published, since a name may be a fair paraphrase, but listed and warned about.
    ungrounded_names: list[str] = Field(default_factory=list)
    # How much of the title and abstract the PDF's text has (0 to 1); None when not checked.
    identity_score: Annotated[float | None, figure(1.0)] = None
    # Answered through the Batch API (digest backfill --batch): which batch, and what the
    # batch price saved against the interactive one. Left out of the file when not.
    mode: Literal["batch"] | None = None
    batch_id: str | None = None
    saved_usd: Usd = None

    @model_serializer(mode="wrap")
    def _leave_out_interactive(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # An interactive entry's bytes stay what they were before batches existed.
        data = leave_out_none(handler(self), *_BATCH_ONLY)
        for name in _SERVER_TEXT:
            if isinstance(data.get(name), str):
                data[name] = redact(data[name])
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
    # Hugging Face's upvotes when the day was made (what a weekly issue ranks by); None from
    # any other source, and left out of the file then.
    upvotes: Annotated[int | None, figure(10**9)] = None
    # Each line's quotes of the paper, verified when the digest was made; None (left out of
    # the file) for entries made before, and imported ones.
    evidence: Evidence | None = None

    @model_serializer(mode="wrap")
    def _leave_out_no_upvotes(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_none(handler(self), "upvotes", "evidence")

    @model_validator(mode="after")
    def _evidence_fits(self) -> PaperEntry:
        if self.evidence is not None and not self.evidence.fits(self.digest):
            raise ValueError("evidence: its lines are not the digest's")
        return self

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


# Why a candidate of a day chosen by interests is not in it: a keyword left it out, its score
# is under min_score, better ones filled the day's limit, or it was past the LLM's pool.
DropReason = Literal["filtered out", "below min_score", "beyond limit", "beyond pool"]


class CandidateScore(BaseModel):
    """A candidate of a day chosen by interests (the ``interests`` setting): its score, why,
    and why it was dropped when it was."""

    model_config = ConfigDict(extra="forbid")

    arxiv_id: str
    score: Annotated[int, Field(ge=0, le=10)] | None = None  # None: not scored
    reason: str | None = None  # the model's one line, in Korean
    followed: bool = False  # by a followed author: kept whatever its score
    dropped: DropReason | None = None
    # Cosine similarity of its embedding to the interests' (the ``embedding_model`` setting's
    # pre-rank); left out of the file when it was not embedded.
    similarity: Annotated[float, Field(ge=-1, le=1, allow_inf_nan=False)] | None = None

    @model_serializer(mode="wrap")
    def _leave_out_no_similarity(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_none(handler(self), "similarity")


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
    # What the '>' line under each title shows, in this order (the post_links setting of the
    # run that made the day). Left out of the file when it is the reference's Alphaxiv alone.
    post_links: list[PostLink] = Field(default_factory=lambda: list(DEFAULT_POST_LINKS))
    # Whether the post shows each paper's quotes under it (the post_evidence setting of the
    # run that made the day). Left out of the file when it does not.
    post_evidence: bool = False
    papers: list[PaperEntry] = Field(default_factory=list)
    # Every candidate of a day chosen by interests, in the source's order; left out of the
    # file when the day was not (so an unranked day keeps its bytes).
    candidates: list[CandidateScore] | None = None

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

    @field_validator("post_links")
    @classmethod
    def _links_once(cls, names: list[PostLink]) -> list[PostLink]:
        return unique_post_links(names)

    @model_serializer(mode="wrap")
    def _leave_out_default_links(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # A day file of the default post is written as it was before the setting existed.
        data: dict[str, Any] = handler(self)
        if tuple(data.get("post_links", ())) == DEFAULT_POST_LINKS:
            data.pop("post_links", None)
        if not data.get("post_evidence"):
            data.pop("post_evidence", None)
        return leave_out_none(data, "candidates")


def unique_post_links(names: list[PostLink]) -> list[PostLink]:
    """``names``, refused when one is named twice."""
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"names {', '.join(twice)} more than once")
    return names


# What became of a paper in a run. done: digested now; cached: from the digest cache; reused:
# already in the day file; failed: no digest (the reason says why); skipped: an earlier day
# published it, or it was withdrawn; stopped: not started (the --max-cost cap, the deadline).
Status = Literal["done", "cached", "reused", "failed", "skipped", "stopped"]
# The statuses of a paper the run meant to digest and did not.
UNFINISHED: tuple[Status, ...] = ("failed", "stopped")
# Where a paper's work stopped: its metadata, its PDF, the PDF's text, the LLM, the run (not
# started: the --max-cost cap or the run's deadline), or elsewhere (an unexpected error).
Stage = Literal["metadata", "download", "extract", "summarize", "run", "other"]


# Required figures of a run report that nothing sums: checked strictly, since digest writes
# them from counts, clocks and prices, none of which is negative.
_StrictCount = Annotated[int, Field(ge=0)]
_StrictFigure = Annotated[float, Field(ge=0, allow_inf_nan=False)]


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
    # Summed by 'digest stats': out of range, they are read as unknown with the file named,
    # and the report's failures are still counted.
    tokens_in: Count = Field(description="Tokens this run paid for; null: none.")
    tokens_out: Count
    cost_usd: Usd = Field(
        description="USD this run paid; null: nothing, or the model's price is unknown."
    )
    # Read by nothing: a report with an impossible one is not digest's, and is refused whole.
    stage_seconds: dict[str, _StrictFigure]

    @property
    def unfinished(self) -> bool:
        """Failed or stopped: the run meant to digest it and did not."""
        return self.status in UNFINISHED


# 'digest stats' counts the papers' own figures, never these sums: a report with an impossible
# one (NaN, below zero) was not written by digest, and is refused whole with a warning.
class RunTotals(BaseModel):
    """What the run did to its papers, and what it paid, in sums."""

    model_config = ConfigDict(extra="forbid")

    papers: _StrictCount
    done: _StrictCount
    cached: _StrictCount
    reused: _StrictCount
    failed: _StrictCount
    skipped: _StrictCount
    stopped: _StrictCount
    tokens_in: _StrictCount
    tokens_out: _StrictCount
    cost_usd: _StrictFigure = Field(
        description="What the run paid, failed papers' answers included."
    )


class RankingTotals(BaseModel):
    """What choosing a day's papers by interests did, and what its LLM requests cost."""

    model_config = ConfigDict(extra="forbid")

    candidates: _StrictCount  # the source's, before the keywords
    filtered: _StrictCount  # left out by the keywords
    ranked: _StrictCount  # scored, now or from the cache
    kept: _StrictCount  # taken into the day
    requests: _StrictCount  # sent to the LLM this run
    tokens_in: _StrictCount
    tokens_out: _StrictCount
    cost_usd: _StrictFigure | None = None  # None: the model has no price; embeddings included
    failed: str | None = None  # why the scores are missing (the source's order was kept)
    # The embedding pre-rank (the ``embedding_model`` setting); left out when it is not set.
    embedding_requests: _StrictCount | None = None
    embedding_tokens: _StrictCount | None = None
    embedding_cost_usd: _StrictFigure | None = None  # None: not set, or the model has no price

    @model_serializer(mode="wrap")
    def _leave_out_no_embedding(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        names = ("embedding_requests", "embedding_tokens", "embedding_cost_usd")
        return leave_out_none(handler(self), *names)


class RunReport(BaseModel):
    """``DATE.run.json``, written next to the day file by every run that did something."""

    model_config = ConfigDict(extra="forbid")

    date: dt.date
    source: str = Field(description="hf, arxiv or ids.")
    started_at: dt.datetime
    seconds: _StrictFigure
    model: str
    base_url: str | None = Field(description="The LLM server; credentials in it are masked.")
    concurrency: _StrictCount
    post: str | None = Field(description="The post's path; null when the day has no paper.")
    papers: list[PaperReport]
    totals: RunTotals
    ranking: RankingTotals | None = None  # left out when the day was not chosen by interests

    @model_serializer(mode="wrap")
    def _leave_out_no_ranking(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_none(handler(self), "ranking")
