"""Posts through a real Jekyll (4.3, kramdown 2.4 with GFM input): every title and line shows
exactly as written, the only links are the paper's, and no script, handler, abbreviation,
definition list, image, comment or math element comes from paper or LLM text.

Skipped, saying why, where ``jekyll`` is missing (``apt-get install jekyll``); ``.ci/run``
installs it and sets ``DIGEST_REQUIRE_JEKYLL``, which turns that skip into a failure.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from digest.blog.post_parser import parse_post_text
from digest.blog.render import render_day
from digest.models import Digest, Introduction, PaperEntry
from digest.validation import line_problems
from tests import jekyll
from tests.conftest import REFERENCE_POST, missing
from tests.helpers import make_day, make_digest, make_entry

# Each builds a site with the real Jekyll: seconds, in the slow tier.
pytestmark = pytest.mark.slow

# Every case found against a real build, as a line and as a title.
HOSTILE = [
    '본 연구는 <img src="<" onerror="alert(document.domain)"> 를 제안한다.',
    "{::nomarkdown}<{:/}script{::nomarkdown}>{:/}alert(1)</script>",
    "[참고]: https://example.com 이다.",
    "*[LLM]: Large Language Model",
    "[^1]: 각주 정의처럼 보이는 줄이다.",
    "문장 끝에 각주[^1] 가 있다.",
    ": 정의 목록처럼 보이는 줄이다.",
    "<https://x.example> 를 참조한다.",
    "<user@x.example> 로 연락한다.",
    "<!-- 숨김 --> 보이는 텍스트이다.",
    "{::comment}숨김{:/comment}이다.",
    "$$x^2$$ 를 최소화한다.",
    "a $$b$$ c 이다.",
    "가격은 $5 와 $10 이다.",
    "C:\\Users\\김\\_data 경로이다.",
    "a\\*b 와 a\\_b 이다.",
    "끝\\",
    "{: .class #id} 속성이다.",
    "문장 {:.cls} 중간이다.",
    "x < y & z > w 이다.",
    "&amp; 와 &lt; 는 그대로이다.",
    "&#36; 와 &#x41; 와 &nbsp; 이다.",
    "[링크](https://evil.example)처럼 보인다.",
    "![이미지](https://evil.example/x.png)",
    "[링크][ref] 와 [ref] 이다.",
    "{{ site.title }}",
    "{% raw %}",
    "{% endraw %} 와 {{ {% endraw %} 이다.",
    "{% if true %}참{% endif %} 이다.",
    "*강조* 와 _밑줄_ 과 **굵게** 와 `코드` 이다.",
    "x_t 와 a*b*c 와 snake_case_name 이다.",
    "# 제목처럼 보이는 줄이다.",
    "> 인용처럼 보이는 줄이다.",
    "1. 번호 목록처럼 보이는 줄이다.",
    "- 글머리처럼 보이는 줄이다.",
    "+ 글머리처럼 보이는 줄이다.",
    "* 글머리처럼 보이는 줄이다.",
    "| 표처럼 | 보이는 줄 |",
    "정확도 | 재현율 | F1 이다.",
    "[ ] 할 일처럼 보이는 줄이다.",
    "[x] 완료처럼 보이는 줄이다.",
    "~~취소~~ 된 문장이다.",
    "``` 코드 울타리처럼 보인다.",
    "---",
    "***",
    "===",
    "^",
    "^2 로 시작하는 제목이다.",
    "\"인용\" 과 'x' 와 don't 이다.",
    "a -- b --- c ... d << e >> f 이다.",
    '{::options parse_block_html="true" /}<b>굵게</b> 이다.',
    "Learning C# and F# ##",
    "제목 {#custom-id}",
]
ABS = "https://arxiv.org/abs/2512.13604"
ALPHAXIV = "https://www.alphaxiv.org/ko/overview/2512.13604"
# What no title or line may create.
FORBIDDEN = {"script", "abbr", "dl", "dt", "dd", "img", "math", "#comment", "sup", "del", "table",
             "input", "code", "em", "strong", "hr", "pre", "ol", "b"}  # fmt: skip


@pytest.fixture(scope="module")
def jekyll_here() -> str:
    version = jekyll.jekyll_available()
    if version is None:
        missing(
            "jekyll is not installed (apt-get install jekyll); the kramdown checks need it",
            "DIGEST_REQUIRE_JEKYLL",
        )
    return version


def hostile_entry(text: str, *, bullets: bool) -> PaperEntry:
    """An entry with ``text`` as its title and in every kind of place a line can stand:
    labelled Introduction, first and middle lines of a section, and the post's last line.
    Built without validation: the renderer must hold even for text the checks would reject."""
    base = make_digest()
    digest = Digest.model_construct(
        introduction=Introduction.model_construct(
            goal=text, motivation=base.introduction.motivation, contribution=text
        ),
        method=[text, base.method[0], text],
        results=base.results,
        limitations=[text],
        conclusion=[base.conclusion[0], text],
    )
    entry = make_entry(bullets=bullets)
    return entry.model_copy(update={"title": text, "digest": digest})


def post_name(number: int) -> str:
    return f"2025-12-{1 + number % 28:02d}-case-{number:03d}.md"


@pytest.fixture(scope="module")
def built(jekyll_here: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    posts = {"2025-12-16-daily-papers.md": REFERENCE_POST.read_text(encoding="utf-8")}
    for number, text in enumerate(HOSTILE):
        papers = [hostile_entry(text, bullets=False), hostile_entry(text, bullets=True)]
        day = make_day(make_entry()).model_copy(update={"papers": papers})  # unchecked
        posts[post_name(number)] = render_day(day)
    return jekyll.build_site(posts, workdir=tmp_path_factory.mktemp("site"))


def test_the_reference_post_renders_every_line_as_written(built: dict[str, str]) -> None:
    html = built["2025-12-16-daily-papers.md"]
    rendered = jekyll.text_lines(html)
    source = REFERENCE_POST.read_text(encoding="utf-8").split("---\n", 2)[2]
    for line in source.splitlines():
        text = line.strip().removeprefix("- ").removeprefix("> ").removeprefix("## ")
        if not text or text.startswith("# "):
            continue
        text = "Alphaxiv" if text.startswith("[Alphaxiv](") else text
        assert text in rendered, text
    assert not (jekyll.elements(html) & FORBIDDEN)


@pytest.mark.parametrize("number", range(len(HOSTILE)), ids=lambda n: HOSTILE[n][:24])
def test_a_hostile_text_renders_literally_in_every_place(
    built: dict[str, str], number: int
) -> None:
    text = HOSTILE[number]
    html = built[post_name(number)]
    found = _merge(jekyll.sections(html))
    titles = [heading for heading in found if heading.startswith(("1. ", "2. "))]
    assert titles == [f"1. {text}", f"2. {text}"]
    assert found["Introduction"].count(f"Goal: {text}") == 2  # both papers
    assert found["Introduction"].count(f"Contribution: {text}") == 2
    assert found["Method"].count(text) == 4
    assert found["Limitations"].count(text) == 2
    assert found["Conclusion"].count(text) == 2
    assert jekyll.links(html) == {ABS, ALPHAXIV}
    assert not jekyll.event_handlers(html)
    assert not (jekyll.elements(html) & FORBIDDEN), jekyll.elements(html) & FORBIDDEN


def _merge(sections: list[tuple[str, list[str]]]) -> dict[str, list[str]]:
    """Both papers' lines of each section under one name."""
    merged: dict[str, list[str]] = {}
    for heading, lines in sections:
        merged.setdefault(heading, []).extend(lines)
    return merged


