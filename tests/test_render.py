from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from digest.blog.post_parser import parse_post_text
from digest.blog.render import guard_liquid, render_day, unguard_liquid
from digest.errors import PostFormatError
from digest.models import Day
from tests import liquid
from tests.conftest import DATA, REPO
from tests.helpers import make_day, make_digest, make_entry

GOLDEN = DATA / "golden" / "2026-01-05-daily-papers.md"


def two_paper_day() -> Day:
    return make_day(
        make_entry(),
        make_entry(
            "hep-th/9901001",
            "Few-Step Distillation for Text-to-Image Generation: A Practical Guide",
            digest=make_digest("텍스트-이미지 생성"),
            bullets=True,
            intro_labels=False,
        ),
    )


def test_golden_two_paper_day() -> None:
    assert render_day(two_paper_day()).encode("utf-8") == GOLDEN.read_bytes()


def test_layout_rules_of_the_format() -> None:
    lines = render_day(two_paper_day()).split("\n")
    assert lines[7:9] == ["", ""]  # two blank lines after the front matter
    assert lines[-1] == ""  # exactly one final newline
    assert lines[-2].startswith("- ") and not lines[-2].endswith(" ")  # last line: no hard break
    assert "## Introduction" in lines and "## Method  " in lines and "## Conclusion  " in lines
    content = [line for line in lines[9:] if line and not line.startswith(("#", ">"))]
    without_break = [line for line in content if not line.endswith("  ")]
    conclusions = [lines[i + 1] for i, line in enumerate(lines) if line == "## Conclusion  "]
    assert without_break == conclusions  # only each paper's last line (one-line conclusions)
    assert not any(line.endswith("   ") for line in content)


def test_a_local_pdf_without_links_renders_a_plain_heading() -> None:
    text = render_day(make_day(make_entry(None, "A Local Paper")))
    assert "# 1. A Local Paper\n\n## Introduction\n" in text
    assert "Alphaxiv" not in text


def test_rendering_is_the_same_on_every_run_and_machine(tmp_path: object) -> None:
    # A fresh interpreter with another hash seed, time zone and locale gives the same bytes.
    code = (
        "import sys; from tests.test_render import two_paper_day; from digest.blog.render import "
        "render_day; sys.stdout.buffer.write(render_day(two_paper_day()).encode('utf-8'))"
    )
    environment = {
        **os.environ,
        "PYTHONHASHSEED": "12345",
        "TZ": "America/Los_Angeles",
        "LC_ALL": "C",
        "PYTHONPATH": str(REPO),
    }
    other = subprocess.run(
        [sys.executable, "-c", code], env=environment, capture_output=True, check=True
    ).stdout
    assert other == GOLDEN.read_bytes()


# --- hostile titles and texts -------------------------------------------------------------

HOSTILE_TITLES = [
    "Plain Title: With a Colon",
    "[Re] Reproducing *Deep* Learning",
    "A_B_C and __init__: Under_scores",
    "Brackets ] and [ unbalanced ( too",
    "Trailing backslash \\",
    "Quotes \"double\" and 'single' # hash",
    "*Starts with a star",
    "`code` and <b>html</b>",
    "{{ site.title }} leaks",
    "{% include secret.html %}",
    "Raw {% raw %} inside {% endraw %} out",
    "{{ {% endraw %} }}",
    "Prefix {%{% if x %} quirk",
    "Ends with an open brace {",
    "{%- endraw -%} with dashes {%endraw%}",
    "Half tags {{ and {% without ends",
    "Entities &amp; &lt;b&gt; &#42; &#x2A; stay, and AT&T too",
]

HOSTILE_TEXTS = [
    "본 연구는 {{ site.url }} 같은 표현을 그대로 보여주는 방법을 제안한다.",
    "제안 방법은 {% include x.html %} 태그를 문자 그대로 다룬다고 설명한다.",
    "본문에 {% endraw %} 와 {% raw %} 가 섞여 있어도 그대로 출력된다.",
    "중괄호가 {{ {% endraw %} }} 처럼 얽힌 경우에도 안전하게 표시된다.",
    "여는 중괄호로 끝나는 경우에도 표시가 유지된다고 설명한다 {다.",
]

