"""What a run works with, and the one place its pipeline is built.

The CLI splits the settings into ``RunSetup`` (each part's options, the output folder, the
cache) and hands it to a run; every run, a day's, a batch backfill's or one paper's, opens its
pipeline through ``open_pipeline``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from digest.blog.store import OutputStore
from digest.llm.cache import DigestCache
from digest.models import Day
from digest.net import AsyncSleep
from digest.options import (
    ExtractOptions,
    FetchOptions,
    KeyCheck,
    LlmOptions,
    NotifyOptions,
    RankOptions,
    RunOptions,
)
from digest.runs.results import Progress

if TYPE_CHECKING:
    from digest.runs.pipeline import Pipeline


@dataclass(frozen=True)
class RunSetup:
    """What a run works with, split from the settings by the CLI."""

    store: OutputStore
    llm: LlmOptions
    fetch: FetchOptions
    extract: ExtractOptions
    cache_dir: Path
    new_day: Callable[[dt.date], Day]  # an empty day with the front matter the settings ask
    key_check: KeyCheck = field(default_factory=KeyCheck)  # one for all the days of a run
    notify: NotifyOptions | None = None  # where a written post is announced
    rank: RankOptions | None = None  # the day's candidates chosen by interests; None: off


def open_pipeline(
    setup: RunSetup,
    run: RunOptions,
    *,
    progress: Progress | None = None,
    sleep: AsyncSleep = asyncio.sleep,
    uses_llm: bool = True,
) -> Pipeline:
    """The pipeline of a run, for ``async with``; ``uses_llm`` False: one that only reads
    papers (``digest paper --show-prompt``)."""
    # Imported here: the LLM client, the arXiv client and the PDF readers take most of a
    # second to import, and a finished day, re-run, needs none of them. The extraction workers
    # are started first, to start up while that import runs.
    from digest.text.extract import start_workers

    workers = start_workers(setup.extract.extractor)
    from digest.runs.pipeline import Pipeline

    return Pipeline(
        setup.llm,
        setup.fetch,
        setup.extract,
        DigestCache(setup.cache_dir),
        run,
        sleep=sleep,
        progress=progress,
        workers=workers,
        uses_llm=uses_llm,
        key_check=setup.key_check,
    )
