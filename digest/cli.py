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
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.markup import escape

from digest import DISTRIBUTION, __version__
from digest.blog import render, schemas, weekly
from digest.blog.notify import notify_day, notify_week
from digest.blog.post_parser import parse_post
from digest.blog.store import OutputLock, OutputStore, dump_day
from digest.errors import STOPPED_WITH_THE_RUN, DigestError, UsageError
from digest.files import atomic_write_text, same_content
from digest.llm.grounding import digest_lines
from digest.models import Day, PaperEntry
from digest.options import BatchOptions, RunOptions
from digest.redact import format_traceback, protect_std_streams, redact, redacting_stream
from digest.runs.day import DayRun
from digest.runs.events import BatchNote, DayBegun, DayDone, NothingFound, RunEvent, Warned
from digest.runs.report import BarProgress, PlainProgress, progress_for, summary_table
from digest.runs.run import (
    BackfillOutcome,
    backfill,
    backfill_in_batches,
    check_llm,
    check_setup,
    daily,
    digest_paper,
    prompt_of,
    saved_batches,
)
from digest.runs.setup import RunSetup
from digest.runs.stats import collect, dump_stats, nothing_found, show_stats
from digest.settings import Settings, load_settings
from digest.settings_doc import setting_help
from digest.sources.papers import (
    ArxivRef,
    HfSource,
    IdsSource,
    Source,
    parse_id_list,
    parse_paper_argument,
    utc_today,
)

if TYPE_CHECKING:
    from digest.llm.batch_folder import BatchRecord

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
# A batch backfill's: the batches go on without it.
BATCH_INTERRUPTED = (
    "interrupted: the batches submitted keep running on the server; run the same "
    "'digest backfill --batch' again to collect them ('digest backfill --status' shows them)"
)


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
        weeks = _weekly_posts_of(store, wanted)
        if check:
            stale += _render_weeks(store, weeks, check=True)
        else:
            with OutputLock(settings.output_dir):
                stale += _render_weeks(store, weeks, check=False)
        if broken:
            stderr.print(f"{broken} of {len(wanted)} day files could not be read.")
            raise typer.Exit(2)
        if check:
            posts = len(wanted) + len(weeks)
            if stale:
                stderr.print(f"{len(stale)} of {posts} posts need 'digest render'.")
                raise typer.Exit(1)
            stderr.print(f"All {posts} posts are up to date.")


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


def _weekly_posts_of(store: OutputStore, dates: list[dt.date]) -> list[tuple[weekly.Week, Path]]:
    """The weekly posts whose week holds one of ``dates``."""
    asked = {weekly.Week.of(date) for date in dates}
    return [(week, path) for week, path in weekly.weekly_posts(store) if week in asked]


def _render_weeks(
    store: OutputStore, weeks: list[tuple[weekly.Week, Path]], *, check: bool
) -> list[Path]:
    """Make each weekly post again from its week's day files; in check mode only report.
    Returns the weekly posts that were (or are) stale."""
    stale = []
    for week, path in weeks:
        text = weekly.render_weekly(week, weekly.read_week(store, week, _warn))
        if text is None:
            stale.append(path)
            stdout.print(f"no papers in its week's day files: {path}")
            continue
        if same_content(path, text.encode("utf-8")):
            continue
        stale.append(path)
        if check:
            stdout.print(f"out of date: {path}")
        else:
            atomic_write_text(path, text)
            stdout.print(f"updated: {path}")
    return stale


def _warn(line: str) -> None:
    stderr.print(f"warning: {redact(line)}", markup=False, highlight=False)


