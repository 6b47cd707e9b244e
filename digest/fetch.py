"""The fetch stage: paper metadata from the arXiv API and PDFs from the PDF host.

arXiv's terms ask for one request every 3 seconds on one connection, so all metadata goes
through one shared ``arxiv.Client``, one call at a time, with every ID of a run in a single
``id_list`` query. The ``arxiv`` package sets no request timeout and retries every non-200
status, 4xx included; we give its session a timeout, turn its own retries off and retry only
what can succeed later (connection errors, timeouts, 5xx).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import arxiv
import httpx2
import requests
from pydantic import BaseModel
from tenacity import (
    AsyncRetrying,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from digest.extract import ExtractionFailed, check_pdf_bytes
from digest.net import is_server_or_connection_error
from digest.settings import Settings
from digest.sources import ArxivRef
from digest.store import atomic_write_bytes

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


class PaperMetadata(BaseModel):
    arxiv_id: str
    version: int
    title: str
    authors: list[str]
    abstract: str
    published: dt.datetime | None = None
    withdrawn: bool = False

    @property
    def ref(self) -> ArxivRef:
        return ArxivRef(self.arxiv_id, self.version)


class MetadataError(Exception):
    """The arXiv API could not be asked (every paper of the query fails with this reason)."""


class DownloadFailed(Exception):
    """The PDF could not be had; the paper is digested from its abstract instead."""


class _TimeoutSession(requests.Session):
    """A requests session that puts a timeout on every request (arxiv.Client sets none)."""

    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", self.timeout)
        return super().request(*args, **kwargs)


def _arxiv_call_is_transient(error: BaseException) -> bool:
    if isinstance(error, arxiv.HTTPError):
        return error.status >= 500
    return isinstance(error, requests.ConnectionError | requests.Timeout)


class ArxivMetadata:
    """The one shared arXiv API client of a run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client = arxiv.Client(
            page_size=100, delay_seconds=settings.arxiv_delay, num_retries=0
        )
        self._client.query_url_format = settings.arxiv_api_url + "?{}"
        # The package has no timeout option; its session is the one place to add one.
        self._client._session = _TimeoutSession(settings.http_timeout)
        self._lock = asyncio.Lock()
        self.requests_made = 0

    async def lookup(self, refs: list[ArxivRef]) -> dict[str, PaperMetadata]:
        """Metadata by unversioned ID; an ID missing from the answer is not on arXiv."""
        if not refs:
            return {}
        async with self._lock:  # serialized: the client spaces its requests by arxiv_delay
            return await asyncio.to_thread(self._lookup, refs)

    async def submitted_on(self, query: str, date: dt.date, limit: int) -> list[PaperMetadata]:
        """Papers matching ``query`` submitted on ``date`` (UTC), newest first."""
        day = date.strftime("%Y%m%d")
        search = arxiv.Search(
            query=f"({query}) AND submittedDate:[{day}0000 TO {day}2359]",
            max_results=limit,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        async with self._lock:
            return await asyncio.to_thread(self._search, search)

    def _lookup(self, refs: list[ArxivRef]) -> dict[str, PaperMetadata]:
        search = arxiv.Search(id_list=[ref.versioned for ref in refs], max_results=len(refs))
        return {metadata.arxiv_id: metadata for metadata in self._search(search)}

    def _search(self, search: arxiv.Search) -> list[PaperMetadata]:
        retrying = Retrying(
            retry=retry_if_exception(_arxiv_call_is_transient),
            wait=wait_exponential_jitter(
                multiplier=self.settings.retry_backoff, jitter=self.settings.retry_backoff, max=60
            ),
            stop=stop_after_attempt(self.settings.http_max_attempts),
            reraise=True,
        )
        try:
            results = retrying(self._results, search)
        except arxiv.HTTPError as error:
            raise MetadataError(f"the arXiv API answered HTTP {error.status}") from error
        except (requests.RequestException, arxiv.ArxivError) as error:
            raise MetadataError(f"the arXiv API could not be reached ({error})") from error
        return [_to_metadata(result) for result in results]

    def _results(self, search: arxiv.Search) -> list[arxiv.Result]:
        self.requests_made += 1
        return list(self._client.results(search))


_WITHDRAWN = re.compile(r"\bwithdrawn\b", re.IGNORECASE)


def _to_metadata(result: arxiv.Result) -> PaperMetadata:
    short_id = result.get_short_id()
    arxiv_id, _, version = short_id.rpartition("v")
    comment = result.comment or ""
    return PaperMetadata(
        arxiv_id=arxiv_id,
        version=int(version),
        title=" ".join(result.title.split()),
        authors=[author.name for author in result.authors],
        abstract=" ".join(result.summary.split()),
        published=result.published,
        withdrawn=bool(_WITHDRAWN.search(comment)),
    )


class PdfDownloader:
    """Streams PDFs into the cache, keyed by ID and version, never past the size cap."""

    def __init__(self, settings: Settings, http: httpx2.AsyncClient, sleep: Sleep) -> None:
        self.settings = settings
        self.http = http
        self.sleep = sleep
        self.folder = settings.cache_dir / "pdfs"
        self.max_bytes = int(settings.pdf_max_mb * 1_000_000)
        self.downloads = 0

    def cache_path(self, ref: ArxivRef) -> Path:
        return self.folder / f"{ref.file_stem}.pdf"

    async def fetch(self, ref: ArxivRef) -> bytes:
        """The PDF of ``ref`` (pinned to its version when known); raises ``DownloadFailed``."""
        path = self.cache_path(ref)
        if ref.version and path.is_file():
            return path.read_bytes()
        url = self.settings.arxiv_pdf_url.format(id=ref.versioned)
        retrying = AsyncRetrying(
            retry=retry_if_exception(is_server_or_connection_error),
            wait=wait_exponential_jitter(
                multiplier=self.settings.retry_backoff, jitter=self.settings.retry_backoff, max=30
            ),
            stop=stop_after_attempt(self.settings.http_max_attempts),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            data = await retrying(self._download, url)
        except httpx2.HTTPStatusError as error:
            raise DownloadFailed(
                f"PDF download failed: HTTP {error.response.status_code} from {url}"
            ) from None
        except httpx2.TransportError as error:
            kind = type(error).__name__
            raise DownloadFailed(f"PDF download failed: {kind} from {url}") from None
        try:
            check_pdf_bytes(data)
        except ExtractionFailed as error:
            raise DownloadFailed(f"the download from {url} is {error.reason}") from None
        if ref.version:
            atomic_write_bytes(path, data)
        return data

    async def _download(self, url: str) -> bytes:
        self.downloads += 1
        chunks: list[bytes] = []
        size = 0
        async with self.http.stream("GET", url, follow_redirects=True) as response:
            response.raise_for_status()
            declared = response.headers.get("content-length")
            if declared and declared.isdigit() and int(declared) > self.max_bytes:
                raise DownloadFailed(self._too_large(url, int(declared)))
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_bytes:
                    raise DownloadFailed(self._too_large(url, size))
                chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str, size: int) -> str:
        return (
            f"the PDF at {url} is over the {self.settings.pdf_max_mb:g} MB cap "
            f"({size / 1_000_000:.1f} MB seen; raise DIGEST_PDF_MAX_MB to allow it)"
        )
