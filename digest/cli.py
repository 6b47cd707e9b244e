"""The ``digest`` command line. Each command is a thin layer over plain functions.

Exit codes: 0 done; 1 something failed or is out of date; 2 bad usage, input or configuration
(one line naming the bad value, no traceback unless ``--debug``); 3 the output folder is locked.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from digest import __version__, render, schemas
from digest.errors import DigestError, UsageError
from digest.models import Day
from digest.pipeline import PaperResult, Pipeline, run_ids_day
from digest.post_parser import parse_post
from digest.settings import Settings, load_settings
from digest.sources import ArxivRef, LocalPdf, parse_id_list, parse_paper_argument
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
    posts: Annotated[
        list[Path], typer.Argument(metavar="POST.md...", help="Existing post files to import.")
    ],
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


class Source(StrEnum):
    ids = "ids"


@app.command("daily")
def daily_command(
    source: Annotated[Source, typer.Option(help="Where the day's papers come from.")] = Source.ids,
    ids: Annotated[
        str | None, typer.Option(help="Comma-separated arXiv IDs or URLs (with --source ids).")
    ] = None,
    date: Annotated[
        str | None, typer.Option(help="The day (YYYY-MM-DD). Default: today in DIGEST_TIMEZONE.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Redo papers already in the day file.")
    ] = False,
    output_dir: Annotated[
        Path | None, typer.Option(help="Output folder [env DIGEST_OUTPUT_DIR, default outputs].")
    ] = None,
) -> None:
    """Digest a day's papers and write outputs/data/DATE.json and its post.

    A paper that fails is left out of the post and listed at the end with its reason (exit 1);
    the others are still written.
    """
    with _reporting():
        settings = load_settings(output_dir=output_dir)
        day = parse_date(date) if date else settings.today()
        if day > settings.today():
            raise UsageError(f"--date {date!r} is in the future (today is {settings.today()})")
        if ids is None:
            raise UsageError("--source ids needs --ids, e.g. --ids 2512.13604,2512.10655")
        refs = parse_id_list(ids)
        run = asyncio.run(run_ids_day(settings, refs, day, force=force))
        _print_summary(run.results, settings)
        if run.post:
            stdout.print(f"wrote: {run.post} ({len(run.day.papers)} papers)")
        failed = [result for result in run.results if result.error]
        for result in failed:
            stderr.print(f"[bold red]failed:[/] {result.ref}: {result.error}", markup=True)
        if run.fatal:
            raise run.fatal
        if failed:
            stderr.print(f"{len(failed)} of {len(run.results)} papers failed.")
            raise typer.Exit(1)


def _print_summary(results: list[PaperResult], settings: Settings) -> None:
    table = Table(title="digest run", title_justify="left")
    for column in ("paper", "status", "input", "tokens in/out", "cost $", "seconds"):
        table.add_column(column, justify="right" if column not in ("paper", "status") else "left")
    for result in results:
        provenance = result.entry.provenance if result.entry else None
        status = "reused" if result.reused else ("done" if result.entry else "failed")
        if provenance is None or result.reused:
            table.add_row(str(result.ref), status, "", "", "", "")
            continue
        table.add_row(
            str(result.ref),
            status,
            provenance.input or "",
            f"{provenance.tokens_in}/{provenance.tokens_out}",
            f"{provenance.cost_usd or 0:.4f}",
            f"{provenance.seconds or 0:.1f}",
        )
    stderr.print(table)


@app.command("paper")
def paper_command(
    paper: Annotated[
        str, typer.Argument(metavar="ID|URL|FILE.pdf", help="An arXiv ID or URL, or a local PDF.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the paper's entry as JSON instead.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
) -> None:
    """Digest one paper and print its block in the post format."""
    with _reporting():
        settings = load_settings()
        target = parse_paper_argument(paper)
        result = asyncio.run(_digest_one(settings, target))
        if result.entry is None:
            raise DigestError(f"{result.ref}: {result.error}")
        if as_json:
            text = result.entry.model_dump_json(indent=2) + "\n"
        else:
            text = "\n".join(render.render_paper(result.entry, 1)) + "\n"
        if out is None:
            stdout.out(text, end="", highlight=False)
        else:
            atomic_write_text(out, text)
            stderr.print(f"wrote: {out}")


async def _digest_one(settings: Settings, target: ArxivRef | LocalPdf) -> PaperResult:
    async with Pipeline(settings) as pipeline:
        if isinstance(target, ArxivRef):
            (result,) = await pipeline.digest_arxiv([target])
        else:
            result = await pipeline.digest_local_pdf(target)
        if pipeline.fatal:
            raise pipeline.fatal
        return result


def main() -> None:
    app(prog_name="digest")
