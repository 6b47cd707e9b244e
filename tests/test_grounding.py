from __future__ import annotations

import pytest

from digest.llm.grounding import Ungrounded, find_ungrounded, numbers_in, numbers_of_source, repair
from digest.models import Digest
from tests.helpers import make_digest

SOURCE = (
    "On LongVGenBench our model lowers FVD by 38 % and reaches 1000 videos of 1.5B tokens. "
    "Compared with GPT-4 and RealEstate10K baselines, accuracy is 72.50 and the error 0.25."
)

NUMBERS = [
    ("FVD를 38% 낮췄다.", ["38"]),
    ("1,000편의 비디오", ["1,000"]),
    ("1.5B 모델과 GPT-4, RealEstate10K, v1.4, DeepSeek-R1", ["1.5", "4"]),
    ("3~5분 길이", ["3", "5"]),
    ("(42.7%)에서", ["42.7"]),
    ("숫자가 없는 문장이다.", []),
]


@pytest.mark.parametrize(("text", "expected"), NUMBERS)
def test_numbers_in(text: str, expected: list[str]) -> None:
    assert numbers_in(text) == expected


GROUNDING = [
    # (a results line, the numbers that are not in SOURCE)
    ("LongVGenBench에서 FVD를 38% 낮추며 기존 방법을 앞서는 성능을 달성하였다.", []),
    ("LongVGenBench에서 FVD를 38 % 낮추며 기존 방법을 앞서는 성능을 달성하였다.", []),
    ("1,000편의 비디오로 평가하여 기존 방법을 앞서는 일관성을 달성하였다.", []),
    ("정확도 72.5를 기록하여 GPT-4 기반 비교 방법을 앞서는 성능을 달성하였다.", []),
    ("1.5B 규모의 토큰으로 학습하여 RealEstate10K에서 우수한 성능을 보였다.", []),
    ("LongVGenBench에서 FVD를 40% 낮추며 기존 방법을 앞서는 성능을 달성하였다.", ["40"]),
    ("정확도 72.4를 기록하여 비교 방법을 앞서는 성능을 달성하였다고 보고하였다.", ["72.4"]),
    ("오차 0.3을 기록하여 기존 방법보다 낮은 오차를 달성하였다고 보고하였다.", ["0.3"]),
    ("2,000편의 비디오와 17개 과제에서 기존 방법을 앞서는 성능을 보였다.", ["2,000", "17"]),
]


@pytest.mark.parametrize(("line", "ungrounded"), GROUNDING)
def test_numbers_must_be_in_the_paper(line: str, ungrounded: list[str]) -> None:
    digest = make_digest().model_copy(update={"results": [line]})
    found = find_ungrounded(digest, numbers_of_source(SOURCE))
    assert [item.number for item in found] == ungrounded
    assert all(item.field == "results[0]" for item in found)


def test_the_problem_message_names_field_and_number() -> None:
    message = Ungrounded("results[1]", "42.7").problem()
    assert message.startswith("results[1]: the number 42.7 does not appear in the paper")


def _with(**changes: object) -> Digest:
    return make_digest().model_copy(update=changes)


def test_repair_drops_a_line_its_section_can_spare() -> None:
    method = [
        *make_digest().method,
        "제안 방법은 17개의 단계를 거쳐 정보를 전달하며 학습을 안정화한다.",
    ]
    repaired, notes = repair(_with(method=method), [Ungrounded("method[2]", "17")])
    assert repaired is not None and repaired.method == make_digest().method
    assert notes == ["method[2]: line dropped (ungrounded 17)"]


def test_repair_removes_the_number_from_a_line_it_cannot_drop() -> None:
    line = "LongVGenBench에서 FVD를 기존 대비 42.7% 낮추며(42.7%) 최고 성능을 달성하였다."
    repaired, notes = repair(_with(results=[line]), [Ungrounded("results[0]", "42.7")])
    assert repaired is not None
    assert repaired.results == [
        "LongVGenBench에서 FVD를 기존 대비 낮추며(42.7%) 최고 성능을 달성하였다."
    ]
    assert notes == ["results[0]: removed 42.7 (not in the paper)"]


def test_repair_removes_numbers_from_the_introduction() -> None:
    goal = "본 연구는 17개 과제에서 긴 비디오의 시간적 일관성을 유지하는 방법을 제안하는 것이다."
    digest = make_digest()
    digest = digest.model_copy(
        update={"introduction": digest.introduction.model_copy(update={"goal": goal})}
    )
    repaired, notes = repair(digest, [Ungrounded("introduction.goal", "17")])
    assert repaired is not None
    assert (
        repaired.introduction.goal
        == "본 연구는 과제에서 긴 비디오의 시간적 일관성을 유지하는 방법을 제안하는 것이다."
    )
    assert notes == ["introduction.goal: removed 17 (not in the paper)"]


def test_repair_gives_up_when_the_line_would_break() -> None:
    repaired, _ = repair(
        _with(results=["결과는 42.7%였다고 보고하였다 다."]), [Ungrounded("results[0]", "42.7")]
    )
    assert repaired is None
