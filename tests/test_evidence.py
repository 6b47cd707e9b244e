"""The evidence check (``digest.llm.evidence``): a line's quotes are found in the text the model
was sent despite what PDF extraction does to it, and nothing else is found there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from digest.blog.render import render_day
from digest.errors import PostFormatError
from digest.llm.evidence import (
    NOT_IN_PAPER,
    LineEvidence,
    SentText,
    check_line,
    check_lines,
    normalize,
)
from digest.llm.prompts import prompt_text
from digest.models import Evidence, PaperEntry
from tests import jekyll
from tests.conftest import missing
from tests.helpers import digest, good, make_day, make_digest, make_entry, paper_quotes, quoted
from tests.standins import Reply, StandIn, completion, hf_item, like_deepseek
from tests.test_nightly import DATE, DAY_FILE, POST, REPORT, serve_papers

# The text as pypdf hands it over: a word broken across a line, ligatures, curly quotes, an en
# dash, line breaks inside sentences, a soft hyphen.
SENT = (
    "Title: Long Video World Models\n\n"
    "We study the gener-\nalization of autoregressive video models to ultra-long\n"
    "horizons. Our ﬁrst ﬁnding is that “temporal drift” dominates after 30 seconds.\n"
    "We propose a three-stage curriculum that raises temporal consistency from\n"
    "71.2% to 84.6% on the LongVBench benchmark – a gain of 13.4 points – while the\n"
    "state-of-\nthe-art baseline stalls. The model still ﬂickers at clip bound\u00adaries."
)
TEXT = SentText(SENT)


@pytest.mark.parametrize(
    "quote",
    [
        "We study the generalization of autoregressive video models",  # gener-\nalization
        'Our first finding is that "temporal drift" dominates',  # ﬁ, curly quotes
        "raises temporal consistency from 71.2% to 84.6% on the LongVBench benchmark",  # \n
        "on the LongVBench benchmark - a gain of 13.4 points",  # en dash
        "while the state-of-the-art baseline stalls",  # a hyphen at a line's end
        "THE MODEL STILL FLICKERS AT CLIP BOUNDARIES",  # case, ﬂ, soft hyphen
        "  We   study the\tgeneralization of  autoregressive video models ",  # blanks
    ],
)
def test_a_quote_is_found_through_every_normalization(quote: str) -> None:
    assert TEXT.holds(quote), quote


def test_a_near_exact_quote_is_found_and_a_looser_one_is_not() -> None:
    # One word of eleven misread (the extraction's noise, or the model's): found.
    assert TEXT.holds("We propose a three-stage curicculum that raises temporal consistency from")
    # Two of eleven: no longer the paper's sentence.
    assert not TEXT.holds("We propose a three-stage schedule that lifts temporal consistency from")


@pytest.mark.parametrize(
    "quote",
    [
        # A paraphrase of the paper's sentence.
        "temporal consistency improves from 71.2% to 84.6% with a staged curriculum",
        # An invented sentence.
        "Our method outperforms all baselines on every benchmark we consider",
        # A sentence of the prompt's worked example.
        "A router activates only two of eight adapters per layer",
        # A sentence of another paper.
        "We introduce a diffusion transformer for text-to-image generation at scale",
    ],
    ids=["paraphrase", "invented", "prompt example", "another paper"],
)
def test_a_quote_from_anywhere_else_is_not_found(quote: str) -> None:
    assert not TEXT.holds(quote)
    problems = check_line(LineEvidence("results[0]", "일관성이 향상되었다.", (quote,)), TEXT)
    assert [problem.why for problem in problems] == [NOT_IN_PAPER]
    assert problems[0].problem().startswith("results[0]: quote ")
    assert problems[0].problem().endswith("is not in the paper: quote the paper verbatim")


def test_the_prompt_example_is_where_its_quote_comes_from() -> None:
    # The example's sentence is not in this paper, but is in the example: the check reads the
    # text it is given, nothing else.
    quote = "A router activates only two of eight adapters per layer"
    assert SentText(prompt_text("example-user.md")).holds(quote)


def test_a_number_of_the_line_must_stand_in_its_quotes() -> None:
    line = "LongVBench에서 일관성을 71.2%에서 84.6%로 높였다."
    quoted = LineEvidence(
        "results[0]", line, ("raises temporal consistency from 71.2% to 84.6% on the",)
    )
    assert check_line(quoted, TEXT) == []
    # The numbers are in the paper, but not in the quote given for this line.
    elsewhere = LineEvidence(
        "results[0]", line, ("We propose a three-stage curriculum that raises temporal",)
    )
    (problem,) = check_line(elsewhere, TEXT)
    assert problem.problem() == (
        "results[0]: the numbers 71.2, 84.6 of the line are in none of its quotes: quote the "
        "sentence of the paper that states it"
    )
    # 84.60 in the quote's words is the line's 84.6.
    assert check_line(LineEvidence("results[1]", "84.6%를 기록했다.", ("from 71.2% to 84.6% on the LongVBench",)), TEXT) == []  # fmt: skip


def test_the_number_of_a_name_need_not_be_quoted_but_a_size_must() -> None:
    text = SentText(
        "PaSa-7b improves recall by 37.78% over GPT-4o, and Qwen-2.5-7b falls behind. "
        "The crawler is a 7B model trained on ResNet-50 features."
    )
    named = "PaSa-7b는 GPT-4o보다 Recall@20을 37.78% 높였고 Qwen-2.5-7b와 ResNet-50을 앞섰다."
    quote = ("PaSa-7b improves recall by 37.78% over GPT-4o",)
    assert check_line(LineEvidence("results[0]", named, quote), text) == []
    sized = "crawler는 7B 규모의 모델로 recall을 37.78% 높였다."
    (problem,) = check_line(LineEvidence("results[1]", sized, quote), text)
    assert "the number 7 of the line is in none of its quotes" in problem.problem()


def test_quotes_are_one_or_two_of_a_few_words_each() -> None:
    none = check_line(LineEvidence("method[0]", "세 단계 학습을 제안한다.", ()), TEXT)
    assert [p.problem() for p in none] == [
        "method[0]: no quote: give 1 or 2 verbatim quotes of the paper"
    ]
    short = check_line(LineEvidence("method[0]", "세 단계 학습.", ("We propose",)), TEXT)
    assert [p.why for p in short] == ["has 2 words; quote at least 4"]
    long = " ".join(SENT.split()[:70])
    (too_long,) = check_line(LineEvidence("method[0]", "긴 인용.", (long,)), TEXT)
    assert too_long.why.endswith("words; quote at most 60") and too_long.quote
    assert too_long.quote.endswith("…") and len(too_long.quote) == 160
    huge = "word " * 10 + "x" * 1200
    (too_big,) = check_line(LineEvidence("method[0]", "긴 인용.", (huge,)), TEXT)
    assert too_big.why == "has 1250 characters; quote a sentence"
    # Words match without control characters; a terminal would act on them all the same.
    escape = "We propose a three-stage \x1b[2J\u202e curriculum that raises temporal"
    assert TEXT.holds(escape)
    (unprintable,) = check_line(LineEvidence("method[0]", "세 단계.", (escape,)), TEXT)
    assert unprintable.why == "has control or invisible characters; quote the words only"
    with pytest.raises(ValidationError, match="control or invisible"):
        Evidence.model_validate({**EVIDENCE_DATA, "results": [[escape]]})
    quote = "We propose a three-stage curriculum"
    three = check_line(LineEvidence("method[0]", "세 단계.", (quote, quote, quote)), TEXT)
    assert [p.why for p in three] == [
        "3 quotes; give at most 2",
        "the same quote twice; give each once",
    ]


def test_every_line_is_checked() -> None:
    lines = [
        LineEvidence("introduction.goal", "장시간 비디오 모델의 일반화를 연구한다.",
                     ("We study the generalization of autoregressive video models",)),
        LineEvidence("limitations[0]", "클립 경계에서 깜박임이 남는다.",
                     ("The model flickers at every boundary of its clips",)),
    ]  # fmt: skip
    assert [problem.field for problem in check_lines(lines, TEXT)] == ["limitations[0]"]


def test_normalize_is_stable() -> None:
    once = normalize(SENT)
    assert normalize(once) == once
    assert "generalization" in once and "ﬁ" not in once and "“" not in once


# --- End to end: the digest's answers carry their evidence ----------------------------------

INVENTED = "Our method outperforms every baseline on all benchmarks by a wide margin"


def inventing(request: dict[str, Any]) -> Reply:
    """A digest whose goal quotes a sentence the paper never wrote."""
    answer = quoted(make_digest().model_dump(), paper_quotes(request)[0])
    answer["introduction"]["goal"]["quotes"] = [INVENTED]
    return completion(json.dumps(answer, ensure_ascii=False))


def daily(count: int = 1) -> tuple[int, str, str]:
    ids = ",".join(f"2512.{10001 + number}" for number in range(count))
    return digest("daily", "--source", "ids", "--ids", ids, "--date", DATE)


def entries() -> list[dict[str, Any]]:
    papers: list[dict[str, Any]] = json.loads(DAY_FILE.read_text(encoding="utf-8"))["papers"]
    return papers


def test_every_line_of_a_new_day_file_has_its_verified_quotes(standin: StandIn) -> None:
    serve_papers(standin, 2)
    code, _, err = daily(2)
    assert code == 0, err
    for entry in entries():
        evidence = entry["evidence"]
        assert list(evidence) == ["introduction", "method", "results", "limitations", "conclusion"]
        assert len(evidence["method"]) == len(entry["digest"]["method"])
        for quotes in [*evidence["introduction"].values(), *evidence["method"]]:
            assert quotes and all(q.split()[0] for q in quotes)
    # The post shows no quotes: it is the same as one rendered from the digests alone.
    post = POST.read_text(encoding="utf-8")
    assert "evidence" not in post and "Ultra Light" not in post


def test_a_reask_that_mends_the_quotes_is_published(standin: StandIn) -> None:
    serve_papers(standin, 1)
    standin.llm_script = [inventing]
    code, _, err = daily()
    assert code == 0, err
    feedback = standin.llm_requests[1]["messages"][-1]["content"]
    assert (
        f"introduction.goal: quote {INVENTED!r} is not in the paper: quote the paper verbatim"
        in feedback
    )
    (entry,) = entries()
    assert [call["outcome"] for call in entry["provenance"]["calls"]] == ["unsupported", "ok"]
    assert INVENTED not in json.dumps(entry)
    stats = json.loads(digest("stats", "--json")[1])["total"]
    assert (stats["lines"], stats["evidenced_lines"], stats["evidence_share"]) == (8, 8, 1.0)
    assert stats["evidence_reasks"] == 1
    assert (
        "Evidence: 1 answer was sent back for quotes that were not in the paper."
        in digest("stats")[1]
    )


def test_a_paper_whose_quotes_never_hold_fails_with_its_spend_and_is_not_cached(
    standin: StandIn,
) -> None:
    serve_papers(standin, 1)
    standin.llm_default = inventing
    code, _, err = daily()
    assert code == 1
    assert "lines without the paper's words as evidence survived 3 answers" in err
    assert "introduction.goal: quote" in err and "is not in the paper" in err
    report = json.loads(REPORT.read_text(encoding="utf-8"))
    (paper,) = report["papers"]
    assert paper["status"] == "failed" and paper["failed_at"] == "summarize"
    assert paper["tokens_out"] > 0 and paper["cost_usd"] > 0  # the three answers, paid for
    assert not list(Path("cache").glob("digests/*.json"))
    assert not POST.exists() or "Paper number 1" not in POST.read_text(encoding="utf-8")


def test_json_object_mode_and_the_batch_carry_the_evidence(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, second = serve_papers(standin, 2)
    standin.llm_default = like_deepseek(good)
    code, _, err = daily()
    assert code == 0, err
    (entry,) = entries()
    assert entry["evidence"]["introduction"]["goal"]
    schema_mode = [r["response_format"]["type"] for r in standin.llm_requests]
    assert schema_mode == ["json_schema", "json_object"]

    monkeypatch.setenv("DIGEST_BATCH_POLL", "0.01")
    standin.llm_default = good
    standin.hf_days["2025-12-17"] = [hf_item(second, 5)]
    code, _, err = digest("backfill", "--from", "2025-12-17", "--to", "2025-12-17", "--batch")
    assert code == 0, err
    day = json.loads(Path("outputs/data/2025-12-17.json").read_text(encoding="utf-8"))
    assert all(paper["evidence"] for paper in day["papers"])
    assert standin.batch_requests  # the digests went through the Batch API


def test_show_prints_each_line_with_its_quotes_and_marks_lines_without(
    standin: StandIn,
) -> None:
    serve_papers(standin, 1)
    assert daily()[0] == 0
    # An entry made before quotes were asked for: the same digest, without them.
    day = json.loads(DAY_FILE.read_text(encoding="utf-8"))
    older = {key: value for key, value in day["papers"][0].items() if key != "evidence"}
    older["arxiv_id"] = "2512.19999"
    day["papers"].append(older)
    DAY_FILE.write_text(json.dumps(day, ensure_ascii=False), encoding="utf-8")

    code, out, err = digest("show", DATE)
    assert code == 0, err
    lines = out.splitlines()
    quote = day["papers"][0]["evidence"]["introduction"]["goal"][0]
    assert lines[0] == "1. Paper number 1 (2512.10001)"
    assert lines[1].startswith("  introduction.goal: 본 연구는")
    assert lines[2] == f"      > {' '.join(quote.split())}"
    assert sum(line.startswith("      > ") for line in lines) == 8
    assert lines.count("      ! no verified evidence") == 8  # every line of the older entry

    code, out, _ = digest("show", DATE, "--id", "2512.19999")
    assert code == 0 and out.splitlines()[0] == "1. Paper number 1 (2512.19999)"
    code, _, err = digest("show", DATE, "--id", "2512.00000")
    assert code == 2 and "no paper '2512.00000'" in err
    code, _, err = digest("show", "2025-01-01")
    assert code == 2 and "no day file for 2025-01-01" in err


# --- post_evidence: the quotes in the post -------------------------------------------------


HOSTILE_QUOTE = "a *bold* claim {{ site.github }} <script>alert(1)</script> | with a pipe"
EVIDENCE_DATA: dict[str, Any] = {
    "introduction": {
        "goal": [HOSTILE_QUOTE],
        "motivation": ["second quote of the paper here"],
        "contribution": ["third quote of the paper here", "and a fourth one here too"],
    },
    "method": [["method quote one is here"], ["method quote two is here"]],
    "results": [["results quote is right here"]],
    "limitations": [["limitations quote is here"]],
    "conclusion": [["conclusion quote is here"]],
}


def evidenced_entry() -> PaperEntry:
    entry = make_entry()
    entry.evidence = Evidence.model_validate(EVIDENCE_DATA)
    return entry


def test_post_evidence_off_keeps_the_post_byte_for_byte() -> None:
    plain, evidenced = make_entry(), evidenced_entry()
    assert render_day(make_day(evidenced)) == render_day(make_day(plain))
    day = make_day(evidenced)
    assert "post_evidence" not in day.model_dump(mode="json")


def test_post_evidence_adds_a_collapsed_list_escaped_like_every_line() -> None:
    day = make_day(evidenced_entry(), post_evidence=True)
    assert day.model_dump(mode="json")["post_evidence"] is True
    post = render_day(day)
    block = post[post.index('<details markdown="1">') :]
    assert block.splitlines()[:4] == [
        '<details markdown="1">',
        "<summary>근거: 논문 인용</summary>",
        "",
        "- Goal: “{% raw %}a \\*bold\\* claim {{ site.github }} \\<script\\>alert(1)"
        "\\</script\\> \\| with a pipe{% endraw %}”",
    ]
    assert "- Contribution: “and a fourth one here too”" in block
    assert "- Method 2: “method quote two is here”" in block
    assert block.rstrip().endswith("</details>")


@pytest.mark.slow  # a real Jekyll build
def test_jekyll_shows_the_quotes_collapsed_and_literal(tmp_path: Path) -> None:
    if jekyll.jekyll_available() is None:
        missing("jekyll is not installed (apt-get install jekyll)", "DIGEST_REQUIRE_JEKYLL")
    day = make_day(evidenced_entry(), post_evidence=True)
    name = "2026-01-05-daily-papers.md"
    html = jekyll.build_site({name: render_day(day)}, workdir=tmp_path)[name]
    assert "<details>" in html and "<summary>근거: 논문 인용</summary>" in html
    assert "<script>" not in html
    lines = jekyll.text_lines(html)
    assert f"Goal: “{HOSTILE_QUOTE}”" in lines
    assert "Method 2: “method quote two is here”" in lines


def test_an_abstract_only_digest_quotes_the_abstract(standin: StandIn) -> None:
    (paper,) = serve_papers(standin, 1)
    del standin.pdfs[f"{paper.arxiv_id}v1"]  # the PDF host has none: the abstract is read
    code, _, err = daily()
    assert code == 0, err
    (entry,) = entries()
    assert entry["provenance"]["input"] == "abstract"
    # The quotes are found in the abstract, with the title the text the model was sent.
    (quote,) = entry["evidence"]["method"][0]
    assert SentText(f"{paper.title}\n{paper.abstract}").holds(quote)
    assert "Abstract 1." in quote


def test_import_reads_a_post_with_quotes_as_its_digests_without_evidence() -> None:
    from digest.blog.post_parser import parse_post_text

    day = make_day(evidenced_entry(), make_entry("2512.13605", "Another"), post_evidence=True)
    back = parse_post_text(render_day(day), Path("2026-01-05-daily-papers.md"))
    assert [entry.digest for entry in back.papers] == [entry.digest for entry in day.papers]
    assert all(entry.evidence is None for entry in back.papers)  # never checked: none
    broken = render_day(day).replace("</details>", "", 1)
    with pytest.raises(PostFormatError, match="'</details>' closing the paper's quotes"):
        parse_post_text(broken.split("# 2.")[0], Path("2026-01-05-daily-papers.md"))
