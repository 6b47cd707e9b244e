"""Reading a file digest did not just write, within bounds.

Day files, run reports, cached digests, imported posts and the settings file can come from
anywhere: a pull request adds them, a hand edit breaks them. ``render --check`` runs on such a
pull request in the blog's CI, so every read here is bounded:

- regular files only: a FIFO would block the read forever and a device (``/dev/zero``) never
  ends, so the file is opened without blocking and checked before a byte is read;
- no link out of its folder (a link in a pull request could show a file of the CI machine in an
  error message), when the caller names the folder;
- at most ``MAX_BYTES`` (a day file is a few hundred kilobytes): a larger file is refused by
  its size, and no more than that is ever read;
- JSON parsed by pydantic's parser, whose depth limit is its own and never Python's recursion;
- figures checked finite and in range by the models (``digest.models``), each bad one named.

Every problem is a ``DataFileError`` (exit 2) naming the file; a file that does not exist
raises ``FileNotFoundError``, since what that means is the caller's to say.

Writing is the other half: ``atomic_write_bytes`` and ``atomic_write_text`` replace a file
through a temporary one and a rename, so that a crash never leaves half a file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import TypeVar

import pydantic_core
from pydantic import BaseModel, ValidationError

from digest.errors import DataFileError
from digest.validation import describe_validation_error

# The most digest reads of one file. A day file of 30 papers is under 200 kB and a post less;
# a file a hundred times larger than any real one is no day file. Read at each call, so that a
# test can lower it instead of writing a file this large.
MAX_BYTES = 20_000_000

_CHUNK = 1 << 20
_FILE_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)

Model = TypeVar("Model", bound=BaseModel)


def size_text(limit: int) -> str:
    """``20 MB`` for the default cap, the exact byte count for any other."""
    return f"{limit // 1_000_000} MB" if limit % 1_000_000 == 0 else f"{limit:,} bytes"


def read_bounded(path: Path, *, folder: Path | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of ``path``, a regular file of at most ``max_bytes`` (``MAX_BYTES``).

    With ``folder``, a link is followed only to a file inside ``folder``: the files digest
    finds there itself (day files, run reports, cached digests). Without it (a file the user
    named on the command line) a link is followed anywhere, to a regular file still.
    """
    limit = MAX_BYTES if max_bytes is None else max_bytes
    target, flags = path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    if folder is not None:
        target = _inside(path, folder)
        flags |= os.O_NOFOLLOW  # resolved above: a link put there since is refused, not followed
    try:
        descriptor = os.open(target, flags)
    except FileNotFoundError:
        raise  # what a missing file means is the caller's to say
    except OSError as error:
        raise DataFileError(path, f"cannot be read ({error.strerror or error})") from None
    try:
        return _read_regular(path, descriptor, limit)
    finally:
        os.close(descriptor)


def _inside(path: Path, folder: Path) -> Path:
    """``path`` with its links resolved, when that is inside ``folder``."""
    if not path.is_symlink():
        return path
    target = path.resolve()
    if not target.is_relative_to(folder.resolve()):
        raise DataFileError(
            path,
            f"a link to {target}, outside {folder}; digest follows no link out of the folder: "
            "put the file itself there",
        )
    return target


def _read_regular(path: Path, descriptor: int, limit: int) -> bytes:
    status = os.fstat(descriptor)
    for test, kind in _FILE_KINDS:
        if test(status.st_mode):
            raise DataFileError(
                path, f"not a regular file ({kind}); digest reads only regular files: remove it"
            )
    if not stat.S_ISREG(status.st_mode):
        raise DataFileError(path, "not a regular file; digest reads only regular files: remove it")
    too_large = DataFileError(
        path, f"larger than {size_text(limit)}, more than digest reads of a file: fix or remove it"
    )
    if status.st_size > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while size <= limit:  # a file that grows past the cap while it is read is cut off, not read
        try:
            chunk = os.read(descriptor, min(_CHUNK, limit + 1 - size))
        except OSError as error:
            raise DataFileError(path, f"cannot be read ({error.strerror or error})") from None
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise too_large


