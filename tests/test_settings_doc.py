"""The settings are documented once, in ``Settings``: the table in docs/settings.md and the
options' ``--help`` texts must say what the fields say."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import typer.main
from typer.core import TyperGroup, TyperOption

from digest import cli, settings_doc
from digest.cli import app
from digest.settings import DEFAULT_PRICES, Settings
from digest.settings_doc import (
    END_MARKER,
    PAGE,
    START_MARKER,
    description,
    environment,
    setting_help,
    settings_table,
    shown_default,
)


def _page() -> str:
    return PAGE.page.read_text(encoding="utf-8")


def test_the_docs_table_is_generated_from_the_settings() -> None:
    assert PAGE.page.name == "settings.md" and PAGE.page.parent.name == "docs"
    assert PAGE.problem(_page()) is None, "run: python -m digest.settings_doc --write"
    start = _page().index(START_MARKER)
    assert settings_table() in _page()[start:]


@pytest.mark.parametrize("name", list(Settings.model_fields))
def test_every_setting_has_a_description(name: str) -> None:
    field = Settings.model_fields[name]
    assert field.description and field.description.strip()
    assert description(name) == field.description


def test_every_setting_has_a_row() -> None:
    rows = [line for line in settings_table().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == list(Settings.model_fields)


def test_a_drifted_table_is_detected() -> None:
    page = _page()
    row = "| `limit` | `DIGEST_LIMIT` (`--limit`) | `10`: "
    assert row in page
    for drifted in (
        page.replace(row, row.replace("`10`", "`20`")),  # a default changed by hand
        re.sub(r"\| `post_layout` .*\n", "", page),  # a setting left out
        page.replace(END_MARKER, "| `extra` | `DIGEST_EXTRA` | `1`: gone |\n" + END_MARKER),
    ):
        assert drifted != page
        problem = PAGE.problem(drifted)
        assert problem is not None
        assert "python -m digest.settings_doc --write" in problem
        assert PAGE.problem(PAGE.filled(drifted)) is None
    # Text outside the markers is the page's own.
    assert PAGE.problem(page.replace("# Settings", "# Settings and more", 1)) is None


def test_missing_markers_are_reported() -> None:
    problem = PAGE.problem(_page().replace(START_MARKER, ""))
    assert problem is not None
    assert START_MARKER in problem


def test_write_and_check_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "settings.md"
    page.write_text(f"# T\n\n{START_MARKER}\n| old |\n{END_MARKER}\n\nAfter.\n", "utf-8")

    assert settings_doc.main(["--check", "--page", str(page)]) == 1
    message = capsys.readouterr().err
    assert message.count("\n") == 1
    assert "out of date" in message and "--write" in message

    assert settings_doc.main(["--write", "--page", str(page)]) == 0
    text = page.read_text("utf-8")
    assert text.startswith(f"# T\n\n{START_MARKER}\n\n| setting |")
    assert text.endswith(f"|\n\n{END_MARKER}\n\nAfter.\n")
    assert settings_doc.main(["--check", "--page", str(page)]) == 0

    page.write_text("# No table\n", "utf-8")
    assert settings_doc.main(["--write", "--page", str(page)]) == 2
    assert START_MARKER in capsys.readouterr().err


def test_shown_defaults() -> None:
    assert shown_default("output_dir") == "`outputs`"
    assert shown_default("llm_timeout") == "`120`"  # as DIGEST_LLM_TIMEOUT takes it
    assert shown_default("temperature") == "`0.2`"
    assert shown_default("skip_published") == "`true`"
    assert shown_default("post_tags") == "`papers,hugginface`"
    assert shown_default("post_categories") == "empty"
    assert shown_default("run_deadline") == "none"
    assert shown_default("base_url") == "OpenAI"
    assert "XDG_CACHE_HOME" in shown_default("cache_dir")


def test_the_price_example_is_the_built_in_price() -> None:
    model = Settings.model_fields["model"].default
    price = ", ".join(f"{value:.2f}" for value in DEFAULT_PRICES[model][:3])
    assert f"`{model}` is `[{price}]`" in description("prices")


def test_the_environment_column_names_what_settings_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(environment("limit"), "3")
    monkeypatch.setenv(environment("api_key"), "sk-test")
    monkeypatch.setenv(environment("post_tags"), "a,b")
    monkeypatch.setenv(environment("prices"), '{"m": [1, 2, 3]}')
    settings = Settings()
    assert settings.limit == 3
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "sk-test"
    assert settings.post_tags == ["a", "b"]
    assert settings.prices == {"m": (1.0, 2.0, 3.0)}
    assert environment("base_url") == "OPENAI_BASE_URL"


def _options() -> list[tuple[str, TyperOption]]:
    """Every option of every command, with the command's name."""
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return [
        (name, param)
        for name, command in group.commands.items()
        for param in command.params
        if isinstance(param, TyperOption)
    ]


