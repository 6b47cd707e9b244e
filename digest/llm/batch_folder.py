"""What the Batch API transport keeps on disk, in ``DIGEST_CACHE_DIR/batches/``.

- **Records**: one JSON file per batch, saved before the batch is created: its input file,
  each request's ``custom_id`` with a hash of its line, then the batch's id, status and
  counts. A kill at any moment leaves the next run able to find every request it paid for.
- **Answers**: a collected batch's output and error files, saved beside its record with
  every secret masked, read back a bounded line at a time.
- **A run's own files**: its spool and input files and the texts of its subjects, under
  names that carry the run's process and machine, so that two runs (two blogs sharing the
  folder) never write each other's; what a killed run left is removed by the next.
- **The lock**, held while records are read and changed (not while a batch is waited on).

Nothing a server says becomes a path: a server's id names a file only when it is a plain
name, else through its hash; ids, statuses and counts are checked before they are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import IO, Any, Final

from pydantic import BaseModel, ValidationError, field_validator

from digest import redact
from digest.errors import DataFileError, RunStopped, UsageError
from digest.files import atomic_write_text, read_bounded

log = logging.getLogger(__name__)

FINISHED: Final = ("completed", "expired", "failed", "cancelled", "never created")
# The Batch API's limits on one input file (OpenAI's; Gemini's OpenAI-compatible batches take
# the same format).
MAX_REQUESTS = 50_000
MAX_FILE_BYTES = 200 * 1024 * 1024
# The longest output line read: an answer is a few KB (32,000 output tokens would be some
# 300 KB); a line past this is no answer, and is skipped as malformed rather than held.
MAX_ANSWER_LINE_BYTES = 8 * 1024 * 1024
# A record lists its requests' ids and hashes (some 80 bytes each): a file's worth of them is
# some 4 MB. A record file larger than this is no record of ours.
_MAX_RECORD_BYTES = 64 * 1024 * 1024
# What a server hands back is untrusted: an id is printed, saved and sent back in a URL, so it
# is bounded and printable (Gemini's ids hold "/", OpenAI's do not).
_SERVER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./:-]{0,255}")
_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")
_STATUS = re.compile(r"[a-z_ ]{1,40}")
_COUNT_NAMES = ("total", "completed", "failed")
# The input files read back and found to hold none of this folder's requests, kept so that
# they are not downloaded again.
_SEEN_INPUTS = "server-inputs-seen.json"
_SEEN_KEPT = 1000
# A run's own files carry its owner: "<pid>-<random>-<machine>".
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_OWNER = re.compile(r"(?P<pid>\d+)-[0-9a-f]{8}-(?P<host>[0-9a-f]{6})")


class BatchUnavailable(RunStopped):
    """The server has no Batch API (exit 2)."""


class BatchCostTooHigh(UsageError):
    """The batch's estimated cost passes --max-cost: nothing is submitted (exit 2)."""


class BatchSubmitFailed(RunStopped):
    """A batch could not be uploaded, created or downloaded (exit 2)."""


class BatchStateUnwritable(RunStopped):
    """The batches' folder cannot be written (a full disk): the run stops (exit 2); what
    was submitted is recorded, and the next run collects it."""


class BadServerReply(BatchSubmitFailed):
    """The server answered with something that is not what the API gives (an id that is
    not an id): nothing is taken from it (exit 2)."""


def server_id(value: object, what: str) -> str:
    """``value`` when it is an id as a server gives one, else ``BadServerReply``."""
    if isinstance(value, str) and _SERVER_ID.fullmatch(value) and ".." not in value:
        return value
    shown = redact.redact(repr(value)[:60])
    raise BadServerReply(
        f"the server gave a {what} id that is not an id ({shown}); nothing was taken from "
        "it: check OPENAI_BASE_URL, or run again later"
    )


def file_stem(server_given: str) -> str:
    """A local file name's stem for a server's id: the id itself when it is plainly safe
    (OpenAI's "batch_abc"), else a hash of it: no id becomes a path."""
    if _SAFE_STEM.fullmatch(server_given):
        return server_given
    return "h-" + hashlib.sha256(server_given.encode()).hexdigest()[:32]


