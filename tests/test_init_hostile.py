"""``digest init`` on sites that are not empty folders: a site's own ``_config.yml``, links that
lead out of the blog, files that are not files. It never publishes a private file, never
writes outside the blog, and refuses (exit 2, one line, nothing written) what it cannot merge."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import digest as digest_package
from tests import jekyll
from tests.conftest import missing
from tests.helpers import digest

SECRET = "sk-live-DO-NOT-PUBLISH-0123456789"


def tree(folder: Path, *, leave_out: tuple[str, ...] = ()) -> dict[str, bytes | str]:
    """Every path under ``folder``, without following links: a file's bytes, a link's target,
    a folder as "folder"; those under ``leave_out`` left out."""
    found: dict[str, bytes | str] = {}
    for root, folders, names in os.walk(folder):
        for name in folders + names:
            path = Path(root, name)
            key = str(path.relative_to(folder))
            if key.split("/", 1)[0] in leave_out:
                continue
            if path.is_symlink():
                found[key] = "-> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "folder"
            else:
                found[key] = path.read_bytes()
    return found


def build(site: Path) -> subprocess.CompletedProcess[str]:
    if jekyll.jekyll_available() is None:
        missing(
            "jekyll is not installed (apt-get install jekyll ruby-jekyll-feed)",
            "DIGEST_REQUIRE_JEKYLL",
        )
    # Debian's jekyll with its jekyll-feed, not the Gemfile's github-pages gem (for bundler).
    environment = {**os.environ, "JEKYLL_NO_BUNDLER_REQUIRE": "true", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["jekyll", "build", "--quiet"], cwd=site, env=environment, capture_output=True, text=True,
        timeout=180,
    )  # fmt: skip


# A site's own settings and comments, and no jekyll-feed: with a list of its own, with none
# (Jekyll's default list must then come with digest's), and with Jekyll 3's old "gems:" key.
# jekyll-sass-converter is a plugin every Jekyll has.
OWN_LIST = """\
# My site, by hand. Keep these comments.
title: "Old notes"   # the name on every page
author: Kim
exclude:
  - drafts/   # not ready
  - notes.txt
# Build settings
markdown: kramdown
plugins:
  - jekyll-sass-converter   # for the styles
"""
NO_LIST = """\
# My site, by hand. Keep these comments.
title: "Old notes"   # the name on every page
author: Kim
"""
OLD_GEMS_KEY = """\
# My site, by hand. Keep these comments.
title: "Old notes"   # the name on every page
gems: [jekyll-sass-converter]  # Jekyll 3's name for plugins
"""
# The feed already on, no exclude: the build succeeded before, and published digest.toml.
FEED_ALREADY = """\
title: "Old notes"   # the name on every page
plugins:
  - jekyll-feed
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    "config",
    [OWN_LIST, NO_LIST, OLD_GEMS_KEY, FEED_ALREADY],
    ids=["own-list", "no-list", "gems", "feed-already"],
)
def test_init_on_an_existing_site_publishes_no_private_file_and_keeps_its_settings(
    config: str,
) -> None:
    from digest.blog.site_config import JEKYLL_DEFAULT_EXCLUDE

    site = Path("site")
    (site / "drafts").mkdir(parents=True)
    (site / "_config.yml").write_text(config, encoding="utf-8")
    (site / "drafts/idea.md").write_text("not ready\n", encoding="utf-8")
    (site / "about.md").write_text("---\ntitle: About\n---\nHello.\n", encoding="utf-8")
    # digest reads api_key from digest.toml, so a user may well have put it there.
    (site / "digest.toml").write_text(f'api_key = "{SECRET}"\n', encoding="utf-8")
    (site / "_digest").mkdir()
    (site / "_digest/2025-12-16.run.json").write_text('{"cost_usd": 1.5}\n', encoding="utf-8")
    (site / ".digest.lock").write_text("4242\n", encoding="utf-8")

    code, out, err = digest("init", "site")
    assert code == 0, err
    done = build(site)
    assert done.returncode == 0, done.stderr  # a layout's {% feed_meta %} needs jekyll-feed
    published = tree(site / "_site")
    for name, content in published.items():
        assert isinstance(content, str) or SECRET.encode() not in content, name
    names = set(published)
    for private in ("digest.toml", "_digest", ".digest.lock", "requirements.txt"):
        assert not any(name == private or name.startswith(private + "/") for name in names)
    assert {"index.html", "feed.xml", "about.html"} <= names
    before = yaml.safe_load(config)
    if "exclude" in before:
        assert not any(name.startswith("drafts") for name in names)

    updated = [line for line in out.splitlines() if line.startswith("updated: ")]
    assert len(updated) == 1 and updated[0].startswith(
        "updated: site/_config.yml (exclude: digest.toml, _digest/, .digest.lock, "
    )
    assert ("plugins: jekyll-feed" in updated[0]) == ("jekyll-feed" not in config)
    merged_text = (site / "_config.yml").read_text(encoding="utf-8")
    after = yaml.safe_load(merged_text)
    for comment in re.findall(r"#.*", config):  # every comment, as the user wrote it
        assert comment in merged_text
    if "# Build settings" in config:  # still heading what it headed, not digest's entries
        assert "\n# Build settings\nmarkdown: kramdown\n" in merged_text
    for key, value in before.items():
        if key in ("exclude", "plugins", "gems"):
            assert after[key][: len(value)] == value
        else:
            assert after[key] == value
    assert "jekyll-feed" in after["plugins"]
    if "gems" in before:
        assert "jekyll-feed" in after["gems"]
    if "exclude" not in before:
        assert set(JEKYLL_DEFAULT_EXCLUDE) <= set(after["exclude"])

    # Once merged, a second run finds nothing to add and changes nothing.
    build_output = ("_site", ".jekyll-cache")
    again = tree(site, leave_out=build_output)
    code, out, _ = digest("init", "site")
    assert code == 0 and all(line.startswith("kept: ") for line in out.splitlines())
    assert tree(site, leave_out=build_output) == again


