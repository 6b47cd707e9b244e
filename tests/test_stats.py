"""digest stats: quality and cost per day, read offline from committed day files and run
reports (tests/data/stats/, written by its generate.py; each day is described there).

The figures below are worked out by hand from those days:

- 12-13: 2 entries (one has no calls); the first answer of the other passed; a report from
  before failed_at with one failed paper (3000/700 tokens, $0.0023).
- 12-14: 4 entries, 3 from the full text; first answers ok, ok, invalid, ok (1 re-ask); one
  number repaired; a paper failed at its metadata.
- 12-15: 3 entries, 2 from the full text; first answers invalid (2 re-asks), ungrounded (1),
  ok; 2 numbers repaired in one entry, 1 ungrounded name; failed at summarize (9000/1500,
  $0.0060) and stopped (run).
- 12-16: 2 imported entries and 2 LLM entries (one of a model without a price, one refused
  first); no run report.
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.models import Day
from digest.runs.stats import reason_kind, sparkline
from tests.conftest import DATA

STATS_DATA = DATA / "stats"
DATA_DIR = Path("outputs/data")


def digest(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), prog_name="digest")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def days(isolated: Path) -> Path:
    """The committed days, in the output folder of the test's own working folder."""
    DATA_DIR.mkdir(parents=True)
    for path in STATS_DATA.glob("*.json"):
        shutil.copy(path, DATA_DIR / path.name)
    return DATA_DIR


