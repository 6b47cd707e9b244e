"""What a run shows and leaves behind: progress, the summary table, the JSON run report.

On a terminal, progress is a set of rich bars (one overall, one per stage); anywhere else
(cron's mail, CI logs) it is one plain line per finished paper, which reads well in a log.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBars
from rich.table import Table

from digest.files import atomic_write_text
from digest.models import PaperReport, Provenance, RunReport, RunTotals
from digest.options import LlmOptions
from digest.redact import redact
from digest.runs.day import DayRun
from digest.runs.results import STAGES, STATUSES, PaperResult


class PlainProgress:
    """One line per finished paper, for logs."""

    def __init__(self, console: Console, total: int) -> None:
        self.console = console
        self.total = total
        self.finished = 0

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        pass

    def stage_done(self, paper: str, stage: str) -> None:
        pass

    def paper_done(self, result: PaperResult) -> None:
        self.finished += 1
        detail = redact(
            result.error or (result.entry.provenance.input if result.entry else "") or ""
        )
        self.console.print(
            f"[{self.finished}/{self.total}] {result.label}: {result.status}"
            + (f" ({detail})" if detail else ""),
            markup=False,
            highlight=False,
        )


class BarProgress:
    """Rich progress bars on a terminal: the papers, and each stage."""

    def __init__(self, console: Console, total: int) -> None:
        self.bars = RichBars(
            TextColumn("{task.description:<10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self.overall = self.bars.add_task("papers", total=total)
        self.stages: dict[str, TaskID] = {
            stage: self.bars.add_task(stage, total=total) for stage in STAGES
        }
        self.passed: dict[str, set[str]] = {}  # the stages each paper in flight has passed

    def __enter__(self) -> BarProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.bars.stop()

    def stage_done(self, paper: str, stage: str) -> None:
        self.passed.setdefault(paper, set()).add(stage)
        self.bars.advance(self.stages[stage])

    def paper_done(self, result: PaperResult) -> None:
        self.bars.advance(self.overall)
        # Stages a paper did not go through (reused, cached, failed, or from the abstract)
        # count as passed, so every bar ends full.
        for stage in set(STAGES) - self.passed.pop(result.label, set()):
            self.bars.advance(self.stages[stage])


def progress_for(console: Console, total: int) -> PlainProgress | BarProgress:
    return BarProgress(console, total) if console.is_terminal else PlainProgress(console, total)


def summary_table(results: list[PaperResult], title: str = "digest run") -> Table:
    """Paper, status, input kind, tokens, cost and seconds, with totals."""
    table = Table(title=title, title_justify="left", show_footer=True)
    rows = [_row(result) for result in results]
    tokens_in = sum(row.tokens_in for row in rows)
    tokens_out = sum(row.tokens_out for row in rows)
    in_post = sum(r.entry is not None for r in results)
    footers = {
        "paper": "total",
        "status": f"{in_post} of {len(results)} in",
        "input": "",
        "tokens in/out": f"{tokens_in}/{tokens_out}",
        "cost $": f"{sum(row.cost for row in rows):.4f}",
        "seconds": f"{sum(row.seconds for row in rows):.1f}",
    }
    for name, footer in footers.items():
        if name in ("paper", "status", "input"):
            table.add_column(name, footer=footer, justify="left")
        else:
            table.add_column(name, footer=footer, justify="right")
    for row in rows:
        table.add_row(*row.cells)
    return table


@dataclass
class _Row:
    cells: list[str]
    tokens_in: int = 0
    tokens_out: int = 0
    cost: float = 0.0
    seconds: float = 0.0


def _row(result: PaperResult) -> _Row:
    """A paper's line of the table, and what this run spent on it."""
    if result.spent is not None:  # failed at the LLM: its answers were paid for
        spent, cost = result.spent, result.spent_usd
        cells = [result.label, result.status, "", f"{spent.tokens_in}/{spent.tokens_out}"]
        return _Row([*cells, _money(cost), ""], spent.tokens_in, spent.tokens_out, cost or 0.0)
    provenance = result.entry.provenance if result.entry else None
    if provenance is None or result.status in ("reused", "cached"):
        # Nothing was spent on it in this run.
        kind = (provenance.input or "") if provenance else ""
        return _Row([result.label, result.status, kind, "", "", ""])
    return _paid_row(result.label, result.status, provenance)


