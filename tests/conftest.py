from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import pytest

from tests.standins import StandIn, serve

if TYPE_CHECKING:
    # The rest is imported where it is used: a subprocess of a test that imports a test module
    # (and so this one) for its constants needs none of it.
    from digest.models import Extractor
    from digest.text.extract import ExtractedText
    from tests.helpers import FakeClock

DATA = Path(__file__).parent / "data"
REFERENCE_POST = DATA / "2025-12-16-daily-papers.md"
REPO = Path(__file__).parent.parent
PDFS = DATA / "pdfs"
# The abstract printed in tests/data/pdfs/0908.0054v1.pdf, which the stand-ins serve as the PDF
# of most papers: a paper's metadata must carry it, or the PDF is not that paper's (see
# digest.text.identity) and the paper is digested from its abstract.
PDF_ABSTRACT = (
    "In this work we report the cosmological effects that a species of Ultra Light Bosonic "
    "Dark Matter imprints in the Acoustic Peaks of the CMB, and some of its thermic features."
)
SECRET_KEY = "sk-test-SECRET-0123456789"

# What CI demands (.ci/run sets DIGEST_REQUIRE_JEKYLL and the like, and DIGEST_WHEELHOUSE):
# read once, here, because the autouse ``isolated`` fixture clears every DIGEST_ variable
# before a test's body runs.
REQUIRED = frozenset(name for name in os.environ if name.startswith("DIGEST_REQUIRE_"))
WHEELHOUSE = os.environ.get("DIGEST_WHEELHOUSE")


