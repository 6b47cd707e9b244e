"""Where outputs live, and writing them so that a crash never leaves half a file.

Layout under the output folder (``outputs`` by default):

- ``data/YYYY-MM-DD.json``: one ``Day``, the source of truth;
- ``_posts/YYYY-MM-DD-daily-papers.md``: the post rendered from it.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from pathlib import Path

from pydantic import ValidationError

from digest.errors import DataFileError
from digest.models import Day
from digest.validation import describe_validation_error

_DATA_NAME = re.compile(r"(\d{4}-\d{2}-\d{2})\.json")


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Readers see either the old file or the new one, never a mix: the rename is atomic on
    POSIX and Windows, and the data is flushed to disk before it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _fsync_directory(directory: Path) -> None:
    # Makes the rename itself durable; not possible (nor needed) on every platform.
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


class OutputStore:
    """The output folder: day files and posts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.posts_dir = root / "_posts"

    def data_path(self, date: dt.date) -> Path:
        return self.data_dir / f"{date.isoformat()}.json"

    def post_path(self, date: dt.date) -> Path:
        return self.posts_dir / f"{date.isoformat()}-daily-papers.md"

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

    def load_day(self, date: dt.date) -> Day:
        path = self.data_path(date)
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise DataFileError(
                path, "no such day file; run 'digest daily' or 'digest import' for that date"
            ) from None
        except OSError as error:
            raise DataFileError(path, f"cannot be read ({error.strerror})") from None
        try:
            day = Day.model_validate_json(raw)
        except ValidationError as error:
            problems = describe_validation_error(error)
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise DataFileError(path, f"invalid day file: {problems[0]}{more}") from None
        if day.date != date:
            raise DataFileError(
                path, f"holds the date {day.date}, not {date}; rename the file or fix its date"
            )
        return day

    def save_day(self, day: Day) -> Path:
        path = self.data_path(day.date)
        atomic_write_text(path, dump_day(day))
        return path


def dump_day(day: Day) -> str:
    """The day file's text: stable key order, UTF-8 (Korean stays readable), one final newline."""
    return day.model_dump_json(indent=2) + "\n"
