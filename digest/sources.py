"""Where papers come from: what a user may type to name one, and the list of a day's papers.

Accepted forms of an arXiv paper: ``2512.13604``, ``2512.13604v2``, ``arXiv:2512.13604``,
``https://arxiv.org/abs/…``, ``https://arxiv.org/pdf/…v2`` (with or without ``.pdf``), and
old-style IDs such as ``hep-th/9901001``. ``digest paper`` also takes a local ``FILE.pdf``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import httpx2
from pydantic import BaseModel

from digest.errors import DigestError, SourceError, TransientAnswer, UsageError
from digest.models import NEW_STYLE_ID, OLD_STYLE_ID
from digest.net import AsyncSleep, Attempts, describe, one_line, within
from digest.options import HfOptions

_ID = rf"(?P<id>{NEW_STYLE_ID}|{OLD_STYLE_ID})(?:v(?P<version>[1-9]\d{{0,2}}))?"
_BARE = re.compile(rf"(?:arxiv:)?{_ID}", re.IGNORECASE)
_URL = re.compile(
    rf"https?://(?:www\.|export\.)?arxiv\.org/(?:abs|pdf)/{_ID}(?:\.pdf)?/?(?:[?#].*)?",
    re.IGNORECASE,
)
EXAMPLES = "e.g. 2512.13604, arXiv:2512.13604v2, https://arxiv.org/abs/2512.13604 or hep-th/9901001"


@dataclass(frozen=True)
class ArxivRef:
    """An arXiv paper, with the version when the user named one."""

    arxiv_id: str
    version: int | None = None

    @property
    def versioned(self) -> str:
        return f"{self.arxiv_id}v{self.version}" if self.version else self.arxiv_id

    @property
    def file_stem(self) -> str:
        """A file name for this paper: old-style IDs lose their slash (hep-th_9901001v1)."""
        return self.versioned.replace("/", "_")

    def __str__(self) -> str:
        return self.versioned


@dataclass(frozen=True)
class LocalPdf:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


def parse_arxiv_ref(value: str) -> ArxivRef | None:
    """The arXiv paper ``value`` names, or None if it names none."""
    text = value.strip()
    match = _BARE.fullmatch(text) or _URL.fullmatch(text)
    if not match:
        return None
    arxiv_id = match.group("id")
    # Old-style archive names are lower case ("hep-th"). A subject class ("math.GT/0309136") is
    # not part of the identifier: arXiv knows that paper as "math/0309136", and answers so.
    if "/" in arxiv_id:
        archive, number = arxiv_id.split("/")
        arxiv_id = f"{archive.partition('.')[0].lower()}/{number}"
    version = match.group("version")
    return ArxivRef(arxiv_id, int(version) if version else None)


def parse_paper_argument(value: str) -> ArxivRef | LocalPdf:
    """What ``digest paper`` was given: an arXiv paper or an existing local PDF."""
    ref = parse_arxiv_ref(value)
    if ref:
        return ref
    path = Path(value)
    if path.suffix.lower() == ".pdf":
        if not path.is_file():
            raise UsageError(f"{value}: no such PDF file")
        return LocalPdf(path)
    raise UsageError(f"{value!r} is not an arXiv ID, arXiv URL or PDF file; use {EXAMPLES}")


def parse_id_list(value: str) -> list[ArxivRef]:
    """``--ids A,B,C``: every item must be an arXiv paper; duplicates are kept once."""
    refs: list[ArxivRef] = []
    seen: set[str] = set()
    for item in value.split(","):
        if not item.strip():
            continue
        ref = parse_arxiv_ref(item)
        if ref is None:
            raise UsageError(f"--ids: {item.strip()!r} is not an arXiv ID or URL; use {EXAMPLES}")
        if ref.arxiv_id not in seen:
            seen.add(ref.arxiv_id)
            refs.append(ref)
    if not refs:
        raise UsageError(
            "--ids is empty; give arXiv IDs separated by commas, e.g. 2512.13604,2512.10655"
        )
    return refs


class PaperMetadata(BaseModel):
    """What is known of a paper before its PDF: from the arXiv API, or from Hugging Face's
    answer (which carries no version: ``version`` is then None until arXiv names it)."""

    arxiv_id: str
    version: int | None
    title: str
    authors: list[str]
    abstract: str
    published: dt.datetime | None = None
    withdrawn: bool = False

    @property
    def ref(self) -> ArxivRef:
        return ArxivRef(self.arxiv_id, self.version)


@dataclass(frozen=True)
class Candidate:
    """A paper a source proposes for the day, in the source's order, with what the source
    already says of it (Hugging Face: title, abstract, authors; an arXiv query: everything)."""

    ref: ArxivRef
    title: str = ""
    upvotes: int | None = None
    metadata: PaperMetadata | None = None
    withdrawn: bool = False  # the source says it was withdrawn


HF_PAGE_SIZE = 50
HF_MAX_PAGES = 40  # 2,000 papers: far beyond any day, and a stop for a server ignoring ``p``


class Source(Protocol):
    """Where a day's papers come from. Each candidate carries what the source already knows of
    its paper, so that nothing is asked twice (see ``Candidate``)."""

    name: str  # as --source names it

    async def candidates(self, date: dt.date) -> list[Candidate]: ...

    def nothing_found(self, date: dt.date) -> str:
        """What to tell a user when the source has no paper for ``date``."""
        ...


class IdsSource:
    """``--source ids``: the papers named, every one of them, in the order given."""

    name = "ids"

    def __init__(self, refs: list[ArxivRef]) -> None:
        self.refs = refs

    async def candidates(self, date: dt.date) -> list[Candidate]:
        return [Candidate(ref) for ref in self.refs]

    def nothing_found(self, date: dt.date) -> str:
        return "No arXiv IDs given; no post written."


class HfSource:
    """``--source hf``: Hugging Face Daily Papers, with title, abstract and authors."""

    name = "hf"

    def __init__(self, options: HfOptions, min_upvotes: int, sleep: AsyncSleep) -> None:
        self.options = options
        self.min_upvotes = min_upvotes
        self.sleep = sleep
        self.listed = 0  # papers the day had, before the upvote filter

    async def candidates(self, date: dt.date) -> list[Candidate]:
        async with httpx2.AsyncClient(timeout=self.options.http_timeout) as http:
            listed = await hf_daily_papers(self.options, http, date, self.sleep)
        self.listed = len(listed)
        return with_upvotes(listed, self.min_upvotes)

    def nothing_found(self, date: dt.date) -> str:
        what = "papers" if not self.listed else f"papers with {self.min_upvotes}+ upvotes"
        return f"No {what} on Hugging Face Daily Papers for {date}; no post written."


async def hf_daily_papers(
    options: HfOptions, http: httpx2.AsyncClient, date: dt.date, sleep: AsyncSleep
) -> list[Candidate]:
    """The papers added to Hugging Face Daily Papers on ``date``, most upvoted first.

    Hugging Face's day is a UTC day. Pages (``p``, ``limit``) are read until one comes back
    empty. Ties keep the API's order. Each candidate carries the title, abstract and authors of
    the answer, so that the arXiv API is needed only for the version.
    """
    url = f"{options.api_url.rstrip('/')}/daily_papers"
    policy = replace(options.retry, connection_errors=(httpx2.TransportError,))
    found: dict[str, Candidate] = {}
    for page in range(HF_MAX_PAGES):
        params = {"date": date.isoformat(), "p": str(page), "limit": str(HF_PAGE_SIZE)}
        attempts = Attempts()

        async def get_page(params: dict[str, str] = params) -> object:
            what = "Hugging Face's answer (DIGEST_HTTP_TIMEOUT)"
            return await within(options.http_timeout, _get_json(http, url, params), what)

        try:
            items = await policy.call(
                get_page,
                attempts=attempts,
                sleep=sleep,
            )
        except httpx2.HTTPStatusError as error:
            raise _hf_failure(error, date, attempts) from None
        except (httpx2.TransportError, TransientAnswer) as error:
            raise SourceError(
                f"Hugging Face Daily Papers could not be reached ({describe(error)}) after "
                f"{attempts.plural}"
            ) from None
        if not isinstance(items, list):
            raise SourceError(
                f"Hugging Face Daily Papers answered something other than a list for {date}"
            )
        if not items:
            break
        fresh = [candidate for candidate in map(_hf_candidate, items) if candidate]
        new = [c for c in fresh if c.ref.arxiv_id not in found]
        if fresh and not new:
            break  # the same page again: the server ignores ``p``
        found.update((c.ref.arxiv_id, c) for c in new)
    return sorted(found.values(), key=lambda candidate: -(candidate.upvotes or 0))


def utc_today() -> dt.date:
    """Hugging Face's today: its Daily Papers days are UTC days."""
    return dt.datetime.now(dt.UTC).date()