HOSTILE_POST_TITLES = [
    'Daily: "Papers" # {date}',
    "[Papers] {date}",
    "*Papers* {date}",
    "Back\\slash {date} — 논문",
    "{{ site.title }} {date}",
]


def body_text(post: str) -> str:
    """What Jekyll hands to Markdown: Liquid already run (raises on Liquid outside raw)."""
    return liquid.render(post.split("---\n", 2)[2])


def heading_link(markdown_body: str, number: int) -> tuple[str, str]:
    """(link text, href) of paper ``number``'s heading, as a CommonMark parser reads it."""
    tokens = MarkdownIt("commonmark").parse(markdown_body)
    headings = [
        tokens[i + 1]
        for i, token in enumerate(tokens)
        if token.type == "heading_open" and token.tag == "h1"
    ]
    children = headings[number - 1].children or []
    kinds = [child.type for child in children]
    assert kinds[:2] == ["text", "link_open"] and kinds[-1] == "link_close", kinds
    text = "".join(child.content for child in children[2:-1])
    return text, str(children[1].attrs["href"])


@pytest.mark.parametrize("title", HOSTILE_TITLES)
def test_hostile_titles_keep_their_link_and_render_literally(title: str) -> None:
    post = render_day(make_day(make_entry(title="Normal Title"), make_entry(title=title)))
    yaml.safe_load(post.split("---\n")[1])
    text, href = heading_link(body_text(post), 2)
    assert text == title
    assert href == "https://arxiv.org/abs/2512.13604"
    assert heading_link(body_text(post), 1) == ("Normal Title", href)


@pytest.mark.parametrize("text", HOSTILE_TEXTS)
def test_hostile_texts_render_literally(text: str) -> None:
    digest = make_digest().model_copy(update={"method": [text], "conclusion": [text]})
    post = render_day(make_day(make_entry(digest=digest), make_entry(digest=digest, bullets=True)))
    rendered = body_text(post)
    assert rendered.count(f"\n{text}  \n") == 1  # plain method line
    assert rendered.count(f"\n- {text}  \n") == 1  # bulleted method line
    assert rendered.count(f"\n{text}\n") == 1  # last line of paper 1's conclusion
    assert rendered.endswith(f"\n- {text}\n")


@pytest.mark.parametrize("post_title", HOSTILE_POST_TITLES)
def test_hostile_front_matter_stays_valid_yaml(post_title: str) -> None:
    title = post_title.format(date="2026-01-05")
    day = make_day(
        make_entry(),
        title=title,
        tags=["a, b", "#tag", "yes", "null", "1.0", "[x]", "논문", "ok-tag"],
        categories=["ML: papers"],
    )
    front = yaml.safe_load(render_day(day).split("---\n")[1])
    assert front["title"] == title
    assert front["tags"] == ["a, b", "#tag", "yes", "null", "1.0", "[x]", "논문", "ok-tag"]
    assert front["categories"] == ["ML: papers"]
    assert str(front["date"]) == "2026-01-05 08:15:00"


def test_a_post_that_needs_no_escaping_gets_none() -> None:
    post = render_day(two_paper_day())
    assert "{% raw %}" not in post and "\\" not in post
    assert liquid.render(post) == post


def test_raw_blocks_appear_only_around_the_text_that_needs_them() -> None:
    digest = make_digest().model_copy(update={"results": [HOSTILE_TEXTS[0]]})
    post = render_day(make_day(make_entry(digest=digest)))
    guarded = [line for line in post.split("\n") if "{% raw %}" in line]
    assert guarded == ["{% raw %}" + HOSTILE_TEXTS[0] + "{% endraw %}  "]


@pytest.mark.parametrize("text", [*HOSTILE_TITLES, *HOSTILE_TEXTS, "no braces", "{ single {"])
def test_guard_round_trips(text: str) -> None:
    assert unguard_liquid(guard_liquid(text)) == text
    assert liquid.render(guard_liquid(text)) == text


