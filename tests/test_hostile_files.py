"""Hostile files where digest reads its data: NaN, Infinity and negative figures; FIFOs,
links to /dev/zero and out of the folder; files too large and nested too deeply.

``render --check`` runs on a blog's pull requests, and a pull request can add any of these.
The reads that could block or never end run in a subprocess with a timeout (and a memory
limit), so that a regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from digest.llm.cache import DigestCache
from digest.models import PaperEntry
from digest.runs.stats import sparkline
from tests.conftest import DATA
from tests.helpers import digest, make_entry

DATA_DIR = Path("outputs/data")
POSTS = Path("outputs/_posts")
DAY = DATA_DIR / "2025-12-14.json"  # four LLM entries, each with a cost
REPORT = DATA_DIR / "2025-12-15.run.json"  # its fourth paper failed, at 0.006 USD
# Long enough for Python to start and read every file; a read that blocks never ends.
PROMPT = 60


@pytest.fixture
def days(isolated: Path) -> Path:
    """The committed days of tests/data/stats, in the test's own output folder."""
    DATA_DIR.mkdir(parents=True)
    for path in (DATA / "stats").glob("*.json"):
        shutil.copy(path, DATA_DIR / path.name)
    return DATA_DIR


@pytest.fixture
def rendered(days: Path) -> Path:
    """The days with their posts written, so that 'render --check' passes before a change."""
    code, _, err = digest("render")
    assert code == 0, err
    assert digest("render", "--check")[0] == 0
    return days


