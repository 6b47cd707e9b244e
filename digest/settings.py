"""Settings, read once per command: flags, then environment, then ``digest.toml``, then defaults.

Every setting has an environment variable, ``DIGEST_`` plus its name in capitals (for example
``DIGEST_OUTPUT_DIR``). ``digest.toml`` in the working folder (or the file named by
``DIGEST_CONFIG``) uses the plain names: ``output_dir = "site"``.
"""

from __future__ import annotations

import datetime as dt
import difflib
import importlib.util
import json
import logging
import os
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from digest import redact
from digest.blog.notify import register_apprise_url
from digest.blog.store import OutputStore
from digest.errors import UsageError
from digest.files import read_bounded
from digest.models import DEFAULT_POST_LINKS, Day, Extractor, PostLink, Price, unique_post_links
from digest.net import RetryPolicy
from digest.options import (
    BatchOptions,
    ExtractOptions,
    FetchOptions,
    HfOptions,
    LlmMode,
    LlmOptions,
    NotifyOptions,
    RankOptions,
    ReasoningEffort,
    RunOptions,
    settings_taken,
)

log = logging.getLogger(__name__)

CONFIG_FILE_ENV = "DIGEST_CONFIG"

# USD per million tokens: input, cached input, output. OpenAI's list prices; set
# DIGEST_PRICES (JSON, same shape) for other models or when prices change.
# A price is finite and not negative: a NaN or negative one would be written into every day
# file's costs and summed by 'digest stats'.
_PriceFigure = Annotated[float, Field(ge=0, allow_inf_nan=False)]
ModelPrice = (
    tuple[_PriceFigure, _PriceFigure, _PriceFigure]
    | tuple[_PriceFigure, _PriceFigure, _PriceFigure, _PriceFigure]
)
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
    # Embedding models (the ``embedding_model`` setting): input tokens only.
    "text-embedding-3-small": Price(0.02, 0.02, 0.0),
    "text-embedding-3-large": Price(0.13, 0.13, 0.0),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", extra="ignore", env_parse_none_str="none"
    )

    # Where things go.
    output_dir: Path = Field(
        default=Path("outputs"),
        description="the folder of the lock (`.digest.lock`) and, unless `posts_dir` and "
        "`data_dir` say otherwise, of the posts and day files; relative folders are from the "
        "working folder (a blog made by `digest init`: `.`)",
        json_schema_extra={"flag": "--output-dir"},
    )
    posts_dir: Path | None = Field(
        default=None,
        description="the folder of the posts (a blog made by `digest init`: `_posts`)",
        json_schema_extra={"shown_default": "`output_dir/_posts`"},
    )
    data_dir: Path | None = Field(
        default=None,
        description="the folder of day files and run reports (a blog made by `digest init`: "
        "`_digest`, which Jekyll does not publish)",
        json_schema_extra={"shown_default": "`output_dir/data`"},
    )
    cache_dir: Path = Field(
        default_factory=lambda: default_cache_dir(),
        description="downloaded PDFs (`pdfs/`) and finished digests (`digests/`), kept from one "
        "run to the next",
        json_schema_extra={"shown_default": "`$XDG_CACHE_HOME/digest` or `~/.cache/digest`"},
    )
    timezone: str = Field(
        default="Asia/Seoul",
        description="what `today` and `yesterday` mean for `--date`, and the day "
        "`--source arxiv` searches",
    )

    # The LLM: any OpenAI-compatible Chat Completions server.
    api_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_API_KEY", "api_key"),
        description="required for OpenAI; any value for a local server",
    )
    base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("OPENAI_BASE_URL", "base_url"),
        description="the base URL of another OpenAI-compatible Chat Completions server, e.g. "
        "`http://localhost:8080/v1`",
        json_schema_extra={"shown_default": "OpenAI"},
    )
    model: str = Field(default="gpt-4.1-mini", description="the model that writes the digests")
    llm_mode: LlmMode = Field(
        default="auto",
        description="`json_schema` (strict structured outputs), `json_object` (JSON mode, the "
        "schema in the prompt, for servers without `json_schema`) or `auto` (json_schema, "
        "falling back once to json_object when the server rejects the response format, "
        "whatever the status: DeepSeek's 422, llama-cpp-python's 500, others' 400)",
    )
    temperature: float | None = Field(
        default=0.2,
        description="the sampling temperature; `none` sends none. A model that rejects it "
        "(OpenAI's reasoning models take only the default) has it dropped for the run after "
        "the first 400, with a warning",
    )
    max_output_tokens: int = Field(
        default=2000,
        gt=0,
        description="tokens for the answer (doubled once if an answer is cut off, unless it "
        "repeats itself). Sent as `max_completion_tokens` (and also as `max_tokens` in "
        "`json_object` mode, for servers that know only that); a reasoning model gets room to "
        "think on top: 2,000 (`minimal`), 8,000 (`low`), 16,000 (`medium`), 32,000 (`high`)",
    )
    llm_timeout: float = Field(
        default=120.0,
        gt=0,
        description="seconds per request, in all (a deadline: a server that trickles its "
        "answer a byte at a time is cut off there, and the request retried)",
    )
    llm_max_attempts: int = Field(
        default=6,
        ge=1,
        description="requests per answer (connection errors, timeouts, 408, 409, 429, 5xx)",
    )
    llm_retry_budget: float = Field(
        default=900.0,
        gt=0,
        description="seconds a paper may spend at the LLM, re-asks included, before no further "
        "request is started; above `retry_after_cap`, so that the longest wait honoured still "
        "fits",
    )
    # The SDK alone gives up on any wait above 120 s; the cap lets digest honour longer ones.
    retry_after_cap: float = Field(
        default=600.0,
        ge=0,
        description="the longest wait in seconds a server may ask for (`Retry-After`, "
        "`retry-after-ms`, `RateLimit`, `RateLimit-Reset`) that is honoured, by every caller; "
        "a longer one fails that request at once, saying so",
    )
    retry_backoff: float = Field(
        default=1.0,
        gt=0,
        description="the first wait in seconds of the exponential backoff (with jitter), for "
        "every caller",
    )
    reasoning_effort: ReasoningEffort | None = Field(
        default="low",
        description="sent only to reasoning models (`o1`, `o3`, `o4-mini`, `gpt-5*` but not "
        "`gpt-5-chat`); `minimal`, `low`, `medium`, `high`, or `none` to send nothing. "
        "Reasoning tokens are paid as output; `low` keeps them to what a digest needs",
    )
    context_tokens: int | None = Field(
        default=None,
        ge=2048,
        description="a local server's context size in tokens (e.g. `8192`), when it is small; "
        "the paper's text is then cut so that the prompt, one re-ask and the answer "
        "fit, and a request that still would not fit fails before it is sent",
    )
    max_reasks: int = Field(
        default=2,
        ge=0,
        le=2,
        description="re-asks (0 to 2) after a failed validation or a refusal",
    )
    prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(
        default_factory=dict,
        description="USD per million tokens `[input, cached input, output]` by model "
        "(`gpt-4.1-mini` is `[0.40, 0.10, 1.60]`), and optionally a fourth column, the share "
        "of those a Batch API token costs (default `0.5`, half); add "
        '`{"my-model": [0.2, 0.05, 0.8]}` for others, merged over the built-in prices',
        json_schema_extra={"shown_default": "built in"},
    )

    # Sources.
    hf_api_url: str = Field(
        default="https://huggingface.co/api",
        description="the Hugging Face API, for `--source hf` (its Daily Papers)",
    )
    limit: int = Field(
        default=10,
        ge=1,
        description="papers a day from `hf` or `arxiv`",
        json_schema_extra={"flag": "--limit"},
    )
    min_upvotes: int = Field(
        default=0,
        ge=0,
        description="the fewest upvotes an `hf` paper needs to be taken",
        json_schema_extra={"flag": "--min-upvotes"},
    )
    skip_published: bool = Field(
        default=True, description="leave out papers an earlier day already has"
    )

    # Your interests: which of a day's candidates it takes (see "Your interests").
    interests: str | None = Field(
        default=None,
        description="what you want to read about, in Korean or English free text; set, the "
        "day's candidates are filtered by the keywords, scored 0 to 10 against it by the LLM "
        "(titles and abstracts only, cached) and the best `limit` taken; unset, the source's "
        "order as it is",
        json_schema_extra={"shown_default": "none (off)"},
    )
    include_keywords: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="with `interests`: a candidate's title or abstract must name one of these "
        "(case-insensitive; whole words in Latin script, any substring in Hangul)",
    )
    exclude_keywords: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="with `interests`: a candidate whose title or abstract names one of these "
        "is left out (checked before `include_keywords`)",
    )
    follow_authors: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="with `interests`: authors whose papers are always taken, whatever their "
        "score or the keywords (names compared without case, accents or punctuation)",
    )
    min_score: int = Field(
        default=0,
        ge=0,
        le=10,
        description="with `interests`: the lowest score (0 to 10) a paper is taken with",
    )
    rank_pool: int = Field(
        default=50,
        ge=1,
        description="with `interests`: the most candidates the LLM scores in a day (after "
        "the keywords; the rest are dropped as beyond the pool)",
    )
    embedding_model: str | None = Field(
        default=None,
        description="with `interests`: an embedding model (`text-embedding-3-small`) on the LLM "
        "server; set, a day with more than `rank_pool` candidates after the keywords sends "
        "the `rank_pool` most similar to the interests to the LLM, not the first ones "
        "(vectors cached; its tokens priced by `prices`, input only, and counted in "
        "`--max-cost`)",
        json_schema_extra={"shown_default": "none (off)"},
    )

    # arXiv.
    arxiv_api_url: str = Field(
        default="https://export.arxiv.org/api/query",
        description="the arXiv API, for each paper's metadata and for `--source arxiv`",
    )
    arxiv_pdf_url: str = Field(
        default="https://export.arxiv.org/pdf/{id}",
        description="where PDFs are downloaded from, on the host arXiv asks programs to use "
        "rather than the `arxiv.org` its readers use (`{id}` carries the version when it is "
        "known)",
    )
    arxiv_delay: float = Field(
        default=3.0,
        ge=0,
        description="seconds between arXiv API calls, as arXiv's API terms ask",
    )
    arxiv_rate_limit_wait: float = Field(
        default=60.0,
        ge=0,
        description="seconds after a 429 from the arXiv API that names no wait; its limit is "
        "counted per 3-second window, and the blocks that follow a burst outlast a quick "
        "retry",
    )
    http_timeout: float = Field(
        default=60.0,
        gt=0,
        description="seconds for each Hugging Face, arXiv and PDF request, in all (a deadline, "
        "not the gap between two bytes, which a trickling server never lets run out)",
    )
    http_max_attempts: int = Field(
        default=4,
        ge=1,
        description="tries for Hugging Face, arXiv and PDF requests (connection errors, "
        "timeouts, 408, 409, 429, 5xx, an HTML page where the API's answer should be)",
    )
    http_retry_budget: float = Field(
        default=300.0,
        gt=0,
        description="seconds one Hugging Face, arXiv or PDF request may take with its retries "
        "and waits, enough for two waits of a minute and short of holding up the night",
    )
    download_rate: float = Field(
        default=1.0,
        ge=0,
        description="PDF downloads started a second (arXiv asks for small bursts), at most "
        "`download_concurrency` in flight; `0` for no limit",
    )
    pdf_redirect_hosts: Annotated[list[str], NoDecode] = Field(
        default=["arxiv.org", "export.arxiv.org", "www.arxiv.org"],
        description="where a PDF request may be redirected (https only, or the host asked); "
        "never to a file or another host",
    )
    pdf_max_mb: float = Field(
        default=50.0,
        gt=0,
        description="the largest PDF downloaded, in MB; a larger one is refused and the paper is "
        "digested from its abstract",
    )
    text_budget: int = Field(
        default=40_000,
        ge=2_000,
        description="characters of paper text sent to the LLM",
    )
    extract_timeout: float = Field(
        default=120.0,
        gt=0,
        description="seconds to extract one PDF's text (pypdf reads about 17 pages a second "
        "here, so some 2,000 ordinary pages); past it the worker is killed and replaced, and "
        'the paper is digested from its abstract, saying "extraction took longer than 120 s"',
    )
    extractor: Extractor = Field(
        default="pypdf",
        description="the PDF text extractor; `pypdfium2` is about 12 times faster and needs "
        "`pip install -e '.[fast]'` (see \"Text extraction\")",
    )

    # Running.
    run_deadline: float | None = Field(
        default=None,
        gt=0,
        description="minutes a run may take; past it no paper is started, papers in flight "
        "get a short grace (30 s, at most a tenth of the deadline), what is done is written, "
        "and the rest are listed as `stopped` (exit 1) for the next run; a hung run never "
        "holds the lock into the next night",
        json_schema_extra={"flag": "--deadline MINUTES"},
    )
    concurrency: int = Field(default=4, ge=1, le=64, description="papers at the LLM at once")
    batch_poll: float = Field(
        default=30.0,
        gt=0,
        description="`backfill --batch`: seconds between the first looks at a batch; each wait "
        "is half again as long as the one before, up to `batch_poll_max`",
    )
    batch_poll_max: float = Field(
        default=600.0, gt=0, description="`backfill --batch`: the longest wait between looks"
    )
    batch_retries: int = Field(
        default=2,
        ge=0,
        le=5,
        description="`backfill --batch`: times a request that failed or expired in a batch is "
        "sent again in a new batch before its paper is listed as failed",
    )
    download_concurrency: int = Field(default=4, ge=1, le=32, description="PDF downloads at once")

    # The post's front matter.
    post_time: str = Field(default="08:15:00", description="the time of day in the post's `date`")
    post_tags: Annotated[list[str], NoDecode] = Field(
        default=["papers", "hugginface"], description="the post's tags"
    )
    post_categories: Annotated[list[str], NoDecode] = Field(
        default=[], description="the post's categories"
    )
    post_title: str = Field(
        default="Daily Papers — {date}",
        description="the post's title; `{date}` is replaced by the day (YYYY-MM-DD)",
    )
    post_layout: str = Field(default="post", description="the post's Jekyll layout")
    post_links: Annotated[list[PostLink], NoDecode] = Field(
        default=list(DEFAULT_POST_LINKS),
        description="what the `>` line under each title links to, in this order, joined by "
        "` · ` (those a paper has): `alphaxiv`, `code` (its repository), `project` (its "
        "project page), `hf` (its Hugging Face page), `pdf`; a day keeps the links of the "
        "run that made it",
    )
    post_evidence: bool = Field(
        default=False,
        description="add each paper's quotes of the paper (the evidence behind its lines) "
        "under it as a collapsed list; a day keeps the choice of the run that made it",
    )

    # Notifications: a message once a post is written.
    notify: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(),
        description="[Apprise](https://github.com/caronc/apprise/wiki) URLs (Slack, Discord, "
        "Telegram, e-mail, ntfy and more), separated by spaces or lines, each sent one message "
        "when `daily` writes a post or `weekly` an issue (and by `digest notify`): the date, "
        "the number of papers, their titles and the post's URL. They carry tokens, so they "
        "are read from the environment only (`DIGEST_NOTIFY`, a repository secret in the "
        "nightly), never from `digest.toml`. A "
        "message that fails is one warning; the run goes on as if none were asked",
        json_schema_extra={"shown_default": "none"},
    )
    notify_timeout: float = Field(
        default=10.0,
        gt=0,
        description="seconds the message may take in all; a receiver that hangs is left "
        "behind then, with a warning",
    )
    site_url: str | None = Field(
        default=None,
        description="the blog's address (https), e.g. `https://you.github.io/myblog`, for the "
        "post's URL in a message",
        json_schema_extra={"shown_default": "`url` + `baseurl` of `_config.yml`, if set"},
    )

    @field_validator(
        "post_tags",
        "post_categories",
        "post_links",
        "pdf_redirect_hosts",
        "include_keywords",
        "exclude_keywords",
        "follow_authors",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # The environment gives "papers,hugginface"; digest.toml gives a real list.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("notify", mode="before")
    @classmethod
    def _apprise_urls(cls, value: object) -> object:
        # The environment gives the URLs separated by spaces or lines (a multi-line secret).
        if isinstance(value, str):
            value = value.split()
        if isinstance(value, list | tuple):
            for url in value:
                if isinstance(url, str) and "://" not in url:
                    raise ValueError(
                        "each URL needs its service's scheme, e.g. discord://ID/TOKEN "
                        "(see https://github.com/caronc/apprise/wiki)"
                    )
        return value

    @field_validator("site_url")
    @classmethod
    def _https_site(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith("https://"):
            raise ValueError("must begin with https://, e.g. https://you.github.io/myblog")
        return url

    @field_validator("post_links")
    @classmethod
    def _post_links_once(cls, names: list[PostLink]) -> list[PostLink]:
        return unique_post_links(names)

    @field_validator("post_title")
    @classmethod
    def _title_template(cls, template: str) -> str:
        try:
            template.format(date="2000-01-01")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"{template!r} may use only the placeholder {{date}} ({error})"
            ) from None
        return template

    @field_validator("prices", mode="before")
    @classmethod
    def _prices_json(cls, value: object) -> object:
        # DIGEST_PRICES='{"my-model": [0.2, 0.05, 0.8]}'
        if isinstance(value, str):
            try:
                return json.loads(value)
            except json.JSONDecodeError as error:
                raise ValueError(f"is not JSON ({error.msg})") from None
        return value

    def price_of(self, model: str) -> Price | None:
        """The model's prices, from the setting or the defaults; None when unknown."""
        given = self.prices.get(model)
        return Price(*given) if given else DEFAULT_PRICES.get(model)

    @field_validator("arxiv_pdf_url")
    @classmethod
    def _pdf_template(cls, template: str) -> str:
        if "{id}" not in template:
            raise ValueError(f"{template!r} must contain {{id}}, e.g. https://arxiv.org/pdf/{{id}}")
        return template

    @field_validator("extractor")
    @classmethod
    def _extractor_installed(cls, extractor: str) -> str:
        if extractor == "pypdfium2" and importlib.util.find_spec("pypdfium2") is None:
            raise ValueError("pypdfium2 is not installed: pip install 'digest[fast]'")
        return extractor

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{name!r} is not a known time zone, e.g. Asia/Seoul or UTC") from None
        return name

    def llm_retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            name="the LLM server",
            max_attempts=self.llm_max_attempts,
            max_seconds=self.llm_retry_budget,
            backoff=self.retry_backoff,
            server_wait_cap=self.retry_after_cap,
        )

    def http_retry_policy(self, name: str) -> RetryPolicy:
        """Hugging Face's and the PDF host's policy (their clients add connection errors)."""
        return RetryPolicy(
            name=name,
            max_attempts=self.http_max_attempts,
            max_seconds=self.http_retry_budget,
            backoff=self.retry_backoff,
            backoff_max=30.0,
            server_wait_cap=self.retry_after_cap,
        )

    def arxiv_retry_policy(self) -> RetryPolicy:
        return replace(
            self.http_retry_policy("the arXiv API"), bare_429_wait=self.arxiv_rate_limit_wait
        )

    def taken_by(self, kind: type) -> dict[str, Any]:
        """The values of the settings the options class ``kind`` takes (its fields marked
        ``Setting``, see ``digest.options``), by field name: the one place an options object
        reads a setting, so a setting added to a part needs no line here."""
        values: dict[str, Any] = {}
        for name, setting in settings_taken(kind).items():
            if setting not in type(self).model_fields:
                raise TypeError(f"{kind.__name__}.{name}: there is no setting {setting!r}")
            value = getattr(self, setting)
            # A part is given the key itself; SecretStr only keeps it out of the settings' repr.
            values[name] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return values

    # The builders below pass only what is worked out from several settings, or given per run;
    # the rest comes from taken_by.

    def llm_options(self) -> LlmOptions:
        return LlmOptions(
            **self.taken_by(LlmOptions),
            retry=self.llm_retry_policy(),
            price=self.price_of(self.model),
        )

    def fetch_options(self) -> FetchOptions:
        return FetchOptions(
            **self.taken_by(FetchOptions),
            arxiv_retry=self.arxiv_retry_policy(),
            pdf_retry=self.http_retry_policy("the PDF host"),
            pdf_folder=self.cache_dir / "pdfs",
            pdf_redirect_hosts=frozenset(host.lower() for host in self.pdf_redirect_hosts),
        )

    def hf_options(self) -> HfOptions:
        return HfOptions(**self.taken_by(HfOptions), retry=self.http_retry_policy("Hugging Face"))

    def batch_options(self, *, reask_interactive: bool = False) -> BatchOptions:
        return BatchOptions(
            **self.taken_by(BatchOptions),
            # A longest wait set under the first one would make the waits shrink.
            poll_max=max(self.batch_poll_max, self.batch_poll),
            reask_interactive=reask_interactive,
        )

    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(**self.taken_by(ExtractOptions))

    def run_options(
        self, *, force: bool = False, max_cost: float | None = None, limit: int | None = None
    ) -> RunOptions:
        """The run's options; ``limit`` None takes every candidate (``--source ids``)."""
        return RunOptions(**self.taken_by(RunOptions), force=force, max_cost=max_cost, limit=limit)

    def notify_options(self) -> NotifyOptions:
        return NotifyOptions(**self.taken_by(NotifyOptions))

    def rank_options(self) -> RankOptions | None:
        """How a day's candidates are chosen by the interests; None when none are set."""
        if self.interests is None or not self.interests.strip():
            return None
        model = self.embedding_model
        return RankOptions(
            **self.taken_by(RankOptions),
            embedding_price=self.price_of(model) if model else None,
        )

    def output_store(self) -> OutputStore:
        """The output folder with the posts' and day files' folders these settings name."""
        return OutputStore(self.output_dir, posts_dir=self.posts_dir, data_dir=self.data_dir)

    def today(self) -> dt.date:
        """Today's date where the blog is written (the ``timezone`` setting)."""
        return dt.datetime.now(ZoneInfo(self.timezone)).date()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, "digest.toml"))
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file)

    def new_day(self, date: dt.date) -> Day:
        """An empty day with the front matter these settings ask for."""
        return Day(
            date=date,
            time=self.post_time,
            title=self.post_title.format(date=date.isoformat()),
            layout=self.post_layout,
            tags=self.post_tags,
            categories=self.post_categories,
            post_links=self.post_links,
            post_evidence=self.post_evidence,
        )


