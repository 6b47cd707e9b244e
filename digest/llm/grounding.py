"""Grounding: every number and every name in a digest must appear in the paper the LLM read,
and the digest must not be the prompt's worked example.

A number is a run of digits with an optional decimal part (``38``, ``0.52``, ``1,000``), not
glued to a letter before it (the ``10`` of ``RealEstate10K`` is part of a name, the ``4`` of
``GPT-4`` is not). Numbers are compared by value after normalization, so ``38%`` matches
``38 %``, ``1,000`` matches ``1000`` and ``38.0`` matches ``38``; a rounded ``38.3`` does not
match ``38.25``. The same rule reads the paper, so a name like ``Llama-3`` is found on both
sides.

A digest that states a number the paper does not is sent back to the model. If the number
survives the re-asks, ``repair`` drops the line when its section can spare it, or else removes
the number (with its unit) from the line when what remains still reads, and says which it did;
the caller records that in the paper's provenance. A number that carries the sentence (a
particle right after it: ``0.8%만``, ``4.9를``, ``5.6보다``) cannot be taken out: the line would
read ``전체 파라미터의 만 학습하면서``. The paper then fails rather than publish it.

Names are grounded like numbers (``names_in``, ``find_ungrounded_names``): in a Korean line, a
Latin word is a name when it starts with a capital (``Whisper``), has a capital after its first
letter or a digit (``GenEval``, ``sCM``, ``CIFAR-10``, ``FLUX.1-lite``), or is an acronym;
runs of them are one name (``Stable Diffusion XL``). Lower-case terms (``adapter``) are not
checked, nor the few generic terms in ``GENERIC_TERMS``. A name is found in the paper when it
appears there compared case-insensitively, with hyphens, spaces and dots ignored. Unlike a
number, a name that survives the re-asks is never cut: a name may be a fair paraphrase, and a
false alarm must not cut a good line. It is published and listed; but many of them mean a
digest of another paper, which fails (``too_many_ungrounded``).

``copies_example`` finds an answer that repeats the prompt's worked example (a weak model's
favourite failure): it is rejected, and never published.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache

from digest.llm.prompts import PROMPTS_DIR
from digest.models import Digest, Quoted, by_field
from digest.validation import HANGUL, SECTION_LINE_COUNTS, line_problems

# Digits not preceded by a letter, a digit or a decimal point; thousands separators allowed.
_NUMBER = re.compile(r"(?<![A-Za-z\d.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?")
# What is removed with a number: a percent sign, a unit or a Korean counter right after it
# ("17개 과제" becomes "과제", not "개 과제").
_NUMBER_WITH_UNIT = (
    r"(?<![A-Za-z\d.,]){number}"
    r"(?:\s?(?:%p|%|퍼센트|포인트|pp\b|배|x|×|[KMBT]\b|개의?|편의?|단계의?|가지|명의?|종의?|회|번"
    r"|장|점))?\s?"
)


# A particle that a removed number would leave standing alone ("파라미터의 0.8% 만" → "의 만").
_LONE_PARTICLE = re.compile(
    r"(?:만|를|을|이|가|은|는|의|에|로|으로|보다|까지|에서|와|과|도|만큼)(?=[\s,.)]|$)"
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


def digest_lines(digest: Digest) -> list[tuple[str, str]]:
    """Every line of ``digest`` with its field name (``results[0]``), in the post's order."""
    return list(by_field(digest.model_dump()).items())


def find_ungrounded(digest: Digest, source_values: set[Decimal]) -> list[Ungrounded]:
    found = []
    for field, line in digest_lines(digest):
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


_DROPPED = re.compile(r"(\w+)\[(\d+)\]: line dropped ")


def dropped_lines(notes: list[str]) -> dict[str, set[int]]:
    """The lines ``repair``'s notes say it dropped: their indexes, by section."""
    dropped: dict[str, set[int]] = {}
    for note in notes:
        match = _DROPPED.match(note)
        if match:
            dropped.setdefault(match[1], set()).add(int(match[2]))
    return dropped


def _remove_numbers(line: str, numbers: list[str]) -> str | None:
    """``line`` without ``numbers``, or None when a number cannot be taken out and leave a
    sentence: a particle or ending glued to it (``0.8%만``, ``4.9를``, ``5.6보다``) would be
    left dangling (``파라미터의 만``, ``오류율 를``)."""
    for number in numbers:
        pattern = _NUMBER_WITH_UNIT.format(number=re.escape(number))
        match = re.search(pattern, line)
        if match is None:
            return None
        rest = line[match.end() :]
        glued = match.group(0) == match.group(0).rstrip() and HANGUL.match(rest[:1])
        if glued or _LONE_PARTICLE.match(rest):
            return None
        line = line[: match.start()] + rest
    line = re.sub(r"\s{2,}", " ", line)
    line = re.sub(r"\(\s*\)", "", line)  # "(42.7%)" becomes "()" without its number
    line = re.sub(r"\s+([,.)])", r"\1", line).strip()
    return None if line_problems(line) else line


# --- names ----------------------------------------------------------------------------------

