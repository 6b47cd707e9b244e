"""Grounding: every number in a digest must appear in the paper the LLM read.

A number is a run of digits with an optional decimal part (``38``, ``0.52``, ``1,000``), not
glued to a letter before it (the ``10`` of ``RealEstate10K`` is part of a name, the ``4`` of
``GPT-4`` is not). Numbers are compared by value after normalization, so ``38%`` matches
``38 %``, ``1,000`` matches ``1000`` and ``38.0`` matches ``38``; a rounded ``38.3`` does not
match ``38.25``. The same rule reads the paper, so a name like ``Llama-3`` is found on both
sides.

A digest that states a number the paper does not is sent back to the model. If the number
survives the re-asks, ``repair`` drops the line when its section can spare it, or else removes
the number (with its unit) from the line, and says which it did; the caller records that in the
paper's provenance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from digest.models import Digest
from digest.validation import SECTION_LINE_COUNTS, line_problems

# Digits not preceded by a letter, a digit or a decimal point; thousands separators allowed.
_NUMBER = re.compile(r"(?<![A-Za-z\d.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
# What is removed with a number: a percent sign, a unit or a Korean counter right after it
# ("17개 과제" becomes "과제", not "개 과제").
_NUMBER_WITH_UNIT = (
    r"(?<![A-Za-z\d.,]){number}"
    r"(?:\s?(?:%|퍼센트|배|x|×|[KMBT]\b|개의?|편의?|단계의?|가지|명의?|종의?|회|번|장|점))?\s?"
)


@dataclass(frozen=True)
class Ungrounded:
    """A number of the digest that the paper does not state."""

    field: str  # "results[0]", "introduction.goal"
    number: str  # as written in the digest, e.g. "42.7"

    def problem(self) -> str:
        return (
            f"{self.field}: the number {self.number} does not appear in the paper; use only "
            "numbers the paper states (exactly as it states them), or leave the number out"
        )


def numbers_in(text: str) -> list[str]:
    """The numbers of ``text`` as written (``1,000``, ``38.5``)."""
    return [match.group(0) for match in _NUMBER.finditer(text)]


def value(number: str) -> Decimal | None:
    try:
        return Decimal(number.replace(",", ""))
    except InvalidOperation:
        return None


def numbers_of_source(source: str) -> set[Decimal]:
    """Every number value the paper states (its text, abstract and title)."""
    values = {value(number) for number in numbers_in(source)}
    values.discard(None)
    return values  # type: ignore[return-value]


def _lines(digest: Digest) -> list[tuple[str, str]]:
    intro = digest.introduction
    lines = [
        (f"introduction.{name}", getattr(intro, name))
        for name in ("goal", "motivation", "contribution")
    ]
    for section in SECTION_LINE_COUNTS:
        lines += [(f"{section}[{i}]", line) for i, line in enumerate(getattr(digest, section))]
    return lines


def find_ungrounded(digest: Digest, source_values: set[Decimal]) -> list[Ungrounded]:
    found = []
    for field, line in _lines(digest):
        for number in numbers_in(line):
            if value(number) not in source_values:
                found.append(Ungrounded(field, number))
    return found


def repair(digest: Digest, ungrounded: list[Ungrounded]) -> tuple[Digest | None, list[str]]:
    """The digest without its ungrounded numbers, and what was done, one note each.

    Returns None for the digest when a repaired line would no longer be a valid line (the
    number carried the sentence); the paper then fails rather than publish a broken line.
    """
    data = digest.model_dump()
    notes: list[str] = []
    by_field: dict[str, list[str]] = {}
    for item in ungrounded:
        by_field.setdefault(item.field, []).append(item.number)
    dropped: dict[str, set[int]] = {}
    for field, numbers in by_field.items():
        shown = ", ".join(numbers)
        if "[" in field:
            section, index = field[:-1].split("[")
            low, _ = SECTION_LINE_COUNTS[section]
            if len(data[section]) - len(dropped.get(section, set())) > low:
                dropped.setdefault(section, set()).add(int(index))
                notes.append(f"{field}: line dropped (ungrounded {shown})")
                continue
            line = _remove_numbers(data[section][int(index)], numbers)
            if line is None:
                return None, notes
            data[section][int(index)] = line
        else:
            name = field.split(".")[1]
            line = _remove_numbers(data["introduction"][name], numbers)
            if line is None:
                return None, notes
            data["introduction"][name] = line
        notes.append(f"{field}: removed {shown} (not in the paper)")
    for section, indexes in dropped.items():
        data[section] = [line for i, line in enumerate(data[section]) if i not in indexes]
    return Digest.model_validate(data), notes


def _remove_numbers(line: str, numbers: list[str]) -> str | None:
    for number in numbers:
        pattern = _NUMBER_WITH_UNIT.format(number=re.escape(number))
        line = re.sub(pattern, "", line, count=1)
    line = re.sub(r"\s{2,}", " ", line)
    line = re.sub(r"\(\s*\)", "", line)  # "(42.7%)" becomes "()" without its number
    line = re.sub(r"\s+([,.)])", r"\1", line).strip()
    return None if line_problems(line) else line
