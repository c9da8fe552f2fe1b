"""A run's progress where Prefect shows it: a line in the flow run's log and a progress artifact.

Both are brought up to date every :data:`PROGRESS_EVERY_S`, not per row: each update is
a request to the Prefect server, and a run of 100,000 rows must not make one per row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any
from uuid import UUID

import httpx
from prefect import get_run_logger
from prefect.artifacts import acreate_progress_artifact, aupdate_progress_artifact

from i2v.engine.progress import PROGRESS_RECORD, Snapshot
from i2v.report.summary import Summary
from orchestration import resources

#: Seconds between progress lines in the log and updates of the artifact.
PROGRESS_EVERY_S = 10.0
#: The artifact's key: the latest run's progress on the UI's Artifacts page.
PROGRESS_KEY = "i2v-progress"


async def start_artifact(total: int, *, key: str | None = PROGRESS_KEY) -> UUID:
    """The run's progress artifact, at 0 % of ``total`` rows (``key`` None: this flow run's only)."""
    return await acreate_progress_artifact(0.0, key=key, description=f"0/{total} rows: starting")


async def report(run_name: str, artifact: UUID) -> None:
    """Log a progress line and update ``artifact`` every :data:`PROGRESS_EVERY_S` until cancelled."""
    logger = get_run_logger()
    read = resources.progress_reader(run_name)
    while True:
        await asyncio.sleep(PROGRESS_EVERY_S)
        snapshot = read()
        if snapshot is None:
            continue
        line = snapshot.line()
        logger.info("progress: %s", line, extra={PROGRESS_RECORD: True})
        await _update(artifact, snapshot.percent, line)


async def finish_artifact(artifact: UUID, summary: Summary) -> None:
    """Bring ``artifact`` to 100 %: the run is over and every row has its manifest row."""
    final = Snapshot(
        total=summary.total,
        completed=summary.completed,
        skipped=summary.skipped,
        failed=summary.failed,
        credits_used=summary.credits_used,
        elapsed_s=summary.wall_s or 0.0,
    )
    await _update(artifact, 100.0, f"done: {final.line()}")


async def finish_counts(artifact: UUID, counts: Mapping[str, Any]) -> None:
    """Bring ``artifact`` to 100 % with a shard's counts by status (what it returns)."""
    statuses = ", ".join(f"{counts[name]} {name}" for name in ("completed", "failed", "skipped") if counts.get(name))
    await _update(artifact, 100.0, f"done: {counts.get('rows', 0)} rows: {statuses or 'none'}")


async def _update(artifact: UUID, percent: float, description: str) -> None:
    # The artifact only shows the counts; a server that does not answer now fails no run.
    try:
        await aupdate_progress_artifact(artifact, percent, description=description)
    except httpx.HTTPError as exc:
        get_run_logger().debug("progress artifact not updated: %s", exc)