def stats_json() -> dict[str, Any]:
    code, out, err = digest("stats", "--json")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def set_figure(path: Path, where: tuple[str | int, ...], value: object) -> None:
    """Put ``value`` (NaN and Infinity as JSON's extensions write them) at ``where``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    holder = data
    for key in where[:-1]:
        holder = holder[key]
    holder[where[-1]] = value
    path.write_text(json.dumps(data, indent=2, allow_nan=True), encoding="utf-8")


def run_cli(*args: str, memory: int | None = None) -> subprocess.CompletedProcess[str]:
    """``digest ARGS`` in a subprocess of this folder and environment; TimeoutExpired (a
    failure) when it does not end within PROMPT seconds. ``memory`` caps its address space."""
    script = (
        "import runpy, sys; sys.argv[0] = 'digest'; runpy.run_module('digest', run_name='__main__')"
    )
    if memory is not None:
        script = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({memory}, {memory})); {script}"
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=PROMPT
    )


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    return lines[0]


# --- break 9: NaN, Infinity and negative figures -----------------------------------------------

BAD_FIGURES = [float("nan"), float("inf"), -1049.96]


@pytest.mark.parametrize("bad", BAD_FIGURES, ids=["nan", "infinity", "negative"])
def test_a_bad_cost_in_a_day_file_is_named_once_and_read_as_unknown(days: Path, bad: float) -> None:
    before = stats_json()["total"]
    set_figure(DAY, ("papers", 1, "provenance", "cost_usd"), bad)
    code, out, err = digest("stats")
    assert code == 0, err  # before: ValueError in sparkline for NaN and Infinity, exit 1
    warning = (
        f"warning: {DAY}: cost_usd {bad!r} is not a finite, non-negative figure in range; "
        "read as unknown: correct it in the file or set it to null"
    )
    assert err.count(str(DAY)) == 1 and warning in err.splitlines()
    assert "Trend" in out and "nan" not in out and "inf" not in out
    data = stats_json()
    total = data["total"]
    # The entry's cost is unknown, not summed: the total is the others' (before: null or
    # -1049.95), and "+?" says it is incomplete.
    assert total["cost_usd"] == round(before["cost_usd"] - 0.0028, 6)
    assert total["unpriced"] == before["unpriced"] + 1
    for name in ("cost_usd", "cost_per_paper_usd", "total_cost_usd"):
        assert isinstance(total[name], float) and math.isfinite(total[name]) and total[name] >= 0
    assert [w for w in data["warnings"] if str(DAY) in w] == [warning.removeprefix("warning: ")]


@pytest.mark.parametrize("bad", BAD_FIGURES, ids=["nan", "infinity", "negative"])
def test_a_bad_cost_in_a_run_report_is_named_once_and_read_as_unknown(
    days: Path, bad: float
) -> None:
    before = stats_json()["total"]
    set_figure(REPORT, ("papers", 3, "cost_usd"), bad)
    code, out, err = digest("stats")
    assert code == 0, err
    assert err.count(str(REPORT)) == 1
    assert f"{REPORT}: cost_usd {bad!r} is not a finite, non-negative figure in range" in err
    assert "nan" not in out and "-1049" not in out
    total = stats_json()["total"]
    # Its failures still count; its cost is unknown (tokens at no known price).
    assert total["failed"] == before["failed"]
    assert total["failed_cost_usd"] == round(before["failed_cost_usd"] - 0.006, 6)
    assert total["failed_unpriced"] == before["failed_unpriced"] + 1
    assert total["total_cost_usd"] is not None and total["total_cost_usd"] >= 0


def test_negative_and_absurd_token_counts_are_not_summed(days: Path) -> None:
    before = stats_json()["total"]
    papers = json.loads(DAY.read_text(encoding="utf-8"))["papers"]
    tokens_in, tokens_out = (
        papers[0]["provenance"]["tokens_in"],
        papers[2]["provenance"]["tokens_out"],
    )
    set_figure(DAY, ("papers", 0, "provenance", "tokens_in"), -5)
    set_figure(DAY, ("papers", 2, "provenance", "tokens_out"), 10**30)
    code, _, err = digest("stats")
    assert code == 0, err
    assert f"{DAY}: tokens_in -5, tokens_out 10000000000000000... are not finite" in err
    total = stats_json()["total"]
    assert total["tokens_in"] == before["tokens_in"] - tokens_in
    assert total["tokens_out"] == before["tokens_out"] - tokens_out


def test_a_bad_figure_leaves_the_day_file_renderable(rendered: Path) -> None:
    # The post shows no cost: a day file from an older version must keep passing CI.
    set_figure(DAY, ("papers", 1, "provenance", "cost_usd"), -0.5)
    set_figure(DAY, ("papers", 1, "provenance", "calls", 0, "tokens_in"), float("nan"))
    code, _, err = digest("render", "--check")
    assert code == 0, err


def test_a_run_report_with_an_impossible_total_is_skipped_with_a_warning(days: Path) -> None:
    set_figure(REPORT, ("totals", "cost_usd"), float("nan"))
    code, _, err = digest("stats")
    assert code == 0, err
    assert f"warning: {REPORT}: invalid run report: totals.cost_usd: " in err
    assert "its failures are not counted" in err


def test_the_trend_never_fails_on_a_value_that_is_not_finite() -> None:
    assert sparkline([1.0, float("nan"), None, 3.0, float("inf")]) == "▁?·█?"


def test_a_price_that_is_not_finite_or_negative_is_refused(
    days: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DIGEST_PRICES", '{"gpt-4.1-mini": [NaN, 0.1, 1.6]}')
    code, _, err = digest("stats")
    assert code == 2
    assert "DIGEST_PRICES" in err and "finite number" in err
    monkeypatch.setenv("DIGEST_PRICES", '{"gpt-4.1-mini": [0.4, -0.1, 1.6]}')
    code, _, err = digest("stats")
    assert code == 2 and "greater than or equal to 0" in err


def test_a_cached_digest_with_a_bad_figure_is_kept_with_it_unknown(
    isolated: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cache = DigestCache(isolated / "cache")
    entry = make_entry()
    entry.provenance.cost_usd = 0.002
    assert cache.put("k", entry)
    path = cache.folder / "k.json"
    set_figure(path, ("provenance", "cost_usd"), float("nan"))
    got = cache.get("k")
    assert isinstance(got, PaperEntry) and got.provenance.cost_usd is None
    assert got.digest == entry.digest
    assert f"{path}: cost_usd nan is not a finite" in caplog.text


# --- break 10: FIFOs, devices, links, sizes, nesting -------------------------------------------

FIFO_MESSAGE = "not a regular file (a FIFO); digest reads only regular files: remove it"


@pytest.mark.slow
@pytest.mark.parametrize("check", [True, False], ids=["render --check", "render"])
def test_a_fifo_day_file_is_refused_at_once(rendered: Path, check: bool) -> None:
    fifo = DATA_DIR / "2025-12-17.json"
    os.mkfifo(fifo)
    done = run_cli("render", *(["--check"] if check else []))
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"error: {fifo}: {FIFO_MESSAGE}"
    assert "1 of 5 day files could not be read." in done.stderr  # the others still done


@pytest.mark.slow
def test_stats_skips_a_fifo_day_file_and_a_fifo_run_report(days: Path) -> None:
    os.mkfifo(DATA_DIR / "2025-12-17.json")
    REPORT.unlink()
    os.mkfifo(REPORT)
    done = run_cli("stats")
    # stats skips what it cannot read, naming it, as for any broken file: exit 0.
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        f"warning: {REPORT}: {FIFO_MESSAGE}; its failures are not counted",
        f"warning: {DATA_DIR / '2025-12-17.json'}: {FIFO_MESSAGE}; skipped",
    ]


@pytest.mark.slow
def test_a_link_to_dev_zero_is_refused_without_reading_it(rendered: Path) -> None:
    link = DATA_DIR / "2025-12-17.json"
    link.symlink_to("/dev/zero")
    done = run_cli("render", "--check", memory=2 << 30)  # before: MemoryError, exit 1
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"error: {link}: a link to /dev/zero, outside {DATA_DIR}; digest follows no link out "
        "of the folder: put the file itself there"
    )


@pytest.mark.slow
def test_a_post_that_is_a_fifo_or_a_link_to_dev_zero_is_out_of_date(rendered: Path) -> None:
    fifo, link = POSTS / "2025-12-14-daily-papers.md", POSTS / "2025-12-15-daily-papers.md"
    fifo.unlink()
    os.mkfifo(fifo)
    link.unlink()
    link.symlink_to("/dev/zero")
    done = run_cli("render", "--check", memory=2 << 30)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [f"out of date: {fifo}", f"out of date: {link}"]
    done = run_cli("render")
    assert done.returncode == 0, done.stderr
    # Replaced by the posts themselves, with a post's permissions (not /dev/zero's 0o666).
    assert not fifo.is_symlink() and fifo.is_file() and not link.is_symlink()
    assert link.stat().st_mode & 0o022 == 0
    assert digest("render", "--check")[0] == 0


def test_a_link_out_of_the_folder_is_refused_and_one_inside_is_followed(
    rendered: Path, tmp_path: Path
) -> None:
    # A well-formed day file outside the data folder: before, it was read and checked.
    outside = tmp_path / "elsewhere.json"
    shutil.move(DAY, outside)
    DAY.symlink_to(outside)
    code, _, err = digest("render", "--check")
    assert code == 2
    assert one_line(err) == (
        f"error: {DAY}: a link to {outside}, outside {DATA_DIR}; digest follows no link out "
        "of the folder: put the file itself there"
    )
    # The same file in a folder inside the data folder is the blog's own.
    DAY.unlink()
    (DATA_DIR / "kept").mkdir()
    shutil.move(outside, DATA_DIR / "kept" / DAY.name)
    DAY.symlink_to(Path("kept") / DAY.name)
    code, _, err = digest("render", "--check")
    assert code == 0, err


def test_a_day_file_over_the_cap_is_refused(
    rendered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from digest import files  # the cap is read at each call, so that a test can lower it

    size = DAY.stat().st_size
    monkeypatch.setattr(files, "MAX_BYTES", size - 1)
    code, _, err = digest("render", "--check")
    assert code == 2
    assert one_line(err) == (
        f"error: {DAY}: larger than {size - 1:,} bytes, more than digest reads of a file: "
        "fix or remove it"
    )
    monkeypatch.setattr(files, "MAX_BYTES", size)
    assert digest("render", "--check")[0] == 0


@pytest.mark.slow
def test_a_300_mb_day_file_is_refused_without_reading_it(rendered: Path) -> None:
    os.truncate(DAY, 300_000_000)  # sparse: no disk, and reading it would take 300 MB
    done = run_cli("render", "--check", memory=2 << 30)
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == (
        f"error: {DAY}: larger than 20 MB, more than digest reads of a file: fix or remove it"
    )
    done = run_cli("stats", memory=2 << 30)
    assert done.returncode == 0 and f"warning: {DAY}: larger than 20 MB" in done.stderr


def test_a_day_file_nested_200000_deep_is_named_as_such(rendered: Path) -> None:
    DAY.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    code, _, err = digest("render", "--check")
    assert code == 2
    assert one_line(err) == f"error: {DAY}: nested too deeply to be a day file"
    code, _, err = digest("stats")
    assert code == 0 and f"warning: {DAY}: nested too deeply to be a day file; skipped" in err


def test_a_fifo_in_the_digest_cache_is_a_miss(isolated: Path) -> None:
    folder = isolated / "cache" / "digests"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "k.json")
    script = (
        "from pathlib import Path; from digest.llm.cache import DigestCache; "
        f"print(DigestCache(Path({str(isolated / 'cache')!r})).get('k'))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=PROMPT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "None\n"
    assert f"{folder / 'k.json'}: {FIFO_MESSAGE}; the paper is digested again" in done.stderr


@pytest.mark.slow
def test_importing_a_post_that_is_a_fifo_is_refused_at_once(isolated: Path) -> None:
    os.mkfifo("post.md")
    done = run_cli("import", "post.md")
    assert done.returncode == 2, done.stderr
    assert one_line(done.stderr) == f"error: post.md: {FIFO_MESSAGE}"


def test_a_settings_file_that_is_a_fifo_is_an_error(days: Path) -> None:
    # Before: silently ignored, so the settings in it were not used.
    os.mkfifo("digest.toml")
    code, _, err = digest("stats")
    assert code == 2
    assert one_line(err) == f"error: digest.toml: {FIFO_MESSAGE}"