@app.command("weekly")
def weekly_command(
    week: Annotated[
        str | None,
        typer.Option(
            "--week",
            help="The ISO week, Monday to Sunday (YYYY-Www, e.g. 2026-W49). Default: the "
            "last complete week before today in the timezone setting's time zone.",
        ),
    ] = None,
    output_dir: OutputDirOption = None,
) -> None:
    """Write a week's issue from its day files, with no network and no LLM."""
    with _reporting():
        settings = load_settings(output_dir=output_dir)
        store = settings.output_store()
        asked = (
            weekly.parse_week(week)
            if week is not None
            else weekly.last_complete_week(settings.today())
        )
        with OutputLock(settings.output_dir):
            days = weekly.read_week(store, asked, _warn)
            text = weekly.render_weekly(asked, days)
            if text is None:
                stderr.print(
                    f"No papers in the day files of {asked.label} ({asked.monday} to "
                    f"{asked.sunday}) in {store.data_dir}; nothing to write."
                )
                return
            path = weekly.weekly_post_path(store, asked)
            same = same_content(path, text.encode("utf-8"))
            if same:
                stdout.print(f"up to date: {path}")
                return
            atomic_write_text(path, text)
            stdout.print(f"{'wrote' if same is None else 'updated'}: {path}")
        notify_week(settings.notify_options(), asked, days, path, _warn)


@app.command("notify")
def notify_command(
    date: Annotated[
        str | None,
        typer.Option("--date", help="The day whose post is announced, YYYY-MM-DD."),
    ] = None,
    week: Annotated[
        str | None,
        typer.Option(
            "--week",
            help="The week whose issue is announced (YYYY-Www), or 'last' for the week "
            "'digest weekly' writes by default.",
        ),
    ] = None,
    output_dir: OutputDirOption = None,
) -> None:
    """Send the message of a written day post or weekly issue (the notify setting) again:
    e.g. once the site is published, so that its link opens the post. Exit 1 when a
    receiver did not take it."""
    with _reporting():
        if (date is None) == (week is None):
            raise UsageError("give --date or --week (one of them): which post to announce")
        settings = load_settings(output_dir=output_dir)
        options = settings.notify_options()
        if not options.urls:
            raise UsageError(
                "no notify URL is set: set DIGEST_NOTIFY to one or more Apprise URLs "
                "(comma-separated), e.g. ntfy://ntfy.sh/your-topic"
            )
        store = settings.output_store()
        if week is not None:
            asked = (
                weekly.last_complete_week(settings.today())
                if week == "last"
                else weekly.parse_week(week)
            )
            post = weekly.weekly_post_path(store, asked)
            _must_exist(post, f"no weekly issue for {asked.label}: run 'digest weekly' first")
            sent = notify_week(options, asked, weekly.read_week(store, asked, _warn), post, _warn)
        else:
            day = parse_date(date or "", "--date")
            post = store.post_path(day)
            _must_exist(post, f"no post for {day}: run 'digest daily --date {day}' first")
            sent = notify_day(options, store.load_day(day, _warn), post, _warn)
        if not sent:
            raise typer.Exit(1)
        stdout.print(f"announced: {post}")


def _must_exist(post: Path, message: str) -> None:
    if not post.is_file():
        raise UsageError(f"{post}: {message}")


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
        _check_max_cost(max_cost)
        refs = parse_id_list(ids) if source is SourceName.ids and ids else []
        run = settings.run_options(
            force=force,
            max_cost=max_cost,
            limit=None if source is SourceName.ids else settings.limit,  # ids: every one given
        )
        setup = _setup(settings)
        printer = _Printer()
        check_setup(setup, max_cost, printer)
        finished = daily(_source(source, settings, refs, query), day, setup, run, printer)
        if finished is None:
            return  # the source has no papers that day: it said so
        unfinished = sum(r.unfinished for r in finished.results)
        if unfinished:
            stderr.print(f"{unfinished} of {len(finished.results)} papers were not digested.")
            raise typer.Exit(1)


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
            _show_batches(settings)
            return
        start, end = _range_asked(first, last)
        if source is SourceName.ids:
            raise UsageError("backfill takes --source hf or --source arxiv; use 'daily --ids'")
        if reask_interactive and not batch:
            raise UsageError("--reask-interactive goes with --batch")
        _check_source_options(source, None, query, limit, min_upvotes)
        _check_complete(end, source, settings)
        _check_max_cost(max_cost)
        setup = _setup(settings)
        printer = _Printer(hold_days=batch)
        check_setup(setup, max_cost, printer)
        days = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
        chosen = _source(source, settings, [], query)  # one client: arXiv's spacing holds
        # One run's options for the range: its deadline counts from the start of the range.
        run = settings.run_options(max_cost=max_cost, limit=settings.limit)
        if batch:
            options = settings.batch_options(reask_interactive=reask_interactive)
            outcome = _backfill_in_batches(chosen, days, setup, run, options, printer)
        else:
            outcome = backfill(chosen, days, setup, run, printer)
        _say_backfill_done(outcome, f"backfill {start} to {end}", len(days), batch=batch)


