"""Build posts with a real Jekyll and read back what kramdown and Liquid made of them.

The renderer's escaping (digest/blog/render.py) is only right if the blog's real pipeline, Liquid
then kramdown with GFM input, shows every character of a line as text and creates no element.
Python Markdown parsers disagree with kramdown on exactly the corner cases that matter (IALs,
``{::comment}``, ``$$`` math, abbreviations, definition lists), so the ground truth is a real
``jekyll build``. Debian's ``jekyll`` package (4.3.1 with ruby-kramdown 2.4.0 and
ruby-kramdown-parser-gfm 1.1.0, the same kramdown as GitHub Pages) is enough; tests that need
it skip when ``jekyll_available()`` is None.

Differences from GitHub Pages worth remembering: Pages runs Jekyll 3.10 with Liquid 4, Debian
runs Jekyll 4.3 with Liquid 5.4. Their tokenizers are the same; Liquid 4's raw tag keeps the
text before a non-``endraw`` tag token twice (see tests/liquid.py), Liquid 5's once. The
kramdown options below are Jekyll's defaults, which Pages also uses (Pages additionally forces
``math_engine: mathjax`` and ``syntax_highlighter: rouge``, both kramdown's defaults too).

Only the standard library parses the HTML, so the helpers run wherever the tests run.
"""

from __future__ import annotations

import html as html_entities
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

JEKYLL_TIMEOUT_S = 180.0

# Jekyll's own kramdown defaults (Jekyll::Configuration::DEFAULTS) plus what GitHub Pages sets
# (gfm_quirks in its defaults; math_engine and syntax_highlighter forced), written out so the
# build does not depend on the installed Jekyll's defaults drifting. All of these are also
# kramdown's or kramdown-parser-gfm's own defaults except input, auto_ids and smart_quotes.
KRAMDOWN_DEFAULTS: dict[str, Any] = {
    "input": "GFM",
    "hard_wrap": False,
    "gfm_quirks": ["paragraph_end"],
    "auto_ids": True,
    "toc_levels": [1, 2, 3, 4, 5, 6],
    "entity_output": "as_char",
    "smart_quotes": "lsquo,rsquo,ldquo,rdquo",
    "footnote_nr": 1,
    "show_warnings": False,
    "math_engine": "mathjax",
    "syntax_highlighter": "rouge",
}

# The layout marks where the post's content starts and ends. The marker line carries the post's
# source path so the output can be found whatever permalink, slug or categories the front
# matter sets. A post's own text could contain "</article>", so the end is the last one.
_LAYOUT = (
    '<!DOCTYPE html>\n<meta name="digest-source" content="{{ page.path | xml_escape }}">\n'
    "<article>{{ content }}</article>\n"
)
_SOURCE_MARKER = re.compile(r'<meta name="digest-source" content="([^"]*)">\n<article>')
_ARTICLE_END = "</article>\n"
# Jekyll colours its error lines whether or not stderr is a terminal.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")

# Block-level elements: each starts a new rendered line, as a browser would show it.
# fmt: off
_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "dd", "details", "div", "dl", "dt", "fieldset",
    "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr",
    "li", "main", "nav", "ol", "p", "pre", "section", "summary", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "ul",
})
# fmt: on
_HEADING_TAGS = frozenset(f"h{n}" for n in range(1, 7))
# Elements whose text a reader does not see as page text.
_HIDDEN_TAGS = frozenset({"script", "style", "template", "noscript"})
# Void elements: they never get an end tag, so they must not count as open.
# fmt: off
_VOID_TAGS = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr",
})
# fmt: on


class JekyllBuildError(RuntimeError):
    """``jekyll build`` failed; the message carries its exit status, stdout and stderr."""


def jekyll_available() -> str | None:
    """The installed Jekyll's version ("4.3.1"), or None when ``jekyll`` is not on PATH.

    Tests use this to skip rather than fail on machines without Ruby.
    """
    exe = shutil.which("jekyll")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, "--version"],
            capture_output=True,
            text=True,
            timeout=60,
            env=_jekyll_env(),
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r"jekyll (\S+)", done.stdout)
    return match.group(1) if done.returncode == 0 and match else None


