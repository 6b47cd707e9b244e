"""Settings, read once per command: flags, then environment, then ``digest.toml``, then defaults.

Every setting has an environment variable, ``DIGEST_`` plus its name in capitals (for example
``DIGEST_OUTPUT_DIR``). ``digest.toml`` in the working folder (or the file named by
``DIGEST_CONFIG``) uses the plain names: ``output_dir = "site"``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Annotated

from pydantic import ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from digest.errors import UsageError
from digest.models import Day

CONFIG_FILE_ENV = "DIGEST_CONFIG"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIGEST_", extra="ignore")

    output_dir: Path = Path("outputs")
    post_time: str = "08:15:00"
    post_tags: Annotated[list[str], NoDecode] = ["papers", "hugginface"]
    post_categories: Annotated[list[str], NoDecode] = []
    post_title: str = "Daily Papers — {date}"
    post_layout: str = "post"

    @field_validator("post_tags", "post_categories", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        # The environment gives "papers,hugginface"; digest.toml gives a real list.
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("post_title")
    @classmethod
    def _title_template(cls, template: str) -> str:
        try:
            template.format(date="2000-01-01")
        except (KeyError, IndexError, ValueError) as error:
            raise ValueError(
                f"{template!r} may use only the placeholder {{date}} ({error})"
            ) from None
        return template

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_file = Path(os.environ.get(CONFIG_FILE_ENV, "digest.toml"))
        return init_settings, env_settings, TomlConfigSettingsSource(settings_cls, toml_file)

    def new_day(self, date: dt.date) -> Day:
        """An empty day with the front matter these settings ask for."""
        return Day(
            date=date,
            time=self.post_time,
            title=self.post_title.format(date=date.isoformat()),
            layout=self.post_layout,
            tags=self.post_tags,
            categories=self.post_categories,
        )


def load_settings(**flags: object) -> Settings:
    """Settings with ``flags`` (the command line's non-None options) taking precedence."""
    given = {name: value for name, value in flags.items() if value is not None}
    config = os.environ.get(CONFIG_FILE_ENV)
    if config and not Path(config).is_file():
        raise UsageError(f"{CONFIG_FILE_ENV}={config}: no such file")
    try:
        return Settings(**given)  # type: ignore[arg-type]
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        name = str(first["loc"][0]) if first["loc"] else "settings"
        message = first["msg"].removeprefix("Value error, ")
        raise UsageError(
            f"setting {name} (environment DIGEST_{name.upper()} or digest.toml): {message}"
        ) from None
    except Exception as error:  # a malformed digest.toml
        raise UsageError(f"cannot read the settings file: {error}") from None
