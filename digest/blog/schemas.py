"""JSON Schemas generated from the models, kept in ``schemas/`` and checked in CI.

``digest.schema.json`` is exactly what the LLM is asked to fill (each line with its quotes);
``day.schema.json`` is a day file's, ``run-report.schema.json`` a run report's
(``DATE.run.json``). OpenAI's strict structured
outputs accept it only if every object lists all its properties as required, sets
``additionalProperties: false``, and uses no ``default`` or length keywords; ``strict_problems``
checks that, and the models are written so it holds (counts and lengths are validators).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel

from digest.models import Day, Quoted, RunReport

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "digest.schema.json": Quoted,
    "day.schema.json": Day,
    "run-report.schema.json": RunReport,
}

# Keywords OpenAI's strict mode rejects (lengths and defaults); counts are checked after parsing.
_STRICT_FORBIDDEN = {"default", "minLength", "maxLength", "minItems", "maxItems"}


def generate() -> dict[str, str]:
    """File name → file text for every schema; the LLM's as the server is sent it."""
    schemas = {name: model.model_json_schema() for name, model in SCHEMA_FILES.items()}
    schemas["digest.schema.json"] = llm_schema()
    return {
        name: json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in schemas.items()
    }


def llm_schema() -> dict[str, Any]:
    """The answer's schema as a request in ``json_schema`` mode carries it: the OpenAI SDK's
    strict form, which inlines a ``$ref`` that has a description beside it."""
    return to_strict_json_schema(Quoted)


def strict_problems(schema: dict[str, Any], path: str = "#") -> list[str]:
    """Why OpenAI's strict ``json_schema`` mode would reject ``schema`` (empty when it accepts)."""
    problems = [
        f"{path}: '{keyword}' is not allowed in strict mode"
        for keyword in sorted(_STRICT_FORBIDDEN & schema.keys())
    ]
    if schema.get("type") == "object":
        if schema.get("additionalProperties") is not False:
            problems.append(f"{path}: needs 'additionalProperties': false")
        if sorted(schema.get("required", [])) != sorted(schema.get("properties", {})):
            problems.append(f"{path}: every property must be required")
    for key, value in schema.items():
        if key in ("properties", "$defs") and isinstance(value, dict):
            for name, child in value.items():
                problems += strict_problems(child, f"{path}/{key}/{name}")
        elif key == "items" and isinstance(value, dict):
            problems += strict_problems(value, f"{path}/items")
        elif key in ("anyOf", "allOf", "oneOf") and isinstance(value, list):
            for index, child in enumerate(value):
                problems += strict_problems(child, f"{path}/{key}/{index}")
    return problems


def write(directory: Path) -> list[Path]:
    from digest.files import atomic_write_text

    written = []
    for name, text in generate().items():
        path = directory / name
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            written.append(path)
    return written


def stale(directory: Path) -> list[Path]:
    """Schema files that are missing or differ from what the models generate."""
    return [
        directory / name
        for name, text in generate().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
