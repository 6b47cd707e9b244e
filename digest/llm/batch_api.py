"""The Files and Batch APIs, as the batch transport (``digest.llm.batch``) uses them: upload an
input file, create a batch, look at it, collect its answers, and find batches whose record
was lost. Every call is retried as the server's other requests are (``LlmServer.policy``);
every id, status and count the server gives is checked (``digest.llm.batch_folder``) before it
is kept.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Container
from pathlib import Path
from typing import Final, TypeVar

import openai

from digest import redact
from digest.errors import LLMConfigError
from digest.llm.batch_folder import (
    MAX_FILE_BYTES,
    BadServerReply,
    BatchFolder,
    BatchRecord,
    BatchSubmitFailed,
    BatchUnavailable,
    bounded_lines,
    json_object,
    sane_counts,
    sane_status,
    save_redacted,
    server_id,
)
from digest.llm.server import LlmServer, key_refused
from digest.net import one_line

log = logging.getLogger(__name__)
T = TypeVar("T")

ENDPOINT: Final = "/v1/chat/completions"
_RECENT_BATCHES = 100  # looked at for batches no record describes
_KINDS = {"output_file_id": "output file", "error_file_id": "error file"}


class FileGone(Exception):
    """A batch's output or error file the server answers 404 for."""


def request_line(custom_id: str, body: bytes) -> bytes:
    """One line of an input file: ``body`` as ``LlmServer.encode`` wrote it (the very bytes
    an interactive request posts), under its ``custom_id``."""
    key = json.dumps(custom_id, ensure_ascii=False)
    head = f'{{"custom_id":{key},"method":"POST","url":"{ENDPOINT}","body":'
    return head.encode() + body + b"}\n"


def line_hash(line: bytes) -> str:
    """The hash a record keeps of a request's line: the same request, the same line."""
    return hashlib.sha256(line).hexdigest()[:24]


