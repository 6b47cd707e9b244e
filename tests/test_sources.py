from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from digest.errors import UsageError
from digest.sources.papers import (
    ArxivRef,
    LocalPdf,
    parse_id_list,
    parse_listed_id,
    parse_paper_argument,
)
from tests.helpers import digest
from tests.standins import StandIn, json_reply

ACCEPTED = [
    ("2512.13604", ArxivRef("2512.13604")),
    ("2512.13604v2", ArxivRef("2512.13604", 2)),
    ("arXiv:2512.13604", ArxivRef("2512.13604")),
    ("arxiv:2512.13604v3", ArxivRef("2512.13604", 3)),
    ("  2512.13604  ", ArxivRef("2512.13604")),
    ("0908.0054", ArxivRef("0908.0054")),
    ("https://arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("https://arxiv.org/abs/2512.13604v2", ArxivRef("2512.13604", 2)),
    ("http://arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("https://arxiv.org/pdf/2512.13604v2", ArxivRef("2512.13604", 2)),
    ("https://arxiv.org/pdf/2512.13604v2.pdf", ArxivRef("2512.13604", 2)),
    ("https://arxiv.org/pdf/2512.13604.pdf", ArxivRef("2512.13604")),
    ("https://www.arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("https://export.arxiv.org/abs/2512.13604", ArxivRef("2512.13604")),
    ("  https://arxiv.org/abs/2512.13604v2\n", ArxivRef("2512.13604", 2)),
    ("https://arxiv.org/pdf/hep-th/9901001v1.pdf", ArxivRef("hep-th/9901001", 1)),
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


# A link with anything after the ID but its version (and ".pdf" in a PDF link): refused, not
# read as the ID it starts with. (value, what the message says follows the ID)
MORE_AFTER_THE_ID = [
    (
        'https://arxiv.org/abs/2512.10002#"><script>alert(1)</script>',
        '#"><script>alert(1)</script>',
    ),
    ("https://arxiv.org/abs/2512.10002v2#section-3", "#section-3"),
    ("https://www.arxiv.org/abs/2512.13604?context=cs", "?context=cs"),
    ("https://arxiv.org/pdf/2512.13604v2.pdf?download=1", ".pdf?download=1"),
    ("https://arxiv.org/abs/2512.13604/", "/"),
    ("https://arxiv.org/abs/2512.13604/../../etc/passwd", "/../../etc/passwd"),
    ("https://arxiv.org/abs/2512.13604.pdf", ".pdf"),  # .pdf is a PDF link's, not a page's
    ("https://arxiv.org/abs/hep-th/9901001v1;x", ";x"),
    ("https://arxiv.org/abs/2512.13604 and more", " and more"),
]


@pytest.mark.parametrize(("value", "rest"), MORE_AFTER_THE_ID)
def test_a_link_with_more_after_the_id_is_refused_saying_what(value: str, rest: str) -> None:
    with pytest.raises(UsageError) as raised:
        parse_paper_argument(value)
    message = str(raised.value)
    assert raised.value.exit_code == 2 and "\n" not in message
    assert message.startswith(
        f"{value!r} has {rest!r} after its arXiv ID; nothing but a version may follow it, e.g. "
    )
    with pytest.raises(UsageError) as raised:
        parse_id_list(f"2512.10001,{value}")
    assert str(raised.value).startswith(f"--ids: {value!r} has ")


def test_a_hostile_value_is_named_on_one_short_line() -> None:
    value = "https://arxiv.org/abs/2512.10002#" + "\x1b[31m\n" * 500
    with pytest.raises(UsageError) as raised:
        parse_paper_argument(value)
    message = str(raised.value)
    assert "\n" not in message and "\x1b" not in message  # escaped, as Python writes them
    assert len(message) < 500


def test_a_pdf_named_like_an_arxiv_link_is_not_taken_for_a_file() -> None:
    with pytest.raises(UsageError, match=r"has '#x\.pdf' after its arXiv ID"):
        parse_paper_argument("https://arxiv.org/abs/2512.10002#x.pdf")


def test_hugging_face_ids_are_bare_ids_only() -> None:
    assert parse_listed_id("2512.13604") == ArxivRef("2512.13604")
    assert parse_listed_id("hep-th/9901001") == ArxivRef("hep-th/9901001")
    for value in [
        "https://arxiv.org/abs/2512.13604",
        "2512.13604#x",
        "arXiv:2512.13604",
        " 2512.13604",
        "2512.13604/../x",
    ]:
        assert parse_listed_id(value) is None, value


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


# --- on the command line ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["paper", 'https://arxiv.org/abs/2512.10002#"><script>alert(1)</script>'],
        ["daily", "--source", "ids", "--ids", "2512.10001,https://arxiv.org/abs/2512.10002?x=1"],
    ],
    ids=["paper", "daily --ids"],
)
def test_a_hostile_link_exits_2_with_one_line_naming_it(
    standin: StandIn, command: list[str]
) -> None:
    code, out, err = digest(*command)
    assert code == 2 and out == ""
    (line,) = err.strip().splitlines()
    assert line.startswith("error: ") and "after its arXiv ID" in line
    assert repr(command[-1].split(",")[-1]) in line
    assert standin.arxiv_requests == [] and standin.llm_requests == []


def test_a_day_hugging_face_says_has_not_begun_exits_2_with_one_line(standin: StandIn) -> None:
    # This machine's clock is ahead of Hugging Face's: by its own clock the day has begun.
    yesterday = (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).date()
    today = yesterday + dt.timedelta(days=1)
    answer = json_reply(400, {"error": f"Invalid date: {yesterday} is in the future"})
    expected = (
        f"error: Hugging Face has no Daily Papers list for {yesterday} yet: its days are UTC "
        f"days, and it says {yesterday} has not begun (this machine's clock says {today} in "
        "UTC); use an earlier date"
    )
    for command in (
        ["daily", "--date", "yesterday"],
        ["backfill", "--from", str(yesterday), "--to", str(yesterday)],
    ):
        standin.hf_replies = [answer]
        code, _, err = digest(*command)
        assert code == 2, err
        assert err.strip().splitlines()[-1] == expected, err
        assert err.count("error:") == 1 and standin.llm_requests == []


def test_another_400_from_hugging_face_still_fails_the_run(standin: StandIn) -> None:
    standin.hf_replies = [json_reply(400, {"error": "Invalid value for p"})]
    code, _, err = digest("daily", "--date", "2025-12-16")
    assert code == 1
    assert "Hugging Face Daily Papers answered HTTP 400 for 2025-12-16: Invalid value for p" in err
