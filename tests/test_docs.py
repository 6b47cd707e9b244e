"""The documentation builds with ``mkdocs build --strict``: no broken link, anchor or image,
and no page left out of the nav. Without mkdocs (``pip install -e '.[dev]'`` has it) the
build is skipped, saying so; ``DIGEST_REQUIRE_DOCS`` (set by ``.ci/run``) makes that a
failure."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, missing

DOCS = REPO / "docs"
CONFIG = REPO / "mkdocs.yml"
BUILD_TIMEOUT_S = 120.0


@pytest.fixture(scope="module")
def mkdocs_here() -> None:
    if importlib.util.find_spec("mkdocs") is None:
        missing(
            "mkdocs is not installed (pip install -e '.[dev]'); the docs build needs it",
            "DIGEST_REQUIRE_DOCS",
        )


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``config`` into ``site``: never into the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(config),
         "--site-dir", str(site)],
        capture_output=True, text=True, timeout=BUILD_TIMEOUT_S, cwd=config.parent,
    )  # fmt: skip


@pytest.mark.slow
def test_the_docs_build_strictly(mkdocs_here: None, tmp_path: Path) -> None:
    done = build(CONFIG, tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert warnings(output) == [], output
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def _nav_pages(config: Path) -> list[str]:
    nav = yaml.safe_load(config.read_text(encoding="utf-8"))["nav"]
    return [page for entry in nav for page in entry.values()]


def test_the_nav_has_every_page_once() -> None:
    pages = _nav_pages(CONFIG)
    assert len(pages) == len(set(pages))
    assert sorted(pages) == sorted(path.name for path in DOCS.glob("*.md"))
    assert pages[0] == "index.md"


def _copy(tmp_path: Path) -> Path:
    """The docs and their config, in a folder a test may break."""
    root = tmp_path / "repo"
    shutil.copytree(DOCS, root / "docs", ignore=shutil.ignore_patterns("*.png"))
    for picture in DOCS.glob("*.png"):  # the pages' images, empty: only their names matter
        (root / "docs" / picture.name).touch()
    shutil.copy(CONFIG, root / "mkdocs.yml")
    return root


def warnings(output: str) -> list[str]:
    """mkdocs's warnings, each with the indented lines that continue it (a list of pages)."""
    found: list[str] = []
    continued = False
    for line in output.splitlines():
        if line.startswith("WARNING"):
            found.append(line)
            continued = True
        elif continued and line.startswith(" "):
            found[-1] += "\n" + line
        else:
            continued = False
    return found


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("breakage", "warning"),
    [
        ("a link to a page that is not there", "gone.md"),
        ("a link to an anchor that is not there", "#no-such-heading"),
        ("an image that is not there", "gone.png"),
        ("a page left out of the nav", "orphan.md"),
    ],
)
def test_a_broken_page_fails_the_build(
    mkdocs_here: None, tmp_path: Path, breakage: str, warning: str
) -> None:
    root = _copy(tmp_path)
    docs = root / "docs"
    if breakage == "a link to a page that is not there":
        _append(docs / "nightly.md", "\nSee [elsewhere](gone.md).\n")
    elif breakage == "a link to an anchor that is not there":
        _append(docs / "servers.md", "\nSee [retries](nightly.md#no-such-heading).\n")
    elif breakage == "an image that is not there":
        _append(docs / "blog.md", "\n![a picture](gone.png)\n")
    else:
        (docs / "orphan.md").write_text("# Orphan\n", encoding="utf-8")
    done = build(root / "mkdocs.yml", tmp_path / "site")
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert [message for message in warnings(output) if warning in message], output


def test_every_benchmark_has_its_place() -> None:
    """The figures of bench/ are on one page, docs/benchmarks.md: each script is there, and
    no other page gives a speed of its own."""
    page = (DOCS / "benchmarks.md").read_text(encoding="utf-8")
    scripts = sorted(path.name for path in (REPO / "bench").glob("*.py"))
    assert scripts
    for script in scripts:
        assert f"python bench/{script}" in page, script
    for other in DOCS.glob("*.md"):
        if other.name != "benchmarks.md":
            text = other.read_text(encoding="utf-8")
            assert "pages/s" not in text and "measured (2 cores)" not in text, other.name
            assert "python bench/" not in text, f"{other.name}: link to benchmarks.md instead"
