"""The ``digest`` command line. Each command is a thin layer over plain functions.

Exit codes: 0 done; 1 something failed or is out of date; 2 bad usage, input or configuration
(one line naming the bad value, no traceback unless ``--debug``); 3 the output folder is locked;
130 interrupted (Ctrl-C): one line saying what is kept, and that the same command resumes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from digest import DISTRIBUTION, __version__
from digest.blog import render, schemas
from digest.blog.post_parser import parse_post
from digest.blog.store import OutputLock, OutputStore, dump_day, remove_stale_temporaries
from digest.errors import (
    STOPPED_WITH_THE_RUN,
    BatchesStillRunning,
    DigestError,
    RunStopped,
    UsageError,
)
from digest.files import atomic_write_text, same_content
from digest.llm.prompts import estimate_tokens
from digest.models import Day, RunReport
from digest.options import LlmOptions, RunOptions
from digest.redact import format_traceback, protect_std_streams, redact, redacting_stream
from digest.runs.day import DayRun, DaySetup, plan_day, run_day
from digest.runs.report import dump_report, progress_for, run_report, summary_table
from digest.runs.results import PaperResult
from digest.runs.stats import collect, dump_stats, nothing_found, show_stats
from digest.settings import Settings, load_settings
from digest.settings_doc import setting_help
from digest.sources.papers import (
    ArxivRef,
    Candidate,
    HfSource,
    IdsSource,
    LocalPdf,
    Source,
    parse_id_list,
    parse_paper_argument,
    utc_today,
)

if TYPE_CHECKING:
    from digest.runs.pipeline import Pipeline

EXIT_CODES = (
    "Exit codes: 0 done; 1 something failed or is out of date; 2 bad usage, input or "
    "configuration; 3 another run holds the output folder; 130 interrupted (Ctrl-C)."
)
# The commands that digest papers: what their codes mean for the papers.
RUN_EXIT_CODES = (
    "Exit codes: 0 every paper done; 1 a paper failed (the others are written); 2 bad usage, "
    "input or configuration; 3 another run holds the output folder; 130 interrupted (Ctrl-C): "
    "what is done is kept, and the same command resumes."
)

app = typer.Typer(
    help="Turn arXiv papers into Korean structured digests and Jekyll Daily Papers posts.\n\n"
    + EXIT_CODES,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
# No markup by default: paths, titles and error messages carry brackets ("digest[fast]") that
# rich would take for style tags and drop. Only our own "error:" prefixes are styled. Both
# write through a redacting stream, so that no line they print can show a secret (servers
# echo keys and URLs into the messages digest passes on); the stream of the moment is looked
# up at each write, as rich's own default does.
stdout = Console(
    file=redacting_stream(lambda: sys.stdout), highlight=False, soft_wrap=True, markup=False
)
stderr = Console(
    file=redacting_stream(lambda: sys.stderr),
    stderr=True,
    highlight=False,
    soft_wrap=True,
    markup=False,
)


OutputDirOption = Annotated[
    Path | None,
    typer.Option("--output-dir", help=setting_help("output_dir", "Output folder")),
]


class _ConsoleLog(logging.Handler):
    """digest's warnings (retries, fallbacks, repairs) as plain lines on stderr, which
    redacts them, traceback included."""

    def emit(self, record: logging.LogRecord) -> None:
        message = f"{record.levelname.lower()}: {record.getMessage()}"
        if record.exc_info:  # only with --debug: the rest logs no traceback
            message += "\n" + logging.Formatter().formatException(record.exc_info)
        stderr.print(message, markup=False)


def _log_to_console(debug: bool, verbose: bool = False) -> None:
    logger = logging.getLogger("digest")
    if not any(isinstance(handler, _ConsoleLog) for handler in logger.handlers):
        logger.addHandler(_ConsoleLog())
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logger.setLevel(level)
    logger.propagate = False


class _State:
    debug = False
    interrupted = False  # the one line a Ctrl-C gets has been said
    interrupt_line = ""  # what the running command says on a Ctrl-C (_reporting sets it)
    late_interrupt = False  # a Ctrl-C after the command was done (see main)


# A Ctrl-C's one line. Every file is written whole or not at all, and every digest goes to the
# cache the moment it is made, so nothing finished is lost and nothing paid for is paid again.
RUN_INTERRUPTED = (
    "interrupted: the digests made so far are kept (in the digest cache, and in the day files "
    "written); run the same command again to resume without paying for them again"
)
INTERRUPTED = "interrupted: every file is written whole or not at all; run the same command again"


def _print_error(error: Exception) -> None:
    stderr.print(f"[bold red]error:[/] {escape(str(error))}", markup=True)


@contextmanager
def _reporting(interrupted: str = INTERRUPTED) -> Iterator[None]:
    """Turn our errors into one line on stderr and their exit code, and a Ctrl-C into the
    line ``interrupted`` and exit 130.

    A Ctrl-C in ``asyncio.run`` cancels the run's task (its clients are closed, its workers
    stopped on the way out) and comes out here as a KeyboardInterrupt; a CancelledError is
    what is left of one when the task was also cancelled otherwise."""
    _State.interrupt_line = interrupted
    try:
        yield
    except DigestError as error:
        if _State.debug:
            # Printed here rather than left to Python: redacted (a server's message may echo
            # the key), and with the exit code the error has without --debug.
            stderr.out(format_traceback(error), end="", highlight=False)
        else:
            _print_error(error)
        raise typer.Exit(error.exit_code) from None
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say_interrupted(interrupted)
        raise typer.Exit(130) from None


def _say_interrupted(line: str) -> None:
    """The one line a Ctrl-C gets, however many times it is pressed."""
    if not _State.interrupted:
        _State.interrupted = True
        stderr.print(line)


def parse_date(value: str, option: str = "--date") -> dt.date:
    # Only YYYY-MM-DD: fromisoformat alone would also take "2025-W51-2" and "20251216".
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        return _bad_date(value, option)
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return _bad_date(value, option)


def parse_day(value: str | None, settings: Settings, *, utc: bool = False) -> dt.date:
    """``daily --date``: YYYY-MM-DD, ``today`` (the default) or ``yesterday``; never in the
    future. ``today`` is in the ``timezone`` setting, except with ``utc``: Hugging Face's days
    are UTC days, so there ``yesterday`` is the last complete list and ``today`` one that has
    begun (Seoul's today, before 09:00, has not begun in UTC and gets HTTP 400)."""
    today = utc_today() if utc else settings.today()
    if value in (None, "today"):
        return today
    if value == "yesterday":
        return today - dt.timedelta(days=1)
    day = parse_date(value)
    if day > today and utc:
        raise UsageError(
            f"--date {value!r} has not begun on Hugging Face, whose Daily Papers days are UTC "
            f"days (in UTC it is {today}); use --date yesterday or an earlier date"
        )
    if day > today:
        raise UsageError(f"--date {value!r} is in the future (today is {today})")
    return day


def _bad_date(value: str, option: str) -> dt.date:
    raise UsageError(f"{option} {value!r} is not a date; use YYYY-MM-DD, e.g. 2025-12-16")


def _version(show: bool) -> None:
    if show:
        stdout.print(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose", "-v", help="Also log each LLM answer (tokens, outcome) and re-ask."
        ),
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    _State.debug = debug
    _State.interrupted = _State.late_interrupt = False  # one process may run several (tests)
    _log_to_console(debug, verbose)


@app.command("render")
def render_command(
    dates: Annotated[
        list[str] | None,
        typer.Option("--date", help="A day to render (YYYY-MM-DD); repeat for more. Default: all."),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Write nothing; exit 1 if any post is missing or stale.")
    ] = False,
    output_dir: OutputDirOption = None,
) -> None:
    """Render posts from the day files in outputs/data, with no network and no LLM."""
    with _reporting():
        settings = load_settings(output_dir=output_dir)
        store = settings.output_store()
        wanted = [parse_date(value) for value in dates] if dates else store.dates()
        if not wanted:
            # A blog with no day files yet has nothing out of date (CI on a new blog passes).
            stderr.print(f"No day files in {store.data_dir}; nothing to render.")
            return
        if check:
            stale, broken = _render_days(store, wanted, check=True)
        else:
            with OutputLock(settings.output_dir):
                stale, broken = _render_days(store, wanted, check=False)
        if broken:
            stderr.print(f"{broken} of {len(wanted)} day files could not be read.")
            raise typer.Exit(2)
        if check:
            if stale:
                stderr.print(f"{len(stale)} of {len(wanted)} posts need 'digest render'.")
                raise typer.Exit(1)
            stderr.print(f"All {len(wanted)} posts are up to date.")


def _render_days(
    store: OutputStore, dates: list[dt.date], *, check: bool
) -> tuple[list[Path], int]:
    """Render each day; in check mode only report. Returns the posts that were (or are) stale,
    and how many day files could not be read (each is reported, and the others still done)."""
    stale = []
    broken = 0
    for date in dates:
        try:
            day = store.load_day(date)
        except DigestError as error:
            if _State.debug:
                raise
            broken += 1
            _print_error(error)
            continue
        path = store.post_path(date)
        if not day.papers:
            stderr.print(f"{store.data_path(date)}: no papers, so no post")
            continue
        text = render.render_day(day).encode("utf-8")
        same = same_content(path, text)  # None: no post; a FIFO or a link out is no post
        if same:
            continue
        stale.append(path)
        if check:
            stdout.print(f"{'missing' if same is None else 'out of date'}: {path}")
        else:
            atomic_write_text(path, text.decode("utf-8"))
            stdout.print(f"{'wrote' if same is None else 'updated'}: {path}")
    return stale, broken


@app.command("import")
def import_command(
    posts: Annotated[
        list[Path], typer.Argument(metavar="POST.md...", help="Existing post files to import.")
    ],
    force: Annotated[
        bool, typer.Option("--force", help="Replace a day file that already differs.")
    ] = False,
    output_dir: OutputDirOption = None,
) -> None:
    """Parse existing Daily Papers posts into day files (outputs/data/YYYY-MM-DD.json)."""
    with _reporting():
        store = load_settings(output_dir=output_dir).output_store()
        with OutputLock(store.root):
            failed = _import_posts(store, posts, force=force)
        if failed:
            stderr.print(f"{failed} of {len(posts)} posts were not imported.")
            raise typer.Exit(2)


def _import_posts(store: OutputStore, posts: list[Path], *, force: bool) -> int:
    """Import each post; a bad one is reported and the others go on. Returns the failures."""
    failed = 0
    for post in posts:
        try:
            _save_imported(store, parse_post(post), post, force=force)
        except DigestError as error:
            if _State.debug:
                raise
            failed += 1
            _print_error(error)
    return failed


def _save_imported(store: OutputStore, day: Day, post: Path, *, force: bool) -> None:
    path = store.data_path(day.date)
    if path.exists():
        # Compared as data, not bytes: a day file written before a field was added to the
        # models holds the same day.
        try:
            same = store.load_day(day.date) == day
        except DigestError:
            same = False  # unreadable: replacing it needs --force like any other difference
        if same:
            stdout.print(f"unchanged: {path} ({len(day.papers)} papers from {post})")
            return
        if not force:
            raise UsageError(
                f"{path} already exists and differs from {post}; use --force to replace it"
            )
    atomic_write_text(path, dump_day(day))
    stdout.print(f"wrote: {path} ({len(day.papers)} papers from {post})")


@app.command("init")
def init_command(
    folder: Annotated[
        Path, typer.Argument(metavar="[DIR]", help="The blog's folder (made if missing).")
    ] = Path("."),
    title: Annotated[str, typer.Option(help="The blog's title.")] = "Daily Papers",
    force: Annotated[
        bool, typer.Option("--force", help="Replace files that exist (they are listed).")
    ] = False,
) -> None:
    """Make a Jekyll blog that GitHub Pages publishes as it is; run 'digest daily' inside it.

    Writes _config.yml, a Gemfile, an index page, layouts with a Korean font stack, an RSS
    feed, .gitignore, a digest.toml without secrets and the nightly, Pages and pull-request
    workflows. A file that exists is kept and listed, unless --force. A site's own
    _config.yml is kept too, with digest's private files added to its exclude: list and
    jekyll-feed to its plugins (listed as updated). Nothing is written through a link that
    leads out of the folder.
    """
    from digest.blog.init_blog import init_blog, requirement

    with _reporting():
        report = init_blog(folder, title=title, force=force)
        for path in report.written:
            stdout.print(f"wrote: {path}")
        for path in report.replaced:
            stdout.print(f"replaced: {path}")
        for path, added in report.updated:
            stdout.print(f"updated: {path} ({added})")
        for path in report.kept:
            stdout.print(f"kept: {path} (it exists; --force replaces it)")
        if report.unpinned is not None:
            stderr.print(
                f"warning: {report.unpinned} does not name {DISTRIBUTION}, so the workflows "
                f"will not install digest; add the line {requirement()}"
            )
        where = "" if folder == Path(".") else f"cd {folder} && "
        stderr.print(
            f"Next: {where}OPENAI_API_KEY=sk-... digest daily --date yesterday, then jekyll serve "
            "(or push to GitHub with Pages set to GitHub Actions)."
        )


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


class SourceName(StrEnum):
    hf = "hf"
    arxiv = "arxiv"
    ids = "ids"


@app.command("daily", epilog=RUN_EXIT_CODES)
def daily_command(
    source: Annotated[
        SourceName,
        typer.Option(help="hf: Hugging Face Daily Papers; arxiv: --query; ids: --ids."),
    ] = SourceName.hf,
    ids: Annotated[str | None, typer.Option(help="Comma-separated arXiv IDs or URLs.")] = None,
    query: Annotated[
        str | None, typer.Option(help='arXiv search query, e.g. "cat:cs.CL AND abs:diffusion".')
    ] = None,
    date: Annotated[
        str | None,
        typer.Option(
            help=setting_help(
                "timezone",
                "YYYY-MM-DD, today (the default) or yesterday. With --source hf a UTC day, as "
                "Hugging Face's days are; with arxiv or ids a day in the time zone",
            )
        ),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help=setting_help("limit", "Most papers to take from hf or arxiv")),
    ] = None,
    min_upvotes: Annotated[
        int | None,
        typer.Option(help=setting_help("min_upvotes", "Leave out hf papers with fewer upvotes")),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Redo the day from the source: no reuse, no digest cache."),
    ] = False,
    max_cost: Annotated[
        float | None, typer.Option(help="Start no paper once the estimated spend would pass USD.")
    ] = None,
    deadline: Annotated[
        float | None,
        typer.Option(
            metavar="MINUTES",
            help=setting_help(
                "run_deadline", "Start no paper past these minutes; write what is done"
            ),
        ),
    ] = None,
    output_dir: OutputDirOption = None,
) -> None:
    """Digest a day's papers and write outputs/data/DATE.json, its post and a run report.

    A paper that fails is left out of the post and listed at the end with its reason (exit 1);
    the others are still written. Re-running a finished day changes nothing and costs nothing.
    """
    with _reporting(RUN_INTERRUPTED):
        settings = load_settings(
            output_dir=output_dir, limit=limit, min_upvotes=min_upvotes, run_deadline=deadline
        )
        day = parse_day(date, settings, utc=source is SourceName.hf)
        _check_source_options(source, ids, query, limit, min_upvotes)
        if max_cost is not None and max_cost < 0:
            raise UsageError(f"--max-cost {max_cost:g} must be zero or more")
        refs = parse_id_list(ids) if source is SourceName.ids and ids else []
        # The settings, split into what each part uses, and checked before any request or
        # token: what would fail after the money is spent.
        run = settings.run_options(
            force=force,
            max_cost=max_cost,
            limit=None if source is SourceName.ids else settings.limit,  # ids: every one given
        )
        setup = _day_setup(settings, max_cost)
        with OutputLock(settings.output_dir) as lock:
            setup.store.remove_stale_temporaries(lock)
            remove_stale_temporaries(settings.cache_dir, older_than=3600)
            chosen = _source(source, settings, refs, query)
            stop: RunStopped | None = None
            try:
                finished = asyncio.run(_daily(chosen, day, setup, run, lock.check_held))
            except RunStopped as error:
                stop, finished = error, error.run
            if finished is not None and finished.did_work:
                _write_report(setup.store.report_path(day), run_report(finished, source, setup.llm))
        if finished is None:
            if stop is not None:
                raise stop  # before any paper (the key check): its one line says it all
            return
        _show(finished)
        if stop is not None:
            raise stop
        unfinished = [r for r in finished.results if r.status in ("failed", "stopped")]
        if unfinished:
            stderr.print(f"{len(unfinished)} of {len(finished.results)} papers were not digested.")
            raise typer.Exit(1)


