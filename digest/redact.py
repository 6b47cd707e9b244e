"""Secrets never reach a message or a file: the API key, and credentials in a URL.

A server may echo the key back (OpenAI's 401 names the key it was given), and a base URL may
carry ``user:password@``. Every line digest prints and every report it writes goes through
``redact``; the secrets are registered once, when the settings are read.
"""

from __future__ import annotations

import re

_SECRETS: set[str] = set()
# "scheme://user:password@host": the part before "@" is a credential.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s]+@")
_SHORTEST_SECRET = 6  # shorter values (a local server's "x") are no secret and too common


def register(secret: str | None) -> None:
    if secret and len(secret) >= _SHORTEST_SECRET:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret masked (its last 4 characters kept, to tell keys
    apart) and URL credentials replaced by ``***``."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, f"***{secret[-4:]}")
    return _URL_CREDENTIALS.sub("***@", text)
