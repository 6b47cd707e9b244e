"""A bad setting is one line that names where its value came from (the flag, the environment
variable, or the settings file by its path), the setting and the value, and exit 2. Which
source is named follows the precedence: flags, then environment, then digest.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import digest

NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"


def one_error(*args: str) -> str:
    code, _, err = digest(*args)
    assert code == 2, err
    (line,) = err.strip().splitlines()
    return line


def test_a_bad_value_in_digest_toml_names_the_file_the_setting_and_the_value() -> None:
    Path("digest.toml").write_text('concurrency = "four"\n')
    assert one_error("render") == (
        f"error: digest.toml: setting concurrency = 'four': {NOT_AN_INTEGER}"
    )


def test_the_file_named_by_digest_config_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("conf").mkdir()
    Path("conf/blog.toml").write_text("download_concurrency = 0\n")
    monkeypatch.setenv("DIGEST_CONFIG", "conf/blog.toml")
    assert one_error("render") == (
        "error: conf/blog.toml: setting download_concurrency = 0: "
        "Input should be greater than or equal to 1"
    )


def test_a_bad_environment_variable_is_named_not_the_file_it_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("digest.toml").write_text("concurrency = 2\n")
    monkeypatch.setenv("DIGEST_CONCURRENCY", "four")
    assert one_error("render") == (
        f"error: environment variable DIGEST_CONCURRENCY: setting concurrency = 'four': "
        f"{NOT_AN_INTEGER}"
    )


def test_a_bad_file_value_that_the_environment_overrides_is_no_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    Path("digest.toml").write_text('concurrency = "four"\n')
    monkeypatch.setenv("DIGEST_CONCURRENCY", "2")
    code, _, err = digest("render")
    assert code == 0, err


def test_a_bad_flag_is_named_as_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_LIMIT", "5")  # overridden by the flag: not the one to blame
    assert one_error("daily", "--limit", "0") == (
        "error: --limit: setting limit = 0: Input should be greater than or equal to 1"
    )
    assert one_error("daily", "--deadline", "-1") == (
        "error: --deadline: setting run_deadline = -1.0: Input should be greater than 0"
    )


def test_the_api_key_is_never_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    Path("digest.toml").write_text("api_key = 31415926535\n")
    line = one_error("render")
    assert line.startswith("error: digest.toml: setting api_key = ")
    assert "31415926535" not in line and "***" in line
    assert line.endswith(": Input should be a valid string")


def test_a_long_value_is_cut() -> None:
    Path("digest.toml").write_text(f"concurrency = {'9' * 200}\n")
    line = one_error("render")
    assert line.startswith("error: digest.toml: setting concurrency = 99999")
    assert "9" * 100 not in line and "...: Input should be less than or equal to 64" in line
