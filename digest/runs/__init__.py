"""Runs: a day's papers taken through the stages (``pipeline``), a day planned and written
(``day``), a range of days (``backfill``), and what a run leaves behind and shows (``report``,
``stats``, ``results``).

Imports every stage below it (``digest.sources``, ``digest.text``, ``digest.llm``,
``digest.blog``) and the base modules; prints nothing itself. Only ``digest.cli`` and the
other top modules import it.
"""
