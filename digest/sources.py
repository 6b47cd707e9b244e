"""Where papers come from: what a user may type to name one, and the list of a day's papers.

Accepted forms of an arXiv paper: ``2512.13604``, ``2512.13604v2``, ``arXiv:2512.13604``,
``https://arxiv.org/abs/…``, ``https://arxiv.org/pdf/…v2`` (with or without ``.pdf``), and
old-style IDs such as ``hep-th/9901001``. ``digest paper`` also takes a local ``FILE.pdf``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from digest.errors import UsageError
from digest.models import NEW_STYLE_ID, OLD_STYLE_ID

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
    # Old-style archive names are lower case ("hep-th"); the subject class is upper ("math.GT").
    if "/" in arxiv_id:
        archive, number = arxiv_id.split("/")
        name, _, subject = archive.partition(".")
        arxiv_id = f"{name.lower()}{'.' + subject.upper() if subject else ''}/{number}"
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
