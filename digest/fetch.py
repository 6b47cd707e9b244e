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
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

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
from digest.net import is_server_or_connection_error, is_transient
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
    """The PDF could not be had; the paper is digested from its abstract instead.

    ``transient`` says the cause may pass (5xx, a timeout, a dropped connection): the entry is
    then marked so that the next run tries the PDF again instead of keeping the abstract.
    """

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.transient = transient


class _PoliteSession(requests.Session):
    """The arXiv client's session: a timeout on every request (arxiv.Client sets none), and
    at least ``delay`` seconds from the start of one request to the next, failed ones too (the
    client spaces only requests that got an answer, so its retries could come quicker)."""

    def __init__(self, timeout: float, delay: float) -> None:
        super().__init__()
        self.timeout = timeout
        self.delay = delay
        self._last_start: float | None = None

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self._last_start is not None:
            time.sleep(max(0.0, self._last_start + self.delay - time.monotonic()))
        self._last_start = time.monotonic()
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
        self._client._session = _PoliteSession(settings.http_timeout, settings.arxiv_delay)
        self._lock = asyncio.Lock()
        self.requests_made = 0

    async def lookup(self, refs: list[ArxivRef]) -> dict[str, PaperMetadata]:
        """Metadata by unversioned ID; an ID missing from the answer is not on arXiv."""
        if not refs:
            return {}
        async with self._lock:  # serialized: the client spaces its requests by arxiv_delay
            return await asyncio.to_thread(self._lookup, refs)

    async def submitted_on(self, query: str, date: dt.date, limit: int) -> list[PaperMetadata]:
        """Papers matching ``query`` submitted on ``date`` (midnight to midnight in the
        ``timezone`` setting; arXiv's times are UTC), newest first."""
        zone = ZoneInfo(self.settings.timezone)
        start = dt.datetime.combine(date, dt.time(), zone)
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), zone)
        first, last = (  # the range is inclusive, to the minute
            moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M")
            for moment in (start, end - dt.timedelta(minutes=1))
        )
        search = arxiv.Search(
            query=f"({query}) AND submittedDate:[{first} TO {last}]",
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
        results: list[arxiv.Result] = []
        try:
            results.extend(self._client.results(search))
        except arxiv.UnexpectedEmptyPageError:
            # arXiv sometimes counts in totalResults IDs it then does not return (unknown ones
            # in an id_list), so the client asks for a page past the end and finds it empty.
            # What came before is complete; only with nothing at all is this an error.
            if not results:
                raise
        return results


# arXiv's comment on a withdrawn paper: "This paper has been withdrawn by the author(s)…",
# "Withdrawn: …", "paper withdrawn". Not "supersedes the withdrawn 2301.00001".
_WITHDRAWN = re.compile(
    r"^\W*(?:this (?:paper|article|submission|manuscript) )?(?:has been |is |was )?withdrawn\b"
    r"|\b(?:paper|article|submission|manuscript) (?:has been |is |was )?withdrawn\b",
    re.IGNORECASE,
)


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
            status = error.response.status_code
            raise DownloadFailed(
                f"PDF download failed: HTTP {status} from {url}",
                transient=is_transient(error),  # 5xx and 429 pass; a 404 stays
            ) from None
        except httpx2.HTTPError as error:
            # Timeouts and dropped connections (transient), or what no retry mends: a redirect
            # loop, a body that does not decode as its Content-Encoding says.
            kind = type(error).__name__
            raise DownloadFailed(
                f"PDF download failed: {kind} from {url}",
                transient=is_server_or_connection_error(error),
            ) from None
        try:
            check_pdf_bytes(data)
        except ExtractionFailed as error:
            raise DownloadFailed(f"the download from {url} is {error.reason}") from None
        if ref.version:
            try:
                atomic_write_bytes(path, data)
            except OSError as error:  # a full disk costs a download next time, not this paper
                log.warning("could not cache %s: %s", path, error)
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