def _range_asked(first: str | None, last: str | None) -> tuple[dt.date, dt.date]:
    if first is None or last is None:
        raise UsageError("backfill needs --from and --to (or --status)")
    start, end = parse_date(first, "--from"), parse_date(last, "--to")
    if start > end:
        raise UsageError(f"--from {start} is after --to {end}; give the earlier day first")
    return start, end


def _check_complete(end: dt.date, source: SourceName, settings: Settings) -> None:
    """A backfill's last day must have its complete list."""
    newest = utc_today() - dt.timedelta(days=1) if source is SourceName.hf else settings.today()
    if end > newest:
        raise UsageError(
            f"--to {end} has no complete list yet; the last one is {newest}"
            + (" (Hugging Face's days are UTC days)" if source is SourceName.hf else "")
        )


def _check_max_cost(max_cost: float | None) -> None:
    if max_cost is not None and max_cost < 0:
        raise UsageError(f"--max-cost {max_cost:g} must be zero or more")


def _backfill_in_batches(
    source: Source,
    days: list[dt.date],
    setup: RunSetup,
    run: RunOptions,
    options: BatchOptions,
    printer: _Printer,
) -> BackfillOutcome:
    try:
        outcome = backfill_in_batches(source, days, setup, run, options, printer)
    except (KeyboardInterrupt, asyncio.CancelledError):
        _say_interrupted(BATCH_INTERRUPTED)
        raise typer.Exit(130) from None
    # The days are written as their batches answer, in no order; they are shown in date
    # order, once the batches are done, each table headed by its day.
    printer.show_held_days()
    if outcome.resubmitted:
        stderr.print(f"{outcome.resubmitted} request(s) were sent again after a batch failed them")
    return outcome


