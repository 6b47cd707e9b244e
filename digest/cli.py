"""The ``digest`` command line. Each command is a thin layer over plain functions.

Exit codes: 0 done; 1 something failed or is out of date; 2 bad usage, input or configuration
(one line naming the bad value, no traceback unless ``--debug``); 3 the output folder is locked.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from digest import __version__, render, schemas
from digest.errors import DigestError, UsageError
from digest.models import Day
from digest.post_parser import parse_post
from digest.settings import load_settings
from digest.store import OutputStore, atomic_write_text, dump_day

app = typer.Typer(
    help="Turn arXiv papers into Korean structured digests and Jekyll Daily Papers posts.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stdout = Console(highlight=False, soft_wrap=True)
stderr = Console(stderr=True, highlight=False, soft_wrap=True)


class _State:
    debug = False


@contextmanager
def _reporting() -> Iterator[None]:
    """Turn our errors into one line on stderr and their exit code."""
    try:
        yield
    except DigestError as error:
        if _State.debug:
            raise
        stderr.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        raise typer.Exit(error.exit_code) from None


def parse_date(value: str, option: str = "--date") -> dt.date:
    try:
        return dt.date.fromisoformat(value) if len(value) == 10 else _bad_date(value, option)
    except ValueError:
        return _bad_date(value, option)


def _bad_date(value: str, option: str) -> dt.date:
    raise UsageError(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2025-12-16")


def _version(show: bool) -> None:
    if show:
        stdout.print(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _State.debug = debug


@app.command("render")
def render_command(
    dates: Annotated[
        list[str] | None,
        typer.Option("--date", help="A day to render (YYYY-MM-DD); repeat for more. Default: all."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if any post is missing or stale.")
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option(help="Output folder [env DIGEST_OUTPUT_DIR, default outputs].")
    ] = None,
) -> None:
    """Render posts from the day files in outputs/data, with no network and no LLM."""
    with _reporting():
        settings = load_settings(output_dir=output_dir)
        store = OutputStore(settings.output_dir)
        wanted = [parse_date(value) for value in dates] if dates else store.dates()
        if not wanted:
            raise UsageError(f"{store.data_dir}: no day files to render")
        stale = _render_days(store, wanted, check=check)
        if check:
            if stale:
                stderr.print(f"{len(stale)} of {len(wanted)} posts need 'digest render'.")
                raise typer.Exit(1)
            stderr.print(f"All {len(wanted)} posts are up to date.")


def _render_days(store: OutputStore, dates: list[dt.date], *, check: bool) -> list[Path]:
    """Render each day; in check mode only report. Returns the posts that were (or are) stale."""
    stale = []
    for date in dates:
        day = store.load_day(date)
        path = store.post_path(date)
        if not day.papers:
            stderr.print(f"{store.data_path(date)}: no papers, so no post")
            continue
        text = render.render_day(day).encode("utf-8")
        current = path.read_bytes() if path.exists() else None
        if current == text:
            continue
        stale.append(path)
        if check:
            stdout.print(f"{'missing' if current is None else 'out of date'}: {path}")
        else:
            atomic_write_text(path, text.decode("utf-8"))
            stdout.print(f"{'wrote' if current is None else 'updated'}: {path}")
    return stale


@app.command("import")
def import_command(
    posts: Annotated[list[Path], typer.Argument(help="Existing post files to import.")],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a day file that already differs.")
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option(help="Output folder [env DIGEST_OUTPUT_DIR, default outputs].")
    ] = None,
) -> None:
    """Parse existing Daily Papers posts into day files (outputs/data/YYYY-MM-DD.json)."""
    with _reporting():
        store = OutputStore(load_settings(output_dir=output_dir).output_dir)
        failed = 0
        for post in posts:
            try:
                day = parse_post(post)
                _save_imported(store, day, post, force=force)
            except DigestError as error:
                if _State.debug:
                    raise
                failed += 1
                stderr.print(f"[bold red]error:[/] {error}", markup=True, highlight=False)
        if failed:
            stderr.print(f"{failed} of {len(posts)} posts were not imported.")
            raise typer.Exit(2)


def _save_imported(store: OutputStore, day: Day, post: Path, *, force: bool) -> None:
    path = store.data_path(day.date)
    text = dump_day(day)
    if path.exists():
        if path.read_text(encoding="utf-8") == text:
            stdout.print(f"unchanged: {path} ({len(day.papers)} papers from {post})")
            return
        if not force:
            raise UsageError(
                f"{path} already exists and differs from {post}; use --force to replace it"
            )
    atomic_write_text(path, text)
    stdout.print(f"wrote: {path} ({len(day.papers)} papers from {post})")


@app.command("schema")
def schema_command(
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if a schema file is stale.")
    ] = False,
    directory: Annotated[Path, typer.Option("--dir", help="Where the schemas live.")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schemas generated from the models (digest.schema.json is the LLM's)."""
    with _reporting():
        if check:
            stale = schemas.stale(directory)
            for path in stale:
                stdout.print(f"stale: {path}")
            if stale:
                stderr.print("Run 'digest schema' to regenerate them.")
                raise typer.Exit(1)
            stderr.print(f"All {len(schemas.SCHEMA_FILES)} schemas are up to date.")
            return
        for path in schemas.write(directory):
            stdout.print(f"wrote: {path}")


def main() -> None:
    app(prog_name="digest")