def default_cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/digest, else ~/.cache/digest."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digest"


# A settings file is a few hundred bytes.
SETTINGS_MAX_BYTES = 1_000_000


def _read_settings_file(path: Path) -> dict[str, object] | None:
    """The settings file as TOML, None when there is none. Read within bounds (a FIFO or a
    device in its place is an error, not a wait); DataFileError or UsageError name it."""
    try:
        raw = read_bounded(path, max_bytes=SETTINGS_MAX_BYTES)
    except FileNotFoundError:
        return None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not a valid settings file ({error}); fix or remove it") from None


def check_settings_file(path: Path) -> None:
    """A settings file that is not TOML, or names a setting that does not exist, is an error
    naming the file (and the closest setting): a typo must not be ignored without a word."""
    data = _read_settings_file(path)
    if data is None:
        return
    if "notify" in data:
        raise UsageError(
            f"{path}: notify is not read from a settings file, as its URLs carry tokens; "
            "remove it and set DIGEST_NOTIFY in the environment (in the nightly, the "
            "repository secret DIGEST_NOTIFY)"
        )
    known = set(Settings.model_fields)
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else "; see the settings table"
            raise UsageError(f"{path}: unknown setting {key!r}{hint}")


def load_settings(**flags: object) -> Settings:
    """Settings with ``flags`` (the command line's non-None options) taking precedence."""
    given = {name: value for name, value in flags.items() if value is not None}
    config = os.environ.get(CONFIG_FILE_ENV)
    if config and not Path(config).exists():
        raise UsageError(f"{CONFIG_FILE_ENV}={config}: no such file")
    check_settings_file(Path(config or "digest.toml"))
    try:
        settings = Settings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        raise UsageError(_invalid(error, given, Path(config or "digest.toml"))) from None
    except Exception as error:  # a malformed digest.toml
        raise UsageError(f"cannot read the settings file: {error}") from None
    if settings.api_key is not None:
        key = settings.api_key.get_secret_value()
        redact.register(key)
        if key != key.strip():
            # A key pasted with a line break fails as a connection error after the retries.
            redact.register(key.strip())
            log.warning("OPENAI_API_KEY has spaces or a line break around it; removed them")
            settings.api_key = SecretStr(key.strip())
    # Credentials in any of the URLs: a server may echo its password without the URL around
    # it, where the "user:password@" pattern alone would not find it. A user name alone
    # ("https://TOKEN@host") is the credential.
    urls = (settings.base_url, settings.hf_api_url, settings.arxiv_api_url, settings.arxiv_pdf_url)
    for url in filter(None, urls):
        redact.register(_url_credential(url))
    for url in settings.notify:
        register_apprise_url(url)
    return settings


