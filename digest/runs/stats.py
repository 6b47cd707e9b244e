"""Quality over time: figures per day, read from the day files and run reports alone.

``digest stats`` answers "did the model or prompt change make things worse?" without the
network, an LLM or a key: everything it shows is already recorded in each entry's provenance
(what the LLM read, its answers, the repairs, tokens and cost) and in the run report next to
the day file (the papers that failed, the stage they stopped at, what their answers cost).

Imported entries (``provenance.source == "import"``) are posts written before digest: they
count as papers, and nothing else is known of them, so they stay out of every rate, token and
cost figure (and are counted, so the reader knows how many were left out).
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer
from rich.console import Console, JustifyMethod
from rich.measure import Measurement
from rich.table import Table

from digest.blog.store import OutputStore
from digest.errors import DataFileError
from digest.llm.grounding import digest_lines
from digest.models import Day, RunReport, Stage, leave_out_none

# Failures are grouped by the run report's ``failed_at``; reports written before that field
# existed have null there, counted as "unknown" rather than guessed.
FAILURE_STAGES: tuple[str, ...] = (*get_args(Stage), "unknown")
# Shares and rates keep four decimals (0.6667), money six (as run reports do): enough to see
# a change, and stable from one run of the command to the next.
_RATE_DIGITS = 4
_USD_DIGITS = 6
_RANKING_COUNTS = {
    "candidates",
    "filtered",
    "ranked",
    "kept",
    "requests",
    "tokens_in",
    "tokens_out",
}
SPARKS = "▁▂▃▄▅▆▇█"

# An abstract's reason names the paper's URL, the attempts made and counts of its own
# ("image-only or empty (12 characters on 3 pages)"): without them, the same cause on two
# papers reads the same and is counted once with both.
_REASON_URL = re.compile(r",?\s*(?:\b(?:from|at)\s+)?https?://[^\s,]+")
_REASON_ATTEMPTS = re.compile(r"\s*\bafter \d+ attempts?\b")
_REASON_COUNTS = re.compile(r"\s*\([^()]*\d[^()]*\)")


class Figures(BaseModel):
    """The figures of one day or of several. Counts add up over days; shares, rates and means
    are computed from the summed counts (a day of 2 papers does not weigh as one of 20)."""

    model_config = ConfigDict(extra="forbid")

    papers: int = Field(description="Entries in the day files, imported ones included.")
    imported: int = Field(description="Entries imported from posts: no LLM facts.")
    llm: int = Field(description="Entries the LLM wrote (provenance.source == 'llm').")
    full_text: int = Field(description="LLM entries digested from the PDF's full text.")
    abstract: int = Field(description="LLM entries digested from the abstract.")
    full_text_share: float | None = Field(
        description="full_text / (full_text + abstract); null when neither."
    )
    abstract_share: float | None = Field(description="abstract / (full_text + abstract).")
    abstract_reasons: dict[str, int] = Field(
        description="Why the abstract was used (provenance.input_reason, without the URL, "
        "attempts and counts that differ from paper to paper), most frequent first."
    )
    answered: int = Field(description="LLM entries with at least one recorded call.")
    first_answer_ok: int = Field(description="Of those, entries whose first answer passed.")
    first_answer_pass_rate: float | None = Field(
        description="first_answer_ok / answered; null when none was answered."
    )
    reasks: int = Field(description="Answers after the first, over the answered entries.")
    reasks_per_paper: float | None = Field(description="reasks / answered.")
    repaired_papers: int = Field(description="Entries with a grounding repair of a number.")
    grounding_repairs: int = Field(description="Grounding repairs (numbers), in all.")
    ungrounded_names: int = Field(description="Names the paper never mentions, in all.")
    lines: int = Field(description="Lines of every entry's digest, imported ones included.")
    evidenced_lines: int = Field(
        description="Of those, lines with quotes of the paper verified when the digest was made "
        "(entries made before evidence was asked for, and imported ones, have none)."
    )
    evidence_share: float | None = Field(description="evidenced_lines / lines; null when none.")
    evidence_reasks: int = Field(
        description="Answers of the LLM entries sent back because a line's quotes were not in "
        "the paper (calls with outcome 'unsupported')."
    )
    run_reports: int = Field(description="Days whose run report was read.")
    failed: int = Field(description="Papers of the run reports that failed or were stopped.")
    failures_by_stage: dict[str, int] = Field(
        description="Those papers by failed_at; every stage is always present."
    )
    tokens_in: int = Field(description="Prompt tokens of the LLM entries' digests.")
    tokens_out: int = Field(description="Answer tokens of the LLM entries' digests.")
    cost_usd: float = Field(description="USD of the LLM entries whose cost is known.")
    unpriced: int = Field(description="LLM entries whose cost is unknown (no price).")
    cost_per_paper_usd: float | None = Field(
        description="cost_usd over the LLM entries whose cost is known; null when none is."
    )
    failed_tokens_in: int = Field(description="Prompt tokens the failed papers' answers took.")
    failed_tokens_out: int = Field(description="Answer tokens of the failed papers.")
    failed_cost_usd: float = Field(description="USD of the failed papers whose cost is known.")
    failed_unpriced: int = Field(description="Failed papers that used tokens at no known price.")
    total_cost_usd: float = Field(
        description="cost_usd + failed_cost_usd: what the papers cost, as far as it is known."
    )
    batch: int = Field(description="LLM entries answered through the Batch API.")
    batch_saved_usd: float = Field(
        description="What the Batch API's price saved on those, against interactive prices."
    )
    models: dict[str, int] = Field(description="provenance.model of the LLM entries, by count.")
    prompt_versions: dict[str, int] = Field(description="provenance.prompt_version, by count.")
    ranking: RankingFigures | None = Field(
        default=None,
        description="The days chosen by interests, from their run reports; left out when none.",
    )

    @model_serializer(mode="wrap")
    def _leave_out_no_ranking(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return leave_out_none(handler(self), "ranking")


class RankingFigures(BaseModel):
    """What choosing papers by interests did and cost, summed over the days it ran."""

    model_config = ConfigDict(extra="forbid")

    days: int = Field(description="Run reports with a ranking.")
    candidates: int
    filtered: int = Field(description="Left out by the keywords.")
    ranked: int = Field(description="Scored, now or from the cache.")
    kept: int
    failed: int = Field(description="Days whose ranking failed (the source's order kept).")
    requests: int
    tokens_in: int
    tokens_out: int
    cost_usd: float = Field(description="USD of the rankings whose cost is known.")


# Bases listed after Figures put their fields first: "date" and "days" open each object.
class _Dated(BaseModel):
    date: dt.date
    run_report: bool = Field(description="Whether the day's run report was read.")


class _Counted(BaseModel):
    days: int = Field(description="Day files counted (unreadable ones are not).")


class DayFigures(Figures, _Dated):
    """One day's figures."""


