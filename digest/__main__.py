"""``python -m digest``: the ``digest`` command."""

from __future__ import annotations

import signal
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    # Nothing is done before the command's modules are loaded; SystemExit, unlike the
    # KeyboardInterrupt Python raises by default, leaves without a traceback.
    sys.stderr.write("interrupted: nothing was done yet; run the same command again\n")
    raise SystemExit(130)


def run() -> None:
    """The command, with a Ctrl-C while its modules load (about half a second) said in one
    line too: ``main`` takes Ctrl-C over from there."""
    signal.signal(signal.SIGINT, _interrupted_while_starting)
    from digest.cli import main

    main()


if __name__ == "__main__":
    run()