def sane_status(value: object) -> str:
    return value if isinstance(value, str) and _STATUS.fullmatch(value) else "unknown"


def sane_counts(counts: object) -> dict[str, int]:
    """A batch's ``request_counts`` when they are counts (whole, not negative, no more than
    one file's requests, the parts within the total); else none at all: a count the server
    made up is neither saved nor shown."""
    values = {}
    for name in _COUNT_NAMES:
        value = counts.get(name) if isinstance(counts, dict) else getattr(counts, name, None)
        if type(value) is not int or not 0 <= value <= MAX_REQUESTS:
            return {}
        values[name] = value
    if values["completed"] + values["failed"] > values["total"]:
        return {}
    return values


class BatchRecord(BaseModel):
    """What one batch covers, saved in the folder before the batch is created."""

    input_file_id: str
    batch_id: str | None = None  # None: the create request was sent, its answer not seen
    round: int
    model: str
    submitted_at: dt.datetime
    requests: dict[str, str]  # custom_id → hash of the request's line
    status: str = "submitting"
    counts: dict[str, int] = {}
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: list[str] = []  # why the batch as a whole failed
    collected: bool = False  # its output and error files are saved next to this record

    @field_validator("input_file_id")
    @classmethod
    def _an_input_id(cls, value: str) -> str:
        return _valid_id(value)

    @field_validator("batch_id", "output_file_id", "error_file_id")
    @classmethod
    def _an_id(cls, value: str | None) -> str | None:
        return None if value is None else _valid_id(value)

    @field_validator("status", mode="before")
    @classmethod
    def _a_status(cls, value: object) -> str:
        return sane_status(value)

    @field_validator("counts", mode="before")
    @classmethod
    def _counts(cls, value: object) -> dict[str, int]:
        # A record saved with counts a server made up (an older digest kept them) still reads.
        return sane_counts(value)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def key(self) -> str:
        """The input file's id: known before the batch's, and the same for its whole life."""
        return self.input_file_id


def _valid_id(value: str) -> str:
    try:
        return server_id(value, "saved")
    except BadServerReply as error:
        raise ValueError(str(error)) from None