def _day_setup(settings: Settings, max_cost: float | None) -> DaySetup:
    """The settings split into what a day's run uses, then checked before any request or
    token: what would fail after the money is spent."""
    setup = DaySetup(
        store=settings.output_store(),
        llm=settings.llm_options(),
        fetch=settings.fetch_options(),
        extract=settings.extract_options(),
        cache_dir=settings.cache_dir,
        new_day=settings.new_day,
    )
    settings.require_api_key()
    _check_context(setup.llm)
    setup.store.check_writable(settings.cache_dir)
    if max_cost is not None:
        settings.require_price()
    _warn_if_published(setup.store)
    return setup


def _check_context(llm: LlmOptions) -> None:
    """A DIGEST_CONTEXT_TOKENS that leaves no room for a paper: said before any request."""
    if llm.context_tokens is None:
        return
    from digest.llm.summarize import Summarizer, fitted_text_budget  # see _pipeline

    fitted_text_budget(llm, Summarizer(llm, None).fixed_prompt_tokens())


@app.command("backfill", epilog=RUN_EXIT_CODES)
def backfill_command(
    first: Annotated[
        str | None,
        typer.Option(
            "--from",
            help=setting_help(
                "timezone",
                "The first day, YYYY-MM-DD. With --source hf a UTC day, as Hugging Face's days "
                "are; with arxiv a day in the time zone",
            ),
        ),
    ] = None,
    last: Annotated[
        str | None,
        typer.Option("--to", help="The last day, YYYY-MM-DD (included), a day as --from's is."),
    ] = None,
    source: Annotated[
        SourceName, typer.Option(help="hf: Hugging Face Daily Papers; arxiv: --query.")
    ] = SourceName.hf,
    query: Annotated[
        str | None, typer.Option(help='arXiv search query, e.g. "cat:cs.CL AND abs:diffusion".')
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help=setting_help("limit", "Most papers a day"))
    ] = None,
    min_upvotes: Annotated[
        int | None,
        typer.Option(help=setting_help("min_upvotes", "Leave out hf papers with fewer upvotes")),
    ] = None,
    max_cost: Annotated[
        float | None,
        typer.Option(
            help="Start no paper once the estimated spend of the range would pass USD; with "
            "--batch, submit nothing when the batch's estimate would."
        ),
    ] = None,
    batch: Annotated[
        bool,
        typer.Option(
            "--batch",
            help="Send the LLM work through the Batch API: half the price, answers within 24 h.",
        ),
    ] = False,
    reask_interactive: Annotated[
        bool,
        typer.Option(
            "--reask-interactive",
            help="With --batch: re-ask invalid answers at once, interactively, not in a "
            "second batch.",
        ),
    ] = False,
    status: Annotated[
        bool,
        typer.Option(
            "--status",
            help="Show the saved batches and what became of them; wait on nothing, submit nothing.",
        ),
    ] = False,
    deadline: Annotated[
        float | None,
        typer.Option(
            metavar="MINUTES",
            help=setting_help(
                "run_deadline",
                "Start no day or paper past these minutes, and wait on no batch: what is done "
                "is written, batches are saved for the next run",
            ),
        ),
    ] = None,
    output_dir: OutputDirOption = None,
) -> None:
    """Digest every day of a range, oldest first, as 'daily' would for each.

    One lock for the whole range; each day's files are written as soon as the day is done, so
    a backfill killed half-way loses nothing, and run again it redoes no paid work (finished
    days are reused, finished digests come from the cache, batches are collected, never sent
    twice). --max-cost covers the range.
    """
    with _reporting(RUN_INTERRUPTED):
        settings = load_settings(
            output_dir=output_dir, limit=limit, min_upvotes=min_upvotes, run_deadline=deadline
        )
        if status:
            asyncio.run(_batch_status(settings))
            return
        if first is None or last is None:
            raise UsageError("backfill needs --from and --to (or --status)")
        start, end = parse_date(first, "--from"), parse_date(last, "--to")
        if start > end:
            raise UsageError(f"--from {start} is after --to {end}; give the earlier day first")
        if source is SourceName.ids:
            raise UsageError("backfill takes --source hf or --source arxiv; use 'daily --ids'")
        if reask_interactive and not batch:
            raise UsageError("--reask-interactive goes with --batch")
        _check_source_options(source, None, query, limit, min_upvotes)
        newest = utc_today() - dt.timedelta(days=1) if source is SourceName.hf else settings.today()
        if end > newest:
            raise UsageError(
                f"--to {end} has no complete list yet; the last one is {newest}"
                + (" (Hugging Face's days are UTC days)" if source is SourceName.hf else "")
            )
        if max_cost is not None and max_cost < 0:
            raise UsageError(f"--max-cost {max_cost:g} must be zero or more")
        setup = _day_setup(settings, max_cost)
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        with OutputLock(settings.output_dir) as lock:
            setup.store.remove_stale_temporaries(lock)
            chosen = _source(source, settings, [], query)  # one client: arXiv's spacing holds
            if batch:
                outcome = _backfill_batch(
                    chosen, days, setup, settings, max_cost, reask_interactive, lock.check_held
                )
            else:
                outcome = _backfill(chosen, days, setup, settings, max_cost, lock.check_held)
        saved = f" ({outcome.saved:.4f} USD saved by the batch price)" if batch else ""
        if outcome.stop is not None and not outcome.did_anything:
            raise outcome.stop  # stopped before any day: its one line says it all
        stderr.print(
            f"backfill {start} to {end}: {outcome.days_written} of {len(days)} days written, "
            f"{outcome.papers} papers digested, {outcome.unfinished} not digested, "
            f"{outcome.cost:.4f} USD{saved}"
        )
        if outcome.stop is not None:
            raise outcome.stop
        if outcome.still_running is not None:
            raise outcome.still_running
        if outcome.left:
            stderr.print(
                f"the run's deadline passed: {outcome.left} day{'' if outcome.left == 1 else 's'}"
                " left for the next run (the same command does them)"
            )
        if outcome.unfinished or outcome.left:
            raise typer.Exit(1)