# A Latin word with its inner hyphens and dots ("CIFAR-10", "FLUX.1-lite", "GPT-4o").
_LATIN_WORD = re.compile(r"(?<![A-Za-z0-9])[A-Za-z][A-Za-z0-9]*(?:[-.][A-Za-z0-9]+)*")
# Terms a Korean writer keeps in English that are not a paper's own names. Kept small: every
# entry is a name the checker will never question.
GENERIC_TERMS = frozenset(
    {
        "ai", "api", "cpu", "gpu", "gpus", "tpu", "llm", "llms", "vlm", "vlms", "mllm",
        "nlp", "ml", "sota", "transformer", "transformers", "pdf", "url", "json", "arxiv",
    }
)  # fmt: skip
# A digest with more ungrounded names than this, or with more than this share of its names
# ungrounded, is taken for a digest of another paper: the worked example copied by a weak
# model has three (SpAdapt, Whisper, LibriSpeech) out of four.
MAX_UNGROUNDED_NAMES = 2
MAX_UNGROUNDED_SHARE = 0.5


def _is_name(word: str) -> bool:
    letters = word.replace("-", "").replace(".", "")
    return (
        word[0].isupper()
        or any(char.isupper() for char in letters[1:])
        or any(char.isdigit() for char in letters)
    )


def names_in(line: str) -> list[str]:
    """The name-like Latin spans of a Korean line, runs of names kept together."""
    spans: list[str] = []
    end = -1
    for match in _LATIN_WORD.finditer(line):
        word = match.group(0).rstrip(".")
        if not _is_name(word):
            end = -1
            continue
        if spans and end >= 0 and line[end : match.start()] == " ":
            spans[-1] = f"{spans[-1]} {word}"  # "Stable Diffusion XL"
        else:
            spans.append(word)
        end = match.start() + len(word)
    return spans


def _compact(text: str) -> str:
    """Lower case, with everything but letters and digits left out: "Gen-Eval" is "geneval"."""
    return re.sub(r"[^a-z0-9]+", "", text.lower())


@dataclass(frozen=True)
class PaperNames:
    """What names can be found in: the paper's text, compacted, and its Latin words."""

    compact: str
    words: frozenset[str]

    @classmethod
    def of(cls, source: str) -> PaperNames:
        words = {word.lower() for word in _LATIN_WORD.findall(source)}
        words |= {part for word in words for part in re.split(r"[-.]", word) if part}
        words |= {_compact(word) for word in words}  # "GPT-4" is also "gpt4"
        return cls(_compact(source), frozenset(words))

    def has(self, name: str) -> bool:
        key = _compact(name)
        if not key or key in GENERIC_TERMS or name.lower() in self.words:
            return True
        if len(key) <= 4:
            # A short name ("RL", "DPR") must be a word of the paper, not a piece of one.
            return key in self.words or key.rstrip("s") in self.words
        return key in self.compact or key.rstrip("s") in self.compact


@dataclass(frozen=True)
class UngroundedName:
    """A name of the digest that the paper never mentions."""

    field: str
    name: str

    def problem(self) -> str:
        return (
            f"{self.field}: '{self.name}' does not appear in the paper; name only the models, "
            "methods, benchmarks and datasets this paper names, as it writes them"
        )


def find_ungrounded_names(digest: Digest, paper: PaperNames) -> list[UngroundedName]:
    found = []
    for field, line in digest_lines(digest):
        for span in names_in(line):
            # A run not found as a whole may still be names the paper has, side by side
            # ("BM25 DPR"); else the run is one name ("Stable Diffusion XL").
            if not paper.has(span) and not all(map(paper.has, span.split(" "))):
                found.append(UngroundedName(field, span))
    return found


def name_count(digest: Digest) -> int:
    return sum(len(names_in(line)) for _, line in digest_lines(digest))


def too_many_ungrounded(digest: Digest, ungrounded: list[UngroundedName]) -> bool:
    """Whether the ungrounded names mean a digest of another paper (see the limits)."""
    distinct = {item.name.lower() for item in ungrounded}
    if len(distinct) > MAX_UNGROUNDED_NAMES:
        return True
    total = max(name_count(digest), 1)
    return len(distinct) >= 2 and len(distinct) / total > MAX_UNGROUNDED_SHARE


# --- the worked example -----------------------------------------------------------------------

# An answer sharing this share of its character 4-grams with a worked example of the prompts
# repeats it. Real digests share only common Korean phrasing with it ("본 연구는"): the five
# written by hand from their papers (tests/data/digests/) share at most 0.022; a paraphrase of
# the example (tests/test_faithfulness.py) 0.59, and the example itself 1.0.
EXAMPLE_OVERLAP_LIMIT = 0.35


def _grams(text: str, size: int = 4) -> set[str]:
    squeezed = re.sub(r"\s+", "", text.lower())
    return {squeezed[i : i + size] for i in range(len(squeezed) - size + 1)}


def _digest_text(digest: Digest) -> str:
    return "\n".join(line for _, line in digest_lines(digest))


@cache
def example_grams() -> tuple[frozenset[str], ...]:
    """The 4-grams of each worked example's answer, in every prompt version."""
    examples = []
    for path in sorted(PROMPTS_DIR.glob("*/example-assistant.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data["introduction"]["goal"], dict):  # from v3 on, each line quoted
            data = Quoted.model_validate(data).split()[0]
        digest = Digest.model_validate(data)
        examples.append(frozenset(_grams(_digest_text(digest))))
    return tuple(examples)


def example_overlap(digest: Digest) -> float:
    """The largest share of the digest's 4-grams found in a worked example (0 to 1)."""
    grams = _grams(_digest_text(digest))
    if not grams:
        return 0.0
    return max((len(grams & example) / len(grams) for example in example_grams()), default=0.0)


def copies_example(digest: Digest) -> bool:
    return example_overlap(digest) >= EXAMPLE_OVERLAP_LIMIT
