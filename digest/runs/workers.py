"""The extraction workers of a run: a pool of processes that read PDFs' text, bounded in time.

pypdf is pure Python: in a thread it would hold the GIL that the event loop needs to keep the
other papers' requests moving, so each PDF is read in a worker process. A small PDF can draw
one huge stream on every page and take hours, so each extraction is bounded by
``extract_timeout``; a running task cannot be cancelled otherwise, so past it the workers are
killed and replaced, and a paper whose extraction was only caught up in that is tried once
more on the new workers.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from digest.errors import ExtractionFailed
from digest.options import ExtractOptions
from digest.text.extract import ExtractedText, extract_pdf, start_workers


class ExtractionWorkers:
    """The pool of one run, replaced when a PDF outlasts its time or crashes a worker."""

    def __init__(self, options: ExtractOptions, pool: ProcessPoolExecutor | None = None) -> None:
        self.options = options
        # Already starting (see start_workers, called before the slow imports), else made now.
        self._pool = pool or start_workers(options.extractor)
        self._killed: set[ProcessPoolExecutor] = set()  # pools killed for a slow PDF

    async def extract(self, data: bytes, text_budget: int) -> ExtractedText:
        """The text of the PDF ``data``, at most ``text_budget`` characters of it, read in a
        worker within ``extract_timeout``; ``ExtractionFailed`` when it cannot be had."""
        timeout = self.options.timeout
        for attempt in range(2):
            pool = self._pool
            future = asyncio.get_running_loop().run_in_executor(
                pool, extract_pdf, data, text_budget, self.options.extractor
            )
            try:
                return await asyncio.wait_for(future, timeout)
            except TimeoutError:
                self._replace(pool, kill=True)
                raise ExtractionFailed(
                    f"extraction took longer than {timeout:g} s (DIGEST_EXTRACT_TIMEOUT)"
                ) from None
            except asyncio.CancelledError:
                # Killing the pool for a slow PDF cancels the PDFs still queued for it; this
                # one is tried once more on the new workers. A cancelled task (the run's
                # deadline) is not this: it goes on being cancelled.
                task = asyncio.current_task()
                if pool in self._killed and attempt == 0 and task and not task.cancelling():
                    continue
                raise
            except BrokenProcessPool:
                if pool in self._killed and attempt == 0:
                    continue  # another paper's timeout killed this worker, not this PDF
                # A worker died (out of memory, or the PDF library crashed on this file). The
                # papers it held fall back to their abstracts; the next ones get a new pool.
                self._replace(pool, kill=False)
                raise ExtractionFailed("the extraction worker crashed on this PDF") from None
        raise ExtractionFailed("the extraction workers were replaced twice during this PDF")

    def _replace(self, pool: ProcessPoolExecutor, *, kill: bool) -> None:
        if pool is not self._pool:
            return  # already replaced
        if kill:
            self._killed.add(pool)
        _stop(pool, kill=kill, wait=False)
        self._pool = start_workers(self.options.extractor)

    def close(self) -> None:
        """Nothing waits for the workers once the run leaves, whether it is done, stopped or
        interrupted: they are killed rather than let finish a PDF nobody will read (one cut
        off by the deadline or a Ctrl-C could take extract_timeout), and waited for here.
        Left to the interpreter's exit, that wait is where a Ctrl-C could only end in a
        traceback."""
        _stop(self._pool, kill=True, wait=True)


def _stop(pool: ProcessPoolExecutor, *, kill: bool, wait: bool) -> None:
    """Shut ``pool`` down, its queued extractions cancelled; ``kill``: its running ones too
    (ProcessPoolExecutor cannot stop a running task; its processes are its own)."""
    if kill:
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.kill()
    pool.shutdown(wait=wait, cancel_futures=True)
