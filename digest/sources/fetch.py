"""The fetch stage: paper metadata from the arXiv API and PDFs from the PDF host.

arXiv's terms ask for one request every 3 seconds on one connection, so all metadata goes
through one shared ``arxiv.Client``, one call at a time, with every ID of a run in a single
``id_list`` query. The ``arxiv`` package sets no request timeout, retries every non-200 status
(4xx included) and parses a whole page at once, so that one malformed entry raises for all.
Its session is therefore ours (``_ArxivSession``): it adds a timeout and the spacing, raises on
a status other than 200 so that the shared retry policy (``digest.net``) decides, treats an
HTML page served with 200 as transient, and takes malformed entries out of the page before the
package sees it, each one failing only its own paper, with the reason.

PDFs come from ``export.arxiv.org``, as arXiv asks of programs, at most
``download_concurrency`` at once and ``download_rate`` started a second. Redirects are followed
by hand, only to https hosts on ``pdf_redirect_hosts`` (or the host asked), never to a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin, urlsplit
from zoneinfo import ZoneInfo

import arxiv
import httpx2
import requests
from lxml import etree

from digest.errors import (
    DownloadFailed,
    ExtractionFailed,
    MetadataError,
    SourceError,
    TransientAnswer,
)
from digest.files import atomic_write_bytes
from digest.models import NEW_STYLE_ID, OLD_STYLE_ID
from digest.net import AsyncSleep, Attempts, one_line, status_of, within
from digest.options import FetchOptions
from digest.sources.links import links_in
from digest.sources.papers import ArxivRef, Candidate, PaperMetadata, parse_arxiv_ref
from digest.text.extract import check_pdf_bytes

log = logging.getLogger(__name__)
A = TypeVar("A")
T = TypeVar("T")

_ATOM = {"atom": "http://www.w3.org/2005/Atom", "arxiv": "http://arxiv.org/schemas/atom"}
_ENTRY_ID = re.compile(
    rf"https?://(?:www\.|export\.)?arxiv\.org/abs/(?P<id>{NEW_STYLE_ID}|{OLD_STYLE_ID})"
    r"(?:v(?P<version>\d+))?"
)
_UNATTRIBUTED = ""  # the key of a malformed entry whose <id> names no paper
# The arXiv API gives at most 2,000 entries a request, and 30,000 for one query in all.
ARXIV_PAGE_MAX = 2000
ARXIV_QUERY_MAX = 30_000
_LOOKUP_PAGE = 100  # entries a page when papers are looked up by ID


class ArxivAnswerError(requests.HTTPError):
    """The arXiv API answered a status other than 200. A 400 comes with an Atom feed whose
    one entry explains it (``incorrect id format for abc``): that text is ``api_error``."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__(f"HTTP {response.status_code}", response=response)
        self.status_code = response.status_code
        self.api_error = _api_error_text(response.content)


def _api_error_text(content: bytes) -> str | None:
    try:
        root = etree.fromstring(content, _xml_parser())
    except etree.XMLSyntaxError:
        return None
    if root is None:
        return None
    for entry in root.iterfind("atom:entry", _ATOM):
        if (entry.findtext("atom:title", "", _ATOM) or "").strip() == "Error":
            return " ".join((entry.findtext("atom:summary", "", _ATOM) or "").split()) or None
    return None


def _xml_parser() -> etree.XMLParser:
    # No entities, no network, no huge trees: the answer is untrusted input.
    return etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)


def check_feed(content: bytes, problems: dict[str, str]) -> bytes:
    """The page with every malformed entry taken out; why each was is put in ``problems``
    by arXiv ID. Raises ``TransientAnswer`` when the page is not an Atom feed at all (an HTML
    error page served with status 200 by a proxy or a maintenance screen)."""
    try:
        root = etree.fromstring(content, _xml_parser())
    except etree.XMLSyntaxError:
        root = None
    if root is None or root.tag != "{http://www.w3.org/2005/Atom}feed":
        start = one_line(content[:80].decode("utf-8", "replace"), 60)
        raise TransientAnswer(f"the arXiv API answered a page that is not an Atom feed ({start})")
    for entry in list(root.iterfind("atom:entry", _ATOM)):
        arxiv_id, problem = _entry_problem(entry)
        if problem is not None:
            log.warning("the arXiv API's entry for %s is malformed: %s", arxiv_id or "?", problem)
            problems[arxiv_id or _UNATTRIBUTED] = problem
            entry.getparent().remove(entry)
    return bytes(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))


