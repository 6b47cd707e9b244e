"""What Liquid 4 (Jekyll 3.10, GitHub Pages) does to a post, for the raw-block checks.

Only the raw tag is allowed: any other tag or output outside a raw block means Liquid would
interpret the post's text. The tokenizer and the raw tag's parser follow Liquid 4's Ruby code
(``Liquid::Tokenizer`` and ``Liquid::Raw#parse``) regex for regex, quirks included: a token
like ``{%{% if %}`` inside a raw block contributes its prefix twice.
"""

from __future__ import annotations

import re

_TEMPLATE_PARSER = re.compile(r"(\{%.*?%\}|\{\{.*?\}\}?|\{\{|\{%)", re.DOTALL)
_FULL_TOKEN = re.compile(r"\A\{%-?\s*(\w+)\s*(.*?)-?%\}\Z", re.DOTALL)
_RAW_TOKEN = re.compile(r"\A(.*)\{%\s*(\w+)\s*(.*)?%\}\Z", re.DOTALL)


class LiquidInterpreted(AssertionError):
    """The post contains Liquid that Jekyll would execute (or fail on)."""


def tokenize(source: str) -> list[str]:
    tokens = _TEMPLATE_PARSER.split(source)
    return [token for token in tokens if token != ""]


def render(source: str) -> str:
    """The text Liquid outputs for ``source``; raises if anything but raw blocks is Liquid."""
    tokens = tokenize(source)
    output: list[str] = []
    while tokens:
        token = tokens.pop(0)
        if token.startswith("{%"):
            full = _FULL_TOKEN.match(token)
            if not full or full.group(1) != "raw" or full.group(2).strip():
                raise LiquidInterpreted(f"Liquid tag outside a raw block: {token!r}")
            output.append(_raw_body(tokens))
        elif token.startswith("{{"):
            raise LiquidInterpreted(f"Liquid output outside a raw block: {token!r}")
        else:
            output.append(token)
    return "".join(output)


def _raw_body(tokens: list[str]) -> str:
    body: list[str] = []
    while tokens:
        token = tokens.pop(0)
        match = _RAW_TOKEN.match(token)
        if match:
            if match.group(1):
                body.append(match.group(1))
            if match.group(2) == "endraw":
                return "".join(body)
        body.append(token)
    raise LiquidInterpreted("raw block never closed")
