"""Writes the day files and run reports of tests/test_stats.py, built with the real models.

Run it from the repository root (``python -m tests.data.stats.generate``) after changing the
days below, and commit the JSON; the figures tests/test_stats.py expects are worked out from
these days by hand, in its comments.

- 2025-12-13: prompt v1; one entry made before answers were recorded (no calls); a run report
  written before ``failed_at`` existed, with one failed paper (priced).
- 2025-12-14: prompt v2; four entries, one from the abstract (404) with one re-ask, one with a
  grounding repair; a run report with a paper that failed at its metadata.
- 2025-12-15: prompt v3; three entries (two re-asks, an ungrounded first answer, two repairs,
  an ungrounded name, one from the abstract: image-only); a run report with a paper failed at
  the LLM (priced) and one stopped by the --max-cost cap.
- 2025-12-16: two imported entries, one from a model without a price and one refused first;
  no run report.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Literal, get_args

from digest.blog.store import dump_day
from digest.models import (
    CallUsage,
    Day,
    Links,
    PaperEntry,
    PaperReport,
    Provenance,
    RunReport,
    RunTotals,
    Status,
)
from digest.runs.report import dump_report
from tests.helpers import make_digest

HERE = Path(__file__).parent
Outcome = Literal["ok", "invalid", "ungrounded", "cut off", "refused", "looped"]


def llm_entry(
    arxiv_id: str,
    *,
    outcomes: list[Outcome],
    tokens: tuple[int, int],
    cost: float | None,
    prompt: str,
    model: str = "gpt-4.1-mini",
    reason: str | None = None,
    repairs: list[str] | None = None,
    names: list[str] | None = None,
) -> PaperEntry:
    tokens_in, tokens_out = tokens
    # The calls share the entry's tokens evenly; the figures use only their count and outcomes.
    count = max(len(outcomes), 1)
    calls = [
        CallUsage(tokens_in=tokens_in // count, tokens_out=tokens_out // count, outcome=outcome)
        for outcome in outcomes
    ]
    return PaperEntry(
        arxiv_id=arxiv_id,
        version=1,
        title=f"Paper {arxiv_id}",
        authors=["Jane Doe"],
        links=Links.for_arxiv(arxiv_id),
        digest=make_digest(),
        provenance=Provenance(
            source="llm",
            model=model,
            prompt_version=prompt,
            input="abstract" if reason else "full-text",
            input_reason=reason,
            extractor=None if reason else "pypdf",
            input_chars=1500 if reason else 30000,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            attempts=len(outcomes) or 1,
            seconds=4.2,
            cost_usd=cost,
            calls=calls,
            grounding_repairs=repairs or [],
            ungrounded_names=names or [],
        ),
    )


def imported_entry(arxiv_id: str) -> PaperEntry:
    return PaperEntry(
        arxiv_id=arxiv_id,
        version=None,
        title=f"Imported paper {arxiv_id}",
        links=Links.for_arxiv(arxiv_id),
        digest=make_digest(),
        provenance=Provenance(source="import", imported_from="2025-12-16-daily-papers.md"),
    )


def day(date: dt.date, *entries: PaperEntry) -> Day:
    return Day(date=date, title=f"Daily Papers — {date}", papers=list(entries))


def paper_report(
    paper: str,
    status: Status,
    *,
    failed_at: Literal["metadata", "summarize", "run"] | None = None,
    error: str | None = None,
    tokens: tuple[int, int] | None = None,
    cost: float | None = None,
) -> PaperReport:
    return PaperReport(
        paper=paper,
        status=status,
        error=error,
        failed_at=failed_at,
        input="full-text" if status == "done" else None,
        tokens_in=tokens[0] if tokens else None,
        tokens_out=tokens[1] if tokens else None,
        cost_usd=cost,
        stage_seconds={},
    )


def run_report(date: dt.date, papers: list[PaperReport]) -> RunReport:
    counts = {status: sum(p.status == status for p in papers) for status in get_args(Status)}
    return RunReport(
        date=date,
        source="hf",
        started_at=dt.datetime(date.year, date.month, date.day, 9, 30, tzinfo=dt.UTC),
        seconds=61.5,
        model="gpt-4.1-mini",
        base_url=None,
        concurrency=4,
        post=f"outputs/_posts/{date}-daily-papers.md",
        papers=papers,
        totals=RunTotals(
            papers=len(papers),
            **counts,
            tokens_in=sum(p.tokens_in or 0 for p in papers),
            tokens_out=sum(p.tokens_out or 0 for p in papers),
            cost_usd=round(sum(p.cost_usd or 0 for p in papers), 6),
        ),
    )


def write(target: Path = HERE) -> None:
    d13, d14, d15, d16 = (dt.date(2025, 12, n) for n in (13, 14, 15, 16))
    days = [
        day(
            d13,
            llm_entry("2512.10001", outcomes=[], tokens=(4000, 300), cost=0.0020, prompt="v1"),
            llm_entry("2512.10002", outcomes=["ok"], tokens=(4100, 310), cost=0.0021, prompt="v1"),
        ),
        day(
            d14,
            llm_entry("2512.10011", outcomes=["ok"], tokens=(5000, 400), cost=0.0026, prompt="v2"),
            llm_entry("2512.10012", outcomes=["ok"], tokens=(5200, 420), cost=0.0028, prompt="v2"),
            llm_entry(
                "2512.10013",
                outcomes=["invalid", "ok"],
                tokens=(2400, 800),
                cost=0.0022,
                prompt="v2",
                reason="PDF download failed: HTTP 404 from "
                "https://export.arxiv.org/pdf/2512.10013v1 after 1 attempt",
            ),
            llm_entry(
                "2512.10014",
                outcomes=["ok"],
                tokens=(5100, 410),
                cost=0.0027,
                prompt="v2",
                repairs=["results[0]: dropped the line with 38.5%, which the paper never states"],
            ),
        ),
        day(
            d15,
            llm_entry(
                "2512.10021",
                outcomes=["invalid", "invalid", "ok"],
                tokens=(15000, 1300),
                cost=0.0081,
                prompt="v3",
                repairs=[
                    "results[0]: took out 71.2%, which the paper never states",
                    "method[1]: took out 12 layers, which the paper never states",
                ],
                names=["FooBench"],
            ),
            llm_entry(
                "2512.10022",
                outcomes=["ungrounded", "ok"],
                tokens=(10000, 900),
                cost=0.0054,
                prompt="v3",
            ),
            llm_entry(
                "2512.10023",
                outcomes=["ok"],
                tokens=(1200, 400),
                cost=0.0011,
                prompt="v3",
                reason="image-only or empty (40 characters on 2 pages)",
            ),
        ),
        day(
            d16,
            imported_entry("2512.13672"),
            imported_entry("2512.13604"),
            llm_entry(
                "2512.10031",
                outcomes=["ok"],
                tokens=(4000, 500),
                cost=None,
                prompt="v3",
                model="my-local",
            ),
            llm_entry(
                "2512.10032",
                outcomes=["refused", "ok"],
                tokens=(8000, 800),
                cost=0.0045,
                prompt="v3",
            ),
        ),
    ]
    reports = {
        d13: run_report(
            d13,
            [
                paper_report("2512.10001v1", "reused"),
                paper_report("2512.10002v1", "done", tokens=(4100, 310), cost=0.0021),
                paper_report(
                    "2512.10003v1",
                    "failed",
                    error="no usable digest after 3 answers",
                    tokens=(3000, 700),
                    cost=0.0023,
                ),
            ],
        ),
        d14: run_report(
            d14,
            [
                *(
                    paper_report(f"2512.1001{n}v1", "done", tokens=(5000, 400), cost=0.0026)
                    for n in range(1, 5)
                ),
                paper_report(
                    "2512.10015v1", "failed", failed_at="metadata", error="not found on arXiv"
                ),
            ],
        ),
        d15: run_report(
            d15,
            [
                *(paper_report(f"2512.1002{n}v1", "cached") for n in range(1, 4)),
                paper_report(
                    "2512.10024v1",
                    "failed",
                    failed_at="summarize",
                    error="no usable digest after 3 answers",
                    tokens=(9000, 1500),
                    cost=0.0060,
                ),
                paper_report(
                    "2512.10025v1", "stopped", failed_at="run", error="the --max-cost cap"
                ),
            ],
        ),
    }
    for each in days:
        (target / f"{each.date}.json").write_text(dump_day(each), encoding="utf-8")
    for date, report in reports.items():
        text = dump_report(report)
        if date == d13:
            # Written before run reports named the stage a paper stopped at.
            text = text.replace('      "failed_at": null,\n', "")
        (target / f"{date}.run.json").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    write()