def _hf_failure(error: httpx2.HTTPStatusError, date: dt.date, attempts: Attempts) -> DigestError:
    status = error.response.status_code
    today = utc_today()
    if status == 400 and date >= today:
        # Hugging Face answers 400, not an empty list, for a day that has not begun in UTC
        # (this machine's clock may be a little behind Hugging Face's).
        return UsageError(
            f"Hugging Face has no Daily Papers list for {date} yet: its days are UTC days, and "
            f"in UTC it is {today}; use --date yesterday or an earlier date"
        )
    detail = _hf_error_text(error.response)
    if attempts.stopped == "server-wait":
        return SourceError(
            f"Hugging Face Daily Papers is rate limited (HTTP {status}) and asks to wait "
            f"{attempts.asked:.0f} s, more than DIGEST_RETRY_AFTER_CAP allows; try again later"
        )
    tries = f" after {attempts.plural}" if attempts.count > 1 else ""
    return SourceError(
        f"Hugging Face Daily Papers answered HTTP {status} for {date}{tries}"
        + (f": {detail}" if detail else "")
    )


def _hf_error_text(response: httpx2.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("error") if isinstance(body, dict) else None
    return one_line(message, 200) if isinstance(message, str) else ""


def _hf_candidate(item: object) -> Candidate | None:
    paper = item.get("paper") if isinstance(item, dict) else None
    if not isinstance(paper, dict):
        return None
    ref = parse_arxiv_ref(str(paper.get("id", "")))
    if ref is None:
        return None  # Daily Papers lists arXiv papers; anything else cannot be fetched
    upvotes = paper.get("upvotes")
    title = " ".join(str(paper.get("title") or "").split())
    abstract = " ".join(str(paper.get("summary") or "").split())
    authors = [
        " ".join(str(author.get("name") or "").split())
        for author in paper.get("authors") or []
        if isinstance(author, dict) and author.get("name")
    ]
    metadata = PaperMetadata(
        arxiv_id=ref.arxiv_id, version=ref.version, title=title, authors=authors, abstract=abstract
    )
    return Candidate(
        ref,
        title,
        upvotes if isinstance(upvotes, int) else 0,
        metadata=metadata,
        withdrawn=bool(paper.get("withdrawnAt")),
    )


async def _get_json(http: httpx2.AsyncClient, url: str, params: dict[str, str]) -> object:
    response = await http.get(url, params=params)
    response.raise_for_status()
    try:
        return response.json()
    except ValueError:
        # A proxy's or a maintenance page served with 200: the next try may get the API.
        raise TransientAnswer(f"{url} answered a page that is not JSON") from None


def with_upvotes(candidates: list[Candidate], min_upvotes: int) -> list[Candidate]:
    """The candidates with at least ``min_upvotes`` (unknown counts pass), in order.

    ``--limit`` is applied later, when the day is planned: papers an earlier day published
    do not take up places."""
    return [c for c in candidates if c.upvotes is None or c.upvotes >= min_upvotes]