class TotalFigures(Figures, _Counted):
    """The figures of every day counted, from their summed counts."""


class Stats(BaseModel):
    """What ``digest stats --json`` prints."""

    model_config = ConfigDict(extra="forbid")

    data_dir: str
    from_date: dt.date | None = Field(serialization_alias="from")
    to_date: dt.date | None = Field(serialization_alias="to")
    days: list[DayFigures]
    total: TotalFigures
    warnings: list[str] = Field(description="Files that were skipped, or read in part, and why.")


@dataclass
class _Tally:
    """Counts only: they add up across days, and every share is derived from them at the end."""

    papers: int = 0
    imported: int = 0
    llm: int = 0
    full_text: int = 0
    abstract: int = 0
    abstract_reasons: Counter[str] = field(default_factory=Counter)
    answered: int = 0
    first_answer_ok: int = 0
    reasks: int = 0
    repaired_papers: int = 0
    grounding_repairs: int = 0
    ungrounded_names: int = 0
    lines: int = 0
    evidenced_lines: int = 0
    evidence_reasks: int = 0
    run_reports: int = 0
    failed: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    unpriced: int = 0
    failed_tokens_in: int = 0
    failed_tokens_out: int = 0
    failed_cost_usd: float = 0.0
    failed_unpriced: int = 0
    batch: int = 0
    batch_saved_usd: float = 0.0
    models: Counter[str] = field(default_factory=Counter)
    prompt_versions: Counter[str] = field(default_factory=Counter)
    ranking: Counter[str] = field(default_factory=Counter)  # RankingFigures' counts
    ranking_usd: float = 0.0

    def add_day(self, day: Day) -> None:
        for entry in day.papers:
            self.papers += 1
            count = len(digest_lines(entry.digest))
            self.lines += count
            self.evidenced_lines += count if entry.evidence is not None else 0
            provenance = entry.provenance
            if provenance.source == "import":
                self.imported += 1
                continue
            self.llm += 1
            self.models[provenance.model or "unknown"] += 1
            self.prompt_versions[provenance.prompt_version or "unknown"] += 1
            if provenance.input == "full-text":
                self.full_text += 1
            elif provenance.input == "abstract":
                self.abstract += 1
                self.abstract_reasons[reason_kind(provenance.input_reason)] += 1
            # Entries written before calls were recorded say nothing about first answers.
            if provenance.calls:
                self.answered += 1
                self.first_answer_ok += provenance.calls[0].outcome == "ok"
                self.reasks += len(provenance.calls) - 1
                self.evidence_reasks += sum(c.outcome == "unsupported" for c in provenance.calls)
            if provenance.grounding_repairs:
                self.repaired_papers += 1
                self.grounding_repairs += len(provenance.grounding_repairs)
            self.ungrounded_names += len(provenance.ungrounded_names)
            self.tokens_in += provenance.tokens_in or 0
            self.tokens_out += provenance.tokens_out or 0
            # A null cost is a model without a price, not a free digest: counted apart, so a
            # total is never shown as complete when it is not.
            if provenance.cost_usd is None:
                self.unpriced += 1
            else:
                self.cost_usd += provenance.cost_usd
            if provenance.mode == "batch":
                self.batch += 1
                self.batch_saved_usd += provenance.saved_usd or 0.0

    def add_report(self, report: RunReport) -> None:
        self.run_reports += 1
        if report.ranking is not None:
            counts = report.ranking.model_dump(include=_RANKING_COUNTS)
            self.ranking.update({"days": 1, "failed": report.ranking.failed is not None, **counts})
            self.ranking_usd += report.ranking.cost_usd or 0.0
        for paper in report.papers:
            if not paper.unfinished:
                continue  # a digested paper's cost is in its entry already
            self.failed += 1
            self.failures[paper.failed_at or "unknown"] += 1
            tokens_in, tokens_out = paper.tokens_in or 0, paper.tokens_out or 0
            self.failed_tokens_in += tokens_in
            self.failed_tokens_out += tokens_out
            # Run reports write null both for nothing spent and for tokens at an unknown
            # price: tokens with a null cost are the second.
            if paper.cost_usd is not None:
                self.failed_cost_usd += paper.cost_usd
            elif tokens_in or tokens_out:
                self.failed_unpriced += 1

    def add(self, other: _Tally) -> None:
        for name, value in vars(other).items():
            if isinstance(value, Counter):
                getattr(self, name).update(value)
            else:
                setattr(self, name, getattr(self, name) + value)

    def figures(self) -> dict[str, object]:
        read = self.full_text + self.abstract
        return {
            "papers": self.papers,
            "imported": self.imported,
            "llm": self.llm,
            "full_text": self.full_text,
            "abstract": self.abstract,
            "full_text_share": _ratio(self.full_text, read),
            "abstract_share": _ratio(self.abstract, read),
            "abstract_reasons": _by_count(self.abstract_reasons),
            "answered": self.answered,
            "first_answer_ok": self.first_answer_ok,
            "first_answer_pass_rate": _ratio(self.first_answer_ok, self.answered),
            "reasks": self.reasks,
            "reasks_per_paper": _ratio(self.reasks, self.answered),
            "repaired_papers": self.repaired_papers,
            "grounding_repairs": self.grounding_repairs,
            "ungrounded_names": self.ungrounded_names,
            "lines": self.lines,
            "evidenced_lines": self.evidenced_lines,
            "evidence_share": _ratio(self.evidenced_lines, self.lines),
            "evidence_reasks": self.evidence_reasks,
            "run_reports": self.run_reports,
            "failed": self.failed,
            "failures_by_stage": {stage: self.failures[stage] for stage in FAILURE_STAGES},
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": round(self.cost_usd, _USD_DIGITS),
            "unpriced": self.unpriced,
            # Over the priced digests only: an unpriced one is left out, not taken as free.
            "cost_per_paper_usd": _ratio(self.cost_usd, self.llm - self.unpriced, _USD_DIGITS),
            "failed_tokens_in": self.failed_tokens_in,
            "failed_tokens_out": self.failed_tokens_out,
            "failed_cost_usd": round(self.failed_cost_usd, _USD_DIGITS),
            "failed_unpriced": self.failed_unpriced,
            "total_cost_usd": round(self.cost_usd + self.failed_cost_usd, _USD_DIGITS),
            "batch": self.batch,
            "batch_saved_usd": round(self.batch_saved_usd, _USD_DIGITS),
            "models": _by_count(self.models),
            "prompt_versions": _by_count(self.prompt_versions),
            "ranking": self._ranking(),
        }

    def _ranking(self) -> dict[str, object] | None:
        if not self.ranking["days"]:
            return None
        counts = {name: self.ranking[name] for name in ("days", "failed", *_RANKING_COUNTS)}
        return {**counts, "cost_usd": round(self.ranking_usd, _USD_DIGITS)}


