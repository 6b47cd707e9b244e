"""Reading and writing files strictly inside one folder, whatever symbolic links it holds.

A blog is often a clone of a repository, and git stores symbolic links: a ``.github`` or
``_posts`` that points at another folder would have ``digest init`` write there. So each path
is resolved first and must stay inside the folder (a link that stays inside is followed:
its target is where the file goes), and a link that leads out is refused before anything is
written. The writes then walk the resolved path one folder at a time from an open descriptor
of the blog, never following a link (``O_NOFOLLOW``): a link swapped in after the check is
refused, not followed. Replacing a file is a rename, which replaces a link at the last step
rather than writing through it.

``digest.files.atomic_write_bytes`` follows links in the folders above the file, which is
right for the output folder a user names; here the folders are the blog's own, hence this.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from contextlib import suppress
from pathlib import Path, PurePosixPath

from digest.errors import UsageError
from digest.files import TEMPORARY_PREFIX

_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO to read would otherwise wait for a writer, forever.
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class Confined:
    """The folder ``shown`` (as the user named it), its files addressed by their real path
    inside it: a tuple of names, as ``locate`` gives it."""

    def __init__(self, shown: Path) -> None:
        self.shown = shown
        self.root = shown.resolve()

    def locate(self, relative: str, *, folder: bool) -> tuple[str, ...]:
        """Where ``relative`` really is inside the blog, following links that stay inside.

        Raises UsageError naming the first link on the way that leads out of the blog (or
        loops), or a file where a folder must be."""
        parts = PurePosixPath(relative).parts
        real = self.root
        for index in range(len(parts)):
            here = self.root.joinpath(*parts[: index + 1])
            shown = self.shown.joinpath(*parts[: index + 1])
            is_folder = folder or index < len(parts) - 1
            kind = "folder" if is_folder else "file"
            try:
                real = here.resolve()
                # A loop of links: resolving stops on a link (Python 3.13), or raises.
                looped = real.is_symlink()
            except (OSError, RuntimeError):
                looped = True
            if looped:
                raise UsageError(
                    f"{shown} is a symlink that never ends in a {kind}; replace it with a "
                    f"real {kind} inside the blog and run digest init again"
                )
            if not real.is_relative_to(self.root):
                raise UsageError(
                    f"{shown} is a symlink to {real}, outside the blog {self.shown}; digest "
                    f"init writes only inside the blog: replace the link with a real {kind} "
                    "and run digest init again"
                )
            if is_folder and real.exists() and not real.is_dir():
                raise UsageError(
                    f"{shown} is a file, not a folder; move it away and run digest init again"
                )
        return real.relative_to(self.root).parts

    def exists(self, parts: tuple[str, ...]) -> bool:
        return os.path.lexists(self.root.joinpath(*parts))

    def shown_path(self, parts: tuple[str, ...]) -> Path:
        return self.shown.joinpath(*parts)

    def make_folder(self, parts: tuple[str, ...]) -> None:
        os.close(self._open_folder(parts, make=True))

    def read(self, parts: tuple[str, ...], limit: int) -> bytes:
        """At most ``limit`` + 1 bytes of a regular file (so that a caller can tell one that is
        longer); never a FIFO, a device or a link."""
        folder = self._open_folder(parts[:-1], make=False)
        try:
            descriptor = self._open_in(folder, parts, _READ_FLAGS)
        finally:
            os.close(folder)
        with os.fdopen(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise UsageError(
                    f"{self.shown_path(parts)} is not a regular file; move it away and run "
                    "digest init again"
                )
            return handle.read(limit + 1)

    def write(self, parts: tuple[str, ...], data: bytes) -> None:
        """Replace (or make) the file through a temporary file and a rename, as
        ``digest.files.atomic_write_bytes`` does; a file that is replaced keeps its mode."""
        folder = self._open_folder(parts[:-1], make=True)
        try:
            _replace_in(folder, parts[-1], data)
        finally:
            os.close(folder)

    def _open_folder(self, parts: tuple[str, ...], *, make: bool) -> int:
        """A descriptor of the folder ``parts`` (made where missing), reached without following
        a single link: ``locate`` resolved them all, so a link here was put there since."""
        if make:
            self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for index, name in enumerate(parts):
                if make:
                    with suppress(FileExistsError):
                        os.mkdir(name, dir_fd=descriptor)
                inner = self._open_in(descriptor, parts[: index + 1], _FOLDER_FLAGS)
                os.close(descriptor)
                descriptor = inner
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def _open_in(self, folder: int, parts: tuple[str, ...], flags: int) -> int:
        try:
            return os.open(parts[-1], flags, dir_fd=folder)
        except OSError as error:
            if error.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
        raise UsageError(
            f"{self.shown_path(parts)} became a symlink or a file while digest init ran; "
            "check it and run digest init again"
        )


def _replace_in(folder: int, name: str, data: bytes) -> None:
    try:
        info = os.stat(name, dir_fd=folder, follow_symlinks=False)
        mode: int | None = stat.S_IMODE(info.st_mode) if stat.S_ISREG(info.st_mode) else None
    except FileNotFoundError:
        mode = None
    temporary = f"{TEMPORARY_PREFIX}{name}.{secrets.token_hex(4)}.tmp"
    # 0o666: what a file written the ordinary way gets, less the umask.
    descriptor = os.open(temporary, _CREATE_FLAGS, 0o666, dir_fd=folder)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except BaseException:
        with suppress(OSError):
            os.unlink(temporary, dir_fd=folder)
        raise
    # Makes the rename itself durable; not possible everywhere, nor needed.
    with suppress(OSError):
        os.fsync(folder)
