"""A day chosen by the reader's interests: the keyword filters, the LLM's scores (a second kind
of conversation, re-asked like the digest's), the followed authors, ``min_score``, the cache,
``--max-cost``, the format fallback, and nothing changed when no interests are set."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from digest.llm.rank import MAX_REASON_CHARS, PaperScore, Scores, parse_scores, score_problems
from digest.runs.ranking import author_key, keyword_in
from tests.conftest import PDF_ABSTRACT
from tests.helpers import digest, good
from tests.standins import ArxivPaper, Reply, StandIn, completion, hf_item, like_deepseek
from tests.test_nightly import DATE, DAY_FILE, PDF, POST, REPORT

RANK_PROMPT = "You rank research papers"
CAP = "0.0038"  # USD: one digest's estimate fits, not with the ranking's spend before it


def make_paper(number: int, title: str = "", authors: list[str] | None = None) -> ArxivPaper:
    return ArxivPaper(
        f"2512.{10000 + number}",
        1,
        title or f"Paper number {number}",
        authors or ["Kim"],
        f"Abstract {number}. {PDF_ABSTRACT}",
    )


def is_ranking(request: dict[str, Any]) -> bool:
    return request["messages"][0]["content"].startswith(RANK_PROMPT)


def asked_ids(request: dict[str, Any]) -> list[str]:
    return re.findall(r"^arXiv ID: (\S+)$", request["messages"][1]["content"], re.MULTILINE)


def scoring(scores: dict[str, int]) -> Any:
    """The stand-in's LLM: digests as ``good`` does, and each ranking request scored from
    ``scores`` (by arXiv ID; 5 when not named)."""

    def reply(request: dict[str, Any]) -> Reply:
        if not is_ranking(request):
            return good(request)
        items = [
            {
                "arxiv_id": arxiv_id,
                "score": scores.get(arxiv_id, 5),
                "reason": "관심사와 관련된 논문.",
            }
            for arxiv_id in asked_ids(request)
        ]
        return completion(json.dumps({"scores": items}, ensure_ascii=False))

    return reply


def serve(standin: StandIn, papers: list[ArxivPaper]) -> None:
    for item in papers:
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v1"] = PDF
    standin.hf_days[DATE] = [hf_item(item, 5) for item in papers]


def ranking_requests(standin: StandIn) -> list[dict[str, Any]]:
    return [request for request in standin.llm_requests if is_ranking(request)]


def ids_in_post() -> list[str]:
    return re.findall(r"\(https://arxiv\.org/abs/(\S+?)\)", POST.read_text(encoding="utf-8"))


def day_candidates() -> dict[str, dict[str, Any]]:
    day = json.loads(DAY_FILE.read_text(encoding="utf-8"))
    return {item["arxiv_id"]: item for item in day["candidates"]}


@pytest.fixture
def interests(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_INTERESTS", "강화학습과 로봇 조작")


# --- The keyword filters ------------------------------------------------------------------


def test_latin_keywords_match_whole_words_without_case() -> None:
    assert keyword_in("RL", "Offline RL for robots")
    assert keyword_in("rl", "Offline RL, at scale")
    assert keyword_in("RL", "(RL)")
    assert not keyword_in("RL", "A URL shortener")
    assert not keyword_in("RL", "Curling robots")
    assert keyword_in("Diffusion Model", "a diffusion model for video")
    assert not keyword_in("", "anything")


def test_hangul_keywords_match_inside_words() -> None:
    assert keyword_in("강화", "강화학습 기반의 로봇 제어")
    assert keyword_in("로봇", "휴머노이드로봇")
    assert not keyword_in("언어", "강화학습 기반의 로봇 제어")


def test_author_names_are_compared_normalized() -> None:
    assert author_key("José  M. Álvarez") == author_key("jose m alvarez") == "jose m alvarez"
    assert author_key("Kim, Chul-Su") == author_key("kim chul su")


# --- The answers' checks -----------------------------------------------------------------

ASKED = ["2512.10001", "2512.10002"]


def scores_of(*items: tuple[str, int, str]) -> Scores:
    return Scores(scores=[PaperScore(arxiv_id=a, score=s, reason=r) for a, s, r in items])


def test_a_good_answer_passes() -> None:
    good_scores = scores_of(("2512.10001", 3, "관련이 적다."), ("2512.10002", 10, "정확히 맞다."))
    assert score_problems(good_scores, ASKED) == []


@pytest.mark.parametrize(
    ("items", "problem"),
    [
        ([("2512.10001", 3, "관련."), ("2512.99999", 3, "관련.")], "not a paper asked about"),
        ([("2512.10001", 3, "관련.")], "no score for 2512.10002"),
        (
            [("2512.10001", 3, "관련."), ("2512.10001", 4, "관련."), ("2512.10002", 1, "관련.")],
            "scored more than once",
        ),
        ([("2512.10001", 11, "관련."), ("2512.10002", 1, "관련.")], "11 is not from 0 to 10"),
        ([("2512.10001", -1, "관련."), ("2512.10002", 1, "관련.")], "-1 is not from 0 to 10"),
        (
            [("2512.10001", 3, "가" * 5000), ("2512.10002", 1, "관련.")],
            f"at most {MAX_REASON_CHARS}",
        ),
        ([("2512.10001", 3, "Relevant."), ("2512.10002", 1, "관련.")], "must be written in Korean"),
        ([("2512.10001", 3, "관련.\n둘째 줄"), ("2512.10002", 1, "관련.")], "one non-empty line"),
    ],
)
def test_a_hostile_answer_is_named_for_the_reask(
    items: list[tuple[str, int, str]], problem: str
) -> None:
    problems = score_problems(scores_of(*items), ASKED)
    assert any(problem in line for line in problems), problems


def test_nan_and_text_scores_are_no_scores() -> None:
    nan = '{"scores": [{"arxiv_id": "2512.10001", "score": NaN, "reason": "관련."}]}'
    scores, problems = parse_scores(nan, ["2512.10001"])
    assert scores is None and any("score" in line for line in problems), problems
    fenced = '```json\n{"scores": [{"arxiv_id": "2512.10001", "score": 4, "reason": "관련."}]}\n```'
    scores, problems = parse_scores(fenced, ["2512.10001"])
    assert scores is not None and problems == []


# --- A day chosen by interests ------------------------------------------------------------


def test_the_day_takes_the_best_scores_with_ties_in_the_source_order(
    standin: StandIn, interests: None
) -> None:
    papers = [make_paper(n) for n in range(1, 7)]
    serve(standin, papers)
    scores = {"2512.10001": 3, "2512.10002": 9, "2512.10003": 5, "2512.10004": 9,
              "2512.10005": 1, "2512.10006": 7}  # fmt: skip
    standin.llm_default = scoring(scores)
    code, _, err = digest("daily", "--date", DATE, "--limit", "3")
    assert code == 0, err
    assert ids_in_post() == ["2512.10002", "2512.10004", "2512.10006"]
    assert len(ranking_requests(standin)) == 1
    assert asked_ids(ranking_requests(standin)[0]) == [p.arxiv_id for p in papers]
    candidates = day_candidates()
    assert list(candidates) == [p.arxiv_id for p in papers]  # the source's order
    assert candidates["2512.10002"] == {
        "arxiv_id": "2512.10002", "score": 9, "reason": "관심사와 관련된 논문.",
        "followed": False, "dropped": None,
    }  # fmt: skip
    assert candidates["2512.10001"]["dropped"] == "beyond limit"
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    ranking = report["ranking"]
    assert (ranking["candidates"], ranking["filtered"], ranking["ranked"], ranking["kept"]) == (
        6, 0, 6, 3,
    )  # fmt: skip
    assert ranking["requests"] == 1 and ranking["tokens_in"] > 0 and ranking["cost_usd"] > 0
    paid = sum(paper["cost_usd"] or 0 for paper in report["papers"])
    assert report["totals"]["cost_usd"] == pytest.approx(paid + ranking["cost_usd"], abs=1e-6)


def test_keywords_min_score_and_followed_authors(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = [
        make_paper(1, "Offline RL for robot arms"),
        make_paper(2, "A URL shortener for robot fleets"),  # "RL" is not in "URL"
        make_paper(3, "Survey of RL benchmarks"),  # excluded: "survey"
        make_paper(4, "Curling with RL", authors=["Lee"]),  # scored low
        make_paper(5, "Protein folding", authors=["José Álvarez"]),  # followed, no keyword
        make_paper(6, "RL from human feedback"),
    ]
    serve(standin, papers)
    monkeypatch.setenv("DIGEST_INCLUDE_KEYWORDS", "RL,강화학습")
    monkeypatch.setenv("DIGEST_EXCLUDE_KEYWORDS", "Survey")
    monkeypatch.setenv("DIGEST_FOLLOW_AUTHORS", "jose alvarez")
    monkeypatch.setenv("DIGEST_MIN_SCORE", "4")
    scores = {"2512.10001": 8, "2512.10004": 2, "2512.10005": 0, "2512.10006": 6}
    standin.llm_default = scoring(scores)
    code, _, err = digest("daily", "--date", DATE, "--limit", "5")
    assert code == 0, err
    assert asked_ids(ranking_requests(standin)[0]) == [
        "2512.10001", "2512.10004", "2512.10005", "2512.10006",
    ]  # fmt: skip
    # By score; the followed author's paper is kept at its score (0), under min_score.
    assert ids_in_post() == ["2512.10001", "2512.10006", "2512.10005"]
    candidates = day_candidates()
    assert candidates["2512.10002"]["dropped"] == "filtered out"
    assert candidates["2512.10003"]["dropped"] == "filtered out"
    assert candidates["2512.10004"]["dropped"] == "below min_score"
    assert candidates["2512.10005"]["followed"] and candidates["2512.10005"]["dropped"] is None
    report = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert (report["filtered"], report["ranked"], report["kept"]) == (2, 4, 3)


def test_a_rerun_asks_no_score_again(standin: StandIn, interests: None) -> None:
    serve(standin, [make_paper(n) for n in range(1, 5)])
    standin.llm_default = scoring({"2512.10003": 9})
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    assert len(ranking_requests(standin)) == 1
    first = POST.read_bytes()
    standin.llm_requests.clear()
    code, _, err = digest("daily", "--date", DATE, "--limit", "2", "--force")
    assert code == 0, err
    assert ranking_requests(standin) == []
    assert len(standin.llm_requests) == 2  # the digests, forced
    assert POST.read_bytes() == first


def test_a_rerun_with_interests_keeps_the_day_within_its_limit(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A day written without interests keeps its papers; the ranking fills only the room the
    # limit leaves (it had filled a whole limit's worth more), and a followed author's paper
    # still comes in.
    papers = [make_paper(n) for n in range(1, 6)]
    papers[4] = make_paper(5, authors=["Followed Author"])
    serve(standin, papers)
    standin.llm_default = scoring({"2512.10004": 9, "2512.10003": 8})
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    assert ids_in_post() == ["2512.10001", "2512.10002"]
    monkeypatch.setenv("DIGEST_INTERESTS", "강화학습")
    code, _, err = digest("daily", "--date", DATE, "--limit", "3")
    assert code == 0, err
    assert sorted(ids_in_post()) == ["2512.10001", "2512.10002", "2512.10004"]
    assert day_candidates()["2512.10003"]["dropped"] == "beyond limit"
    monkeypatch.setenv("DIGEST_FOLLOW_AUTHORS", "Followed Author")
    code, _, err = digest("daily", "--date", DATE, "--limit", "3")
    assert code == 0, err
    assert sorted(ids_in_post()) == ["2512.10001", "2512.10002", "2512.10004", "2512.10005"]


def test_a_failed_ranking_request_leaves_the_other_scores_standing(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 25 candidates: two requests (20 and 5 papers). The second never passes; the first's
    # scores still choose the day, and the unscored papers follow in the source's order.
    monkeypatch.setenv("DIGEST_MAX_REASKS", "0")
    serve(standin, [make_paper(n) for n in range(1, 26)])

    def reply(request: dict[str, Any]) -> Reply:
        if is_ranking(request) and "2512.10025" in asked_ids(request):
            return completion(json.dumps({"scores": []}))
        return scoring({"2512.10007": 9, "2512.10011": 8})(request)

    standin.llm_default = reply
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert len(ranking_requests(standin)) == 2
    assert "has no score for 5 papers" in err
    assert ids_in_post() == ["2512.10007", "2512.10011"]
    candidates = day_candidates()
    assert candidates["2512.10001"]["score"] == 5 and candidates["2512.10025"]["score"] is None
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert ranking["ranked"] == 20 and ranking["failed"]


def test_a_hostile_ranking_is_reasked_then_the_source_order_is_kept(
    standin: StandIn, interests: None
) -> None:
    serve(standin, [make_paper(n) for n in range(1, 5)])
    hostile = {
        "scores": [
            {"arxiv_id": "2512.99999", "score": 11, "reason": "x" * 5000},
            {"arxiv_id": "2512.10001", "score": 5, "reason": "Relevant to RL."},
            {"arxiv_id": "2512.10001", "score": 5, "reason": "관련."},
        ]
    }

    def reply(request: dict[str, Any]) -> Reply:
        if is_ranking(request):
            return completion(json.dumps(hostile))
        return good(request)

    standin.llm_default = reply
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    asked = ranking_requests(standin)
    assert len(asked) == 3  # the question and two re-asks
    reask = asked[1]["messages"][-1]["content"]
    for problem in ("not a paper asked about", "more than once", "11 is not from 0 to 10",
                    "at most 120", "must be written in Korean", "no score for 2512.10002"):  # fmt: skip
        assert problem in reask, reask
    assert len(asked[2]["messages"]) == len(asked[1]["messages"])  # the re-ask does not grow
    assert "the ranking by interests failed" in err
    assert ids_in_post() == ["2512.10001", "2512.10002"]
    assert all(item["score"] is None for item in day_candidates().values())
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert ranking["failed"] and ranking["requests"] == 3 and ranking["ranked"] == 0


def test_max_cost_counts_the_ranking(standin: StandIn, interests: None) -> None:
    serve(standin, [make_paper(n) for n in range(1, 4)])
    standin.llm_default = scoring({})
    _, _, err = digest("daily", "--date", DATE, "--limit", "2", "--max-cost", "0.00001")
    assert ranking_requests(standin) == []
    assert "would pass --max-cost" in err


def test_the_ranking_spend_leaves_less_for_the_digests(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve(standin, [make_paper(n) for n in range(1, 4)])
    standin.llm_default = scoring({})
    cap = ["--max-cost", CAP]
    # Without interests, the cap admits the one digest.
    code, _, err = digest("daily", "--date", DATE, "--limit", "1", *cap)
    assert code == 0, err
    assert json.loads(REPORT.read_text(encoding="utf-8"))["totals"]["done"] == 1, err
    # With them, the ranking's spend is counted first, and the digest no longer fits.
    monkeypatch.setenv("DIGEST_INTERESTS", "강화학습")
    _, _, err = digest("daily", "--date", DATE, "--limit", "1", "--force", *cap)
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert len(ranking_requests(standin)) == 1, err
    assert report["ranking"]["cost_usd"] > 0
    assert report["totals"]["stopped"] == 1 and report["totals"]["done"] == 0, err


def test_a_server_without_json_schema_ranks_in_json_object_mode(
    standin: StandIn, interests: None
) -> None:
    serve(standin, [make_paper(n) for n in range(1, 4)])
    standin.llm_default = like_deepseek(scoring({"2512.10003": 8}))
    code, _, err = digest("daily", "--date", DATE, "--limit", "1")
    assert code == 0, err
    asked = ranking_requests(standin)
    assert [r["response_format"]["type"] for r in asked] == ["json_schema", "json_object"]
    assert '"scores"' in asked[1]["messages"][0]["content"]  # the schema in the prompt
    assert ids_in_post() == ["2512.10003"]


def test_without_interests_nothing_changes(standin: StandIn) -> None:
    papers = [make_paper(n) for n in range(1, 5)]
    serve(standin, papers)
    standin.llm_default = scoring({"2512.10004": 10})
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert ranking_requests(standin) == []
    assert ids_in_post() == ["2512.10001", "2512.10002"]
    assert "candidates" not in json.loads(DAY_FILE.read_text(encoding="utf-8"))
    assert "ranking" not in json.loads(REPORT.read_text(encoding="utf-8"))
    assert not Path("cache/ranks").exists()


def test_stats_show_the_ranking_only_where_it_ran(standin: StandIn, interests: None) -> None:
    serve(standin, [make_paper(n) for n in range(1, 5)])
    standin.llm_default = scoring({"2512.10004": 9})
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    code, out, err = digest("stats", "--json")
    assert code == 0, err
    stats = json.loads(out)
    ranking = stats["total"]["ranking"]
    assert {k: ranking[k] for k in ("days", "candidates", "ranked", "kept", "requests")} == {
        "days": 1, "candidates": 4, "ranked": 4, "kept": 2, "requests": 1,
    }  # fmt: skip
    assert ranking["cost_usd"] > 0 and ranking["tokens_in"] > 0
    code, out, err = digest("stats")
    assert "Interests: 1 day ranked, 4 candidates, 0 filtered out, 4 scored, 2 kept" in out


def test_stats_without_a_ranking_say_nothing_of_it(standin: StandIn) -> None:
    serve(standin, [make_paper(n) for n in range(1, 3)])
    standin.llm_default = scoring({})
    assert digest("daily", "--date", DATE, "--limit", "1")[0] == 0
    code, out, err = digest("stats", "--json")
    assert code == 0, err
    assert "ranking" not in json.loads(out)["total"]
    assert "Interests" not in digest("stats")[1]


BACKFILL_DAYS = ["2025-12-14", "2025-12-15"]


def serve_backfill(standin: StandIn, scores: dict[str, int]) -> list[ArxivPaper]:
    """Two days of three papers each; the LLM scores them from ``scores``."""
    papers = [make_paper(n) for n in range(1, 7)]
    for item in papers:
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v1"] = PDF
    for number, day in enumerate(BACKFILL_DAYS):
        standin.hf_days[day] = [hf_item(p, 5) for p in papers[3 * number : 3 * number + 3]]
    standin.llm_default = scoring(scores)
    return papers


def backfill(*flags: str) -> tuple[int, str, str]:
    days = ("--from", BACKFILL_DAYS[0], "--to", BACKFILL_DAYS[1])
    return digest("backfill", *days, "--limit", "1", *flags)


def backfilled_ids(day: str) -> list[str]:
    post = Path(f"outputs/_posts/{day}-daily-papers.md").read_text(encoding="utf-8")
    return re.findall(r"\(https://arxiv\.org/abs/(\S+?)\)", post)


def backfilled_day(day: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"outputs/data/{day}.json").read_text("utf-8"))
    return data


def backfill_report(day: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(Path(f"outputs/data/{day}.run.json").read_text("utf-8"))
    return data


def batch_rankings(standin: StandIn) -> list[dict[str, Any]]:
    return [request for request in standin.batch_requests if is_ranking(request)]


@pytest.mark.parametrize("batch", [False, True], ids=["interactive", "batch"])
def test_a_backfill_chooses_each_day_by_interests(
    standin: StandIn, interests: None, batch: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    serve_backfill(standin, {"2512.10002": 9, "2512.10006": 8})
    code, _, err = backfill(*(["--batch"] if batch else []))
    assert code == 0, err
    # One request a day: interactive, or through the Batch API, before the digests' batch.
    assert len(ranking_requests(standin)) == (0 if batch else 2)
    assert len(batch_rankings(standin)) == (2 if batch else 0)
    if batch:
        created = [call for call in standin.batch_api_calls if call == ("POST", "/v1/batches")]
        assert len(created) == 2  # the rankings', then the digests'
    for day, kept in zip(BACKFILL_DAYS, ["2512.10002", "2512.10006"], strict=True):
        assert backfilled_ids(day) == [kept]
        day_file = backfilled_day(day)
        assert [c["score"] for c in day_file["candidates"]] == (
            [5, 9, 5] if day == BACKFILL_DAYS[0] else [5, 5, 8]
        )
        ranking = backfill_report(day)["ranking"]
        assert ranking["requests"] == 1 and ranking["ranked"] == 3 and ranking["kept"] == 1
        assert ranking["tokens_in"] > 0 and ranking["cost_usd"] > 0


def test_a_batch_backfill_ranks_each_paper_once_and_a_rerun_asks_nothing(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The same paper on both days: scored once in the range, digested on its first day only.
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    papers = serve_backfill(standin, {"2512.10002": 9})
    standin.hf_days[BACKFILL_DAYS[1]].append(hf_item(papers[1], 5))
    code, _, err = backfill("--batch")
    assert code == 0, err
    asked = [arxiv_id for request in batch_rankings(standin) for arxiv_id in asked_ids(request)]
    assert sorted(asked) == [p.arxiv_id for p in papers]  # each once
    assert backfilled_ids(BACKFILL_DAYS[0]) == ["2512.10002"]
    assert "2512.10002" not in backfilled_ids(BACKFILL_DAYS[1])

    standin.batch_requests.clear()
    code, _, err = backfill("--batch")
    assert code == 0, err
    assert standin.batch_requests == [] and standin.llm_requests == []


@pytest.mark.slow  # 0.5 s or more: two backfills and a deadline
def test_a_ranking_batch_the_deadline_cuts_is_collected_by_the_next_run(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    serve_backfill(standin, {"2512.10005": 9})
    standin.stall_batches_from = 1  # the ranking's batch stays in progress
    code, _, err = backfill("--batch", "--deadline", "0.01")
    assert code == 1, err
    assert "still running" in err and not Path("outputs/data").exists()
    assert batch_rankings(standin) == []

    standin.stall_batches_from = None
    code, _, err = backfill("--batch")
    assert code == 0, err
    created = [call for call in standin.batch_api_calls if call == ("POST", "/v1/batches")]
    assert len(created) == 2  # the saved ranking batch collected, then the digests'
    assert len(batch_rankings(standin)) == 2  # each request answered once
    assert backfilled_ids(BACKFILL_DAYS[1]) == ["2512.10005"]


def test_a_failed_ranking_request_in_the_batch_leaves_its_day_in_the_source_order(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    monkeypatch.setenv("DIGEST_MAX_REASKS", "0")
    serve_backfill(standin, {"2512.10003": 9, "2512.10006": 9})

    def reply(request: dict[str, Any]) -> Reply:
        if is_ranking(request) and "2512.10004" in asked_ids(request):
            return completion(json.dumps({"scores": []}))  # the second day's: never passes
        return scoring({"2512.10003": 9, "2512.10006": 9})(request)

    standin.llm_default = reply
    code, _, err = backfill("--batch")
    assert code == 0, err
    assert "2025-12-15: the ranking by interests failed" in err
    assert backfilled_ids(BACKFILL_DAYS[0]) == ["2512.10003"]
    assert backfilled_ids(BACKFILL_DAYS[1]) == ["2512.10004"]  # the source's first
    ranking = backfill_report(BACKFILL_DAYS[1])["ranking"]
    assert ranking["failed"] and ranking["requests"] == 1 and ranking["ranked"] == 0


def test_max_cost_counts_the_ranking_batch(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    serve_backfill(standin, {})
    code, _, err = backfill("--batch", "--max-cost", "0.000001")
    assert code == 2, err
    assert "would pass --max-cost" in err and "nothing was submitted" in err
    assert batch_rankings(standin) == [] and standin.llm_requests == []


# --- An arXiv-sized day -------------------------------------------------------------------


@pytest.mark.slow  # parses 2,500 arXiv entries
def test_a_ranked_arxiv_day_pages_through_the_whole_day(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch, fake_time: Any
) -> None:
    # A day of 2,500 papers: without interests the newest few are asked for; with them, the
    # whole day, in pages of arXiv's 2,000 at most, 3 s apart, so that the reader's filters
    # find the paper deep in the list.
    papers = [make_paper(number) for number in range(1, 2501)]
    papers[2399] = make_paper(2400, title="Offline RL for robot grasping")
    standin.search_results = papers
    for item in papers[2395:2405]:
        standin.papers[item.arxiv_id] = item
        standin.pdfs[f"{item.arxiv_id}v1"] = PDF
    standin.llm_default = scoring({})
    query = ("--source", "arxiv", "--query", "cat:cs.RO", "--date", DATE)

    code, _, err = digest("daily", *query, "--limit", "2", "--output-dir", "plain")
    assert code == 0, err
    (plain,) = standin.arxiv_requests
    assert plain["max_results"] == ["22"]  # the limit and a few spare

    standin.arxiv_requests.clear()
    standin.arxiv_times.clear()
    monkeypatch.setenv("DIGEST_INTERESTS", "로봇 조작을 위한 강화학습")
    monkeypatch.setenv("DIGEST_INCLUDE_KEYWORDS", "RL")
    monkeypatch.setenv("DIGEST_ARXIV_DELAY", "3")  # the default: arXiv's terms
    code, _, err = digest("daily", *query, "--limit", "2")
    assert code == 0, err
    pages = [(request["start"], request["max_results"]) for request in standin.arxiv_requests]
    assert pages == [(["0"], ["2000"]), (["2000"], ["2000"])]
    first, second = standin.arxiv_times
    assert second - first >= 3
    assert ids_in_post() == ["2512.12400"]
    (ranked,) = ranking_requests(standin)
    assert asked_ids(ranked) == ["2512.12400"]  # the filter ran over all 2,500


def test_a_full_disk_while_the_days_wait_for_their_ranking_stops_before_any_batch(
    standin: StandIn, interests: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import os

    from digest.runs import batch_ranking

    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    serve_backfill(standin, {})

    class FullDisk:
        def write(self, data: bytes) -> int:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def seek(self, *where: int) -> int:
            return 0

        def tell(self) -> int:
            return 0

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(batch_ranking.tempfile, "TemporaryFile", lambda **_: FullDisk())
    code, _, err = backfill("--batch")
    assert code == 2
    (line,) = [line for line in err.splitlines() if line.startswith("error:")]
    assert "the days' candidates could not be kept in" in line and "free space" in line
    assert not [call for call in standin.batch_api_calls if call == ("POST", "/v1/batches")]
    assert batch_rankings(standin) == [] and standin.llm_requests == []