@dataclass
class _Backfill:
    days_written: int = 0
    papers: int = 0
    unfinished: int = 0
    cost: float = 0.0
    saved: float = 0.0  # by the batch price, against interactive prices
    stop: RunStopped | None = None
    left: int = 0  # days not begun: the run's deadline passed
    still_running: BatchesStillRunning | None = None  # at the deadline, saved for the next run

    @property
    def did_anything(self) -> bool:
        return bool(self.days_written or self.papers or self.unfinished or self.cost)

    def add(self, finished: DayRun, report: RunReport | None) -> None:
        if report is not None:
            self.cost += report.totals.cost_usd
        self.days_written += finished.post is not None
        self.papers += sum(r.status in ("done", "cached") for r in finished.results)
        self.unfinished += sum(r.status in ("failed", "stopped") for r in finished.results)
        self.saved += sum(
            r.entry.provenance.saved_usd or 0.0
            for r in finished.results
            if r.status == "done" and r.entry is not None
        )


def _backfill(
    source: Source,
    days: list[dt.date],
    setup: DaySetup,
    settings: Settings,
    max_cost: float | None,
    before_write: Callable[[], None],
) -> _Backfill:
    """Each day in turn, the spend of the days before counted against ``max_cost``."""
    outcome = _Backfill()
    # The papers of the days before, read once and kept up to date, rather than every earlier
    # day file read again for each day.
    published = setup.store.published_before(days[0])
    # One run's options for the range: its deadline counts from the start of the range.
    options = settings.run_options(max_cost=max_cost, limit=settings.limit)
    for number, day in enumerate(days, start=1):
        if options.past_deadline():
            outcome.left = len(days) - number + 1
            break
        run = replace(options, spent_before=outcome.cost)
        stderr.print(f"[bold]{day}[/] (day {number} of {len(days)})", markup=True)
        try:
            finished = asyncio.run(_daily(source, day, setup, run, before_write, published))
        except RunStopped as stop:
            if stop.run is not None:
                _write_report(
                    setup.store.report_path(day), run_report(stop.run, source.name, setup.llm)
                )
                _show(stop.run)
            raise
        if finished is None:
            continue
        report = None
        if finished.did_work:
            report = run_report(finished, source.name, setup.llm)
            _write_report(setup.store.report_path(day), report)
        _show(finished)
        outcome.add(finished, report)
    return outcome