def reason_kind(reason: str | None) -> str:
    """The cause an abstract's reason names, without what differs from paper to paper."""
    if not reason:
        return "no reason recorded"
    kind = _REASON_URL.sub("", reason)
    kind = _REASON_ATTEMPTS.sub("", kind)
    kind = _REASON_COUNTS.sub("", kind)
    return kind.strip(" ,;:") or reason


def _ratio(part: float, whole: int, digits: int = _RATE_DIGITS) -> float | None:
    return round(part / whole, digits) if whole else None


def _by_count(counter: Counter[str]) -> dict[str, int]:
    # Most frequent first, ties by name: the same data always prints the same way.
    return dict(sorted(counter.items(), key=lambda item: (-item[1], item[0])))


def select_dates(
    store: OutputStore, since: dt.date | None = None, until: dt.date | None = None
) -> list[dt.date]:
    """The dates with a day file, oldest first, from ``since`` to ``until`` inclusive."""
    return [
        date
        for date in store.dates()
        if (since is None or date >= since) and (until is None or date <= until)
    ]


def read_report(store: OutputStore, date: dt.date, warnings: list[str]) -> RunReport | None:
    """The day's run report, or None with no warning when there is none (a day imported or
    made before run reports existed). A report that cannot be read is None with a warning in
    ``warnings``, as is each read report's figures out of range (read as unknown)."""
    try:
        return store.load_report(date, warnings.append)
    except DataFileError as error:
        warnings.append(f"{error}; its failures are not counted")
        return None


