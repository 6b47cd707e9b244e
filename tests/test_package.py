"""The distribution as a user gets it: built by `build`, judged by `twine check --strict`, and
installed alone, from its wheel, into a clean virtual environment where `digest init` and a
`digest daily` against the stand-ins run.

The wheel's dependencies come from a wheelhouse that .ci/run fills from PyPI before the tests
(DIGEST_WHEELHOUSE): the test itself reaches no network."""

from __future__ import annotations

import email.parser
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest

from digest import DISTRIBUTION, __version__
from tests.conftest import PDF_ABSTRACT, PDFS, REPO, WHEELHOUSE, missing
from tests.helpers import good
from tests.standins import ArxivPaper, StandIn, hf_item

# "At most about 12 KB": what a newcomer reads, and PyPI's page.
README_LIMIT = 12 * 1024
DATE = "2025-12-16"


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built from a copy of the checkout (the build writes its
    egg-info beside the sources) without build isolation, so with no download."""
    if shutil.which("twine") is None:
        missing(
            "build and twine are not installed (pip install -e '.[dev]')", "DIGEST_REQUIRE_WHEEL"
        )
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(
        REPO,
        source,
        dirs_exist_ok=True,
        ignore=shutil.ignore_patterns(
            ".git",
            ".venv*",
            "__pycache__",
            ".*_cache",
            ".digest-cache",
            ".wheelhouse",
            "build",
            "dist",
            "*.egg-info",
            "site",
        ),
    )
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("*.tar.gz")
    (wheel,) = out.glob("*.whl")
    return sdist, wheel


@pytest.mark.slow
def test_the_distribution_is_named_and_versioned_as_its_own(dists: tuple[Path, Path]) -> None:
    sdist, wheel = dists
    assert sdist.name == f"digest_papers-{__version__}.tar.gz"
    assert wheel.name == f"digest_papers-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata_name = f"digest_papers-{__version__}.dist-info/METADATA"
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
        entry_points = archive.read(
            f"digest_papers-{__version__}.dist-info/entry_points.txt"
        ).decode()
        names = set(archive.namelist())
    assert metadata["Name"] == DISTRIBUTION
    assert metadata["Version"] == __version__
    assert metadata["License-Expression"] == "MIT"
    assert "digest = digest.__main__:run" in entry_points
    # The long description is the README, and the README is short.
    assert metadata.get_payload() == (REPO / "README.md").read_text(encoding="utf-8")
    # What digest needs at run time is inside; the tests are not.
    for name in (
        "digest/prompt_templates/v2/system.md",
        "digest/blog/template/requirements.txt",
        "digest/blog/template/dependabot.yml",
        "digest/blog/template/workflows/nightly.yml",
        "digest/blog/template/_layouts/post.html",
    ):
        assert name in names, name
    assert not any(name.startswith("tests/") for name in names)


@pytest.mark.slow
def test_twine_check_strict_passes_on_both(dists: tuple[Path, Path]) -> None:
    result = subprocess.run(
        [shutil.which("twine") or "twine", "check", "--strict", *map(str, dists)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2, result.stdout


@pytest.mark.slow
def test_the_sdist_carries_what_a_rebuild_needs(dists: tuple[Path, Path]) -> None:
    sdist, _ = dists
    root = f"digest_papers-{__version__}"
    with tarfile.open(sdist) as archive:
        names = set(archive.getnames())
    for name in ("pyproject.toml", "README.md", "LICENSE", "prompts/v2/system.md"):
        assert f"{root}/{name}" in names, name


def test_the_readme_is_a_newcomer_s_page() -> None:
    size = len((REPO / "README.md").read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; the rest belongs in docs/"


def test_the_version_is_set_in_one_place() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert project["name"] == DISTRIBUTION
    assert "version" in project["dynamic"] and "version" not in project


# --- installed alone --------------------------------------------------------------------


@pytest.fixture(scope="module")
def installed(dists: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean virtual environment holding the wheel and its dependencies, nothing else: not
    the checkout, not the test environment's packages."""
    wheelhouse = WHEELHOUSE
    if not wheelhouse or not Path(wheelhouse).is_dir():
        missing(
            "no wheelhouse of the dependencies (DIGEST_WHEELHOUSE; .ci/run fills one)",
            "DIGEST_REQUIRE_WHEEL",
        )
    venv = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    result = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-index",
            "--find-links",
            str(wheelhouse),
            str(dists[1]),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return venv


def run_installed(
    venv: Path, *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    # Nothing of the checkout on the path: the installed package alone answers.
    environment = {key: value for key, value in (env or os.environ).items() if key != "PYTHONPATH"}
    return subprocess.run(
        [str(venv / "bin" / "digest"), *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_the_installed_wheel_is_the_one_that_runs(installed: Path, tmp_path: Path) -> None:
    where = subprocess.run(
        [str(installed / "bin" / "python"), "-c", "import digest; print(digest.__file__)"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert Path(where).is_relative_to(installed), where
    result = run_installed(installed, "--version", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"digest {__version__}\n"


@pytest.mark.slow
def test_the_installed_wheel_makes_a_blog_and_writes_a_day(
    installed: Path, tmp_path: Path, standin: StandIn
) -> None:
    blog = tmp_path / "blog"
    made = run_installed(installed, "init", str(blog), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    requirements = (blog / "requirements.txt").read_text(encoding="utf-8")
    assert f"\n{DISTRIBUTION}=={__version__}\n" in requirements
    assert (blog / ".github" / "workflows" / "nightly.yml").is_file()

    paper = ArxivPaper("2512.10001", 1, "A paper from the stand-in", ["Kim"], PDF_ABSTRACT)
    standin.papers[paper.arxiv_id] = paper
    standin.pdfs[f"{paper.arxiv_id}v1"] = (PDFS / "0908.0054v1.pdf").read_bytes()
    standin.hf_days[DATE] = [hf_item(paper, 3)]
    standin.llm_default = good
    daily = run_installed(installed, "daily", "--date", DATE, cwd=blog)
    assert daily.returncode == 0, daily.stdout + daily.stderr
    post = (blog / "_posts" / f"{DATE}-daily-papers.md").read_text(encoding="utf-8")
    assert post.startswith('---\nlayout: post\ntitle: "Daily Papers — 2025-12-16"\n')
    assert "# 1. [A paper from the stand-in](https://arxiv.org/abs/2512.10001)" in post
    assert (blog / "_digest" / f"{DATE}.json").is_file()
    # The installed prompts were the ones sent.
    assert len(standin.llm_requests) == 1
