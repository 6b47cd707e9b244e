"""A written post announced through Apprise (Slack, Discord, Telegram, e-mail, ntfy...): one
message with the date, the number of papers, their titles and the post's URL.

A message is a courtesy, not part of the run: it is sent once the post is written, it may take
``notify_timeout`` seconds at most (Apprise's own socket timeouts, and a daemon thread left
behind when a receiver hangs all the same), and a failure is one line to the caller's ``tell``,
with the URLs' tokens masked. It never raises, and it writes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml

from digest import redact
from digest.blog.weekly import WEEKLY_TITLE, Week, week_papers
from digest.errors import DigestError
from digest.files import read_bounded
from digest.models import Day
from digest.options import NotifyOptions

# Jekyll's named permalink styles (a post's own URL, with its date and slug).
_PERMALINK_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
# A post's file name: its date, then the slug Jekyll makes its :title.
_POST_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})-(.+)")
_CONFIG_MAX_BYTES = 1_000_000
# The pieces of an Apprise URL that are its tokens: long, or with a digit. Plain words (a
# host's "services", "hooks") would be masked in every line if registered.
_TOKEN_PIECE = re.compile(r"[^/?&=@:#,;\s]+")


def register_apprise_url(url: str) -> None:
    """Mask ``url`` and the tokens in it in every message from now on: Apprise URLs carry
    them in the user, the password, the host (``tgram://BOT_TOKEN/CHAT``), the path
    (``discord://ID/TOKEN``) or the query."""
    redact.register(url)
    rest = url.split("://", 1)[-1]
    for piece in _TOKEN_PIECE.findall(rest):
        dotted = "." in piece  # a host name or an address: not a secret, and found everywhere
        if not dotted and (
            len(piece) >= 20 or (len(piece) >= 6 and any(c.isdigit() for c in piece))
        ):
            redact.register(piece)


def notify_post(
    options: NotifyOptions,
    title: str,
    date_text: str,
    paper_titles: Sequence[str],
    post: Path | str,
    tell: Callable[[str], None],
) -> bool:
    """Send one message about a written post to every URL of ``options``: ``title``, then
    ``date_text`` with the number of papers, their titles and the post's URL (``post`` is the
    URL, or the post's file, whose URL is worked out from ``site_url`` or ``_config.yml``;
    none when neither names the site). Waits ``options.timeout`` seconds at most; a failure
    is one line given to ``tell``. Whether every URL took the message."""
    if not options.urls:
        return True
    url = post if isinstance(post, str) else post_url(options.site_url, post)
    body = message_body(date_text, paper_titles, url)
    problems: list[str] = []
    worker = threading.Thread(
        target=_send, args=(options, title, body, problems), name="digest-notify", daemon=True
    )
    worker.start()
    worker.join(options.timeout)
    if worker.is_alive():
        tell(
            f"the notification had no answer within {options.timeout:g} s and was left "
            "behind; the post is written"
        )
        return False
    if problems:
        tell(redact.redact(" ".join(" ".join(problems).split())))
        return False
    return True


def notify_day(options: NotifyOptions, day: Day, post: Path, tell: Callable[[str], None]) -> bool:
    """A day post's message: its title, its date and its papers' titles (``notify_post``)."""
    titles = [paper.title for paper in day.papers]
    return notify_post(options, day.title, day.date.isoformat(), titles, post, tell)


def notify_week(
    options: NotifyOptions,
    week: Week,
    days: Sequence[Day],
    post: Path,
    tell: Callable[[str], None],
) -> bool:
    """A weekly issue's message, from the day files it was made of (``notify_post``)."""
    return notify_post(
        options,
        WEEKLY_TITLE.format(week=week.label),
        f"{week.label} ({week.monday} to {week.sunday})",
        [paper.entry.title for paper in week_papers(days)],
        post,
        tell,
    )


def message_body(date_text: str, paper_titles: Sequence[str], url: str | None) -> str:
    count = len(paper_titles)
    lines = [f"{date_text}: {count} paper{'' if count == 1 else 's'}"]
    lines += [f"- {paper_title}" for paper_title in paper_titles]
    if url:
        lines.append(url)
    return "\n".join(lines)


def _send(options: NotifyOptions, title: str, body: str, problems: list[str]) -> None:
    """Apprise's message to every URL; what went wrong, in ``problems``, in one line."""
    try:
        import apprise  # a second's import that only a run with URLs needs
    except ImportError as error:  # pragma: no cover - a dependency
        problems.append(f"the notification was not sent: {error}")
        return
    heard = _Heard()
    logger = logging.getLogger("apprise")
    logger.addHandler(heard)
    try:
        # Each service sends from this thread, one after the other: Apprise.notify's own
        # pool of threads would hold the process's exit while a receiver hangs.
        asset = apprise.AppriseAsset(async_mode=False)
        for url in options.urls:
            scheme = url.split("://", 1)[0]
            service = apprise.Apprise.instantiate(url, asset=asset)
            if service is None:
                problems.append(
                    f"the notification to {scheme}:// was not sent: not a URL Apprise knows"
                )
                continue
            _bound(service, options.timeout)
            heard.lines.clear()
            if not service.notify(body=body, title=title):
                reason = heard.lines[-1] if heard.lines else "no reason given"
                problems.append(f"the notification to {scheme}:// failed: {reason}")
    except Exception as error:  # a message never stops a run, whatever Apprise meets
        problems.append(f"the notification failed: {error}")
    finally:
        logger.removeHandler(heard)


def _bound(service: Any, timeout: float) -> None:
    """The service's socket timeouts, never above the message's own."""
    for name in ("socket_connect_timeout", "socket_read_timeout"):
        given = getattr(service, name, None)
        if isinstance(given, int | float):
            setattr(service, name, min(float(given), timeout))


class _Heard(logging.Handler):
    """Apprise's warnings and errors while a message is sent: why it failed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def post_url(site_url: str | None, post: Path, config: Path = Path("_config.yml")) -> str | None:
    """The URL Jekyll gives the post file ``post``: the site's address (``site_url``, else
    ``url`` + ``baseurl`` of ``config``) and the site's ``permalink`` (Jekyll's default when
    none), with no categories; None when the site's address is not known."""
    site = _site_config(config)
    base = site_url or (str(site.get("url") or "") + str(site.get("baseurl") or "")) or None
    name = _POST_NAME.fullmatch(post.stem)
    if base is None or name is None:
        return None
    year, month, day, slug = name.groups()
    permalink = str(site.get("permalink") or "date")
    pattern = _PERMALINK_STYLES.get(permalink, permalink)
    date = dt.date(int(year), int(month), int(day))
    values = {
        "year": year,
        "month": month,
        "day": day,
        "i_month": str(int(month)),
        "i_day": str(int(day)),
        "short_year": year[2:],
        "y_day": f"{date.timetuple().tm_yday:03d}",
        "title": slug,
        "slug": slug,
        "categories": "",
        "output_ext": ".html",
    }
    unknown = [key for key in re.findall(r":([a-z_]+)", pattern) if key not in values]
    if unknown:
        return None
    path = re.sub(r":([a-z_]+)", lambda match: values[match.group(1)], pattern)
    path = re.sub(r"/{2,}", "/", "/" + path)
    return base.rstrip("/") + path


def _site_config(config: Path) -> dict[Any, Any]:
    """The Jekyll site's settings, or none when there is no readable ``_config.yml``."""
    try:
        data = yaml.safe_load(read_bounded(config, max_bytes=_CONFIG_MAX_BYTES))
    except (OSError, DigestError, ValueError, yaml.YAMLError):
        return {}  # the message goes without the URL: the site's build will say what is wrong
    return data if isinstance(data, dict) else {}