def _backfill_batch(
    source: Source,
    days: list[dt.date],
    setup: DaySetup,
    settings: Settings,
    max_cost: float | None,
    reask_interactive: bool,
    before_write: Callable[[], None],
) -> _Backfill:
    """Every day read first, the LLM work as batches, each day written once it is settled."""
    from digest.runs.backfill import backfill_batch  # the LLM and PDF clients: see _source

    outcome = _Backfill()
    run = settings.run_options(max_cost=max_cost, limit=settings.limit)
    written: list[DayRun] = []

    def on_day(finished: DayRun) -> None:
        report = None
        if finished.did_work:
            report = run_report(finished, source.name, setup.llm)
            _write_report(setup.store.report_path(finished.day.date), report)
        written.append(finished)
        outcome.add(finished, report)

    def tell(line: str) -> None:
        stderr.print(redact(line), markup=False, highlight=False)

    resubmitted = 0
    try:
        resubmitted = asyncio.run(
            backfill_batch(
                source,
                days,
                setup,
                run,
                settings.batch_options(reask_interactive=reask_interactive),
                on_day=on_day,
                tell=tell,
                before_write=before_write,
            )
        )
    except RunStopped as stop:
        outcome.stop = stop
    except BatchesStillRunning as running:
        outcome.still_running = running
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say_interrupted(
            "interrupted: the batches submitted keep running on the server; run the same "
            "'digest backfill --batch' again to collect them ('digest backfill --status' "
            "shows them)"
        )
        raise typer.Exit(130) from None
    # The days are written as their batches answer, in no order; they are shown in date
    # order, once the batches are done, each table headed by its day.
    for finished in sorted(written, key=lambda day_run: day_run.day.date):
        _show(finished)
    if resubmitted:
        stderr.print(f"{resubmitted} request(s) were sent again after a batch failed them")
    return outcome


