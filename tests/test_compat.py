"""Servers other than OpenAI, ungrounded numbers and --show-prompt, end to end."""

from __future__ import annotations

import json
from typing import Any

import pytest

from digest.models import Quoted
from tests.conftest import PDF_ABSTRACT, PDFS
from tests.helpers import (
    DIGEST_JSON,
    answer_json,
    digest,
    good,
    make_digest,
    quoted,
    with_digest,
)
from tests.standins import ArxivPaper, StandIn, completion, error_reply
from tests.test_pipeline import PAPER, add_paper

Reply = tuple[int, dict[str, str], bytes]


def like_vllm(request: dict[str, Any]) -> Reply:
    """Takes json_schema but ignores ``strict``: its first answer has an extra field."""
    if len([m for m in request["messages"] if m["role"] == "assistant"]) == 1:
        return completion(
            answer_json({**make_digest().model_dump(), "summary": ["추가 필드이다."]})
        )
    return good(request)


def like_llama_cpp(request: dict[str, Any]) -> Reply:
    """JSON mode with a schema to constrain the output; json_schema is an error."""
    response_format = request.get("response_format", {})
    if response_format.get("type") != "json_object":
        return error_reply(400, "response_format.type must be 'json_object' or 'text'")
    assert response_format["schema"] == Quoted.model_json_schema()
    # llama-cpp-python's server knows only max_tokens; OpenAI's reasoning models only
    # max_completion_tokens. JSON mode sends both, the same limit.
    assert request["max_tokens"] == request["max_completion_tokens"] == 2000
    return completion(DIGEST_JSON)