class BatchApi:
    """The server's Files and Batch APIs for one run, and the records they change."""

    def __init__(self, server: LlmServer, folder: BatchFolder, tell: Callable[[str], None]) -> None:
        assert server.client is not None
        self.server = server
        self.client = server.client
        self.folder = folder
        self.tell = tell
        # The server's latest batches, listed by check_available: recover looks through this
        # page rather than asking again. A batch made since (by another run on this folder)
        # has its record on disk, and recover only looks for batches no record describes.
        self._recent: list[openai.types.Batch] | None = None

    async def _call(self, function: Callable[[], Awaitable[T]]) -> T:
        """A Batch or Files API request, retried as the LLM's are (429, 5xx, connections)."""
        return await self.server.policy.call(function, sleep=self.server.sleep)

    def _unavailable(self, api: str, path: str) -> BatchUnavailable:
        return BatchUnavailable(
            f"{self.server.where} has no {api} (HTTP 404 on {path}); run 'digest backfill' "
            "without --batch"
        )

    async def check_available(self) -> None:
        """One request that a server without a Batch API answers 404, before any paper is
        read: ``BatchUnavailable`` then. The batches it lists are those ``recover`` looks
        through, so that a run lists them once."""
        try:
            page = await self._call(lambda: self.client.batches.list(limit=_RECENT_BATCHES))
        except openai.NotFoundError:
            raise self._unavailable("Batch API", "/v1/batches") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as error:
            raise LLMConfigError(key_refused(error.status_code, one_line(error.message))) from None
        self._recent = page.data

    # -- Submitting -----------------------------------------------------------------------

    async def upload(self, path: Path) -> str:
        async def upload() -> str:
            with path.open("rb") as file:
                # An open file streams: the SDK would read a path whole into memory.
                uploaded = await self.client.files.create(file=(path.name, file), purpose="batch")
            return server_id(uploaded.id, "file")

        try:
            return await self._call(upload)
        except openai.NotFoundError:
            raise self._unavailable("Files API", "/v1/files") from None
        except (openai.APIError, OSError) as error:
            raise BatchSubmitFailed(
                f"could not upload the batch input file {path.name}: {one_line(str(error))}; "
                "run again later (nothing was submitted)"
            ) from None

    async def create(self, file_id: str) -> openai.types.Batch:
        try:
            batch = await self._call(
                lambda: self.client.batches.create(
                    input_file_id=file_id,
                    endpoint=ENDPOINT,
                    completion_window="24h",
                    # What marks a batch as digest's when no record describes it (see
                    # recover): its input file is then read back to know its requests.
                    metadata={"digest_input_file": file_id},
                )
            )
        except openai.NotFoundError:
            raise self._unavailable("Batch API", "/v1/batches") from None
        except openai.APIError as error:
            raise BatchSubmitFailed(
                f"could not create the batch for {file_id}: {one_line(str(error))}; run again "
                "later (the next run looks for it before it submits anything)"
            ) from None
        server_id(batch.id, "batch")
        return batch

    # -- Looking --------------------------------------------------------------------------

    async def look(self, record: BatchRecord) -> BatchRecord:
        """``record``'s batch as the server has it now; the record saved with it."""
        if record.batch_id is None:
            await self._adopt(record)
            if record.batch_id is None:
                return record  # never created, or the server could not be asked: next look
        batch_id = record.batch_id
        try:
            batch = await self._call(lambda: self.client.batches.retrieve(batch_id))
        except openai.NotFoundError:
            record.status, record.errors = "failed", ["the server no longer knows this batch"]
            self.folder.records.save(record)
            return record
        except openai.APIError as error:
            log.warning("could not look at batch %s: %s", batch_id, one_line(str(error)))
            return record
        take_batch(record, batch)
        self.folder.records.save(record)
        counts = record.counts
        answered = (
            f", {counts['completed']} of {counts['total']} answered, {counts['failed']} failed"
            if counts
            else ""
        )
        self.tell(f"batch {batch_id}: {record.status}{answered}")
        return record

    async def _adopt(self, record: BatchRecord) -> None:
        """A record whose create request was sent but whose answer was never seen (a kill at
        that moment): the batch is looked for among the server's latest by the input file it
        names; without one, nothing was submitted and the requests are free to go again."""
        try:
            page = await self._call(lambda: self.client.batches.list(limit=100))
        except openai.APIError:
            return
        for batch in page.data:
            if batch.input_file_id != record.input_file_id:
                continue
            try:
                record.batch_id = server_id(batch.id, "batch")
            except BadServerReply:
                continue
            record.status = sane_status(batch.status)
            self.folder.records.save(record)
            return
        record.status = "never created"
        self.folder.records.forget(record)

    # -- Collecting -----------------------------------------------------------------------

    async def collect(self, record: BatchRecord) -> None:
        """Save a finished batch's output and error files next to its record, once.

        A file the server no longer has (404) is not asked for forever: the batch is looked
        at once more (its file ids may have changed), and a file still missing is noted on
        the record, which is then collected as it is: the requests whose answers were in it
        are sent again."""
        if record.collected or record.batch_id is None:
            return
        for kind in _KINDS:
            await self._collect_file(record, kind)
        record.collected = True
        self.folder.records.save(record)

    async def _collect_file(self, record: BatchRecord, kind: str) -> None:
        assert record.batch_id is not None
        records = self.folder.records
        if kind == "output_file_id":
            path = records.output_path(record.batch_id)
        else:
            path = records.errors_path(record.batch_id)
        for look_again in (True, False):
            file_id = getattr(record, kind)
            if file_id is None:
                return
            try:
                await self._download(file_id, path)
                return
            except FileGone:
                if look_again:
                    await self.look(record)
        record.errors = [
            *record.errors,
            f"its {_KINDS[kind]} {getattr(record, kind)} is gone from the server (HTTP 404); "
            "the requests it answered are sent again",
        ][-5:]
        setattr(record, kind, None)

    async def _download(self, file_id: str, path: Path) -> None:
        async def download() -> None:
            # A name of this run's own: another backfill sharing the folder may be saving the
            # same file.
            partial = self.folder.scratch(path.name)
            try:
                response = self.client.files.with_streaming_response.content(file_id)
                async with response as streamed:
                    with partial.open("wb") as file:
                        async for chunk in streamed.iter_bytes():
                            file.write(chunk)
                save_redacted(partial, path)
            finally:
                partial.unlink(missing_ok=True)

        try:
            await self._call(download)
        except openai.NotFoundError:
            raise FileGone() from None
        except openai.APIError as error:
            raise BatchSubmitFailed(
                f"could not download {file_id}: {one_line(str(error))}; run again later "
                "(the batch's answers stay on the server for 30 days)"
            ) from None

    # -- Batches no record describes ------------------------------------------------------

    async def recover(self, waiting: Container[str]) -> bool:
        """The server's latest batches that digest made (their metadata names their input
        file) and that no record here describes, because a record was deleted or cannot be
        read, read back from their input files and recorded again when they hold requests of
        ``waiting``, so that those are waited on, not paid for twice. Whether any was. An
        input file read back and found to be another folder's (another blog's, with the same
        key) is noted, and not read again."""
        records = self.folder.records
        try:
            recent = self._recent
            if recent is None:
                page = await self._call(lambda: self.client.batches.list(limit=_RECENT_BATCHES))
                recent = page.data
        except openai.APIError as error:
            if records.unreadable:
                names = ", ".join(sorted(path.name for path in records.unreadable))
                self.tell(
                    f"cannot look for the batches of unreadable records ({names}) on the "
                    f"server ({one_line(str(error))}): the requests they covered are sent "
                    "again, and paid for again"
                )
            return False
        seen = self.folder.seen_inputs()
        found = 0
        for batch in recent:
            found += await self._recovered(batch, seen, waiting)
        self.folder.save_seen_inputs(seen)
        if found:
            self.tell(
                f"{found} batch{'' if found == 1 else 'es'} on the server had no readable "
                f"record in {self.folder.folder}; read back from "
                f"{'its' if found == 1 else 'their'} input file, so that no request in it is "
                "paid for again"
            )
        return found > 0

    async def _recovered(
        self, batch: openai.types.Batch, seen: list[str], waiting: Container[str]
    ) -> bool:
        if "digest_input_file" not in (batch.metadata or {}):
            return False
        try:
            batch_id = server_id(batch.id, "batch")
            input_file = server_id(batch.input_file_id, "file")
        except BadServerReply:
            return False
        known = self.folder.records.maybe(input_file) is not None or input_file in seen
        if known or sane_status(batch.status) in ("failed", "cancelled"):
            return False
        requests = await self._requests_in(input_file)
        if not any(key in waiting for key in requests):
            seen.append(input_file)  # none of ours: not read again
            return False
        record = BatchRecord(
            input_file_id=input_file,
            batch_id=batch_id,
            round=0,
            model=self.server.options.model,
            submitted_at=dt.datetime.fromtimestamp(_timestamp(batch.created_at), dt.UTC),
            requests=requests,
        )
        take_batch(record, batch)
        self.folder.records.save(record)
        return True

    async def _requests_in(self, file_id: str) -> dict[str, str]:
        """custom_id → line hash of each request of an input file we uploaded, read back
        from the server (at most one file's worth, a line at a time)."""
        path = self.folder.scratch(f"recovered-{file_id[-12:]}")
        requests: dict[str, str] = {}
        try:
            response = self.client.files.with_streaming_response.content(file_id)
            async with response as streamed:
                with path.open("wb") as file:
                    async for chunk in streamed.iter_bytes():
                        if file.tell() + len(chunk) > MAX_FILE_BYTES:
                            return {}
                        file.write(chunk)
            with path.open("rb") as file:
                for raw in bounded_lines(file, MAX_FILE_BYTES):
                    line = json_object(raw) if raw else None
                    custom_id = line.get("custom_id") if line else None
                    if isinstance(custom_id, str) and raw is not None:
                        requests[custom_id] = line_hash(raw)
        except openai.APIError as error:
            log.warning("could not read back %s: %s", file_id, one_line(str(error)))
            return {}
        finally:
            path.unlink(missing_ok=True)
        return requests


def take_batch(record: BatchRecord, batch: openai.types.Batch) -> None:
    """What the server says of ``record``'s batch, each field checked: a status it made up
    is "unknown" (unfinished, looked at again within the run's bounds), counts that are not
    counts are dropped, a file id that is not an id is no file."""
    record.status = sane_status(batch.status)
    record.counts = sane_counts(batch.request_counts)
    for field in _KINDS:
        given = getattr(batch, field)
        try:
            setattr(record, field, None if given is None else server_id(given, "file"))
        except BadServerReply as error:
            setattr(record, field, None)
            record.errors = [*record.errors, str(error)][-5:]
    if batch.errors and batch.errors.data:
        # Saved and shown: a server may echo the key or a URL's password in a message.
        record.errors = [
            redact.redact(
                one_line(
                    f"{e.code or 'error'}: {e.message or ''}"
                    + (f" (line {e.line})" if e.line else "")
                )[:500]
            )
            for e in batch.errors.data[:5]
        ]


def _timestamp(value: object) -> float:
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
    return float(number) if math.isfinite(number) and 0 <= number < 2**33 else 0.0
