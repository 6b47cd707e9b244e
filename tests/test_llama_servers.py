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

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from digest.llm.grounding import copies_example
from digest.models import PaperEntry
from tests import conftest, realserver
from tests.conftest import PDFS, REPO

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


def check_outcome(done: subprocess.CompletedProcess[str]) -> list[tuple[str, int, int]]:
    """What every run must show: usage read, and a valid entry or a clean failure."""
    answers = [(m[1], int(m[2]), int(m[3])) for m in ANSWER_LOG.finditer(done.stderr)]
    assert answers, "no answer was read"
    assert all(tokens_in > 500 and tokens_out > 0 for _, tokens_in, tokens_out in answers)
    if done.returncode == 0:
        entry = PaperEntry.model_validate_json(done.stdout)  # the checks run again on load
        assert entry.provenance.tokens_in == sum(tokens for _, tokens, _ in answers)
        assert not copies_example(entry.digest)  # the worked example is never published
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