async def _batch_status(settings: Settings) -> None:
    """The saved batches, each open one looked at once."""
    from digest.llm.batch_folder import describe_records

    folder = settings.cache_dir / "batches"
    records = describe_records(folder)
    if not records:
        stdout.print(f"No batches saved in {folder}.")
        return
    if settings.api_key or settings.base_url:
        await _look_at_open_batches(settings, folder)
        records = describe_records(folder)
    stdout.print(f"batches in {folder}:", markup=False, highlight=False)
    for record in records:
        counts = record.counts
        answered = (
            f", {counts.get('completed', 0)} answered, {counts.get('failed', 0)} failed"
            if counts
            else ""
        )
        line = (
            f"{record.batch_id or '(being created from ' + record.input_file_id + ')'}  "
            f"round {record.round}  {record.status}  {len(record.requests)} requests{answered}  "
            f"submitted {record.submitted_at:%Y-%m-%d %H:%M} UTC"
            + ("  collected" if record.collected else "")
            + (f"  ({'; '.join(record.errors)})" if record.errors else "")
        )
        stdout.print(line, markup=False, highlight=False, soft_wrap=True)


async def _look_at_open_batches(settings: Settings, folder: Path) -> None:
    from digest.llm.batch_api import BatchApi
    from digest.llm.batch_folder import BatchFolder
    from digest.llm.server import LlmServer, make_client

    llm = settings.llm_options()
    client = make_client(llm)
    batches = BatchFolder(folder)
    try:
        api = BatchApi(LlmServer(llm, client), batches, lambda line: None)
        async with batches.exclusive(lambda line: None) as records:
            for record in records.all():
                if not record.finished:
                    await api.look(record)
    finally:
        batches.close()
        await client.close()


