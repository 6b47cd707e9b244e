"""A wrong API key is found by one cheap request (GET /models) before anything is downloaded or
paid for, and said once; a server without that route finds it at the first paper's request,
which goes alone, and it is still said once."""

from __future__ import annotations

import pytest

from tests.conftest import SECRET_KEY
from tests.helpers import digest
from tests.standins import HTML_PAGE, StandIn, hf_item, wrong_key
from tests.test_backfill import DAYS, serve_days
from tests.test_nightly import DATE, serve_papers

REFUSED = "refused the API key"
RANGE = ["--from", DAYS[0], "--to", DAYS[-1]]
COMMANDS = {
    "daily": ["daily", "--date", DATE],
    "backfill": ["backfill", *RANGE],
    "backfill --batch": ["backfill", *RANGE, "--batch"],
    "paper": ["paper", "2512.10001"],
}


@pytest.fixture
def five_papers_a_day(standin: StandIn) -> StandIn:
    papers = serve_papers(standin, 5)
    for day in [DATE, *DAYS]:
        standin.hf_days[day] = [hf_item(paper, 5) for paper in papers]
    return standin


def said_once(code: int, out: str, err: str) -> None:
    assert code == 2, err
    assert (out + err).count(REFUSED) == 1, err
    assert err.strip().splitlines()[-1] == (
        f"error: the LLM server refused the API key (HTTP 401: {wrong_key(SECRET_KEY)}); "
        "check OPENAI_API_KEY"
    )


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_a_wrong_key_stops_the_run_before_any_download_and_is_said_once(
    five_papers_a_day: StandIn, command: list[str]
) -> None:
    standin = five_papers_a_day
    standin.api_key = "sk-the-right-one-0000"
    code, out, err = digest(*command)
    said_once(code, out, err)
    assert len(standin.models_requests) == 1
    assert standin.pdf_requests == [] and standin.llm_requests == []
    assert standin.batch_api_calls == []
    assert SECRET_KEY not in out + err


@pytest.mark.parametrize(
    "models",
    [None, 503, HTML_PAGE],
    ids=["no-models-route", "models-503", "models-an-html-page"],
)
@pytest.mark.parametrize("command", ["daily", "backfill"])
def test_without_an_answer_from_models_the_first_paper_asks_alone_and_is_said_once(
    five_papers_a_day: StandIn, command: str, models: int | tuple[int, dict[str, str], bytes]
) -> None:
    standin = five_papers_a_day
    standin.api_key = "sk-the-right-one-0000"
    if models is None:
        standin.models_route = False
    else:
        standin.faults = {"models": [models]}
    code, out, err = digest(*COMMANDS[command])
    said_once(code, out, err)
    assert len(standin.models_requests) == 1
    assert len(standin.llm_requests) == 1  # the other papers waited for it, then stopped


@pytest.mark.parametrize(
    "models", [None, 503, HTML_PAGE], ids=["no-models-route", "models-503", "models-html"]
)
def test_a_server_that_does_not_answer_models_is_not_failed_for_it(
    five_papers_a_day: StandIn, models: int | tuple[int, dict[str, str], bytes]
) -> None:
    standin = five_papers_a_day
    if models is None:
        standin.models_route = False
    else:
        standin.faults = {"models": [models]}
    code, _, err = digest(*COMMANDS["daily"], "--limit", "5")
    assert code == 0, err
    assert len(standin.llm_requests) == 5


def test_the_key_is_checked_once_a_run_not_once_a_paper_or_a_day(standin: StandIn) -> None:
    serve_days(standin)
    standin.api_key = SECRET_KEY
    code, _, err = digest("backfill", *RANGE)
    assert code == 0, err
    assert len(standin.models_requests) == 1 and len(standin.llm_requests) == 6
    assert standin.models_requests[0]["authorization"] == f"Bearer {SECRET_KEY}"

    code, _, err = digest("backfill", *RANGE)  # all done: no LLM work, so no check either
    assert code == 0, err
    assert len(standin.models_requests) == 1


def test_a_refused_key_met_later_is_said_once(
    five_papers_a_day: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.helpers import good
    from tests.standins import error_reply

    # A server whose model list is public (it checks keys on the chat requests only), and
    # that refuses the key after the first paper: the refusal stops the run, said once.
    standin = five_papers_a_day
    standin.llm_script = [good]
    standin.llm_default = lambda request: error_reply(401, "Incorrect API key provided")
    code, out, err = digest(*COMMANDS["daily"], "--limit", "5")
    assert code == 2
    assert (out + err).count(REFUSED) == 1, err
    assert "wrote:" in out