def same_content(path: Path, data: bytes) -> bool | None:
    """Whether ``path`` holds exactly ``data``: None when there is no such file. Reads at most
    one byte more than ``data``; a file that is not a regular file in its folder (a FIFO, a link
    out of the folder) or cannot be read holds something else, and is simply replaced."""
    try:
        current = read_bounded(path, folder=path.parent, max_bytes=len(data) + 1)
    except FileNotFoundError:
        return None
    except DataFileError:
        return False
    return current == data


def parse_json(path: Path, raw: bytes, what: str) -> object:
    """Plain JSON, with no model: for a quick look at many files. Nesting past the parser's
    limit (a few hundred levels) is an error like any other malformed JSON."""
    try:
        return pydantic_core.from_json(raw)
    except ValueError as error:
        raise DataFileError(path, _json_problem(str(error), what)) from None


def parse_model(model: type[Model], path: Path, raw: bytes, what: str) -> tuple[Model, list[str]]:
    """``raw`` validated as ``model``, and the figures that were out of range (read as
    unknown, see ``digest.models.figure``), each as ``name value``."""
    dropped: list[str] = []
    try:
        return model.model_validate_json(raw, context={"dropped": dropped}), dropped
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        if first["type"] == "json_invalid":
            message = first["msg"].removeprefix("Invalid JSON: ")
            raise DataFileError(path, _json_problem(message, what, f"invalid {what}: ")) from None
        problems = describe_validation_error(error)
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise DataFileError(path, f"invalid {what}: {problems[0]}{more}") from None


def _json_problem(message: str, what: str, invalid: str = "") -> str:
    # pydantic's parser stops at its own depth limit, and says so in its message.
    if "recursion limit" in message:
        return f"nested too deeply to be a {what}"
    return f"{invalid}not valid JSON ({message})"


def dropped_figures(path: Path, dropped: list[str]) -> str | None:
    """The one line that names a file's figures read as unknown; None when there were none."""
    if not dropped:
        return None
    shown = ", ".join(dropped[:3]) + (f" and {len(dropped) - 3} more" if len(dropped) > 3 else "")
    if len(dropped) == 1:
        return (
            f"{path}: {shown} is not a finite, non-negative figure in range; read as unknown: "
            "correct it in the file or set it to null"
        )
    return (
        f"{path}: {shown} are not finite, non-negative figures in range; read as unknown: "
        "correct them in the file or set them to null"
    )


# Temporary files of atomic writes carry this prefix: a run that finds one a crashed run left
# behind removes it (``digest.blog.store.remove_stale_temporaries``).
TEMPORARY_PREFIX = ".digest-tmp."


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename.

    Readers see either the old file or the new one, never a mix: the rename is atomic on
    POSIX and Windows, and the data is flushed to disk before it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TEMPORARY_PREFIX}{path.name}.", suffix=".tmp"
    )
    try:
        # mkstemp makes the file readable by its owner only; a post must stay readable by the
        # web server or the site build, as any file written the ordinary way would be.
        os.chmod(temporary, _mode_for(path))
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _mode_for(path: Path) -> int:
    """The permissions of the file being replaced, or those a new file gets (0o666 less the
    umask). Only a regular file's are kept: a link's target or a FIFO in the file's place (a
    link to /dev/zero is 0o666) says nothing about what the file should be."""
    try:
        status = path.lstat()
    except OSError:
        status = None
    if status is not None and stat.S_ISREG(status.st_mode):
        return status.st_mode & 0o7777
    return 0o666 & ~_umask()


@cache
def _umask() -> int:
    # The only way to read the umask is to set it; done once, and set straight back.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


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


def warn_dropped(path: Path, dropped: list[str], warn: Callable[[str], None]) -> None:
    """Name ``path`` once, through ``warn``, when figures of it were read as unknown."""
    line = dropped_figures(path, dropped)
    if line is not None:
        warn(line)