def test_a_server_that_ignores_strict_is_corrected_by_validation(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_default = like_vllm
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    assert [r["response_format"]["type"] for r in standin.llm_requests] == ["json_schema"] * 2
    assert (
        "summary: Extra inputs are not permitted"
        in standin.llm_requests[1]["messages"][5]["content"]
    )
    calls = json.loads(out)["provenance"]["calls"]
    assert [call["outcome"] for call in calls] == ["invalid", "ok"]


def test_json_object_mode_against_a_llama_cpp_like_server(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MODE", "json_object")
    standin.llm_default = like_llama_cpp
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    (request,) = standin.llm_requests
    assert '"introduction"' in request["messages"][0]["content"]  # the schema is in the prompt
    assert json.loads(out)["digest"] == make_digest().model_dump()


def test_json_object_mode_answers_go_through_the_same_checks(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MODE", "json_object")
    standin.llm_script = [
        completion("not json at all"),
        completion(
            answer_json({**make_digest().model_dump(), "results": ["The results are great."]})
        ),
        completion(None, finish_reason="length"),
    ]
    standin.llm_default = lambda request: completion(DIGEST_JSON)
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    outcomes = [call["outcome"] for call in json.loads(out)["provenance"]["calls"]]
    assert outcomes == ["invalid", "invalid", "cut off", "ok"]
    assert standin.llm_requests[3]["max_tokens"] == 4000


def test_auto_falls_back_once_to_json_object_and_says_so(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_CONCURRENCY", "1")
    add_paper(standin)
    second = ArxivPaper("2512.10655", 1, "Second", ["Kim"], f"Second abstract. {PDF_ABSTRACT}")
    add_paper(standin, second)
    standin.llm_default = like_llama_cpp
    code, _, err = digest(
        "daily", "--source", "ids", "--ids", "0908.0054,2512.10655", "--date", "2025-12-16"
    )
    assert code == 0, err
    kinds = [r["response_format"]["type"] for r in standin.llm_requests]
    assert kinds == ["json_schema", "json_object", "json_object"]  # one fallback for the run
    assert "rejected response_format json_schema" in err


def test_json_schema_mode_does_not_fall_back(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_paper(standin)
    monkeypatch.setenv("DIGEST_LLM_MODE", "json_schema")
    standin.llm_default = like_llama_cpp
    code, _, err = digest("paper", "0908.0054")
    # No paper could succeed against this server in this mode: a configuration error.
    assert code == 2
    assert "rejects response_format json_schema (HTTP 400: response_format.type must be" in err
    assert "set DIGEST_LLM_MODE=auto or json_object" in err
    assert len(standin.llm_requests) == 1


# --- grounding end to end -----------------------------------------------------------------

UNGROUNDED = "제안 방법은 장시간 생성에서 오차를 기존 대비 42.7% 낮추며 최고 성능을 달성하였다."


def with_results(*lines: str) -> Reply:
    return with_digest(results=list(lines))


def test_a_number_in_none_of_its_quotes_is_sent_back(standin: StandIn) -> None:
    # 42.7 is not in the paper, so no quote of the paper holds it: the line's evidence fails.
    add_paper(standin)
    standin.llm_script = [with_results(UNGROUNDED)]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    feedback = standin.llm_requests[1]["messages"][5]["content"]
    assert "results[0]: the number 42.7 of the line is in none of its quotes" in feedback
    provenance = json.loads(out)["provenance"]
    assert [call["outcome"] for call in provenance["calls"]] == ["unsupported", "ok"]
    assert provenance["grounding_repairs"] == []


def misquoting(*lines: str) -> Reply:
    """Answers whose last result quotes the paper with one word of twelve changed to 42.7:
    near enough to be found as the paper's words, but the number is not the paper's."""

    misquote = PDF_ABSTRACT.replace("this work", "this 42.7%")
    answer = quoted({**make_digest().model_dump(), "results": list(lines)})
    answer["results"][-1]["quotes"] = [misquote]
    return completion(json.dumps(answer, ensure_ascii=False))


def test_an_ungrounded_number_in_a_near_quote_is_sent_back(standin: StandIn) -> None:
    add_paper(standin)
    standin.llm_script = [misquoting(UNGROUNDED)]
    standin.llm_default = good
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    feedback = standin.llm_requests[1]["messages"][5]["content"]
    assert "results[0]: the number 42.7 does not appear in the paper" in feedback
    provenance = json.loads(out)["provenance"]
    assert [call["outcome"] for call in provenance["calls"]] == ["ungrounded", "ok"]


def test_a_number_that_survives_the_reasks_is_taken_out_and_recorded(standin: StandIn) -> None:
    add_paper(standin)
    grounded = (
        "제안 방법은 장시간 생성에서 오차를 기존 방법보다 크게 낮추며 최고 성능을 달성하였다."
    )
    standin.llm_default = misquoting(grounded, UNGROUNDED)
    code, out, err = digest("paper", "0908.0054", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["digest"]["results"] == [grounded]
    assert entry["provenance"]["grounding_repairs"] == [
        "results[1]: line dropped (ungrounded 42.7)"
    ]
    # The dropped line's quotes go with it.
    assert len(entry["evidence"]["results"]) == 1
    assert len(standin.llm_requests) == 3


# --- --show-prompt ------------------------------------------------------------------------


def test_show_prompt_prints_the_messages_and_calls_no_llm(standin: StandIn) -> None:
    add_paper(standin)
    code, out, err = digest("paper", "0908.0054", "--show-prompt")
    assert code == 0, err
    assert standin.llm_requests == []
    headers = [line for line in out.splitlines() if line.startswith("--- ")]
    assert [h.split(" (")[0] for h in headers[:4]] == [
        "--- system",
        "--- user",
        "--- assistant",
        "--- user",
    ]
    assert headers[-1].startswith("--- about ") and "(full-text) ---" in headers[-1]
    assert PAPER.title in out and "In this work we report the cosmological effects" in out


def test_show_prompt_needs_no_api_key(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY")
    monkeypatch.delenv("OPENAI_BASE_URL")
    code, out, _ = digest("paper", str(PDFS / "0908.0054v1.pdf"), "--show-prompt")
    assert code == 0 and "Ultra light bosonic dark matter" in out
