"""What a digest blog needs in a Jekyll site's ``_config.yml``, merged into one a user already has.

A blog made by ``digest init`` gets the template's ``_config.yml`` whole. An existing site keeps
its own, and two things are added to it, or ``digest init`` refuses:

- digest's own entries of the template's ``exclude:`` list (its settings, day files and run
  reports, lock and cache, the workflows' ``requirements.txt`` and ``.venv/``): without them
  ``jekyll build`` publishes ``digest.toml``, with any key a user wrote in it. A site that had
  no ``exclude:`` also gets Jekyll's default list, which a site's own list replaces on GitHub
  Pages' Jekyll 3.10. The template's other entries (the build's files, ``README.md``) are a new
  blog's choices; an existing site keeps its own.
- the template's plugins (``jekyll-feed``), which the blog's layouts use (``{% feed_meta %}``
  and the RSS link): without it the build stops at the layouts. Jekyll 3 reads an older site's
  ``gems:`` in place of ``plugins:`` and Jekyll 4 reads only ``plugins:``, so both get it when
  the site has ``gems:``.

An ``include:`` that names one of digest's files would publish it all the same (Jekyll lets
``include:`` win over ``exclude:``): that is refused, as is a file that is not a mapping.
The template stays the one list of digest's files: ``SITE_CHOICES`` only says which of its
entries are not digest's.

The file is edited with ruamel.yaml's round trip, not as text: a text edit cannot tell where a
YAML value ends (flow lists, block scalars, anchors, comments between items), and ruamel.yaml
keeps the user's keys, their order, their quotes and their comments. What it writes is read
back with PyYAML, as Jekyll would read it: every setting the user had must come back
unchanged, or nothing is written.
"""

from __future__ import annotations

import copy
import fnmatch
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError as RoundTripError

from digest.errors import UsageError

# Builds the one-line refusal: what is wrong with the file, and what to do about it.
Refusal = Callable[[str, str], UsageError]

EXCLUDE = "exclude"
INCLUDE = "include"
PLUGINS = "plugins"
OLD_PLUGINS = "gems"  # Jekyll before 3.5; Jekyll 3 still reads it in place of plugins:
# Said above the lists digest init adds, in the user's file.
_ADDED_EXCLUDE_COMMENT = (
    "Added by digest init: never published (digest's settings, day files and run reports, its\n"
    "lock and cache), and Jekyll's own default list, which this one replaces on GitHub Pages."
)
_ADDED_PLUGINS_COMMENT = "Added by digest init: the blog's layouts use jekyll-feed (its RSS feed)."


# Jekyll's own default exclude list, as GitHub Pages' Jekyll 3.10 has it (Jekyll 4.3 adds
# .sass-cache, .jekyll-cache and gemfiles, and adds its list to a site's own rather than letting
# the site's replace it). A site without exclude: had these left out; the list digest init adds
# would replace them, so they are added with it.
JEKYLL_DEFAULT_EXCLUDE = (
    "Gemfile",
    "Gemfile.lock",
    "node_modules/",
    "vendor/bundle/",
    "vendor/cache/",
    "vendor/gems/",
    "vendor/ruby/",
)
# The template's entries that are a new blog's choices rather than digest's own files: its
# short form of the list above, and a repository's README. An existing site keeps its own
# choice about these; everything else on the template's list is digest's and never published.
SITE_CHOICES = frozenset({"Gemfile", "Gemfile.lock", "node_modules/", "vendor/", "README.md"})


@dataclass(frozen=True)
class Needs:
    """What the blog needs in ``_config.yml``, read from the template's own file."""

    private: tuple[str, ...]
    plugins: tuple[str, ...]

    @classmethod
    def of_template(cls, template: str) -> Needs:
        settings = yaml.safe_load(template)
        return cls(
            private=tuple(
                str(entry) for entry in settings[EXCLUDE] if str(entry) not in SITE_CHOICES
            ),
            plugins=tuple(str(entry) for entry in settings[PLUGINS]),
        )

    def exclude(self, site_has_a_list: bool) -> tuple[str, ...]:
        if site_has_a_list:
            return self.private
        return self.private + JEKYLL_DEFAULT_EXCLUDE

    def describe(self) -> str:
        return f"exclude: [{', '.join(self.private)}] and plugins: [{', '.join(self.plugins)}]"


