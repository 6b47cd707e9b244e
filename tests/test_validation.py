from __future__ import annotations

import re

import pytest
from pydantic import ValidationError

from digest.models import Digest
from digest.validation import (
    HANGUL_SHARE_MIN,
    HANGUL_WORD_SHARE_MIN,
    describe_validation_error,
    hangul_share,
    hangul_word_share,
    line_problems,
)
from tests.conftest import REFERENCE_POST

GOOD = "본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 새로운 방법을 제안한다."


def reference_lines() -> list[str]:
    """Every digest line of the reference post, without labels, bullets or hard breaks."""
    body = REFERENCE_POST.read_text(encoding="utf-8").split("---\n", 2)[2]
    lines = []
    for line in body.splitlines():
        if not line.strip() or line.startswith(("#", ">")):
            continue
        line = re.sub(r"^- (Goal|Motivation|Contribution): ", "", line)
        lines.append(line.removeprefix("- ").rstrip())
    return lines


def test_the_reference_has_46_digest_lines() -> None:
    assert len(reference_lines()) == 46


@pytest.mark.parametrize("line", reference_lines(), ids=lambda line: line[:12])
def test_every_reference_line_is_accepted(line: str) -> None:
    assert line_problems(line) == []


def test_the_threshold_sits_below_the_reference_lowest_line() -> None:
    lowest = min(hangul_share(line) for line in reference_lines())
    assert round(lowest, 2) == 0.49
    assert lowest > HANGUL_SHARE_MIN


# A large model's lines for papers of tests/data/digests: Korean as Korean ML writers write it,
# a particle glued to each English term, though most of the letters are Latin.
TERM_HEAVY_LINES = [
    "섭동된 Friedmann-Lemaître metric의 conformal newtonian gauge에서 Bose-Einstein 분포 함수의 "
    "섭동을 collisionless Boltzmann(Vlasov) equation으로 기술한다.",
    "지식 벤치마크에서 DeepSeek-R1은 MMLU 90.8%, MMLU-Pro 84.0%, GPQA Diamond 71.5%로 "
    "DeepSeek-V3를 크게 앞섰으며, AlpacaEval 2.0 length-controlled win-rate 87.6%와 ArenaHard "
    "win-rate 92.3%를 달성하였다.",
    "TableFormer는 TAPAS의 token, segment, rank embedding을 유지하되 row embedding과 column "
    "embedding을 제거하고, global positional embedding을 셀마다 초기화되는 per cell positional "
    "embedding으로 대체하여 셀 간 순서 정보를 없앤다.",
]


@pytest.mark.parametrize("line", TERM_HEAVY_LINES, ids=lambda line: line[:12])
def test_a_korean_line_heavy_with_english_terms_is_accepted(line: str) -> None:
    assert hangul_share(line) < HANGUL_SHARE_MIN  # refused by the letters alone
    assert hangul_word_share(line) >= 0.45
    assert line_problems(line) == []


def test_an_english_sentence_with_a_korean_ending_is_refused_by_words_too() -> None:
    line = (
        "The model achieves 65.2% top-5 accuracy on Natural Questions, beating BM25 결과를 보였다."
    )
    assert hangul_word_share(line) < HANGUL_WORD_SHARE_MIN
    (problem,) = line_problems(line)
    assert problem.startswith(
        "is only 10% Hangul, in 15% of its words (at least 35% of the words must hold Hangul); "
    )


