"""The evidence check (``digest.llm.evidence``): a line's quotes are found in the text the model
was sent despite what PDF extraction does to it, and nothing else is found there."""

from __future__ import annotations

import pytest

from digest.llm.evidence import (
    NOT_IN_PAPER,
    LineEvidence,
    SentText,
    check_line,
    check_lines,
    normalize,
)
from digest.llm.prompts import prompt_text

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
