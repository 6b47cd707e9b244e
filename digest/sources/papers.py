"""Where papers come from: what a user may type to name one, and the list of a day's papers.

Accepted forms of an arXiv paper: ``2512.13604``, ``2512.13604v2``, ``arXiv:2512.13604``,
``https://arxiv.org/abs/…``, ``https://arxiv.org/pdf/…v2`` (with or without ``.pdf``), and
old-style IDs such as ``hep-th/9901001``. Nothing may follow the ID but its version (and
``.pdf`` in a PDF link): a query, a fragment or more path is refused, not dropped, since what
was pasted is then not the link arXiv gives for a paper. ``digest paper`` also takes a local
``FILE.pdf``.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import httpx2
from pydantic import BaseModel, Field

from digest.errors import DigestError, SourceError, TransientAnswer, UsageError
from digest.models import NEW_STYLE_ID, OLD_STYLE_ID, Links
from digest.net import AsyncSleep, Attempts, describe, one_line, within
from digest.options import HfOptions
from digest.sources.links import hf_links

_ID = rf"(?P<id>{NEW_STYLE_ID}|{OLD_STYLE_ID})(?:v(?P<version>[1-9]\d{{0,2}}))?"
_BARE = re.compile(rf"(?:arxiv:)?{_ID}", re.IGNORECASE)
# An arXiv link up to the end of the ID and its version; what may follow is decided apart, so
# that a link with more after it is told so (``_not_a_paper``).
_URL_START = re.compile(
    rf"https?://(?:www\.|export\.)?arxiv\.org/(?P<page>abs|pdf)/{_ID}", re.IGNORECASE
)
# An ID as Hugging Face lists it: the ID alone, maybe with its version; no prefix, no link.
_LISTED = re.compile(_ID)
EXAMPLES = "e.g. 2512.13604, arXiv:2512.13604v2, https://arxiv.org/abs/2512.13604 or hep-th/9901001"
_SHOWN_CHARS = 120  # of a value in a message: a pasted page stays one readable line


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
    match = _BARE.fullmatch(text) or _url_match(text)
    return _ref(match) if match else None


def _url_match(text: str) -> re.Match[str] | None:
    """An arXiv link with nothing after the ID but its version, and ``.pdf`` in a PDF link."""
    match = _URL_START.match(text)
    if match is None:
        return None
    rest = text[match.end() :]
    if rest == "" or (rest.lower() == ".pdf" and match.group("page").lower() == "pdf"):
        return match
    return None


def _ref(match: re.Match[str]) -> ArxivRef:
    arxiv_id = match.group("id")
    # Old-style archive names are lower case ("hep-th"). A subject class ("math.GT/0309136") is
    # not part of the identifier: arXiv knows that paper as "math/0309136", and answers so.
    if "/" in arxiv_id:
        archive, number = arxiv_id.split("/")
        arxiv_id = f"{archive.partition('.')[0].lower()}/{number}"
    version = match.group("version")
    return ArxivRef(arxiv_id, int(version) if version else None)


def parse_listed_id(value: str) -> ArxivRef | None:
    """The paper a server's list names by its bare ID (Hugging Face's ``paper.id``), or None:
    a link or anything around the ID is no ID."""
    match = _LISTED.fullmatch(value)
    return _ref(match) if match else None


def parse_paper_argument(value: str) -> ArxivRef | LocalPdf:
    """What ``digest paper`` was given: an arXiv paper or an existing local PDF."""
    ref = parse_arxiv_ref(value)
    if ref:
        return ref
    path = Path(value)
    if path.suffix.lower() == ".pdf" and not _URL_START.match(value.strip()):
        if not path.is_file():
            raise UsageError(f"{value}: no such PDF file")
        return LocalPdf(path)
    raise UsageError(_not_a_paper(value, "an arXiv ID, arXiv URL or PDF file"))


def _not_a_paper(value: str, expected: str) -> str:
    """The one line for a value that names no paper: an arXiv link with something after its
    ID says what, and that only a version may follow."""
    text = value.strip()
    link = _URL_START.match(text)
    rest = text[link.end() :] if link else ""
    # A letter or digit after it makes another, malformed ID ("2512.136045"), not a link
    # with more after it.
    if link is not None and rest and not rest[0].isalnum():
        return (
            f"{_shown(value)} has {_shown(rest)} after its arXiv ID; nothing but "
            f"a version may follow it, e.g. https://arxiv.org/abs/{link.group('id')}v2 or "
            f"https://arxiv.org/pdf/{link.group('id')}v2.pdf"
        )
    return f"{_shown(value)} is not {expected}; use {EXAMPLES}"


def _shown(value: str) -> str:
    """``value`` as Python writes it (control characters escaped), cut when long."""
    shown = repr(value)
    return shown if len(shown) <= _SHOWN_CHARS else shown[: _SHOWN_CHARS - 3] + "..."


def parse_id_list(value: str) -> list[ArxivRef]:
    """``--ids A,B,C``: every item must be an arXiv paper; duplicates are kept once."""
    refs: list[ArxivRef] = []
    seen: set[str] = set()
    for item in value.split(","):
        if not item.strip():
            continue
        ref = parse_arxiv_ref(item)
        if ref is None:
            raise UsageError(f"--ids: {_not_a_paper(item.strip(), 'an arXiv ID or URL')}")
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
    # Its code, project and Hugging Face pages, as this source names them (digest.sources.links).
    links: Links = Field(default_factory=Links)

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
    detail = _hf_error_text(error.response)
    # Hugging Face answers 400, not an empty list, for a day that has not begun in UTC. This
    # machine's clock may be a little behind Hugging Face's, or ahead of it: its answer that
    # the day is in the future is believed whatever this clock says. Either way the date is
    # what is wrong, as with a --date in the future.
    if status == 400 and (date >= today or "future" in detail.lower()):
        return UsageError(_not_begun_on_hf(date, today))
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


def _not_begun_on_hf(date: dt.date, today: dt.date) -> str:
    """The one line for a day Hugging Face has no list for yet. ``today`` is this machine's
    UTC day: when it is past ``date``, this clock is ahead of Hugging Face's."""
    if date >= today:
        return (
            f"Hugging Face has no Daily Papers list for {date} yet: its days are UTC days, and "
            f"in UTC it is {today}; use --date yesterday or an earlier date"
        )
    return (
        f"Hugging Face has no Daily Papers list for {date} yet: its days are UTC days, and it "
        f"says {date} has not begun (this machine's clock says {today} in UTC); use an "
        "earlier date"
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
    paper_id = paper.get("id")
    ref = parse_listed_id(paper_id) if isinstance(paper_id, str) else None
    if ref is None:
        return None  # Daily Papers lists arXiv papers by ID; anything else cannot be fetched
    upvotes = paper.get("upvotes")
    title = " ".join(str(paper.get("title") or "").split())
    abstract = " ".join(str(paper.get("summary") or "").split())
    authors = [
        " ".join(str(author.get("name") or "").split())
        for author in paper.get("authors") or []
        if isinstance(author, dict) and author.get("name")
    ]
    metadata = PaperMetadata(
        arxiv_id=ref.arxiv_id,
        version=ref.version,
        title=title,
        authors=authors,
        abstract=abstract,
        links=hf_links(paper, ref.arxiv_id),
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
