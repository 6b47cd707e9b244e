"""``digest init``: a Jekyll blog that GitHub Pages (or ``jekyll build``) publishes as it is.

The files come from ``digest/blog/template/`` (package data). Nothing a user has is ever
overwritten: a file that exists is kept and listed, unless ``force`` replaces it. The blog's
``digest.toml`` puts posts in ``_posts/`` and day files in ``_digest/``, which Jekyll does not
publish, and its ``_config.yml`` excludes every private file (settings, run reports, the lock).

An existing site keeps its ``_config.yml``, and what the blog needs is merged into it (digest's
private files in ``exclude:``, the feed plugin the layouts use; see ``digest.blog.site_config``):
a site that would publish ``digest.toml`` is never left behind. Nothing is written outside the
folder, whatever links it holds (see ``digest.blog.confined``). Both are checked before the first
file is written, so that a refusal leaves the folder as it was.

The blog's workflows install what its ``requirements.txt`` names: this distribution, pinned to
the version that wrote the blog. Dependabot (``.github/dependabot.yml``) proposes upgrades as
pull requests, which the blog's checks test; nothing else is ever installed in its place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

from digest import DISTRIBUTION, __version__
from digest.blog.confined import Confined
from digest.blog.render import yaml_string
from digest.blog.site_config import Needs, merge
from digest.errors import UsageError

# Template file → where it goes in the blog (dot files are stored without their dot, which
# package data would leave out).
BLOG_FILES: dict[str, str] = {
    "_config.yml": "_config.yml",
    "Gemfile": "Gemfile",
    "index.html": "index.html",
    "search.html": "search.html",
    "_layouts/default.html": "_layouts/default.html",
    "_layouts/post.html": "_layouts/post.html",
    "gitignore": ".gitignore",
    "digest.toml": "digest.toml",
    "workflows/nightly.yml": ".github/workflows/nightly.yml",
    "workflows/pages.yml": ".github/workflows/pages.yml",
    "workflows/checks.yml": ".github/workflows/checks.yml",
    "dependabot.yml": ".github/dependabot.yml",
    "requirements.txt": "requirements.txt",
}
# Folders the blog needs even before its first post.
BLOG_FOLDERS = ("_posts", "_digest")
SITE_CONFIG = "_config.yml"
# Jekyll reads the first of these that exists: a _config.yml that digest init writes next to a
# site's _config.yaml or _config.toml would hide the site's own settings.
OTHER_SITE_CONFIGS = ("_config.yaml", "_config.toml")
# Far above any real _config.yml or requirements.txt; a file we did not write is read bounded.
READ_LIMIT = 1024 * 1024

Outcome = Literal["written", "replaced", "updated", "kept"]


@dataclass
class InitReport:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)
    # Kept files that something was added to, with what was added ("exclude: …; plugins: …").
    updated: list[tuple[Path, str]] = field(default_factory=list)
    # A requirements.txt that was kept and names no digest: the workflows would not find it.
    unpinned: Path | None = None


@dataclass
class _Plan:
    """One blog file: where it really goes, and what happens to it (``text`` None: nothing)."""

    shown: Path
    parts: tuple[str, ...]
    outcome: Outcome
    text: str | None = None
    change: str = ""


def requirement() -> str:
    """The line the blog's workflows install digest from: this very version."""
    return f"{DISTRIBUTION}=={__version__}"


def template_text(name: str, title: str) -> str:
    text = (files("digest.blog") / "template" / name).read_text(encoding="utf-8")
    return text.replace("$title", yaml_string(title, quote_always=True)).replace(
        "$requirement", requirement()
    )


