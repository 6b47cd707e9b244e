"""A paper's code, project and Hugging Face links: where they come from (Hugging Face's item,
arXiv's comment, the first pages of the text), what is refused, and how a post shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from digest.blog.post_parser import parse_post_text
from digest.blog.render import render_day, render_paper
from digest.errors import PostFormatError
from digest.models import Day, Links, code_problem, link_problem
from digest.sources.links import first_known, hf_links, links_in, paper_links
from tests import jekyll
from tests.conftest import PDFS, REFERENCE_POST, missing
from tests.helpers import digest, good, make_day, make_entry
from tests.standins import ArxivPaper, StandIn, hf_item
from tests.test_nightly import PDF, paper

DATE = "2025-12-16"
ALL = "alphaxiv,code,project,hf,pdf"

HOSTILE = [
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http://github.com/a/b",
    "https://user:pass@github.com/x/y",
    "https://github.com@evil.example/x/y",
    "https://github.com/a)b",
    "https://github.com/a(b/c",
    "https://x.com/{{site}}",
    "https://x.com/{%raw%}",
    'https://github.com/a"onmouseover=alert(1)',
    "https://github.com/a/b\nc",
    "https://github.com/a/b c",
    "https://github.com/a\\b/c",
    "https://github.com/a|b/c",
    "https://github.com/a/<b>",
    "https://github.com/" + "a" * 10_000,
    "https://gïthub.com/a/b",
    "https://xn--gthub-2ra.com/a/b/\u202e",
    "https:///a/b",
    "https://localhost/a/b",
    "https://-bad-.com/a/b",
    "https://github.com:22/a/b",
]


# --- what is refused --------------------------------------------------------------------------


@pytest.mark.parametrize("url", HOSTILE)
def test_a_hostile_url_is_no_link_and_no_day_file_holds_one(url: str) -> None:
    assert link_problem(url) is not None
    assert code_problem(url) is not None
    for field in ("code", "project"):
        with pytest.raises(ValidationError):
            Links.model_validate({field: url})


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/a/b",  # not a code host
        "https://github.com/owner",  # no repository
        "https://huggingface.co/papers/2512.13604",  # a paper's page, not a repository
        "https://github.com.evil.example/a/b",
    ],
)
def test_a_code_link_is_a_repository_on_a_code_host(url: str) -> None:
    assert code_problem(url) is not None


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/facebookresearch/DPR",
        "https://gitlab.com/group/project",
        "https://huggingface.co/spaces/owner/demo",
        "https://huggingface.co/owner/model",
    ],
)
def test_repositories_are_code_links(url: str) -> None:
    assert code_problem(url) is None
    assert Links(code=url).code == url


def test_the_hf_link_is_a_papers_page_and_the_stars_a_count() -> None:
    with pytest.raises(ValidationError):
        Links(hf="https://huggingface.co/evil/page")
    for stars in (-1, float("nan"), float("inf"), 10**12):
        assert Links.model_validate({"github_stars": stars}).github_stars is None
    assert Links(github_stars=0).github_stars == 0


# --- where links come from --------------------------------------------------------------------


def test_links_in_prose_lose_trailing_punctuation_and_a_broken_url_is_dropped_whole() -> None:
    prose = (
        "Our code (see https://github.com/a)b and https://github.com/o/r). "
        "Project page: https://o.example/proj, "
        "cited: https://other.example/x."
    )
    found = links_in(prose)
    assert found.code == "https://github.com/o/r"
    assert found.project == "https://o.example/proj"
    # An unlabelled page is not the project's; a github.io site is.
    assert links_in("see https://other.example/x").project is None
    assert links_in("at https://me.github.io/p.").project == "https://me.github.io/p"
    assert links_in("Project page: http://o.example/p").project is None  # http is refused


def test_a_hugging_face_item_gives_its_repository_stars_project_and_page() -> None:
    item = {
        "githubRepo": "https://github.com/o/r",
        "githubStars": 42,
        "projectPage": "https://o.example/p",
    }
    assert hf_links(item, "2512.13604") == Links(
        code="https://github.com/o/r",
        project="https://o.example/p",
        hf="https://huggingface.co/papers/2512.13604",
        github_stars=42,
    )
    bad = {"githubRepo": "javascript:alert(1)", "githubStars": True, "projectPage": 7}
    assert hf_links(bad, "2512.13604") == Links(hf="https://huggingface.co/papers/2512.13604")


def test_hugging_face_comes_before_the_comment_and_the_comment_before_the_text() -> None:
    hf = Links(code="https://github.com/hf/r", github_stars=3)
    comment = links_in("Code: https://github.com/comment/r. Project page: https://c.example/p")
    text = "https://github.com/text/r and project page https://t.example/p"
    links = paper_links("2512.13604", first_known(hf, comment), text)
    assert (links.code, links.github_stars) == ("https://github.com/hf/r", 3)
    assert links.project == "https://c.example/p"
    assert links.alphaxiv == "https://www.alphaxiv.org/ko/overview/2512.13604"
    only_text = paper_links("2512.13604", Links(), text)
    assert (only_text.code, only_text.project) == (
        "https://github.com/text/r",
        "https://t.example/p",
    )
    # Only the first pages are read: a URL past them (another paper's code) is not the paper's.
    assert paper_links("2512.13604", Links(), "x" * 3000 + text).code is None


def _paper(arxiv_id: str, title: str, abstract: str, comment: str = "") -> ArxivPaper:
    return ArxivPaper(arxiv_id, 1, title, ["Kim"], abstract, comment=comment)


@pytest.mark.slow  # extracts a whole corpus paper
def test_daily_keeps_each_sources_links_in_the_day_file_and_shows_them(
    standin: StandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = json.loads((PDFS.parent / "corpus_metadata.json").read_text(encoding="utf-8"))
    dpr = corpus["2004.04906v3.pdf"]
    from_hf, from_comment = paper(1), paper(2)
    from_comment.comment = "12 pages. Code: https://github.com/c/r."
    from_text = _paper("2004.04906", dpr["title"], dpr["abstract"])
    for item in (from_hf, from_comment, from_text):
        standin.papers[item.arxiv_id] = item
    standin.pdfs[f"{from_hf.arxiv_id}v1"] = standin.pdfs[f"{from_comment.arxiv_id}v1"] = PDF
    standin.pdfs["2004.04906v1"] = (PDFS / "2004.04906v3.pdf").read_bytes()
    standin.llm_default = good
    standin.hf_days[DATE] = [
        hf_item(
            from_hf,
            9,
            githubRepo="https://github.com/hf/r",
            githubStars=1234,
            projectPage="https://hf.example/p",
        ),
        hf_item(from_comment, 8, githubRepo="javascript:alert(1)"),
        hf_item(from_text, 7),
    ]
    monkeypatch.setenv("DIGEST_POST_LINKS", ALL)
    code, _, err = digest("daily", "--date", DATE)
    assert code == 0, err

    day = json.loads(Path(f"outputs/data/{DATE}.json").read_text(encoding="utf-8"))
    links = {entry["arxiv_id"]: entry["links"] for entry in day["papers"]}
    assert links[from_hf.arxiv_id] | {} == {
        **Links.for_arxiv(from_hf.arxiv_id).model_dump(exclude_none=True),
        "code": "https://github.com/hf/r",
        "github_stars": 1234,
        "project": "https://hf.example/p",
        "hf": f"https://huggingface.co/papers/{from_hf.arxiv_id}",
    }
    assert links[from_comment.arxiv_id]["code"] == "https://github.com/c/r"
    assert links["2004.04906"]["code"] == "https://github.com/facebookresearch/DPR"
    assert day["post_links"] == ALL.split(",")

    post = Path(f"outputs/_posts/{DATE}-daily-papers.md").read_text(encoding="utf-8")
    first = from_hf.arxiv_id
    assert (
        f"> [Alphaxiv](https://www.alphaxiv.org/ko/overview/{first}) · "
        "[Code](https://github.com/hf/r) · [Project](https://hf.example/p) · "
        f"[HF](https://huggingface.co/papers/{first}) · [PDF](https://arxiv.org/pdf/{first})\n"
    ) in post
    assert "javascript" not in post
    # render --check agrees with what daily wrote.
    assert digest("render", "--check")[0] == 0


# --- how a post shows them --------------------------------------------------------------------


def _linked(entry_id: str = "2512.13604", **extra: object) -> Links:
    return Links.for_arxiv(entry_id).model_copy(update=extra)


FULL = {
    "code": "https://github.com/o/r",
    "project": "https://o.example/p?x=1&y=2#top",
    "hf": "https://huggingface.co/papers/2512.13604",
    "github_stars": 5,
}


def test_the_default_shows_alphaxiv_alone_byte_for_byte_whatever_else_is_known() -> None:
    reference = parse_post_text(REFERENCE_POST.read_text(encoding="utf-8"), REFERENCE_POST)
    assert reference.post_links == ["alphaxiv"]
    for entry in reference.papers:
        entry.links = entry.links.model_copy(update=FULL)
    assert render_day(reference) == REFERENCE_POST.read_text(encoding="utf-8")
    assert "post_links" not in reference.model_dump()


def test_an_old_day_file_loads_and_renders_as_before() -> None:
    day = make_day(make_entry())
    old = day.model_dump(mode="json")
    assert "post_links" not in old and set(old["papers"][0]["links"]) == {"abs", "alphaxiv", "pdf"}
    loaded = Day.model_validate(old)
    assert loaded.post_links == ["alphaxiv"] and loaded.papers[0].links.code is None
    assert render_day(loaded) == render_day(day)


def test_post_links_choose_the_line_in_their_order_and_skip_what_a_paper_lacks() -> None:
    entry = make_entry()
    entry.links = _linked(**FULL)
    assert render_paper(entry, 1, ["pdf", "code"])[2] == (
        "> [PDF](https://arxiv.org/pdf/2512.13604) · [Code](https://github.com/o/r)"
    )
    entry.links = _linked()
    assert render_paper(entry, 1, ["code", "project", "hf", "alphaxiv"])[2] == (
        "> [Alphaxiv](https://www.alphaxiv.org/ko/overview/2512.13604)"
    )
    assert render_paper(entry, 1, ["code"])[:3] == [
        render_paper(entry, 1)[0],
        "",
        "## Introduction",
    ]


def test_a_post_with_every_link_reads_back_to_the_same_links() -> None:
    full, bare = make_entry(), make_entry("2512.13605", "Another paper")
    full.links = _linked(**FULL)
    bare.links = _linked("2512.13605", project="https://b.example/")
    day = make_day(full, bare, post_links=["alphaxiv", "code", "project", "hf", "pdf"])
    post = render_day(day)
    back = parse_post_text(post, Path("2026-01-05-daily-papers.md"))
    assert back.post_links == day.post_links
    for before, after in zip(day.papers, back.papers, strict=True):
        shown = before.links.model_dump(exclude={"github_stars"}, exclude_none=True)
        assert after.links.model_dump(exclude_none=True) == shown
    assert render_day(back) == post


@pytest.mark.parametrize(
    "line",
    [
        "> [Code](javascript:alert(1))",
        "> [Code](https://github.com/o/r) · [Code](https://github.com/o/s)",
        "> [Code](https://user:pw@github.com/o/r)",
        "> [Website](https://o.example/)",
    ],
)
def test_a_post_with_a_bad_links_line_is_refused_with_its_line(line: str) -> None:
    post = render_day(make_day(make_entry()))
    bad = post.replace("> [Alphaxiv](https://www.alphaxiv.org/ko/overview/2512.13604)", line)
    with pytest.raises(PostFormatError) as error:
        parse_post_text(bad, Path("2026-01-05-daily-papers.md"))
    assert error.value.line_number == bad.split("\n").index(line) + 1


@pytest.mark.slow  # a real Jekyll build
def test_jekyll_shows_every_link_with_its_exact_url(tmp_path: Path) -> None:
    if jekyll.jekyll_available() is None:
        missing("jekyll is not installed (apt-get install jekyll)", "DIGEST_REQUIRE_JEKYLL")
    entry = make_entry()
    entry.links = _linked(**FULL)
    day = make_day(entry, post_links=["alphaxiv", "code", "project", "hf", "pdf"])
    html = jekyll.build_site({"2026-01-05-daily-papers.md": render_day(day)}, workdir=tmp_path)[
        "2026-01-05-daily-papers.md"
    ]
    shown = {
        url
        for url in (entry.links.alphaxiv, entry.links.pdf, *FULL.values())
        if isinstance(url, str)
    }
    assert shown <= jekyll.links(html)
    assert jekyll.links(html) == shown | {entry.links.abs}
    assert "Alphaxiv · Code · Project · HF · PDF" in jekyll.text_lines(html)