def _write_report(path: Path, report: RunReport) -> None:
    try:
        atomic_write_text(path, redact(dump_report(report)))
    except OSError as error:  # the day is written; the report is a log
        stderr.print(f"warning: could not write {path}: {error.strerror}")


def _show(run: DayRun) -> None:
    """The summary table, headed by the day, the post written, and each paper that was not
    digested."""
    stderr.print(summary_table(run.results, title=f"digest run {run.day.date}"))
    if run.post:
        verb = "wrote" if run.changed else "unchanged"
        count = len(run.day.papers)
        stdout.print(f"{verb}: {run.post} ({count} paper{'' if count == 1 else 's'})")
    for result in run.results:
        # A paper the run's stop left undone: the table lists it, the stop's one line says why.
        if result.status in ("failed", "stopped") and result.error != STOPPED_WITH_THE_RUN:
            line = escape(redact(f"{result.label}: {result.error}"))
            stderr.print(f"[bold red]{result.status}:[/] {line}", markup=True)


def _source(
    name: SourceName, settings: Settings, refs: list[ArxivRef], query: str | None
) -> Source:
    if name is SourceName.ids:
        return IdsSource(refs)
    if name is SourceName.hf:
        return HfSource(settings.hf_options(), settings.min_upvotes, asyncio.sleep)
    # The pipeline's clients (openai, arxiv, the PDF readers) take most of a second to import;
    # render, import, schema and a re-run of a finished day need none of them.
    from digest.sources.fetch import ArxivMetadata, ArxivQuery

    return ArxivQuery(ArxivMetadata(settings.fetch_options()), query or "", settings.limit)