def _names_digest(blog: Confined, parts: tuple[str, ...]) -> bool:
    """Whether a requirements file installs this distribution (any pin, URL or extra)."""
    try:
        data = blog.read(parts, READ_LIMIT)
    except (OSError, UsageError):
        return False
    lines = data.decode("utf-8", errors="replace").splitlines()
    wanted = DISTRIBUTION.replace("-", "_")
    for line in lines:
        name = line.split("#", 1)[0].strip().split(";", 1)[0]
        for stop in "[=<>!~@ ":
            name = name.split(stop, 1)[0]
        if name.lower().replace("-", "_").replace(".", "_") == wanted:
            return True
    return False


def init_blog(folder: Path, *, title: str = "Daily Papers", force: bool = False) -> InitReport:
    """Write the blog's files into ``folder`` (made if missing); see the module docstring."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{folder} is a file, not a folder; give digest init a folder")
    blog = Confined(folder)
    _refuse_hidden_settings(blog)
    folders = [blog.locate(name, folder=True) for name in BLOG_FOLDERS]
    plans = [
        _plan(blog, name, destination, title, force) for name, destination in BLOG_FILES.items()
    ]
    try:
        for parts in folders:
            blog.make_folder(parts)
        for plan in plans:
            if plan.text is not None:
                blog.write(plan.parts, plan.text.encode("utf-8"))
    except OSError as error:
        raise UsageError(
            f"cannot write the blog into {folder}: {error.strerror} ({error.filename}); "
            "choose a folder you can write to"
        ) from None
    return _report(blog, plans)


def _refuse_hidden_settings(blog: Confined) -> None:
    if blog.exists(blog.locate(SITE_CONFIG, folder=False)):
        return
    for name in OTHER_SITE_CONFIGS:
        if blog.exists(blog.locate(name, folder=False)):
            raise UsageError(
                f"{blog.shown / name} holds this site's Jekyll settings, and Jekyll would read "
                f"the {SITE_CONFIG} digest init writes instead; rename it {SITE_CONFIG} (as "
                "YAML) and run digest init again"
            )


def _plan(blog: Confined, name: str, destination: str, title: str, force: bool) -> _Plan:
    parts = blog.locate(destination, folder=False)
    shown = blog.shown / destination
    text = template_text(name, title)
    if not blog.exists(parts):
        return _Plan(shown, parts, "written", text)
    if force:
        current = blog.read(parts, len(text.encode("utf-8")))
        if current == text.encode("utf-8"):
            return _Plan(shown, parts, "kept")
        return _Plan(shown, parts, "replaced", text)
    if destination == SITE_CONFIG:
        return _merge_site_config(blog, parts, shown, text)
    return _Plan(shown, parts, "kept")


def _merge_site_config(blog: Confined, parts: tuple[str, ...], shown: Path, template: str) -> _Plan:
    """A site's own ``_config.yml``, with what the blog needs added to it (or a refusal)."""
    data = blog.read(parts, READ_LIMIT)
    if len(data) > READ_LIMIT:
        raise UsageError(
            f"{shown} is over {READ_LIMIT // 1024} KiB, too large for Jekyll settings; "
            "check it and run digest init again"
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UsageError(
            f"{shown} is not UTF-8 text (byte {error.start}); save it as UTF-8 and run "
            "digest init again"
        ) from None
    merged = merge(text, Needs.of_template(template), shown)
    if merged.text is None:
        return _Plan(shown, parts, "kept")
    return _Plan(shown, parts, "updated", merged.text, merged.describe())


def _report(blog: Confined, plans: list[_Plan]) -> InitReport:
    report = InitReport()
    for plan in plans:
        if plan.outcome == "written":
            report.written.append(plan.shown)
        elif plan.outcome == "replaced":
            report.replaced.append(plan.shown)
        elif plan.outcome == "updated":
            report.updated.append((plan.shown, plan.change))
        else:
            report.kept.append(plan.shown)
    requirements = next(plan for plan in plans if plan.shown.name == "requirements.txt")
    if requirements.outcome == "kept" and not _names_digest(blog, requirements.parts):
        report.unpinned = requirements.shown
    return report
