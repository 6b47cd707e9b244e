"""Prompt templates: ``prompts/<version>/<name>.md``, with ``$variables`` that must all be given.

The version is recorded in every paper's provenance and is part of the digest cache key, so a
change to a prompt's text comes with a new version folder (``tests/test_prompts.py`` holds the
fingerprint of each released version's files and fails when one changes in place).
"""

from __future__ import annotations

import hashlib
import string
from functools import cache
from pathlib import Path

from digest.errors import UsageError

PROMPT_VERSION = "v4"


def _prompts_dir() -> Path:
    """``prompts/`` of the checkout (also for an editable install), else the copy that an
    installed wheel carries inside the package."""
    package = Path(__file__).resolve().parent.parent  # digest/, from digest/llm/
    checkout = package.parent / "prompts"
    return checkout if checkout.is_dir() else package / "prompt_templates"


PROMPTS_DIR = _prompts_dir()


@cache
def prompt_text(name: str, version: str = PROMPT_VERSION) -> str:
    """A prompt file as it is (``name`` with its suffix, e.g. ``example-assistant.json``)."""
    path = PROMPTS_DIR / version / name
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        raise UsageError(
            f"{path}: prompt file not found; reinstall digest "
            "(pip install --force-reinstall digest-papers)"
        ) from None


def _template(version: str, name: str) -> string.Template:
    return string.Template(prompt_text(f"{name}.md", version))


def render_prompt(name: str, version: str = PROMPT_VERSION, **variables: str) -> str:
    """The template filled in; a missing or unknown variable is an error, never left blank."""
    template = _template(version, name)
    wanted = set(template.get_identifiers())
    missing, unknown = wanted - variables.keys(), variables.keys() - wanted
    if missing or unknown:
        raise ValueError(
            f"prompt {version}/{name}: missing {sorted(missing)}, unknown {sorted(unknown)}"
        )
    return template.substitute(variables)


def fingerprint(version: str = PROMPT_VERSION) -> str:
    """A hash of every file of a prompt version, to notice edits that did not bump it."""
    digest = hashlib.sha256()
    for path in sorted((PROMPTS_DIR / version).iterdir()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def estimate_tokens(text: str) -> int:
    """A tokenizer-free estimate: 4 ASCII characters, or 1 other character (Hangul), a token.

    OpenAI's tokenizers give about 4 characters a token for English and one token or less a
    Hangul syllable, so this errs high; no tokenizer file is needed (none can be fetched here).
    """
    # The characters under 128 are the ASCII ones; counted in C, not one by one in Python
    # (the prompt of a long paper is some 40,000 characters, estimated on every request).
    ascii_chars = len(text.encode("ascii", "ignore"))
    return -(-ascii_chars // 4) + (len(text) - ascii_chars)


# Paper text as a PDF gives it (numbers, symbols, references) tokenizes denser than the prose
# ``estimate_tokens`` assumes: count 3 characters a token, not 4, when fitting it to a context.
_PDF_CHARS_PER_TOKEN = 3


def chars_for_tokens(tokens: int) -> int:
    """How many characters of a paper's text fit in ``tokens``: the inverse of
    ``estimate_tokens`` for PDF text, erring the same way (it keeps the text within the room)."""
    return max(tokens, 0) * _PDF_CHARS_PER_TOKEN