@dataclass
class Merged:
    """What was added where: ``text`` is the new file, None when nothing was missing."""

    text: str | None = None
    added: dict[str, list[str]] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(f"{key}: {', '.join(entries)}" for key, entries in self.added.items())


def merge(text: str, needs: Needs, shown: Path) -> Merged:
    """``text`` (the site's ``_config.yml``, shown as ``shown``) with ``needs`` added.

    Raises UsageError, naming the file and what the blog needs in it, when the file cannot be
    merged safely: not YAML, not a mapping, an ``exclude:`` or a plugin list that is not a
    list, or an ``include:`` that would publish a private file again."""

    def refuse(problem: str, fix: str) -> UsageError:
        return UsageError(
            f"{shown} {problem}; {fix} and run digest init again "
            f"(the blog needs {needs.describe()})"
        )

    before = _read_as_jekyll(text, refuse)
    editor, document = _load_round_trip(text, refuse)
    if document is None:  # only comments, or nothing: Jekyll's defaults
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise refuse(f"is a {_kind(document)}, not a mapping of settings", "make it one")
    _check_include(document, needs, shown)
    merged = Merged()
    exclude = needs.exclude(site_has_a_list=document.get(EXCLUDE) is not None)
    _add_entries(document, EXCLUDE, exclude, merged, refuse, _ADDED_EXCLUDE_COMMENT)
    plugin_keys = [PLUGINS] + ([OLD_PLUGINS] if OLD_PLUGINS in document else [])
    for key in plugin_keys:
        _add_entries(document, key, needs.plugins, merged, refuse, _ADDED_PLUGINS_COMMENT)
    if not merged.added:
        return merged
    new_text = _dump(editor, document, text)
    _check_unchanged(before, new_text, merged, refuse)
    merged.text = new_text
    return merged


def _read_as_jekyll(text: str, refuse: Refusal) -> dict[Any, Any]:
    """The settings as Jekyll reads them (YAML 1.1, as Ruby's Psych), for the check at the
    end; the round trip below reads YAML 1.2, which differs on a few scalars."""
    try:
        settings = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise refuse(f"is not YAML that Jekyll can read ({_problem(error)})", "fix it") from None
    if settings is None:
        return {}
    if not isinstance(settings, dict):
        raise refuse(f"is a {_kind(settings)}, not a mapping of settings", "make it one")
    return settings


def _load_round_trip(text: str, refuse: Refusal) -> tuple[YAML, Any]:
    editor = YAML(typ="rt")
    editor.preserve_quotes = True
    editor.width = 4096  # never fold a user's long line anew
    editor.explicit_start = text.lstrip().startswith("---")
    try:
        document = editor.load(text)
    except RoundTripError as error:
        raise refuse(f"is not YAML digest init can edit ({_problem(error)})", "fix it") from None
    if isinstance(document, CommentedMap):
        mapping, sequence, offset = _indentation(document)
        editor.indent(mapping=mapping, sequence=sequence, offset=offset)
    return editor, document


def _indentation(document: CommentedMap) -> tuple[int, int, int]:
    """The user's indentation (of a mapping, of a list's items, of a list's dashes), read from
    the first nested mapping and the first block list: ruamel.yaml writes one indentation for
    the whole file. Without either, the template's own."""
    mapping: int | None = None
    sequence: tuple[int, int] | None = None
    for key, value in document.items():
        column = document.lc.key(key)[1]
        if mapping is None and isinstance(value, CommentedMap) and value and not _flow(value):
            mapping = value.lc.key(next(iter(value)))[1] - column
        if sequence is None and isinstance(value, CommentedSeq) and value and not _flow(value):
            sequence = (value.lc.item(0)[1] - column, value.lc.col - column)
    items, dashes = sequence or (4, 2)
    return mapping or 2, items, dashes


def _flow(value: CommentedMap | CommentedSeq) -> bool:
    return bool(value.fa.flow_style())


def _check_include(document: CommentedMap, needs: Needs, shown: Path) -> None:
    """Jekyll publishes what ``include:`` names even when ``exclude:`` names it too."""
    include = document.get(INCLUDE)
    if include is None:
        return
    if not isinstance(include, list):
        raise UsageError(
            f"{shown}: include is a {_kind(include)}, not a list; make it a list "
            "and run digest init again"
        )
    for pattern in include:
        if not isinstance(pattern, str):
            continue
        for entry in needs.private:
            if _reincludes(pattern, entry):
                raise UsageError(
                    f"{shown}: include lists {pattern!r}, which would publish {entry}; "
                    "remove it from include and run digest init again"
                )