def _entry_problem(entry: Any) -> tuple[str | None, str | None]:
    """(the entry's arXiv ID if it names one, what is wrong with it or None)."""
    raw_id = (entry.findtext("atom:id", "", _ATOM) or "").strip()
    match = _ENTRY_ID.fullmatch(raw_id)
    if not match:
        return None, f"its <id> is not an arXiv abstract URL ({one_line(raw_id, 80)!r})"
    arxiv_id = match.group("id")
    if not match.group("version"):
        return arxiv_id, f"arXiv's entry has no version in its <id> ({raw_id!r})"
    for name in ("published", "updated"):
        text = (entry.findtext(f"atom:{name}", "", _ATOM) or "").strip()
        try:
            dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return arxiv_id, f"arXiv's entry has a malformed <{name}> date ({one_line(text, 40)!r})"
    return arxiv_id, None


class _ArxivSession(requests.Session):
    """The arXiv client's session (see the module's docstring)."""

    def __init__(
        self,
        timeout: float,
        delay: float,
        sleep: Callable[[float], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.timeout = timeout
        self.delay = delay
        self.sleep = sleep
        # What the spacing is measured on; a test gives a fake one with a fake ``sleep``.
        self.clock = clock
        self._last_start: float | None = None
        self.problems: dict[str, str] = {}  # malformed entries of the pages read, by arXiv ID

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        if self._last_start is not None:
            # From the start of one request to the next, failed ones too: the package spaces
            # only requests that got an answer, so its retries could come quicker.
            self.sleep(max(0.0, self._last_start + self.delay - self.clock()))
        self._last_start = self.clock()
        # The whole-answer deadline below is real time, whatever clock spaces the requests.
        started = time.monotonic()
        kwargs.setdefault("timeout", self.timeout)
        kwargs["stream"] = True
        response = super().request(*args, **kwargs)
        # requests' timeout is the gap between two bytes: a server trickling its answer would
        # hold this thread for ever. The whole answer gets http_timeout; then it is closed.
        fired = threading.Event()

        def give_up() -> None:
            fired.set()
            # Closing alone does not wake a thread blocked in recv(); shutting the socket does.
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            response.close()

        timer = threading.Timer(max(0.0, started + self.timeout - time.monotonic()), give_up)
        timer.start()
        try:
            content = response.content
        except (requests.RequestException, OSError, AttributeError):
            if not fired.is_set():
                raise
        finally:
            timer.cancel()
        if fired.is_set():
            raise requests.Timeout(
                f"the arXiv API's answer took longer than {self.timeout:g} s in all "
                "(DIGEST_HTTP_TIMEOUT)"
            )
        if response.status_code != 200:
            raise ArxivAnswerError(response)
        response._content = check_feed(content, self.problems)
        return response


async def _in_daemon_thread(function: Callable[[A], T], argument: A) -> T:
    """``function(argument)`` in a thread of its own, awaited.

    The ``arxiv`` package blocks, so it runs in a thread; but not in ``asyncio.to_thread``'s:
    a run stopped by Ctrl-C waits for those threads to end, here a request that may take
    ``http_timeout`` and its retries. A daemon thread is left behind instead; its answer,
    if it comes, is dropped."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not answer.done():  # cancelled: nobody waits for it any more
            outcome()

    def work() -> None:
        try:
            result = function(argument)
        except BaseException as error:  # handed to the awaiting task, which raises it
            report = functools.partial(answer.set_exception, error)
        else:
            report = functools.partial(answer.set_result, result)
        with contextlib.suppress(RuntimeError):  # the loop is closed: the run has ended
            loop.call_soon_threadsafe(settle, report)

    threading.Thread(target=work, name="arxiv-api", daemon=True).start()
    return await answer


@dataclass
class ArxivLookup:
    """What the arXiv API said of the IDs asked: their metadata, or why there is none."""

    found: dict[str, PaperMetadata] = field(default_factory=dict)
    problems: dict[str, str] = field(default_factory=dict)

    def reason_missing(self, arxiv_id: str) -> str:
        """Why ``arxiv_id`` has no metadata: its own problem, else not on arXiv."""
        if arxiv_id in self.problems:
            return self.problems[arxiv_id]
        if _UNATTRIBUTED in self.problems:
            malformed = self.problems[_UNATTRIBUTED]
            return f"not in the arXiv API's answer, which had a malformed entry: {malformed}"
        return "not found on arXiv"


class ArxivMetadata:
    """The one shared arXiv API client of a run."""

    def __init__(
        self,
        options: FetchOptions,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.policy = replace(
            options.arxiv_retry,
            connection_errors=(
                requests.ConnectionError,
                requests.Timeout,
                requests.exceptions.ChunkedEncodingError,
            ),
        )
        self.sleep = sleep
        self._client = arxiv.Client(
            page_size=_LOOKUP_PAGE, delay_seconds=options.arxiv_delay, num_retries=0
        )
        self._client.query_url_format = options.arxiv_api_url + "?{}"
        # The package has no timeout option; its session is the one place to add one.
        self._session = _ArxivSession(options.http_timeout, options.arxiv_delay, sleep, clock)
        self._client._session = self._session
        self._lock = asyncio.Lock()
        self.requests_made = 0

    async def lookup(self, refs: list[ArxivRef]) -> ArxivLookup:
        """Metadata by unversioned ID. Raises MetadataError when the API cannot be asked."""
        if not refs:
            return ArxivLookup()
        async with self._lock:  # serialized: the client spaces its requests by arxiv_delay
            return await _in_daemon_thread(self._lookup, refs)

    async def submitted_on(
        self, query: str, date: dt.date, limit: int | None
    ) -> list[PaperMetadata]:
        """Papers matching ``query`` submitted on ``date`` (midnight to midnight in the
        ``timezone`` setting; arXiv's times are UTC), newest first: at most ``limit``, or
        every one (up to ``ARXIV_QUERY_MAX``) when None. They come in pages of up to
        ``ARXIV_PAGE_MAX`` entries, ``arxiv_delay`` apart."""
        zone = ZoneInfo(self.options.timezone)
        start = dt.datetime.combine(date, dt.time(), zone)
        end = dt.datetime.combine(date + dt.timedelta(days=1), dt.time(), zone)
        first, last = (  # the range is inclusive, to the minute
            moment.astimezone(dt.UTC).strftime("%Y%m%d%H%M")
            for moment in (start, end - dt.timedelta(minutes=1))
        )
        wanted = ARXIV_QUERY_MAX if limit is None else min(limit, ARXIV_QUERY_MAX)
        search = arxiv.Search(
            query=f"({query}) AND submittedDate:[{first} TO {last}]",
            max_results=wanted,
            sort_by=arxiv.SortCriterion.SubmittedDate,
            sort_order=arxiv.SortOrder.Descending,
        )
        async with self._lock:
            self._client.page_size = min(wanted, ARXIV_PAGE_MAX)
            try:
                lookup = await _in_daemon_thread(self._search, search)
            finally:
                self._client.page_size = _LOOKUP_PAGE
        return list(lookup.found.values())

    def _lookup(self, refs: list[ArxivRef]) -> ArxivLookup:
        asked = {ref.arxiv_id: ref for ref in refs}
        rejected: dict[str, str] = {}
        while asked:
            search = arxiv.Search(
                id_list=[ref.versioned for ref in asked.values()], max_results=len(asked)
            )
            try:
                lookup = self._search(search)
            except _RejectedId as error:
                # arXiv answers 400 to the whole query for one ID it cannot parse; that ID
                # fails, and the query goes again without it.
                rejected[error.arxiv_id] = f"arXiv rejects the ID: {error.message}"
                del asked[error.arxiv_id]
                continue
            lookup.problems.update(rejected)
            return lookup
        return ArxivLookup(problems=rejected)

    def _search(self, search: arxiv.Search) -> ArxivLookup:
        self._session.problems = {}
        attempts = Attempts()
        try:
            results = self.policy.call_sync(
                lambda: self._results(search), attempts=attempts, sleep=self.sleep
            )
        except ArxivAnswerError as error:
            named = _rejected_id(error, search.id_list)
            if named is not None:
                raise _RejectedId(named, error.api_error or "") from None
            raise MetadataError(self._gave_up(error, attempts)) from error
        except (requests.RequestException, arxiv.ArxivError, TransientAnswer) as error:
            raise MetadataError(self._gave_up(error, attempts)) from error
        lookup = ArxivLookup(problems=dict(self._session.problems))
        for result in results:
            metadata = _to_metadata(result)
            lookup.found.setdefault(metadata.arxiv_id, metadata)
        return lookup

    def _gave_up(self, error: BaseException, attempts: Attempts) -> str:
        status = status_of(error)
        if attempts.stopped == "server-wait":
            return (
                f"the arXiv API asks to wait {attempts.asked:.0f} s (HTTP {status}), more than "
                f"DIGEST_RETRY_AFTER_CAP or what is left of DIGEST_HTTP_RETRY_BUDGET"
            )
        tries = f"after {attempts.plural}"
        if isinstance(error, ArxivAnswerError):
            detail = f": {error.api_error}" if error.api_error else ""
            return f"the arXiv API answered HTTP {status} {tries}{detail}"
        if isinstance(error, TransientAnswer):
            return f"{error} {tries}"
        return f"the arXiv API could not be reached ({type(error).__name__}) {tries}"

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


class _RejectedId(Exception):
    def __init__(self, arxiv_id: str, message: str) -> None:
        super().__init__(message)
        self.arxiv_id = arxiv_id
        self.message = message


def _rejected_id(error: ArxivAnswerError, id_list: list[str]) -> str | None:
    """The unversioned ID that a 400's error entry names, when it is one we asked for."""
    if error.status_code != 400 or not error.api_error:
        return None
    for item in id_list:
        if error.api_error.endswith(f" {item}"):
            ref = parse_arxiv_ref(item)
            return ref.arxiv_id if ref else item
    return None


# arXiv's comment on a withdrawn paper: "This paper has been withdrawn by the author(s)…",
# "Withdrawn: …", "paper withdrawn". Not "supersedes the withdrawn 2301.00001".
_WITHDRAWN = re.compile(
    r"^\W*(?:this (?:paper|article|submission|manuscript) )?(?:has been |is |was )?withdrawn\b"
    r"|\b(?:paper|article|submission|manuscript) (?:has been |is |was )?withdrawn\b",
    re.IGNORECASE,
)


def _to_metadata(result: arxiv.Result) -> PaperMetadata:
    # check_feed let only entries with a versioned abstract URL through.
    match = _ENTRY_ID.fullmatch(result.entry_id.strip())
    assert match is not None and match.group("version")
    comment = result.comment or ""
    return PaperMetadata(
        arxiv_id=match.group("id"),
        version=int(match.group("version")),
        title=" ".join(result.title.split()),
        authors=[author.name for author in result.authors],
        abstract=" ".join(result.summary.split()),
        published=result.published,
        withdrawn=bool(_WITHDRAWN.search(comment)),
        links=links_in(comment),  # "Code: https://github.com/…", "Project page: https://…"
    )


class _DownloadRate:
    """At most ``per_second`` starts a second, spread evenly (0: no limit)."""

    def __init__(
        self, per_second: float, sleep: AsyncSleep, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.interval = 1.0 / per_second if per_second > 0 else 0.0
        self.sleep = sleep
        self.clock = clock  # what the starts are spread on; a test gives a fake one
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def wait(self) -> None:
        if not self.interval:
            return
        async with self._lock:
            now = self.clock()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            await self.sleep(start - now)


class _Refused(Exception):
    """A redirect the downloader will not follow."""


class PdfDownloader:
    """Streams PDFs into the cache, keyed by ID and version, never past the size cap."""

    MAX_REDIRECTS = 5

    def __init__(
        self,
        options: FetchOptions,
        http: httpx2.AsyncClient,
        sleep: AsyncSleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options
        self.http = http
        self.sleep = sleep
        self.policy = replace(options.pdf_retry, connection_errors=(httpx2.TransportError,))
        self.rate = _DownloadRate(options.download_rate, sleep, clock)
        self.folder = options.pdf_folder
        self.max_bytes = int(options.pdf_max_mb * 1_000_000)
        self.redirect_hosts = options.pdf_redirect_hosts
        self.downloads = 0

    def cache_path(self, ref: ArxivRef) -> Path:
        return self.folder / f"{ref.file_stem}.pdf"

    async def fetch(self, ref: ArxivRef) -> bytes:
        """The PDF of ``ref`` (pinned to its version when known); raises ``DownloadFailed``."""
        path = self.cache_path(ref)
        if ref.version and path.is_file():
            return path.read_bytes()
        url = self.options.arxiv_pdf_url.format(id=ref.versioned)
        attempts = Attempts()
        try:
            data = await self.policy.call(
                lambda: self._download(url), attempts=attempts, sleep=self.sleep
            )
        except TransientAnswer as error:
            raise DownloadFailed(
                f"PDF download failed: {error}, from {url} after {attempts.plural}",
                transient=True,
            ) from None
        except httpx2.HTTPStatusError as error:
            raise self._status_failure(error, url, attempts) from None
        except _Refused as error:
            raise DownloadFailed(str(error)) from None
        except httpx2.HTTPError as error:
            # Timeouts and dropped connections (transient), or what no retry mends: a body
            # that does not decode as its Content-Encoding says.
            kind = type(error).__name__
            raise DownloadFailed(
                f"PDF download failed: {kind} from {url} after {attempts.plural}",
                transient=self.policy.is_transient(error),
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

    def _status_failure(
        self, error: httpx2.HTTPStatusError, url: str, attempts: Attempts
    ) -> DownloadFailed:
        status = error.response.status_code
        if status == 403:
            # arXiv's answer to a client it takes for a robot. It lifts in time, so the entry
            # is kept for the next run to try again, not given up as a missing PDF.
            return DownloadFailed(
                f"arXiv refused the download (blocked?): HTTP 403 from {url}", transient=True
            )
        if attempts.stopped == "server-wait":
            return DownloadFailed(
                f"PDF download failed: HTTP {status} from {url}, which asks to wait "
                f"{attempts.asked:.0f} s (more than DIGEST_RETRY_AFTER_CAP allows)",
                transient=True,
            )
        return DownloadFailed(
            f"PDF download failed: HTTP {status} from {url} after {attempts.plural}",
            transient=self.policy.is_transient(error),  # 5xx and 429 pass; a 404 stays
        )

    async def _download(self, url: str) -> bytes:
        await self.rate.wait()
        self.downloads += 1
        what = f"the download (DIGEST_HTTP_TIMEOUT={self.options.http_timeout:g})"
        return await within(self.options.http_timeout, self._follow(url), what)

    async def _follow(self, url: str) -> bytes:
        for _ in range(self.MAX_REDIRECTS + 1):
            async with self.http.stream("GET", url, follow_redirects=False) as response:
                if response.is_redirect:
                    url = self._redirect_target(url, response.headers.get("location", ""))
                    continue
                response.raise_for_status()
                return await self._read(url, response)
        raise _Refused(f"the PDF host redirected more than {self.MAX_REDIRECTS} times from {url}")

    def _redirect_target(self, url: str, location: str) -> str:
        """Where a redirect may go: https to an allowed host, or the same host and scheme as
        asked (arXiv moving a PDF on its own host). Never a file, never another scheme."""
        target = urljoin(url, location.strip())
        here, there = urlsplit(url), urlsplit(target)
        same_origin = (there.scheme, there.netloc) == (here.scheme, here.netloc)
        allowed = there.scheme == "https" and (there.hostname or "") in self.redirect_hosts
        if not (same_origin or allowed):
            raise _Refused(
                f"the PDF host redirected to {one_line(target, 120)}, which is not an https "
                "host on DIGEST_PDF_REDIRECT_HOSTS; not followed"
            )
        return target

    async def _read(self, url: str, response: httpx2.Response) -> bytes:
        declared = response.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > self.max_bytes:
            raise DownloadFailed(self._too_large(url, int(declared)))
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > self.max_bytes:
                raise DownloadFailed(self._too_large(url, size))
            chunks.append(chunk)
        return b"".join(chunks)

    def _too_large(self, url: str, size: int) -> str:
        return (
            f"the PDF at {url} is over the {self.options.pdf_max_mb:g} MB cap "
            f"({size / 1_000_000:.1f} MB seen; raise DIGEST_PDF_MAX_MB to allow it)"
        )


# Papers asked of an arXiv query beyond the limit, to fill the places of papers that an
# earlier day published.
ARXIV_SPARE = 20


class ArxivQuery:
    """``--source arxiv``: the papers matching a query, submitted on the day, newest first.
    Each candidate carries its full arXiv entry, so the papers need no second query.

    ``limit`` None takes the whole day (a ranked day: the reader's filters and ranking choose
    from every paper, not from the newest few)."""

    name = "arxiv"

    def __init__(self, metadata: ArxivMetadata, query: str, limit: int | None) -> None:
        self.metadata = metadata
        self.query = query
        self.limit = limit

    async def candidates(self, date: dt.date) -> list[Candidate]:
        wanted = None if self.limit is None else self.limit + ARXIV_SPARE
        try:
            found = await self.metadata.submitted_on(self.query, date, wanted)
        except MetadataError as error:
            raise SourceError(f"--source arxiv: {error}") from None
        return [Candidate(paper.ref, paper.title, metadata=paper) for paper in found]

    def nothing_found(self, date: dt.date) -> str:
        return f"No arXiv papers matching {self.query!r} were submitted on {date}; no post."
