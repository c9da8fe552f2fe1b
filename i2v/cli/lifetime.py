"""A run never outlives its command: the processes of a run end when the one that started them does.

``i2v run`` works in a child process of its own session (see :mod:`i2v.cli.supervised`), and
that child starts Prefect's local server. Neither would hear of the command being killed:
a SIGKILL of the command, or of its process group, is sent to no one else. So, on Linux,
each asks the kernel (``prctl(PR_SET_PDEATHSIG)``) for a signal when its parent ends,
whatever ended it:

- the process that runs the flow gets SIGTERM, which halts the run as any SIGTERM does
  (nothing more is sent, every started job stays journaled, the manifest is written);
  with no one left to send a second signal, it also ends itself, with everything it
  started, once a grace period has passed (:func:`end_when_orphaned`);
- Prefect's local server gets SIGKILL when the process that runs the flow ends.

On other platforms these do nothing. Only the standard library is imported.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from collections.abc import Callable

#: ``prctl`` option: the signal this process gets when the thread that started it ends.
PR_SET_PDEATHSIG = 1
#: How long a run left without its command has to stop before it is killed.
ORPHAN_GRACE_S = 10.0
#: How often a run looks whether its command is still there.
ORPHAN_POLL_S = 0.5


def _prctl() -> Callable[..., int] | None:
    """The C library's ``prctl``, or None where there is none."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def ends_with_parent(sig: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn`` for :class:`subprocess.Popen`: the child gets ``sig`` when its parent ends.

    "Ends" is the end of the *thread* calling Popen: start the child from a thread that
    lives as long as the child should (the main thread). A parent that ended before the
    request took hold is caught too: the child then exits at once, with status 128 +
    ``sig``, as the signal would have made it. None (no ``preexec_fn``) off Linux.
    """
    prctl = _prctl()
    if prctl is None:
        return None
    parent = os.getpid()

    def preexec() -> None:  # runs in the child, between fork and exec: keep it to system calls
        prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        if os.getppid() != parent:
            os._exit(128 + int(sig))

    return preexec


def end_when_orphaned(parent: int, *, grace_s: float = ORPHAN_GRACE_S) -> None:
    """Once process ``parent`` is no longer this one's parent, kill this process (and its group) after ``grace_s``.

    For a child started with :func:`ends_with_parent` (``SIGTERM``): that signal starts a
    graceful stop, and this bounds it, since no second signal will come. If this process
    leads its own process group, the whole group is killed (what it started goes with
    it); otherwise only this process. Watched from a daemon thread; nothing off Linux.
    """
    if not sys.platform.startswith("linux"):
        return

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_S)
        time.sleep(grace_s)
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="i2v-orphan-watch", daemon=True).start()