def missing(reason: str, required_by: str) -> NoReturn:
    """A tool a test needs is not here: skip, saying why, or fail where CI requires it."""
    if required_by in REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """How many processes run the tests (``-n auto`` in addopts).

    Two, the cores the fast suite is sized for (it is about half waiting: on servers that
    stall, on subprocesses, on Jekyll). One for the real-server tests, each of which starts
    LLM servers of its own, and for a run of named tests (``file.py::test``), where starting
    workers costs more than it saves. PYTEST_XDIST_AUTO_NUM_WORKERS still decides when set.
    """
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None  # xdist's own hook reads it
    markers = config.option.markexpr or ""
    real_servers = "realserver" in markers and "not realserver" not in markers
    named_tests = any("::" in str(argument) for argument in config.args)
    if real_servers or named_tests:
        return 0
    return min(2, os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test runs in an empty folder with none of the user's settings or caches."""
    for name in list(os.environ):
        if name.startswith("DIGEST_") or name.startswith("OPENAI_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


class InProcessWorkers(ThreadPoolExecutor):
    """``start_workers``'s pool for tests: the same ``Executor`` interface, extracting in threads.

    Spawning the real worker processes costs over a second a run, and most tests make several
    runs; what they check is what the pipeline does with the text, not where it was extracted.
    Threads start at once; a pool is still made per run, and shut down or replaced by it as
    the real one is. The tests of the workers' own isolation (a hung extraction killed and the
    workers replaced) are marked ``real_workers`` and get the real ``start_workers``.

    The suite extracts the same few PDFs hundreds of times, so ``extract_pdf`` is run once per
    PDF, budget and extractor, and its text (or its failure) is remembered for the session;
    a test that changes how a PDF is read calls ``extract_pdf`` itself (as test_extract does).
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        from digest.text import extract

        if fn is extract.extract_pdf:
            fn = _remembered_extraction
        return super().submit(fn, *args, **kwargs)


_extractions: dict[tuple[bytes, int, str], ExtractedText | str] = {}
_extractions_lock = threading.Lock()


def _remembered_extraction(
    data: bytes, budget: int, extractor: Extractor = "pypdf"
) -> ExtractedText:
    from digest.text import extract

    key = (hashlib.sha256(data).digest(), budget, extractor)
    with _extractions_lock:
        known = _extractions.get(key)
    if known is None:
        try:
            known = extract.extract_pdf(data, budget, extractor)
        except extract.ExtractionFailed as error:
            known = error.reason
        # ExtractionUnavailable and other errors are raised each time, as the real call does.
        with _extractions_lock:
            _extractions[key] = known
    if isinstance(known, str):
        raise extract.ExtractionFailed(known)
    return known.model_copy(deep=True)


def in_process_workers(extractor: Extractor = "pypdf") -> InProcessWorkers:
    from digest.text import extract

    return InProcessWorkers(max_workers=extract.EXTRACT_WORKERS, thread_name_prefix="extract")


@pytest.fixture(autouse=True)
def extraction_workers(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Extraction in threads (see ``InProcessWorkers``) but for tests marked real_workers."""
    if request.node.get_closest_marker("real_workers"):
        return
    from digest.text import extract

    # The pipeline's builder imports start_workers from digest.text.extract when it runs; the
    # workers' module imported its own name when it was loaded.
    monkeypatch.setattr(extract, "start_workers", in_process_workers)
    monkeypatch.setattr("digest.runs.workers.start_workers", in_process_workers)


@pytest.fixture(autouse=True, scope="session")
def one_ssl_context() -> Iterator[None]:
    """One loaded TLS context for every HTTP client of the session.

    Each httpx2 client (a run makes two or three) loads the system's CA bundle, about 50 ms of
    CPU; the stand-ins speak plain HTTP and no test reaches the internet, so the context is
    never even used. It is still made the same way, once.
    """
    import httpcore2

    made = functools.cache(httpcore2.default_ssl_context)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpcore2, "default_ssl_context", made)
        yield


@pytest.fixture(autouse=True, scope="session")
def one_cli_command() -> Iterator[None]:
    """The app's click command, built once for every ``CliRunner.invoke``.

    typer builds it anew on each call, from the type hints of every command (some 15 ms of
    CPU, and the suite invokes the CLI hundreds of times); the app does not change.
    """
    import typer.testing

    built = functools.cache(typer.testing._get_command)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(typer.testing, "_get_command", built)
        yield


@pytest.fixture(autouse=True, scope="session")
def no_fsync() -> Iterator[None]:
    """``os.fsync`` that only checks its descriptor.

    Every atomic write syncs the file and its folder to the disk, which takes milliseconds
    each and is for a power cut, which no test makes; what a test can see of a write (the
    temporary file, the rename, a failed write) is unchanged. A test that makes fsync fail
    still patches it itself.
    """

    def checked(descriptor: int) -> None:
        os.fstat(descriptor)  # a bad descriptor still raises, as fsync would

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "fsync", checked)
        yield


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
        # No spacing on the real clock where a test does not measure it: the tests of the
        # arXiv spacing and the download rate set their own.
        "DIGEST_ARXIV_DELAY": "0",
        "DIGEST_DOWNLOAD_RATE": "0",
        "DIGEST_RETRY_BACKOFF": "0.01",
        "DIGEST_CACHE_DIR": str(isolated / "cache"),
        "DIGEST_HF_API_URL": f"{state.url}/hf",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_time(standin: StandIn, monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The run's waits on a ``FakeClock``: retries, Retry-After, the arXiv API's spacing and
    the download rate sleep on it and return at once, and the stand-in stamps its arXiv
    requests with it. A test measures a wait as the time that passed on it."""
    from digest.runs import pipeline, reading
    from digest.sources import fetch
    from tests.helpers import FakeClock

    clock = FakeClock()
    standin.clock = clock.now

    class Pipeline(pipeline.Pipeline):
        def __init__(self, *parts: Any, **options: Any) -> None:
            # run_day passes its own sleep (asyncio.sleep); this one wins.
            super().__init__(*parts, **{**options, "sleep": clock.async_sleep})

    arxiv = functools.partial(fetch.ArxivMetadata, sleep=clock.sleep, clock=clock.now)
    # The CLI and the pipeline's builder import Pipeline and ArxivMetadata when they run; the
    # paper reader imported its names when it was loaded.
    monkeypatch.setattr(pipeline, "Pipeline", Pipeline)
    monkeypatch.setattr(fetch, "ArxivMetadata", arxiv)
    monkeypatch.setattr(reading, "ArxivMetadata", arxiv)
    monkeypatch.setattr(
        reading, "PdfDownloader", functools.partial(fetch.PdfDownloader, clock=clock.now)
    )
    return clock