def _url_credential(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1": no URL, and its request will say so
        return None
    return parts.password or parts.username


def _invalid(error: ValidationError, flags: dict[str, object], config: Path) -> str:
    """The first problem of ``error`` in one line: where the value came from (the flag, the
    environment variable or the settings file that won, by the precedence of
    ``load_settings``), the setting, the value as given, and what is wrong with it."""
    first = error.errors(include_url=False)[0]
    message = first["msg"].removeprefix("Value error, ")
    name = _field_of(str(first["loc"][0])) if first["loc"] else None
    if name is None:
        return f"settings: {message}"
    where, value = _given(name, flags, config)
    return f"{where}: setting {name} = {_shown(name, value)}: {message}"


def _field_of(location: str) -> str | None:
    """The setting an error's location names: its own name, or one of its aliases
    (``OPENAI_API_KEY``)."""
    for name, field in Settings.model_fields.items():
        alias = field.validation_alias
        aliases = alias.choices if isinstance(alias, AliasChoices) else []
        if location == name or location in aliases:
            return name
    return None


def _given(name: str, flags: dict[str, object], config: Path) -> tuple[str, object]:
    """Where the value of setting ``name`` came from, and the value as it was given there."""
    field = Settings.model_fields[name]
    if name in flags:
        extra = field.json_schema_extra
        flag = extra.get("flag") if isinstance(extra, dict) else None
        return str(flag or "--" + name.replace("_", "-")).split()[0], flags[name]
    # Read as pydantic-settings reads it: the variable's name in any case.
    environment = {key.lower(): (key, value) for key, value in os.environ.items()}
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        names = [choice for choice in alias.choices if isinstance(choice, str)]
    else:
        names = [f"{Settings.model_config.get('env_prefix', '')}{name}"]
    for variable in names:
        if variable.lower() in environment:
            key, value = environment[variable.lower()]
            return f"environment variable {key}", value
    try:
        data = _read_settings_file(config) or {}
    except UsageError:
        data = {}
    if name in data:
        return str(config), data[name]
    return "default", field.get_default(call_default_factory=True)


_SHOWN_CHARS = 60


def _shown(name: str, value: object) -> str:
    """``value`` as Python writes it, cut when long; an API key's never shown."""
    shown = repr(value)
    annotation = Settings.model_fields[name].annotation
    if annotation is SecretStr or SecretStr in get_args(annotation):
        redact.register(str(value))
        masked = redact.redact(shown)
        return masked if masked != shown else "'***'"
    if len(shown) > _SHOWN_CHARS:
        shown = shown[: _SHOWN_CHARS - 3] + "..."
    return shown