BAD_LINES = [
    ("", "is empty"),
    ("   ", "is empty"),
    ("This paper proposes a new method for long video generation models.", "Hangul"),
    ("The proposed LongVie 2 model improves FVD on LongVGenBench 한다.", "Hangul"),
    (
        "본 연구는 긴 비디오 생성에서 일관성을 유지하는 새로운 방법을 제안합니다.",
        "polite style ('제안합니다.')",
    ),
    ("본 연구는 긴 비디오 생성에서 일관성을 유지하는 방법을 보여주었습니다.", "polite style"),
    ("이 방법은 긴 비디오 생성에서 일관성을 유지하는 데 매우 효과적인 방법입니다.", "polite style"),
    ("제안된 방법은 훈련 없이 적용되며 기존 모델보다 빠릅니다. 또한 더 정확하다.", "polite style"),
    (
        "본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 새로운 방법을 제안",
        "does not end in '다.'",
    ),
    (
        "본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 새로운 방법을 제안한다",
        "does not end in '다.'",
    ),
    ("본 연구는 **긴 비디오** 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "bold"),
    (
        "본 연구는 `LongVie` 모델로 긴 비디오 생성에서 일관성을 유지하는 방법을 제안한다.",
        "backticks",
    ),
    (
        "본 연구는 [LongVie](https://x.org) 모델로 긴 비디오의 일관성을 유지하는 방법을 제안한다.",
        "link",
    ),
    ("# 본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "heading"),
    ("- 본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "list marker"),
    ("1. 본 연구는 긴 비디오 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "list marker"),
    ("#1 모델로 긴 비디오 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "heading"),
    ("Goal: 긴 비디오 생성에서 시간적 일관성을 유지하는 방법을 제안하는 것이다.", "section label"),
    ("본 연구는 *긴 비디오* 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "emphasis"),
    ("본 연구는 <b>긴 비디오</b> 생성에서 시간적 일관성을 유지하는 방법을 제안한다.", "HTML tag"),
    (
        "본 연구는 긴 비디오 생성 방법을 제안한다.\n또한 일관성을 유지하는 방법을 보인다.",
        "line break",
    ),
    ("짧은 문장이다.", "at least 20 characters"),
    (
        "본 연구는 " + "긴 비디오 생성에서 시간적 일관성을 유지하는 " * 20 + "방법을 제안한다.",
        "at most 400",
    ),
]


@pytest.mark.parametrize(("line", "expected"), BAD_LINES, ids=lambda value: str(value)[:16])
def test_bad_lines_are_rejected_with_the_right_message(line: str, expected: str) -> None:
    problems = line_problems(line)
    assert any(expected in problem for problem in problems), problems


def test_single_underscores_stars_and_liquid_are_not_markdown() -> None:
    line = "x_t와 GPT-4* 및 {{ site.url }} 표기를 포함한 문장도 평문으로 그대로 허용된다."
    assert line_problems(line) == []


def digest_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "introduction": {"goal": GOOD, "motivation": GOOD, "contribution": GOOD},
        "method": [GOOD],
        "results": [GOOD],
        "limitations": [GOOD],
        "conclusion": [GOOD],
    }
    data.update(changes)
    return data


def messages(data: dict[str, object]) -> list[str]:
    with pytest.raises(ValidationError) as raised:
        Digest.model_validate(data)
    return describe_validation_error(raised.value)


def test_messages_name_the_field_and_the_problem() -> None:
    data = digest_data(
        introduction={
            "goal": "The goal is faster video.",
            "motivation": GOOD,
            "contribution": GOOD,
        },
        results=[GOOD, "결과는 매우 좋았습니다. 이상입니다."],
    )
    found = messages(data)
    assert found[0].startswith("introduction.goal: ")
    assert "Hangul" in found[0]
    assert found[1].startswith("results[1]: uses the polite style")


@pytest.mark.parametrize(
    ("section", "count", "expected"),
    [
        ("method", 5, "method: has 5 lines; write 1 to 4"),
        ("results", 0, "results: has 0 lines; write 1 to 3"),
        ("results", 4, "results: has 4 lines; write 1 to 3"),
        ("limitations", 3, "limitations: has 3 lines; write 1 to 2"),
        ("conclusion", 3, "conclusion: has 3 lines; write 1 to 2"),
    ],
)
def test_item_counts_per_section(section: str, count: int, expected: str) -> None:
    assert messages(digest_data(**{section: [GOOD] * count})) == [expected]


def test_unknown_and_missing_fields_are_rejected() -> None:
    data = digest_data(summary=[GOOD])
    del data["conclusion"]
    found = messages(data)
    assert "conclusion: Field required" in found
    assert "summary: Extra inputs are not permitted" in found


def test_outer_whitespace_is_trimmed_not_rejected() -> None:
    digest = Digest.model_validate(digest_data(method=[f"  {GOOD}  "]))
    assert digest.method == [GOOD]


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\u202e", "U+202E RIGHT-TO-LEFT OVERRIDE"),
        ("\u2066", "U+2066 LEFT-TO-RIGHT ISOLATE"),
        ("\u200b", "U+200B ZERO WIDTH SPACE"),
        ("\ufeff", "U+FEFF ZERO WIDTH NO-BREAK SPACE"),
        ("\u00ad", "U+00AD SOFT HYPHEN"),
    ],
)
def test_invisible_format_characters_are_rejected_by_name(char: str, name: str) -> None:
    line = f"본 연구는 보이지 않는{char} 문자를 포함한 문장을 처리하는 방법을 제안한다."
    assert line_problems(line) == [
        f"contains invisible formatting characters ({name}); remove them"
    ]


def test_titles_lose_invisible_characters() -> None:
    from tests.helpers import make_entry

    assert make_entry(title="Safe\u202e Title\u200b").title == "Safe Title"


@pytest.mark.parametrize(
    ("line", "polite"),
    [
        ("이 방법이 모든 과제에서 기존 방법보다 항상 더 좋은 것은 아니다.", False),
        ("이 방법이 모든 과제에서 기존 방법보다 항상 더 좋은 것은 아닙니다.", True),
    ],
)
def test_a_plain_not_is_not_the_polite_style(line: str, polite: bool) -> None:
    # "아니다." ("is not") ends in "니다." but is plain written Korean.
    assert ("polite style" in " ".join(line_problems(line))) is polite