def test_the_liquid_model_catches_unguarded_liquid() -> None:
    # Guards against a checker that passes everything.
    with pytest.raises(liquid.LiquidInterpreted):
        liquid.render("text {{ site.url }}")
    with pytest.raises(liquid.LiquidInterpreted):
        liquid.render("{% raw %}{% endraw %} {% endraw %}")
    assert liquid.render("{% raw %}a {{ b }} {% if %}{% endraw %}") == "a {{ b }} {% if %}"


# --- reading a post back (digest import)

GOLDEN_LINES = GOLDEN.read_text(encoding="utf-8").split("\n")


def edited_golden(edits: dict[int, str | None]) -> str:
    """The golden post with some lines (numbered from 1) replaced, or deleted where None."""
    lines = [edits.get(number, line) for number, line in enumerate(GOLDEN_LINES, start=1)]
    return "\n".join(line for line in lines if line is not None)


def test_the_golden_post_reads_back_as_the_day_it_was_rendered_from() -> None:
    day = parse_post_text(GOLDEN.read_text(encoding="utf-8"), GOLDEN)
    assert render_day(day).encode("utf-8") == GOLDEN.read_bytes()
    assert [paper.style.intro_labels for paper in day.papers] == [True, False]
    assert [paper.style.bullets for paper in day.papers] == [False, True]


def test_an_empty_tags_or_categories_line_reads_as_no_tags() -> None:
    day = parse_post_text(edited_golden({5: "tags:", 6: "categories:"}), GOLDEN)
    assert (day.tags, day.categories) == ([], [])


def test_the_alphaxiv_line_is_optional() -> None:
    post = edited_golden({11: None, 12: None})
    day = parse_post_text(post, GOLDEN)
    assert day.papers[0].links.alphaxiv is None
    assert render_day(day) == post


BAD_POSTS = [
    # (edits to the golden post, the line reported, what was expected there)
    ({6: None}, 2, "front matter keys categories"),
    ({2: "layout: 1"}, 2, "'layout:' to be a string"),
    ({3: "title: [a, b]"}, 3, "'title:' to be a string"),
    ({4: "date: 2026-01-05 08:15:00 +09:00"}, 4, "'date: YYYY-MM-DD HH:MM:SS'"),
    ({5: "tags: [1, 2]"}, 5, "'tags: [a, b]', a list of strings"),
    ({6: "categories: {a: b}"}, 6, "'categories: [a, b]', a list of strings"),
    # Of two bad values, the first in the order date, tags, categories, layout, title is
    # reported, wherever it is in the file.
    ({4: "date: soon", 5: "tags: 3"}, 4, "'date: YYYY-MM-DD HH:MM:SS'"),
    ({5: "tags: 3", 6: "categories: 4"}, 5, "'tags: [a, b]'"),
    ({2: "layout: 1", 6: "categories: 4"}, 6, "'categories: [a, b]'"),
    ({2: "layout: 1", 3: "title: 5"}, 2, "'layout:' to be a string"),
    # The first Introduction line sets the layout of the other two.
    (
        {15: "- 본 연구는 긴 비디오 생성 방법을 제안한다.  "},
        16,
        "Motivation line, an unlabelled '- …'",
    ),
    ({38: "- Motivation: 기존 방법은 품질 저하 문제가 있다.  "}, 38, "an unlabelled '- …' line"),
    ({17: "Contribution: 세 단계 학습 방식을 제안한다.  "}, 17, "'- Contribution: …'"),
]


@pytest.mark.parametrize(
    ("edits", "reported", "expected"), BAD_POSTS, ids=[case[2][:30] for case in BAD_POSTS]
)
def test_a_bad_post_is_reported_at_its_first_problem(
    edits: dict[int, str | None], reported: int, expected: str
) -> None:
    path = Path("2026-01-05-daily-papers.md")
    with pytest.raises(PostFormatError) as raised:
        parse_post_text(edited_golden(edits), path)
    assert str(raised.value).startswith(f"{path}:{reported}: expected ")
    assert expected in str(raised.value)
