"""digest against real OpenAI-compatible servers: llama.cpp's ``llama-server`` and
llama-cpp-python's server, each with a real small model (Gemma 3 270M, SmolLM2 135M).

Not part of the fast suite (the ``realserver`` marker): ``.ci/run`` builds both servers once
per machine (``.ci/build-llama.sh``, about 17 minutes on 2 cores, cached by version) and runs
these on their own. Where the build is missing they are skipped with the reason, except when
``DIGEST_REQUIRE_REAL_SERVERS`` is set, as ``.ci/run`` sets it: there a skip is a failure.

What they show is what really happens, in each LLM mode: whether the server takes our
``response_format`` (or ``auto`` falls back), that usage is read, and that a model too weak to
write the digest never gets a post: it fails cleanly, exit 1, with the validation messages.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from digest.llm.evidence import LineEvidence, SentText, check_lines
from digest.llm.grounding import copies_example, digest_lines
from digest.models import PaperEntry
from digest.text.extract import extract_pdf
from tests import conftest, realserver
from tests.conftest import PDFS, REPO
from tests.helpers import digest, good
from tests.standins import Reply, StandIn
from tests.test_nightly import DATE, DAY_FILE, REPORT
from tests.test_ranking import day_candidates, ids_in_post, is_ranking, make_paper, serve

pytestmark = pytest.mark.realserver

PAPER = PDFS / "0908.0054v1.pdf"
CONTEXT = 8192
# Small enough for a CPU (a 270M model writes 5 to 15 tokens a second here under a grammar):
# a short text, a short answer, no re-ask but in the test that checks re-asks.
SETTINGS = {
    "DIGEST_MODEL": "gpt-4.1-mini",  # what a user leaves as is; the server has its own model
    "DIGEST_TEXT_BUDGET": "2500",
    "DIGEST_MAX_OUTPUT_TOKENS": "700",
    "DIGEST_MAX_REASKS": "0",
    "DIGEST_CONTEXT_TOKENS": str(CONTEXT),
    "DIGEST_LLM_TIMEOUT": "300",
    "DIGEST_RETRY_BACKOFF": "0.1",
}
# The packaged Gemma 3 270M GGUF carries no chat template: without one, llama-server falls
# back to ChatML and llama-cpp-python to Llama 2's, and the model echoes the prompt. A user
# names the template; --no-jinja, or this llama-server renders "gemma" as a Jinja template.
GEMMA = ["--no-jinja", "--chat-template", "gemma"]
ANSWER_LOG = re.compile(r"answer \d+ \((json_schema|json_object)\): (\d+) tokens in, (\d+) out")
WHY_NO_POST = (
    "failed validation",
    "repeated itself",
    "cut off",
    "does not state",
    "worked example",  # a weak model's copy of the prompt's example (Gemma 3 270M's favourite)
    "never mentions",  # names of another paper
    "as evidence",  # quotes that are not the paper's words
)


def missing(reason: str) -> NoReturn:
    """Skip, saying why; in CI (DIGEST_REQUIRE_REAL_SERVERS) fail instead."""
    conftest.missing(reason, "DIGEST_REQUIRE_REAL_SERVERS")


@pytest.fixture(scope="module")
def built() -> realserver.LlamaPaths:
    paths = realserver.built_paths()
    if paths is None:
        missing(f"no llama.cpp build in {realserver.cache_dir()}; run .ci/build-llama.sh")
    return paths


@pytest.fixture(scope="module")
def llama_server(built: realserver.LlamaPaths) -> Iterator[str]:
    with realserver.llama_server(
        built.gemma3_gguf, ctx=CONTEXT, binary=built.llama_server, threads=2, extra_args=GEMMA
    ) as url:
        yield url


def llama_python() -> str:
    python = os.environ.get("DIGEST_LLAMA_PYTHON") or str(REPO / ".venv-llama" / "bin" / "python")
    if not Path(python).is_file():
        missing(f"no python with llama-cpp-python[server] at {python} (see .ci/run)")
    return python


@pytest.fixture(scope="module")
def llama_cpp_python(built: realserver.LlamaPaths) -> Iterator[str]:
    # SmolLM2 carries its chat template (ChatML), which llama-cpp-python applies as it is.
    with realserver.llama_cpp_python_server(
        built.smollm2_gguf, ctx=CONTEXT, python=llama_python(), threads=2
    ) as url:
        yield url


def run_digest(
    url: str, mode: str, tmp_path: Path, **extra: str
) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DIGEST_", "OPENAI_"))
    }
    environment |= SETTINGS | extra
    environment |= {
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-local",
        "DIGEST_LLM_MODE": mode,
        "DIGEST_CACHE_DIR": str(tmp_path / "cache"),
    }
    command = [sys.executable, "-m", "digest", "--verbose", "paper", str(PAPER), "--json"]
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=900, cwd=tmp_path
    )
    print(f"--- digest in {mode} mode: exit {done.returncode}\n{done.stderr[-3000:]}")
    return done


def unsupported_lines(entry: PaperEntry) -> list[str]:
    """The lines of a published entry whose quotes are not the paper's (its whole text, of
    which the model was sent a part), or whose numbers are in none of its quotes."""
    assert entry.evidence is not None, "a new entry without its evidence"
    extracted = extract_pdf(PAPER.read_bytes(), budget=10**7)
    paper = SentText(f"{entry.title}\n{extracted.text}")
    quotes = entry.evidence.by_field()
    lines = [LineEvidence(field, line, tuple(quotes[field]))
             for field, line in digest_lines(entry.digest)]  # fmt: skip
    return [problem.problem() for problem in check_lines(lines, paper)]


def check_outcome(done: subprocess.CompletedProcess[str]) -> list[tuple[str, int, int]]:
    """What every run must show: usage read, and a valid entry or a clean failure."""
    answers = [(m[1], int(m[2]), int(m[3])) for m in ANSWER_LOG.finditer(done.stderr)]
    assert answers, "no answer was read"
    assert all(tokens_in > 500 and tokens_out > 0 for _, tokens_in, tokens_out in answers)
    if done.returncode == 0:
        entry = PaperEntry.model_validate_json(done.stdout)  # the checks run again on load
        assert entry.provenance.tokens_in == sum(tokens for _, tokens, _ in answers)
        assert not copies_example(entry.digest)  # the worked example is never published
        assert unsupported_lines(entry) == []  # whatever the model answered
    else:
        assert done.returncode == 1, done.stderr
        assert done.stdout == ""  # no digest, so no post
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("error: ") and any(why in last for why in WHY_NO_POST), last
    return answers


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "auto"])
def test_llama_server_in_each_mode(llama_server: str, mode: str, tmp_path: Path) -> None:
    # auto also goes through a re-ask: the model's first answer rarely passes.
    extra = {"DIGEST_MAX_REASKS": "1"} if mode == "auto" else {}
    done = run_digest(llama_server, mode, tmp_path, **extra)
    answers = check_outcome(done)
    expected = "json_object" if mode == "json_object" else "json_schema"
    assert {answer_mode for answer_mode, _, _ in answers} == {expected}  # taken as sent
    assert "rejected response_format" not in done.stderr
    # llama-server names its GGUF file as the model, whatever the request asked for.
    assert "but the server answered as '/" in done.stderr


def test_llama_cpp_python_auto_falls_back_to_json_object(
    llama_cpp_python: str, tmp_path: Path
) -> None:
    done = run_digest(llama_cpp_python, "auto", tmp_path)
    assert "rejected response_format json_schema (HTTP 500" in done.stderr
    assert "retrying" not in done.stderr  # the 500 is a rejection, not a transient error
    answers = check_outcome(done)
    assert {answer_mode for answer_mode, _, _ in answers} == {"json_object"}


def test_llama_cpp_python_in_json_object_mode(llama_cpp_python: str, tmp_path: Path) -> None:
    check_outcome(run_digest(llama_cpp_python, "json_object", tmp_path))


def test_llama_cpp_python_in_json_schema_mode_is_a_configuration_error(
    llama_cpp_python: str, tmp_path: Path
) -> None:
    done = run_digest(llama_cpp_python, "json_schema", tmp_path)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert "rejects response_format json_schema (HTTP 500" in last
    assert "set DIGEST_LLM_MODE=auto or json_object" in last


def test_a_chat_format_that_drops_the_system_prompt_fails_after_one_request(
    built: realserver.LlamaPaths, tmp_path: Path
) -> None:
    # llama-cpp-python's "gemma" chat format drops system messages without a word (Gemma has
    # no system role): the instructions never reach the model. The server's usage shows it.
    with realserver.llama_cpp_python_server(
        built.gemma3_gguf,
        ctx=CONTEXT,
        python=llama_python(),
        threads=2,
        extra_args=["--chat_format", "gemma"],
    ) as url:
        done = run_digest(url, "json_object", tmp_path)
    assert done.returncode == 1
    assert len(ANSWER_LOG.findall(done.stderr)) == 1
    last = done.stderr.strip().splitlines()[-1]
    assert "the server read only" in last and "dropped part of it" in last


def test_a_model_too_weak_for_korean_never_gets_a_post(
    built: realserver.LlamaPaths, tmp_path: Path
) -> None:
    with realserver.llama_server(
        built.smollm2_gguf, ctx=CONTEXT, binary=built.llama_server, threads=2
    ) as url:
        done = run_digest(url, "auto", tmp_path)
    assert done.returncode == 1, done.stderr
    check_outcome(done)
    cache = tmp_path / "cache" / "digests"
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached as a good digest


@pytest.mark.parametrize("server", ["llama_server", "llama_cpp_python"])
def test_backfill_batch_on_a_server_without_a_batch_api_is_one_line_and_exit_2(
    server: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    url = request.getfixturevalue(server)
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DIGEST_", "OPENAI_"))
    }
    environment |= {
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-local",
        "DIGEST_CACHE_DIR": str(tmp_path / "cache"),
        "DIGEST_HF_API_URL": "http://127.0.0.1:9/unreachable",  # never asked: checked first
    }
    command = [sys.executable, "-m", "digest", "backfill", "--batch"]
    command += ["--from", "2025-12-14", "--to", "2025-12-15"]
    done = subprocess.run(
        command, env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: {url} has no Batch API (HTTP 404 on /v1/batches); run 'digest backfill' "
        "without --batch"
    )
    assert not (tmp_path / "outputs" / "_posts").exists()


def ranking_by(url: str) -> Callable[[dict[str, Any]], Reply]:
    """The stand-in's LLM: each ranking request passed on to the real server at ``url`` as it
    came, and its answer (a 500 included) passed back; digests answered as ``good`` does.

    SmolLM2 cannot write a Korean digest (test_a_model_too_weak_for_korean_never_gets_a_post), so a day whose digests it wrote
    would fail; the ranking is what is under test, and it is the real server's."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def reply(request: dict[str, Any]) -> Reply:
        if not is_ranking(request):
            return good(request)
        sent = urllib.request.Request(
            f"{url}/chat/completions",
            data=json.dumps(request).encode(),
            headers={"content-type": "application/json"},
        )
        try:
            with direct.open(sent, timeout=600) as answer:
                return int(answer.status), {"content-type": "application/json"}, answer.read()
        except urllib.error.HTTPError as error:
            return int(error.code), {"content-type": "application/json"}, error.read()

    return reply


