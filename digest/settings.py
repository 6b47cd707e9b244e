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
from typing import Annotated, Literal
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
from digest.errors import UsageError
from digest.models import Day, Extractor, Price
from digest.net import RetryPolicy
from digest.options import ExtractOptions, FetchOptions, HfOptions, LlmOptions, RunOptions

log = logging.getLogger(__name__)

CONFIG_FILE_ENV = "DIGEST_CONFIG"

# USD per million tokens: input, cached input, output. OpenAI's list prices; set
# DIGEST_PRICES (JSON, same shape) for other models or when prices change.
ModelPrice = tuple[float, float, float]
DEFAULT_PRICES: dict[str, Price] = {
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    "gpt-5-nano": Price(0.05, 0.005, 0.40),
}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="DIGEST_", extra="ignore", env_parse_none_str="none"
    )

    # Where things go. Posts and day files are in output_dir's _posts/ and data/ unless set;
    # relative paths are from the working folder. A blog made by 'digest init' sets
    # output_dir ".", posts_dir "_posts" and data_dir "_digest", which Jekyll does not publish.
    output_dir: Path = Path("outputs")
    posts_dir: Path | None = None
    data_dir: Path | None = None
    cache_dir: Path = Field(default_factory=lambda: default_cache_dir())
    timezone: str = "Asia/Seoul"

    # The LLM: any OpenAI-compatible Chat Completions server.
    api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_API_KEY", "api_key")
    )
    base_url: str | None = Field(
        default=None, validation_alias=AliasChoices("OPENAI_BASE_URL", "base_url")
    )
    model: str = "gpt-4.1-mini"
    # json_schema: strict structured outputs; json_object: JSON mode with the schema in the
    # prompt (servers without json_schema); auto: json_schema, falling back once on a 400.
    llm_mode: Literal["json_schema", "json_object", "auto"] = "auto"
    temperature: float | None = 0.2
    max_output_tokens: int = Field(default=2000, gt=0)
    llm_timeout: float = Field(default=120.0, gt=0)
    llm_max_attempts: int = Field(default=6, ge=1)  # requests for one answer
    # Seconds a paper may spend at the LLM before no further request is started; above the cap,
    # so that the longest Retry-After honoured still fits.
    llm_retry_budget: float = Field(default=900.0, gt=0)
    # The longest wait a server may ask for (Retry-After, RateLimit) that is honoured; a longer
    # one fails the request at once. The SDK alone gives up on anything above 120 s.
    retry_after_cap: float = Field(default=600.0, ge=0)
    retry_backoff: float = Field(default=1.0, gt=0)  # first wait of exponential backoff, seconds
    # Sent to reasoning models (o-series, gpt-5) only: "low" keeps the reasoning tokens, which
    # are paid as output, to what a digest needs. "none" sends nothing.
    reasoning_effort: Literal["minimal", "low", "medium", "high"] | None = "low"
    # The server's context window in tokens, when it is small (a local server). The paper's
    # text is then cut so that the prompt, a re-ask and the answer fit into it.
    context_tokens: int | None = Field(default=None, ge=2048)
    max_reasks: int = Field(default=2, ge=0, le=2)
    # USD per million tokens [input, cached input, output] by model; merged over the defaults.
    prices: Annotated[dict[str, ModelPrice], NoDecode] = Field(default_factory=dict)

    # Sources.
    hf_api_url: str = "https://huggingface.co/api"
    limit: int = Field(default=10, ge=1)
    min_upvotes: int = Field(default=0, ge=0)
    skip_published: bool = True  # leave out papers an earlier day already has

    # arXiv.
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    # arXiv asks programs to take PDFs from export.arxiv.org, not the arxiv.org the readers use.
    arxiv_pdf_url: str = "https://export.arxiv.org/pdf/{id}"
    arxiv_delay: float = Field(default=3.0, ge=0)  # arXiv's API terms: one request every 3 s
    # A 429 from the arXiv API names no wait. Its limit is counted per 3-second window and the
    # blocks that follow a burst last, so a quick retry only extends them: wait a minute.
    arxiv_rate_limit_wait: float = Field(default=60.0, ge=0)
    # Seconds each request to Hugging Face, the arXiv API or the PDF host may take in all (a
    # deadline, not the gap between two bytes, which a trickling server never lets run out).
    http_timeout: float = Field(default=60.0, gt=0)
    http_max_attempts: int = Field(default=4, ge=1)
    # Seconds one request to Hugging Face, the arXiv API or the PDF host may take with its
    # retries and waits: enough for two waits of a minute, short of holding up the night.
    http_retry_budget: float = Field(default=300.0, gt=0)
    # PDF downloads started per second (arXiv's bulk-data guidance: keep bursts small); at most
    # download_concurrency are in flight. 0 starts them as fast as the slots allow.
    download_rate: float = Field(default=1.0, ge=0)
    # Where a PDF request may be redirected: https only, to these hosts (or the host asked).
    pdf_redirect_hosts: Annotated[list[str], NoDecode] = [
        "arxiv.org",
        "export.arxiv.org",
        "www.arxiv.org",
    ]
    pdf_max_mb: float = Field(default=50.0, gt=0)
    text_budget: int = Field(default=40_000, ge=2_000)
    # Seconds one PDF's text may take to extract. pypdf reads about 17 pages a second here, so
    # 120 s is some 2,000 ordinary pages; past it the paper is digested from its abstract.
    extract_timeout: float = Field(default=120.0, gt=0)
    extractor: Extractor = "pypdf"  # pypdfium2 needs digest[fast]

    # Running. A run deadline in minutes (--deadline): past it no paper is started, papers in
    # flight get a short grace, what is done is written, and the rest are listed as stopped.
    run_deadline: float | None = Field(default=None, gt=0)
    concurrency: int = Field(default=4, ge=1, le=64)  # papers at the LLM at once
    download_concurrency: int = Field(default=4, ge=1, le=32)

    # The post's front matter.
    post_time: str = "08:15:00"
    post_tags: Annotated[list[str], NoDecode] = ["papers", "hugginface"]
    post_categories: Annotated[list[str], NoDecode] = []
    post_title: str = "Daily Papers — {date}"
    post_layout: str = "post"

    @field_validator("post_tags", "post_categories", "pdf_redirect_hosts", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # The environment gives "papers,hugginface"; digest.toml gives a real list.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

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

    def require_price(self) -> None:
        """``--max-cost`` needs the model's price: checked before anything is spent."""
        if self.price_of(self.model) is None:
            raise UsageError(
                f"--max-cost needs the price of {self.model!r}; add it to DIGEST_PRICES, "
                'e.g. {"' + self.model + '": [0.4, 0.1, 1.6]}'
            )

    def require_api_key(self) -> None:
        """The OpenAI API needs a key; a local server (OPENAI_BASE_URL) may not."""
        if self.api_key is None and self.base_url is None:
            raise UsageError(
                "no API key: set OPENAI_API_KEY, or OPENAI_BASE_URL for a local server "
                "that needs none"
            )

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

    def llm_options(self) -> LlmOptions:
        return LlmOptions(
            model=self.model,
            api_key=self.api_key.get_secret_value() if self.api_key else None,
            base_url=self.base_url,
            mode=self.llm_mode,
            temperature=self.temperature,
            reasoning_effort=self.reasoning_effort,
            max_output_tokens=self.max_output_tokens,
            timeout=self.llm_timeout,
            context_tokens=self.context_tokens,
            max_reasks=self.max_reasks,
            text_budget=self.text_budget,
            retry=self.llm_retry_policy(),
            price=self.price_of(self.model),
            concurrency=self.concurrency,
        )

    def fetch_options(self) -> FetchOptions:
        return FetchOptions(
            arxiv_api_url=self.arxiv_api_url,
            arxiv_pdf_url=self.arxiv_pdf_url,
            arxiv_delay=self.arxiv_delay,
            http_timeout=self.http_timeout,
            arxiv_retry=self.arxiv_retry_policy(),
            pdf_retry=self.http_retry_policy("the PDF host"),
            pdf_folder=self.cache_dir / "pdfs",
            pdf_max_mb=self.pdf_max_mb,
            pdf_redirect_hosts=frozenset(host.lower() for host in self.pdf_redirect_hosts),
            download_rate=self.download_rate,
            download_concurrency=self.download_concurrency,
            timezone=self.timezone,
        )

    def hf_options(self) -> HfOptions:
        return HfOptions(
            api_url=self.hf_api_url,
            http_timeout=self.http_timeout,
            retry=self.http_retry_policy("Hugging Face"),
        )

    def extract_options(self) -> ExtractOptions:
        return ExtractOptions(
            extractor=self.extractor, timeout=self.extract_timeout, text_budget=self.text_budget
        )

    def run_options(
        self, *, force: bool = False, max_cost: float | None = None, limit: int | None = None
    ) -> RunOptions:
        """The run's options; ``limit`` None takes every candidate (``--source ids``)."""
        return RunOptions(
            force=force,
            max_cost=max_cost,
            deadline_minutes=self.run_deadline,
            limit=limit,
            skip_published=self.skip_published,
        )

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
        )


def default_cache_dir() -> Path:
    """The per-user cache folder: $XDG_CACHE_HOME/digest, else ~/.cache/digest."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "digest"


def check_settings_file(path: Path) -> None:
    """A settings file that is not TOML, or names a setting that does not exist, is an error
    naming the file (and the closest setting): a typo must not be ignored without a word."""
    if not path.is_file():
        return
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{path}: not a valid settings file ({error}); fix or remove it") from None
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
    if config and not Path(config).is_file():
        raise UsageError(f"{CONFIG_FILE_ENV}={config}: no such file")
    check_settings_file(Path(config or "digest.toml"))
    try:
        settings = Settings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        environment = name if name.startswith("OPENAI_") else f"DIGEST_{name.upper()}"
        raise UsageError(f"setting {name} (environment {environment}): {message}") from None
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
    if settings.base_url:
        redact.register(urlsplit(settings.base_url).password)
    return settings
