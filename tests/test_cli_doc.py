"""The CLI reference, docs/cli.md, is every command's live ``--help``: a help text changed
without running ``python -m digest.cli_doc --write`` fails here."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import typer.main
import typer.testing
from typer.testing import CliRunner

from digest import cli_doc
from digest.cli import app
from digest.cli_doc import (
    END_MARKER,
    PAGE,
    START_MARKER,
    WIDTH,
    commands,
    help_text,
    reference,
)

REGENERATE = "python -m digest.cli_doc --write"


def _page() -> str:
    return PAGE.page.read_text(encoding="utf-8")


def test_the_cli_reference_is_the_live_help() -> None:
    assert PAGE.page.name == "cli.md" and PAGE.page.parent.name == "docs"
    assert PAGE.problem(_page()) is None, f"run: {REGENERATE}"


def test_every_command_has_its_help_on_the_page() -> None:
    page = _page()
    names = commands()
    assert {"init", "daily", "backfill", "paper", "render", "import", "stats", "schema"} <= set(
        names
    )
    headings = [line for line in page.splitlines() if line.startswith("## digest")]
    assert headings == ["## digest", *(f"## digest {name}" for name in names)]
    for args in [[], *([name] for name in names)]:
        text = help_text(args)
        assert f"Usage: digest {' '.join([*args, ''])}" in text
        assert f"```text\n{text}\n```" in page


def test_the_help_is_what_a_user_sees() -> None:
    """The same text as ``digest daily --help``, less colour and the padding of each line."""
    shown = CliRunner().invoke(
        app, ["daily", "--help"], prog_name="digest", env={"COLUMNS": str(WIDTH)}
    )
    assert shown.exit_code == 0, shown.output
    text = help_text(["daily"])
    assert "\n".join(line.rstrip() for line in shown.output.splitlines()).strip("\n") == text
    assert "--max-cost" in text and "--date" in text


def test_the_page_is_the_same_on_every_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    plain = help_text(["backfill"])
    assert "\x1b" not in plain
    assert max(len(line) for line in plain.splitlines()) <= WIDTH
    # A narrow terminal, forced colour (as under GitHub Actions): the same text.
    monkeypatch.setenv("COLUMNS", "40")
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert help_text(["backfill"]) == plain


@pytest.mark.slow  # 0.5 s or more
def test_a_changed_help_is_detected(monkeypatch: pytest.MonkeyPatch) -> None:
    page = _page()
    # The command is built anew from the app, not the one the test session keeps (conftest).
    monkeypatch.setattr(typer.testing, "_get_command", typer.main.get_command)
    stats = next(info for info in app.registered_commands if info.name == "stats")
    monkeypatch.setattr(stats, "help", "Count the papers differently.")
    problem = PAGE.problem(page)
    assert problem is not None
    assert "the CLI reference is out of date" in problem and REGENERATE in problem
    assert "Count the papers differently." in PAGE.filled(page)


def test_a_drifted_page_is_detected() -> None:
    page = _page()
    generated = reference()
    assert PAGE.problem(page) is None, f"run: {REGENERATE}"
    # The help as it is now, made once: the page is what changes here.
    now = dataclasses.replace(PAGE, generate=lambda: generated)
    section = "## digest paper"
    assert section in page
    for drifted in (
        page.replace("Show the version.", "Show the version number."),  # edited by hand
        page.replace(section, "## digest papers"),
        page.replace(END_MARKER, "## digest gone\n\n" + END_MARKER),
    ):
        assert drifted != page
        problem = now.problem(drifted)
        assert problem is not None and REGENERATE in problem
        assert now.problem(now.filled(drifted)) is None
    # Text outside the markers is the page's own.
    assert now.problem(page.replace("## Exit codes", "## Exit statuses")) is None
    missing = now.problem(page.replace(START_MARKER, ""))
    assert missing is not None and START_MARKER in missing


@pytest.mark.slow  # 0.5 s or more
def test_write_and_check_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "cli.md"
    page.write_text(f"# CLI\n\n{START_MARKER}\nold\n{END_MARKER}\n", "utf-8")

    assert cli_doc.main(["--check", "--page", str(page)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "out of date" in message and "--write" in message

    assert cli_doc.main(["--write", "--page", str(page)]) == 0
    text = page.read_text("utf-8")
    assert text.startswith(f"# CLI\n\n{START_MARKER}\n\n## digest\n\n```text\n Usage: digest ")
    assert text.endswith(f"```\n\n{END_MARKER}\n")
    assert cli_doc.main(["--check", "--page", str(page)]) == 0

    page.write_text("# No reference\n", "utf-8")
    assert cli_doc.main(["--write", "--page", str(page)]) == 2
    assert START_MARKER in capsys.readouterr().err