class Records:
    """The saved batches, indexed by the requests they hold."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._records: dict[str, BatchRecord] = {}  # by the record's key
        self._index: dict[str, list[tuple[str, str]]] = {}  # custom_id → [(hash, record key)]
        self.unreadable: set[Path] = set()  # record files that could not be read
        self.reload()

    def reload(self) -> None:
        """The records as they are on disk now: another backfill sharing the folder may
        have saved some since."""
        self._records.clear()
        self._index.clear()
        for path in sorted(self.folder.glob("*.record.json")):
            record = _read_record(path)
            if record is None:
                if path not in self.unreadable:
                    log.warning(
                        "%s cannot be read; its batch is looked for on the server before "
                        "anything is sent",
                        path,
                    )
                self.unreadable.add(path)
                continue
            self.unreadable.discard(path)
            self._remember(record)

    def _remember(self, record: BatchRecord) -> None:
        self._records[record.key] = record
        for custom_id, body_hash in record.requests.items():
            self._index.setdefault(custom_id, []).append((body_hash, record.key))

    def all(self) -> list[BatchRecord]:
        return sorted(self._records.values(), key=lambda record: record.submitted_at)

    def get(self, key: str) -> BatchRecord:
        return self._records[key]

    def maybe(self, key: str) -> BatchRecord | None:
        return self._records.get(key)

    def find(self, custom_id: str, body_hash: str, *, exclude: set[str]) -> str | None:
        """The saved batch that was sent this very request and has not answered it yet for
        this run, oldest first."""
        for saved_hash, key in self._index.get(custom_id, []):
            if saved_hash == body_hash and key not in exclude and key in self._records:
                return key
        return None

    def save(self, record: BatchRecord) -> None:
        if record.key not in self._records:
            self._remember(record)
        self._records[record.key] = record
        # Every string in it masked: a server's message may echo the key or a URL's password.
        text = redact.redact(record.model_dump_json()) + "\n"
        atomic_write_text(self.record_path(record.key), text)

    def record_path(self, key: str) -> Path:
        return self.folder / f"{file_stem(key)}.record.json"

    def release(self, custom_ids: set[str]) -> None:
        """Take ``custom_ids`` out of every saved batch, so that no later run finds them."""
        touched = {key for custom_id in custom_ids for _, key in self._index.pop(custom_id, [])}
        for key in touched:
            record = self._records.get(key)
            if record is not None:
                for custom_id in custom_ids:
                    record.requests.pop(custom_id, None)
                self.save(record)

    def forget(self, record: BatchRecord) -> None:
        self._records.pop(record.key, None)
        self.record_path(record.key).unlink(missing_ok=True)

    def output_path(self, batch_id: str) -> Path:
        return self.folder / f"{file_stem(batch_id)}.output.jsonl"

    def errors_path(self, batch_id: str) -> Path:
        return self.folder / f"{file_stem(batch_id)}.errors.jsonl"

    def answers(self, batch_id: str) -> Iterator[dict[str, Any]]:
        """The lines of a collected batch's output and error files, one at a time. A line
        that is not a JSON object (too long, nested past what a parser can follow, cut off)
        is skipped, saying so: its request is asked again, and no saved file can block a
        run."""
        for path in (self.output_path(batch_id), self.errors_path(batch_id)):
            if path.is_file():
                yield from _answer_lines(path)


def _answer_lines(path: Path) -> Iterator[dict[str, Any]]:
    skipped = 0
    with path.open("rb") as file:
        for raw in bounded_lines(file, MAX_ANSWER_LINE_BYTES):
            line = json_object(raw) if raw is not None else None
            if line is None:
                skipped += raw is None or bool(raw.strip())
                continue
            yield line
    if skipped:
        log.warning(
            "%s: %d line%s that %s no answer (too long, or not JSON) skipped; their papers "
            "are asked again",
            path.name,
            skipped,
            "" if skipped == 1 else "s",
            "is" if skipped == 1 else "are",
        )


class BatchFolder:
    """The folder of one run: the records, the lock, and this run's own files."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.records = Records(folder)
        # This run's own names in the folder, which other backfills (another blog's, with the
        # same cache folder) may be using at the same time.
        self.run_token = f"{os.getpid()}-{secrets.token_hex(4)}-{_HOST}"
        self.texts = folder / "papers" / self.run_token
        self.texts.mkdir(parents=True, exist_ok=True)

    @property
    def spool(self) -> Path:
        return self.folder / f"spool-{self.run_token}.jsonl"

    def input_file(self, round_number: int, part: int) -> Path:
        return self.folder / f"input-{self.run_token}-round{round_number}-{part}.jsonl"

    def scratch(self, name: str) -> Path:
        """A file of this run's alone, for a download on its way."""
        return self.folder / f"{name}.{self.run_token}.partial"

    # -- The subjects' texts --------------------------------------------------------------

    def keep_text(self, key: str, subject: BaseModel) -> None:
        atomic_write_text(self.texts / f"{key}.json", subject.model_dump_json())

    def text_of(self, key: str) -> bytes:
        return read_bounded(self.texts / f"{key}.json", folder=self.texts)

    def drop_text(self, key: str) -> None:
        (self.texts / f"{key}.json").unlink(missing_ok=True)

    def close(self) -> None:
        """This run's own files, gone."""
        shutil.rmtree(self.texts, ignore_errors=True)
        self.spool.unlink(missing_ok=True)

    # -- The lock -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def exclusive(self, tell: Callable[[str], None]) -> AsyncIterator[Records]:
        """The folder to this run alone, with the records as they are on disk now.

        Two backfills (two blogs) may share a cache folder. Whatever reads the records and
        then submits, or changes a record, holds this lock, so that the second run finds the
        first's batches by their requests and waits on them rather than paying for them
        again. Waiting on a batch holds no lock."""
        with (self.folder / ".lock").open("a") as lock:
            told = False
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if not told:
                        tell(
                            f"waiting for another backfill that is submitting or collecting "
                            f"batches in {self.folder}"
                        )
                        told = True
                    await asyncio.sleep(0.2)
            try:
                self.records.reload()
                yield self.records
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive_now(self) -> Iterator[Records]:
        """The folder's lock, waited for without an event loop (at the end of a run)."""
        with (self.folder / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self.records.reload()
            yield self.records

    # -- What runs leave behind -----------------------------------------------------------

    def seen_inputs(self) -> list[str]:
        path = self.folder / _SEEN_INPUTS
        try:
            seen = json.loads(read_bounded(path, folder=self.folder, max_bytes=1_000_000))
        except (OSError, DataFileError, ValueError, RecursionError):
            return []
        if not isinstance(seen, list):
            return []
        return [item for item in seen if isinstance(item, str)][-_SEEN_KEPT:]

    def save_seen_inputs(self, seen: list[str]) -> None:
        atomic_write_text(self.folder / _SEEN_INPUTS, json.dumps(seen[-_SEEN_KEPT:]) + "\n")

    def remove_leftovers(self) -> None:
        """The spool, input, download and text files of runs on this machine that are gone
        (killed). Each run's own names carry its process id and its machine; a live run's,
        and another machine's sharing the folder, are left alone."""
        candidates = [
            *self.folder.glob("spool-*"),
            *self.folder.glob("input-*"),
            *self.folder.glob("recovered-*"),
            *self.folder.glob("*.partial"),
            *self.folder.glob("*.redacted"),
            *(self.folder / "papers").iterdir(),
        ]
        for path in candidates:
            if not _left_behind(path):
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


def _read_record(path: Path) -> BatchRecord | None:
    """The record in ``path``, or None: not a regular file in the folder (a link out of it, a
    FIFO), too large, or not a record (the JSON parser bounds its own nesting)."""
    try:
        raw = read_bounded(path, folder=path.parent, max_bytes=_MAX_RECORD_BYTES)
        return BatchRecord.model_validate_json(raw)
    except (OSError, DataFileError, ValidationError, ValueError):
        return None


def save_redacted(downloaded: Path, path: Path) -> None:
    """``downloaded`` saved as ``path`` a line at a time with every secret masked: a server
    may echo the key or a URL's password in an error line, and these files are kept."""
    temporary = path.with_name(f"{downloaded.name}.redacted")
    try:
        with downloaded.open("rb") as source, temporary.open("wb") as target:
            for raw in bounded_lines(source, MAX_ANSWER_LINE_BYTES):
                if raw is None:
                    target.write(b"\n")  # too long to be an answer: read as a skipped line
                    continue
                text = raw.decode("utf-8", "replace")
                target.write(redact.redact(text).encode())
            target.flush()
            os.fsync(target.fileno())
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def bounded_lines(file: IO[bytes], cap: int) -> Iterator[bytes | None]:
    """The lines of ``file``; None for each one longer than ``cap`` bytes, which is read past
    in pieces of ``cap``, never held whole."""
    while raw := file.readline(cap + 1):
        if len(raw) <= cap or raw.endswith(b"\n"):
            yield raw
            continue
        while (rest := file.readline(cap + 1)) and not rest.endswith(b"\n"):
            pass
        yield None


def json_object(raw: bytes) -> dict[str, Any] | None:
    """``raw`` as a JSON object, or None: not JSON, not an object, or nested deeper than the
    parser can follow (RecursionError: a hostile line of a thousand "[" is malformed, not a
    crash)."""
    try:
        line = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    return line if isinstance(line, dict) else None


def _left_behind(path: Path) -> bool:
    """Whether ``path`` belongs to a run that is gone: one of this machine whose process is
    no more, or an older digest's (whose names, "spool-round1", carry no owner)."""
    owner = _OWNER.search(path.name)
    if owner is None:
        return True
    if owner["host"] != _HOST:
        return False  # another machine's, sharing the folder: its runs tidy their own
    try:
        os.kill(int(owner["pid"]), 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False  # someone else's process: alive
    return False


def unwritable(error: OSError) -> str:
    where = error.filename or "the batch folder"
    return f"cannot write {where}: {error.strerror or error} (disk full?)"


def describe_records(folder: Path) -> list[BatchRecord]:
    """The saved batches, oldest first (``digest backfill --status``)."""
    return Records(folder).all() if folder.is_dir() else []
