"""Where outputs live, and writing them so that a crash never leaves half a file.

Layout under the output folder (``outputs`` by default), each folder movable by a setting:

- ``data/YYYY-MM-DD.json``: one ``Day``, the source of truth (``data_dir``);
- ``_posts/YYYY-MM-DD-daily-papers.md``: the post rendered from it (``posts_dir``);
- ``.digest.lock``: the lock a run holds on the output folder.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from digest.errors import (
    DataFileError,
    LockStolen,
    OutputLocked,
    UsageError,
)
from digest.files import (
    TEMPORARY_PREFIX,
    atomic_write_bytes,
    atomic_write_text,
    parse_json,
    parse_model,
    read_bounded,
    same_content,
    warn_dropped,
)
from digest.models import Day, RunReport

log = logging.getLogger(__name__)

_DATA_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.json")


class OutputStore:
    """The output folder: day files and posts."""

    def __init__(
        self, root: Path, *, posts_dir: Path | None = None, data_dir: Path | None = None
    ) -> None:
        self.root = root
        self.data_dir = data_dir if data_dir is not None else root / "data"
        self.posts_dir = posts_dir if posts_dir is not None else root / "_posts"

    def check_writable(self, cache_dir: Path) -> None:
        """The output folder, the posts' and day files' folders and the cache exist or can be
        made, are folders, and can be written: found out before a request is made or a token
        paid for, not after. Nothing is made here (a day with no papers writes nothing): the
        folder, or the nearest part of its path that exists, must be a writable folder."""
        folders = [
            (self.root, "DIGEST_OUTPUT_DIR"),
            (self.posts_dir, "DIGEST_POSTS_DIR"),
            (self.data_dir, "DIGEST_DATA_DIR"),
            (cache_dir, "DIGEST_CACHE_DIR"),
        ]
        for folder, setting in folders:
            existing = folder
            while not existing.exists() and existing != existing.parent:
                existing = existing.parent
            if not existing.is_dir():
                raise UsageError(
                    f"{existing} is a file, not a folder; move it away or set {setting}"
                )
            if not os.access(existing, os.W_OK | os.X_OK):
                raise UsageError(
                    f"{existing} is not writable; fix its permissions or set {setting}"
                )
        lock = self.root / ".digest.lock"
        if lock.exists() and not lock.is_file():
            raise UsageError(f"{lock} is not a file; remove it (digest keeps its lock there)")

    def remove_stale_temporaries(self, lock: OutputLock) -> list[Path]:
        """The temporary files a killed run left in the folders digest writes (never those of
        other tools: with the output folder at a blog's root, only _posts and the day files'
        folder are looked in), and only those older than ``lock``, which this run holds."""
        age = max(0.0, time.time() - lock.acquired)
        return [
            *remove_stale_temporaries(self.posts_dir, age, recursive=False),
            *remove_stale_temporaries(self.data_dir, age, recursive=False),
        ]

    def data_path(self, date: dt.date) -> Path:
        return self.data_dir / f"{date.isoformat()}.json"

    def post_path(self, date: dt.date) -> Path:
        return self.posts_dir / f"{date.isoformat()}-daily-papers.md"

    def report_path(self, date: dt.date) -> Path:
        """The JSON report of the last run that did something for this day, by its day file."""
        return self.data_dir / f"{date.isoformat()}.run.json"

    def dates(self) -> list[dt.date]:
        """Every date that has a day file, oldest first."""
        if not self.data_dir.is_dir():
            return []
        found = []
        for path in self.data_dir.iterdir():
            match = _DATA_NAME.fullmatch(path.name)
            if match:
                try:
                    found.append(dt.date.fromisoformat(match.group(1)))
                except ValueError:
                    continue
        return sorted(found)

    def load_day(self, date: dt.date, warn: Callable[[str], None] = log.warning) -> Day:
        """The day file of ``date``, read within bounds (``digest.files``); DataFileError says
        what is wrong with it. Figures out of range are read as unknown, and ``warn`` gets one
        line naming them."""
        path = self.data_path(date)
        try:
            raw = read_bounded(path, folder=self.data_dir)
        except FileNotFoundError:
            raise DataFileError(
                path, "no such day file; run 'digest daily' or 'digest import' for that date"
            ) from None
        day, dropped = parse_model(Day, path, raw, "day file")
        if day.date != date:
            raise DataFileError(
                path, f"holds the date {day.date}, not {date}; rename the file or fix its date"
            )
        warn_dropped(path, dropped, warn)
        return day

    def load_report(
        self, date: dt.date, warn: Callable[[str], None] = log.warning
    ) -> RunReport | None:
        """The day's run report, or None when there is none (a day imported, or made before
        run reports existed); read and checked as ``load_day`` reads a day file."""
        path = self.report_path(date)
        try:
            raw = read_bounded(path, folder=self.data_dir)
        except FileNotFoundError:
            return None
        report, dropped = parse_model(RunReport, path, raw, "run report")
        if report.date != date:
            raise DataFileError(path, f"holds the date {report.date}, not {date}")
        warn_dropped(path, dropped, warn)
        return report

    def published_before(self, date: dt.date) -> dict[str, dt.date]:
        """arXiv ID → the earliest earlier day whose file has it.

        Reads only the IDs (plain JSON, no validation): a nightly run over years of day files
        must not pay for validating every one of them.
        """
        published: dict[str, dt.date] = {}
        for day in self.dates():
            if day >= date:
                break
            try:
                ids = self._arxiv_ids(day)
            except DataFileError as error:
                # One broken earlier day must not stop every later night: it publishes
                # nothing, is named once, and is left as it is ('digest render' reports it).
                log.warning("%s; ignored for papers published earlier", error)
                continue
            for arxiv_id in ids:
                if isinstance(arxiv_id, str):
                    published.setdefault(arxiv_id, day)
        return published

    def save_day(self, day: Day) -> Path:
        path = self.data_path(day.date)
        atomic_write_text(path, dump_day(day))
        return path

    def _arxiv_ids(self, date: dt.date) -> list[object]:
        """The ``arxiv_id`` of every paper of a day file, read as plain JSON (no validation),
        within the bounds of every read; DataFileError says what is wrong."""
        path = self.data_path(date)
        try:
            data = parse_json(path, read_bounded(path, folder=self.data_dir), "day file")
        except FileNotFoundError:
            raise DataFileError(path, "no longer there") from None
        papers = data.get("papers") if isinstance(data, dict) else None
        if not isinstance(papers, list):
            raise DataFileError(path, "not a day file: it has no list of papers")
        return [paper.get("arxiv_id") for paper in papers if isinstance(paper, dict)]


def dump_day(day: Day) -> str:
    """The day file's text: stable key order, UTF-8 (Korean stays readable), one final newline."""
    return day.model_dump_json(indent=2) + "\n"