def collect(
    store: OutputStore, since: dt.date | None = None, until: dt.date | None = None
) -> Stats:
    """Every day file from ``since`` to ``until``, read and counted. A day file that cannot
    be read is skipped and a run report that cannot be read is left out, each with a warning:
    one broken file must not hide months of figures."""
    warnings: list[str] = []
    days: list[DayFigures] = []
    total = _Tally()
    for date in select_dates(store, since, until):
        try:
            day = store.load_day(date, warnings.append)
        except DataFileError as error:
            warnings.append(f"{error}; skipped")
            continue
        tally = _Tally()
        tally.add_day(day)
        report = read_report(store, date, warnings)
        if report is not None:
            tally.add_report(report)
        total.add(tally)
        figures = {"date": date, "run_report": report is not None, **tally.figures()}
        days.append(DayFigures.model_validate(figures))
    return Stats(
        data_dir=str(store.data_dir),
        from_date=since,
        to_date=until,
        days=days,
        total=TotalFigures.model_validate({"days": len(days), **total.figures()}),
        warnings=warnings,
    )


def dump_stats(stats: Stats) -> str:
    return stats.model_dump_json(indent=2, by_alias=True) + "\n"


# --- the table and the trend -------------------------------------------------------------


def nothing_found(data_dir: Path, first: dt.date | None, last: dt.date | None) -> str:
    """The line said when no day file is in the range."""
    if first and last:
        within = f" from {first} to {last}"
    elif first or last:
        within = f" from {first} on" if first else f" up to {last}"
    else:
        within = ""
    return f"No day files in {data_dir}{within}; nothing to count."


