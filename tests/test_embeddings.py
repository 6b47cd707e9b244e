"""The embedding pre-rank (the ``embedding_model`` setting): of a day's many candidates, the
LLM's ranking is asked only about the ``rank_pool`` most similar to the interests; vectors are
cached, hostile answers leave the source's order with one warning, and the tokens are priced
and counted in ``--max-cost``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PDF_ABSTRACT
from tests.helpers import digest
from tests.standins import ArxivPaper, Reply, StandIn, json_reply
from tests.test_nightly import DATE, DAY_FILE, REPORT
from tests.test_ranking import asked_ids, day_candidates, make_paper, ranking_requests, scoring
from tests.test_ranking import serve as serve_papers

INTERESTS = "reinforcement learning policies for robot grasping and manipulation"
MATCH = "2512.10077"  # its title names the interests' words
FAR = "2512.10003"  # about nothing the interests name


def day_of_120() -> list[ArxivPaper]:
    papers = [make_paper(number) for number in range(1, 121)]
    papers[76] = make_paper(77, "Reinforcement learning policies for robot grasping")
    papers[2] = ArxivPaper(FAR, 1, "Yeast", ["Kim"], "Yeast ferments sugar into ethanol.")
    return papers


@pytest.fixture
def embedding(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> StandIn:
    monkeypatch.setenv("DIGEST_INTERESTS", INTERESTS)
    monkeypatch.setenv("DIGEST_RANK_POOL", "40")
    monkeypatch.setenv("DIGEST_EMBEDDING_MODEL", "text-embedding-3-small")
    monkeypatch.setenv(
        "DIGEST_PRICES",
        '{"standin-model": [0.4, 0.1, 1.6], "text-embedding-3-small": [0.02, 0.02, 0]}',
    )
    serve_papers(standin, day_of_120())
    standin.llm_default = scoring({MATCH: 10})
    return standin


def asked(standin: StandIn) -> list[str]:
    return [arxiv_id for request in ranking_requests(standin) for arxiv_id in asked_ids(request)]


@pytest.mark.slow  # 0.5 s or more
def test_the_llm_ranks_only_the_most_similar(embedding: StandIn) -> None:
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert 1 <= len(embedding.embedding_requests) <= 2
    sent = [text for request in embedding.embedding_requests for text in request["input"]]
    assert len(sent) == 121  # the interests and every candidate
    ids = asked(embedding)
    assert len(ids) == 40 == len(set(ids))
    assert MATCH in ids and FAR not in ids
    candidates = day_candidates()
    assert candidates[FAR]["dropped"] == "beyond pool"
    assert -1 <= candidates[FAR]["similarity"] < candidates[MATCH]["similarity"] <= 1
    inside = [candidates[arxiv_id]["similarity"] for arxiv_id in ids]
    outside = [
        item["similarity"] for item in candidates.values() if item["dropped"] == "beyond pool"
    ]
    assert len(outside) == 80 and min(inside) >= max(outside)
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert ranking["embedding_requests"] == len(embedding.embedding_requests)
    assert ranking["embedding_tokens"] > 0
    assert ranking["embedding_cost_usd"] == pytest.approx(
        ranking["embedding_tokens"] * 0.02e-6, abs=1e-6
    )
    assert ranking["cost_usd"] > ranking["embedding_cost_usd"] > 0
    assert ranking["ranked"] == 40

    # A re-run: every vector and score from the cache.
    embedding.embedding_requests.clear()
    embedding.llm_requests.clear()
    code, _, err = digest("daily", "--date", DATE, "--limit", "2", "--force")
    assert code == 0, err
    assert embedding.embedding_requests == [] and ranking_requests(embedding) == []
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert (ranking["embedding_requests"], ranking["requests"]) == (0, 0)


@pytest.mark.slow  # 0.5 s or more
def test_a_corrupt_cached_vector_is_fetched_again(embedding: StandIn) -> None:
    assert digest("daily", "--date", DATE, "--limit", "2")[0] == 0
    files = sorted(Path("cache/embeddings").glob("*.json"))
    assert len(files) == 121
    files[0].write_text("{not json", encoding="utf-8")
    embedding.embedding_requests.clear()
    code, _, err = digest("daily", "--date", DATE, "--limit", "2", "--force")
    assert code == 0, err
    assert [len(request["input"]) for request in embedding.embedding_requests] == [1]


def _drop_one(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "data": answer["data"][1:]}


def _index_out(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"][0]["index"] = len(answer["data"])
    return answer


def _nan(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"][5]["embedding"][0] = math.nan
    return answer


def _inf(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"][5]["embedding"][0] = math.inf
    return answer


def _short(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"][3]["embedding"] = answer["data"][3]["embedding"][:10]
    return answer


def _empty(request: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    answer["data"][0]["embedding"] = []
    return answer


def _not_json(request: dict[str, Any], answer: dict[str, Any]) -> Reply:
    return 200, {"content-type": "application/json"}, b"<html>gateway</html>"


def _refused(request: dict[str, Any], answer: dict[str, Any]) -> Reply:
    return json_reply(400, {"error": {"message": "no such embedding model"}})


@pytest.mark.parametrize(
    "tamper",
    [_drop_one, _index_out, _nan, _inf, _short, _empty, _not_json, _refused],
    ids=["count", "index", "nan", "inf", "dimensions", "empty", "not-json", "refused"],
)
def test_a_hostile_embedding_answer_keeps_the_source_order(
    embedding: StandIn, tamper: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_LLM_MAX_ATTEMPTS", "1")
    embedding.embedding_tamper = tamper
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert err.count("the embedding pre-rank failed") == 1, err
    assert DAY_FILE.exists()
    ids = asked(embedding)
    assert sorted(ids) == [paper.arxiv_id for paper in day_of_120()[:40]]  # the source's order
    candidates = day_candidates()
    assert all("similarity" not in item for item in candidates.values())
    assert not any(path.name.endswith(".tmp") for path in Path("cache").rglob("*"))


def test_max_cost_counts_the_embedding_tokens(embedding: StandIn) -> None:
    # Room for no embedding request: the pre-rank is not asked, and says why.
    _, _, err = digest("daily", "--date", DATE, "--limit", "1", "--max-cost", "0.0000001")
    assert embedding.embedding_requests == []
    assert "the embedding pre-rank failed (not asked" in err, err


def test_the_embedding_spend_leaves_less_for_the_ranking(
    embedding: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Free chat, priced embeddings: a cap under the embeddings' estimate stops them.
    monkeypatch.setenv(
        "DIGEST_PRICES", '{"standin-model": [0, 0, 0], "text-embedding-3-small": [1000, 1000, 0]}'
    )
    code, _, err = digest("daily", "--date", DATE, "--limit", "1", "--max-cost", "1")
    assert code == 0, err
    assert embedding.embedding_requests == []
    assert "would pass --max-cost" in err
    # Under a cap that admits them, they are asked and their cost is the run's.
    code, _, err = digest("daily", "--date", DATE, "--limit", "1", "--max-cost", "100", "--force")
    assert code == 0, err
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    assert report["ranking"]["embedding_cost_usd"] > 1
    assert report["totals"]["cost_usd"] >= report["ranking"]["embedding_cost_usd"]


def test_a_small_day_is_not_embedded(embedding: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_RANK_POOL", "200")
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert embedding.embedding_requests == []
    assert len(asked(embedding)) == 120
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert (ranking["embedding_requests"], ranking["embedding_tokens"]) == (0, 0)


def test_without_an_embedding_model_nothing_changes(
    embedding: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DIGEST_EMBEDDING_MODEL")
    code, _, err = digest("daily", "--date", DATE, "--limit", "2")
    assert code == 0, err
    assert embedding.embedding_requests == []
    assert sorted(asked(embedding)) == [paper.arxiv_id for paper in day_of_120()[:40]]
    day = json.loads(DAY_FILE.read_text(encoding="utf-8"))
    assert all("similarity" not in item for item in day["candidates"])
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert not any(name.startswith("embedding") for name in ranking)
    assert not Path("cache/embeddings").exists()
    assert PDF_ABSTRACT  # the other papers' abstract, shared by all but FAR
