"""What many test files share: builders of valid models and answers, the CLI, a fake clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

from digest.models import Day, Digest, Introduction, Links, PaperEntry, PaperStyle, Provenance
from tests.standins import Reply, completion


def make_digest(topic: str = "긴 비디오 생성") -> Digest:
    return Digest(
        introduction=Introduction(
            goal=f"본 연구는 {topic}에서 시간적 일관성을 유지하는 방법을 제안하는 것이다.",
            motivation=f"기존 {topic} 방법은 장시간 생성 시 품질 저하와 불연속성 문제를 겪는다.",
            contribution=f"{topic}을 위한 세 단계 학습 방식과 새로운 벤치마크를 함께 제안하였다.",
        ),
        method=[
            f"제안 방법은 {topic} 과정을 여러 단계로 나누어 각 단계의 정보를 전달한다.",
            "학습 시에는 열화된 프레임을 입력으로 사용하여 추론 환경과의 차이를 줄인다.",
        ],
        # No numbers and no names: a stand-in paper states none, and grounding would reject them.
        results=["기존 방법보다 일관성을 크게 높이며 최고 성능을 달성하였다."],
        limitations=["생성 길이가 길어질수록 클립 경계에서 불연속성이 일부 남아 있다."],
        conclusion=[f"본 연구는 {topic}의 제어성과 일관성을 함께 향상시키는 기반을 제시하였다."],
    )


def make_entry(
    arxiv_id: str | None = "2512.13604",
    title: str = "LongVie 2: Multimodal Controllable Ultra-Long Video World Model",
    *,
    digest: Digest | None = None,
    bullets: bool = False,
    intro_labels: bool = True,
) -> PaperEntry:
    return PaperEntry(
        arxiv_id=arxiv_id,
        version=1 if arxiv_id else None,
        title=title,
        authors=["Jane Doe", "김철수"],
        links=Links.for_arxiv(arxiv_id) if arxiv_id else Links(),
        digest=digest or make_digest(),
        provenance=Provenance(source="llm", model="test-model", prompt_version="test"),
        style=PaperStyle(bullets=bullets, intro_labels=intro_labels),
    )


def make_day(*entries: PaperEntry, date: dt.date = dt.date(2026, 1, 5), **front: object) -> Day:
    return Day.model_validate(
        {
            "date": date,
            "title": f"Daily Papers — {date.isoformat()}",
            "papers": [entry.model_dump() for entry in entries],
            **front,
        }
    )


# --- the LLM's answers ----------------------------------------------------------------------

# Words of the paper most stand-ins serve (tests/data/pdfs/0908.0054v1.pdf, whose abstract the
# stand-in papers' metadata carries): the quote of every line of the stand-ins' answers.
STANDIN_QUOTE = (
    "the cosmological effects that a species of Ultra Light Bosonic Dark Matter imprints in "
    "the Acoustic Peaks of the CMB"
)
_SECTIONS = ("method", "results", "limitations", "conclusion")


def quoted(
    data: dict[str, Any], quote: str | Callable[[str], list[str]] = STANDIN_QUOTE
) -> dict[str, Any]:
    """A digest's data as the model answers it: each line (a string) an object with its
    quotes (``quote``, or what ``quote`` gives for the line); whatever is not a line (a
    hostile answer's) as it is."""

    def line(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return {"text": value, "quotes": [quote] if isinstance(quote, str) else quote(value)}

    answer = dict(data)
    intro = answer.get("introduction")
    if isinstance(intro, dict):
        answer["introduction"] = {name: line(value) for name, value in intro.items()}
    for section in _SECTIONS:
        if isinstance(answer.get(section), list):
            answer[section] = [line(value) for value in answer[section]]
    return answer


def answer_json(data: dict[str, Any], quote: str = STANDIN_QUOTE) -> str:
    """``quoted(data)`` as the model's JSON."""
    return json.dumps(quoted(data, quote), ensure_ascii=False)


DIGEST_JSON = answer_json(make_digest().model_dump())


def paper_text(request: dict[str, Any]) -> list[str]:
    """The words of the paper a digest request sends: its title and text."""
    papers = [
        message["content"]
        for message in request["messages"]
        if message["role"] == "user" and "<paper>" in message["content"]
    ]
    text = papers[-1].split("<paper>", 1)[1].split("</paper>", 1)[0]
    body = [line for line in text.splitlines() if not line.startswith(("Authors:", "arXiv:"))]
    return " ".join(body).replace("Title:", " ").split()


def paper_quotes(request: dict[str, Any], line: str = "") -> list[str]:
    """Runs of the paper's words that a digest request sends, to quote for ``line``: one or two
    that hold every number of the line where the paper has them, else its first dozen words."""
    from digest.llm.grounding import numbers_in, value

    words = paper_text(request)
    wanted = {value(number) for number in numbers_in(line)}
    held = [{value(n) for n in numbers_in(word)} if wanted else set() for word in words]
    quotes: list[str] = []
    for _ in range(2):
        if not wanted:
            break
        # The run of at most 25 words, from a word holding a wanted number, that holds most.
        best, most = 0, set()
        for start, found in enumerate(held):
            if not found & wanted:
                continue
            covered = set().union(*held[start : start + 25]) & wanted
            if len(covered) > len(most):
                best, most = start, covered
        if not most:
            break
        quotes.append(" ".join(words[best : best + 25]))
        wanted -= most
    return quotes or [" ".join(words[:12])]


def answering(data: dict[str, Any] | Digest) -> Any:
    """A stand-in LLM that answers every request with ``data``, each line quoting the paper
    it was sent (a run of its words holding the line's numbers)."""
    plain = data.model_dump() if isinstance(data, Digest) else data

    def reply(request: dict[str, Any]) -> Reply:
        answer = quoted(plain, lambda line: paper_quotes(request, line))
        return completion(json.dumps(answer, ensure_ascii=False))

    return reply


def good_json(request: dict[str, Any]) -> str:
    """``good``'s answer, as its JSON text."""
    return json.dumps(
        quoted(make_digest().model_dump(), paper_quotes(request)[0]), ensure_ascii=False
    )


def good(request: dict[str, Any]) -> Reply:
    """A stand-in LLM answer: a valid digest of whatever paper was sent, each line quoting it."""
    reply: Reply = answering(make_digest())(request)
    return reply


def with_digest(**changes: Any) -> Reply:
    """A valid digest with some fields replaced (to make it invalid, mostly)."""
    return completion(answer_json({**make_digest().model_dump(), **changes}))


# --- the command line -----------------------------------------------------------------------


def digest(*args: str) -> tuple[int, str, str]:
    """``digest ARGS`` in this process: (exit code, stdout, stderr); a crash is raised."""
    # Imported here: the model builders serve scripts and subprocesses that need no CLI.
    from typer.testing import CliRunner

    from digest.cli import app

    result = CliRunner().invoke(app, list(args), prog_name="digest")
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


# --- time -----------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when something sleeps on it, and sleeps that return
    at once: what a wait was for is measured on this clock, and costs no real time.

    A sleep lasts from the moment it is asked for, so two tasks sleeping side by side end at
    the later of their ends, as on the real clock. ``slept`` records every sleep asked for.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._lock = threading.Lock()
        self.slept: list[float] = []

    def now(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            self._now += max(0.0, seconds)

    async def async_sleep(self, seconds: float) -> None:
        with self._lock:
            self.slept.append(seconds)
            wake = self._now + max(0.0, seconds)
        await asyncio.sleep(0)  # let the others run, as a real sleep does
        with self._lock:
            self._now = max(self._now, wake)
