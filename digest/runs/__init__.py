"""Runs: the commands' runs planned and driven (``run``: daily, backfill, backfill in batches,
one paper), from what a run works with (``setup``, with the one pipeline builder); a day
planned and written (``day``), its candidates chosen by interests (``ranking``); the batch half
of a backfill (``backfill``); a day's papers taken
through the stages (``pipeline``: each paper read by ``reading`` with the extraction
``workers``, and asked of the LLM by ``llm_stage``); and what a run tells, leaves behind and
shows (``events``, ``results``, ``report``, ``stats``).

Imports every stage below it (``digest.sources``, ``digest.text``, ``digest.llm``,
``digest.blog``) and the base modules; prints nothing itself: a run tells its watcher
(``events``). Only ``digest.cli`` and the other top modules import it.
"""