UNMERGEABLE = {
    "not YAML": (
        "title: [unclosed\n",
        "site/_config.yml is not YAML that Jekyll can read (line 2: ",
    ),
    "not a mapping": ("- title\n- Mine\n", "site/_config.yml is a list, not a mapping"),
    "exclude a string": (
        "title: Mine\nexclude: drafts/\n",
        "site/_config.yml has exclude: as a string, not a list; make exclude a list",
    ),
    "plugins a string": (
        "plugins: jekyll-sass-converter\n",
        "site/_config.yml has plugins: as a string, not a list; make plugins a list",
    ),
    "include names a private file": (
        "include:\n  - .htaccess\n  - digest.toml\n",
        "site/_config.yml: include lists 'digest.toml', which would publish digest.toml; "
        "remove it from include",
    ),
    "include matches a private file": (
        "include: ['.*']\n",
        "site/_config.yml: include lists '.*', which would publish .digest.lock",
    ),
    "duplicate keys": (
        "title: a\ntitle: b\n",
        'site/_config.yml is not YAML digest init can edit (line 2: found duplicate key "title"',
    ),
}


@pytest.mark.parametrize("case", sorted(UNMERGEABLE))
def test_a_config_that_cannot_be_merged_is_refused_in_one_line_with_nothing_written(
    case: str,
) -> None:
    config, message = UNMERGEABLE[case]
    site = Path("site")
    site.mkdir()
    (site / "_config.yml").write_text(config, encoding="utf-8")
    before = tree(site)
    for force in ([], ["--force"]):
        code, out, err = digest("init", "site", *force)
        if force:  # --force replaces the file with the template's, as documented
            assert code == 0, err
            break
        assert code == 2 and out == ""
        assert len(err.splitlines()) == 1 and err.startswith(f"error: {message}"), err
        # It says what the blog needs, so that a user can add it by hand.
        if "include" not in case:
            assert "(the blog needs exclude: [digest.toml, _digest/, .digest.lock, " in err
            assert "and plugins: [jekyll-feed])" in err
        assert tree(site) == before
    assert "lang: ko" in (site / "_config.yml").read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["_config.yaml", "_config.toml"])
def test_a_site_whose_settings_a_new_config_yml_would_hide_is_refused(name: str) -> None:
    site = Path("site")
    site.mkdir()
    (site / name).write_text("title: Mine\n", encoding="utf-8")
    code, out, err = digest("init", "site")
    assert code == 2 and out == "" and len(err.splitlines()) == 1
    assert err.startswith(f"error: site/{name} holds this site's Jekyll settings"), err
    assert tree(site) == {name: b"title: Mine\n"}


# Where a link out of the blog is planted, and what it is: a folder digest writes into, or a
# file it would write or merge.
OUTSIDE_LINKS = {
    ".github": "folder",
    ".github/workflows": "folder",
    "_posts": "folder",
    "_digest": "folder",
    "_layouts": "folder",
    ".github/workflows/nightly.yml": "file",
    "_config.yml": "file",
}


@pytest.mark.parametrize("force", [False, True], ids=["", "force"])
@pytest.mark.parametrize("link", sorted(OUTSIDE_LINKS))
def test_a_link_out_of_the_blog_is_refused_and_nothing_is_written_anywhere(
    link: str, force: bool
) -> None:
    site, outside = Path("site"), Path("elsewhere")
    (outside / "workflows").mkdir(parents=True)
    (outside / "nightly.yml").write_text("someone else's\n", encoding="utf-8")
    (outside / "_config.yml").write_text("title: someone else's\n", encoding="utf-8")
    (site / link).parent.mkdir(parents=True, exist_ok=True)
    kind = OUTSIDE_LINKS[link]
    target = outside.resolve() / (Path(link).name if kind == "file" else "")
    (site / link).symlink_to(target)
    site_before, outside_before = tree(site), tree(outside)

    code, out, err = digest("init", "site", *(["--force"] if force else []))
    assert (code, out) == (2, ""), out + err
    assert err == (
        f"error: site/{link} is a symlink to {target}, outside the blog site; digest init "
        f"writes only inside the blog: replace the link with a real {kind} and run digest "
        "init again\n"
    )
    assert tree(outside) == outside_before
    assert tree(site) == site_before


