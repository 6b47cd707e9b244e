"""What ``--help`` says of days and of exit codes."""

from __future__ import annotations

import pytest
import typer.main
from typer.core import TyperGroup

from digest.cli import app
from tests.helpers import digest


def option_help(command: str, option: str) -> str:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    (param,) = [p for p in group.commands[command].params if option in p.opts]
    return str(getattr(param, "help", ""))


@pytest.mark.parametrize(("command", "option"), [("daily", "--date"), ("backfill", "--from")])
def test_the_day_options_say_which_day_each_source_means(command: str, option: str) -> None:
    text = option_help(command, option)
    # Hugging Face's days are UTC days; the others are the blog's, in the timezone setting.
    assert "hf a UTC day" in text
    assert "a day in the time zone (env DIGEST_TIMEZONE; default Asia/Seoul)" in text
    assert "as --from's is" in option_help("backfill", "--to")


@pytest.mark.parametrize("command", [[], ["daily"], ["backfill"], ["paper"]])
def test_help_lists_every_exit_code_130_included(command: list[str]) -> None:
    code, out, _ = digest(*command, "--help")
    assert code == 0
    text = " ".join(out.split())
    listed = text.split("Exit codes: ", 1)[1].split(".")[0]
    assert [part.split()[0] for part in listed.split("; ")] == ["0", "1", "2", "3", "130"]
    assert "130 interrupted (Ctrl-C)" in text
