from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.standins import StandIn, serve

DATA = Path(__file__).parent / "data"
REFERENCE_POST = DATA / "2025-12-16-daily-papers.md"
REPO = Path(__file__).parent.parent
PDFS = DATA / "pdfs"
# The abstract printed in tests/data/pdfs/0908.0054v1.pdf, which the stand-ins serve as the PDF
# of most papers: a paper's metadata must carry it, or the PDF is not that paper's (see
# digest.identity) and the paper is digested from its abstract.
PDF_ABSTRACT = (
    "In this work we report the cosmological effects that a species of Ultra Light Bosonic "
    "Dark Matter imprints in the Acoustic Peaks of the CMB, and some of its thermic features."
)
SECRET_KEY = "sk-test-SECRET-0123456789"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in an empty folder with none of the user's settings or caches."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") or name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def standin(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[StandIn]:
    """Local arXiv API, PDF host and OpenAI-compatible API, with settings pointing at them."""
    state = StandIn()
    server = serve(state)
    settings = {
        "OPENAI_BASE_URL": f"{state.url}/v1",
        "OPENAI_API_KEY": SECRET_KEY,
        "DIGEST_MODEL": "standin-model",
        "DIGEST_PRICES": '{"standin-model": [0.40, 0.10, 1.60]}',
        "DIGEST_ARXIV_API_URL": f"{state.url}/api/query",
        "DIGEST_ARXIV_PDF_URL": f"{state.url}/pdf/{{id}}",
        "DIGEST_ARXIV_DELAY": "0",
        "DIGEST_RETRY_BACKOFF": "0.01",
        "DIGEST_CACHE_DIR": str(isolated / "cache"),
        "DIGEST_HF_API_URL": f"{state.url}/hf",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield state
    server.shutdown()
    server.server_close()
