"""Faithfulness: the right document, the names the paper uses, never the prompt's example, and
no mangled line. Measured on digests written by hand from the papers (tests/data/digests/)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from digest.llm.grounding import (
    PaperNames,
    Ungrounded,
    copies_example,
    digest_lines,
    example_overlap,
    find_ungrounded_names,
    names_in,
    repair,
    too_many_ungrounded,
)
from digest.llm.prompts import PROMPTS_DIR
from digest.models import Digest
from digest.text.extract import extract_pdf
from digest.text.identity import MATCH_THRESHOLD, identity
from tests.conftest import DATA, PDFS
from tests.helpers import answering, digest, good
from tests.standins import ArxivPaper, StandIn
from tests.test_pipeline import user_message

DIGESTS = DATA / "digests"
METADATA = json.loads((DATA / "corpus_metadata.json").read_text(encoding="utf-8"))
# The hand-written digests and the PDF each was written from.
WRITTEN_FROM = {
    "0908.0054": "0908.0054v1.pdf",
    "2004.04906": "2004.04906v3.pdf",
    "2203.00274": "2203.00274v2.pdf",
    "1906.08632": "1906.08632v2-pp1-11.pdf",
    "2501.12948": "2501.12948v1.pdf",
}
# Names a digest of another paper would carry: benchmarks, models and datasets of other fields.
INJECTED = ["SpAdapt", "LibriSpeech", "CIFAR-10", "ImageNet", "GPT-4o", "Stable Diffusion XL",
            "LiveBench", "COCO", "ResNet-50", "Whisper"]  # fmt: skip


@cache
def text_of(pdf: str) -> str:
    """What the LLM reads of the paper, and names are checked against: the text at the
    default budget (DIGEST_TEXT_BUDGET)."""
    return extract_pdf((PDFS / pdf).read_bytes(), 40_000).text


def metadata_of(pdf: str) -> dict[str, str]:
    corpus_name = {"1906.08632v2-pp1-11.pdf": "1906.08632v2.pdf"}.get(pdf, pdf)
    return METADATA[corpus_name]  # type: ignore[no-any-return]


def hand_digest(arxiv_id: str) -> Digest:
    return Digest.model_validate_json((DIGESTS / f"{arxiv_id}.json").read_text(encoding="utf-8"))


def paper_names(pdf: str) -> PaperNames:
    meta = metadata_of(pdf)
    return PaperNames.of(f"{meta['title']}\n{meta['abstract']}\n{text_of(pdf)}")


def lines_of(digest: Digest) -> list[str]:
    return [line for _, line in digest_lines(digest)]


# --- which words are names ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("고정된 Whisper 인코더에 희소 저랭크 adapter를 삽입한다.", ["Whisper"]),
        ("CIFAR-10과 ImageNet에서 정확도를 높였다.", ["CIFAR-10", "ImageNet"]),
        ("GenEval 점수와 sCM 모델을 비교하였다.", ["GenEval", "sCM"]),
        ("FLUX.1-lite를 기반으로 학습하였다.", ["FLUX.1-lite"]),
        ("Stable Diffusion XL을 기반 모델로 사용하였다.", ["Stable Diffusion XL"]),
        ("BM25와 DPR을 비교하였다.", ["BM25", "DPR"]),
        ("adapter와 velocity field를 학습한다.", []),
        ("GPT-4o의 답을 LLM 심사로 평가하였다.", ["GPT-4o", "LLM"]),
    ],
)
def test_name_like_spans_of_a_korean_line(line: str, names: list[str]) -> None:
    assert names_in(line) == names


def test_names_are_found_ignoring_case_hyphens_spaces_and_dots() -> None:
    paper = PaperNames.of(
        "We fine-tune Stable-Diffusion xl and FLUX 1 lite, report GEN-EVAL, use a "
        "carl model with Transformers and reinforcement learning (RL)."
    )
    for name in ["Stable Diffusion XL", "FLUX.1-lite", "GenEval", "RL", "Transformer", "LLM"]:
        assert paper.has(name), name
    # A short name must be a word of the paper: "RL" is, "CA" only inside "carl" is not.
    assert not paper.has("CA") and not paper.has("Whisper") and not paper.has("ImageNet")


# --- the false-alarm rate on digests written from the papers ------------------------------


@pytest.mark.slow  # extracts whole corpus papers
@pytest.mark.parametrize("arxiv_id", sorted(WRITTEN_FROM))
def test_every_line_of_a_digest_written_from_the_paper_is_grounded(arxiv_id: str) -> None:
    digest = hand_digest(arxiv_id)
    assert sum(len(names_in(line)) for line in lines_of(digest)) >= 3  # it does name things
    assert find_ungrounded_names(digest, paper_names(WRITTEN_FROM[arxiv_id])) == []


@pytest.mark.slow  # 0.5 s or more
@pytest.mark.parametrize("arxiv_id", sorted(WRITTEN_FROM))
def test_names_injected_into_a_real_digest_are_caught(arxiv_id: str) -> None:
    digest = hand_digest(arxiv_id)
    names = paper_names(WRITTEN_FROM[arxiv_id])
    for injected in INJECTED:
        if names.has(injected):
            continue  # the paper does use it (DeepSeek-R1 compares with GPT-4o)
        line = f"{injected}에서도 " + digest.results[0]
        changed = digest.model_copy(update={"results": [line, *digest.results[1:]]})
        found = find_ungrounded_names(changed, names)
        assert [item.name for item in found] == [injected], (arxiv_id, injected)
        assert found[0].field == "results[0]" and injected in found[0].problem()


@pytest.mark.slow  # 0.5 s or more: whole corpus papers, read twice
def test_one_ungrounded_name_is_kept_but_the_copied_example_fails() -> None:
    digest = hand_digest("2004.04906")
    names = paper_names(WRITTEN_FROM["2004.04906"])
    one = digest.model_copy(update={"results": ["COCO에서도 " + digest.results[0]]})
    assert not too_many_ungrounded(one, find_ungrounded_names(one, names))
    example = example_digest()
    found = find_ungrounded_names(example, names)
    assert {"SpAdapt", "Whisper", "LibriSpeech"} <= {item.name for item in found}
    assert too_many_ungrounded(example, found)


# --- the worked example -------------------------------------------------------------------


def example_digest() -> Digest:
    path = PROMPTS_DIR / "v2" / "example-assistant.json"
    return Digest.model_validate_json(path.read_text(encoding="utf-8"))


# The example as Gemma 3 270M rewrote it in a real run, and a looser paraphrase.
PARAPHRASE = {
    "introduction": {
        "goal": "본 논문은 고정된 Whisper 인코더에 희소한 저랭크 adapter를 넣어 적은 "
        "파라미터로 음성 인식 모델을 새 도메인에 특화하는 방법을 제안하는 것이다.",
        "motivation": "도메인마다 전체 파라미터를 학습하는 전체 미세조정은 학습 메모리와 "
        "비용이 크다는 한계가 있다.",
        "contribution": "전체 파라미터의 일부만 학습하면서도 추론 비용을 기반 모델과 같게 "
        "유지하는 SpAdapt 방법을 제안하였다.",
    },
    "method": [
        "SpAdapt는 층마다 여덟 개의 희소 저랭크 adapter를 두고 router가 입력마다 두 개만 "
        "활성화하여 계산량의 증가를 막는다.",
    ],
    "results": ["LibriSpeech test-other에서 전체 미세조정보다 낮은 단어 오류율을 기록하였다."],
    "limitations": ["억양이 강한 영어에서는 router 선택이 불안정하여 향상 폭이 줄어든다."],
    "conclusion": ["SpAdapt는 적은 파라미터로 전체 미세조정에 버금가는 성능을 달성하였다."],
}


def test_the_example_and_a_paraphrase_of_it_are_caught() -> None:
    assert copies_example(example_digest())
    assert example_overlap(example_digest()) == 1.0
    assert copies_example(Digest.model_validate(PARAPHRASE))


@pytest.mark.parametrize("arxiv_id", sorted(WRITTEN_FROM))
def test_real_digests_are_not_taken_for_the_example(arxiv_id: str) -> None:
    assert not copies_example(hand_digest(arxiv_id))


# --- readable repairs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "numbers"),
    [
        # The two lines Gemma 3 270M's copied example was repaired into, before this check.
        (
            "전체 파라미터의 0.8%만 학습하면서 추론 비용을 기반 모델 수준으로 유지하는 SpAdapt를 "
            "제안하였다.",
            ["0.8"],
        ),
        (
            "LibriSpeech test-other에서 단어 오류율 4.9를 기록하여 전체 미세조정의 5.6보다 "
            "우수하였으며, 학습 메모리는 절반으로 줄었다.",
            ["4.9", "5.6"],
        ),
        ("전체 파라미터의 0.8% 만 학습하면서 추론 비용을 기반 모델 수준으로 유지하였다.", ["0.8"]),
        ("정확도는 92.1%로 기존 방법보다 높았으며 추론 비용은 같게 유지되었다.", ["92.1"]),
    ],
)
def test_a_repair_that_would_leave_a_dangling_particle_is_refused(
    line: str, numbers: list[str]
) -> None:
    digest = Digest.model_validate({**example_digest().model_dump(), "results": [line]})
    repaired, _ = repair(digest, [Ungrounded("results[0]", number) for number in numbers])
    assert repaired is None


def test_a_clean_repair_passes() -> None:
    line = "제안 방법은 추론 비용을 42.7% 줄이면서도 기존 방법과 비슷한 정확도를 유지하였다."
    digest = Digest.model_validate({**example_digest().model_dump(), "results": [line]})
    repaired, notes = repair(digest, [Ungrounded("results[0]", "42.7")])
    assert repaired is not None
    assert repaired.results == [
        "제안 방법은 추론 비용을 줄이면서도 기존 방법과 비슷한 정확도를 유지하였다."
    ]
    assert notes == ["results[0]: removed 42.7 (not in the paper)"]


# --- the identity check -------------------------------------------------------------------

TEST_PAPERS = ["0908.0054v1.pdf", "2004.04906v3.pdf", "2203.00274v2.pdf",
               "1906.08632v2-pp1-11.pdf", "2305.03393v1-pg9.pdf", "2501.12948v1.pdf"]  # fmt: skip


@pytest.mark.parametrize("pdf", TEST_PAPERS)
def test_each_paper_is_its_own(pdf: str) -> None:
    meta = metadata_of(pdf)
    assert identity(meta["title"], meta["abstract"], text_of(pdf)).matches


@pytest.mark.parametrize("pdf", TEST_PAPERS)
def test_no_paper_passes_for_another(pdf: str) -> None:
    for other in TEST_PAPERS:
        if other == pdf:
            continue
        meta = metadata_of(other)
        found = identity(meta["title"], meta["abstract"], text_of(pdf))
        assert found.score < MATCH_THRESHOLD, (pdf, other, found)


def test_the_zen_printout_is_no_paper() -> None:
    zen = text_of("corrupted-streams-zen.pdf")
    assert "Beautiful is better than ugly" in zen
    for pdf in TEST_PAPERS:
        meta = metadata_of(pdf)
        assert not identity(meta["title"], meta["abstract"], zen).matches


def test_hyphenation_and_accents_are_undone() -> None:
    text = "De\u0301tection of struc-\ntures: we detect table struc-\ntures in scanned documents"
    found = identity("Détection of Structures", "we detect table structures in scanned", text)
    assert (found.title, found.abstract) == (1.0, 1.0)


# --- end to end, through the stand-ins --------------------------------------------------------


def serve(standin: StandIn, paper: ArxivPaper, pdf: str) -> None:
    standin.papers[paper.arxiv_id] = paper
    standin.pdfs[f"{paper.arxiv_id}v{paper.version}"] = (PDFS / pdf).read_bytes()


def dpr() -> ArxivPaper:
    meta = METADATA["2004.04906v3.pdf"]
    return ArxivPaper("2004.04906", 3, meta["title"], meta["authors"], meta["abstract"])


@pytest.mark.parametrize("pdf", ["0908.0054v1.pdf", "corrupted-streams-zen.pdf"])
def test_another_paper_s_pdf_is_not_digested_under_this_title(standin: StandIn, pdf: str) -> None:
    serve(standin, dpr(), pdf)
    standin.llm_default = good
    code, out, err = digest("paper", "2004.04906", "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "abstract"
    assert provenance["input_reason"] == (
        "the PDF's text does not match the paper (title/abstract not found)"
    )
    assert provenance["identity_score"] < MATCH_THRESHOLD
    assert "does not match the paper" in err
    prompt = user_message(standin.llm_requests[0])
    assert "cosmological" not in prompt and "Beautiful is better" not in prompt


@pytest.mark.slow  # extracts whole corpus papers
def test_the_right_pdf_passes_with_its_score(standin: StandIn) -> None:
    serve(standin, dpr(), "2004.04906v3.pdf")
    standin.llm_default = answering(hand_digest("2004.04906"))
    code, out, err = digest("paper", "2004.04906", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["provenance"]["input"] == "full-text"
    assert entry["provenance"]["identity_score"] == 1.0
    assert entry["provenance"]["ungrounded_names"] == []
    assert [call["outcome"] for call in entry["provenance"]["calls"]] == ["ok"]


def with_line(digest_: Digest, line: str) -> Any:
    changed = digest_.model_copy(update={"results": [line, *digest_.results[1:]]})
    return answering(changed)


@pytest.mark.slow  # 0.5 s or more
def test_an_ungrounded_name_goes_back_with_the_re_ask(standin: StandIn) -> None:
    serve(standin, dpr(), "2004.04906v3.pdf")
    real = hand_digest("2004.04906")
    standin.llm_script = [with_line(real, "ImageNet에서도 " + real.results[0])]
    standin.llm_default = with_line(real, real.results[0])
    code, out, err = digest("paper", "2004.04906", "--json")
    assert code == 0, err
    feedback = standin.llm_requests[1]["messages"][-1]["content"]
    assert "results[0]: 'ImageNet' does not appear in the paper" in feedback
    provenance = json.loads(out)["provenance"]
    assert [call["outcome"] for call in provenance["calls"]] == ["ungrounded", "ok"]
    assert provenance["ungrounded_names"] == []


@pytest.mark.slow  # 0.5 s or more: whole corpus papers, read twice
def test_a_name_that_survives_the_re_asks_is_published_listed_and_never_cached(
    standin: StandIn,
) -> None:
    serve(standin, dpr(), "2004.04906v3.pdf")
    real = hand_digest("2004.04906")
    line = "ImageNet에서도 " + real.results[0]
    standin.llm_default = with_line(real, line)
    code, out, err = digest("paper", "2004.04906", "--json")
    assert code == 0, err
    entry = json.loads(out)
    assert entry["digest"]["results"][0] == line  # never cut: a name may be a paraphrase
    assert entry["provenance"]["ungrounded_names"] == ["ImageNet"]
    assert "names the paper does not mention" in err and "ImageNet" in err
    asked = len(standin.llm_requests)
    assert asked == 3
    digest("paper", "2004.04906", "--json")
    assert len(standin.llm_requests) == 2 * asked  # not cached: asked again


def test_the_worked_example_copied_is_never_published(standin: StandIn) -> None:
    serve(standin, dpr(), "2004.04906v3.pdf")
    standin.llm_default = answering(example_digest())
    code, out, err = digest("paper", "2004.04906", "--json")
    assert code == 1 and out == ""
    assert "repeated the prompt's worked example instead of digesting the paper (3 answers)" in err
    feedback = standin.llm_requests[1]["messages"][-1]["content"]
    assert "this answer repeats the worked example of the instructions" in feedback
    assert not list(Path("cache").glob("digests/*.json"))


def test_a_local_pdf_has_nothing_to_check_against_and_is_exempt(standin: StandIn) -> None:
    standin.llm_default = answering(hand_digest("2004.04906"))
    code, out, err = digest("paper", str(PDFS / "2004.04906v3.pdf"), "--json")
    assert code == 0, err
    provenance = json.loads(out)["provenance"]
    assert provenance["input"] == "full-text" and provenance["identity_score"] is None
    assert standin.arxiv_requests == [] and standin.pdf_requests == []
