"""Every error digest raises, in one hierarchy. Each names the thing that is wrong and the fix.

- ``DigestError``: what the CLI reports to a user: ``str(error)`` on one line, exit
  ``error.exit_code`` (``--debug`` shows the traceback instead).
- ``UsageError`` (exit 2): bad usage, bad input or bad configuration, found before or outside
  a paper's work.
- ``RunStopped`` (exit 2): a configuration error found during a run that no later paper could
  get past (a refused key, an unknown model). It is raised, and the run stops; what was done
  before it is written first.
- ``PaperFailed``: one paper could not be digested at one stage; the run goes on without it
  and lists the reason. ``transient`` says the cause may pass by the next run.
- ``TransientAnswer``: an answer a retry may mend (an HTML page where JSON should be). It never
  leaves the retry policy that raised it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from digest.models import Stage, Usage


class DigestError(Exception):
    """Base class of every error digest reports to a user."""

    exit_code = 1


class UsageError(DigestError):
    """Bad usage, bad input or bad configuration (exit code 2)."""

    exit_code = 2


class DataFileError(UsageError):
    """A day file in the data folder that cannot be read or does not validate."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path


class PostFormatError(UsageError):
    """A post ``digest import`` cannot parse: names the file, the line and what was expected."""

    def __init__(
        self, path: Path, line_number: int, expected: str, found: str | None = None
    ) -> None:
        message = f"{path}:{line_number}: expected {expected}"
        if found is not None:
            shown = found if len(found) <= 80 else found[:77] + "..."
            message += f", found {shown!r}"
        super().__init__(message)
        self.path = path
        self.line_number = line_number


class SourceError(DigestError):
    """The list of the day's papers could not be had."""


class OutputLocked(DigestError):
    """Another run holds the output folder's lock (exit 3)."""

    exit_code = 3


class LockStolen(OutputLocked):
    """The lock file was deleted or replaced while this run held it."""


class OutputWriteFailed(DigestError):
    """The day file or post could not be written (a full disk, a read-only folder)."""

    exit_code = 2


class RunStopped(DigestError):
    """A configuration error met during a run: no paper after it could succeed (exit 2).

    ``run`` is what was done before it, once that is written (a ``DayRun``), so that the
    caller can still report it."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.results: list[Any] = []  # every paper's result (PaperResult), when a run raised it
        self.run: Any = None  # the DayRun written before it was raised


class BatchesStillRunning(DigestError):
    """The run's deadline passed while batches were still running (exit 1): they are saved,
    and the next run collects them."""


class LLMConfigError(RunStopped):
    """The LLM server refuses every request (bad key, unknown model, a response format it
    cannot give)."""


# Why each paper a RunStopped left undone failed: the error itself is said once, at the end,
# not again in every paper's progress line, "failed:" line and table row.
STOPPED_WITH_THE_RUN = "not digested: the run stopped at a configuration error, said at its end"


class PaperFailed(DigestError):
    """One paper could not be digested at ``stage``; the run goes on without it."""

    stage: ClassVar[Stage] = "other"

    def __init__(self, reason: str, *, transient: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient

    def __reduce__(self) -> tuple[Any, ...]:
        # Raised in extraction worker processes: rebuilt in this one with every attribute.
        return (type(self), (self.reason,), self.__dict__)


class PaperStopped(PaperFailed):
    """Not started, or cut off: the --max-cost cap or the run's deadline. The next run does it."""

    stage = "run"


class MetadataError(PaperFailed):
    """The arXiv API could not be asked, or has no usable entry for the paper."""

    stage = "metadata"


class DownloadFailed(PaperFailed):
    """The PDF could not be had; the paper is digested from its abstract instead.

    ``transient`` (5xx, a timeout, a dropped connection, a robot block): the entry is marked so
    that the next run tries the PDF again."""

    stage = "download"


class ExtractionFailed(PaperFailed):
    """The PDF gives no usable text; ``reason`` is a short phrase a user can read."""

    stage = "extract"


class ExtractionUnavailable(UsageError, RuntimeError):
    """The chosen extractor is not installed: a setup problem to fix once, not a bad PDF (so
    not a ``PaperFailed``: no paper is skipped for it)."""


class SummaryFailed(PaperFailed):
    """The LLM gave no usable digest. ``usage`` is what its answers cost in tokens (paid for
    all the same), ``cost_usd`` their price when the model's price is known, ``attempts`` the
    requests made."""

    stage = "summarize"

    def __init__(
        self,
        reason: str,
        *,
        usage: Usage | None = None,
        attempts: int = 0,
        cost_usd: float | None = None,
    ) -> None:
        super().__init__(reason)
        self.usage = usage
        self.attempts = attempts
        self.cost_usd = cost_usd


class TransientAnswer(Exception):
    """An answer that a retry may mend (an HTML error page served with 200, a body that is
    not the API's). Retried like a 5xx by ``digest.net.RetryPolicy``."""


class MalformedAnswer(TransientAnswer):
    """HTTP 200 from the LLM server whose body is not a chat completion (a proxy's page)."""
