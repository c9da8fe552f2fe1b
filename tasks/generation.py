"""Tasks that start generations and wait for them."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from i2v import jobs
from i2v.journal import Submission
from i2v.rows import Row
from tasks import resources
from tasks.retries import transient_only


@task(name="submit", task_run_name="submit-row-{row.index}", cache_policy=NO_CACHE, persist_result=False)
def submit_generation(row: Row, dest: str) -> Submission:
    """Start (or re-attach to) the row's generation; its id is journaled before returning.

    No Prefect retries: a create is not idempotent, and :func:`i2v.jobs.submit` already
    resends exactly the failures that cannot have started a job.
    """
    return jobs.submit(resources.api(), row, resources.journal(dest))


@task(
    name="wait",
    task_run_name="wait-{submission.generation_id}",
    retries=3,
    retry_delay_seconds=[5, 20, 60],
    retry_jitter_factor=0.5,
    retry_condition_fn=transient_only,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def wait_for_generation(submission: Submission, timeout_s: float, poll_interval_s: float) -> jobs.Finished:
    """Poll until the video is ready; the deadline counts from submission, across retries."""
    return jobs.wait_for_video(
        resources.api(),
        submission,
        deadline=submission.submitted_at + timeout_s,
        interval_s=poll_interval_s,
    )