def _paid_row(label: str, status: str, provenance: Provenance) -> _Row:
    cells = [
        label,
        status,
        provenance.input or "",
        f"{provenance.tokens_in}/{provenance.tokens_out}",
        _money(provenance.cost_usd),
        f"{provenance.seconds or 0:.1f}",
    ]
    return _Row(
        cells,
        provenance.tokens_in or 0,
        provenance.tokens_out or 0,
        provenance.cost_usd or 0.0,
        provenance.seconds or 0.0,
    )


def _money(cost: float | None) -> str:
    return "?" if cost is None else f"{cost:.4f}"


def run_report(run: DayRun, source: str, llm: LlmOptions) -> RunReport:
    """The run report written next to the day file."""
    spent = [_spent_now(result) for result in run.results]
    counts = {status: sum(r.status == status for r in run.results) for status in STATUSES}
    return RunReport(
        date=run.day.date,
        source=source,
        started_at=run.started_at.replace(microsecond=0),
        seconds=round(run.seconds, 3),
        model=llm.model,
        base_url=llm.base_url,  # credentials in it are masked when the report is written
        concurrency=llm.concurrency,
        post=str(run.post) if run.post else None,
        papers=[_paper_report(result) for result in run.results],
        totals=RunTotals(
            papers=len(run.results),
            **counts,
            tokens_in=sum(tokens_in for tokens_in, _, _ in spent),
            tokens_out=sum(tokens_out for _, tokens_out, _ in spent),
            # The ranking by interests is part of what the run paid.
            cost_usd=round(sum(cost for _, _, cost in spent) + _ranking_cost(run), 6),
        ),
        ranking=run.ranking,
    )


def _ranking_cost(run: DayRun) -> float:
    return (run.ranking.cost_usd or 0.0) if run.ranking is not None else 0.0


def _paper_report(result: PaperResult) -> PaperReport:
    provenance = result.entry.provenance if result.entry else None
    tokens_in, tokens_out, cost = _spent_now(result)
    return PaperReport(
        paper=result.label,
        status=result.status,
        error=result.error,
        failed_at=result.failure.stage if result.failure else None,
        input=provenance.input if provenance else None,
        tokens_in=provenance.tokens_in if provenance else tokens_in or None,
        tokens_out=provenance.tokens_out if provenance else tokens_out or None,
        cost_usd=provenance.cost_usd if provenance else cost or None,
        stage_seconds={k: round(v, 3) for k, v in result.times.by_stage().items()},
    )


def _spent_now(result: PaperResult) -> tuple[int, int, float]:
    """Tokens in, out and USD this run paid for a paper: a new digest's, or the answers of
    one that failed at the LLM (paid all the same); nothing for a reused or cached one."""
    if result.status == "done" and result.entry:
        provenance = result.entry.provenance
        return provenance.tokens_in or 0, provenance.tokens_out or 0, provenance.cost_usd or 0.0
    if result.spent is not None:
        return result.spent.tokens_in, result.spent.tokens_out, result.spent_usd or 0.0
    return 0, 0, 0.0


def dump_report(report: RunReport) -> str:
    return report.model_dump_json(indent=2) + "\n"


def write_report(path: Path, report: RunReport) -> str | None:
    """Write ``report`` to ``path``, its secrets masked; why it could not be, or None. The
    day is written by then, and the report is a log: the run goes on without it."""
    try:
        atomic_write_text(path, redact(dump_report(report)))
    except OSError as error:
        return f"could not write {path}: {error.strerror}"
    return None
