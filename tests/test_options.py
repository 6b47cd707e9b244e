"""Each setting is declared once, by its ``Field``: the options objects the parts are given take
their values from ``Settings`` through the ``Setting`` marks of ``digest.options``, with no
line per setting in between."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import pytest
from pydantic import SecretStr

from digest import options
from digest.options import (
    BatchOptions,
    ExtractOptions,
    FetchOptions,
    HfOptions,
    LlmOptions,
    NotifyOptions,
    RankOptions,
    RunOptions,
    Setting,
    settings_taken,
)
from digest.settings import Settings

# Every options class, with the builder of Settings that makes it.
BUILDERS: dict[type, Callable[[Settings], object]] = {
    LlmOptions: Settings.llm_options,
    FetchOptions: Settings.fetch_options,
    HfOptions: Settings.hf_options,
    ExtractOptions: Settings.extract_options,
    BatchOptions: Settings.batch_options,
    RunOptions: Settings.run_options,
    NotifyOptions: Settings.notify_options,
    RankOptions: Settings.rank_options,
}

# Fields named like a setting that are not its value as it is: worked out from it, or given
# per run. Any other field with a setting's name must be marked, or it would keep its default.
NOT_TAKEN_AS_IS = {
    (FetchOptions, "pdf_redirect_hosts"),  # lower-cased, a frozenset
    (RunOptions, "limit"),  # --source ids takes every paper given
}


def _plain(value: object) -> object:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def _distinct(name: str, index: int) -> object:
    """A value of setting ``name``'s type that is neither its default nor any other setting's
    value, so a field that reads the wrong setting, or none, is seen."""
    field = Settings.model_fields[name]
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        (annotation,) = [kind for kind in typing.get_args(annotation) if kind is not type(None)]
    if typing.get_origin(annotation) is Literal:
        return next(choice for choice in typing.get_args(annotation) if choice != field.default)
    made: dict[object, Callable[[], object]] = {
        bool: lambda: not field.default,
        int: lambda: 1000 + index,
        float: lambda: 1000.5 + index,
        str: lambda: f"{name}-{index}",
        SecretStr: lambda: SecretStr(f"sk-{name}-{index}"),
        Path: lambda: Path(f"{name}-{index}"),
        tuple[str, ...]: lambda: (f"{name}://{index}",),
    }
    if annotation not in made:
        pytest.fail(f"setting {name}: give _distinct a value for {annotation}")
    return made[annotation]()


def _all_taken() -> list[str]:
    return sorted({name for kind in BUILDERS for name in settings_taken(kind).values()})


def _unusual_settings() -> Settings:
    """Settings where every setting an options class takes has a value of its own. Built
    without validation: what is checked is where each value goes, not whether it is sensible
    (an extractor that is not installed, say)."""
    values = {name: _distinct(name, index) for index, name in enumerate(_all_taken())}
    return Settings.model_construct(**values)


def test_every_options_class_has_a_builder() -> None:
    classes = {
        value
        for name, value in vars(options).items()
        if name.endswith("Options") and dataclasses.is_dataclass(value)
    }
    assert classes == set(BUILDERS)


@pytest.mark.parametrize("kind", list(BUILDERS), ids=lambda kind: kind.__name__)
def test_every_marked_field_gets_its_settings_value(kind: type) -> None:
    settings = _unusual_settings()
    built = BUILDERS[kind](settings)
    taken = settings_taken(kind)
    assert taken, f"{kind.__name__} takes no setting"
    for field, setting in taken.items():
        expected = _plain(getattr(settings, setting))
        assert expected != _plain(Settings.model_fields[setting].default), setting
        assert getattr(built, field) == expected, f"{kind.__name__}.{field} from {setting}"


def test_the_unusual_values_are_all_different() -> None:
    settings = _unusual_settings()
    # A bool has only one value other than its default: each is checked against that alone.
    values = [
        repr(value)
        for name in _all_taken()
        if not isinstance(value := getattr(settings, name), bool)
    ]
    assert len(values) == len(set(values))


def test_a_field_named_like_a_setting_takes_it_or_says_why_not() -> None:
    for kind in BUILDERS:
        taken = settings_taken(kind)
        for field in dataclasses.fields(kind):
            if field.name in Settings.model_fields and field.name not in taken:
                assert (kind, field.name) in NOT_TAKEN_AS_IS, f"{kind.__name__}.{field.name}"


def test_a_marked_fields_own_default_is_the_settings() -> None:
    """RunOptions() is a run given no flags (the pipeline's default): its defaults may not
    drift from the settings' own."""
    for kind in BUILDERS:
        for field in dataclasses.fields(kind):
            setting = settings_taken(kind).get(field.name)
            if setting is not None and field.default is not dataclasses.MISSING:
                assert field.default == Settings.model_fields[setting].default, field.name


def test_a_mark_naming_no_setting_is_an_error() -> None:
    @dataclasses.dataclass(frozen=True)
    class Mistaken:
        timeout: typing.Annotated[float, Setting("llm_timeot")]

    with pytest.raises(TypeError, match=r"Mistaken\.timeout: there is no setting 'llm_timeot'"):
        Settings().taken_by(Mistaken)


def test_a_mark_is_read_from_the_annotation() -> None:
    assert settings_taken(HfOptions) == {"api_url": "hf_api_url", "http_timeout": "http_timeout"}
    assert "retry" not in settings_taken(LlmOptions)  # worked out, see llm_options


def test_the_worked_out_values() -> None:
    settings = Settings(
        cache_dir=Path("cache"),
        pdf_redirect_hosts=["ArXiv.org"],
        llm_max_attempts=3,
        llm_retry_budget=700,
        http_max_attempts=2,
        http_retry_budget=200,
        retry_backoff=0.5,
        retry_after_cap=100,
        arxiv_rate_limit_wait=20,
        batch_poll=50,
        batch_poll_max=40,
        model="gpt-4.1-nano",
    )
    llm = settings.llm_options()
    assert llm.retry.max_attempts == 3 and llm.retry.max_seconds == 700
    assert llm.price == settings.price_of("gpt-4.1-nano") is not None
    fetch = settings.fetch_options()
    assert fetch.pdf_folder == Path("cache/pdfs")
    assert fetch.pdf_redirect_hosts == frozenset({"arxiv.org"})
    assert fetch.arxiv_retry.bare_429_wait == 20 and fetch.pdf_retry.bare_429_wait is None
    for retry in (fetch.arxiv_retry, fetch.pdf_retry, settings.hf_options().retry):
        assert (retry.max_attempts, retry.max_seconds) == (2, 200)
        assert (retry.backoff, retry.server_wait_cap) == (0.5, 100)
    assert settings.batch_options().poll_max == 50  # never under the first wait
    assert settings.batch_options(reask_interactive=True).reask_interactive
    run = settings.run_options(force=True, max_cost=1.5, limit=None)
    assert (run.force, run.max_cost, run.limit) == (True, 1.5, None)


def test_the_api_key_is_given_as_text() -> None:
    key: Any = Settings(api_key=SecretStr("sk-given")).llm_options().api_key
    assert key == "sk-given" and isinstance(key, str)
