from __future__ import annotations

from pathlib import Path

import pytest

from digest.errors import UsageError
from digest.sources import ArxivRef, LocalPdf, parse_id_list, parse_paper_argument

ACCEPTED = [
    ("2512.13604", ArxivRef("2512.13604")),
    ("2512.13604v2", ArxivRef("2512.13604", 2)),
    ("arXiv:2512.13604", ArxivRef("2512.13604")),
    ("arxiv:2512.13604v3", ArxivRef("2512.13604", 3)),
    ("  2512.13604  ", ArxivRef("2512.13604")),
    ("0908.0054", ArxivRef("0908.0054")),
    ("https://arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("https://arxiv.org/abs/2512.13604v2", ArxivRef("2512.13604", 2)),
    ("http://arxiv.org/abs/2512.13604/", ArxivRef("2512.13604")),
    ("https://arxiv.org/pdf/2512.13604v2", ArxivRef("2512.13604", 2)),
    ("https://arxiv.org/pdf/2512.13604v2.pdf", ArxivRef("2512.13604", 2)),
    ("https://www.arxiv.org/abs/2512.13604?context=cs", ArxivRef("2512.13604")),
    ("https://export.arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("hep-th/9901001", ArxivRef("hep-th/9901001")),
    ("hep-th/9901001v1", ArxivRef("hep-th/9901001", 1)),
    ("arXiv:math.GT/0309136", ArxivRef("math/0309136")),  # the subject class is no part of the ID
    ("https://arxiv.org/abs/cond-mat/0011209v2", ArxivRef("cond-mat/0011209", 2)),
]


@pytest.mark.parametrize(("value", "expected"), ACCEPTED)
def test_every_accepted_form(value: str, expected: ArxivRef) -> None:
    assert parse_paper_argument(value) == expected


REJECTED = [
    "2512.136",  # too few digits
    "2512.1360456",  # too many
    "2512.13604v",  # version without a number
    "2512.13604v0",
    "25121.3604",
    "https://example.com/abs/2512.13604",
    "https://arxiv.org/list/cs.LG/recent",
    "hep-th/990100",
    "../../etc/passwd",
    "hello",
    "",
]


@pytest.mark.parametrize("value", REJECTED)
def test_anything_else_is_rejected_naming_the_value(value: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_paper_argument(value)
    assert repr(value) in str(raised.value)
    assert raised.value.exit_code == 2


def test_old_style_ids_never_make_a_path_with_a_slash() -> None:
    ref = ArxivRef("hep-th/9901001", 1)
    assert ref.file_stem == "hep-th_9901001v1"
    assert "/" not in ref.file_stem


def test_local_pdf_argument(tmp_path: Path) -> None:
    pdf = tmp_path / "paper.pdf"
    pdf.write_bytes(b"%PDF-1.4")
    assert parse_paper_argument(str(pdf)) == LocalPdf(pdf)
    with pytest.raises(UsageError, match="no such PDF file"):
        parse_paper_argument(str(tmp_path / "missing.pdf"))


def test_id_lists() -> None:
    assert parse_id_list("2512.13604, arXiv:2512.10655v2,2512.13604v1,") == [
        ArxivRef("2512.13604"),
        ArxivRef("2512.10655", 2),
    ]
    with pytest.raises(UsageError, match="--ids: 'nope' is not an arXiv ID"):
        parse_id_list("2512.13604,nope")
    with pytest.raises(UsageError, match="--ids is empty"):
        parse_id_list(" , ")
