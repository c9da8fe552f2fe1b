"""A run watched from outside: ``i2v run`` and ``i2v rerun`` start themselves again in a child process.

The command the user typed checks its input, then runs the very same command in a child
process of its own session and becomes :mod:`i2v.cli.supervisor`, which watches it; the
child (:func:`is_supervised`) runs the flow. Both sides live here: :func:`supervise` starts
the child, :func:`join_supervisor` is what the child does first.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys

from i2v.cli import lifetime
from i2v.cli import supervisor as watch
from i2v.cli.progress_view import View

#: Set in the process that runs the flow, under an ``i2v run`` that watches it.
_SUPERVISED = "I2V_SUPERVISED"
#: The process id of that ``i2v run``: the process that runs the flow ends when it is gone.
_SUPERVISOR = "I2V_SUPERVISOR_PID"


def is_supervised() -> bool:
    """This process is the child that runs the flow, under an ``i2v`` that watches it."""
    return bool(os.environ.get(_SUPERVISED))


def join_supervisor() -> None:
    """In the child: end when the watching process is gone, and take the signals it held back."""
    if not is_supervised():
        return
    supervisor = os.environ.get(_SUPERVISOR, "")
    if supervisor.isdigit():
        lifetime.end_when_orphaned(int(supervisor))
    # Started by supervise with these blocked (a child inherits its parent's mask).
    signal.pthread_sigmask(signal.SIG_UNBLOCK, watch.FORWARDED)


def supervise(argv: list[str], *, view: View) -> int:
    """Run this command again in a child process of its own session, and watch it.

    A terminal's Ctrl-C reaches every process of the foreground group, Prefect's own server
    among them; in a session of its own the run keeps that server while it stops cleanly.
    This process then becomes :mod:`i2v.cli.supervisor`, which passes the run signals and exits
    with its status. Returns only if that program cannot be started (then it watches the
    run itself, the same way).

    The run does not outlive this process (see :mod:`i2v.cli.lifetime`): however this
    process ends, SIGKILL included, the run gets SIGTERM, stops as it does on any SIGTERM,
    and is killed if it has not ended within a grace period.
    """
    env = {**os.environ, _SUPERVISED: "1", _SUPERVISOR: str(os.getpid())}
    command = [sys.executable, "-m", "i2v.cli.main", *argv]
    # Blocked until the watcher's handlers are in place, so a signal meanwhile is held, not lost.
    signal.pthread_sigmask(signal.SIG_BLOCK, watch.FORWARDED)
    child = subprocess.Popen(  # noqa: S603 - this very command again
        command, env=env, start_new_session=True, preexec_fn=lifetime.ends_with_parent(signal.SIGTERM)
    )
    program = [sys.executable, "-S", watch.__file__, str(child.pid), view]
    if view != "quiet":
        # The run's process takes seconds to import and start Prefect's server: say so at once.
        print("i2v: starting the run (Prefect's local server first, then the input)…", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    with contextlib.suppress(OSError):
        os.execv(sys.executable, program)  # noqa: S606 - the interpreter running this, on a file of this package
    return watch.watch(child.pid, bar=view == "bar")