def faithful(text: str) -> str:
    """``text`` inside a line that passes the checks, as a prompt injection would write it."""
    return f"본 연구는 {text} 라는 표현을 문장 안에 그대로 포함하여 보여주는 방법을 자세히 다룬다."


# The lines the checks let through: these are what a real day file holds.
FAITHFUL = [text for text in HOSTILE if not line_problems(faithful(text))]


@pytest.mark.parametrize("text", HOSTILE, ids=lambda text: text[:24])
def test_import_reverses_the_title_escaping_byte_for_byte(text: str) -> None:
    day = make_day(make_entry(title=text), make_entry(title=text, bullets=True))
    post = render_day(day)
    back = parse_post_text(post, Path("2026-01-05-daily-papers.md"))
    assert [paper.title for paper in back.papers] == [text, text]
    assert render_day(back) == post


@pytest.mark.parametrize("text", FAITHFUL, ids=lambda text: text[:24])
def test_import_reverses_the_line_escaping_byte_for_byte(text: str) -> None:
    digest = make_digest().model_copy(
        update={"method": [faithful(text)], "conclusion": [faithful(text)]}
    )
    day = make_day(make_entry(digest=digest), make_entry(digest=digest, bullets=True))
    post = render_day(day)
    back = parse_post_text(post, Path("2026-01-05-daily-papers.md"))
    assert back.papers[0].digest.method == [faithful(text)]
    assert back.papers[1].digest.conclusion == [faithful(text)]
    assert render_day(back) == post


def test_the_checks_let_through_lines_that_need_escaping() -> None:
    # Else the round trip above would prove little: these reach real day files.
    assert len(FAITHFUL) >= 20
    assert HOSTILE[0] in FAITHFUL  # the <img onerror> line