def _jekyll_env() -> dict[str, str]:
    """A UTF-8 locale (Ruby reads the posts in the locale's encoding otherwise), no Bundler
    (a stray Gemfile would make Jekyll resolve gems), and no token for any GitHub plugin."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("BUNDLE", "GEM_", "RUBY", "JEKYLL_", "GITHUB_", "PAGES_"))
    }
    env.update(
        LANG="C.UTF-8",
        LC_ALL="C.UTF-8",
        JEKYLL_ENV="production",
        JEKYLL_NO_BUNDLER_REQUIRE="true",
    )
    return env


def site_config(kramdown: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The throwaway site's ``_config.yml``: kramdown with GFM input and no plugins or theme.

    ``future: true`` because Jekyll silently skips posts dated after the build time, and a
    test post dated "tomorrow" would vanish instead of failing.
    """
    return {
        "title": "digest test site",
        "markdown": "kramdown",
        "kramdown": {**KRAMDOWN_DEFAULTS, **(kramdown or {})},
        "encoding": "utf-8",
        "future": True,
        "unpublished": False,
        "safe": True,
        "plugins": [],
        "theme": None,
        "incremental": False,
        "show_drafts": False,
        "exclude": ["_site"],
    }


def build_site(
    posts: Mapping[str, str],
    *,
    workdir: Path,
    kramdown: Mapping[str, Any] | None = None,
    timeout: float = JEKYLL_TIMEOUT_S,
) -> dict[str, str]:
    """Build ``posts`` (file name -> full post text) with Jekyll; return each one's HTML.

    The returned HTML is exactly what ``{{ content }}`` gave the layout: the post after Liquid
    and kramdown. A build costs about half a second of Ruby start-up plus a few ms a post
    (1,100 posts: 7 s on 2 cores), so batch many posts per call.
    ``kramdown`` overrides single options of ``KRAMDOWN_DEFAULTS``.

    Raises JekyllBuildError with Jekyll's output when the build fails (a Liquid syntax error in
    a post fails the build), and when a post produced no page (e.g. ``published: false``, or a
    file name Jekyll does not read as a post).
    """
    exe = shutil.which("jekyll")
    if exe is None:
        raise JekyllBuildError("jekyll is not on PATH (Debian: apt-get install jekyll)")
    source = workdir / "site"
    destination = workdir / "_site"
    for path in (source, destination):
        if path.exists():
            shutil.rmtree(path)
    (source / "_posts").mkdir(parents=True)
    (source / "_layouts").mkdir()
    (source / "_config.yml").write_text(
        yaml.safe_dump(site_config(kramdown), allow_unicode=True), encoding="utf-8"
    )
    for layout in ("post", "default", "page"):
        (source / "_layouts" / f"{layout}.html").write_text(_LAYOUT, encoding="utf-8")
    for name, text in posts.items():
        if "/" in name or name.startswith("."):
            raise ValueError(f"a post file name, not a path: {name!r}")
        # newline="" keeps the text's bytes: no "\n" -> os.linesep translation.
        with open(source / "_posts" / name, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)

    command = [
        exe,
        "build",
        "--quiet",
        "--safe",  # no custom plugins: nothing that could reach the network or run code
        "--disable-disk-cache",
        "--source",
        str(source),
        "--destination",
        str(destination),
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=workdir,
            env=_jekyll_env(),
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise JekyllBuildError(f"jekyll build took over {timeout:.0f}s") from error
    if done.returncode != 0:
        raise JekyllBuildError(
            f"jekyll build failed (exit {done.returncode})\n"
            f"--- stderr ---\n{_plain(done.stderr)}\n--- stdout ---\n{_plain(done.stdout)}"
        )

    rendered: dict[str, str] = {}
    for page in destination.rglob("*.html"):
        html = page.read_text(encoding="utf-8")
        marker = _SOURCE_MARKER.search(html)
        if marker is None or not html.endswith(_ARTICLE_END):
            continue
        name = Path(html_entities.unescape(marker.group(1))).name
        rendered[name] = html[marker.end() : -len(_ARTICLE_END)]
    missing = sorted(set(posts) - set(rendered))
    if missing:
        raise JekyllBuildError(
            f"jekyll built no page for {missing}\n--- stderr ---\n{_plain(done.stderr)}\n"
            f"--- stdout ---\n{_plain(done.stdout)}"
        )
    return rendered


def _plain(output: str) -> str:
    return _ANSI_ESCAPE.sub("", output)


def post_source(body: str, *, title: str = "Daily Papers — test", date: str = "2025-12-16") -> str:
    """A post with the reference post's front matter around ``body``.

    Front matter as in tests/data/2025-12-16-daily-papers.md: layout, quoted title, date with
    time, tags and categories in flow style, then two blank lines.
    """
    return (
        "---\n"
        "layout: post\n"
        f'title: "{title}"\n'
        f"date: {date} 08:15:00\n"
        "tags: [papers, hugginface]\n"
        "categories: []\n"
        "---\n\n\n"
        f"{body}"
    )


class _Collector(HTMLParser):
    """One pass over an article: lines of visible text per heading, links, elements.

    convert_charrefs=True: entities arrive decoded, so the text is what a reader sees.
    """

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.sections: list[tuple[str, list[str]]] = [("", [])]
        self.links: set[str] = set()
        self.elements: set[str] = set()
        self._line: list[str] = []
        self._heading: list[str] | None = None
        self._hidden = 0

    def _end_line(self) -> None:
        text = "".join(self._line).strip("\n")
        self._line = []
        if text.strip():  # whitespace alone is the indentation kramdown puts between tags
            self.sections[-1][1].append(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.add(tag)
        for name, value in attrs:
            self.elements.add(f"{tag}@{name}")
            if name == "href" and value is not None:
                self.links.add(value)
        if tag in _HIDDEN_TAGS:
            self._hidden += 1
        elif tag in _HEADING_TAGS:
            self._end_line()
            self._heading = []
        elif tag == "br" or tag in _BLOCK_TAGS:
            self._end_line()

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID_TAGS:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in _HIDDEN_TAGS:
            self._hidden = max(0, self._hidden - 1)
        elif tag in _HEADING_TAGS and self._heading is not None:
            self.sections.append(("".join(self._heading).strip("\n"), []))
            self._heading = None
        elif tag in _BLOCK_TAGS:
            self._end_line()

    def handle_data(self, data: str) -> None:
        if self._hidden:
            return
        if self._heading is not None:
            self._heading.append(data)
        else:
            self._line.append(data)

    def handle_comment(self, data: str) -> None:
        self.elements.add("#comment")

    def handle_decl(self, decl: str) -> None:
        self.elements.add("#declaration")

    def handle_pi(self, data: str) -> None:
        self.elements.add("#processing-instruction")

    def close(self) -> None:
        super().close()
        self._end_line()


def _collect(html: str) -> _Collector:
    collector = _Collector()
    collector.feed(html)
    collector.close()
    return collector


def sections(html: str) -> list[tuple[str, list[str]]]:
    """(heading text, rendered text lines) for each heading, in order.

    A line ends at ``<br>`` and at every block element (paragraph, list item, quote, ...), as
    a reader sees it; newlines kramdown leaves around ``<br />`` are trimmed, nothing else is,
    and lines of whitespace alone (kramdown's indentation between tags) are dropped.
    Text before the first heading comes first under the heading "" (dropped when empty).
    Script and style contents are not text a reader sees and are left out; ``elements`` shows
    them.
    """
    found = _collect(html).sections
    return found if found[0][1] else found[1:]


def text_lines(html: str) -> list[str]:
    """All rendered text lines, headings included, in order: for one-line test posts."""
    lines: list[str] = []
    for heading, body in sections(html):
        if heading:
            lines.append(heading)
        lines.extend(body)
    return lines


def links(html: str) -> set[str]:
    """Every ``href`` in the article: a line that renders literally adds none."""
    return _collect(html).links


def elements(html: str) -> set[str]:
    """Tags present ("p", "script"), "tag@attribute" pairs ("img@onerror"), and "#comment"
    for HTML comments: what a check for created elements or event handlers looks at."""
    return _collect(html).elements


def event_handlers(html: str) -> set[str]:
    """The "tag@on…" entries of ``elements``: any of them is script a reader's browser runs."""
    return {item for item in elements(html) if re.search(r"@on", item)}
