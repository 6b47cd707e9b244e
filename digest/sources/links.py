"""A paper's code and project links: from Hugging Face's answer, arXiv's comment, or the first
pages of the paper's text, in that order of trust.

Every source is untrusted (a comment and a PDF are whatever the authors wrote): a URL is kept
only when ``digest.models.link_problem`` finds nothing wrong with it, and one that holds
anything a post could read as Markdown, kramdown or Liquid is dropped whole, never cut.
"""

from __future__ import annotations

import re

from digest.models import Links, code_problem, link_problem

# How much of the paper's text is looked at: the title page and abstract, where authors put
# their code and project links (later pages cite other people's code).
TEXT_CHARS = 3000
_CANDIDATE = re.compile(r"https?://\S+", re.IGNORECASE)
# Punctuation prose puts after a URL: "(see https://github.com/a/b)." ends in ")."
_TRAILING = ".,;:!?)]}>'\"*"
# Words before a URL that say it is the project's page.
_PROJECT_LABEL = re.compile(
    r"project(?:\s+(?:page|website|site|homepage))?|homepage|home\s+page|web\s*page|website|demo",
    re.IGNORECASE,
)
_LABEL_REACH = 40  # characters before a URL searched for such a word


def urls_in(prose: str) -> list[tuple[int, str]]:
    """The URLs of ``prose`` with where each starts, trailing punctuation taken off."""
    found = []
    for match in _CANDIDATE.finditer(prose):
        url = match.group(0)
        while url and url[-1] in _TRAILING:
            url = url[:-1]
        found.append((match.start(), url))
    return found


def links_in(prose: str) -> Links:
    """The first code repository and the first labelled project page ``prose`` names."""
    code = project = None
    for start, url in urls_in(prose):
        if code is None and code_problem(url) is None:
            code = url
        elif project is None and link_problem(url) is None and _project_page(prose, start, url):
            project = url
    return Links(code=code, project=project)


def _project_page(prose: str, start: int, url: str) -> bool:
    """A URL a project page: labelled so ("Project page: …"), or a github.io site."""
    host = url.split("/", 3)[2].lower()
    if host.endswith(".github.io"):
        return True
    return _PROJECT_LABEL.search(prose[max(0, start - _LABEL_REACH) : start]) is not None


def hf_links(paper: dict[str, object], arxiv_id: str) -> Links:
    """What a Hugging Face Daily Papers item says: ``githubRepo``, ``githubStars``,
    ``projectPage``, and the paper's own page there. A field that is no good is left out."""
    repo, page, stars = paper.get("githubRepo"), paper.get("projectPage"), paper.get("githubStars")
    code = repo.strip() if isinstance(repo, str) else None
    project = page.strip() if isinstance(page, str) else None
    return Links(
        code=code if code and code_problem(code) is None else None,
        project=project if project and link_problem(project) is None else None,
        hf=f"https://huggingface.co/papers/{arxiv_id}",
        github_stars=stars
        if isinstance(stars, int) and not isinstance(stars, bool) and 0 <= stars <= 10**9
        else None,
    )


def first_known(*found: Links) -> Links:
    """Each link from the first of ``found`` that has it; the stars go with the code link
    they count."""
    merged = Links()
    for links in found:
        for name in ("abs", "alphaxiv", "pdf", "project", "hf"):
            if getattr(merged, name) is None and getattr(links, name) is not None:
                setattr(merged, name, getattr(links, name))
        if merged.code is None and links.code is not None:
            merged.code, merged.github_stars = links.code, links.github_stars
    return merged


def paper_links(arxiv_id: str, known: Links, text: str) -> Links:
    """The links of an arXiv paper's entry: arXiv's and Alphaxiv's, then what its source and
    arXiv said (``known``), then what the first pages of its text name."""
    return first_known(Links.for_arxiv(arxiv_id), known, links_in(text[:TEXT_CHARS]))