def _warn_if_published(store: OutputStore) -> None:
    """In a Jekyll site, day files and run reports under a plain folder (outputs/data) are
    published with the site: say so, and how to keep them private."""
    site = Path("_config.yml").is_file()
    if site and not any(part.startswith(("_", ".")) for part in store.data_dir.parts):
        stderr.print(
            f"warning: this is a Jekyll site, and it would publish {store.data_dir}/ (day files "
            "and run reports); run 'digest init .' to write posts to _posts/ and keep day "
            "files in _digest/, or set DIGEST_DATA_DIR to a folder starting with '_'"
        )


def _check_source_options(
    source: SourceName, ids: str | None, query: str | None, limit: int | None, upvotes: int | None
) -> None:
    if source is SourceName.ids and not ids:
        raise UsageError("--source ids needs --ids, e.g. --ids 2512.13604,2512.10655")
    if source is SourceName.arxiv and not (query and query.strip()):
        raise UsageError('--source arxiv needs --query, e.g. --query "cat:cs.CL"')
    if ids and source is not SourceName.ids:
        raise UsageError(f"--ids goes with --source ids, not --source {source.value}")
    if query and source is not SourceName.arxiv:
        raise UsageError(f"--query goes with --source arxiv, not --source {source.value}")
    if upvotes is not None and source is not SourceName.hf:
        raise UsageError("--min-upvotes goes with --source hf")
    if limit is not None and source is SourceName.ids:
        raise UsageError("--limit goes with --source hf or arxiv; --ids takes every ID given")


async def _daily(
    source: Source,
    day: dt.date,
    setup: DaySetup,
    run: RunOptions,
    before_write: Callable[[], None] | None = None,
    published: dict[str, dt.date] | None = None,
) -> DayRun | None:
    """The day's candidates from the source, then the run; None when the source has none.
    ``published`` (a backfill's): the papers of the days before, kept up to date here."""
    candidates = await source.candidates(day)
    if not candidates:
        stderr.print(source.nothing_found(day))
        return None
    plan = plan_day(setup.store, candidates, day, run, published)
    if published is not None:
        for arxiv_id in plan.order:
            published.setdefault(arxiv_id, day)
    with progress_for(stderr, plan.total) as progress:
        return await run_day(plan, setup, run, progress=progress, before_write=before_write)


@app.command("stats")
def stats_command(
    since: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="DATE", help="First day to count (YYYY-MM-DD). Default: the first."
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(
            "--to", metavar="DATE", help="Last day to count (YYYY-MM-DD). Default: the last."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the figures as JSON instead, for scripts.")
    ] = False,
    output_dir: OutputDirOption = None,
) -> None:
    """Show quality and cost per day from the day files and run reports, with no network and
    no LLM: pass rates, re-asks, repairs, failures by stage, tokens, cost, models and prompts.
    """
    with _reporting():
        first = parse_date(since, "--from") if since is not None else None
        last = parse_date(until, "--to") if until is not None else None
        if first is not None and last is not None and first > last:
            raise UsageError(f"--from {first} is after --to {last}; give the earlier day first")
        store = load_settings(output_dir=output_dir).output_store()
        stats = collect(store, first, last)
        for warning in stats.warnings:
            stderr.print(f"warning: {redact(warning)}")
        if not stats.days:
            stderr.print(nothing_found(store.data_dir, first, last))
        if as_json:
            stdout.out(dump_stats(stats), end="", highlight=False)
        elif stats.days:
            show_stats(stdout, stats)


