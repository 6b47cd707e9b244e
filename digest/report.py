"""What a run shows and leaves behind: progress, the summary table, the JSON run report.

On a terminal, progress is a set of rich bars (one overall, one per stage); anywhere else
(cron's mail, CI logs) it is one plain line per finished paper, which reads well in a log.
"""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBars
from rich.table import Table

from digest.day import STAGES, STATUSES, DayRun, PaperResult
from digest.redact import redact
from digest.settings import Settings


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


def summary_table(results: list[PaperResult]) -> Table:
    """Paper, status, input kind, tokens, cost and seconds, with totals."""
    table = Table(title="digest run", title_justify="left", show_footer=True)
    columns = [("paper", "total"), ("status", ""), ("input", ""), ("tokens in/out", ""),
               ("cost $", ""), ("seconds", "")]  # fmt: skip
    tokens_in = tokens_out = 0
    cost = seconds = 0.0
    rows = []
    for result in results:
        provenance = result.entry.provenance if result.entry else None
        if result.spent is not None:  # failed at the LLM: its answers were paid for
            spent_in, spent_out, spent_cost = result.spent
            tokens_in, tokens_out, cost = (
                tokens_in + spent_in,
                tokens_out + spent_out,
                cost + (spent_cost or 0),
            )
            money = "?" if spent_cost is None else f"{spent_cost:.4f}"
            rows.append([result.label, result.status, "", f"{spent_in}/{spent_out}", money, ""])
            continue
        if provenance is None or result.status in ("reused", "cached"):
            # Nothing was spent on it in this run.
            rows.append(
                [
                    result.label,
                    result.status,
                    provenance.input or "" if provenance else "",
                    "",
                    "",
                    "",
                ]
            )
            continue
        tokens_in += provenance.tokens_in or 0
        tokens_out += provenance.tokens_out or 0
        cost += provenance.cost_usd or 0
        seconds += provenance.seconds or 0
        rows.append(
            [
                result.label,
                result.status,
                provenance.input or "",
                f"{provenance.tokens_in}/{provenance.tokens_out}",
                "?" if provenance.cost_usd is None else f"{provenance.cost_usd:.4f}",
                f"{provenance.seconds or 0:.1f}",
            ]
        )
    in_post = sum(r.entry is not None for r in results)
    footers = [
        "total",
        f"{in_post} of {len(results)} in",
        "",
        f"{tokens_in}/{tokens_out}",
        f"{cost:.4f}",
        f"{seconds:.1f}",
    ]
    for (name, _), footer in zip(columns, footers, strict=True):
        table.add_column(
            name, footer=footer, justify="left" if name in ("paper", "status", "input") else "right"
        )
    for row in rows:
        table.add_row(*row)
    return table


def run_report(run: DayRun, settings: Settings, source: str) -> dict[str, Any]:
    """The JSON run report written next to the day file."""
    papers = []
    for result in run.results:
        provenance = result.entry.provenance if result.entry else None
        tokens_in, tokens_out, cost = _spent_now(result)
        papers.append(
            {
                "paper": result.label,
                "status": result.status,
                "error": result.error,
                "input": provenance.input if provenance else None,
                "tokens_in": provenance.tokens_in if provenance else tokens_in or None,
                "tokens_out": provenance.tokens_out if provenance else tokens_out or None,
                "cost_usd": provenance.cost_usd if provenance else cost or None,
                "stage_seconds": {k: round(v, 3) for k, v in result.stage_seconds.items()},
            }
        )
    spent = [_spent_now(result) for result in run.results]
    return {
        "date": run.day.date.isoformat(),
        "source": source,
        "started_at": run.started_at.isoformat(timespec="seconds"),
        "seconds": round(run.seconds, 3),
        "model": settings.model,
        "base_url": settings.base_url,  # credentials in it are masked when the report is written
        "concurrency": settings.concurrency,
        "post": str(run.post) if run.post else None,
        "papers": papers,
        "totals": {
            "papers": len(run.results),
            **{s: sum(r.status == s for r in run.results) for s in STATUSES},
            "tokens_in": sum(tokens_in for tokens_in, _, _ in spent),
            "tokens_out": sum(tokens_out for _, tokens_out, _ in spent),
            "cost_usd": round(sum(cost for _, _, cost in spent), 6),
        },
    }


def _spent_now(result: PaperResult) -> tuple[int, int, float]:
    """Tokens in, out and USD this run paid for a paper: a new digest's, or the answers of
    one that failed at the LLM (paid all the same); nothing for a reused or cached one."""
    if result.status == "done" and result.entry:
        provenance = result.entry.provenance
        return provenance.tokens_in or 0, provenance.tokens_out or 0, provenance.cost_usd or 0.0
    if result.spent is not None:
        tokens_in, tokens_out, cost = result.spent
        return tokens_in, tokens_out, cost or 0.0
    return 0, 0, 0.0


def dump_report(report: dict[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"