def write_if_changed(path: Path, text: str) -> bool:
    """Write ``text`` atomically unless the file already holds exactly it. True if written."""
    data = text.encode("utf-8")
    # Read within bounds: a FIFO or a link to /dev/zero where the post goes is replaced, not
    # read.
    if same_content(path, data):
        return False
    atomic_write_bytes(path, data)
    return True


# Every temporary file digest makes is named ".digest-tmp.NAME.RANDOM.tmp": a name no other
# tool makes, so that the sweep below can never take another tool's file.


def remove_stale_temporaries(
    folder: Path, older_than: float = 0.0, *, recursive: bool = True
) -> list[Path]:
    """Delete the temporary files a killed run left behind (only ever ours, by their prefix).

    In the output folder call it while holding its lock, so no live writer's file is touched;
    in a cache other runs may share, give ``older_than`` (seconds) to spare files being written.
    """
    removed = []
    if folder.is_dir():
        now = time.time()
        pattern = f"{TEMPORARY_PREFIX}*.tmp"
        for path in folder.rglob(pattern) if recursive else folder.glob(pattern):
            try:
                if now - path.stat().st_mtime >= older_than:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:
                continue
    return removed


class OutputLock:
    """An exclusive lock on the output folder, held by one run at a time.

    ``flock`` is released by the kernel when its holder dies, so a lock left by a killed run is
    simply taken over; the file's text (pid and start time) only serves the message the
    second run prints.
    """

    def __init__(self, folder: Path) -> None:
        self.path = folder / ".digest.lock"
        self._descriptor: int | None = None
        self.acquired = 0.0

    def __enter__(self) -> OutputLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise DataFileError(
                self.path,
                f"the lock cannot be made ({error.strerror}); make {self.path.parent} a folder "
                "you can write to, or set DIGEST_OUTPUT_DIR",
            ) from None
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(descriptor, 200).decode("utf-8", "replace").strip() or "unknown"
            os.close(descriptor)
            raise OutputLocked(
                f"{self.path.parent} is locked by another digest run ({holder}); "
                "wait for it to finish"
            ) from None
        started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"pid {os.getpid()}, started {started}\n".encode(), 0)
        self._descriptor = descriptor
        self.acquired = time.time()  # temporary files older than this are a dead run's
        return self

    def check_held(self) -> None:
        """Raise LockStolen unless the lock file on disk is still the one this run holds (a
        deleted or replaced lock file lets a second run in, and two runs must never write the
        same day file)."""
        if self._descriptor is None:
            raise LockStolen(f"{self.path} is not held by this run")
        held = os.fstat(self._descriptor)
        try:
            now = os.stat(self.path)
        except FileNotFoundError:
            now = None
        if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
            raise LockStolen(
                f"the lock {self.path} was removed or replaced during this run, so another run "
                "may be writing this folder; nothing was written to the day file, and the "
                "digests made are in the cache for the next run"
            )

    def __exit__(self, *exc_info: object) -> None:
        if self._descriptor is not None:
            os.ftruncate(self._descriptor, 0)
            os.close(self._descriptor)  # closing releases the flock
            self._descriptor = None