def table(out: str, title: str) -> dict[str, list[str]]:
    """The rows of the table titled ``... : title``, by their first cell (date or total)."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith(f": {title}"))
    rows = {}
    for line in lines[start + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
            rows[cells[0]] = cells
    return rows


def stats_json(*args: str) -> dict[str, Any]:
    code, out, err = digest("stats", "--json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def day_of(data: dict[str, Any], date: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [day for day in data["days"] if day["date"] == date]
    (day,) = found
    return day


# --- the table -----------------------------------------------------------------------------


def test_quality_table_shows_each_day_and_the_total(days: Path) -> None:
    code, out, err = digest("stats")
    assert code == 0, err
    rows = table(out, "quality")
    assert list(rows) == ["2025-12-13", "2025-12-14", "2025-12-15", "2025-12-16", "total"]
    # date, papers, full text, 1st ok, re-asks, repairs, names, evidence, failed, model, prompt
    assert rows["2025-12-13"] == [
        *["2025-12-13", "2", "100%", "100%", "0.00", "0", "0", "0%", "unknown 1"],
        *["gpt-4.1-mini", "v1"],
    ]
    assert rows["2025-12-14"] == [
        *["2025-12-14", "4", "75%", "75%", "0.25", "1 in 1", "0", "0%", "metadata 1"],
        *["gpt-4.1-mini", "v2"],
    ]
    assert rows["2025-12-15"] == [
        *["2025-12-15", "3", "67%", "33%", "1.00", "2 in 1", "1", "0%", "summarize 1, run 1"],
        *["gpt-4.1-mini", "v3"],
    ]
    assert rows["2025-12-16"] == [
        *["2025-12-16", "4 (2 imported)", "100%", "50%", "0.50", "0", "0", "0%", "no report"],
        *["gpt-4.1-mini ×1, my-local ×1", "v3"],
    ]
    assert rows["total"] == [
        *["total", "13 (2 imported)", "82%", "60%", "0.50", "3 in 2", "1", "0%"],
        "metadata 1, summarize 1, run 1, unknown 1",
        "gpt-4.1-mini ×10, my-local ×1",
        "v3 ×5, v2 ×4, v1 ×2",
    ]


def test_cost_table_shows_tokens_costs_and_what_failures_cost(days: Path) -> None:
    _, out, _ = digest("stats")
    rows = table(out, "cost")
    # date, tokens in/out, digests $, $/paper, failed tokens, failed $, total $
    assert rows["2025-12-13"] == [
        *["2025-12-13", "8100/610", "0.0041", "0.0021", "3000/700", "0.0023", "0.0064"]
    ]
    assert rows["2025-12-14"] == [
        *["2025-12-14", "17700/2030", "0.0103", "0.0026", "0/0", "0.0000", "0.0103"]
    ]
    assert rows["2025-12-15"] == [
        *["2025-12-15", "26200/2600", "0.0146", "0.0049", "9000/1500", "0.0060", "0.0206"]
    ]
    # A model without a price: the known part, marked "+?", and no failures known (no report).
    assert rows["2025-12-16"] == [
        "2025-12-16",
        "12000/1300",
        "0.0045+?",
        "0.0045",
        "–",
        "–",
        "0.0045+?",
    ]
    assert rows["total"] == [
        "total",
        "64000/6540",
        "0.0335+?",
        "0.0034",
        "12000/2200",
        "0.0083",
        "0.0418+?",
    ]


def test_notes_and_trend_under_the_tables(days: Path) -> None:
    _, out, _ = digest("stats")
    lines = out.splitlines()
    assert "From the abstract: PDF download failed: HTTP 404 ×1, image-only or empty ×1." in lines
    assert "2 imported entries count as papers, and not in the rates, tokens or costs." in lines
    assert any(line.startswith("?: 1 digest used a model with no price") for line in lines)
    assert "1 day without a run report: no failures are known for it." in lines
    assert (
        "Trend 2025-12-13 → 2025-12-16, one mark a day file (· no data, ? cost unknown):" in lines
    )
    # Cost a day: 0.0064, 0.0103, 0.0206, then unknown; first answers 100%, 75%, 33%, 50%.
    assert "  cost $   ▁▃█?  min 0.0064, max 0.0206" in lines
    assert "  1st ok   █▅▁▃  min 33%, max 100%" in lines


# --- JSON ----------------------------------------------------------------------------------


FIGURE_KEYS = [
    *["papers", "imported", "llm", "full_text", "abstract", "full_text_share"],
    *["abstract_share", "abstract_reasons", "answered", "first_answer_ok"],
    *["first_answer_pass_rate", "reasks", "reasks_per_paper", "repaired_papers"],
    *["grounding_repairs", "ungrounded_names", "lines", "evidenced_lines", "evidence_share"],
    *["evidence_reasks", "run_reports", "failed", "failures_by_stage"],
    *["tokens_in", "tokens_out", "cost_usd", "unpriced", "cost_per_paper_usd"],
    *["failed_tokens_in", "failed_tokens_out", "failed_cost_usd", "failed_unpriced"],
    *["total_cost_usd", "batch", "batch_saved_usd", "models", "prompt_versions"],
]


def test_json_keys_are_stable(days: Path) -> None:
    data = stats_json()
    assert list(data) == ["data_dir", "from", "to", "days", "total", "warnings"]
    assert list(data["days"][0]) == ["date", "run_report", *FIGURE_KEYS]
    assert list(data["total"]) == ["days", *FIGURE_KEYS]
    assert list(data["total"]["failures_by_stage"]) == [
        *["metadata", "download", "extract", "summarize", "run", "other", "unknown"]
    ]


LINES_OF_2025_12_15 = 24  # three digests of eight lines


def test_json_figures_of_a_day_are_exact(days: Path) -> None:
    data = stats_json()
    assert data["data_dir"] == "outputs/data" and data["warnings"] == []
    assert data["from"] is None and data["to"] is None
    assert day_of(data, "2025-12-15") == {
        "date": "2025-12-15",
        "run_report": True,
        "papers": 3,
        "imported": 0,
        "llm": 3,
        "full_text": 2,
        "abstract": 1,
        "full_text_share": 0.6667,
        "abstract_share": 0.3333,
        "abstract_reasons": {"image-only or empty": 1},
        "answered": 3,
        "first_answer_ok": 1,
        "first_answer_pass_rate": 0.3333,
        "reasks": 3,
        "reasks_per_paper": 1.0,
        "repaired_papers": 1,
        "grounding_repairs": 2,
        "ungrounded_names": 1,
        "lines": LINES_OF_2025_12_15,
        "evidenced_lines": 0,
        "evidence_share": 0.0,
        "evidence_reasks": 0,
        "run_reports": 1,
        "failed": 2,
        "failures_by_stage": {
            **{"metadata": 0, "download": 0, "extract": 0, "summarize": 1, "run": 1},
            **{"other": 0, "unknown": 0},
        },
        "tokens_in": 26200,
        "tokens_out": 2600,
        "cost_usd": 0.0146,
        "unpriced": 0,
        "cost_per_paper_usd": 0.004867,
        "failed_tokens_in": 9000,
        "failed_tokens_out": 1500,
        "failed_cost_usd": 0.006,
        "failed_unpriced": 0,
        "total_cost_usd": 0.0206,
        "batch": 0,
        "batch_saved_usd": 0.0,
        "models": {"gpt-4.1-mini": 3},
        "prompt_versions": {"v3": 3},
    }


def test_json_totals_are_computed_from_the_summed_counts(days: Path) -> None:
    total = stats_json()["total"]
    assert total["days"] == 4 and total["papers"] == 13 and total["imported"] == 2
    assert (total["llm"], total["full_text"], total["abstract"]) == (11, 9, 2)
    assert total["full_text_share"] == 0.8182 and total["abstract_share"] == 0.1818
    assert total["abstract_reasons"] == {
        "PDF download failed: HTTP 404": 1,
        "image-only or empty": 1,
    }
    # 10 entries with calls (one of 12-13 has none), 6 first answers passed, 5 re-asks.
    assert (total["answered"], total["first_answer_ok"], total["reasks"]) == (10, 6, 5)
    assert total["first_answer_pass_rate"] == 0.6 and total["reasks_per_paper"] == 0.5
    assert (total["repaired_papers"], total["grounding_repairs"]) == (2, 3)
    assert total["ungrounded_names"] == 1
    assert total["run_reports"] == 3 and total["failed"] == 4
    assert {stage: n for stage, n in total["failures_by_stage"].items() if n} == {
        "metadata": 1,
        "summarize": 1,
        "run": 1,
        "unknown": 1,
    }
    assert (total["tokens_in"], total["tokens_out"]) == (64000, 6540)
    assert total["cost_usd"] == 0.0335 and total["unpriced"] == 1
    assert total["cost_per_paper_usd"] == 0.00335  # over the 10 priced digests
    assert (total["failed_tokens_in"], total["failed_tokens_out"]) == (12000, 2200)
    assert total["failed_cost_usd"] == 0.0083 and total["total_cost_usd"] == 0.0418
    assert total["models"] == {"gpt-4.1-mini": 10, "my-local": 1}
    assert total["prompt_versions"] == {"v3": 5, "v2": 4, "v1": 2}


# --- choosing days -------------------------------------------------------------------------


def test_from_and_to_select_days_inclusively(days: Path) -> None:
    data = stats_json("--from", "2025-12-14", "--to", "2025-12-15")
    assert [day["date"] for day in data["days"]] == ["2025-12-14", "2025-12-15"]
    assert data["from"] == "2025-12-14" and data["to"] == "2025-12-15"
    # 7 papers; first answers 3 of 4 and 1 of 3.
    assert data["total"]["papers"] == 7 and data["total"]["first_answer_pass_rate"] == 0.5714
    assert [day["date"] for day in stats_json("--from", "2025-12-15")["days"]] == [
        "2025-12-15",
        "2025-12-16",
    ]
    assert [day["date"] for day in stats_json("--to", "2025-12-13")["days"]] == ["2025-12-13"]
    _, out, _ = digest("stats", "--from", "2025-12-16")
    assert list(table(out, "quality")) == ["2025-12-16", "total"]


def test_from_after_to_is_a_usage_error_naming_both(days: Path) -> None:
    code, out, err = digest("stats", "--from", "2025-12-16", "--to", "2025-12-13")
    assert code == 2 and out == ""
    assert "--from 2025-12-16 is after --to 2025-12-13" in err
    assert "Traceback" not in err


def test_a_malformed_date_is_a_usage_error(days: Path) -> None:
    code, _, err = digest("stats", "--to", "15/12/2025")
    assert code == 2 and "--to '15/12/2025' is not a date; use YYYY-MM-DD" in err


def test_no_day_files_in_range_says_so_and_exits_0(days: Path) -> None:
    code, out, err = digest("stats", "--from", "2026-01-01")
    assert code == 0 and out == ""
    assert err.strip() == "No day files in outputs/data from 2026-01-01 on; nothing to count."
    data = stats_json("--from", "2026-01-01")
    assert data["days"] == [] and data["total"]["days"] == 0 and data["total"]["papers"] == 0


def test_no_output_folder_at_all_says_so(isolated: Path) -> None:
    code, out, err = digest("stats")
    assert code == 0 and out == ""
    assert "No day files in outputs/data; nothing to count." in err


def test_the_data_folder_follows_the_settings(days: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    DATA_DIR.rename("_digest")
    monkeypatch.setenv("DIGEST_DATA_DIR", "_digest")
    data = stats_json()
    assert data["data_dir"] == "_digest" and data["total"]["days"] == 4
    shutil.copytree("_digest", "elsewhere/data")
    monkeypatch.delenv("DIGEST_DATA_DIR")
    assert stats_json("--output-dir", "elsewhere")["total"]["days"] == 4


# --- broken and missing files --------------------------------------------------------------


def test_an_unreadable_day_file_is_named_and_skipped(days: Path) -> None:
    (DATA_DIR / "2025-12-14.json").write_text("{not json", encoding="utf-8")
    code, out, err = digest("stats")
    assert code == 0
    assert err.startswith("warning: outputs/data/2025-12-14.json: invalid day file")
    assert "skipped" in err and "Traceback" not in err
    assert list(table(out, "quality")) == ["2025-12-13", "2025-12-15", "2025-12-16", "total"]
    data = stats_json()
    assert data["total"]["days"] == 3 and data["total"]["papers"] == 9
    # Its run report is not counted either: the day is skipped whole.
    assert data["total"]["failures_by_stage"]["metadata"] == 0
    assert len(data["warnings"]) == 1 and "2025-12-14.json" in data["warnings"][0]


def test_a_day_file_holding_another_date_is_skipped(days: Path) -> None:
    shutil.copy(DATA_DIR / "2025-12-13.json", DATA_DIR / "2025-12-20.json")
    code, _, err = digest("stats")
    assert code == 0
    assert "outputs/data/2025-12-20.json: holds the date 2025-12-13, not 2025-12-20" in err
    assert stats_json()["total"]["days"] == 4


def test_a_malformed_run_report_is_named_and_the_day_counts_without_failures(days: Path) -> None:
    (DATA_DIR / "2025-12-15.run.json").write_text('{"date": "2025-12-15"}', encoding="utf-8")
    code, out, err = digest("stats")
    assert code == 0
    assert "warning: outputs/data/2025-12-15.run.json: invalid run report" in err
    assert "its failures are not counted" in err
    assert table(out, "quality")["2025-12-15"][1:9] == [
        *["3", "67%", "33%", "1.00", "2 in 1", "1", "0%", "no report"]
    ]
    day = day_of(stats_json(), "2025-12-15")
    assert day["run_report"] is False and day["failed"] == 0 and day["failed_cost_usd"] == 0
    assert day["papers"] == 3 and day["cost_usd"] == 0.0146


def test_a_missing_run_report_means_no_failures_known(days: Path) -> None:
    (DATA_DIR / "2025-12-15.run.json").unlink()
    code, out, err = digest("stats")
    assert code == 0 and err == ""  # no report is normal (an imported day), not a warning
    assert table(out, "quality")["2025-12-15"][8] == "no report"
    assert table(out, "cost")["2025-12-15"][4:] == ["–", "–", "0.0146"]
    assert "2 days without a run report: no failures are known for them." in out
    total = stats_json()["total"]
    assert total["run_reports"] == 2 and total["failed"] == 2 and total["failed_cost_usd"] == 0.0023


# --- imports and prices --------------------------------------------------------------------


def test_imported_entries_are_papers_without_rates_tokens_or_costs(days: Path) -> None:
    day = Day.model_validate_json((DATA_DIR / "2025-12-16.json").read_bytes())
    imported = [entry for entry in day.papers if entry.provenance.source == "import"]
    only = day.model_copy(update={"date": day.date.replace(day=20), "papers": imported})
    (DATA_DIR / "2025-12-20.json").write_text(only.model_dump_json(), encoding="utf-8")
    data = stats_json("--from", "2025-12-20")
    (figures,) = data["days"]
    assert (figures["papers"], figures["imported"], figures["llm"]) == (2, 2, 0)
    assert figures["first_answer_pass_rate"] is None and figures["full_text_share"] is None
    assert figures["tokens_in"] == 0 and figures["cost_usd"] == 0
    assert figures["cost_per_paper_usd"] is None and figures["models"] == {}
    _, out, _ = digest("stats", "--from", "2025-12-20")
    assert table(out, "quality")["2025-12-20"][1:5] == ["2 (2 imported)", "–", "–", "–"]
    assert "2 imported entries count as papers, and not in the rates, tokens or costs." in out
    # Mixed with LLM entries (12-16), they change no rate of that day.
    mixed = day_of(stats_json(), "2025-12-16")
    assert (mixed["papers"], mixed["imported"], mixed["llm"]) == (4, 2, 2)
    assert mixed["first_answer_pass_rate"] == 0.5 and mixed["tokens_in"] == 12000


def test_an_unknown_price_is_said_not_counted_as_zero(days: Path) -> None:
    day = day_of(stats_json(), "2025-12-16")
    # 0.0045 priced, one digest of my-local without a price: the known part, and how many not.
    assert day["cost_usd"] == 0.0045 and day["unpriced"] == 1
    assert day["cost_per_paper_usd"] == 0.0045  # over the priced digest only, not 0.00225
    # A failed paper whose answers used tokens at no known price.
    path = DATA_DIR / "2025-12-15.run.json"
    report = json.loads(path.read_text(encoding="utf-8"))
    (failed,) = [paper for paper in report["papers"] if paper["failed_at"] == "summarize"]
    failed["cost_usd"] = None
    path.write_text(json.dumps(report), encoding="utf-8")
    day = day_of(stats_json(), "2025-12-15")
    assert day["failed_unpriced"] == 1 and day["failed_cost_usd"] == 0
    assert day["failed_tokens_in"] == 9000 and day["total_cost_usd"] == 0.0146
    _, out, _ = digest("stats")
    assert table(out, "cost")["2025-12-15"][5:] == ["?", "0.0146+?"]
    assert "?: 1 digest and 1 failed paper used a model with no price" in out
    assert "  cost $   ▁█??  min 0.0064, max 0.0103" in out.splitlines()


# --- offline, help, helpers ----------------------------------------------------------------


def test_works_offline_without_a_key(days: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("digest stats opened a connection")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    code, out, _ = digest("stats")
    assert code == 0 and "2025-12-16" in out


def test_help_describes_the_options() -> None:
    code, out, _ = digest("stats", "--help")
    assert code == 0
    for option in ("--from", "--to", "--json", "--output-dir"):
        assert option in out


def test_reason_kind_groups_the_same_cause_across_papers() -> None:
    assert (
        reason_kind(
            "PDF download failed: HTTP 404 from https://export.arxiv.org/pdf/2512.1v1 after 1 attempt"
        )
        == reason_kind(
            "PDF download failed: HTTP 404 from https://export.arxiv.org/pdf/2512.2v3 after 4 attempts"
        )
        == "PDF download failed: HTTP 404"
    )
    assert reason_kind("image-only or empty (40 characters on 2 pages)") == "image-only or empty"
    assert reason_kind("the download from https://x.org/p is not a PDF (no %PDF- header)") == (
        "the download is not a PDF (no %PDF- header)"
    )
    assert reason_kind("encrypted") == "encrypted"
    assert reason_kind(None) == "no reason recorded"


def test_sparkline_scales_from_min_to_max_and_marks_gaps() -> None:
    assert sparkline([0.0, 0.5, 1.0]) == "▁▅█"
    assert sparkline([1.0, None, 3.0], [False, True, False]) == "▁?█"
    assert sparkline([None, 2.0]) == "·▄"  # one value: a level line
    assert sparkline([]) == ""


def test_names_from_the_files_are_shown_as_they_are(days: Path) -> None:
    path = DATA_DIR / "2025-12-16.json"
    text = path.read_text(encoding="utf-8").replace('"my-local"', '"[bold]my-local"')
    path.write_text(text, encoding="utf-8")
    _, out, _ = digest("stats")
    assert table(out, "quality")["2025-12-16"][9] == "[bold]my-local ×1, gpt-4.1-mini ×1"
