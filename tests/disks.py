"""Small real disks for tests of a full or read-only destination: a tmpfs mounted for the test.

Mounting needs root (or CAP_SYS_ADMIN) on Linux, which is where the suite runs; anywhere
else the tests that need one fail saying so, rather than pass without having tried.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def small_disk(folder: Path, size: str = "2m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted on ``folder`` (made if missing) for the block; unmounted after."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"a full disk is tested on a small tmpfs, which needs root on Linux: mount said {mounted.stderr.strip()!r}"
        )
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path, *, leave: int) -> Path:
    """Fill the disk under ``folder`` with one file until only about ``leave`` bytes are free; returns the file."""
    filler = folder / "filler.bin"
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with filler.open("wb") as handle:
        handle.write(b"\0" * max(0, free - leave))
    return filler


def remount(folder: Path, options: str, *, tries: int = 100) -> None:
    """Remount the tmpfs on ``folder`` with ``options`` (``ro``, ``rw``).

    Linux refuses to make a file system read-only while a file on it is open for writing
    ("mount point is busy"): the run's short writes (a record, a claim's renewal) end within
    milliseconds, so the remount is tried again for a second or so.
    """
    for _ in range(tries - 1):
        done = subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], capture_output=True, check=False)
        if done.returncode == 0:
            return
        time.sleep(0.01)
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


def free_bytes(folder: Path) -> int:
    """Bytes free on the disk under ``folder``."""
    stats = os.statvfs(folder)
    return stats.f_bavail * stats.f_frsize