def _reincludes(pattern: str, entry: str) -> bool:
    """Whether Jekyll's ``include:`` ``pattern`` matches the top-level ``entry``.

    Jekyll (EntryFilter#glob_include?) matches a pattern as a glob, as a prefix of the path,
    or with a trailing slash for a folder; a glob here also lets ``*`` match a leading dot,
    which errs on the safe side."""
    wanted = _normal(pattern)
    name = _normal(entry)
    return name.startswith(wanted) or fnmatch.fnmatchcase(name, wanted)


def _add_entries(
    document: CommentedMap,
    key: str,
    wanted: tuple[str, ...],
    merged: Merged,
    refuse: Refusal,
    comment: str,
) -> None:
    """Add to the list ``document[key]`` each of ``wanted`` it lacks (made when missing)."""
    current = document.get(key)
    if current is not None and not isinstance(current, list):
        raise refuse(f"has {key}: as a {_kind(current)}, not a list", f"make {key} a list")
    present = {_normal(entry) for entry in current or [] if isinstance(entry, str)}
    missing = [entry for entry in wanted if _normal(entry) not in present]
    if not missing:
        return
    if current is None:
        new_key = key not in document  # else "exclude:" with nothing after it
        document[key] = CommentedSeq(missing)
        if new_key:
            document.yaml_set_comment_before_after_key(key, before=comment)
    else:
        _append(current, missing)
    merged.added[key] = missing


def _append(sequence: list[Any], entries: list[str]) -> None:
    """Append to a list, keeping the comment lines that followed its last item after the new
    last item: ruamel.yaml hangs them on the last item, and they belong to what comes after
    the list (a heading for the next settings, say)."""
    last = len(sequence) - 1
    sequence.extend(entries)
    if not isinstance(sequence, CommentedSeq):
        return
    comments = sequence.ca
    token = comments.items.get(last, [None])[0]
    if token is None:
        return
    # An end-of-line comment stays on its item; the lines after it move down.
    own, _, rest = str(token.value).partition("\n")
    if not rest.strip():
        return
    if own:
        token.value = own + "\n"
        token = copy.copy(token)
    else:
        del comments.items[last]
    token.value = "\n" + rest
    comments.items[len(sequence) - 1] = [token, None, None, None]


def _dump(editor: YAML, document: CommentedMap, original: str) -> str:
    stream = io.StringIO()
    editor.dump(document, stream)
    if any(line.strip() and not line.lstrip().startswith("#") for line in original.splitlines()):
        return stream.getvalue()
    # Only comments (or nothing): ruamel.yaml read no document to hang them on, so they are
    # kept as they were, and the settings follow them.
    kept = original.rstrip("\n")
    return (kept + "\n\n" if kept else "") + stream.getvalue()


def _check_unchanged(
    before: dict[Any, Any], new_text: str, merged: Merged, refuse: Refusal
) -> None:
    """Every setting the user had reads back as it was; the lists only grew at their end."""
    try:
        after = yaml.safe_load(new_text)
    except yaml.YAMLError:
        after = None
    same = isinstance(after, dict) and set(before) <= set(after)
    if same and isinstance(after, dict):
        for key, value in before.items():
            if key in merged.added:
                old = value or []
                same = same and after[key][: len(old)] == old
            else:
                same = same and after[key] == value
        same = same and set(after) - set(before) <= set(merged.added)
    if not same:
        raise refuse("could not be edited without changing its other settings", "add them by hand")


def _normal(entry: str) -> str:
    """An entry as Jekyll matches it: relative to the site, a folder with or without its
    slash ("/_digest/", "./_digest" and "_digest" are one entry)."""
    entry = entry.strip()
    while entry.startswith(("./", "/")):
        entry = entry[2:] if entry.startswith("./") else entry[1:]
    return entry.rstrip("/")


def _kind(value: object) -> str:
    if isinstance(value, str):
        return "string"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, list):
        return "list"
    return "bare value" if value is not None else "empty value"


def _problem(error: Exception) -> str:
    """A parser's complaint on one line: what, and where (its own message also quotes the
    text and a documentation link)."""
    problem = getattr(error, "problem", None) or getattr(error, "context", None)
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    if not problem:
        return " ".join(str(error).split())[:200]
    where = f"line {mark.line + 1}: " if mark is not None else ""
    return where + " ".join(str(problem).split())