def test_setting_help() -> None:
    assert (
        setting_help("output_dir", "Output folder")
        == "Output folder (env DIGEST_OUTPUT_DIR; default outputs)."
    )


def test_option_help_states_the_settings_defaults() -> None:
    """An option's help that names a setting's variable says it, and its default, as the
    field does: "... (env DIGEST_X; default Y).", made by setting_help."""
    by_environment = {environment(name): name for name in Settings.model_fields}
    checked = 0
    for command, option in _options():
        text = option.help or ""
        for variable in re.findall(r"\b(?:DIGEST|OPENAI)_[A-Z_]+", text):
            assert variable in by_environment, f"{command} {option.opts}: no setting {variable}"
            lead = text.split(" (env ")[0]
            expected = setting_help(by_environment[variable], lead)
            assert text == expected, f"digest {command} {option.opts[0]}"
            checked += 1
    assert checked >= 5


def test_every_flag_of_a_setting_exists_with_its_help() -> None:
    flags = {
        name: str(extra["flag"])
        for name, field in Settings.model_fields.items()
        if isinstance(extra := field.json_schema_extra, dict) and "flag" in extra
    }
    assert flags
    options = _options()
    for name, flag in flags.items():
        opt = flag.split()[0]
        matching = [option for _, option in options if opt in option.opts]
        assert matching, f"{name}: no option {opt}"
        for option in matching:
            assert option.help and f"(env {environment(name)}; default " in option.help
            metavar = flag.split()[1:]
            if metavar:  # "--deadline MINUTES": the table shows the option's metavar
                assert option.metavar == metavar[0]


# What setting_help writes after its lead; written by hand, it would say what the field said
# the day it was copied.
_HAND_WRITTEN = re.compile(r"\benv (?:DIGEST|OPENAI)_[A-Z_]+")


def hand_written_variables(source: str) -> list[str]:
    """The text literals of ``source`` that name a setting's variable as ``setting_help``
    does, so written by hand."""
    return [
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and _HAND_WRITTEN.search(node.value)
    ]


def test_no_help_in_the_cli_states_a_setting_by_hand() -> None:
    assert hand_written_variables(Path(cli.__file__).read_text("utf-8")) == [], (
        "write help=setting_help(NAME, LEAD): the variable and default come from the Field"
    )


def test_a_hand_written_variable_is_found() -> None:
    by_hand = (
        'limit = typer.Option(help="Most papers (env DIGEST_LIMIT; default 10).")\n'
        'deadline = typer.Option(help="Stop past these minutes "\n'
        '    "(env DIGEST_RUN_DEADLINE; default none).")\n'
        'key = typer.Option(help=f"The key (env OPENAI_API_KEY; default {none}).")\n'
    )
    assert len(hand_written_variables(by_hand)) == 3
    derived = 'limit = typer.Option(help=setting_help("limit", "Most papers"))\n'
    assert hand_written_variables(derived) == []


def _settings_set_by_options() -> list[tuple[str, str, str]]:
    """(command function, setting, option parameter) for each ``load_settings(name=param)``
    in a command of cli.py: the options that set a setting."""
    found = []
    for function in ast.walk(ast.parse(Path(cli.__file__).read_text("utf-8"))):
        if not isinstance(function, ast.FunctionDef):
            continue
        for call in ast.walk(function):
            if isinstance(call, ast.Call) and ast.unparse(call.func) == "load_settings":
                found += [
                    (function.name, keyword.arg, keyword.value.id)
                    for keyword in call.keywords
                    if keyword.arg is not None and isinstance(keyword.value, ast.Name)
                ]
    return found


def test_every_option_that_sets_a_setting_takes_its_help_from_the_field() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    commands = {command.callback.__name__: command for command in group.commands.values()}
    set_by_options = _settings_set_by_options()
    assert len(set_by_options) >= 5, "cli.py no longer calls load_settings(name=option)?"
    for function, setting, parameter in set_by_options:
        (option,) = [p for p in commands[function].params if p.name == parameter]
        assert isinstance(option, TyperOption)
        where = f"{function} {option.opts[0]} sets {setting}"
        text = option.help or ""
        assert text == setting_help(setting, text.split(" (env ")[0]), where
        # The settings table names the flag that sets it.
        extra = Settings.model_fields[setting].json_schema_extra
        assert isinstance(extra, dict) and "flag" in extra, f"{where}: give its Field a flag"
        assert str(extra["flag"]).split()[0] in option.opts, where