def test_llama_cpp_python_ranks_a_day_in_json_object_mode(
    llama_cpp_python: str, standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    papers = [make_paper(number) for number in range(1, 4)]
    serve(standin, papers)
    standin.llm_default = ranking_by(llama_cpp_python)
    for name, value in (SETTINGS | {"DIGEST_MAX_OUTPUT_TOKENS": "400"}).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DIGEST_MODEL", "standin-model")  # the stand-in's price for the digest
    monkeypatch.setenv("DIGEST_LLM_MODE", "auto")
    monkeypatch.setenv("DIGEST_INTERESTS", "강화학습과 로봇 조작")
    code, _, err = digest("--verbose", "daily", "--date", DATE, "--limit", "1")
    print(f"--- digest daily: exit {code}\n{err[-3000:]}")
    assert code == 0, err
    # The ranking asked with the schema first; the real server said 500, and the ranking went
    # on in json_object mode, the schema in the prompt.
    asked = [request["response_format"]["type"] for request in standin.llm_requests
             if is_ranking(request)]  # fmt: skip
    assert asked[0] == "json_schema" and asked[1:] and set(asked[1:]) == {"json_object"}, asked
    assert "rejected response_format json_schema (HTTP 500" in err
    assert "retrying" not in err  # the 500 is a rejection, not a transient error
    ranking = json.loads(REPORT.read_text(encoding="utf-8"))["ranking"]
    assert ranking["requests"] == len(asked)  # the rejected one counted as sent
    assert ranking["tokens_in"] > 0 and ranking["tokens_out"] > 0  # the server's usage, read
    # The ranking's answers are logged before the digest's, each in json_object mode.
    modes = [m[1] for m in ANSWER_LOG.finditer(err)]
    assert modes[: len(asked) - 1] == ["json_object"] * (len(asked) - 1), modes
    candidates = day_candidates()
    assert list(candidates) == [paper.arxiv_id for paper in papers]
    failed = [line for line in err.splitlines() if "the ranking by interests failed" in line]
    if ranking["failed"] is None:  # the model's scores passed every check
        print("--- the ranking passed:", candidates)
        assert not failed
        scores = [item["score"] for item in candidates.values()]
        assert all(isinstance(score, int) and 0 <= score <= 10 for score in scores), scores
        assert ranking["ranked"] == 3 and ranking["kept"] == 1
        best = max(scores)
        assert ids_in_post() == [papers[scores.index(best)].arxiv_id]  # ties: source order
    else:  # a small model's scores may never pass: the day is chosen in the source's order
        print("--- the ranking failed:", ranking["failed"])
        assert len(failed) == 1, err
        assert failed[0].startswith("warning: the ranking by interests failed (")
        assert failed[0].endswith("the keywords keep in the source's order")
        assert ranking["ranked"] == 0
        assert all(item["score"] is None for item in candidates.values())
        assert ids_in_post() == [papers[0].arxiv_id]
    assert json.loads(DAY_FILE.read_text(encoding="utf-8"))["candidates"]
