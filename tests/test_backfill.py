"""digest backfill: every day of a range, as daily would do each, under one lock and one cap."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import answer_json, digest, make_digest
from tests.standins import StandIn, completion, hf_item
from tests.test_nightly import serve_papers

DAYS = ["2025-12-14", "2025-12-15", "2025-12-16"]


def post(day: str) -> Path:
    return Path(f"outputs/_posts/{day}-daily-papers.md")


def serve_days(standin: StandIn) -> None:
    papers = serve_papers(standin, 6)  # two a day
    for number, day in enumerate(DAYS):
        standin.hf_days[day] = [hf_item(paper, 5) for paper in papers[2 * number : 2 * number + 2]]


@pytest.mark.slow  # 0.5 s or more
def test_a_three_day_backfill_then_again_costs_nothing(standin: StandIn) -> None:
    serve_days(standin)
    code, _, err = digest("backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert code == 0, err
    assert "backfill 2025-12-14 to 2025-12-16: 3 of 3 days written, 6 papers digested" in err
    assert [r["date"] for r in standin.hf_requests if r["p"] == "0"] == DAYS  # oldest first
    assert len(standin.llm_requests) == 6
    posts = {day: post(day).read_bytes() for day in DAYS}
    for number, day in enumerate(DAYS):
        titles = [
            p["title"] for p in json.loads(Path(f"outputs/data/{day}.json").read_text())["papers"]
        ]
        assert titles == [f"Paper number {2 * number + 1}", f"Paper number {2 * number + 2}"]

    code, _, err = digest("backfill", "--from", DAYS[0], "--to", DAYS[-1])
    assert code == 0, err
    assert len(standin.llm_requests) == 6  # no paid work redone
    assert {day: post(day).read_bytes() for day in DAYS} == posts


def test_max_cost_covers_the_whole_range(standin: StandIn) -> None:
    serve_days(standin)
    usage = {"prompt_tokens": 10_000, "completion_tokens": 2_000}
    answer = answer_json(make_digest().model_dump())
    standin.llm_default = lambda request: completion(answer, usage=usage)
    # A paper costs 0.0072 USD: two papers fit in 0.015, the third would pass it.
    code, _, err = digest("backfill", "--from", DAYS[0], "--to", DAYS[-1], "--max-cost", "0.015")
    assert code == 1
    assert len(standin.llm_requests) == 2
    assert "would pass --max-cost 0.015 USD" in err  # the range's cap, not a day's share
    assert "1 of 3 days written, 2 papers digested, 4 not digested, 0.0144 USD" in err
    assert post(DAYS[0]).exists() and not post(DAYS[1]).exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2025-12-16", "--to", "2025-12-14"], "--from 2025-12-16 is after --to"),
        (["--from", "2025-12-14", "--to", "2999-01-01"], "--to 2999-01-01 has no complete list"),
        (["--from", "2025-12-14", "--to", "2025-12-15", "--source", "ids"], "use 'daily --ids'"),
        (["--from", "12/14", "--to", "2025-12-15"], "--from '12/14' is not a date"),
    ],
)
def test_a_bad_range_is_one_line_and_exit_2(
    standin: StandIn, args: list[str], message: str
) -> None:
    code, _, err = digest("backfill", *args)
    assert code == 2 and message in err
    assert standin.hf_requests == [] and standin.llm_requests == []


@pytest.mark.parametrize("batch", [False, True])
def test_a_paper_listed_again_later_in_the_range_is_skipped(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, batch: bool
) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    serve_days(standin)
    again = standin.hf_days[DAYS[0]][1]  # the first day's second paper, listed again
    standin.hf_days[DAYS[2]].insert(0, again)
    code, _, err = digest("backfill", "--from", DAYS[0], "--to", DAYS[-1], *(["--batch"] * batch))
    assert code == 0, err
    asked = standin.batch_requests if batch else standin.llm_requests
    assert len(asked) == 6  # digested once
    ids = [
        p["arxiv_id"]
        for p in json.loads(Path(f"outputs/data/{DAYS[2]}.json").read_text())["papers"]
    ]
    assert again["paper"]["id"] not in ids and len(ids) == 2
    report = json.loads(Path(f"outputs/data/{DAYS[2]}.run.json").read_text())
    skipped = [p for p in report["papers"] if p["status"] == "skipped"]
    assert [p["paper"] for p in skipped] == [again["paper"]["id"]]
    assert f"already published on {DAYS[0]}" in skipped[0]["error"]