def show_stats(console: Console, stats: Stats) -> None:
    """The tables, the notes under them and the trend."""
    for table in stats_tables(stats):
        _print_unsqueezed(console, table)
    for line in [*notes(stats), *trend(stats)]:
        # Reasons, models and paths come from files: never read as markup.
        console.print(line, markup=False, highlight=False)


def _print_unsqueezed(console: Console, table: Table) -> None:
    """A terminal's width is fitted; a log or a pipe has none, and rich's default there of
    80 columns would cut the figures to '…'. There the table gets the width it needs."""
    if console.is_terminal:
        console.print(table, markup=False)
        return
    width = Measurement.get(console, console.options.update_width(1_000), table).maximum
    wide = Console(
        file=console.file, width=max(width, console.width), markup=False, highlight=False
    )
    wide.print(table)


def stats_tables(stats: Stats) -> list[Table]:
    """Two tables, one row per day and a total row each: quality (what the LLM was given and
    how its answers fared, with the model and prompt beside them), then cost. Each fits a
    120-column terminal, where one table of both would not."""
    return [_quality_table(stats), _cost_table(stats)]


# A column: its header, its total, how it is justified, and whether its cells may wrap.
_Column = tuple[str, str, JustifyMethod, bool]


def _table(title: str, columns: list[_Column], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left", show_footer=True)
    for name, footer, justify, wraps in columns:
        # On a narrow terminal rich wraps the columns that may wrap and keeps the others whole:
        # a date or a figure cut to "2025-1…" would be no figure at all.
        table.add_column(
            name,
            footer=footer,
            justify=justify,
            no_wrap=not wraps,
            overflow="fold" if wraps else "ellipsis",  # a model's name folds, never cut short
        )
    for row in rows:
        table.add_row(*row)
    return table


def _quality_table(stats: Stats) -> Table:
    total = stats.total
    columns: list[_Column] = [
        ("date", "total", "left", False),
        ("papers", _papers(total), "right", True),
        ("full text", _percent(total.full_text_share), "right", False),
        ("1st ok", _percent(total.first_answer_pass_rate), "right", False),
        ("re-asks", _mean(total.reasks_per_paper), "right", False),
        ("repairs", _repairs(total), "right", True),
        ("names", str(total.ungrounded_names), "right", False),
        ("evidence", _percent(total.evidence_share), "right", False),
        ("failed", _failures(total, known=total.run_reports > 0), "left", True),
        ("model", _values(total.models), "left", True),
        ("prompt", _values(total.prompt_versions), "left", True),
    ]
    rows = [
        [
            day.date.isoformat(),
            _papers(day),
            _percent(day.full_text_share),
            _percent(day.first_answer_pass_rate),
            _mean(day.reasks_per_paper),
            _repairs(day),
            str(day.ungrounded_names),
            _percent(day.evidence_share),
            _failures(day, known=day.run_report),
            _values(day.models),
            _values(day.prompt_versions),
        ]
        for day in stats.days
    ]
    return _table(f"digest stats: {stats.data_dir}: quality", columns, rows)


def _cost_table(stats: Stats) -> Table:
    total = stats.total
    known = total.run_reports > 0
    columns: list[_Column] = [
        ("date", "total", "left", False),
        ("tokens in/out", _tokens(total.tokens_in, total.tokens_out), "right", False),
        ("digests $", _cost(total.cost_usd, total.unpriced), "right", False),
        ("$/paper", _usd(total.cost_per_paper_usd), "right", False),
        ("failed tokens", _failed_tokens(total, known=known), "right", False),
        ("failed $", _failed_cost(total, known=known), "right", False),
        ("total $", _total_cost(total), "right", False),
    ]
    rows = [
        [
            day.date.isoformat(),
            _tokens(day.tokens_in, day.tokens_out),
            _cost(day.cost_usd, day.unpriced),
            _usd(day.cost_per_paper_usd),
            _failed_tokens(day, known=day.run_report),
            _failed_cost(day, known=day.run_report),
            _total_cost(day),
        ]
        for day in stats.days
    ]
    return _table(f"digest stats: {stats.data_dir}: cost", columns, rows)


LEGEND = (
    "full text: share of the LLM's digests read from the PDF; 1st ok: share whose first "
    "answer passed; re-asks: answers after the first, per paper; repairs: numbers repaired "
    "(in so many papers); names: ungrounded names; evidence: share of the lines whose quotes "
    "of the paper were verified; failed: papers failed or stopped, by stage, "
    "from the day's last run report; $/paper: a digest's cost, on average; total $: the "
    "digests and the failed papers."
)


def notes(stats: Stats) -> list[str]:
    """What the table's cells have no room for: what the columns mean, the reasons for the
    abstract, the imported entries left out, the costs not known, the days without a report."""
    total = stats.total
    lines = [LEGEND]
    if total.abstract_reasons:
        reasons = ", ".join(f"{reason} ×{n}" for reason, n in total.abstract_reasons.items())
        lines.append(f"From the abstract: {reasons}.")
    if total.imported:
        lines.append(
            f"{_count(total.imported, 'imported entry', 'imported entries')} count as papers, "
            "and not in the rates, tokens or costs."
        )
    if total.unpriced or total.failed_unpriced:
        parts = []
        if total.unpriced:
            parts.append(_count(total.unpriced, "digest", "digests"))
        if total.failed_unpriced:
            parts.append(_count(total.failed_unpriced, "failed paper", "failed papers"))
        lines.append(
            f"?: {' and '.join(parts)} used a model with no price (or had a bad cost, read "
            "as unknown); the costs shown leave them out, and $/paper is over the digests "
            "whose cost is known."
        )
    if total.evidence_reasks:
        lines.append(
            f"Evidence: {_count(total.evidence_reasks, 'answer was', 'answers were')} sent "
            "back for quotes that were not in the paper."
        )
    if total.batch:
        lines.append(
            f"Batch API: {_count(total.batch, 'digest', 'digests')} answered at the batch "
            f"price, {total.batch_saved_usd:.4f} USD less than interactive requests would cost."
        )
    ranking = total.ranking
    if ranking is not None:
        lines.append(
            f"Interests: {_count(ranking.days, 'day', 'days')} ranked, "
            f"{ranking.candidates} candidates, {ranking.filtered} filtered out, "
            f"{ranking.ranked} scored, {ranking.kept} kept"
            + (f", {ranking.failed} failed" if ranking.failed else "")
            + f"; {ranking.requests} requests, "
            f"{_tokens(ranking.tokens_in, ranking.tokens_out)} tokens, "
            f"{ranking.cost_usd:.4f} USD (not in the costs above)."
        )
    missing = sum(not day.run_report for day in stats.days)
    if missing:
        lines.append(
            f"{_count(missing, 'day', 'days')} without a run report: no failures are known "
            f"for {'it' if missing == 1 else 'them'}."
        )
    return lines


def trend(stats: Stats) -> list[str]:
    """Sparklines of the cost and the first-answer pass rate, one mark a day file, so that a
    change of model or prompt stands out at a glance."""
    if not stats.days:
        return []
    # A day whose cost is partly unknown gets "?", not a bar: its known part would read as a
    # drop in cost.
    unknown = [bool(day.unpriced or day.failed_unpriced) for day in stats.days]
    costs = [
        None if unknown_cost else day.total_cost_usd
        for day, unknown_cost in zip(stats.days, unknown, strict=True)
    ]
    rates = [day.first_answer_pass_rate for day in stats.days]
    first, last = stats.days[0].date, stats.days[-1].date
    return [
        f"Trend {first} → {last}, one mark a day file (· no data, ? cost unknown):",
        f"  cost $   {sparkline(costs, unknown)}  {_range(costs, _usd)}",
        f"  1st ok   {sparkline(rates)}  {_range(rates, _percent)}",
    ]


def sparkline(values: Iterable[float | None], unknown: Iterable[bool] = ()) -> str:
    """One block a value, scaled from the smallest to the largest; ``·`` for a day with no
    value, ``?`` for one whose value is unknown (``unknown``, by position) or not finite (the
    models read such figures from files as unknown already: this keeps the trend from ever
    failing on one)."""
    given = list(values)
    marks = [*unknown, *([False] * len(given))]
    values = [value if value is None or math.isfinite(value) else None for value in given]
    known = [value for value in values if value is not None]
    low, high = (min(known), max(known)) if known else (0.0, 0.0)
    line = []
    for value, original, is_unknown in zip(values, given, marks, strict=False):
        if value is None:
            line.append("?" if is_unknown or original is not None else "·")
        elif high == low:
            line.append(SPARKS[len(SPARKS) // 2 - 1])  # no change: a level line, mid-height
        else:
            line.append(SPARKS[round((value - low) / (high - low) * (len(SPARKS) - 1))])
    return "".join(line)


def _range(values: list[float | None], show: Callable[[float | None], str]) -> str:
    known = [value for value in values if value is not None]
    if not known:
        return "no data"
    return f"min {show(min(known))}, max {show(max(known))}"


def _count(number: int, one: str, many: str) -> str:
    return f"{number} {one if number == 1 else many}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


def _mean(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _usd(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _cost(known: float, unpriced: int) -> str:
    # Some papers have no price: the known part is a floor, and "+?" says so.
    if not unpriced:
        return f"{known:.4f}"
    return f"{known:.4f}+?" if known else "?"


def _total_cost(figures: Figures) -> str:
    return _cost(figures.total_cost_usd, figures.unpriced + figures.failed_unpriced)


def _papers(figures: Figures) -> str:
    if figures.imported:
        return f"{figures.papers} ({figures.imported} imported)"
    return str(figures.papers)


def _repairs(figures: Figures) -> str:
    if not figures.grounding_repairs:
        return "0"
    return f"{figures.grounding_repairs} in {figures.repaired_papers}"


def _failures(figures: Figures, *, known: bool) -> str:
    if not known:
        return "no report"
    if not figures.failed:
        return "none"
    return ", ".join(
        f"{stage} {count}" for stage, count in figures.failures_by_stage.items() if count
    )


def _tokens(tokens_in: int, tokens_out: int) -> str:
    return f"{tokens_in}/{tokens_out}"


def _failed_tokens(figures: Figures, *, known: bool) -> str:
    return _tokens(figures.failed_tokens_in, figures.failed_tokens_out) if known else "–"


def _failed_cost(figures: Figures, *, known: bool) -> str:
    return _cost(figures.failed_cost_usd, figures.failed_unpriced) if known else "–"


def _values(counts: dict[str, int]) -> str:
    # One value needs no count; several show how the entries split between them.
    if len(counts) == 1:
        return next(iter(counts))
    return ", ".join(f"{value} ×{count}" for value, count in counts.items())
