"""The task that copies a finished video into the destination."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from i2v import outcomes
from i2v.errors import DownloadError
from i2v.jobs import Finished
from i2v.outcomes import RowOutcome
from i2v.rows import Row
from i2v.transfer import store_video
from tasks import resources
from tasks.retries import transient_only

_EXPIRED = frozenset({403, 404, 410})


@task(
    name="store",
    task_run_name="store-row-{row.index}",
    retries=3,
    retry_delay_seconds=[2, 10, 30],
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def store_generation(row: Row, finished: Finished, dest: str, flow_run_id: str | None) -> RowOutcome:
    """Stream, verify and commit the video; then record the row as done."""
    journal = resources.journal(dest)
    try:
        stored = store_video(resources.http(), finished, journal.dest, row_id=row.id)
    except DownloadError as exc:
        if exc.status in _EXPIRED:
            # The URL will not come back; let the next run start a fresh generation.
            journal.forget(row.key)
        raise
    outcome = outcomes.completed(row, finished, stored, flow_run_id=flow_run_id)
    journal.save_record(outcome)
    return outcome
