"""The docs' settings table and the command line's setting help, made from ``Settings``.

Each setting's default, meaning and reasons are written once, in its ``Field`` in
``digest/settings.py``; the table in ``docs/settings.md`` between the markers below is
generated from them, and so is the ``--help`` of every option that sets a setting
(``setting_help``: the test also fails on a variable or default written by hand in ``cli.py``).
The options objects the parts are given take the values themselves (``digest.options``).
``tests/test_settings_doc.py`` fails when the table is out of date::

    python -m digest.settings_doc --write   # update the table in docs/settings.md
    python -m digest.settings_doc --check   # exit 1 when docs/settings.md is out of date

A field may carry, in ``json_schema_extra``:

- ``shown_default``: the default as the reader should see it (markdown), where the Python
  default would mislead: ``None`` that means "OpenAI", a folder worked out at run time.
- ``flag``: the ``digest`` option that sets it (with its metavar), e.g. ``--deadline MINUTES``.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Sequence

from pydantic import AliasChoices
from pydantic.fields import FieldInfo

from digest.doc_pages import DOCS, Generated
from digest.settings import Settings

START_MARKER = "<!-- settings-table start -->"
END_MARKER = "<!-- settings-table end -->"

EXTRA_KEYS = frozenset({"shown_default", "flag"})


def _field(name: str) -> FieldInfo:
    try:
        return Settings.model_fields[name]
    except KeyError:
        raise ValueError(f"no setting {name!r}") from None


def _extra(name: str, key: str) -> str | None:
    """One of the documentation keys of the field's ``json_schema_extra``; a key this module
    does not know, or a value that is not text, is a mistake in ``Settings``."""
    extra = _field(name).json_schema_extra
    if extra is None:
        return None
    if not isinstance(extra, dict):
        raise ValueError(f"setting {name}: json_schema_extra must be a dict")
    unknown = set(extra) - EXTRA_KEYS
    if unknown:
        raise ValueError(f"setting {name}: unknown json_schema_extra keys {sorted(unknown)}")
    value = extra.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"setting {name}: {key} must be text")
    return value


def description(name: str) -> str:
    text = _field(name).description
    if not text or not text.strip():
        raise ValueError(f"setting {name} has no description; give its Field one")
    # One table cell: a line break or a pipe would break the row.
    if "\n" in text or "|" in text:
        raise ValueError(f"setting {name}: its description may not hold a line break or '|'")
    return text


def environment(name: str) -> str:
    """The environment variable: the alias in capitals (``OPENAI_API_KEY``), else the
    prefix and the name (``DIGEST_OUTPUT_DIR``)."""
    alias = _field(name).validation_alias
    if isinstance(alias, AliasChoices):
        for choice in alias.choices:
            if isinstance(choice, str) and choice.isupper():
                return choice
    return f"{Settings.model_config.get('env_prefix', '')}{name}".upper()


def _format_value(value: object) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):  # before int: True is an int
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        return f"`{int(value)}`"  # 120, as the environment would give it, not 120.0
    if isinstance(value, list):
        # As DIGEST_POST_TAGS takes it.
        return f"`{','.join(str(item) for item in value)}`" if value else "empty"
    return f"`{value}`"


def shown_default(name: str) -> str:
    """The default as the docs show it (markdown)."""
    shown = _extra(name, "shown_default")
    if shown is not None:
        return shown
    field = _field(name)
    if field.default_factory is not None:
        raise ValueError(f"setting {name}: a default_factory needs a shown_default")
    return _format_value(field.default)


def environment_cell(name: str) -> str:
    """The environment variable, with how its value is written or the flag that also sets it."""
    cell = f"`{environment(name)}`"
    origin = typing.get_origin(_field(name).annotation)
    if origin is list:
        cell += " (comma-separated)"
    elif origin is dict:
        cell += " (JSON)"
    flag = _extra(name, "flag")
    if flag is not None:
        cell += f" (`{flag}`)"
    return cell


def settings_table() -> str:
    """The settings table, one row a setting in the order of ``Settings``."""
    lines = ["| setting | environment | default |", "| --- | --- | --- |"]
    for name in Settings.model_fields:
        default = f"{shown_default(name)}: {description(name)}"
        lines.append(f"| `{name}` | {environment_cell(name)} | {default} |")
    return "\n".join(lines) + "\n"


def setting_help(name: str, lead: str) -> str:
    """A ``--help`` text for an option that sets ``name``: ``lead`` with the environment
    variable and the default, e.g. "Output folder (env DIGEST_OUTPUT_DIR; default outputs)."."""
    plain = shown_default(name).replace("`", "")
    return f"{lead} (env {environment(name)}; default {plain})."


PAGE = Generated(
    what="the settings table",
    page=DOCS / "settings.md",
    start=START_MARKER,
    end=END_MARKER,
    module="digest.settings_doc",
    generate=settings_table,
)


def main(argv: Sequence[str] | None = None) -> int:
    return PAGE.main(argv)


if __name__ == "__main__":
    sys.exit(main())
