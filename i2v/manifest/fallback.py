"""Where a run's manifest goes when its destination cannot take it: a local folder, said aloud.

A run must end with its manifest whatever its destination does (full, read-only,
unreachable): the rows' outcomes say which videos were paid for and what a rerun
finishes. When the destination refuses a shard's part of the manifest or the run's
manifest, they are written to ``i2v-fallback/<run>/`` in the current folder instead (in
the system's temporary folder if the current one cannot be written), laid out as in a
destination (``runs/<run>/manifest.parquet`` and ``.csv``). The run says where, on its log
and at its end, and ends failed.

Once the destination has room again, copy the folder's ``runs/`` into it: the next run
merges that manifest into the destination's like any other (:mod:`i2v.manifest.merged`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from i2v.errors import ConfigError
from i2v.manifest.merged import run_manifest_key
from i2v.storage.local import LocalDestination

FOLDER = "i2v-fallback"


def _candidates(run: str) -> list[Path]:
    return [base / FOLDER / run for base in (Path.cwd(), Path(tempfile.gettempdir()))]


def spare(run: str) -> LocalDestination:
    """The local folder that takes what the destination refused for ``run`` (made if missing)."""
    problems = []
    for folder in _candidates(run):
        dest = LocalDestination(folder)
        try:
            dest.check()
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        return dest
    raise ConfigError(f"no local folder can take the manifest either: {'; '.join(problems)}")


def used(run: str) -> LocalDestination | None:
    """The local folder that took parts of ``run``'s manifest, if one did (nothing is made)."""
    for folder in _candidates(run):
        if folder.is_dir():
            return LocalDestination(folder)
    return None


def holding(run: str) -> LocalDestination | None:
    """The local folder holding ``run``'s manifest, if the destination refused it."""
    for folder in _candidates(run):
        if (folder / run_manifest_key(run)).is_file():
            return LocalDestination(folder)
    return None