def test_a_dangling_link_out_of_the_blog_is_refused_too() -> None:
    site, outside = Path("site"), Path("elsewhere")
    site.mkdir()
    outside.mkdir()
    (site / ".github").symlink_to(outside.resolve() / "not-yet")
    code, _, err = digest("init", "site")
    assert code == 2 and "site/.github is a symlink to " in err
    assert not (outside / "not-yet").exists() and tree(outside) == {}


def test_a_loop_of_links_is_refused() -> None:
    site = Path("site")
    site.mkdir()
    (site / "a").symlink_to("b")
    (site / "b").symlink_to("a")
    (site / "_posts").symlink_to("a")
    before = tree(site)
    code, _, err = digest("init", "site")
    assert code == 2
    assert err == (
        "error: site/_posts is a symlink that never ends in a folder; replace it with a real "
        "folder inside the blog and run digest init again\n"
    )
    assert tree(site) == before


def test_links_that_stay_inside_the_blog_are_followed() -> None:
    site = Path("site")
    (site / "config/github").mkdir(parents=True)
    (site / "content/posts").mkdir(parents=True)
    (site / ".github").symlink_to("config/github")
    (site / "_posts").symlink_to("content/posts")
    # The site keeps its settings elsewhere in the repository, linked: merged where they are.
    (site / "config/site.yml").write_text("title: Mine  # mine\n", encoding="utf-8")
    (site / "_config.yml").symlink_to("config/site.yml")

    code, out, err = digest("init", "site")
    assert code == 0, err
    assert "wrote: site/.github/workflows/nightly.yml" in out
    assert (site / "config/github/workflows/nightly.yml").is_file()
    assert (site / "config/github/dependabot.yml").is_file()
    assert (site / ".github").is_symlink() and (site / "_posts").is_symlink()
    assert (site / "_config.yml").is_symlink()
    merged = (site / "config/site.yml").read_text(encoding="utf-8")
    assert merged.startswith("title: Mine  # mine\n") and "  - digest.toml\n" in merged
    assert "updated: site/_config.yml (exclude: digest.toml, " in out


@pytest.mark.slow
def test_files_that_are_not_files_are_never_read_whole_or_waited_on() -> None:
    """A FIFO would block a plain read forever (until a writer comes); a huge file would be
    read whole. Run as a process with a time limit, so that a hang fails the test."""
    site = Path("site")
    site.mkdir()
    os.mkfifo(site / "requirements.txt")
    command = [sys.executable, "-m", "digest", "init", "site"]
    # The digest this test imported, wherever it is.
    package = Path(digest_package.__file__).parent.parent
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(package), *sys.path])}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(command, capture_output=True, text=True, timeout=60, env=environment)

    done = run()
    assert done.returncode == 0, done.stderr
    # A requirements.txt that cannot be read names no digest: said, as for any other.
    assert "warning: site/requirements.txt does not name digest-papers" in done.stderr

    os.remove(site / "_config.yml")
    os.mkfifo(site / "_config.yml")
    done = run()
    assert done.returncode == 2
    assert done.stderr == (
        "error: site/_config.yml is not a regular file; move it away and run digest init again\n"
    )
    os.remove(site / "_config.yml")
    with (site / "_config.yml").open("wb") as handle:
        handle.truncate(64 * 1024 * 1024)  # sparse: no disk used
    done = run()
    assert done.returncode == 2
    assert "error: site/_config.yml is over 1024 KiB, too large for Jekyll settings" in (
        done.stderr
    )


def test_a_link_put_in_while_init_runs_is_not_followed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check and the writes are apart in time: the writes walk the folders without
    following links, so one swapped in after the check is refused, not written through."""
    import digest.blog.init_blog as init_blog

    site, outside = Path("site"), Path("elsewhere")
    site.mkdir()
    outside.mkdir()
    planned = init_blog._plan

    def plan_then_swap(*args: Any, **kwargs: Any) -> Any:
        plan = planned(*args, **kwargs)
        if plan.shown.name == "requirements.txt":  # the last one: the writes come next
            (site / ".github").symlink_to(outside.resolve())
        return plan

    monkeypatch.setattr(init_blog, "_plan", plan_then_swap)
    code, _, err = digest("init", "site")
    assert code == 2
    assert err == (
        "error: site/.github became a symlink or a file while digest init ran; check it and "
        "run digest init again\n"
    )
    assert tree(outside) == {}


def test_the_template_is_the_one_list_of_private_files() -> None:
    """What an existing site gets comes from the template's exclude: list; the few entries
    that are a new blog's own choices are named, and must be on it."""
    from digest.blog.init_blog import template_text
    from digest.blog.site_config import SITE_CHOICES, Needs

    template = yaml.safe_load(template_text("_config.yml", "x"))
    assert SITE_CHOICES.issubset(template["exclude"])
    needs = Needs.of_template(template_text("_config.yml", "x"))
    assert {"digest.toml", "_digest/", ".digest.lock", ".digest-cache/"} <= set(needs.private)
    assert set(needs.private) | SITE_CHOICES == set(template["exclude"])
    assert needs.plugins == ("jekyll-feed",)