@app.command("paper", epilog=RUN_EXIT_CODES)
def paper_command(
    paper: Annotated[
        str, typer.Argument(metavar="ID|URL|FILE.pdf", help="An arXiv ID or URL, or a local PDF.")
    ],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the paper's entry as JSON instead.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write to this file instead of stdout.")] = None,
    show_prompt: Annotated[
        bool,
        typer.Option("--show-prompt", help="Print the messages the LLM would get; call no LLM."),
    ] = False,
) -> None:
    """Digest one paper and print its block in the post format."""
    with _reporting(RUN_INTERRUPTED):
        settings = load_settings()
        target = parse_paper_argument(paper)
        if out is not None and out.is_dir():
            raise UsageError(f"--out {out} is a folder; give the path of a file to write")
        if out is not None and not out.parent.is_dir():
            raise UsageError(f"--out {out}: the folder {out.parent} does not exist; create it")
        if show_prompt:
            stdout.out(asyncio.run(_prompt_of(settings, target)), end="", highlight=False)
            return
        settings.require_api_key()
        _check_context(settings.llm_options())
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


def _pipeline(settings: Settings, *, uses_llm: bool = True) -> Pipeline:
    # The pipeline's clients (openai, arxiv, the PDF readers) take most of a second to import;
    # render, import, schema and a re-run of a finished day need none of them.
    from digest.llm.cache import DigestCache
    from digest.runs.pipeline import Pipeline

    return Pipeline(
        settings.llm_options(),
        settings.fetch_options(),
        settings.extract_options(),
        DigestCache(settings.cache_dir),
        settings.run_options(),
        uses_llm=uses_llm,
    )


async def _prompt_of(settings: Settings, target: ArxivRef | LocalPdf) -> str:
    async with _pipeline(settings, uses_llm=False) as pipeline:
        paper = await pipeline.paper_text(target)
        messages = pipeline.summarizer.messages_for(paper)
    parts = []
    for message in messages:
        tokens = estimate_tokens(message["content"])
        parts.append(f"--- {message['role']} (about {tokens} tokens) ---\n{message['content']}\n")
    fixed = sum(estimate_tokens(m["content"]) for m in messages[:-1])
    total = fixed + estimate_tokens(messages[-1]["content"])
    reason = f", because {paper.input_reason}" if paper.input_reason else ""
    parts.append(
        f"--- about {total} tokens: {fixed} of instructions and example, the rest the paper "
        f"({paper.input}{reason}) ---\n"
    )
    return "\n".join(parts)


async def _digest_one(settings: Settings, target: ArxivRef | LocalPdf) -> PaperResult:
    async with _pipeline(settings) as pipeline:
        if isinstance(target, ArxivRef):
            (result,) = await pipeline.digest_papers([Candidate(target)])
            return result
        return await pipeline.digest_local_pdf(target)


def main() -> None:
    """The ``digest`` command.

    A Ctrl-C while a command runs ends it in ``_reporting``: one line, exit 130. Once the
    command is done, until the process ends, a Ctrl-C is only noted, and it still ends the
    process with that line and 130: raised there, in click's exit or the interpreter's, a
    KeyboardInterrupt could only end in a traceback. (The workers and clients are closed by
    then, so what is left takes no time.)"""
    # Python's own handler, as asyncio.run expects it to find (it then turns a Ctrl-C into the
    # cancellation of the run's task); ``python -m digest`` had one of its own while loading.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # What digest does not print through its consoles (a crash's traceback, another library's
    # warning) is redacted too.
    protect_std_streams()
    code: str | int | None = 0
    try:
        app(prog_name="digest")
    except SystemExit as leaving:  # click's standalone mode always leaves this way
        code = leaving.code
    except KeyboardInterrupt:  # after _reporting: typer turns most of these into 130 itself
        code = 130
    signal.signal(signal.SIGINT, _note_late_interrupt)
    with suppress(OSError):  # a reader that is gone: nothing more to say to it
        sys.stdout.flush()  # may wait on a reader: a pipe to a pager
    # What is left is the interpreter's own exit, which waits on nothing now: a Ctrl-C in it
    # comes after all is said, and changes nothing.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if code == 130 or _State.late_interrupt:
        _say_interrupted(_State.interrupt_line or INTERRUPTED)
        code = 130
    sys.exit(code)


def _note_late_interrupt(signum: int, frame: object) -> None:
    _State.late_interrupt = True
