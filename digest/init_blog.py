"""``digest init``: a Jekyll blog that GitHub Pages (or ``jekyll build``) publishes as it is.

The files come from ``digest/blog_template/`` (package data). Nothing a user has is ever
overwritten: a file that exists is kept and listed, unless ``force`` replaces it. The blog's
``digest.toml`` puts posts in ``_posts/`` and day files in ``_digest/``, which Jekyll does not
publish, and its ``_config.yml`` excludes every private file (settings, run reports, the lock).

The blog's workflows install what its ``requirements.txt`` names: this distribution, pinned to
the version that wrote the blog. Dependabot (``.github/dependabot.yml``) proposes upgrades as
pull requests, which the blog's checks test; nothing else is ever installed in its place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from digest import DISTRIBUTION, __version__
from digest.errors import UsageError
from digest.render import yaml_string
from digest.store import atomic_write_text

# Template file → where it goes in the blog (dot files are stored without their dot, which
# package data would leave out).
BLOG_FILES: dict[str, str] = {
    "_config.yml": "_config.yml",
    "Gemfile": "Gemfile",
    "index.html": "index.html",
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


@dataclass
class InitReport:
    written: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    replaced: list[Path] = field(default_factory=list)
    # A requirements.txt that was kept and names no digest: the workflows would not find it.
    unpinned: Path | None = None


def requirement() -> str:
    """The line the blog's workflows install digest from: this very version."""
    return f"{DISTRIBUTION}=={__version__}"


def template_text(name: str, title: str) -> str:
    text = (files("digest") / "blog_template" / name).read_text(encoding="utf-8")
    return text.replace("$title", yaml_string(title, quote_always=True)).replace(
        "$requirement", requirement()
    )


def _names_digest(requirements: Path) -> bool:
    """Whether a requirements file installs this distribution (any pin, URL or extra)."""
    try:
        lines = requirements.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return False
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
    report = InitReport()
    try:
        for name in BLOG_FOLDERS:
            (folder / name).mkdir(parents=True, exist_ok=True)
        for name, destination in BLOG_FILES.items():
            path = folder / destination
            text = template_text(name, title)
            if path.exists():
                if not force:
                    report.kept.append(path)
                    continue
                if path.read_text(encoding="utf-8", errors="replace") == text:
                    report.kept.append(path)
                    continue
                report.replaced.append(path)
            else:
                report.written.append(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, text)
    except OSError as error:
        raise UsageError(
            f"cannot write the blog into {folder}: {error.strerror} ({error.filename}); "
            "choose a folder you can write to"
        ) from None
    requirements = folder / BLOG_FILES["requirements.txt"]
    if requirements in report.kept and not _names_digest(requirements):
        report.unpinned = requirements
    return report
