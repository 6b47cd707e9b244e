"""Secrets never reach a message or a file: the API key, and credentials in a URL.

A server may echo the key back (OpenAI's 401 names the key it was given), and a base URL may
carry ``user:password@``. The secrets are registered once, when the settings are read, and
masked at each sink rather than at each message, so that a new message cannot forget it:

- the terminal: digest's consoles write through ``redacting_stream``, and the ``digest``
  command puts the process's own stdout and stderr behind it too (``protect_std_streams``),
  which covers tracebacks, other libraries' log lines and warnings;
- ``--debug`` tracebacks: ``format_traceback``;
- files: the run report and batch records (``redact`` on their JSON text, which stays valid
  JSON), the raw answer files a batch saves (``redact`` on each line), and the provenance
  strings of day files and the digest cache (masked as the model is dumped).
"""

from __future__ import annotations

import re
import sys
import threading
import traceback
from collections.abc import Callable
from typing import TextIO, cast
from urllib.parse import unquote

_SECRETS: set[str] = set()
# "scheme://user:password@host": the part before "@" is a credential. Quotes, backslashes and
# blanks end it, so that a match never leaves one JSON string: ``redact`` keeps JSON valid.
_URL_CREDENTIALS = re.compile(r"(?<=://)[^/@\s\"'<>\\]+@")
_SHORTEST_SECRET = 6  # shorter values (a local server's "x") are no secret and too common
# A key keeps its last 4 characters when masked, to tell keys apart; a shorter secret (a URL's
# password) would be given away by them.
_SHOWN_TAIL_FROM = 20


def register(secret: str | None) -> None:
    """Mask ``secret`` from now on, as written and percent-decoded (a URL's password is
    written encoded, and a server may echo it decoded)."""
    if not secret:
        return
    for form in (secret, unquote(secret)):
        if len(form) >= _SHORTEST_SECRET:
            _SECRETS.add(form)


def redact(text: str) -> str:
    """``text`` with every registered secret masked (a key's last 4 characters kept, to tell
    keys apart) and URL credentials replaced by ``***``.

    Masking stays inside a JSON string (a secret gives way to "***" and characters of its
    own, a URL's credentials end at a quote), so the text of a JSON document stays valid
    JSON: a whole file's text, or each line of a JSONL file, can be redacted as it is
    written."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            tail = secret[-4:] if len(secret) >= _SHOWN_TAIL_FROM else ""
            text = text.replace(secret, f"***{tail}")
    return _URL_CREDENTIALS.sub("***@", text)


def format_traceback(error: BaseException) -> str:
    """The traceback Python would print for ``error`` (its causes included), redacted: the
    messages in it are servers' too."""
    return redact("".join(traceback.format_exception(error)))


class _RedactingStream:
    """A text stream that redacts what is written to it, a line at a time (a traceback or a
    log line is written in pieces), before passing it on to ``target``: a stream, or a
    function giving the stream of the moment (``sys.stdout`` is replaced under a test
    runner). What is not a whole line yet is passed on when the stream is flushed, as a
    terminal's own line buffering does."""

    def __init__(self, target: TextIO | Callable[[], TextIO]) -> None:
        self._target = target
        self._pending = ""
        self._lock = threading.Lock()  # rich refreshes its progress bars from a thread

    @property
    def target(self) -> TextIO:
        target = self._target() if callable(self._target) else self._target
        # While rich's progress bars run, sys.stdout and sys.stderr are rich's proxies, which
        # print what they get through the console; a console writing to one would write to
        # itself. Past the proxy, as rich's own consoles go.
        proxied: TextIO = getattr(target, "rich_proxied_file", target)
        return proxied

    def write(self, text: str) -> int:
        with self._lock:
            self._pending += text
            end = self._pending.rfind("\n") + 1
            if end:
                whole, self._pending = self._pending[:end], self._pending[end:]
                self.target.write(redact(whole))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        with self._lock:
            if self._pending:
                part, self._pending = self._pending, ""
                self.target.write(redact(part))
        self.target.flush()

    def isatty(self) -> bool:
        return self.target.isatty()

    def fileno(self) -> int:
        return self.target.fileno()

    def __getattr__(self, name: str) -> object:
        # rich writes to a stream's ``rich_proxied_file`` instead when it has one (its own
        # proxy of sys.stdout while progress bars run): never hand out a way around this one.
        if name.startswith("rich_"):
            raise AttributeError(name)
        return getattr(self.target, name)


def redacting_stream(target: TextIO | Callable[[], TextIO]) -> TextIO:
    """``target`` behind a stream that redacts every line written to it."""
    # Duck-typed: it has what print, logging, tracebacks and rich use of a text stream (and
    # passes the rest on), which is not all of typing.TextIO's abstract interface.
    return cast(TextIO, _RedactingStream(target))


def protect_std_streams() -> None:
    """Put the process's stdout and stderr behind ``redacting_stream``, once: whatever prints
    there (a crash's traceback, another library's warning) is redacted too. A stream that
    is None (no console at all) stays so."""
    if sys.stdout is not None and not isinstance(sys.stdout, _RedactingStream):
        sys.stdout = redacting_stream(sys.stdout)
    if sys.stderr is not None and not isinstance(sys.stderr, _RedactingStream):
        sys.stderr = redacting_stream(sys.stderr)
