"""The process that watches a run: it passes signals on and ends with the run's exit status.

``i2v run`` checks its input, starts the process that runs the flow in a session of its
own, and then *becomes* this program (``exec``), run with ``python -S`` so that it holds
the interpreter and nothing else: a few megabytes for the whole run, not the tens that
the checks imported. So this module imports only the standard library, and is run by
its path, not as part of the package.

The first SIGINT or SIGTERM asks the run to stop (nothing more is sent, every started
job stays journaled, the manifest is written); the watcher then exits 130 or 143. A
second signal kills the run's whole process group at once (the journal is intact).
Both signals are blocked from before the run starts until the handlers are in place, so
one that arrives in between waits rather than being lost. If this process itself is
killed, the run ends too (:mod:`i2v.cli.lifetime`).
"""

from __future__ import annotations

import os
import signal
import sys

#: Signals passed on to the run.
FORWARDED = frozenset({signal.SIGINT, signal.SIGTERM})
#: Shows the terminal's cursor again (a progress bar hides it while drawing).
SHOW_CURSOR = "\x1b[?25h"


def watch(pid: int, *, bar: bool) -> int:
    """Wait for process ``pid`` to end, passing it signals; returns the exit status to end with.

    ``bar``: the run draws a progress bar, and says itself that it is stopping (a line
    written here would be drawn over).
    """
    received: list[int] = []

    def forward(signum: int, frame: object) -> None:
        received.append(signum)
        try:
            if len(received) == 1:
                if not bar:
                    name = signal.Signals(signum).name
                    print(f"\ni2v: {name}: stopping; signal again to stop at once", file=sys.stderr)
                os.kill(pid, signal.SIGINT)
            else:
                os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # already gone: waitpid reports how it ended

    for sig in FORWARDED:
        signal.signal(sig, forward)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if received:
        if bar and code < 0:  # killed while drawing: the cursor is hidden, the line unended
            print(SHOW_CURSOR, file=sys.stderr, flush=True)
        return 128 + received[0]
    return code


def main(argv: list[str]) -> int:
    """``watch.py PID VIEW``: VIEW is ``bar`` when the run draws a progress bar."""
    pid, view = int(argv[0]), argv[1]
    return watch(pid, bar=view == "bar")


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