def _say_backfill_done(outcome: BackfillOutcome, what: str, days: int, *, batch: bool) -> None:
    """The range's one line, then its exit: the stop or the batches still running, else 1
    when a paper or a day is left."""
    if outcome.stop is not None and not outcome.did_anything:
        raise outcome.stop  # stopped before any day: its one line says it all
    saved = f" ({outcome.saved:.4f} USD saved by the batch price)" if batch else ""
    stderr.print(
        f"{what}: {outcome.days_written} of {days} days written, "
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


def _show_batches(settings: Settings) -> None:
    """``backfill --status``: the saved batches, each open one looked at once."""
    folder = settings.cache_dir / "batches"
    records = saved_batches(settings.llm_options(), folder)
    if not records:
        stdout.print(f"No batches saved in {folder}.")
        return
    stdout.print(f"batches in {folder}:", markup=False, highlight=False)
    for record in records:
        stdout.print(_batch_line(record), markup=False, highlight=False, soft_wrap=True)


def _batch_line(record: BatchRecord) -> str:
    counts = record.counts
    answered = (
        f", {counts.get('completed', 0)} answered, {counts.get('failed', 0)} failed"
        if counts
        else ""
    )
    return (
        f"{record.batch_id or '(being created from ' + record.input_file_id + ')'}  "
        f"round {record.round}  {record.status}  {len(record.requests)} requests{answered}  "
        f"submitted {record.submitted_at:%Y-%m-%d %H:%M} UTC"
        + ("  collected" if record.collected else "")
        + (f"  ({'; '.join(record.errors)})" if record.errors else "")
    )


class _Printer:
    """A run's events as lines on the consoles, and its progress as bars on a terminal (a
    line a paper elsewhere). With ``hold_days``, each day's table waits until
    ``show_held_days``: a batch backfill writes its days as their batches answer."""

    def __init__(self, *, hold_days: bool = False) -> None:
        self.held: list[DayRun] | None = [] if hold_days else None

    def tell(self, event: RunEvent) -> None:
        match event:
            case Warned(line=line):
                stderr.print(f"warning: {line}")
            case NothingFound(line=line) | BatchNote(line=line):
                stderr.print(redact(line), markup=False, highlight=False)
            case DayBegun(date=date, number=number, total=total):
                stderr.print(f"[bold]{date}[/] (day {number} of {total})", markup=True)
            case DayDone(run=run) if self.held is not None:
                self.held.append(run)
            case DayDone(run=run):
                _show(run)

    def progress(self, total: int) -> PlainProgress | BarProgress:
        return progress_for(stderr, total)

    def show_held_days(self) -> None:
        """The days held back, in date order."""
        for run in sorted(self.held or [], key=lambda day_run: day_run.day.date):
            _show(run)


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
        if result.unfinished and result.error != STOPPED_WITH_THE_RUN:
            line = escape(redact(f"{result.label}: {result.error}"))
            stderr.print(f"[bold red]{result.status}:[/] {line}", markup=True)


def _setup(settings: Settings) -> RunSetup:
    """The settings split into what a run uses."""
    return RunSetup(
        store=settings.output_store(),
        llm=settings.llm_options(),
        fetch=settings.fetch_options(),
        extract=settings.extract_options(),
        cache_dir=settings.cache_dir,
        new_day=settings.new_day,
        notify=settings.notify_options(),
        rank=settings.rank_options(),
    )


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

    # A ranked day is chosen from every paper of the day; else the newest few are enough.
    limit = None if settings.rank_options() is not None else settings.limit
    return ArxivQuery(ArxivMetadata(settings.fetch_options()), query or "", limit)


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


@app.command("show")
def show_command(
    date: Annotated[str, typer.Argument(help="The day, YYYY-MM-DD.", show_default=False)],
    arxiv_id: Annotated[
        str | None,
        typer.Option("--id", help="Only this paper of the day (its arXiv ID)."),
    ] = None,
    output_dir: OutputDirOption = None,
) -> None:
    """Print a day's digests with each line's quotes of the paper, and mark every line that
    has no verified evidence (entries made before it was asked for, and imported ones)."""
    with _reporting():
        day = parse_date(date, "DATE")
        store = load_settings(output_dir=output_dir).output_store()
        if not store.data_path(day).is_file():
            raise UsageError(f"{store.data_path(day)}: no day file for {day}")
        papers = store.load_day(day, _warn).papers
        if arxiv_id is not None:
            papers = [entry for entry in papers if entry.arxiv_id == arxiv_id]
            if not papers:
                raise UsageError(f"{store.data_path(day)}: no paper {arxiv_id!r} on {day}")
        for number, entry in enumerate(papers, start=1):
            if number > 1:
                stdout.print()
            for line in evidence_lines(entry, number):
                stdout.print(line, markup=False, highlight=False, soft_wrap=True)


def evidence_lines(entry: PaperEntry, number: int) -> list[str]:
    """A paper's digest as ``digest show`` prints it: each line, then its quotes."""
    shown = [f"{number}. {entry.title}" + (f" ({entry.arxiv_id})" if entry.arxiv_id else "")]
    quotes = entry.evidence.by_field() if entry.evidence is not None else {}
    for field, line in digest_lines(entry.digest):
        shown.append(f"  {field}: {line}")
        if field not in quotes:
            shown.append("      ! no verified evidence")
        shown += [f"      > {' '.join(quote.split())}" for quote in quotes.get(field, [])]
    return shown


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
        setup, run = _setup(settings), settings.run_options()
        if show_prompt:
            stdout.out(prompt_of(setup, run, target), end="", highlight=False)
            return
        check_llm(setup.llm)
        result = digest_paper(setup, run, target)
        if result.entry is None:
            raise DigestError(f"{result.ref}: {result.error}")
        if as_json:
            text = result.entry.model_dump_json(indent=2) + "\n"
        else:
            text = "\n".join(render.render_paper(result.entry, 1, settings.post_links)) + "\n"
        if out is None:
            stdout.out(text, end="", highlight=False)
        else:
            atomic_write_text(out, text)
            stderr.print(f"wrote: {out}")


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
